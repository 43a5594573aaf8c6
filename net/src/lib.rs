//! tarn's sockets: TCP, UDP and Unix sockets on the reactor. Not built yet;
//! this crate is empty.

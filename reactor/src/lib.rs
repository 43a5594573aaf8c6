//! tarn's reactor: maps readiness from `tarn-selector` to stored wakers and
//! owns timers. Not built yet; this crate is empty.

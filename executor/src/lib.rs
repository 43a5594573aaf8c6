//! tarn's single-threaded executor: `block_on`, `spawn` and the `unblock`
//! pool. Not built yet; this crate is empty.

//! tarn: a small, fast async I/O runtime.
//!
//! The layers are being built bottom-up; today the facade re-exports the
//! readiness selector as [`selector`]. `block_on`, `spawn`, timers and
//! sockets will appear here as their crates land.

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use tarn_selector as selector;

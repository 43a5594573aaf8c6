//! tarn's executor: [`block_on`], [`spawn`], [`JoinHandle`] and [`yield_now`].
//!
//! One [`LocalExecutor`] per thread runs tasks that need not be `Send`,
//! in FIFO order, and sleeps inside the reactor's `select` when none is
//! runnable, so an idle server costs nothing and a woken one needs no extra
//! thread hop. The executor knows nothing of sockets: it drives the reactor
//! through `tarn-reactor`'s `Parker`. To use more cores, run one executor
//! per thread (each with its own `SO_REUSEPORT` listener) rather than a
//! work-stealing pool.
//!
//! Panics inside tasks are caught: the other tasks keep running, and the
//! task's [`JoinHandle`] yields a [`JoinError`] carrying the payload.
//!
//! ```
//! use std::time::Duration;
//! use tarn_executor::{block_on, spawn, yield_now};
//!
//! let out = block_on(async {
//!     let ticker = spawn(async {
//!         for _ in 0..3 {
//!             yield_now().await;
//!         }
//!         "ticked"
//!     });
//!     let answer = spawn(async { 6 * 7 });
//!     tarn_reactor::Timer::after(Duration::from_millis(1)).await;
//!     (ticker.await.unwrap(), answer.await.unwrap())
//! });
//! assert_eq!(out, ("ticked", 42));
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]

mod executor;
mod join;
// The one-allocation task, reached through raw pointers.
#[allow(unsafe_code)]
mod task;
mod yield_now;

pub use executor::{block_on, spawn, ExecutorBuilder, LocalExecutor};
pub use join::{JoinError, JoinHandle};
pub use yield_now::{yield_now, YieldNow};

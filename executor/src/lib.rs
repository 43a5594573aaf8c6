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
//! # Panics in tasks
//!
//! A panic in a task's code belongs to that task, wherever it happens: in
//! a poll of its future, or in the future's destructor (when the task
//! completes, when it is aborted, or when its executor is dropped).
//!
//! - It is caught there. The other tasks keep running, and so does the
//!   code that caused the drop: the task that called
//!   [`abort`](JoinHandle::abort), or the executor's `Drop`, which goes on
//!   to drop every other task's future.
//! - It is reported once: by the process's panic hook (the default one
//!   prints it), or, for an executor built with
//!   [`on_panic`](ExecutorBuilder::on_panic), by that handler alone, the
//!   hook staying quiet for it.
//! - The task's [`JoinHandle`] yields a [`JoinError`] carrying the payload,
//!   in place of the output it would have yielded or of its cancellation.
//!   A task that panics in `poll` and again in its destructor keeps the
//!   first panic; the second is reported and dropped.
//!
//! The future passed to [`block_on`] or [`LocalExecutor::run`] is not a
//! task: its panic leaves `block_on`, as a panic in the caller's own code
//! would. A destructor that calls [`spawn`] while its executor is being
//! dropped (at thread exit, say) gets a handle whose task is already
//! cancelled; it never aborts the process.
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

mod dump;
mod executor;
mod group;
mod join;
mod sync;
// The one-allocation task, reached through raw pointers.
#[allow(unsafe_code)]
mod task;
mod task_local;
mod threads;
mod yield_now;

pub use dump::{tasks, try_id, TaskBuilder, TaskId, TaskInfo, TaskState, Waiting};
pub use executor::{block_on, spawn, ExecutorBuilder, LocalExecutor};
pub use group::{Stopped, TaskGroup};
pub use join::{JoinError, JoinHandle};
pub use task_local::{AccessError, LocalKey, Scoped};
pub use threads::{Executors, PerCore};
pub use yield_now::{yield_now, YieldNow};

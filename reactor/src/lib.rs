//! tarn's reactor: readiness to wakers, timers, and the driver.
//!
//! A [`Reactor`] owns a [`Selector`](tarn_selector::Selector), the fds
//! registered with it (a source each, with cached readiness per direction
//! and the wakers waiting on it) and its timers. On epoll every thread that
//! runs a tarn executor has one of its own, and one more is shared by the
//! rest of the process; on poll and select the shared one is the only one.
//! [`Async`] makes any fd awaitable: its operations try the syscall first
//! and register interest only when it returns `WouldBlock`; on epoll each
//! fd is registered once, edge-triggered, so a connection in steady state
//! makes no `epoll_ctl` call. The reactor knows nothing of tasks: whoever
//! waits drives it, either an executor that sleeps in its `select` (tarn's,
//! or this crate's minimal [`drive`]; [`driver`] says how any executor
//! plugs in), or a fallback thread that starts on demand, so that tarn I/O
//! works under tokio, `futures::executor` or async-executor. [`signal`]
//! turns Unix signals into streams, through a self-pipe that is an
//! ordinary source.
//!
//! ```
//! use std::time::Duration;
//! use tarn_reactor::{drive, timeout, Async, Timer};
//!
//! drive(async {
//!     let (a, b) = std::os::unix::net::UnixStream::pair()?;
//!     let b = Async::new(b)?;
//!     // Nothing written: readable() would wait; the timeout ends it.
//!     assert!(timeout(Duration::from_millis(10), b.readable()).await.is_err());
//!     std::io::Write::write_all(&mut &a, b"x")?;
//!     b.readable().await?;
//!     Timer::after(Duration::from_millis(1)).await;
//!     std::io::Result::Ok(())
//! })?;
//! # std::io::Result::Ok(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod async_fd;
pub mod driver;
mod lock;
mod reactor;
pub mod signal;
mod source;
mod sync;
mod sys;
mod timer;
mod timer_queue;
mod watch;

pub use async_fd::{Async, Readiness, WaitSlot};
pub use driver::drive;
pub use reactor::{
    held_wakers, reactors, sources, stats, HeldWaker, Reactor, ReactorInfo, SourceInfo, Stats,
    WaitsFor,
};
pub use timer::{timeout, TimedOut, Timeout, Timer};

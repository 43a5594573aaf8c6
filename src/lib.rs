//! tarn: a small, fast async I/O runtime for one thread per core.
//!
//! Write `async fn` servers, run them with [`block_on`], spawn a task per
//! connection with [`spawn`]. A program depends on `tarn` alone: the
//! sockets are in [`net`], the I/O traits in [`io`], streams, futures and
//! channels in [`stream`], [`future`] and [`channel`], and
//! `use tarn::prelude::*` brings the extension traits (`read`, `write_all`,
//! `next`, ...). The work lives in the crates below (`tarn-selector`,
//! `tarn-reactor`, `tarn-executor`, `tarn-net`, `tarn-blocking`).
//!
//! A complete TCP echo server:
//!
//! ```no_run
//! use tarn::net::{TcpListener, TcpStream};
//! use tarn::prelude::*;
//!
//! async fn echo(mut conn: TcpStream) -> std::io::Result<()> {
//!     let mut buf = vec![0; 4096];
//!     loop {
//!         let n = conn.read(&mut buf).await?;
//!         if n == 0 {
//!             return Ok(());
//!         }
//!         conn.write_all(&buf[..n]).await?;
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     tarn::block_on(async {
//!         let listener = TcpListener::bind("127.0.0.1:7000").await?;
//!         loop {
//!             let (conn, _peer) = listener.accept().await?;
//!             tarn::spawn(echo(conn)).detach();
//!         }
//!     })
//! }
//! ```
//!
//! tarn's sockets and timers also work under other executors (tokio,
//! `futures::executor`, async-executor): a fallback thread then drives the
//! reactor. A program that uses only tarn's executor starts no thread of
//! tarn's own (name lookups and [`unblock`] use a small pool).
//!
//! What an operator needs to see what a stuck program waits on is
//! [`stats`] and [`sources`].

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use tarn_blocking::{unblock, Unblock};
pub use tarn_executor::task_local;
pub use tarn_executor::{
    block_on, spawn, yield_now, ExecutorBuilder, Executors, JoinError, JoinHandle, LocalExecutor,
    PerCore, YieldNow,
};
pub use tarn_reactor::{
    reactors, timeout, Async, ReactorInfo, Readiness, SourceInfo, Stats, TimedOut, Timeout, Timer,
    WaitSlot,
};

/// The reactors' counters and gauges, summed over every reactor (each
/// executor thread's and the shared one): registered sources, wakers
/// waiting to read or write, pending timers, and how many selects, events
/// and wakeups there have been.
///
/// ```
/// let before = tarn::stats();
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let a = tarn::Async::new(a)?;
/// assert_eq!(tarn::stats().sources, before.sources + 1);
/// drop(a);
/// assert_eq!(tarn::stats().sources, before.sources);
/// # std::io::Result::Ok(())
/// ```
pub fn stats() -> Stats {
    tarn_reactor::stats()
}

/// Every registered file descriptor, with how many tasks wait to read from
/// it or write to it and which reactor it is registered with: what a stuck
/// program is waiting for.
///
/// ```
/// use std::os::fd::AsRawFd;
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let a = tarn::Async::new(a)?;
/// let listed = tarn::sources();
/// assert!(listed.iter().any(|s| s.fd == a.as_raw_fd()));
/// # std::io::Result::Ok(())
/// ```
pub fn sources() -> Vec<SourceInfo> {
    tarn_reactor::sources()
}

/// The blocking pool behind [`unblock`]: [`try_unblock`](blocking::try_unblock),
/// its size and how to observe it.
pub mod blocking {
    pub use tarn_blocking::*;
}

/// The readiness selector (epoll, poll, select) under the reactor, in the
/// manner of Python's `selectors`: usable on its own.
pub use tarn_selector as selector;

/// Sockets: TCP, UDP and Unix domain.
pub mod net {
    pub use tarn_net::*;
}

/// Child processes: std's [`Command`](process::Command) builder with async
/// pipes and an awaited end ([`Child::status`](process::Child::status),
/// [`output`](process::Command::output)), seen through a pidfd registered
/// with the reactor (or `SIGCHLD` on kernels without pidfds): no helper
/// thread, and no zombie left by a dropped child.
///
/// ```
/// use tarn::process::Command;
///
/// let out = tarn::block_on(Command::new("printf").arg("%s-%s").args(["a", "b"]).output())?;
/// assert_eq!(out.stdout, b"a-b");
/// # std::io::Result::Ok(())
/// ```
pub mod process {
    pub use tarn_process::*;
}

/// Tasks people can see, and what tasks have beside their future.
///
/// - A dump of every live task of this thread's executor, [`tasks`](task::tasks):
///   id, name, spawn location, state (running, scheduled, idle), polls, time
///   since the last poll, and the fds (with direction) and timers it waits on.
///   It costs nothing until called (16 bytes per task and a counter bump per
///   poll); `examples/task_dump.rs` prints it on `SIGUSR1`.
/// - Names through [`Builder`](task::Builder), ids ([`try_id`](task::try_id),
///   `JoinHandle::id`), spawn locations recorded by every `spawn`.
/// - Task groups ([`TaskGroup`](task::TaskGroup)) that own their tasks:
///   outcomes as tasks end, abort-all on drop, and a graceful
///   [`shutdown`](task::TaskGroup::shutdown) (`examples/echo.rs` stops so on
///   `SIGINT`/`SIGTERM`).
/// - Task-local values ([`task_local!`](crate::task_local),
///   [`LocalKey`](task::LocalKey)), set for the span of a future and seen
///   by the code it runs.
///
/// ```
/// use std::time::Duration;
///
/// tarn::block_on(async {
///     let sleeper = tarn::task::Builder::new()
///         .name("sleeper")
///         .spawn(tarn::Timer::after(Duration::from_secs(60)));
///     tarn::yield_now().await;
///     for task in tarn::task::tasks() {
///         println!("{task}"); // task 1.1 "sleeper" (src/main.rs:6:10): idle, 1 polls, ...
///     }
///     assert_eq!(tarn::task::tasks()[0].name.as_deref(), Some("sleeper"));
///     sleeper.abort();
/// });
/// ```
///
/// ```
/// tarn::task_local! {
///     static REQUEST_ID: u64;
/// }
///
/// tarn::block_on(REQUEST_ID.scope(42, async {
///     let inner = tarn::spawn(REQUEST_ID.scope(7, async { REQUEST_ID.get() }));
///     assert_eq!(inner.await.unwrap(), 7);
///     assert_eq!(REQUEST_ID.get(), 42);
/// }));
/// ```
pub mod task {
    pub use tarn_executor::TaskBuilder as Builder;
    pub use tarn_executor::{
        tasks, try_id, AccessError, LocalKey, Scoped, Stopped, TaskGroup, TaskId, TaskInfo,
        TaskState, Waiting,
    };
}

/// Files: `std::fs`'s functions on the blocking pool, with errors that name
/// their paths, a [`File`](fs::File) that is `AsyncRead`, `AsyncWrite` and
/// `AsyncSeek` and moves its small reads and writes in 128 KiB chunks, and
/// [`read_dir`](fs::read_dir) as a stream.
///
/// ```
/// let text = tarn::block_on(tarn::fs::read_to_string("Cargo.toml"))?;
/// assert!(text.contains("[package]"));
/// # std::io::Result::Ok(())
/// ```
pub mod fs {
    pub use tarn_fs::*;
}

/// Unix signals as streams: [`Signals`](signal::Signals) yields each
/// signal of a set as it arrives, [`ctrl_c`](signal::ctrl_c) waits for one
/// Ctrl-C. They work under any executor.
///
/// The first listener of a signal takes it over; when the last one is
/// dropped, the signal's previous action comes back. So after a graceful
/// shutdown that stopped listening, a second Ctrl-C (or `SIGTERM`) ends the
/// program the default way.
///
/// ```no_run
/// use tarn::signal::{Signal, Signals};
///
/// tarn::block_on(async {
///     let mut signals = Signals::new([Signal::HUP, Signal::TERM])?;
///     loop {
///         match signals.recv().await {
///             Signal::HUP => println!("reloading the configuration"),
///             _ => break,
///         }
///     }
///     println!("shutting down");
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub mod signal {
    pub use tarn_reactor::signal::*;
}

/// Async I/O traits (`AsyncRead`, `AsyncWrite`, ...), their extension
/// traits (`AsyncReadExt::read`, `AsyncWriteExt::write_all`, ...) and
/// helpers (`BufReader`, `copy`, ...), from `futures-util`.
pub mod io {
    pub use futures_util::io::*;
}

/// Streams: the `Stream` trait, `StreamExt` (`next`, `map`, ...) and
/// helpers (`iter`, `unfold`, `select`, ...), from `futures-util`.
pub mod stream {
    pub use futures_util::stream::*;
}

/// Futures: `FutureExt`, `join`, `select`, `try_join_all`, `poll_fn`, ...,
/// from `futures-util`.
pub mod future {
    pub use futures_util::future::*;
}

/// Channels between tasks (and threads): `mpsc` (bounded and unbounded)
/// and `oneshot`, from `futures-channel`.
///
/// ```
/// tarn::block_on(async {
///     let (tx, rx) = tarn::channel::oneshot::channel();
///     tarn::spawn(async move { tx.send(42) }).detach();
///     assert_eq!(rx.await, Ok(42));
/// });
/// ```
pub mod channel {
    pub use futures_channel::{mpsc, oneshot};
}

/// The traits most programs need in scope: `use tarn::prelude::*`.
///
/// The I/O, stream and future traits and their extension traits, so that
/// `conn.read(&mut buf)`, `stream.next()` and `future.boxed_local()` work.
pub mod prelude {
    pub use futures_util::future::{Future, FutureExt, TryFuture, TryFutureExt};
    pub use futures_util::io::{
        AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt,
        AsyncWrite, AsyncWriteExt,
    };
    pub use futures_util::stream::{Stream, StreamExt, TryStream, TryStreamExt};
}

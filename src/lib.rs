//! tarn: a small, fast async I/O runtime for one thread per core.
//!
//! Write `async fn` servers, run them with [`block_on`], spawn a task per
//! connection with [`spawn`]. Everything a program needs is re-exported
//! here; the work lives in four crates below (`tarn-selector`,
//! `tarn-reactor`, `tarn-executor`, `tarn-net`).
//!
//! A complete TCP echo server:
//!
//! ```no_run
//! use tarn::io::{AsyncReadExt, AsyncWriteExt};
//! use tarn::net::{TcpListener, TcpStream};
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
//! reactor.

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use tarn_blocking::{unblock, Unblock};
pub use tarn_executor::{
    block_on, spawn, yield_now, Builder, JoinError, JoinHandle, LocalExecutor,
};
pub use tarn_reactor::{timeout, Async, Reactor, TimedOut, Timer};

/// The blocking pool behind [`unblock`]: its size and how to observe it.
pub mod blocking {
    pub use tarn_blocking::*;
}

/// The readiness selector (epoll, poll, select) under the reactor.
pub use tarn_selector as selector;

/// Sockets: TCP, UDP and Unix domain.
pub mod net {
    pub use tarn_net::*;
}

/// Async I/O traits (`AsyncRead`, `AsyncWrite`, ...), their extension
/// traits (`AsyncReadExt::read`, `AsyncWriteExt::write_all`, ...) and
/// helpers (`BufReader`, `copy`, ...), from `futures-util`.
pub mod io {
    pub use futures_util::io::*;
}

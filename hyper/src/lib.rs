//! What hyper 1.x needs from a runtime, on tarn.
//!
//! hyper brings HTTP/1.1 and HTTP/2 but no I/O, timers or tasks of its
//! own; this crate gives it tarn's, one concern per file:
//! - [`TarnIo`]: tarn's sockets (or any futures-io stream, a TLS one
//!   included) as hyper's `rt::Read`/`rt::Write`, and hyper's upgraded
//!   connections back as futures-io (for WebSockets);
//! - [`TarnTimer`]: hyper's timer (header read timeouts, HTTP/2 pings);
//! - [`TarnExecutor`]: hyper's executor (HTTP/2 streams become tarn tasks;
//!   they need not be `Send`);
//! - [`Server`]: an accept loop, a task per connection, HTTP/1.1 and
//!   HTTP/2 on one port, graceful shutdown;
//! - [`client`]: connect and handshake, HTTP/1.1 or HTTP/2.
//!
//! It is the one dependency to add beside `tarn` and `hyper`:
//!
//! ```toml
//! [dependencies]
//! tarn = "0.1"
//! tarn-hyper = "0.1"
//! hyper = { version = "1", features = ["server", "http1", "http2"] }
//! ```
//!
//! A complete server, stopped here after one request:
//!
//! ```
//! use std::convert::Infallible;
//! use hyper::{body::Incoming, Request, Response};
//! use tarn::net::TcpListener;
//! use tarn::prelude::*;
//!
//! tarn::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let (done, stop) = tarn::channel::oneshot::channel::<()>();
//!     let service = hyper::service::service_fn(|_: Request<Incoming>| async {
//!         Ok::<_, Infallible>(Response::new("Hello, World!".to_string()))
//!     });
//!     let server = tarn::spawn(async move {
//!         tarn_hyper::Server::new().serve(listener, service, stop).await
//!     });
//!
//!     let mut stream = tarn::net::TcpStream::connect(addr).await?;
//!     stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await?;
//!     let mut response = String::new();
//!     stream.read_to_string(&mut response).await?;
//!     assert!(response.starts_with("HTTP/1.1 200 OK"));
//!     assert!(response.ends_with("Hello, World!"));
//!
//!     drop(done);
//!     let served = server.await.unwrap()?;
//!     assert_eq!(served.accepted, 1);
//!     std::io::Result::Ok(())
//! })?;
//! # std::io::Result::Ok(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod client;
mod executor;
mod io;
mod server;
mod timer;

pub use executor::TarnExecutor;
pub use io::TarnIo;
pub use server::{Accept, Served, Server};
pub use timer::TarnTimer;

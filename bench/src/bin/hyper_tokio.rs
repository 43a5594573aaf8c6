//! hyper on tokio, written line for line like `hyper_tarn.rs`: hyper-util's
//! auto builder (HTTP/1.1 and prior-knowledge h2c on one port, the builder
//! of `hyper_peer.rs`), a bare accept loop, one task per connection on a
//! `current_thread` runtime's `LocalSet`, hyper's HTTP/2 streams spawned
//! onto it too (`spawn_local`, as tarn's executor spawns them). The lines
//! that differ are the `use` lines naming the runtime's types, the
//! executor below (hyper-util's `TokioExecutor` spawns onto the `Send`
//! scheduler), and `run` and `listen` at the bottom. Listens on argv[1]
//! (default 127.0.0.1:8080).

// `Executor::default()` and `Timer::default()` in both files keep them
// alike: tokio's timer type is `#[non_exhaustive]`, so it has no literal.
#![allow(clippy::default_constructed_unit_structs)]

use std::future::Future;
use std::io;
use std::rc::Rc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo as Io, TokioTimer as Timer};
use tokio::net::TcpListener;
use tokio::task::spawn_local as spawn;

#[path = "../hyper_peer.rs"]
mod hyper_peer;
#[path = "../peer.rs"]
mod peer;

fn main() -> io::Result<()> {
    let addr = hyper_peer::listen_addr();
    run(async {
        let listener = listen(&addr).await?;
        println!("hyper_tokio: listening on {}", listener.local_addr()?);
        let builder = Rc::new(hyper_peer::builder(Executor::default(), Timer::default()));
        loop {
            let (stream, _) = listener.accept().await?;
            let builder = Rc::clone(&builder);
            // The handle is dropped: the task runs detached.
            drop(spawn(async move {
                let service = service_fn(hyper_peer::hello);
                let conn = builder.serve_connection_with_upgrades(Io::new(stream), service);
                let _ = conn.await;
            }));
        }
    })
}

/// Runs `main` on a `current_thread` runtime (one thread) with its I/O
/// driver and timer, inside a `LocalSet` so that tasks need not be `Send`.
fn run<T>(main: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    tokio::task::LocalSet::new().block_on(&rt, main)
}

/// A listener bound as tarn's is: `SO_REUSEADDR`, backlog 1024, and
/// `TCP_NODELAY`, which the streams it accepts inherit (`peer.rs`).
async fn listen(addr: &str) -> io::Result<TcpListener> {
    TcpListener::from_std(peer::std_listener(addr)?)
}

/// hyper's executor on the `LocalSet`: each future hyper hands it (an
/// HTTP/2 stream) becomes a local task, as `tarn_hyper::TarnExecutor`
/// makes it a task on tarn's executor.
#[derive(Clone, Copy, Debug, Default)]
struct Executor;

impl<F: Future + 'static> hyper::rt::Executor<F> for Executor {
    fn execute(&self, future: F) {
        drop(spawn(future));
    }
}

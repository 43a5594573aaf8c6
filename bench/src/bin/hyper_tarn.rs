//! hyper on tarn, written line for line like `hyper_tokio.rs`: hyper-util's
//! auto builder (HTTP/1.1 and prior-knowledge h2c on one port, the builder
//! of `hyper_peer.rs`), a bare accept loop, one task per connection on
//! tarn's single-threaded executor, hyper's HTTP/2 streams spawned onto it
//! too. The lines that differ are the `use` lines naming the runtime's
//! types, and `run` and `listen` at the bottom. Listens on argv[1]
//! (default 127.0.0.1:8080).

// `Executor::default()` and `Timer::default()` in both files keep them
// alike: tokio's timer type is `#[non_exhaustive]`, so it has no literal.
#![allow(clippy::default_constructed_unit_structs)]

use std::future::Future;
use std::io;
use std::rc::Rc;

use hyper::service::service_fn;
use tarn::net::TcpListener;
use tarn::spawn;
use tarn_hyper::{TarnExecutor as Executor, TarnIo as Io, TarnTimer as Timer};

#[path = "../hyper_peer.rs"]
mod hyper_peer;

fn main() -> io::Result<()> {
    let addr = hyper_peer::listen_addr();
    run(async {
        let listener = listen(&addr).await?;
        println!("hyper_tarn: listening on {}", listener.local_addr()?);
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

/// Runs `main` on tarn's executor (one thread).
fn run<T>(main: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tarn::block_on(main)
}

/// tarn's listener: `SO_REUSEADDR`, backlog 1024, and accepted streams
/// with `TCP_NODELAY`.
async fn listen(addr: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

//! `hyper_tarn` with tarn-hyper's own `Server` in place of the bare accept
//! loop: what an application on tarn would write. Beside `hyper_tarn` it
//! shows what the server's bookkeeping costs (a shutdown channel and an
//! entry in a table of open connections per connection, and a poll of the
//! shutdown signal with each poll of a connection). Same service, same
//! builder settings (`Server::new()` is what `hyper_peer::builder` copies).
//! Listens on argv[1] (default 127.0.0.1:8080).

use std::io;

use hyper::service::service_fn;
use tarn::net::TcpListener;

#[path = "../hyper_peer.rs"]
mod hyper_peer;

fn main() -> io::Result<()> {
    let addr = hyper_peer::listen_addr();
    tarn::block_on(async {
        let listener = TcpListener::bind(addr.as_str()).await?;
        println!("hyper_tarn_server: listening on {}", listener.local_addr()?);
        let service = service_fn(hyper_peer::hello);
        // A bench server never shuts down: SIGTERM ends it.
        let shutdown = std::future::pending::<()>();
        tarn_hyper::Server::new()
            .serve(listener, service, shutdown)
            .await
            .map(drop)
    })
}

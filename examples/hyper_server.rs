//! hyper on tarn: HTTP/1.1 and HTTP/2 (prior-knowledge h2c) on one port,
//! graceful shutdown on SIGINT or SIGTERM.
//!
//! ```text
//! cargo run --release --example hyper_server 127.0.0.1:8080
//! curl http://127.0.0.1:8080/
//! curl --http2-prior-knowledge http://127.0.0.1:8080/
//! curl --data-binary @big.file http://127.0.0.1:8080/echo | sha256sum
//! curl 'http://127.0.0.1:8080/slow?ms=2000' & kill -TERM <pid>   # finishes, then exits 0
//! ```
//!
//! Routes are in `shared/routes.rs`. On a signal the server stops
//! accepting, lets requests in flight finish (up to 10 s), and exits 0;
//! the signals' default actions come back then, so a second Ctrl-C
//! during those 10 s is not swallowed: it kills the process.

#[path = "shared/routes.rs"]
mod routes;

use std::io;
use std::time::Duration;

use tarn::net::TcpListener;
use tarn::signal::{Signal, Signals};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    tarn::block_on(async {
        let listener = TcpListener::bind(addr.as_str()).await?;
        let mut signals = Signals::new([Signal::INT, Signal::TERM])?;
        println!("listening on {}", listener.local_addr()?);
        let mut server = tarn_hyper::Server::new().grace_period(Duration::from_secs(10));
        server
            .http()
            .http1()
            .header_read_timeout(Duration::from_secs(10));
        let shutdown = async move {
            let signal = signals.recv().await;
            // From here a second signal takes its default action.
            drop(signals);
            eprintln!("{signal}: shutting down");
        };
        let service = hyper::service::service_fn(routes::route);
        let served = server.serve(listener, service, shutdown).await?;
        eprintln!("{served}");
        Ok(())
    })
}

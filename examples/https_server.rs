//! hyper over TLS on tarn: the routes of `hyper_server`, HTTP/2 or
//! HTTP/1.1 as ALPN decides, with a self-signed certificate made at start.
//!
//! ```text
//! cargo run --release --example https_server 127.0.0.1:8443 --cert-out /tmp/tarn.pem
//! curl --cacert /tmp/tarn.pem https://localhost:8443/
//! curl --cacert /tmp/tarn.pem --http1.1 https://127.0.0.1:8443/
//! ```
//!
//! The TLS handshake runs in each connection's own task (rustls through
//! futures-rustls), so a slow client delays nobody else. SIGINT or
//! SIGTERM: stop accepting, finish requests in flight (up to 10 s), exit 0.

#[path = "shared/routes.rs"]
mod routes;
#[path = "shared/tls.rs"]
mod tls;

use std::io;
use std::time::Duration;

use tarn::net::TcpListener;
use tarn::signal::{Signal, Signals};

fn main() -> io::Result<()> {
    let (addr, cert_out) = tls::args("https_server")?;
    tarn::block_on(async {
        let acceptor = tls::acceptor(&cert_out, &[b"h2", b"http/1.1"])?;
        let listener = TcpListener::bind(addr.as_str()).await?;
        let mut signals = Signals::new([Signal::INT, Signal::TERM])?;
        println!(
            "listening on {} (certificate in {cert_out})",
            listener.local_addr()?
        );
        let shutdown = async move {
            let signal = signals.recv().await;
            drop(signals);
            eprintln!("{signal}: shutting down");
        };
        let handshake = move |tcp| acceptor.accept(tcp);
        let service = hyper::service::service_fn(routes::route);
        let served = tarn_hyper::Server::new()
            .grace_period(Duration::from_secs(10))
            .serve_with(listener, handshake, service, shutdown)
            .await?;
        eprintln!("{served}");
        Ok(())
    })
}

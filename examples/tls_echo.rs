//! A TLS echo server on tarn (rustls through futures-rustls), with a
//! self-signed certificate made at start.
//!
//! ```text
//! cargo run --release --example tls_echo 127.0.0.1:7443 --cert-out /tmp/tarn.pem
//! openssl s_client -connect 127.0.0.1:7443 -CAfile /tmp/tarn.pem -quiet
//! ```
//!
//! SIGINT or SIGTERM: stop accepting, close each connection after the
//! message in hand with a TLS close_notify (up to 10 s), exit 0. A client
//! has 10 s to finish its handshake.

#[path = "shared/tls.rs"]
mod tls;
#[path = "shared/tracked.rs"]
mod tracked;

use std::io;
use std::time::Duration;

use futures_rustls::TlsAcceptor;
use tarn::future::Either;
use tarn::net::{TcpListener, TcpStream};
use tarn::prelude::*;
use tarn::signal::{Signal, Signals};

fn main() -> io::Result<()> {
    let (addr, cert_out) = tls::args("tls_echo")?;
    tarn::block_on(async {
        let acceptor = tls::acceptor(&cert_out, &[])?;
        let listener = TcpListener::bind(addr.as_str()).await?;
        let mut signals = Signals::new([Signal::INT, Signal::TERM])?;
        println!(
            "listening on {} (certificate in {cert_out})",
            listener.local_addr()?
        );
        let mut connections = tracked::Tracked::default();
        loop {
            match tarn::future::select(Box::pin(listener.accept()), Box::pin(signals.recv())).await
            {
                Either::Left((Ok((tcp, _)), _)) => {
                    let acceptor = acceptor.clone();
                    connections.spawn(|stop| echo(acceptor, tcp, stop))
                }
                Either::Left((Err(e), _)) => eprintln!("accept: {e}"),
                Either::Right((signal, _)) => {
                    eprintln!("{signal}: shutting down");
                    break;
                }
            }
        }
        drop((listener, signals));
        let dropped = connections.finish(Duration::from_secs(10)).await;
        eprintln!("{dropped} connections dropped at shutdown");
        Ok(())
    })
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn echo(acceptor: TlsAcceptor, tcp: TcpStream, mut stop: tracked::Stop) {
    let Ok(Ok(mut tls)) = tarn::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
        return;
    };
    let mut buf = vec![0; 16 * 1024];
    // Until the peer closes, an error, or shutdown (then close_notify).
    while let Either::Left((Ok(n @ 1..), _)) =
        tarn::future::select(tls.read(&mut buf), &mut stop).await
    {
        if tls.write_all(&buf[..n]).await.is_err() || tls.flush().await.is_err() {
            break;
        }
    }
    let _ = tls.close().await;
}

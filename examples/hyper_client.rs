//! A hyper client on tarn: GET a URL over HTTP/1.1 (or HTTP/2 with
//! prior knowledge, `--http2`), the body to stdout.
//!
//! ```text
//! cargo run --example hyper_client http://127.0.0.1:8080/
//! cargo run --example hyper_client -- --http2 http://127.0.0.1:8080/
//! ```
//!
//! Exits 0 on a 2xx status, 1 on any other status, 2 on a connection
//! error or a timeout (10 s, or `--timeout SECS`, for the whole exchange
//! from the name lookup to the body's last byte), with one line on stderr
//! naming the address.

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};

fn main() -> ExitCode {
    let usage = "usage: hyper_client [--http2] [--timeout SECS] http://HOST:PORT/PATH";
    let mut http2 = false;
    let mut limit = Duration::from_secs(10);
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--http2" => http2 = true,
            "--timeout" => match args.next().and_then(|secs| secs.parse().ok()) {
                Some(secs) => limit = Duration::from_secs_f64(secs),
                None => {
                    eprintln!("hyper_client: --timeout takes a number of seconds; {usage}");
                    return ExitCode::from(2);
                }
            },
            _ => url = Some(arg),
        }
    }
    let Some(url) = url else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    match tarn::block_on(get(&url, http2, limit)) {
        Ok(status) if status.is_success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("hyper_client: {url}: {status}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("hyper_client: {e}");
            ExitCode::from(2)
        }
    }
}

async fn get(url: &str, http2: bool, limit: Duration) -> io::Result<hyper::StatusCode> {
    let uri: Uri = url
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        let e = format!("{url}: only http:// URLs (no TLS in this client)");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
    }
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let request = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // The limit covers everything: the name lookup, connect, request and
    // the whole body.
    let exchange = async {
        let addr = resolve(host, port).await?;
        let response = if http2 {
            let mut sender = tarn_hyper::client::http2(addr).await?;
            sender.send_request(request).await
        } else {
            let mut sender = tarn_hyper::client::http1(addr).await?;
            sender.send_request(request).await
        };
        let response = response.map_err(|e| io::Error::other(format!("{addr}: {e}")))?;
        print_body(response, addr).await
    };
    tarn::timeout(limit, exchange).await.map_err(|_| {
        let e = format!("{host}:{port}: timed out after {limit:?}");
        io::Error::new(io::ErrorKind::TimedOut, e)
    })?
}

async fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let name = format!("{host}:{port}");
    let lookup = name.clone();
    tarn::unblock(move || lookup.to_socket_addrs())
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name}: no address")))
}

async fn print_body(
    response: Response<Incoming>,
    addr: SocketAddr,
) -> io::Result<hyper::StatusCode> {
    let status = response.status();
    let mut body = response.into_body();
    let mut stdout = io::stdout().lock();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| io::Error::other(format!("{addr}: {e}")))?;
        if let Some(data) = frame.data_ref() {
            stdout
                .write_all(data)
                .map_err(|e| io::Error::new(e.kind(), format!("writing {addr}'s body: {e}")))?;
        }
    }
    stdout.flush()?;
    Ok(status)
}

//! What `hyper_tarn`, `hyper_tarn_server` and `hyper_tokio` share, so that
//! the runtime underneath is the only difference between them: the
//! service, and hyper's connection builder with the settings
//! `tarn_hyper::Server::new()` gives it (HTTP/1.1 and HTTP/2 on one port, a
//! timer for both, a 30 s header read timeout). Each binary includes this
//! file with `#[path]`.

#![allow(dead_code)] // `hyper_tarn_server` takes its builder from tarn-hyper

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::server::conn::auto;

/// The body of `GET /`.
pub const HELLO: &[u8] = b"Hello, World!";

/// HTTP/1's header read timeout, as `tarn_hyper::Server::new()` sets it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /` answers 200 "Hello, World!"; anything else 404.
pub async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() == Method::GET && request.uri().path() == "/" {
        return Ok(Response::new(Full::new(Bytes::from_static(HELLO))));
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    Ok(response)
}

/// hyper's builder for both protocols with `executor` (HTTP/2 streams
/// become its tasks) and `timer` set as `tarn_hyper::Server::new()` sets
/// tarn's.
pub fn builder<E, T>(executor: E, timer: T) -> auto::Builder<E>
where
    T: hyper::rt::Timer + Clone + Send + Sync + 'static,
{
    let mut builder = auto::Builder::new(executor);
    builder
        .http1()
        .timer(timer.clone())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(timer);
    builder
}

/// The listen address: argv[1], or 127.0.0.1:8080.
pub fn listen_addr() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
}

//! The routes `hyper_server` and `https_server` share.
//!
//! - `GET /` → `200 Hello, World!`
//! - `POST /echo` → `200`, the request body streamed back as it arrives
//!   (frame by frame: a 100 MiB body never sits in memory whole)
//! - `GET /slow?ms=N` → `200 done`, after N milliseconds
//! - anything else → `404`

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

/// The response body: a fixed text or the request's own body.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// Answers one request.
pub async fn route(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, "Hello, World!"),
        (&Method::POST, "/echo") => Response::new(request.into_body().boxed_unsync()),
        (&Method::GET, "/slow") => match slow_ms(request.uri().query()) {
            Some(ms) => {
                tarn::Timer::after(Duration::from_millis(ms)).await;
                text(StatusCode::OK, "done")
            }
            None => text(StatusCode::BAD_REQUEST, "expected /slow?ms=N\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

fn slow_ms(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))?
        .parse()
        .ok()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let body = Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

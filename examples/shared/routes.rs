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
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

/// The response body: a fixed text or the request's own body.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// Answers one request.
pub async fn route(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, "Hello, World!"),
        (&Method::POST, "/echo") => echo(request.into_body()).await,
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

/// The request body back, frame by frame. The first frame is awaited
/// before the response head goes out: reading the body is what makes hyper
/// answer a client's `Expect: 100-continue`, and a 200 sent first would
/// leave curl waiting a second before it sends the body.
async fn echo(mut body: Incoming) -> Response<Body> {
    let first = body.frame().await.transpose();
    let first = match first {
        Ok(first) => first,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
    };
    let first = futures::stream::iter(first.map(Ok));
    let rest = http_body_util::BodyStream::new(body);
    Response::new(StreamBody::new(first.chain(rest)).boxed_unsync())
}

fn slow_ms(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))?
        .parse()
        .ok()
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

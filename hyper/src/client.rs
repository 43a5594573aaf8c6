//! Client helpers: connect to an address and do hyper's handshake over a
//! tarn [`TcpStream`].

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;

use hyper::body::Body;
use hyper::client::conn::{http1, http2};
use tarn::net::TcpStream;

use crate::{TarnExecutor, TarnIo, TarnTimer};

/// Connects to `addr` and opens an HTTP/1.1 connection on it; the
/// connection runs as a task on the calling thread's tarn executor, and
/// ends when the returned sender is dropped.
///
/// Errors name the address: a refused connection is
/// `ConnectionRefused` ("connecting to 127.0.0.1:9: connection refused").
///
/// ```no_run
/// use http_body_util::{BodyExt, Empty};
/// use hyper::body::Bytes;
///
/// # fn main() -> std::io::Result<()> {
/// tarn::block_on(async {
///     let mut sender = tarn_hyper::client::http1::<Empty<Bytes>>("127.0.0.1:8080".parse().unwrap()).await?;
///     let request = hyper::Request::get("/").header("host", "127.0.0.1").body(Empty::new()).unwrap();
///     let response = sender.send_request(request).await.map_err(std::io::Error::other)?;
///     let body = response.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
///     println!("{}", String::from_utf8_lossy(&body));
///     Ok(())
/// })
/// # }
/// ```
pub async fn http1<B>(addr: SocketAddr) -> io::Result<http1::SendRequest<B>>
where
    B: Body + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let io = connect(addr).await?;
    let (sender, conn) = http1::handshake(io).await.map_err(|e| named(addr, e))?;
    drop(tarn::spawn(conn));
    Ok(sender)
}

/// [`http1`](fn@http1), for HTTP/2 with prior knowledge (h2c: no TLS, no upgrade).
pub async fn http2<B>(addr: SocketAddr) -> io::Result<http2::SendRequest<B>>
where
    B: Body + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let io = connect(addr).await?;
    let (sender, conn) = http2::Builder::new(TarnExecutor)
        .timer(TarnTimer)
        .handshake(io)
        .await
        .map_err(|e| named(addr, e))?;
    drop(tarn::spawn(conn));
    Ok(sender)
}

async fn connect(addr: SocketAddr) -> io::Result<TarnIo<TcpStream>> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("connecting to {addr}: {e}")))?;
    Ok(TarnIo::new(stream))
}

fn named(addr: SocketAddr, e: hyper::Error) -> io::Error {
    io::Error::other(format!("HTTP handshake with {addr}: {e}"))
}

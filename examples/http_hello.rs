//! An HTTP/1.1 server that answers every request with `Hello, World!`.
//!
//! This is the server tarn is benchmarked with against tokio and smol, so
//! it does only what that needs, with no allocation per request: keep-alive
//! connections, pipelined requests (their responses leave in one write),
//! requests split across reads, `Content-Length` bodies (skipped) and
//! `Connection: close`. Chunked request bodies, HTTP/1.0 keep-alive and
//! everything else are left out: it is not an HTTP server to build on.
//!
//! ```text
//! cargo run --release --example http_hello          # listens on 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/
//! wrk -t2 -c100 -d10s http://127.0.0.1:8080/
//! ```

use std::io;

use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The per-connection input buffer starts this large...
const BUF_START: usize = 4096;
/// ...and doubles while a request head does not fit, up to this size (as
/// real servers allow: nginx 4 x 8 KiB, Node 16 KiB); a larger head gets 431.
const BUF_MAX: usize = 64 * 1024;

/// What the server needs to know of a request head.
struct Head {
    body_len: usize,
    close: bool,
}

/// Where the head at the start of `buf` ends (the index of its "\r\n\r\n").
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Reads `Content-Length` and `Connection` from a head; `None` if malformed.
fn parse_head(head: &[u8]) -> Option<Head> {
    let mut parsed = Head {
        body_len: 0,
        close: false,
    };
    // The request line first, then "Name: value" lines.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (trim(&line[..colon]), trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            parsed.body_len = std::str::from_utf8(value).ok()?.parse().ok()?;
        } else if name.eq_ignore_ascii_case(b"connection") {
            parsed.close = value.eq_ignore_ascii_case(b"close");
        }
    }
    Some(parsed)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

async fn serve(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = vec![0; BUF_START];
    let mut filled = 0; // buf[..filled] is input not yet consumed
    let mut searched: usize = 0; // buf[..searched] holds no head end (so far)
    let mut body_left = 0; // body bytes of the last request still to skip
    let mut out = Vec::with_capacity(16 * RESPONSE.len());
    loop {
        if filled == buf.len() {
            if buf.len() == BUF_MAX {
                return conn.write_all(TOO_LARGE).await;
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = conn.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;

        // Answer every complete request head in the buffer.
        let mut start = 0;
        let mut close = false;
        loop {
            let skip = body_left.min(filled - start);
            start += skip;
            body_left -= skip;
            if body_left > 0 {
                break;
            }
            // Bytes already searched hold no head end: a client that
            // sends its head a byte at a time costs one pass, not one per read.
            let from = searched.saturating_sub(3).max(start);
            let Some(end) = head_end(&buf[from..filled]).map(|i| from - start + i) else {
                searched = filled;
                break;
            };
            let head = parse_head(&buf[start..start + end]);
            start += end + 4;
            searched = start;
            match head {
                Some(head) => {
                    out.extend_from_slice(RESPONSE);
                    body_left = head.body_len;
                    close = head.close;
                }
                None => {
                    out.extend_from_slice(BAD_REQUEST);
                    close = true;
                }
            }
            if close {
                break;
            }
        }
        if !out.is_empty() {
            conn.write_all(&out).await?;
            out.clear();
        }
        if close {
            return Ok(());
        }

        // Keep the start of an incomplete request for the next read.
        buf.copy_within(start..filled, 0);
        filled -= start;
        searched = searched.saturating_sub(start);
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    tarn::block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("http_hello: listening on {}", listener.local_addr()?);
        loop {
            // Accepted streams have TCP_NODELAY on: responses leave at once.
            let (conn, _) = listener.accept().await?;
            tarn::spawn(async move {
                // A client that goes away mid-request is not worth a log line.
                let _ = serve(conn).await;
            })
            .detach();
        }
    })
}

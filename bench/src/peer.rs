//! What the peer servers (`tokio_http`, `smol_http`, `tokio_echo`,
//! `smol_echo`) share with tarn's examples, so that the only difference
//! between a peer and `examples/http_hello.rs` or `examples/echo.rs` is the
//! runtime underneath.
//!
//! The HTTP parsing below is the example's, line for line: the same
//! response bytes, the same head scan, the same per-read pipelining (every
//! complete head in the buffer is answered, and the answers leave in one
//! write). Each binary includes this file with `#[path]`, so the code is
//! compiled into the binary exactly as the example's is into its own.

#![allow(dead_code)] // the echo servers use only the listener helper

use std::io;
use std::os::fd::AsRawFd;

/// The response to every well-formed request.
pub const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
/// The response to a malformed head; the connection then closes.
pub const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The response to a head that does not fit in [`BUF_MAX`].
pub const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The echo servers' buffer, and the HTTP servers' input buffer to start
/// with.
pub const BUF_SIZE: usize = 4096;
/// How large the HTTP input buffer grows while a request head does not fit.
pub const BUF_MAX: usize = 64 * 1024;

/// The listen backlog tarn's `TcpListener::bind` uses.
pub const BACKLOG: i32 = 1024;

/// The listen address: argv[1], or `default`.
pub fn listen_addr(default: &str) -> String {
    std::env::args().nth(1).unwrap_or_else(|| default.into())
}

/// The number of executor threads: argv[2], or one per core.
pub fn threads() -> io::Result<usize> {
    match std::env::args().nth(2) {
        Some(n) => n
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("threads: {e}"))),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// A non-blocking std listener bound like tarn's: `SO_REUSEADDR` (std sets
/// it on Unix), a backlog of [`BACKLOG`] (std asks for 128; Linux lets a
/// second `listen` call change it), and `TCP_NODELAY`, which the streams it
/// accepts inherit (tarn's accepted streams have it on by default, through
/// the same inheritance).
pub fn std_listener(addr: &str) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    let fd = listener.as_raw_fd();
    // SAFETY: the fd is a valid, bound socket owned by `listener`, which
    // outlives the call.
    if unsafe { libc::listen(fd, BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let on: libc::c_int = 1;
    // SAFETY: as above; the value points to a live c_int of the size given.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

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

/// The per-connection state between reads: the example's locals, kept in
/// one place so each peer's loop is only its runtime's read and write.
pub struct Conn {
    /// Input; `buf[..filled]` is not yet consumed. Starts at [`BUF_SIZE`]
    /// and doubles, up to [`BUF_MAX`], while a head does not fit.
    buf: Vec<u8>,
    /// How much of `buf` holds input.
    filled: usize,
    /// `buf[..searched]` holds no head end (so far).
    searched: usize,
    /// Body bytes of the last request still to skip.
    body_left: usize,
    /// Responses to send after this read, in one write.
    pub out: Vec<u8>,
}

impl Conn {
    /// A connection with nothing read yet.
    pub fn new() -> Conn {
        Conn {
            buf: vec![0; BUF_SIZE],
            filled: 0,
            searched: 0,
            body_left: 0,
            out: Vec::with_capacity(16 * RESPONSE.len()),
        }
    }

    /// Where the next read goes, the buffer grown if it is full; `None`
    /// when it is full at [`BUF_MAX`] (the caller writes [`TOO_LARGE`]).
    pub fn spare(&mut self) -> Option<&mut [u8]> {
        if self.filled == self.buf.len() {
            if self.buf.len() == BUF_MAX {
                return None;
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        Some(&mut self.buf[self.filled..])
    }

    /// Answers every complete request head in the buffer after `n` more
    /// bytes were read into [`spare`](Self::spare): the responses go to
    /// `out` (the caller writes them, if any, then clears it). Returns
    /// whether the connection is to close, and how much of `buf` was
    /// consumed.
    pub fn answer(&mut self, n: usize) -> (bool, usize) {
        self.filled += n;
        let filled = self.filled;
        let mut start = 0;
        let mut close = false;
        loop {
            let skip = self.body_left.min(filled - start);
            start += skip;
            self.body_left -= skip;
            if self.body_left > 0 {
                break;
            }
            // Bytes already searched hold no head end: a client that
            // sends its head a byte at a time costs one pass, not one per read.
            let from = self.searched.saturating_sub(3).max(start);
            let Some(end) = head_end(&self.buf[from..filled]).map(|i| from - start + i) else {
                self.searched = filled;
                break;
            };
            let head = parse_head(&self.buf[start..start + end]);
            start += end + 4;
            self.searched = start;
            match head {
                Some(head) => {
                    self.out.extend_from_slice(RESPONSE);
                    self.body_left = head.body_len;
                    close = head.close;
                }
                None => {
                    self.out.extend_from_slice(BAD_REQUEST);
                    close = true;
                }
            }
            if close {
                break;
            }
        }
        (close, start)
    }

    /// After the responses are written: keeps the start of an incomplete
    /// request for the next read, consumed input being `buf[..start]`.
    pub fn keep_rest(&mut self, start: usize) {
        self.buf.copy_within(start..self.filled, 0);
        self.filled -= start;
        self.searched = self.searched.saturating_sub(start);
    }
}

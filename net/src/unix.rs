//! Unix-domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`].
//!
//! They mirror the TCP types, and the stream types share their
//! implementation (`stream.rs`, `accept.rs`): every operation tries the
//! syscall first and waits for readiness only on `WouldBlock`, stream
//! writes use `MSG_NOSIGNAL`, and accept backs off while the process is out
//! of fds. Paths name files; on Linux a path that starts with a NUL byte
//! names a socket in the abstract namespace instead (no file, gone with the
//! last socket). Dropping a bound socket does not remove its file.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::task::{Context, Poll};
use std::time::Duration;

use tarn_reactor::{Async, Timer};

use crate::accept::{sealed::Accept, AcceptState};
use crate::socket::DEFAULT_BACKLOG;
use crate::sys;

/// The first and the longest pause while the other side's queue is full
/// and no readiness event will say when it has room: `UnixStream::connect`
/// to a listener whose backlog is full, `UnixDatagram::send_to` a receiver
/// whose queue is full.
const FULL_PAUSE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(100));

/// A Unix stream socket listening for connections.
///
/// ```
/// use tarn_net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("tarn-doc-listener-{}.sock", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// tarn_executor::block_on(async {
///     let listener = UnixListener::bind(&path)?;
///     let connecting = tarn_executor::spawn(UnixStream::connect(path.clone()));
///     let (server_side, peer) = listener.accept().await?;
///     assert!(peer.is_unnamed());
///     # drop((server_side, connecting.await.unwrap()?));
///     std::io::Result::Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # std::io::Result::Ok(())
/// ```
pub struct UnixListener {
    io: Async<std::os::unix::net::UnixListener>,
}

listener_socket!(
    UnixListener,
    std::os::unix::net::UnixListener,
    UnixStream,
    SocketAddr
);

impl UnixListener {
    /// Binds to `path` and listens, with a backlog of [`DEFAULT_BACKLOG`].
    ///
    /// The socket file is created here and stays after the listener is
    /// dropped; remove it yourself (binding fails while it exists).
    ///
    /// # Errors
    ///
    /// The error names the path ("cannot bind to /run/app.sock: Address
    /// already in use").
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let fd = bind(path, libc::SOCK_STREAM)?;
        sys::listen(&fd, DEFAULT_BACKLOG)?;
        Ok(UnixListener {
            io: Async::new_nonblocking(std::os::unix::net::UnixListener::from(fd))?,
        })
    }

    /// Adopts a std listener (made non-blocking here).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: Async::new(listener)?,
        })
    }
}

impl Accept for UnixListener {
    type Stream = UnixStream;
    type Addr = SocketAddr;

    fn poll_accept(
        &self,
        state: &mut AcceptState,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let fd = self.io.as_raw_fd();
        state.poll(
            cx,
            |slot, cx| self.io.poll_read_in(slot, cx, || sys::accept(fd)),
            |(conn, addr)| Ok((UnixStream::from_nonblocking(conn)?, addr.unix()?)),
        )
    }
}

/// A new non-blocking, close-on-exec Unix socket of type `ty` bound to `path`.
fn bind(path: &Path, ty: libc::c_int) -> io::Result<OwnedFd> {
    let named = |e: io::Error| with_path(e, "bind to", path);
    let addr = sys::UnixAddr::new(path).map_err(named)?;
    let fd = sys::socket(libc::AF_UNIX, ty)?;
    sys::bind_unix(&fd, &addr).map_err(named)?;
    Ok(fd)
}

/// `e`, with a message that names what was tried on which path.
fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    use std::os::unix::ffi::OsStrExt;

    let shown = match path.as_os_str().as_bytes() {
        [0, name @ ..] => format!("abstract name @{}", String::from_utf8_lossy(name)),
        _ => path.display().to_string(),
    };
    io::Error::new(e.kind(), format!("cannot {what} {shown}: {e}"))
}

/// A Unix stream connection.
///
/// Reads and writes go straight to the syscall and wait for readiness only
/// on `WouldBlock`. Writes use `MSG_NOSIGNAL`: writing to a closed peer
/// returns `BrokenPipe` and never raises `SIGPIPE`. `poll_close` shuts the
/// write direction down (the peer reads end of stream).
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use tarn_net::UnixStream;
///
/// tarn_executor::block_on(async {
///     let (mut a, mut b) = UnixStream::pair()?;
///     a.write_all(b"hello").await?;
///     a.close().await?;
///     let mut got = Vec::new();
///     b.read_to_end(&mut got).await?;
///     assert_eq!(got, b"hello");
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct UnixStream {
    io: Async<std::os::unix::net::UnixStream>,
}

stream_socket!(UnixStream, std::os::unix::net::UnixStream, SocketAddr);

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// While the listener's backlog is full (the kernel says `WouldBlock`
    /// and offers no readiness event to wait for) it retries on a timer,
    /// 1 ms doubling up to 100 ms, for as long as it takes; bound it with
    /// [`tarn_reactor::timeout`] if need be.
    ///
    /// # Errors
    ///
    /// The error names the path ("cannot connect to /run/app.sock: No such
    /// file or directory").
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let named = |e: io::Error| with_path(e, "connect to", path);
        let addr = sys::UnixAddr::new(path).map_err(named)?;
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
        let mut pause = FULL_PAUSE.0;
        loop {
            match sys::connect_unix(fd.as_raw_fd(), &addr) {
                Ok(true) => return UnixStream::from_nonblocking(fd),
                Ok(false) => {
                    let stream = UnixStream::from_nonblocking(fd)?;
                    stream.io.writable().await?;
                    if let Some(e) = sys::take_error(stream.as_raw_fd())? {
                        return Err(named(e));
                    }
                    return Ok(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Timer::after(pause).await;
                    pause = (pause * 2).min(FULL_PAUSE.1);
                }
                Err(e) => return Err(named(e)),
            }
        }
    }

    /// A connected pair of streams (`socketpair`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = sys::socketpair(libc::SOCK_STREAM)?;
        Ok((
            UnixStream::from_nonblocking(a)?,
            UnixStream::from_nonblocking(b)?,
        ))
    }
}

/// A Unix datagram socket.
///
/// Messages keep their boundaries and, unlike UDP's, are never lost or
/// reordered; a full receive queue makes the sender wait.
///
/// ```
/// use tarn_net::UnixDatagram;
///
/// tarn_executor::block_on(async {
///     let (a, b) = UnixDatagram::pair()?;
///     a.send(b"one").await?;
///     a.send(b"two").await?;
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"one");
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct UnixDatagram {
    io: Async<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to `path`, to receive from anyone who sends there.
    /// The file stays after the socket is dropped.
    ///
    /// # Errors
    ///
    /// The error names the path.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        UnixDatagram::from_nonblocking(bind(path.as_ref(), libc::SOCK_DGRAM)?)
    }

    /// A socket bound to no address: it can send, and receive replies only
    /// once [`connect`](Self::connect)ed (an unbound sender cannot be
    /// answered).
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_nonblocking(sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM)?)
    }

    /// A connected pair of sockets (`socketpair`).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = sys::socketpair(libc::SOCK_DGRAM)?;
        Ok((
            UnixDatagram::from_nonblocking(a)?,
            UnixDatagram::from_nonblocking(b)?,
        ))
    }

    fn from_nonblocking(fd: OwnedFd) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: Async::new_nonblocking(std::os::unix::net::UnixDatagram::from(fd))?,
        })
    }

    /// Sets the peer to the socket at `path`: [`send`](Self::send) goes
    /// there, and only its messages are received.
    ///
    /// # Errors
    ///
    /// The error names the path.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let named = |e: io::Error| with_path(e, "connect to", path);
        let addr = sys::UnixAddr::new(path).map_err(named)?;
        // Datagram connects complete at once: there is no handshake.
        sys::connect_unix(self.io.as_raw_fd(), &addr)
            .map(drop)
            .map_err(named)
    }

    /// Sends `buf` as one message to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let fd = self.io.as_raw_fd();
        self.io.write_with(|_| sys::send(fd, buf)).await
    }

    /// Receives one message from the connected peer into `buf`; the rest
    /// of a message longer than `buf` is discarded.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|s| s.recv(buf)).await
    }

    /// Sends `buf` as one message to the socket at `path`.
    ///
    /// While the receiver's queue is full it waits: for this socket to
    /// become writable when its own send buffer is what is full, else (the
    /// kernel has no readiness event for another socket's queue) on a
    /// timer, 1 ms doubling up to 100 ms, for as long as it takes; bound it
    /// with [`tarn_reactor::timeout`] if need be.
    ///
    /// # Errors
    ///
    /// The error names the path (`NotFound` for no socket there,
    /// `ConnectionRefused` for one nobody holds open).
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        let named = |e: io::Error| with_path(e, "send to", path);
        let addr = sys::UnixAddr::new(path).map_err(named)?;
        let fd = self.io.as_raw_fd();
        let mut pause = FULL_PAUSE.0;
        loop {
            match sys::send_to_unix(fd, buf, &addr) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return res.map_err(named),
            }
            // A failed send frees its buffer, which reports this socket
            // writable again: waiting for that alone would spin.
            if self.writable_now().await? {
                Timer::after(pause).await;
                pause = (pause * 2).min(FULL_PAUSE.1);
            } else {
                pause = FULL_PAUSE.0;
            }
        }
    }

    /// Waits until this socket is writable; `true` if it was at once.
    async fn writable_now(&self) -> io::Result<bool> {
        let mut writable = std::pin::pin!(self.io.writable());
        let mut at_once = None;
        std::future::poll_fn(|cx| {
            let res = writable.as_mut().poll(cx);
            at_once.get_or_insert(res.is_ready());
            res
        })
        .await?;
        Ok(at_once == Some(true))
    }

    /// Receives one message into `buf`; returns its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.read_with(|s| s.recv_from(buf)).await
    }

    /// Like [`recv`](Self::recv), leaving the message queued.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.io.as_raw_fd();
        self.io.read_with(|_| sys::peek(fd, buf)).await
    }

    /// Waits until a message can be received without blocking.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Waits until a message can be sent without blocking.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// The address the socket is bound to (unnamed if unbound).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Adopts a std socket (made non-blocking here).
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: Async::new(socket)?,
        })
    }

    /// Deregisters the socket and returns it as a std socket (still non-blocking).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        self.io.into_inner()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.io.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

fd_traits!(UnixDatagram);

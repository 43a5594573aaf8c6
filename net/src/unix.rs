//! Unix-domain sockets: [`UnixListener`], [`UnixStream`] (with borrowed
//! halves) and [`UnixDatagram`].
//!
//! They mirror the TCP types: every operation tries the syscall first and
//! waits for readiness only on `WouldBlock`, stream writes use
//! `MSG_NOSIGNAL`, and accept backs off while the process is out of fds.
//! Paths name files; on Linux a path that starts with a NUL byte names a
//! socket in the abstract namespace instead (no file, gone with the last
//! socket). Dropping a bound socket does not remove its file.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use tarn_reactor::{Async, Timer};

use crate::accept::AcceptState;
use crate::socket::DEFAULT_BACKLOG;
use crate::sys;

/// The first and the longest pause of `UnixStream::connect` while the
/// listener's backlog is full.
const BACKLOG_PAUSE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(100));

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

    /// Waits for a connection; returns it with the peer's address (usually
    /// unnamed: clients rarely bind).
    ///
    /// Out of file descriptors (`EMFILE`, `ENFILE`), it waits (5 ms,
    /// doubling up to 1 s) and tries again, as
    /// [`TcpListener::accept`](crate::TcpListener::accept) does.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut state = AcceptState::default();
        std::future::poll_fn(|cx| self.poll_accept(&mut state, cx)).await
    }

    fn poll_accept(
        &self,
        state: &mut AcceptState,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let fd = self.io.as_raw_fd();
        state.poll(
            cx,
            |cx| self.io.poll_read_with(cx, || sys::accept_unix(fd)),
            |(conn, addr)| UnixStream::from_nonblocking(conn).map(|s| (s, addr)),
        )
    }

    /// The stream of incoming connections ([`accept`](Self::accept) in a loop).
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming {
            listener: self,
            state: AcceptState::default(),
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Adopts a std listener (made non-blocking here).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: Async::new(listener)?,
        })
    }

    /// Deregisters the listener and returns it as a std listener (still non-blocking).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.io.into_inner()
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

/// The stream of [`UnixListener::incoming`]: yields connections forever.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
    state: AcceptState,
}

impl Stream for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let res = ready!(this.listener.poll_accept(&mut this.state, cx));
        Poll::Ready(Some(res.map(|(stream, _)| stream)))
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.io.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
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
        let mut pause = BACKLOG_PAUSE.0;
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
                    pause = (pause * 2).min(BACKLOG_PAUSE.1);
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

    fn from_nonblocking(fd: OwnedFd) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: Async::new_nonblocking(std::os::unix::net::UnixStream::from(fd))?,
        })
    }

    /// Adopts a std stream (made non-blocking here).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: Async::new(stream)?,
        })
    }

    /// Deregisters the stream and returns it as a std stream (still non-blocking).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.io.into_inner()
    }

    /// Reads into `buf` without removing the data from the queue.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.io.as_raw_fd();
        self.io.read_with(|_| sys::peek(fd, buf)).await
    }

    /// Waits until a read would not block.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Waits until a write would not block.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// The local address (usually unnamed for a client).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Borrowed halves, for reading and writing from two futures at once.
    pub fn split(&self) -> (UnixReadHalf<'_>, UnixWriteHalf<'_>) {
        (UnixReadHalf(self), UnixWriteHalf(self))
    }

    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_read_with(cx, || {
            let mut s = self.io.get_ref();
            s.read(buf)
        })
    }

    fn poll_read_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read_with(cx, || {
            let mut s = self.io.get_ref();
            s.read_vectored(bufs)
        })
    }

    fn poll_write_inner(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let fd = self.io.as_raw_fd();
        self.io.poll_write_with(cx, || sys::send(fd, buf))
    }

    fn poll_write_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let fd = self.io.as_raw_fd();
        self.io.poll_write_with(cx, || sys::send_vectored(fd, bufs))
    }

    fn poll_close_inner(&self) -> Poll<io::Result<()>> {
        match self.shutdown(Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// What the `AsyncRead`/`AsyncWrite` impls reach the stream through.
trait AsStream {
    fn stream(&self) -> &UnixStream;
}

impl AsStream for UnixStream {
    fn stream(&self) -> &UnixStream {
        self
    }
}

impl AsStream for &UnixStream {
    fn stream(&self) -> &UnixStream {
        self
    }
}

impl AsStream for UnixReadHalf<'_> {
    fn stream(&self) -> &UnixStream {
        self.0
    }
}

impl AsStream for UnixWriteHalf<'_> {
    fn stream(&self) -> &UnixStream {
        self.0
    }
}

/// `AsyncRead` for a type that reaches a `UnixStream`.
macro_rules! async_read {
    ($($ty: ty),*) => {$(
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.stream().poll_read_inner(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.stream().poll_read_vectored_inner(cx, bufs)
            }
        }
    )*};
}

/// `AsyncWrite` for a type that reaches a `UnixStream`.
macro_rules! async_write {
    ($($ty: ty),*) => {$(
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.stream().poll_write_inner(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.stream().poll_write_vectored_inner(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.stream().poll_close_inner()
            }
        }
    )*};
}

async_read!(UnixStream, &UnixStream, UnixReadHalf<'_>);
async_write!(UnixStream, &UnixStream, UnixWriteHalf<'_>);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.io.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// The reading half of [`UnixStream::split`].
#[derive(Debug)]
pub struct UnixReadHalf<'a>(&'a UnixStream);

/// The writing half of [`UnixStream::split`]; closing it shuts down writing.
#[derive(Debug)]
pub struct UnixWriteHalf<'a>(&'a UnixStream);

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
    /// # Errors
    ///
    /// The error names the path (`NotFound` for no socket there,
    /// `ConnectionRefused` for one nobody holds open).
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        let named = |e: io::Error| with_path(e, "send to", path);
        let addr = sys::UnixAddr::new(path).map_err(named)?;
        let fd = self.io.as_raw_fd();
        self.io
            .write_with(|_| sys::send_to_unix(fd, buf, &addr))
            .await
            .map_err(named)
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

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

//! TCP: [`TcpListener`], [`TcpStream`] and its halves.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use tarn_reactor::Async;

use crate::accept::AcceptState;
use crate::addr::{lookup, no_address, resolve, ToSocketAddrs};
use crate::socket::{TcpSocket, DEFAULT_BACKLOG};
use crate::sys;

/// A TCP socket listening for connections.
///
/// ```
/// use tarn_net::{TcpListener, TcpStream};
///
/// tarn_executor::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = tarn_executor::spawn(async move { TcpStream::connect(addr).await });
///     let (server_side, peer) = listener.accept().await?;
///     assert_eq!(peer, client.await.unwrap()?.local_addr()?);
///     # drop(server_side);
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct TcpListener {
    io: Async<std::net::TcpListener>,
    /// Whether `accept` must turn `TCP_NODELAY` on itself: for a listener
    /// adopted with `from_std`, or where accepted sockets do not inherit
    /// the listener's setting (they do on Linux, and [`TcpSocket`] sets it).
    nodelay_on_accept: bool,
}

/// Whether an accepted socket inherits the listener's `TCP_NODELAY`.
const ACCEPT_INHERITS_NODELAY: bool = cfg!(any(target_os = "linux", target_os = "android"));

impl TcpListener {
    /// Binds to the first of `addr`'s addresses that works, with
    /// `SO_REUSEADDR` and a backlog of [`DEFAULT_BACKLOG`]; use
    /// [`TcpSocket`] for other settings.
    ///
    /// # Errors
    ///
    /// The last address's error, naming the address ("cannot bind to
    /// 127.0.0.1:80: Permission denied").
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addrs = resolve(&addr).await?;
        let mut last = None;
        for addr in &addrs {
            let bound = TcpSocket::new_for(addr).and_then(|socket| {
                socket.set_reuseaddr(true)?;
                socket.bind(*addr)?;
                socket.listen(DEFAULT_BACKLOG)
            });
            match bound {
                Ok(listener) => return Ok(listener),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| no_address("bind to")))
    }

    /// Waits for a connection; returns it with the peer's address. The
    /// stream has `TCP_NODELAY` on (see [`TcpStream::set_nodelay`]).
    ///
    /// When the process or system is out of file descriptors (`EMFILE`,
    /// `ENFILE`), waits (5 ms, doubling up to 1 s) and tries again, so the
    /// server neither spins nor stops: existing connections keep being
    /// served, and accepting resumes once fds are freed. Transient errors
    /// (`ECONNABORTED`: the peer gave up while queued) are skipped.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut state = AcceptState::default();
        std::future::poll_fn(|cx| self.poll_accept(&mut state, cx)).await
    }

    fn poll_accept(
        &self,
        state: &mut AcceptState,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let fd = self.io.as_raw_fd();
        state.poll(
            cx,
            |cx| self.io.poll_read_with(cx, || sys::accept(fd)),
            |(conn, addr)| {
                if self.nodelay_on_accept {
                    sys::setsockopt(conn.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
                }
                TcpStream::from_nonblocking(conn).map(|s| (s, addr))
            },
        )
    }

    /// The stream of incoming connections ([`accept`](Self::accept) in a loop).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            state: AcceptState::default(),
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Adopts a std listener (made non-blocking here). The streams it
    /// accepts get `TCP_NODELAY`, as those of [`bind`](Self::bind) do.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Async::new(listener)?,
            nodelay_on_accept: true,
        })
    }

    /// A listener on a listening socket made by [`TcpSocket`], whose
    /// `TCP_NODELAY` setting its accepted streams inherit where they can.
    pub(crate) fn from_socket(fd: OwnedFd) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Async::new_nonblocking(std::net::TcpListener::from(fd))?,
            nodelay_on_accept: !ACCEPT_INHERITS_NODELAY,
        })
    }

    /// Deregisters the listener and returns it as a std listener (still non-blocking).
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.io.into_inner()
    }
}

/// The stream of [`TcpListener::incoming`]: yields connections forever.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    state: AcceptState,
}

impl Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let res = ready!(this.listener.poll_accept(&mut this.state, cx));
        Poll::Ready(Some(res.map(|(stream, _)| stream)))
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.io.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// A TCP connection.
///
/// Reads and writes go straight to the syscall and wait for readiness only
/// on `WouldBlock`. Writes use `MSG_NOSIGNAL`: writing to a closed peer
/// returns `BrokenPipe` (or `ConnectionReset`) and never raises `SIGPIPE`.
/// `poll_close` shuts the write direction down (the peer reads end of stream).
/// `TCP_NODELAY` is on ([`set_nodelay`](Self::set_nodelay) says why).
pub struct TcpStream {
    io: Async<std::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, trying each of its addresses in order; host names
    /// are resolved on the blocking pool.
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`, ...).
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = resolve(&addr).await?;
        let mut last = None;
        for addr in &addrs {
            let attempt = async {
                let socket = TcpSocket::new_for(addr)?;
                socket.connect(*addr).await
            };
            match attempt.await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| no_address("connect to")))
    }

    /// Like [`connect`](Self::connect), giving up after `timeout` with a
    /// `TimedOut` error that names the addresses (or the host name). The
    /// timeout covers the name lookup too.
    pub async fn connect_timeout(
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        let resolve = lookup(&addr);
        let what = resolve.describe();
        let connect = async { TcpStream::connect(resolve.addrs().await?.as_slice()).await };
        match tarn_reactor::timeout(timeout, connect).await {
            Ok(res) => res,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {what} timed out after {timeout:?}"),
            )),
        }
    }

    pub(crate) async fn connect_socket(fd: OwnedFd, addr: SocketAddr) -> io::Result<TcpStream> {
        let connected = sys::connect(&fd, &addr)?;
        let stream = TcpStream::from_nonblocking(fd)?;
        if !connected {
            stream.io.writable().await?;
            if let Some(e) = sys::take_error(stream.as_raw_fd())? {
                return Err(e);
            }
        }
        Ok(stream)
    }

    fn from_nonblocking(fd: OwnedFd) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Async::new_nonblocking(std::net::TcpStream::from(fd))?,
        })
    }

    /// Adopts a std stream (made non-blocking here).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Async::new(stream)?,
        })
    }

    /// Deregisters the stream and returns it as a std stream (still non-blocking).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.io.into_inner()
    }

    /// Reads into `buf` without removing the data from the queue.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|s| s.peek(buf)).await
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

    /// Sets `TCP_NODELAY`: small writes leave at once instead of waiting
    /// (Nagle's algorithm) for the peer to acknowledge earlier data.
    ///
    /// tarn turns it on for every stream that [`TcpListener::accept`] returns
    /// and that [`connect`](Self::connect) makes, as Go does: with Nagle on,
    /// a reply written in more than one piece (an echo loop with a 4 KiB
    /// buffer answering 16 KiB) waits ~40 ms for the peer's delayed ACK.
    /// `set_nodelay(false)` opts out, for a stream that sends many small
    /// writes and prefers fewer packets to lower latency. A stream adopted
    /// with [`from_std`](Self::from_std) keeps its own setting.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Borrowed halves, for reading and writing from two futures at once.
    pub fn split(&self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(self), WriteHalf(self))
    }

    /// Owned halves, movable to different tasks; [`reunite`] joins them.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let stream = Arc::new(self);
        (
            OwnedReadHalf(Arc::clone(&stream)),
            OwnedWriteHalf {
                stream,
                shutdown_on_drop: true,
            },
        )
    }

    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.io.poll_read_stream(cx, len, || {
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

/// `AsyncRead`/`AsyncWrite` for a type that reaches a `TcpStream`.
macro_rules! stream_io {
    ($ty: ty, read) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let stream: &TcpStream = AsStream::stream(&*self);
                stream.poll_read_inner(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                let stream: &TcpStream = AsStream::stream(&*self);
                stream.poll_read_vectored_inner(cx, bufs)
            }
        }
    };
    ($ty: ty, write) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let stream: &TcpStream = AsStream::stream(&*self);
                stream.poll_write_inner(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let stream: &TcpStream = AsStream::stream(&*self);
                stream.poll_write_vectored_inner(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                let stream: &TcpStream = AsStream::stream(&*self);
                stream.poll_close_inner()
            }
        }
    };
}

/// What the `AsyncRead`/`AsyncWrite` impls reach the stream through.
trait AsStream {
    fn stream(&self) -> &TcpStream;
}

impl AsStream for TcpStream {
    fn stream(&self) -> &TcpStream {
        self
    }
}

impl AsStream for &TcpStream {
    fn stream(&self) -> &TcpStream {
        self
    }
}

impl AsStream for ReadHalf<'_> {
    fn stream(&self) -> &TcpStream {
        self.0
    }
}

impl AsStream for WriteHalf<'_> {
    fn stream(&self) -> &TcpStream {
        self.0
    }
}

impl AsStream for OwnedReadHalf {
    fn stream(&self) -> &TcpStream {
        &self.0
    }
}

impl AsStream for OwnedWriteHalf {
    fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

stream_io!(TcpStream, read);
stream_io!(TcpStream, write);
stream_io!(&TcpStream, read);
stream_io!(&TcpStream, write);
stream_io!(ReadHalf<'_>, read);
stream_io!(WriteHalf<'_>, write);
stream_io!(OwnedReadHalf, read);
stream_io!(OwnedWriteHalf, write);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.io.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// The reading half of [`TcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The writing half of [`TcpStream::split`]; closing it shuts down writing.
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

/// The owned reading half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf(Arc<TcpStream>);

/// The owned writing half of [`TcpStream::into_split`].
///
/// Dropping it shuts down the write direction (the peer reads end of
/// stream), unless it is [`reunite`]d first.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    stream: Arc<TcpStream>,
    shutdown_on_drop: bool,
}

impl OwnedReadHalf {
    /// The stream both halves share.
    pub fn stream(&self) -> &TcpStream {
        &self.0
    }
}

impl OwnedWriteHalf {
    /// The stream both halves share.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }
}

/// The halves given to [`reunite`] came from different streams; here they are back.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same TcpStream")
    }
}

impl std::error::Error for ReuniteError {}

/// Joins the halves of [`TcpStream::into_split`] back into the stream.
pub fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if !Arc::ptr_eq(&read.0, &write.stream) {
        return Err(ReuniteError(read, write));
    }
    write.shutdown_on_drop = false;
    let stream = Arc::clone(&write.stream);
    drop(write);
    drop(read);
    Ok(Arc::try_unwrap(stream).unwrap_or_else(|_| unreachable!("both halves were just dropped")))
}

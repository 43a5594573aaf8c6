//! [`TarnIo`]: one wrapper that turns a futures-io stream into hyper's
//! `rt::Read`/`rt::Write`, and hyper's I/O (an upgraded connection) back
//! into futures-io.

use std::any::Any;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use tarn::net::{TcpStream, UnixStream};

/// The most a read through a stream of unknown type fills at once.
///
/// Such a stream reads into `&mut [u8]`, so the part of hyper's buffer it
/// gets must be zeroed first; bounding it keeps that cost per read small
/// (hyper's buffer can grow to hundreds of KiB).
const ZEROED_READ: usize = 16 * 1024;

pin_project_lite::pin_project! {
    /// A stream seen through the other I/O traits.
    ///
    /// - Around a futures-io stream (tarn's [`TcpStream`] or
    ///   [`UnixStream`], a TLS stream, ...), it implements hyper's
    ///   [`rt::Read`](hyper::rt::Read) and [`rt::Write`](hyper::rt::Write),
    ///   which hyper's connections take.
    /// - Around hyper's I/O (an [`Upgraded`](hyper::upgrade::Upgraded)
    ///   connection after a `101 Switching Protocols`), it implements
    ///   futures-io's `AsyncRead` and `AsyncWrite`, so a WebSocket library
    ///   can run on the upgraded connection.
    ///
    /// On tarn's own streams, reads go straight into hyper's uninitialised
    /// buffer ([`TcpStream::poll_read_uninit`]) and hyper's vectored writes
    /// reach the kernel as one `writev`. Any other stream reads into a
    /// zeroed window of the buffer (at most 16 KiB per read), and hyper
    /// flattens its writes unless [`TarnIo::with_vectored_writes`] says
    /// the stream handles slices itself.
    ///
    /// ```no_run
    /// use tarn::net::TcpStream;
    /// use tarn_hyper::TarnIo;
    ///
    /// # tarn::block_on(async {
    /// let stream = TcpStream::connect("127.0.0.1:8080").await?;
    /// let (mut sender, conn) =
    ///     hyper::client::conn::http1::handshake::<_, String>(TarnIo::new(stream))
    ///         .await
    ///         .map_err(std::io::Error::other)?;
    /// tarn::spawn(conn);
    /// let response = sender
    ///     .send_request(hyper::Request::new(String::new()))
    ///     .await
    ///     .map_err(std::io::Error::other)?;
    /// println!("{}", response.status());
    /// # std::io::Result::Ok(())
    /// # });
    /// ```
    #[derive(Debug)]
    pub struct TarnIo<T> {
        #[pin]
        inner: T,
        vectored: bool,
    }
}

impl<T> TarnIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> TarnIo<T>
    where
        T: 'static,
    {
        let vectored = is_tarn_stream::<T>();
        TarnIo { inner, vectored }
    }

    /// Wraps a futures-io stream whose `poll_write_vectored` writes several
    /// slices at once (a TLS stream that encrypts them into one record, or
    /// a socket type of another library), so that hyper hands it its head
    /// and body as slices instead of copying them into one buffer.
    pub fn with_vectored_writes(inner: T) -> TarnIo<T> {
        TarnIo {
            inner,
            vectored: true,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// Whether `T` is one of tarn's stream sockets, which read into
/// uninitialised memory and write slices with one syscall.
fn is_tarn_stream<T: 'static>() -> bool {
    let id = std::any::TypeId::of::<T>();
    id == std::any::TypeId::of::<TcpStream>() || id == std::any::TypeId::of::<UnixStream>()
}

/// Reads into `buf` through tarn's uninitialised-read path when `inner` is
/// one of tarn's streams; `None` otherwise.
fn poll_read_tarn<T: 'static>(
    inner: &T,
    cx: &mut Context<'_>,
    buf: &mut hyper::rt::ReadBufCursor<'_>,
) -> Option<Poll<io::Result<()>>> {
    let inner = inner as &dyn Any;
    // SAFETY: the reads below only write into the slice (the kernel fills
    // it), so no initialised byte is de-initialised.
    let unfilled = unsafe { buf.as_mut() };
    let poll = if let Some(tcp) = inner.downcast_ref::<TcpStream>() {
        tcp.poll_read_uninit(cx, unfilled)
    } else if let Some(unix) = inner.downcast_ref::<UnixStream>() {
        unix.poll_read_uninit(cx, unfilled)
    } else {
        return None;
    };
    Some(poll.map_ok(|n| {
        // SAFETY: the read initialised the first `n` bytes of the unfilled
        // part.
        unsafe { buf.advance(n) }
    }))
}

impl<T: AsyncRead + 'static> hyper::rt::Read for TarnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(poll) = poll_read_tarn(&*this.inner, cx, &mut buf) {
            return poll;
        }
        let len = buf.remaining().min(ZEROED_READ);
        let window = buf.initialize_unfilled_to(len);
        let n = ready!(this.inner.poll_read(cx, window))?;
        if n > len {
            // A broken reader; believing it would hand hyper bytes that
            // were never written.
            let e =
                format!("AsyncRead::poll_read reported {n} bytes read into a {len}-byte buffer");
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        // SAFETY: `initialize_unfilled_to` initialised the window and the
        // read filled `n <= len` bytes of it.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> hyper::rt::Write for TarnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_close(cx)
    }
}

impl<T: hyper::rt::Read> AsyncRead for TarnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read_buf = hyper::rt::ReadBuf::new(buf);
        ready!(self.project().inner.poll_read(cx, read_buf.unfilled()))?;
        Poll::Ready(Ok(read_buf.filled().len()))
    }
}

impl<T: hyper::rt::Write> AsyncWrite for TarnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

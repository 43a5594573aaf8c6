//! What [`TcpStream`](crate::TcpStream) and [`UnixStream`](crate::UnixStream)
//! share: one read and write path (so both get the same syscalls per
//! message), the halves of `split` and `into_split`, and the methods that
//! differ only in the types they name (`stream_socket!`).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::sys;

/// A connected stream socket: [`TcpStream`](crate::TcpStream) or
/// [`UnixStream`](crate::UnixStream).
///
/// Sealed; it names what the halves ([`ReadHalf`], [`OwnedReadHalf`], ...)
/// can be halves of, so that one type serves both kinds of stream.
pub trait StreamSocket: sealed::Registered + fmt::Debug {}

pub(crate) mod sealed {
    /// The registered socket under a stream or listener type.
    pub trait Registered {
        /// The std type the socket is kept as.
        type Std: std::os::fd::AsFd;

        /// The socket on the reactor.
        fn io(&self) -> &tarn_reactor::Async<Self::Std>;
    }
}

use sealed::Registered;

/// Reads into `buf`. A read that returns less than asked shows the socket
/// drained: the next read waits for an event instead of trying a syscall
/// that would say `EAGAIN`.
pub(crate) fn poll_read<S: Registered>(
    stream: &S,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    let io = stream.io();
    let fd = io.as_raw_fd();
    io.poll_read_stream(cx, buf.len(), || sys::recv(fd, buf))
}

/// [`poll_read`] into memory that may be uninitialised (the first `n`
/// bytes are initialised when this returns `Ok(n)`).
pub(crate) fn poll_read_uninit<S: Registered>(
    stream: &S,
    cx: &mut Context<'_>,
    buf: &mut [MaybeUninit<u8>],
) -> Poll<io::Result<usize>> {
    let io = stream.io();
    let fd = io.as_raw_fd();
    io.poll_read_stream(cx, buf.len(), || sys::recv_uninit(fd, buf))
}

/// [`poll_read`] into several buffers.
pub(crate) fn poll_read_vectored<S: Registered>(
    stream: &S,
    cx: &mut Context<'_>,
    bufs: &mut [IoSliceMut<'_>],
) -> Poll<io::Result<usize>> {
    let io = stream.io();
    let fd = io.as_raw_fd();
    // What one call can fill: a read that fills less shows the socket drained.
    let len = sys::iov_window_mut(bufs).iter().map(|b| b.len()).sum();
    io.poll_read_stream(cx, len, || sys::recv_vectored(fd, bufs))
}

/// Writes from `buf`, without `SIGPIPE`.
pub(crate) fn poll_write<S: Registered>(
    stream: &S,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let io = stream.io();
    let fd = io.as_raw_fd();
    io.poll_write_with(cx, || sys::send(fd, buf))
}

/// Writes from several buffers (at most `IOV_MAX` of them per call).
pub(crate) fn poll_write_vectored<S: Registered>(
    stream: &S,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let io = stream.io();
    let fd = io.as_raw_fd();
    io.poll_write_with(cx, || sys::send_vectored(fd, bufs))
}

/// Shuts down writing: the peer reads end of stream. Closing a stream
/// the peer already reset is not an error.
pub(crate) fn poll_close<S: Registered>(stream: &S) -> Poll<io::Result<()>> {
    match shutdown(stream, Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
        _ => Poll::Ready(Ok(())),
    }
}

/// Shuts down one or both directions.
pub(crate) fn shutdown<S: Registered>(stream: &S, how: Shutdown) -> io::Result<()> {
    sys::shutdown(stream.io().as_raw_fd(), how)
}

/// Reads into `buf` without removing the data from the queue.
pub(crate) async fn peek<S: Registered>(stream: &S, buf: &mut [u8]) -> io::Result<usize> {
    let io = stream.io();
    let fd = io.as_raw_fd();
    io.read_with(|_| sys::peek(fd, buf)).await
}

/// `AsyncRead` for `$ty` (with the generics in brackets), which reaches its
/// stream as `$stream` given `$this: &$ty`: one implementation for the
/// streams, references to them and their reading halves.
macro_rules! stream_read {
    ([$($generics: tt)*] $ty: ty, |$this: ident| $stream: expr) => {
        impl<$($generics)*> futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $crate::stream::poll_read($stream, cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $crate::stream::poll_read_vectored($stream, cx, bufs)
            }
        }
    };
}

/// `AsyncWrite` as [`stream_read!`] gives `AsyncRead`. Flushing has nothing
/// to do (writes go straight to the socket); closing shuts down writing.
macro_rules! stream_write {
    ([$($generics: tt)*] $ty: ty, |$this: ident| $stream: expr) => {
        impl<$($generics)*> futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $crate::stream::poll_write($stream, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $crate::stream::poll_write_vectored($stream, cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                $crate::stream::poll_close($stream)
            }
        }
    };
}

/// The reading half of a stream's `split`: reads while a
/// [`WriteHalf`] of the same stream writes.
#[derive(Debug)]
pub struct ReadHalf<'a, S>(&'a S);

/// The writing half of a stream's `split`; closing it shuts down writing.
#[derive(Debug)]
pub struct WriteHalf<'a, S>(&'a S);

/// The owned reading half of a stream's `into_split`, movable to another
/// task; [`reunite`](Self::reunite) joins it with its writing half.
#[derive(Debug)]
pub struct OwnedReadHalf<S>(Arc<S>);

/// The owned writing half of a stream's `into_split`.
///
/// Dropping it shuts down the write direction (the peer reads end of
/// stream), unless it is reunited first.
#[derive(Debug)]
pub struct OwnedWriteHalf<S: StreamSocket> {
    stream: Arc<S>,
    shutdown_on_drop: bool,
}

/// The halves given to `reunite` came from different streams; here they
/// are back.
#[derive(Debug)]
pub struct ReuniteError<S: StreamSocket>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

/// Borrowed halves of `stream`.
pub(crate) fn split<S: StreamSocket>(stream: &S) -> (ReadHalf<'_, S>, WriteHalf<'_, S>) {
    (ReadHalf(stream), WriteHalf(stream))
}

/// Owned halves of `stream`.
pub(crate) fn into_split<S: StreamSocket>(stream: S) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
    let stream = Arc::new(stream);
    (
        OwnedReadHalf(Arc::clone(&stream)),
        OwnedWriteHalf {
            stream,
            shutdown_on_drop: true,
        },
    )
}

impl<S: StreamSocket> OwnedReadHalf<S> {
    /// The stream both halves share.
    pub fn stream(&self) -> &S {
        &self.0
    }

    /// Joins this half with the writing half it was split from, giving the
    /// stream back.
    ///
    /// # Errors
    ///
    /// If the halves come from different streams; the error holds both.
    pub fn reunite(self, write: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.0, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        let mut write = write;
        write.shutdown_on_drop = false;
        let stream = Arc::clone(&write.stream);
        drop(write);
        drop(self);
        Ok(Arc::try_unwrap(stream)
            .unwrap_or_else(|_| unreachable!("both halves were just dropped")))
    }
}

impl<S: StreamSocket> OwnedWriteHalf<S> {
    /// The stream both halves share.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Joins this half with the reading half it was split from; see
    /// [`OwnedReadHalf::reunite`].
    ///
    /// # Errors
    ///
    /// If the halves come from different streams; the error holds both.
    pub fn reunite(self, read: OwnedReadHalf<S>) -> Result<S, ReuniteError<S>> {
        read.reunite(self)
    }
}

impl<S: StreamSocket> Drop for OwnedWriteHalf<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = shutdown(&*self.stream, Shutdown::Write);
        }
    }
}

impl<S: StreamSocket> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same stream")
    }
}

impl<S: StreamSocket> std::error::Error for ReuniteError<S> {}

stream_read!([S: StreamSocket] ReadHalf<'_, S>, |half| half.0);
stream_read!([S: StreamSocket] OwnedReadHalf<S>, |half| &*half.0);
stream_write!([S: StreamSocket] WriteHalf<'_, S>, |half| half.0);
stream_write!([S: StreamSocket] OwnedWriteHalf<S>, |half| &*half.stream);

/// The inherent methods and trait impls that `TcpStream` and `UnixStream`
/// share, for `$ty` holding `io: Async<$std>` and addressed by `$addr`.
macro_rules! stream_socket {
    ($ty: ident, $std: ty, $addr: ty) => {
        impl $crate::stream::sealed::Registered for $ty {
            type Std = $std;

            fn io(&self) -> &tarn_reactor::Async<$std> {
                &self.io
            }
        }

        impl $crate::stream::StreamSocket for $ty {}

        impl $ty {
            /// A stream on a connected socket that is already non-blocking.
            pub(crate) fn from_nonblocking(fd: std::os::fd::OwnedFd) -> io::Result<$ty> {
                Ok($ty {
                    io: tarn_reactor::Async::new_nonblocking(<$std>::from(fd))?,
                })
            }

            /// Adopts a std stream (made non-blocking here).
            pub fn from_std(stream: $std) -> io::Result<$ty> {
                Ok($ty {
                    io: tarn_reactor::Async::new(stream)?,
                })
            }

            /// Deregisters the stream and returns it as a std stream (still
            /// non-blocking).
            pub fn into_std(self) -> io::Result<$std> {
                self.io.into_inner()
            }

            /// Reads into `buf` without removing the data from the queue.
            pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
                $crate::stream::peek(self, buf).await
            }

            /// Reads into memory that may be uninitialised, as `poll_read`
            /// does into `&mut [u8]`: on `Ready(Ok(n))` the first `n` bytes
            /// of `buf` are initialised (`n == 0` is end of stream). For
            /// adapters to APIs that hand out uninitialised buffers (hyper's
            /// read cursor, tokio's `ReadBuf`), which would otherwise zero
            /// the buffer before every read.
            pub fn poll_read_uninit(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [std::mem::MaybeUninit<u8>],
            ) -> std::task::Poll<io::Result<usize>> {
                $crate::stream::poll_read_uninit(self, cx, buf)
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
            pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
                $crate::stream::shutdown(self, how)
            }

            /// The local address.
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.io.get_ref().local_addr()
            }

            /// The peer's address.
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.io.get_ref().peer_addr()
            }

            /// Borrowed halves, for reading and writing from two futures at
            /// once.
            pub fn split(&self) -> ($crate::ReadHalf<'_, $ty>, $crate::WriteHalf<'_, $ty>) {
                $crate::stream::split(self)
            }

            /// Owned halves, movable to different tasks;
            /// [`OwnedReadHalf::reunite`]($crate::OwnedReadHalf::reunite)
            /// joins them again.
            pub fn into_split(self) -> ($crate::OwnedReadHalf<$ty>, $crate::OwnedWriteHalf<$ty>) {
                $crate::stream::into_split(self)
            }
        }

        stream_read!([] $ty, |this| this);
        stream_read!([] &$ty, |this| *this);
        stream_write!([] $ty, |this| this);
        stream_write!([] &$ty, |this| *this);

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &std::os::fd::AsRawFd::as_raw_fd(&self.io))
                    .field("local_addr", &self.local_addr().ok())
                    .field("peer_addr", &self.peer_addr().ok())
                    .finish()
            }
        }

        fd_traits!($ty);
    };
}

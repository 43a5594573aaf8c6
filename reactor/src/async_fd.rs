//! [`Async`]: any file descriptor made awaitable.

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::driver;
use crate::reactor::Reactor;
use crate::source::{Dir, Source, WaiterSlot};

/// An fd registered with the reactor: its operations return `Pending`
/// instead of blocking.
///
/// `Async::new` sets `O_NONBLOCK` and registers the fd (on epoll once,
/// edge-triggered, for both directions: steady-state I/O then makes no
/// `epoll_ctl` call). Every operation tries the syscall first and waits for
/// readiness only if it returns `WouldBlock`.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use futures_io::AsyncRead;
/// use tarn_reactor::Async;
///
/// tarn_reactor::drive(async {
///     let (a, b) = UnixStream::pair()?;
///     let (a, b) = (Async::new(a)?, Async::new(b)?);
///     a.write_with(|s| std::io::Write::write(&mut &*s, b"hello")).await?;
///     let mut buf = [0; 5];
///     let n = b.read_with(|s| std::io::Read::read(&mut &*s, &mut buf)).await?;
///     assert_eq!(&buf[..n], b"hello");
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug)]
pub struct Async<T: AsFd> {
    source: Arc<Source>,
    /// `None` only after `into_inner` or during drop.
    io: Option<T>,
}

impl<T: AsFd> Unpin for Async<T> {}

impl<T: AsFd> Async<T> {
    /// Makes `io` non-blocking and registers it with the reactor.
    ///
    /// # Errors
    ///
    /// If the fd cannot be made non-blocking or registered (for example it is
    /// already registered through another `Async`), or the reactor cannot start.
    pub fn new(io: T) -> io::Result<Async<T>> {
        let fd = io.as_fd().as_raw_fd();
        crate::sys::set_nonblocking(fd)?;
        let source = Reactor::current()?.insert_io(fd)?;
        Ok(Async {
            source,
            io: Some(io),
        })
    }

    /// Registers `io`, whose fd the caller has already made non-blocking
    /// (say, a socket created with `SOCK_NONBLOCK`): saves the `fcntl` calls
    /// of [`new`](Self::new). A blocking fd here would block the executor.
    pub fn new_nonblocking(io: T) -> io::Result<Async<T>> {
        let fd = io.as_fd().as_raw_fd();
        let source = Reactor::current()?.insert_io(fd)?;
        Ok(Async {
            source,
            io: Some(io),
        })
    }

    /// The inner I/O handle.
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("io is present until drop")
    }

    /// The inner I/O handle, mutably.
    ///
    /// `unsafe`, as in async-io: with a `&mut T`, safe code could replace
    /// the handle (`std::mem::swap` with another socket) or close its fd
    /// while the reactor still has the old fd registered, and that stale
    /// registration would make a later socket that gets the same fd number
    /// fail to register.
    ///
    /// # Safety
    ///
    /// The handle must keep the fd it had, open, until the `Async` is
    /// dropped or [`into_inner`](Self::into_inner) is called: do not swap,
    /// replace or close it through this reference.
    ///
    /// ```compile_fail
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut a = tarn_reactor::Async::new(a).unwrap();
    /// let (other, _) = std::os::unix::net::UnixStream::pair().unwrap();
    /// // Would leave the reactor watching a closed fd: needs `unsafe`.
    /// let _closed = std::mem::replace(a.get_mut(), other);
    /// ```
    pub unsafe fn get_mut(&mut self) -> &mut T {
        self.io.as_mut().expect("io is present until drop")
    }

    /// Deregisters the fd and returns the inner handle (still non-blocking).
    pub fn into_inner(mut self) -> io::Result<T> {
        let io = self.io.take().expect("io is present until drop");
        self.source.deregister()?;
        Ok(io)
    }

    /// Waits until a read would not block.
    pub fn readable(&self) -> Readiness<'_, T> {
        Readiness::new(self, Dir::Read)
    }

    /// Waits until a write would not block.
    pub fn writable(&self) -> Readiness<'_, T> {
        Readiness::new(self, Dir::Write)
    }

    /// `Ready` once a read would not block; otherwise stores the waker.
    ///
    /// The wakers stored by the `poll_*` methods (and by `AsyncRead` and
    /// `AsyncWrite`) share one list per direction, deduplicated, and are all
    /// woken by the next readiness event. Nothing removes them before that
    /// (a `poll_*` call has no drop to hook), so the list keeps at most the
    /// last 8 distinct wakers: a ninth wakes the oldest at once, whose task
    /// polls again (and stores its waker anew if it still waits). A task
    /// cancelled on an idle socket thus keeps nothing alive for long. For
    /// many tasks waiting on one fd at once, use [`readable`](Self::readable),
    /// [`read_with`](Self::read_with) or [`poll_read_in`](Self::poll_read_in),
    /// whose waiters have a place of their own.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.source.poll_ready(Dir::Read, None, cx)
    }

    /// `Ready` once a write would not block; otherwise stores the waker.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.source.poll_ready(Dir::Write, None, cx)
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for
    /// readability in between.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut waiter = Waiter::new(&self.source, Dir::Read);
        std::future::poll_fn(|cx| waiter.poll_io(cx, || op(self.get_ref()))).await
    }

    /// Like [`read_with`](Self::read_with), with mutable access.
    ///
    /// # Safety
    ///
    /// As for [`get_mut`](Self::get_mut): `op` must not replace or close
    /// the handle's fd.
    pub async unsafe fn read_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let (source, io) = self.parts();
        let mut waiter = Waiter::new(source, Dir::Read);
        std::future::poll_fn(|cx| waiter.poll_io(cx, || op(io))).await
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for
    /// writability in between.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut waiter = Waiter::new(&self.source, Dir::Write);
        std::future::poll_fn(|cx| waiter.poll_io(cx, || op(self.get_ref()))).await
    }

    /// Like [`write_with`](Self::write_with), with mutable access.
    ///
    /// # Safety
    ///
    /// As for [`get_mut`](Self::get_mut): `op` must not replace or close
    /// the handle's fd.
    pub async unsafe fn write_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let (source, io) = self.parts();
        let mut waiter = Waiter::new(source, Dir::Write);
        std::future::poll_fn(|cx| waiter.poll_io(cx, || op(io))).await
    }

    /// Tries `op`; on `WouldBlock` registers interest and returns `Pending`.
    ///
    /// The building block of every operation: a socket type wraps its
    /// syscall in this to get a `poll_*` method. The waker goes to the
    /// shared list described at [`poll_readable`](Self::poll_readable).
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io(Dir::Read, cx, op)
    }

    /// The write-side counterpart of [`poll_read_with`](Self::poll_read_with).
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io(Dir::Write, cx, op)
    }

    /// Like [`poll_read_with`](Self::poll_read_with), with the waker kept in
    /// `slot` (see [`WaitSlot`]) instead of the shared list.
    pub fn poll_read_in<R>(
        &self,
        slot: &mut WaitSlot,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let slot = slot.at(&self.source, Dir::Read);
        poll_io_in(&self.source, Dir::Read, slot, cx, op)
    }

    /// The write-side counterpart of [`poll_read_in`](Self::poll_read_in).
    pub fn poll_write_in<R>(
        &self,
        slot: &mut WaitSlot,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let slot = slot.at(&self.source, Dir::Write);
        poll_io_in(&self.source, Dir::Write, slot, cx, op)
    }

    /// [`poll_read_with`](Self::poll_read_with) for a stream read of up to
    /// `len` bytes: a read that returns fewer (but not 0) shows the fd
    /// drained, so the next read waits for an event instead of making a
    /// syscall that would return `WouldBlock`.
    /// Only for stream sockets and pipes, where a short read means empty.
    pub fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let mut tick = 0;
        let res = self.poll_io(Dir::Read, cx, || {
            tick = self.source.tick(Dir::Read);
            op()
        });
        if matches!(res, Poll::Ready(Ok(n)) if n > 0 && n < len) {
            self.source.drained(Dir::Read, tick);
        }
        res
    }

    /// The source and the handle, borrowed apart.
    fn parts(&mut self) -> (&Arc<Source>, &mut T) {
        let io = self.io.as_mut().expect("io is present until drop");
        (&self.source, io)
    }

    fn poll_io<R>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        poll_io(&self.source, dir, cx, op)
    }
}

/// Try the syscall; only `WouldBlock` leads to storing the waker, and only
/// if no event arrived since the tick read before the syscall.
pub(crate) fn poll_io<R>(
    source: &Arc<Source>,
    dir: Dir,
    cx: &mut Context<'_>,
    mut op: impl FnMut() -> io::Result<R>,
) -> Poll<io::Result<R>> {
    if driver::poll_proceed(cx).is_pending() {
        return Poll::Pending;
    }
    loop {
        let tick = source.tick(dir);
        // A direction found empty stays empty until an event: skip the
        // syscall that would say `WouldBlock`. (On the oneshot backends the
        // registration is armed before the task sleeps, and poll/select
        // report the level, so data that came meanwhile still wakes it.)
        if !source.known_blocked(dir, tick) {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
        }
        match source.poll_blocked(dir, tick, None, cx) {
            Poll::Ready(Ok(())) => continue,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// The waiting state of a `read_with`/`write_with` future: a waiter slot of
/// its own, removed when the operation completes or the future is dropped,
/// so that neither leaves a waker behind (unlike the `poll_*` API, which has
/// no drop to hook and shares one small list of wakers).
struct Waiter<'a> {
    source: &'a Arc<Source>,
    dir: Dir,
    slot: WaiterSlot,
}

impl<'a> Waiter<'a> {
    fn new(source: &'a Arc<Source>, dir: Dir) -> Self {
        Waiter {
            source,
            dir,
            slot: WaiterSlot::default(),
        }
    }

    fn poll_io<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        poll_io_in(self.source, self.dir, &mut self.slot, cx, op)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.source.remove_waiter(self.dir, &mut self.slot);
    }
}

/// Like [`poll_io`], with the waker kept in `slot`, which is emptied when
/// the operation completes.
fn poll_io_in<R>(
    source: &Arc<Source>,
    dir: Dir,
    slot: &mut WaiterSlot,
    cx: &mut Context<'_>,
    mut op: impl FnMut() -> io::Result<R>,
) -> Poll<io::Result<R>> {
    if driver::poll_proceed(cx).is_pending() {
        return Poll::Pending;
    }
    loop {
        let tick = source.tick(dir);
        let res = match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match source.poll_blocked(dir, tick, Some(slot), cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => return Poll::Pending,
                }
            }
            res => res,
        };
        source.remove_waiter(dir, slot);
        return Poll::Ready(res);
    }
}

/// A place of its own among the waiters of an [`Async`], for a future or
/// stream that waits in a loop (an accept loop, say) through
/// [`Async::poll_read_in`] or [`Async::poll_write_in`].
///
/// Unlike the wakers of [`poll_read_with`](Async::poll_read_with), which
/// share one list and are forgotten only at the next event or when it
/// fills, a slot is emptied as soon as its operation completes, and when it
/// is dropped: keep it in the future that waits, and any number of such
/// waiters can wait on one fd, each woken by the next event. A slot used
/// with another `Async`, or the other direction, first leaves its place.
#[derive(Debug, Default)]
pub struct WaitSlot {
    slot: WaiterSlot,
    /// The source and direction it has a place with, if any.
    at: Option<(Arc<Source>, Dir)>,
}

impl WaitSlot {
    /// The slot, placed with `source` and `dir`: its place elsewhere, if it
    /// had one, is given up first.
    fn at(&mut self, source: &Arc<Source>, dir: Dir) -> &mut WaiterSlot {
        match &self.at {
            Some((at, at_dir)) if Arc::ptr_eq(at, source) && *at_dir == dir => {}
            _ => {
                self.leave();
                self.at = Some((Arc::clone(source), dir));
            }
        }
        &mut self.slot
    }

    fn leave(&mut self) {
        if let Some((source, dir)) = &self.at {
            source.remove_waiter(*dir, &mut self.slot);
        }
    }
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        self.leave();
    }
}

impl<T: AsFd> AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.source.fd
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        if self.io.is_some() {
            // Deregister before the fd closes (when `io` drops below).
            let _ = self.source.deregister();
            self.io.take();
        }
    }
}

/// The future of [`Async::readable`] and [`Async::writable`].
///
/// Any number of these may wait on one fd and direction; all are woken.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Readiness<'a, T: AsFd> {
    io: &'a Async<T>,
    dir: Dir,
    slot: WaiterSlot,
}

impl<'a, T: AsFd> Readiness<'a, T> {
    fn new(io: &'a Async<T>, dir: Dir) -> Self {
        Readiness {
            io,
            dir,
            slot: WaiterSlot::default(),
        }
    }
}

impl<T: AsFd> Future for Readiness<'_, T> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = this
            .io
            .source
            .poll_ready(this.dir, Some(&mut this.slot), cx);
        if res.is_ready() {
            this.io.source.remove_waiter(this.dir, &mut this.slot);
        }
        res
    }
}

impl<T: AsFd> Drop for Readiness<'_, T> {
    fn drop(&mut self) {
        self.io.source.remove_waiter(self.dir, &mut self.slot);
    }
}

impl<T: AsFd + Read> AsyncRead for Async<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let (source, io) = self.get_mut().parts();
        poll_io(source, Dir::Read, cx, || io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let (source, io) = self.get_mut().parts();
        poll_io(source, Dir::Read, cx, || io.read_vectored(bufs))
    }
}

impl<T: AsFd> AsyncRead for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this: &Async<T> = *self;
        this.poll_io(Dir::Read, cx, || this.get_ref().read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let this: &Async<T> = *self;
        this.poll_io(Dir::Read, cx, || this.get_ref().read_vectored(bufs))
    }
}

impl<T: AsFd + Write> AsyncWrite for Async<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let (source, io) = self.get_mut().parts();
        poll_io(source, Dir::Write, cx, || io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let (source, io) = self.get_mut().parts();
        poll_io(source, Dir::Write, cx, || io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (source, io) = self.get_mut().parts();
        poll_io(source, Dir::Write, cx, || io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl<T: AsFd> AsyncWrite for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this: &Async<T> = *self;
        this.poll_io(Dir::Write, cx, || this.get_ref().write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this: &Async<T> = *self;
        this.poll_io(Dir::Write, cx, || this.get_ref().write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this: &Async<T> = *self;
        this.poll_io(Dir::Write, cx, || this.get_ref().flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

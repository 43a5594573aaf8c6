//! What [`TcpListener`](crate::TcpListener) and
//! [`UnixListener`](crate::UnixListener) share: the accept loop, which backs
//! off while the process is out of fds instead of spinning, skips transient
//! errors, and survives connections it cannot register with the reactor;
//! [`Incoming`]; and the methods that differ only in the types they name
//! (`listener_socket!`).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tarn_reactor::{Timer, WaitSlot};

/// A listening socket: [`TcpListener`](crate::TcpListener) or
/// [`UnixListener`](crate::UnixListener).
///
/// Sealed; it names what [`Incoming`] can take connections from, so that
/// one type serves both kinds of listener.
pub trait Listener: sealed::Accept + fmt::Debug {}

pub(crate) mod sealed {
    use std::io;
    use std::task::{Context, Poll};

    /// One accept, as a listener type does it.
    pub trait Accept {
        /// The connection type.
        type Stream;
        /// The peer's address type.
        type Addr;

        /// Polls for the next connection, with the loop's memory in `state`.
        fn poll_accept(
            &self,
            state: &mut super::AcceptState,
            cx: &mut Context<'_>,
        ) -> Poll<io::Result<(Self::Stream, Self::Addr)>>;
    }
}

/// Waits for the next connection on `listener`.
pub(crate) async fn accept<L: Listener>(listener: &L) -> io::Result<(L::Stream, L::Addr)> {
    let mut accepting = Incoming::new(listener);
    std::future::poll_fn(|cx| accepting.listener.poll_accept(&mut accepting.state, cx)).await
}

/// The stream of a listener's `incoming()`: its connections, forever (an
/// `accept` in a loop, with the same back-off while out of fds).
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Incoming<'a, L> {
    listener: &'a L,
    state: AcceptState,
}

impl<'a, L: Listener> Incoming<'a, L> {
    pub(crate) fn new(listener: &'a L) -> Incoming<'a, L> {
        Incoming {
            listener,
            state: AcceptState::default(),
        }
    }
}

impl<L: Listener> Stream for Incoming<'_, L> {
    type Item = io::Result<L::Stream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let res = ready!(this.listener.poll_accept(&mut this.state, cx));
        Poll::Ready(Some(res.map(|(stream, _)| stream)))
    }
}

/// The inherent methods and trait impls that `TcpListener` and
/// `UnixListener` share, for `$ty` holding `io: Async<$std>`, accepting
/// `$stream`s from peers addressed by `$addr`.
macro_rules! listener_socket {
    ($ty: ident, $std: ty, $stream: ty, $addr: ty) => {
        impl $crate::accept::Listener for $ty {}

        impl $ty {
            /// Waits for a connection; returns it with the peer's address.
            ///
            /// When the process or system is out of file descriptors
            /// (`EMFILE`, `ENFILE`), waits (5 ms, doubling up to 1 s) and
            /// tries again, so the server neither spins nor stops: existing
            /// connections keep being served, and accepting resumes once fds
            /// are freed. Transient errors (`ECONNABORTED`: the peer gave up
            /// while queued) are skipped, and so is a connection that cannot
            /// be registered with the reactor.
            pub async fn accept(&self) -> io::Result<($stream, $addr)> {
                $crate::accept::accept(self).await
            }

            /// The stream of incoming connections ([`accept`](Self::accept)
            /// in a loop).
            pub fn incoming(&self) -> $crate::Incoming<'_, $ty> {
                $crate::Incoming::new(self)
            }

            /// The address the listener is bound to.
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.io.get_ref().local_addr()
            }

            /// Deregisters the listener and returns it as a std listener
            /// (still non-blocking).
            pub fn into_std(self) -> io::Result<$std> {
                self.io.into_inner()
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &std::os::fd::AsRawFd::as_raw_fd(&self.io))
                    .field("local_addr", &self.local_addr().ok())
                    .finish()
            }
        }

        fd_traits!($ty);
    };
}

/// The first and the longest pause of `accept` while the process is out of fds.
const EXHAUSTED_PAUSE: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// The accept loop's memory: the pause in progress while out of fds.
///
/// Generic over what is accepted, so that any listener can share it: the
/// caller passes its accept syscall wrapped in `poll_read_in` with the slot.
#[derive(Debug)]
pub struct AcceptState {
    /// The accept's own place among the listener's waiters (so that any
    /// number of tasks can accept on one listener), left when dropped.
    slot: WaitSlot,
    pause: Option<Timer>,
    next_pause: Duration,
}

impl Default for AcceptState {
    fn default() -> AcceptState {
        AcceptState {
            slot: WaitSlot::default(),
            pause: None,
            next_pause: EXHAUSTED_PAUSE.0,
        }
    }
}

impl AcceptState {
    /// Polls `accept` until it yields a connection that `register` takes
    /// (puts on the reactor), or an error worth reporting: pauses while out
    /// of fds or kernel memory, skips transient errors.
    ///
    /// A connection that cannot be registered (an fd past `FD_SETSIZE` on
    /// the select backend, say) is closed and the loop goes on: one
    /// connection's failure must not end a server's accept loop.
    pub(crate) fn poll<T, U>(
        &mut self,
        cx: &mut Context<'_>,
        mut accept: impl FnMut(&mut WaitSlot, &mut Context<'_>) -> Poll<io::Result<T>>,
        mut register: impl FnMut(T) -> io::Result<U>,
    ) -> Poll<io::Result<U>> {
        loop {
            if let Some(pause) = &mut self.pause {
                ready!(Pin::new(pause).poll(cx));
                self.pause = None;
            }
            match ready!(accept(&mut self.slot, cx)) {
                Ok(conn) => match register(conn) {
                    Ok(conn) => {
                        self.next_pause = EXHAUSTED_PAUSE.0;
                        return Poll::Ready(Ok(conn));
                    }
                    // `register` closed the connection; go on to the next.
                    Err(e) if !out_of_resources(&e) => continue,
                    Err(_) => {}
                },
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR)
                    ) =>
                {
                    continue
                }
                Err(e) if !out_of_resources(&e) => return Poll::Ready(Err(e)),
                Err(_) => {}
            }
            // Out of fds or kernel memory. Edge-triggered readiness will not
            // repeat for the connections still queued: retry on a timer.
            self.pause = Some(Timer::after(self.next_pause));
            self.next_pause = (self.next_pause * 2).min(EXHAUSTED_PAUSE.1);
        }
    }
}

/// Out of fds or kernel memory: worth a pause rather than a retry.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ENOSPC)
    )
}

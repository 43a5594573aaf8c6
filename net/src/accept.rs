//! The accept loop shared by every listener: it backs off while the
//! process is out of fds instead of spinning, skips transient errors, and
//! survives connections it cannot register with the reactor.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tarn_reactor::Timer;

/// The first and the longest pause of `accept` while the process is out of fds.
const EXHAUSTED_PAUSE: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// The accept loop's memory: the pause in progress while out of fds.
///
/// Generic over what is accepted, so that any listener can share it: the
/// caller passes its accept syscall wrapped in `poll_read_with`.
#[derive(Debug)]
pub(crate) struct AcceptState {
    pause: Option<Timer>,
    next_pause: Duration,
}

impl Default for AcceptState {
    fn default() -> AcceptState {
        AcceptState {
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
        mut accept: impl FnMut(&mut Context<'_>) -> Poll<io::Result<T>>,
        mut register: impl FnMut(T) -> io::Result<U>,
    ) -> Poll<io::Result<U>> {
        loop {
            if let Some(pause) = &mut self.pause {
                ready!(Pin::new(pause).poll(cx));
                self.pause = None;
            }
            match ready!(accept(cx)) {
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

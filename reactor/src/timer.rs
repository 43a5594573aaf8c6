//! Timers: [`Timer`] (a future and a stream) and [`timeout`].
//!
//! A timer is an entry in the timer queue of the reactor of the thread that
//! polls it (this thread's own inside a tarn executor, the shared one
//! elsewhere), inserted when it is first polled and removed when it fires
//! or is dropped; polled again on another thread, it moves to that
//! thread's reactor. Deadlines go into buckets of about a millisecond,
//! sorted once when they come due: an insert is an index and a push, a
//! cancel a binary search in one bucket, so a million pending timers stay
//! cheap. The driver sleeps in `select` until the nearest deadline (and,
//! when more timers fall due within 50 µs after it, until the last of
//! those, so that a burst costs one wakeup per 50 µs), and a timer never
//! completes before its deadline.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::reactor::Reactor;
use crate::timer_queue::TimerId;

/// Completes at a deadline, and for intervals at every period after it.
///
/// As a `Future` it yields the `Instant` it fired at (its deadline); as a
/// `Stream` it yields every deadline of an interval (a one-shot timer
/// yields once; [`Timer::never`] never does). Intervals do not drift: each
/// deadline is the previous one plus the period, and ticks missed while the
/// program was busy are skipped, not bunched.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tarn_reactor::Timer;
///
/// let start = Instant::now();
/// tarn_reactor::drive(Timer::after(Duration::from_millis(5)));
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// ```
pub struct Timer {
    /// The registration: the reactor (of the thread that polled it), the
    /// deadline as that reactor keys it (for `when`; a change of deadline
    /// cancels first), the id, and which waker the reactor holds.
    registered: Option<(Arc<Reactor>, u64, TimerId, WakerId)>,
    /// The next deadline; `None` for a timer that never fires.
    when: Option<Instant>,
    /// For intervals, the period.
    period: Option<Duration>,
}

impl Timer {
    /// A timer that fires `duration` from now.
    pub fn after(duration: Duration) -> Timer {
        Timer::at_opt(Instant::now().checked_add(duration), None)
    }

    /// A timer that fires at `deadline`.
    pub fn at(deadline: Instant) -> Timer {
        Timer::at_opt(Some(deadline), None)
    }

    /// A stream that fires every `period`, the first time one period from now.
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    pub fn interval(period: Duration) -> Timer {
        assert!(
            !period.is_zero(),
            "Timer::interval: the period must not be zero"
        );
        Timer::at_opt(Instant::now().checked_add(period), Some(period))
    }

    /// A timer that never fires (for `select!` arms that are switched off).
    pub fn never() -> Timer {
        Timer::at_opt(None, None)
    }

    fn at_opt(when: Option<Instant>, period: Option<Duration>) -> Timer {
        Timer {
            registered: None,
            when,
            period,
        }
    }

    /// Re-targets this timer to fire `duration` from now (reusing it).
    pub fn set_after(&mut self, duration: Duration) {
        match Instant::now().checked_add(duration) {
            Some(deadline) => self.set_at(deadline),
            // Like `Timer::after`: too far away to represent means never.
            None => {
                self.cancel();
                self.when = None;
                self.period = None;
            }
        }
    }

    /// Re-targets this timer to fire at `deadline` (reusing it).
    pub fn set_at(&mut self, deadline: Instant) {
        self.cancel();
        self.when = Some(deadline);
        self.period = None;
    }

    /// The next deadline, or `None` for a timer that will never fire.
    pub fn deadline(&self) -> Option<Instant> {
        self.when
    }

    fn cancel(&mut self) {
        if let Some((reactor, when, id, _)) = self.registered.take() {
            reactor.remove_timer(when, id);
        }
    }

    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        let Some(when) = self.when else {
            return Poll::Pending;
        };
        // Fired by the reactor: due, and no need to read the clock.
        let fired = matches!(&self.registered, Some((reactor, at, ..)) if reactor.has_fired(*at));
        let mut now = None;
        if !fired {
            let time = Instant::now();
            if time < when {
                self.register(when, cx);
                return Poll::Pending;
            }
            now = Some(time);
        }
        self.cancel();
        match self.period {
            Some(period) => {
                // Next deadline: the first `when + k * period` after now.
                let now = now.unwrap_or_else(Instant::now);
                let behind = now.saturating_duration_since(when).as_nanos() / period.as_nanos();
                let steps = u32::try_from(behind + 1).unwrap_or(u32::MAX);
                self.when = when.checked_add(period * steps);
            }
            None => self.when = None,
        }
        Poll::Ready(Some(when))
    }

    /// Makes sure a reactor will wake `cx` at `when`: the one of the thread
    /// polling. A timer polled again on the same reactor with the same
    /// waker is left as it is; with another waker its entry is updated;
    /// on another thread (even with the same waker: a task of a
    /// multi-threaded executor moves between threads) it moves there.
    fn register(&mut self, when: Instant, cx: &Context<'_>) {
        if let Some((reactor, at, id, waker)) = &mut self.registered {
            if reactor.is_current() {
                if *waker != WakerId::of(cx.waker()) {
                    // Refresh the waker; re-insert if the entry is gone.
                    if !reactor.update_timer(*at, *id, cx.waker()) {
                        *id = reactor.insert_timer(*at, cx.waker());
                    }
                    *waker = WakerId::of(cx.waker());
                }
                return;
            }
            self.cancel();
        }
        let reactor =
            Reactor::current().unwrap_or_else(|e| panic!("tarn: cannot start the reactor: {e}"));
        let at = reactor.deadline_ns(when);
        let id = reactor.insert_timer(at, cx.waker());
        self.registered = Some((reactor, at, id, WakerId::of(cx.waker())));
    }
}

/// A waker's identity (its data and vtable addresses), as `Waker::will_wake`
/// compares them: what a timer remembers of the waker its reactor holds,
/// instead of a clone of its own. While the timer is registered and has not
/// fired, the reactor's clone keeps that waker alive, so no other waker can
/// come to have its identity meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WakerId(usize, usize);

impl WakerId {
    fn of(waker: &Waker) -> WakerId {
        WakerId(waker.data() as usize, waker.vtable() as *const _ as usize)
    }
}

impl Future for Timer {
    type Output = Instant;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        match self.get_mut().poll_tick(cx) {
            Poll::Ready(Some(when)) => Poll::Ready(when),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl Stream for Timer {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("when", &self.when)
            .field("period", &self.period)
            .finish()
    }
}

/// The error of a [`timeout`] that expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut(pub Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

impl From<TimedOut> for io::Error {
    fn from(e: TimedOut) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        timer: Timer,
        duration: Duration,
    }
}

/// Runs `future` for at most `duration`: its output, or [`TimedOut`].
///
/// ```
/// use std::time::Duration;
/// use tarn_reactor::{timeout, Timer};
///
/// let slow = Timer::after(Duration::from_secs(60));
/// let res = tarn_reactor::drive(timeout(Duration::from_millis(5), slow));
/// assert!(res.is_err());
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        timer: Timer::after(duration),
        duration,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(this.timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(TimedOut(*this.duration))),
            Poll::Pending => Poll::Pending,
        }
    }
}

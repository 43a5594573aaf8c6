//! [`TarnTimer`]: hyper's timer on tarn's timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tarn::Timer;

/// hyper's [`rt::Timer`](hyper::rt::Timer) on tarn's timers.
///
/// Give it to hyper's connection builders (the [`Server`](crate::Server)
/// does): without a timer hyper has no header read timeout, keep-alive
/// pings or idle timeouts at all, and setting one of those without a timer
/// panics. A [`reset`](hyper::rt::Timer::reset) moves the existing timer to
/// its new deadline instead of allocating another.
///
/// ```
/// use std::time::Duration;
/// use hyper::rt::Timer;
///
/// tarn::block_on(async {
///     let start = std::time::Instant::now();
///     tarn_hyper::TarnTimer.sleep(Duration::from_millis(5)).await;
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TarnTimer;

impl hyper::rt::Timer for TarnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TarnSleep(Timer::after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TarnSleep(Timer::at(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<TarnSleep>() {
            Some(mut ours) => ours.0.set_at(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A sleep of [`TarnTimer`]: a tarn [`Timer`] (which is `Send + Sync`, as
/// hyper requires of its sleeps).
#[derive(Debug)]
struct TarnSleep(Timer);

impl Future for TarnSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl hyper::rt::Sleep for TarnSleep {}

//! Timers and `timeout()`: timers fire in deadline order and never before
//! their deadline (down to sub-millisecond durations, and for 100k timers at
//! once); the Instant a timer yields is its deadline; a timer wakes the
//! last task that polled it; `set_after`/`set_at` re-target a timer (and a
//! duration past what `Instant` can hold means never, as for `after`);
//! `Timer::never` only ends by a timeout; intervals yield
//! exactly `first + k * period` and skip, rather than bunch, the ticks a
//! stalled consumer missed; `timeout()` reports `TimedOut` with its duration
//! (an `io::Error` of kind `TimedOut`) and lets an inner future that is
//! ready first win. Re-run on the poll and select backends. (Stats-based
//! checks that dropped timers are removed live in `cancellation.rs`.)

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use tarn_reactor::{drive, timeout, TimedOut, Timer};
use tarn_test_support::{bounded, isolated, native_or_valgrind, rerun_on_poll_and_select, Rng};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
}

/// Durations from zero through sub-millisecond to tens of milliseconds.
const DURATIONS: &[Duration] = &[
    Duration::ZERO,
    Duration::from_nanos(1),
    Duration::from_micros(1),
    Duration::from_micros(10),
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_micros(999),
    Duration::from_millis(1),
    Duration::from_micros(1_001),
    Duration::from_micros(1_500),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(13),
    Duration::from_millis(30),
];

/// A thread that sleeps in the reactor until a timer has its timer slack
/// lowered from Linux's default 50 µs to 20 µs, so that timers fire on time.
#[test]
fn a_thread_that_sleeps_until_a_timer_gets_a_20_us_timer_slack() {
    // In a process of its own, so that no other test's thread is driving
    // the reactor (this one would then wait its turn, not sleep in it).
    isolated(
        "a_thread_that_sleeps_until_a_timer_gets_a_20_us_timer_slack",
        || {
            let after = std::thread::spawn(|| {
                // A new thread inherits its creator's slack: start from the
                // default.
                // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and
                // changes only this thread's slack.
                unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 50_000 as libc::c_ulong, 0, 0, 0) };
                // Long enough to still be pending when the thread first
                // goes to sleep, even under valgrind.
                let wait =
                    native_or_valgrind(Duration::from_millis(20), Duration::from_millis(500));
                drive(Timer::after(wait));
                // SAFETY: PR_GET_TIMERSLACK takes no argument and only reads.
                unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) }
            })
            .join()
            .unwrap();
            assert_eq!(after, 20_000);
        },
    );
}

#[test]
fn timer_after_never_fires_early() {
    bounded("never_early", || {
        drive(async {
            for _ in 0..3 {
                for &d in DURATIONS {
                    let start = Instant::now();
                    let timer = Timer::after(d);
                    let deadline = timer.deadline().expect("a finite timer has a deadline");
                    assert!(deadline >= start + d);
                    let fired = timer.await;
                    let now = Instant::now();
                    assert!(now - start >= d, "Timer::after({d:?}) fired early");
                    assert_eq!(fired, deadline, "a timer yields its deadline");
                    assert!(fired <= now);
                }
            }
        });
    });
}

#[test]
fn timer_at_never_fires_early_and_past_deadlines_fire_at_once() {
    bounded("timer_at", || {
        drive(async {
            for &d in DURATIONS {
                let deadline = Instant::now() + d;
                assert_eq!(Timer::at(deadline).await, deadline);
                assert!(Instant::now() >= deadline, "Timer::at fired early");
            }
            let past = Instant::now() - Duration::from_millis(5);
            assert_eq!(Timer::at(past).await, past);
        });
    });
}

/// Starts a timer for each of `offsets` (after a base `margin` from now),
/// polls each once so that all are registered before any is due, and
/// returns the offsets in the order their timers completed. Checks that
/// none fired early and each yielded its deadline. `None` if the setup
/// outlasted `margin` (a loaded machine), which would void the order.
fn completion_order(offsets: &[Duration], margin: Duration) -> Option<Vec<Duration>> {
    let base = Instant::now() + margin;
    let fired = RefCell::new(Vec::with_capacity(offsets.len()));
    let mut in_time = true;
    drive(async {
        let mut set: FuturesUnordered<_> = offsets
            .iter()
            .map(|&offset| {
                let fired = &fired;
                async move {
                    let deadline = base + offset;
                    let yielded = Timer::at(deadline).await;
                    assert!(Instant::now() >= deadline, "a timer fired early");
                    assert_eq!(yielded, deadline);
                    fired.borrow_mut().push(offset);
                }
            })
            .collect();
        // Poll every timer once (they register), then wait for all.
        std::future::poll_fn(|cx| {
            in_time = set.poll_next_unpin(cx).is_pending() && Instant::now() < base;
            Poll::Ready(())
        })
        .await;
        while set.next().await.is_some() {}
    });
    let fired = fired.into_inner();
    assert_eq!(fired.len(), offsets.len());
    in_time.then_some(fired)
}

/// [`completion_order`] with `margin`, retried with larger margins while
/// the machine is too busy for the setup to finish in time.
fn completion_order_with_retries(offsets: &[Duration], margin: Duration) -> Vec<Duration> {
    for attempt in 0..3 {
        if let Some(order) = completion_order(offsets, margin * 4u32.pow(attempt)) {
            return order;
        }
    }
    panic!(
        "setting up {} timers never finished within {margin:?} × 16",
        offsets.len()
    );
}

/// Panics unless `order` is sorted, naming the first inversion.
fn assert_in_deadline_order(order: &[Duration]) {
    if let Some(i) = order.windows(2).position(|w| w[0] > w[1]) {
        panic!(
            "timer {i} (deadline {:?} after base) completed before one due {:?} after base",
            order[i],
            order[i + 1]
        );
    }
}

#[test]
fn timers_fire_in_deadline_order() {
    bounded("deadline_order", || {
        // Deadlines 1 ms apart, inserted shuffled.
        let mut ranks: Vec<u64> = (0..20).collect();
        let mut rng = Rng::xorshift(7);
        for i in (1..ranks.len()).rev() {
            ranks.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let offsets: Vec<Duration> = ranks.iter().map(|&r| Duration::from_millis(r)).collect();
        // Under valgrind, setting up takes longer.
        let margin = native_or_valgrind(Duration::from_millis(20), Duration::from_millis(250));
        let order = completion_order_with_retries(&offsets, margin);
        let expected: Vec<Duration> = (0..20).map(Duration::from_millis).collect();
        assert_eq!(order, expected);
    });
}

#[test]
fn hundred_thousand_random_timers_all_fire_in_order_and_none_early() {
    bounded("100k_timers", || {
        // 1,000 under valgrind.
        let n: usize = native_or_valgrind(100_000, 1_000);
        let mut rng = Rng::xorshift(100_000);
        let offsets: Vec<Duration> = (0..n)
            .map(|_| Duration::from_micros(rng.below(200_000)))
            .collect();
        // Creating and first polling 100k timers takes a while in debug
        // builds; the deadlines start after that, so that no timer is
        // already due at its first poll (where it completes in poll order).
        // Completion order is then deadline order: the reactor wakes due
        // timers in deadline order and FuturesUnordered polls in wake order.
        let margin = native_or_valgrind(Duration::from_millis(700), Duration::from_secs(3));
        let order = completion_order_with_retries(&offsets, margin);
        assert_in_deadline_order(&order);
    });
}

#[test]
fn set_after_reuses_a_timer_after_it_fired_and_while_it_is_pending() {
    bounded("set_after", || {
        drive(async {
            let mut timer = Timer::after(Duration::from_millis(1));
            (&mut timer).await;
            // Fired one-shot timers have no deadline until re-targeted.
            assert_eq!(timer.deadline(), None);
            for &d in &[Duration::from_micros(300), Duration::from_millis(3)] {
                let start = Instant::now();
                timer.set_after(d);
                let deadline = timer.deadline().unwrap();
                assert_eq!((&mut timer).await, deadline);
                assert!(start.elapsed() >= d, "re-armed timer fired early");
            }

            // Re-target a pending timer: first later, then sooner.
            let mut timer = Timer::after(Duration::from_secs(3600));
            assert!(timeout(Duration::from_millis(1), &mut timer).await.is_err());
            let start = Instant::now();
            timer.set_after(Duration::from_millis(2));
            (&mut timer).await;
            assert!(start.elapsed() >= Duration::from_millis(2));

            // Still pending at the next line, even if this thread is
            // descheduled for a while on a busy machine or under valgrind
            // (re-targeted below, so the length costs nothing).
            let pending = native_or_valgrind(Duration::from_millis(50), Duration::from_millis(250));
            let mut timer = Timer::after(pending);
            assert!(timeout(Duration::ZERO, &mut timer).await.is_err());
            let start = Instant::now();
            let target = start + Duration::from_millis(4);
            timer.set_at(target);
            assert_eq!((&mut timer).await, target);
            assert!(Instant::now() >= target);
        });
    });
}

#[test]
fn timer_first_polled_elsewhere_wakes_the_task_that_polls_it_last() {
    // A timer polled once by hand (another waker), then awaited by a task:
    // the reactor must wake the new waker, not the old one.
    bounded("timer_new_waker", || {
        // Still pending at its first poll, even on a busy machine or under
        // valgrind.
        let pending = native_or_valgrind(Duration::from_millis(50), Duration::from_millis(250));
        let mut timer = Timer::after(pending);
        let deadline = timer.deadline().unwrap();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut timer).poll(&mut cx).is_pending());
        // On another thread, under another block_on.
        let fired = std::thread::spawn(move || drive(timer)).join().unwrap();
        assert_eq!(fired, deadline);
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn never_timer_only_ends_by_timeout() {
    bounded("never", || {
        drive(async {
            assert_eq!(Timer::never().deadline(), None);
            let d = Duration::from_millis(15);
            let start = Instant::now();
            let res = timeout(d, Timer::never()).await;
            assert_eq!(res, Err(TimedOut(d)));
            assert!(start.elapsed() >= d, "the timeout fired early");
        });
    });
}

#[test]
fn timer_after_a_duration_too_large_for_instant_never_fires() {
    bounded("huge_after", || {
        drive(async {
            let timer = Timer::after(Duration::MAX);
            assert_eq!(timer.deadline(), None);
            assert!(timeout(Duration::from_millis(2), timer).await.is_err());
        });
    });
}

#[test]
fn set_after_a_duration_too_large_for_instant_never_fires() {
    // Timer::after(Duration::MAX) is a timer that never fires; re-targeting
    // an existing timer the same way should behave alike, not panic on the
    // overflow of `Instant + Duration`.
    bounded("huge_set_after", || {
        drive(async {
            let mut timer = Timer::after(Duration::from_millis(1));
            timer.set_after(Duration::MAX);
            assert_eq!(timer.deadline(), None);
            assert!(timeout(Duration::from_millis(2), timer).await.is_err());
        });
    });
}

/// Asserts that `t` lies on the grid `first + k * period`; returns `k`.
fn grid_index(t: Instant, first: Instant, period: Duration) -> u32 {
    let k = (t - first).as_nanos() / period.as_nanos();
    let k = u32::try_from(k).unwrap();
    assert_eq!(t, first + period * k, "{t:?} is off the grid");
    k
}

#[test]
fn interval_yields_exactly_first_plus_k_periods() {
    bounded("interval_grid", || {
        drive(async {
            for period in [Duration::from_micros(700), Duration::from_millis(3)] {
                let mut interval = Timer::interval(period);
                let first = interval.deadline().unwrap();
                let mut expected = first;
                for k in 0..40 {
                    let tick = interval.next().await.expect("intervals never end");
                    let polled = Instant::now();
                    // Deterministic: the deadline itself is yielded.
                    assert_eq!(tick, expected, "tick {k}");
                    assert!(polled >= tick, "tick {k} early");
                    // The next deadline is the next grid point, unless this
                    // tick was yielded so late that the next one was already
                    // missed too (a loaded machine): then the first grid
                    // point after the poll.
                    let next = interval.deadline().unwrap();
                    grid_index(next, first, period);
                    assert!(next > tick);
                    assert!(
                        next == tick + period || next - period <= polled,
                        "tick {k}: skipped to {:?} though polled at {:?}",
                        next - first,
                        polled - first
                    );
                    expected = next;
                }
            }
        });
    });
}

#[test]
fn interval_skips_the_ticks_a_stalled_consumer_missed() {
    bounded("interval_skip", || {
        let period = Duration::from_millis(4);
        drive(async {
            let mut interval = Timer::interval(period);
            let first = interval.deadline().unwrap();
            assert_eq!(interval.next().await, Some(first));
            let pending = interval.deadline().unwrap();
            // Stall for five periods without polling.
            std::thread::sleep(period * 5);
            // The overdue tick is yielded at once: one of them, not five.
            let before = Instant::now();
            let t1 = interval.next().await.unwrap();
            let after = Instant::now();
            assert_eq!(t1, pending, "the overdue tick comes first");
            assert!(t1 <= before);
            // The next one is the first grid point after that poll.
            let t2 = interval.next().await.unwrap();
            grid_index(t2, first, period);
            assert!(t2 > before, "a missed tick was yielded again");
            assert!(
                t2 - period <= after,
                "a tick was skipped that was not missed"
            );
            assert!(t2 - t1 >= period * 5, "fewer than four ticks were skipped");
            assert!(Instant::now() >= t2);
            assert_eq!(
                interval
                    .deadline()
                    .map(|d| grid_index(d, first, period) > 0),
                Some(true)
            );
        });
    });
}

#[test]
#[should_panic(expected = "period must not be zero")]
fn interval_of_zero_panics_with_a_message() {
    drop(Timer::interval(Duration::ZERO));
}

#[test]
fn timeout_reports_timed_out_with_its_duration() {
    bounded("timeout_err", || {
        drive(async {
            for d in [
                Duration::ZERO,
                Duration::from_micros(50),
                Duration::from_millis(5),
            ] {
                let start = Instant::now();
                let res = timeout(d, std::future::pending::<()>()).await;
                assert_eq!(res, Err(TimedOut(d)));
                assert!(start.elapsed() >= d, "timeout({d:?}) expired early");
            }
            let err = timeout(Duration::from_millis(1), Timer::never())
                .await
                .unwrap_err();
            assert_eq!(err.0, Duration::from_millis(1));
            assert!(err.to_string().contains("1ms"), "{err}");
            let io_err: io::Error = err.into();
            assert_eq!(io_err.kind(), io::ErrorKind::TimedOut);
            assert!(io_err.to_string().contains("timed out"), "{io_err}");
            // `?` converts it in an io::Result function.
            let via_question_mark = async {
                timeout(Duration::ZERO, std::future::pending::<()>()).await?;
                io::Result::Ok(())
            };
            assert_eq!(
                via_question_mark.await.unwrap_err().kind(),
                io::ErrorKind::TimedOut
            );
        });
    });
}

#[test]
fn timeout_lets_an_inner_future_that_finishes_first_win() {
    bounded("timeout_ok", || {
        drive(async {
            assert_eq!(timeout(Duration::from_secs(60), async { 7 }).await, Ok(7));
            // Ready at the same poll as an expired timeout: the inner wins.
            assert_eq!(timeout(Duration::ZERO, async { 8 }).await, Ok(8));
            let inner = Timer::after(Duration::from_millis(2));
            let deadline = inner.deadline().unwrap();
            assert_eq!(timeout(Duration::from_secs(60), inner).await, Ok(deadline));
            // An inner future that needs several polls.
            let (tx, rx) = futures::channel::oneshot::channel();
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                tx.send(9).unwrap();
            });
            assert_eq!(timeout(Duration::from_secs(60), rx).await, Ok(Ok(9)));
            sender.join().unwrap();
        });
    });
}

#[test]
fn timeout_polls_the_inner_future_until_the_deadline() {
    // The inner future becomes ready after being polled a few times; the
    // timeout must keep polling it when woken, not only at the deadline.
    struct ReadyOnThirdPoll(u32);
    impl Future for ReadyOnThirdPoll {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            self.0 += 1;
            if self.0 == 3 {
                return Poll::Ready(self.0);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    bounded("timeout_polls_inner", || {
        let res = drive(timeout(Duration::from_secs(60), ReadyOnThirdPoll(0)));
        assert_eq!(res, Ok(3));
    });
}

#[test]
fn timers_on_many_threads_never_fire_early() {
    bounded("timers_many_threads", || {
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut rng = Rng::xorshift(t + 11);
                    drive(async {
                        for _ in 0..100 {
                            let d = Duration::from_micros(rng.below(3_000));
                            let start = Instant::now();
                            Timer::after(d).await;
                            assert!(start.elapsed() >= d, "thread {t}: {d:?} fired early");
                        }
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn short_timers_from_threads_sharing_the_driver_all_fire() {
    // Several threads insert timers due within microseconds while another
    // thread may be firing timers: a timer that comes due between its
    // clock read and its insertion must still fire (no lost wakeup, which
    // the watchdog would turn into a failure), and none fires early.
    // Alone in a child process: the timer gauge is process-wide.
    isolated(
        "short_timers_from_threads_sharing_the_driver_all_fire",
        || {
            let threads: Vec<_> = (0..3)
                .map(|t| {
                    std::thread::spawn(move || {
                        let mut rng = Rng::xorshift(40 + t);
                        drive(async {
                            for _ in 0..native_or_valgrind(2_000, 200) {
                                let d = Duration::from_micros(rng.below(30));
                                let start = Instant::now();
                                Timer::after(d).await;
                                assert!(start.elapsed() >= d, "a timer fired early");
                            }
                        });
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(tarn_reactor::stats().timers, 0);
        },
    );
}

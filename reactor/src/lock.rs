//! The driver lock, [`ReactorLock`]: the right to wait in a reactor's
//! `select` and to wake what is ready.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::TryLockError;
use std::task::Waker;
use std::time::{Duration, Instant};

use tarn_selector::Events;

use crate::reactor::{lock, nanos_since, Reactor};
use crate::sync::MutexGuard;

/// What the driver lock guards: the event buffer and the batch of wakers.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) events: Events,
    pub(crate) wakers: Vec<Waker>,
}

/// The right to drive a reactor, from [`Reactor::lock`] or [`Reactor::try_lock`].
pub struct ReactorLock<'a> {
    reactor: &'a Reactor,
    /// `Some` until dropped: `Drop` releases it before unparking the threads
    /// that wait for it.
    driver: Option<MutexGuard<'a, Driver>>,
}

impl Reactor {
    /// Takes the driver lock if nobody holds it.
    pub fn try_lock(&self) -> Option<ReactorLock<'_>> {
        let driver = match self.driver.try_lock() {
            Ok(driver) => driver,
            // A panic while the lock was held (say, a waker that panicked
            // in `react`) leaves the driver state usable: carry on, as
            // `lock` does, rather than refuse the lock forever.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(ReactorLock {
            reactor: self,
            driver: Some(driver),
        })
    }

    /// Takes the driver lock, waiting for whoever holds it.
    pub fn lock(&self) -> ReactorLock<'_> {
        ReactorLock {
            reactor: self,
            driver: Some(crate::sync::lock(&self.driver)),
        }
    }
}

impl ReactorLock<'_> {
    /// Waits for I/O events or the next timer, at most `timeout` (`None`:
    /// until something happens or [`Reactor::notify`] is called), then wakes
    /// every task whose I/O is ready or whose timer is due. Returns how many
    /// wakers were woken.
    ///
    /// On the shared reactor, this also drives the reactors of threads that
    /// stopped driving their own while others' wakers wait there: their
    /// timers bound the wait, and those with events or due timers are
    /// reacted on before this returns.
    pub fn react(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let reactor = self.reactor;
        let driver = self.driver.as_mut().expect("held until drop");
        let mut wakers = std::mem::take(&mut driver.wakers);
        let watched = reactor.watch.watched();
        let orphans_due = watched.iter().filter_map(|r| r.next_timer()).min();

        // Fire due timers and publish how long we will sleep in one critical
        // section, so a timer inserted meanwhile either is seen here or
        // sees `sleeping_until` and notifies us.
        let (timeout, sleeping) = {
            let mut timers = lock(&reactor.timers);
            let now = Instant::now();
            let now_ns = nanos_since(reactor.epoch, now);
            let next_timer = timers.queue.fire(now_ns, &mut wakers).map(|until| {
                let due = now_ns.saturating_add(until);
                Duration::from_nanos(timers.queue.wake_for(due) - now_ns)
            });
            reactor.fired(now_ns);
            let next_orphan = orphans_due.map(|due| due.saturating_duration_since(now));
            let timeout = if wakers.is_empty() {
                [timeout, next_timer, next_orphan]
                    .into_iter()
                    .flatten()
                    .min()
            } else {
                Some(Duration::ZERO)
            };
            let sleeping = timeout != Some(Duration::ZERO);
            if sleeping {
                // In nanoseconds from the epoch, like the deadlines;
                // `u64::MAX` (no deadline) is later than any timer.
                timers.sleeping_until = Some(match timeout {
                    Some(t) => {
                        now_ns.saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
                    }
                    None => u64::MAX,
                });
            }
            (timeout, sleeping)
        };
        if sleeping && timeout.is_some() {
            // Sleeping until a timer: make the kernel wake us on time.
            crate::sys::precise_timers();
        }
        let res = reactor.selector.select(&mut driver.events, timeout);
        if sleeping {
            // Awake again: stop asking inserts to notify, and fire what came
            // due while we slept (one lock for both).
            let mut timers = lock(&reactor.timers);
            timers.sleeping_until = None;
            let now = nanos_since(reactor.epoch, Instant::now());
            timers.queue.fire(now, &mut wakers);
            reactor.fired(now);
        }
        reactor.selects.fetch_add(1, Relaxed);
        if let Err(e) = res {
            driver.wakers = wakers;
            return Err(e);
        }

        let n = driver.events.len();
        let mut orphans_ready = Vec::new();
        if n > 0 {
            reactor.events.fetch_add(n as u64, Relaxed);
            let sources = crate::sync::lock(&reactor.sources);
            for event in driver.events.iter() {
                match crate::watch::watched_key(event.token()) {
                    None => {
                        if let Some(source) = sources.get(event.token().0) {
                            source.on_event(reactor, event, &mut wakers);
                        }
                    }
                    Some(key) => orphans_ready.push(key),
                }
            }
        }
        let woken = wakers.len();
        reactor.wakes.fetch_add(woken as u64, Relaxed);
        // A waker that panics (a foreign executor's bug) has been reported
        // by the panic hook; it must not keep the rest of the batch asleep,
        // nor end the thread that drives. One guard for the whole batch:
        // after a panic, the loop goes on with the wakers after it.
        let mut batch = wakers.drain(..);
        while panic::catch_unwind(AssertUnwindSafe(|| batch.by_ref().for_each(Waker::wake)))
            .is_err()
        {}
        drop(batch);
        driver.wakers = wakers;
        if !watched.is_empty() {
            let now = Instant::now();
            for orphan in &watched {
                let due = orphan.next_timer().is_some_and(|due| due <= now);
                if due
                    || orphan
                        .watch
                        .key()
                        .is_some_and(|key| orphans_ready.contains(&key))
                {
                    // Its own thread may have taken it back meanwhile. A
                    // failure there is that reactor's, not this one's: the
                    // other orphans are still served, and it is retried
                    // at the next wakeup (its fd stays readable).
                    if let Some(mut driving) = orphan.try_lock() {
                        if let Err(e) = driving.react(Some(Duration::ZERO)) {
                            eprintln!("tarn: a watched thread reactor failed to select: {e}");
                        }
                    }
                }
            }
        }
        Ok(woken)
    }
}

impl Drop for ReactorLock<'_> {
    fn drop(&mut self) {
        // Release first, then look for waiters: a thread that registers as a
        // waiter tries the lock again afterwards (see `driver::Parker`), so
        // between the two of us nobody is left parked on a free lock. The
        // look is a read-modify-write, as is the waiter's count update
        // (`Reactor::wait_for_lock`): with a plain load against a plain
        // store (release-then-load here, store-then-try-lock there, the
        // store-buffering pattern) the memory model lets this load miss
        // the waiter while its try-lock misses the release, and the waiter
        // sleeps with the lock free. Two RMWs on the count are ordered:
        // either this one sees the waiter, or the waiter's acquires this
        // release and its try-lock succeeds. (Found by the loom model
        // `a_parker_behind_another_driver_takes_over_when_it_leaves`. On
        // x86 the plain version is ordered too, the mutex's own RMW being
        // a full barrier; the language's memory model does not promise it.)
        drop(self.driver.take());
        if self.reactor.lock_waiter_count.fetch_add(0, SeqCst) > 0 {
            let waiters = {
                let mut waiters = crate::sync::lock(&self.reactor.lock_waiters);
                self.reactor.lock_waiter_count.store(0, SeqCst);
                std::mem::take(&mut *waiters)
            };
            waiters
                .iter()
                .for_each(crate::driver::Unparker::lock_released);
        }
    }
}

impl std::fmt::Debug for ReactorLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorLock")
            .field("reactor", &self.reactor.id())
            .finish_non_exhaustive()
    }
}

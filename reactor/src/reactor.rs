//! The [`Reactor`]: one per process, holding the selector, every registered
//! source, and the timers; whoever waits drives it.

use std::io;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{
    AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
    Ordering::SeqCst,
};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;
use tarn_selector::{Backend, Events, Interest, Mode, Notifier, Selector, Token};

use crate::source::Source;
use crate::timer_queue::{TimerId, TimerQueue};

/// The process-wide reactor.
///
/// It maps readiness events from the [`Selector`] to the wakers stored by
/// [`Async`](crate::Async) operations, and fires [`Timer`](crate::Timer)s.
/// It has no thread of its own: an executor drives it by calling
/// [`ReactorLock::react`] when it has nothing to run (tarn's `block_on` does),
/// and when no executor does, a fallback thread started on demand does.
pub struct Reactor {
    selector: Selector,
    /// `Edge` on epoll (registered once, read + write); `Oneshot` elsewhere.
    mode: Mode,
    notifier: Notifier,
    sources: Mutex<Slab<Arc<Source>>>,
    timers: Mutex<Timers>,
    /// Every timer due at or before `epoch + fired_until` nanoseconds has
    /// left `timers` (fired), and none is inserted again: a timer that sees
    /// its deadline there needs no lock to know its entry is gone.
    fired_until: AtomicU64,
    epoch: Instant,
    /// Held by whoever is driving; it owns the event buffer.
    driver: Mutex<Driver>,
    /// Threads waiting for the driver lock to be released.
    lock_waiters: Mutex<Vec<crate::driver::Unparker>>,
    lock_waiter_count: AtomicUsize,
    selects: AtomicU64,
    events: AtomicU64,
    wakes: AtomicU64,
}

#[derive(Debug)]
struct Driver {
    events: Events,
    wakers: Vec<Waker>,
}

/// The reactor's counters and gauges, from `Reactor::stats` (`tarn::stats()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Registered sources (live [`Async`](crate::Async) handles).
    pub sources: usize,
    /// Wakers waiting for a source to become readable.
    pub waiting_readers: usize,
    /// Wakers waiting for a source to become writable.
    pub waiting_writers: usize,
    /// Pending timers.
    pub timers: usize,
    /// `select` calls made so far.
    pub selects: u64,
    /// Readiness events received so far.
    pub events: u64,
    /// Wakers woken so far (by I/O events and timers).
    pub wakes: u64,
}

/// One live source, from `Reactor::sources` (`tarn::sources()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceInfo {
    /// The registered file descriptor.
    pub fd: RawFd,
    /// Its selector token.
    pub token: usize,
    /// Wakers waiting for it to become readable.
    pub readers: usize,
    /// Wakers waiting for it to become writable.
    pub writers: usize,
}

static REACTOR: OnceLock<Reactor> = OnceLock::new();
/// Held while creating the reactor, so that only one is made.
static CREATING: Mutex<()> = Mutex::new(());

impl Reactor {
    /// The process's reactor, created on first use on the backend chosen by
    /// `TARN_SELECTOR` (epoll by default).
    ///
    /// # Panics
    ///
    /// If the reactor cannot be created (an unknown `TARN_SELECTOR`, or no
    /// fds left); the message says why. [`Reactor::try_get`] returns the error.
    #[inline]
    pub fn get() -> &'static Reactor {
        match REACTOR.get() {
            Some(reactor) => reactor,
            None => {
                Reactor::start().unwrap_or_else(|e| panic!("tarn: cannot start the reactor: {e}"))
            }
        }
    }

    /// The process's reactor, or the error that prevented creating it.
    ///
    /// A failure is not remembered: the next call tries again, so a
    /// reactor that could not start for want of fds starts once some are
    /// free.
    #[inline]
    pub fn try_get() -> io::Result<&'static Reactor> {
        match REACTOR.get() {
            Some(reactor) => Ok(reactor),
            None => Reactor::start(),
        }
    }

    /// Creates the reactor, unless another thread just did.
    #[cold]
    fn start() -> io::Result<&'static Reactor> {
        let _creating = lock(&CREATING);
        if let Some(reactor) = REACTOR.get() {
            return Ok(reactor);
        }
        let reactor = Reactor::new()?;
        Ok(REACTOR.get_or_init(|| reactor))
    }

    fn new() -> io::Result<Reactor> {
        let selector = Selector::new()?;
        let mode = match selector.backend() {
            Backend::Epoll => Mode::Edge,
            _ => Mode::Oneshot,
        };
        Ok(Reactor {
            notifier: selector.notifier(),
            selector,
            mode,
            sources: Mutex::default(),
            timers: Mutex::default(),
            fired_until: AtomicU64::new(0),
            epoch: Instant::now(),
            driver: Mutex::new(Driver {
                events: Events::with_capacity(1024),
                wakers: Vec::new(),
            }),
            lock_waiters: Mutex::default(),
            lock_waiter_count: AtomicUsize::new(0),
            selects: AtomicU64::new(0),
            events: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
        })
    }

    /// The selector backend in use.
    pub fn backend(&self) -> Backend {
        self.selector.backend()
    }

    pub(crate) fn selector(&self) -> &Selector {
        &self.selector
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// Wakes the thread driving the reactor, if it is blocked in `select`.
    pub fn notify(&self) {
        self.notifier.notify();
    }

    /// Registers `fd` (already non-blocking). On epoll it is registered once,
    /// edge-triggered for read and write; elsewhere it is armed on demand.
    pub(crate) fn insert_io(&self, fd: RawFd) -> io::Result<Arc<Source>> {
        let mut sources = lock(&self.sources);
        let entry = sources.vacant_entry();
        let key = u32::try_from(entry.key()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "tarn: more than 2^32 sources registered with the reactor",
            )
        })?;
        let source = Arc::new(Source::new(fd, key));
        if self.mode == Mode::Edge {
            // PRIORITY too: urgent data tells reads not to trust a short
            // read (see `Source::no_drain`). The level backends re-arm
            // before waiting and see queued data anyway.
            let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
            self.selector
                .register(fd, Token(entry.key()), interest, Mode::Edge)?;
        } else {
            // Registered disarmed in effect: the first waiter re-arms it. A
            // oneshot registration must name some interest, and it fires at
            // most once before a waiter exists; its event is then recorded as
            // readiness like any other.
            self.selector
                .register(fd, Token(entry.key()), Interest::READABLE, Mode::Oneshot)?;
        }
        entry.insert(Arc::clone(&source));
        Ok(source)
    }

    /// Deregisters a source; must happen before its fd is closed.
    pub(crate) fn remove_io(&self, source: &Source) -> io::Result<()> {
        // Deregister first, outside the lock: on poll and select this may
        // wait for the driving thread to come back from the kernel, and
        // dispatching events needs the lock. Until the slab entry goes, a
        // late event still finds this same source, which is harmless.
        let res = self.selector.deregister(source.fd);
        lock(&self.sources).try_remove(source.key());
        res
    }

    /// Counters and gauges, for tests and operators.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats {
            timers: lock(&self.timers).queue.len(),
            selects: self.selects.load(Relaxed),
            events: self.events.load(Relaxed),
            wakes: self.wakes.load(Relaxed),
            ..Stats::default()
        };
        for info in self.sources() {
            stats.sources += 1;
            stats.waiting_readers += info.readers;
            stats.waiting_writers += info.writers;
        }
        stats
    }

    /// Every live source with its fd and how many wait on it: what a stuck
    /// program is waiting for.
    pub fn sources(&self) -> Vec<SourceInfo> {
        let sources: Vec<Arc<Source>> =
            lock(&self.sources).iter().map(|(_, s)| s.clone()).collect();
        sources
            .iter()
            .map(|s| {
                let waiting = s.waiting();
                SourceInfo {
                    fd: s.fd,
                    token: s.key(),
                    readers: waiting.readers,
                    writers: waiting.writers,
                }
            })
            .collect()
    }

    /// Takes the driver lock if nobody holds it.
    pub fn try_lock(&self) -> Option<ReactorLock<'_>> {
        let driver = match self.driver.try_lock() {
            Ok(driver) => driver,
            // A panic while the lock was held (say, a waker that panicked
            // in `react`) leaves the driver state usable: carry on, as
            // `lock` does, rather than refuse the lock forever.
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
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
            driver: Some(lock(&self.driver)),
        }
    }

    /// A waker was stored: make sure somebody will drive the reactor
    /// (starting the fallback thread if need be; an error if it cannot).
    pub(crate) fn ensure_driven(&self, waker: &Waker) -> io::Result<()> {
        crate::driver::ensure_driven(waker)
    }

    /// `when` as the timer queue keys it: nanoseconds from the reactor's
    /// epoch (0 for an instant before it).
    pub(crate) fn deadline_ns(&self, when: Instant) -> u64 {
        nanos_since(self.epoch, when)
    }

    /// Registers a timer due at `when` (from [`deadline_ns`](Self::deadline_ns));
    /// returns its id. Wakes the driver if the new deadline is earlier than
    /// the one it sleeps until.
    pub(crate) fn insert_timer(&self, when: u64, waker: &Waker) -> TimerId {
        let mut timers = lock(&self.timers);
        if self.has_fired(when) {
            // Came due since the caller looked at the clock, and timers up
            // to it have fired already: fire this one now.
            drop(timers);
            waker.wake_by_ref();
            return TimerId::NONE;
        }
        let id = timers.queue.insert(when, waker.clone());
        let wake_driver = timers.sleeping_until.is_some_and(|until| when < until);
        drop(timers);
        if wake_driver {
            self.notify();
        }
        // A timer has no error to return: if no driver can be started now,
        // it fires once one runs (the next waiter tries again).
        let _ = self.ensure_driven(waker);
        id
    }

    /// Replaces the waker of a pending timer; false if it already fired.
    pub(crate) fn update_timer(&self, id: TimerId, waker: &Waker) -> bool {
        match lock(&self.timers).queue.waker_mut(id) {
            Some(stored) => {
                if !stored.will_wake(waker) {
                    *stored = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    /// Cancels a timer due at `when` (a no-op if it fired).
    pub(crate) fn remove_timer(&self, when: u64, id: TimerId) {
        if !self.has_fired(when) {
            lock(&self.timers).queue.remove(id);
        }
    }

    /// Whether every timer due at `when` (from [`deadline_ns`](Self::deadline_ns))
    /// has fired and left the queue; if so, the clock has passed `when`.
    pub(crate) fn has_fired(&self, when: u64) -> bool {
        when <= self.fired_until.load(Acquire)
    }

    /// Adds a thread to be unparked when the driver lock is released.
    pub(crate) fn wait_for_lock(&self, unparker: crate::driver::Unparker) {
        let mut waiters = lock(&self.lock_waiters);
        waiters.push(unparker);
        self.lock_waiter_count.store(waiters.len(), SeqCst);
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("backend", &self.backend())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Nanoseconds from `epoch` to `when` (0 before it), saturating.
fn nanos_since(epoch: Instant, when: Instant) -> u64 {
    u64::try_from(when.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

impl Reactor {
    /// Timers due up to `now` have fired; called under the timers lock.
    /// `now` is in nanoseconds from the epoch.
    fn fired(&self, now: u64) {
        self.fired_until.store(now, Release);
    }
}

/// Pending timers, and whether the driver sleeps.
#[derive(Debug, Default)]
struct Timers {
    /// Deadlines in nanoseconds from the reactor's epoch.
    queue: TimerQueue,
    /// The deadline the driver sleeps until while in `select` (`None` when
    /// not sleeping): a timer due earlier must wake it.
    sleeping_until: Option<u64>,
}

/// The right to drive the reactor, from [`Reactor::lock`] or [`Reactor::try_lock`].
pub struct ReactorLock<'a> {
    reactor: &'a Reactor,
    /// `Some` until dropped: `Drop` releases it before unparking the threads
    /// that wait for it.
    driver: Option<MutexGuard<'a, Driver>>,
}

impl ReactorLock<'_> {
    /// Waits for I/O events or the next timer, at most `timeout` (`None`:
    /// until something happens or [`Reactor::notify`] is called), then wakes
    /// every task whose I/O is ready or whose timer is due. Returns how many
    /// wakers were woken.
    pub fn react(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let reactor = self.reactor;
        let driver = self.driver.as_mut().expect("held until drop");
        let mut wakers = std::mem::take(&mut driver.wakers);

        // Fire due timers and publish how long we will sleep in one critical
        // section, so a timer inserted meanwhile either is seen here or
        // sees `sleeping_until` and notifies us.
        let (timeout, sleeping) = {
            let mut timers = lock(&reactor.timers);
            let now = Instant::now();
            let now_ns = nanos_since(reactor.epoch, now);
            let next_timer = timers
                .queue
                .fire(now_ns, &mut wakers)
                .map(Duration::from_nanos);
            reactor.fired(now_ns);
            let timeout = if wakers.is_empty() {
                match (timeout, next_timer) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
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
        if n > 0 {
            reactor.events.fetch_add(n as u64, Relaxed);
            let sources = lock(&reactor.sources);
            for event in driver.events.iter() {
                if let Some(source) = sources.get(event.token().0) {
                    source.on_event(reactor, event, &mut wakers);
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
        Ok(woken)
    }
}

impl Drop for ReactorLock<'_> {
    fn drop(&mut self) {
        // Release first, then look for waiters: a thread that registers as a
        // waiter tries the lock again afterwards (see `driver::Parker`), so
        // between the two of us nobody is left parked on a free lock.
        drop(self.driver.take());
        if self.reactor.lock_waiter_count.load(SeqCst) > 0 {
            let waiters = {
                let mut waiters = lock(&self.reactor.lock_waiters);
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
        f.debug_struct("ReactorLock").finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

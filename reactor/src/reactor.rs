//! The [`Reactor`]: a selector, the sources registered with it and its
//! timers. One per thread that runs a tarn executor (on epoll), and one
//! shared by the rest of the process; whoever waits drives them.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{
    AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst,
};
#[cfg(not(loom))]
use std::sync::OnceLock;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::Instant;

use slab::Slab;
use tarn_selector::{Backend, Events, Interest, Mode, Notifier, Selector, Token};

use crate::driver::Unparker;
use crate::lock::Driver;
use crate::source::Source;
use crate::timer_queue::{TimerId, TimerQueue, COALESCE_NS};
use crate::watch::Watch;

/// A reactor: a [`Selector`], every fd registered with it (a source, with
/// cached readiness per direction and the wakers waiting on it) and its
/// timers.
///
/// It has no thread of its own. On epoll, each thread that runs a tarn
/// executor (`block_on`, [`drive`](crate::drive)) has a reactor of its
/// own and drives it by calling [`ReactorLock::react`](crate::driver::ReactorLock::react) whenever it has
/// nothing to run: the fds its tasks use and the timers they set are
/// watched there, and their events are handled on that thread alone: on
/// the hot path no lock another thread takes, and no cross-thread wakeup. The *shared*
/// reactor holds what is used where no tarn executor runs (tarn I/O awaited
/// under tokio, say), and a fallback thread started on demand drives it. On
/// the poll and select backends the shared reactor is the only one, driven
/// by tarn's executors while they run and by the fallback thread otherwise.
///
/// A source settles on the reactor of the thread that first waits on it;
/// a timer lives on the reactor of the thread that polls it. When a
/// thread stops driving its reactor while wakers that its own executor
/// will not poll wait there (another thread's, or another executor's), the
/// shared reactor watches its epoll fd and drives it on demand, so nothing
/// registered anywhere is left without a driver.
///
/// ```
/// use tarn_reactor::Reactor;
///
/// // Outside any tarn executor, the current reactor is the shared one.
/// assert!(Reactor::current()?.is_shared());
/// tarn_reactor::drive(async {
///     let here = Reactor::current()?;
///     // On epoll, a reactor of this thread's own.
///     assert_eq!(here.is_shared(), here.backend() != tarn_selector::Backend::Epoll);
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct Reactor {
    id: u64,
    /// The thread it belongs to (its name, or its id as Rust prints it);
    /// `None` for the shared reactor.
    thread: Option<String>,
    pub(crate) selector: Selector,
    /// `Edge` on epoll (registered once, read + write); `Oneshot` elsewhere.
    mode: Mode,
    notifier: Notifier,
    pub(crate) sources: crate::sync::Mutex<Slab<Arc<Source>>>,
    pub(crate) timers: Mutex<Timers>,
    /// Every timer due at or before `epoch + fired_until` nanoseconds has
    /// left `timers` (fired), and none is inserted again: a timer that sees
    /// its deadline there needs no lock to know its entry is gone.
    fired_until: AtomicU64,
    pub(crate) epoch: Instant,
    /// Held by whoever is driving; it owns the event buffer.
    pub(crate) driver: crate::sync::Mutex<Driver>,
    /// Threads waiting for the driver lock to be released.
    pub(crate) lock_waiters: crate::sync::Mutex<Vec<Unparker>>,
    pub(crate) lock_waiter_count: crate::sync::AtomicUsize,
    /// Driver guards on this reactor: its thread's `block_on` or `drive`
    /// (for the shared reactor on poll and select, any thread's).
    pub(crate) drivers: crate::sync::AtomicUsize,
    /// A waker that its drivers will not poll again was stored while they
    /// drove (another thread's, or another executor's): when the last
    /// driver stops, somebody else must drive.
    pub(crate) unserved: crate::sync::AtomicBool,
    /// Being watched by the shared reactor (a thread's reactor), or the
    /// reactors it watches (the shared one).
    pub(crate) watch: Watch,
    pub(crate) selects: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) wakes: AtomicU64,
}

/// A reactor's counters and gauges (`Reactor::stats`), or their sums over
/// every reactor (`stats()`).
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

impl std::ops::Add for Stats {
    type Output = Stats;

    fn add(self, other: Stats) -> Stats {
        Stats {
            sources: self.sources + other.sources,
            waiting_readers: self.waiting_readers + other.waiting_readers,
            waiting_writers: self.waiting_writers + other.waiting_writers,
            timers: self.timers + other.timers,
            selects: self.selects + other.selects,
            events: self.events + other.events,
            wakes: self.wakes + other.wakes,
        }
    }
}

/// One live source, from `Reactor::sources` or `sources()`.
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
    /// The id of the reactor it is registered with (`ReactorInfo::id`).
    pub reactor: u64,
}

/// A waker a reactor holds, and what for: what a task dump needs to say
/// where a task waits. The reactor knows nothing of tasks; an executor
/// recognises its own tasks' wakers by their data and vtable addresses
/// ([`Waker::data`], [`Waker::vtable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldWaker {
    /// The waker's data pointer, as an address.
    pub data: usize,
    /// Its vtable's address.
    pub vtable: usize,
    /// What it waits for.
    pub waits_for: WaitsFor,
}

/// What a [`HeldWaker`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitsFor {
    /// The fd to become readable.
    Read(RawFd),
    /// The fd to become writable.
    Write(RawFd),
    /// A timer due at this instant (to within a nanosecond).
    Timer(Instant),
}

impl HeldWaker {
    fn new(waker: &Waker, waits_for: WaitsFor) -> HeldWaker {
        HeldWaker {
            data: waker.data() as usize,
            vtable: waker.vtable() as *const _ as usize,
            waits_for,
        }
    }
}

/// The shared reactor, once created.
#[cfg(not(loom))]
static SHARED: OnceLock<Arc<Reactor>> = OnceLock::new();

// Under loom, one per model execution (a static would outlive it).
#[cfg(loom)]
loom::lazy_static! {
    static ref SHARED: Arc<Reactor> =
        Reactor::create(Selector::new().expect("the shared reactor's selector"), None);
}
/// Held while creating the shared reactor, so that only one is made.
#[cfg(not(loom))]
static CREATING: Mutex<()> = Mutex::new(());
/// Every reactor made, for the process-wide view.
static ALL: Mutex<Vec<Weak<Reactor>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Reactor {
    /// The reactor that sources and timers made on this thread now go to:
    /// inside a tarn executor (`block_on`, [`drive`](crate::drive)) on
    /// epoll, this thread's own; otherwise the shared one.
    ///
    /// # Errors
    ///
    /// If the shared reactor is needed and cannot be created (an unknown
    /// `TARN_SELECTOR`, or no fds left). A failure is not remembered: the
    /// next call tries again.
    pub fn current() -> io::Result<Arc<Reactor>> {
        match crate::driver::driven_here() {
            Some(reactor) => Ok(reactor),
            None => Reactor::shared().cloned(),
        }
    }

    /// The shared reactor, created on first use on the backend chosen by
    /// `TARN_SELECTOR` (epoll by default), and driven by the fallback
    /// thread (and on poll and select also by tarn's executors).
    ///
    /// # Errors
    ///
    /// As for [`current`](Self::current).
    pub fn shared() -> io::Result<&'static Arc<Reactor>> {
        #[cfg(loom)]
        return Ok(&SHARED);
        #[cfg(not(loom))]
        match SHARED.get() {
            Some(reactor) => Ok(reactor),
            None => Reactor::start_shared(),
        }
    }

    /// Creates the shared reactor, unless another thread just did.
    #[cfg(not(loom))]
    #[cold]
    fn start_shared() -> io::Result<&'static Arc<Reactor>> {
        let _creating = lock(&CREATING);
        if let Some(reactor) = SHARED.get() {
            return Ok(reactor);
        }
        let reactor = Reactor::create(Selector::new()?, None);
        Ok(SHARED.get_or_init(|| reactor))
    }

    /// A reactor for the calling thread: on epoll a new one of its own; on
    /// the other backends, which keep one reactor per process, the shared one.
    pub(crate) fn for_this_thread() -> io::Result<Arc<Reactor>> {
        match Backend::from_env()?.unwrap_or_else(Backend::best) {
            Backend::Epoll => {
                let thread = std::thread::current();
                let name = match thread.name() {
                    Some(name) => name.to_string(),
                    None => format!("{:?}", thread.id()),
                };
                Ok(Reactor::create(
                    Selector::with_backend(Backend::Epoll)?,
                    Some(name),
                ))
            }
            _ => Reactor::shared().cloned(),
        }
    }

    fn create(selector: Selector, thread: Option<String>) -> Arc<Reactor> {
        let mode = match selector.backend() {
            Backend::Epoll => Mode::Edge,
            _ => Mode::Oneshot,
        };
        let reactor = Arc::new(Reactor {
            id: NEXT_ID.fetch_add(1, Relaxed),
            thread,
            notifier: selector.notifier(),
            selector,
            mode,
            sources: crate::sync::Mutex::new(Slab::new()),
            timers: Mutex::default(),
            fired_until: AtomicU64::new(0),
            epoch: Instant::now(),
            driver: crate::sync::Mutex::new(Driver {
                events: Events::with_capacity(1024),
                wakers: Vec::new(),
            }),
            lock_waiters: crate::sync::Mutex::new(Vec::new()),
            lock_waiter_count: crate::sync::AtomicUsize::new(0),
            drivers: crate::sync::AtomicUsize::new(0),
            unserved: crate::sync::AtomicBool::new(false),
            watch: Watch::default(),
            selects: AtomicU64::new(0),
            events: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
        });
        let mut all = lock(&ALL);
        all.retain(|r| r.strong_count() > 0);
        all.push(Arc::downgrade(&reactor));
        reactor
    }

    /// Every live reactor: the shared one (once made) and those of threads.
    pub fn all() -> Vec<Arc<Reactor>> {
        lock(&ALL).iter().filter_map(Weak::upgrade).collect()
    }

    /// A number that names this reactor in [`SourceInfo::reactor`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether this is the shared reactor.
    pub fn is_shared(&self) -> bool {
        self.thread.is_none()
    }

    /// The name of the thread this reactor belongs to (its id as Rust
    /// prints it, for a thread without a name); `None` for the shared one.
    pub fn thread_name(&self) -> Option<&str> {
        self.thread.as_deref()
    }

    /// Whether this is the reactor that is [current](Self::current) on
    /// this thread, without cloning it: a look at a thread-local.
    pub(crate) fn is_current(&self) -> bool {
        let driven = crate::driver::driven_ptr();
        if driven.is_null() {
            self.is_shared()
        } else {
            std::ptr::eq(driven, self)
        }
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
    pub(crate) fn insert_io(self: &Arc<Self>, fd: RawFd) -> io::Result<Arc<Source>> {
        let mut sources = crate::sync::lock(&self.sources);
        let entry = sources.vacant_entry();
        let key = source_key(entry.key())?;
        let source = Arc::new(Source::new(fd, Arc::clone(self), key));
        self.register(fd, key)?;
        entry.insert(Arc::clone(&source));
        Ok(source)
    }

    /// Registers a source that is moving here from another reactor (see
    /// `Source::settle`); returns its key here. The source's own fields
    /// are the caller's to update.
    pub(crate) fn adopt(&self, source: &Arc<Source>) -> io::Result<u32> {
        let mut sources = crate::sync::lock(&self.sources);
        let entry = sources.vacant_entry();
        let key = source_key(entry.key())?;
        self.register(source.fd, key)?;
        entry.insert(Arc::clone(source));
        Ok(key)
    }

    fn register(&self, fd: RawFd, key: u32) -> io::Result<()> {
        let token = Token(key as usize);
        if self.mode == Mode::Edge {
            // PRIORITY too: urgent data tells reads not to trust a short
            // read (see `Word::NO_DRAIN`). The level backends re-arm
            // before waiting and see queued data anyway.
            let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
            self.selector.register(fd, token, interest, Mode::Edge)
        } else {
            // Registered disarmed in effect: the first waiter re-arms it. A
            // oneshot registration must name some interest, and it fires at
            // most once before a waiter exists; its event is then recorded as
            // readiness like any other.
            self.selector
                .register(fd, token, Interest::READABLE, Mode::Oneshot)
        }
    }

    /// Deregisters the source with `key`; must happen before its fd is closed.
    pub(crate) fn release(&self, fd: RawFd, key: u32) -> io::Result<()> {
        // Deregister first, outside the lock: on poll and select this may
        // wait for the driving thread to come back from the kernel, and
        // dispatching events needs the lock. Until the slab entry goes, a
        // late event still finds this same source, which is harmless.
        let res = self.selector.deregister(fd);
        crate::sync::lock(&self.sources).try_remove(key as usize);
        res
    }

    /// This reactor's counters and gauges, for tests and operators
    /// ([`stats`](crate::stats) sums them over every reactor).
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

    /// Every source registered here with its fd and how many wait on it:
    /// what a stuck program is waiting for.
    pub fn sources(&self) -> Vec<SourceInfo> {
        let sources: Vec<(usize, Arc<Source>)> = crate::sync::lock(&self.sources)
            .iter()
            .map(|(key, s)| (key, s.clone()))
            .collect();
        sources
            .iter()
            .map(|(key, s)| {
                let waiting = s.waiting();
                SourceInfo {
                    fd: s.fd,
                    token: *key,
                    readers: waiting.readers,
                    writers: waiting.writers,
                    reactor: self.id,
                }
            })
            .collect()
    }

    /// Every waker this reactor holds, for its sources and its timers (a
    /// snapshot; for task dumps).
    pub fn held_wakers(&self) -> Vec<HeldWaker> {
        let sources: Vec<Arc<Source>> = crate::sync::lock(&self.sources)
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        let mut held = Vec::new();
        for source in &sources {
            let fd = source.fd;
            source.each_waker(|waker, write| {
                let what = if write {
                    WaitsFor::Write(fd)
                } else {
                    WaitsFor::Read(fd)
                };
                held.push(HeldWaker::new(waker, what));
            });
        }
        let epoch = self.epoch;
        lock(&self.timers).queue.each(|when, waker| {
            let at = epoch + std::time::Duration::from_nanos(when);
            held.push(HeldWaker::new(waker, WaitsFor::Timer(at)));
        });
        held
    }

    /// A waker was stored here: make sure somebody will drive this reactor
    /// (see [`driver`](crate::driver)); an error if nobody can.
    pub(crate) fn ensure_driven(self: &Arc<Self>, waker: &Waker) -> io::Result<()> {
        crate::driver::ensure_driven(self, waker)
    }

    /// `when` as the timer queue keys it: nanoseconds from the reactor's
    /// epoch (0 for an instant before it).
    pub(crate) fn deadline_ns(&self, when: Instant) -> u64 {
        nanos_since(self.epoch, when)
    }

    /// Registers a timer due at `when` (from [`deadline_ns`](Self::deadline_ns));
    /// returns its id. Wakes the driver if the new deadline is more than
    /// `COALESCE_NS` (50 µs) earlier than the one it sleeps until (timers
    /// may fire that late anyway: see `TimerQueue::wake_for`).
    pub(crate) fn insert_timer(self: &Arc<Self>, when: u64, waker: &Waker) -> TimerId {
        let mut timers = lock(&self.timers);
        if self.has_fired(when) {
            // Came due since the caller looked at the clock, and timers up
            // to it have fired already: fire this one now.
            drop(timers);
            waker.wake_by_ref();
            return TimerId::NONE;
        }
        let id = timers.queue.insert(when, waker.clone());
        // Sleeping until later than this timer may fire (it may fire up to
        // COALESCE_NS late, as the ones the driver sleeps for may): wake it.
        let wake_driver = timers
            .sleeping_until
            .is_some_and(|until| when.saturating_add(COALESCE_NS) < until);
        drop(timers);
        if wake_driver {
            self.notify();
        }
        // A timer has no error to return: if no driver can be started now,
        // it fires once one runs (the next waiter tries again).
        let _ = self.ensure_driven(waker);
        id
    }

    /// Replaces the waker of a pending timer due at `when`; false if it
    /// already fired.
    pub(crate) fn update_timer(self: &Arc<Self>, when: u64, id: TimerId, waker: &Waker) -> bool {
        let updated = match lock(&self.timers).queue.waker_mut(when, id) {
            Some(stored) => {
                if !stored.will_wake(waker) {
                    *stored = waker.clone();
                }
                true
            }
            None => false,
        };
        if updated {
            let _ = self.ensure_driven(waker);
        }
        updated
    }

    /// Cancels a timer due at `when` (a no-op if it fired).
    pub(crate) fn remove_timer(&self, when: u64, id: TimerId) {
        if !self.has_fired(when) {
            lock(&self.timers).queue.remove(when, id);
        }
    }

    /// Whether every timer due at `when` (from [`deadline_ns`](Self::deadline_ns))
    /// has fired and left the queue; if so, the clock has passed `when`.
    pub(crate) fn has_fired(&self, when: u64) -> bool {
        when <= self.fired_until.load(Acquire)
    }

    /// Timers due up to `now` (nanoseconds from the epoch) have fired;
    /// called under the timers lock.
    pub(crate) fn fired(&self, now: u64) {
        self.fired_until.store(now, Release);
    }

    /// When the next pending timer is due, if any.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let next = lock(&self.timers).queue.next_due()?;
        self.epoch
            .checked_add(std::time::Duration::from_nanos(next))
    }

    /// Adds a thread to be unparked when the driver lock is released.
    pub(crate) fn wait_for_lock(&self, unparker: Unparker) {
        let mut waiters = crate::sync::lock(&self.lock_waiters);
        waiters.push(unparker);
        // A swap, not a store: see `ReactorLock`'s drop.
        self.lock_waiter_count.swap(waiters.len(), SeqCst);
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // Its epoll fd is about to close: off the shared reactor's list first.
        crate::watch::unwatch(self);
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("id", &self.id)
            .field("thread", &self.thread)
            .field("backend", &self.backend())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A slab key as a source's 32-bit key.
fn source_key(key: usize) -> io::Result<u32> {
    u32::try_from(key).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            "tarn: more than 2^32 sources registered with one reactor",
        )
    })
}

/// Nanoseconds from `epoch` to `when` (0 before it), saturating.
pub(crate) fn nanos_since(epoch: Instant, when: Instant) -> u64 {
    u64::try_from(when.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Pending timers, and whether the driver sleeps.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Deadlines in nanoseconds from the reactor's epoch.
    pub(crate) queue: TimerQueue,
    /// The deadline the driver sleeps until while in `select` (`None` when
    /// not sleeping): a timer due more than `COALESCE_NS` earlier must
    /// wake it.
    pub(crate) sleeping_until: Option<u64>,
}

/// The counters and gauges of every live reactor, summed: the process-wide
/// view of [`Reactor::stats`].
///
/// ```
/// let before = tarn_reactor::stats();
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let a = tarn_reactor::Async::new(a)?;
/// assert_eq!(tarn_reactor::stats().sources, before.sources + 1);
/// drop(a);
/// assert_eq!(tarn_reactor::stats().sources, before.sources);
/// # std::io::Result::Ok(())
/// ```
pub fn stats() -> Stats {
    Reactor::all()
        .iter()
        .fold(Stats::default(), |sum, r| sum + r.stats())
}

/// One live reactor, from [`reactors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactorInfo {
    /// A number that names it, as [`SourceInfo::reactor`] does.
    pub id: u64,
    /// The name of the thread it belongs to (its id as Rust prints it, for
    /// a thread without a name); `None` for the shared reactor.
    pub thread: Option<String>,
    /// Its counters and gauges.
    pub stats: Stats,
}

/// Every live reactor with its counters and gauges: which executor thread
/// (or the shared reactor) holds what, and how busy each has been.
///
/// ```
/// tarn_reactor::drive(async {
///     let (a, _b) = std::os::unix::net::UnixStream::pair()?;
///     let _a = tarn_reactor::Async::new(a)?;
///     let here = tarn_reactor::Reactor::current()?;
///     let listed = tarn_reactor::reactors();
///     let mine = listed.iter().find(|r| r.id == here.id()).expect("listed");
///     assert!(mine.stats.sources >= 1);
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub fn reactors() -> Vec<ReactorInfo> {
    Reactor::all()
        .iter()
        .map(|r| ReactorInfo {
            id: r.id,
            thread: r.thread.clone(),
            stats: r.stats(),
        })
        .collect()
}

/// Every waker any reactor holds, and what it waits for (see
/// [`HeldWaker`]): how an executor's task dump finds where its tasks wait.
pub fn held_wakers() -> Vec<HeldWaker> {
    Reactor::all()
        .iter()
        .flat_map(|r| r.held_wakers())
        .collect()
}

/// Every source registered with any reactor, each naming its reactor.
pub fn sources() -> Vec<SourceInfo> {
    Reactor::all().iter().flat_map(|r| r.sources()).collect()
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

//! Who drives the reactors, and how another executor plugs into them.
//!
//! tarn's reactors have no thread of their own: whoever waits drives. On
//! epoll, each thread that runs a tarn executor drives a reactor of its own,
//! and the sources its tasks wait on and the timers they set live there, so
//! an event for a task on thread k is seen by thread k's `epoll_wait` and
//! handled there alone. Everything used where no tarn executor runs lives
//! on the shared reactor, which the fallback thread (`tarn-reactor`, started
//! on demand) drives. (poll and select keep one reactor per process, shared
//! by every thread: see [`Reactor`].)
//!
//! # Plugging an executor in
//!
//! An executor that wants its threads to sleep in tarn's `select` (rather
//! than leave tarn's I/O to the fallback thread, one hop away) does five
//! things on each thread it runs on; tarn's own executor does exactly this,
//! and [`drive`] is the smallest complete example:
//!
//! 1. **Hold a [`DriverGuard`] while it runs** (for the length of its
//!    `block_on`). The guard makes this thread's reactor the
//!    [current](Reactor::current) one, so sockets and timers created or
//!    first awaited here settle on it.
//! 2. **Name the waker of each poll** with [`DriverGuard::polling`] just
//!    before polling a task with it. A waker stored in the reactor during
//!    that poll belongs to a task this executor will poll again; any other
//!    waker (another thread's, another executor's stacked inside) marks the
//!    reactor as needing another driver once the guard goes, and gets one.
//! 3. **Poll each task inside [`with_budget`]**, so that a task whose
//!    socket never runs dry yields after [`BUDGET`] operations; when it
//!    reports the budget spent, look at the reactor soon (step 5).
//! 4. **Sleep with a [`Parker`]** when nothing is runnable. It sleeps in
//!    the reactor's `select` (woken by I/O, timers, or [`Unparker::unpark`]
//!    from any thread), or on a condition variable if another thread holds
//!    the driver lock. Wakes made on the executor's own thread can use
//!    [`Parker::mark_woken`], which costs no syscall.
//! 5. **Look at the reactor every few dozen tasks** without blocking,
//!    [`DriverGuard::react_now`], so tasks that are always ready cannot
//!    starve I/O and timers.
//!
//! An executor that does not need its own loop can be stacked on [`drive`]
//! instead, as smol stacks async-executor on async-io's `block_on`:
//!
//! ```
//! use std::time::Duration;
//! use tarn_reactor::{drive, Async, Timer};
//!
//! let ex = async_executor::LocalExecutor::new();
//! let echoed = drive(ex.run(async {
//!     let (a, b) = std::os::unix::net::UnixStream::pair()?;
//!     let (a, b) = (Async::new(a)?, Async::new(b)?);
//!     // A task of async-executor's waiting on tarn I/O on this thread's
//!     // reactor, woken by this thread's `select`.
//!     let reader = ex.spawn(async move {
//!         let mut buf = [0; 5];
//!         let n = b.read_with(|s| std::io::Read::read(&mut &*s, &mut buf)).await?;
//!         std::io::Result::Ok(buf[..n].to_vec())
//!     });
//!     Timer::after(Duration::from_millis(1)).await;
//!     a.write_with(|s| std::io::Write::write(&mut &*s, b"hello")).await?;
//!     reader.await
//! }))?;
//! assert_eq!(echoed, b"hello");
//! # std::io::Result::Ok(())
//! ```
//!
//! Without any of this (tokio, `futures::executor`), tarn's sockets and
//! timers still work: they live on the shared reactor and the fallback
//! thread wakes their tasks.

mod budget;
mod fallback;
mod parker;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, RawWakerVTable, Waker};
use std::time::Duration;

pub use crate::lock::ReactorLock;
pub(crate) use budget::poll_proceed;
pub use budget::{with_budget, BUDGET};
pub use parker::{Parker, Unparker};

use crate::reactor::Reactor;

#[cfg(not(loom))]
thread_local! {
    /// This thread's own reactor, from its first guard on (on poll and
    /// select, the shared one).
    static OWN: RefCell<Option<Arc<Reactor>>> = const { RefCell::new(None) };
    /// The reactor this thread drives, while a guard lives.
    static DRIVING: RefCell<Option<Arc<Reactor>>> = const { RefCell::new(None) };
    /// What this thread's driver polls now (see [`DriverGuard::polling`]).
    static SERVING: Cell<Serving> = const { Cell::new(Serving::NONE) };
}

// A model's threads share one OS thread: loom's thread-locals are theirs.
#[cfg(loom)]
loom::thread_local! {
    static OWN: RefCell<Option<Arc<Reactor>>> = RefCell::new(None);
    static DRIVING: RefCell<Option<Arc<Reactor>>> = RefCell::new(None);
    static SERVING: Cell<Serving> = Cell::new(Serving::NONE);
}

/// A waker's identity: its data and vtable pointers.
type WakerId = (*const (), *const RawWakerVTable);

/// The reactor a thread drives and the waker of the poll it makes, by
/// address: compared, never dereferenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Serving {
    reactor: *const Reactor,
    waker: WakerId,
}

impl Serving {
    const NONE: Serving = Serving {
        reactor: std::ptr::null(),
        waker: (std::ptr::null(), std::ptr::null()),
    };
}

fn waker_id(waker: &Waker) -> WakerId {
    (waker.data(), waker.vtable())
}

/// The reactor this thread drives now, if a guard lives.
pub(crate) fn driven_here() -> Option<Arc<Reactor>> {
    DRIVING
        .try_with(|driving| driving.borrow().clone())
        .ok()
        .flatten()
}

/// The reactor this thread drives now, by address (null if no guard
/// lives): what [`driven_here`] returns, without cloning it.
pub(crate) fn driven_ptr() -> *const Reactor {
    SERVING
        .try_with(|s| s.get().reactor)
        .unwrap_or(std::ptr::null())
}

/// Makes sure somebody will drive `reactor` now that `waker` is stored
/// there. If it has a driver, that is enough when the driver is this
/// thread's and `waker` is the one it polls with (its own task, which it
/// will poll again); otherwise the reactor is marked, and its last driver
/// finds it another when it stops. If it has none: the fallback thread,
/// and for a thread's reactor, the shared reactor's watch.
///
/// # Errors
///
/// If the fallback thread is needed and cannot start (no threads left);
/// the next call tries again.
pub(crate) fn ensure_driven(reactor: &Arc<Reactor>, waker: &Waker) -> io::Result<()> {
    if reactor.drivers.load(SeqCst) > 0 {
        let here = Serving {
            reactor: Arc::as_ptr(reactor),
            waker: waker_id(waker),
        };
        if SERVING.try_with(|s| s.get() == here).unwrap_or(false) {
            return Ok(());
        }
    }
    ensure_driven_for_others(reactor)
}

/// Like [`ensure_driven`], for wakers that this thread's driver will not
/// poll (whoever's they are): if the reactor has drivers, the last of them
/// finds it another when it stops; if it has none, it gets one now.
///
/// # Errors
///
/// As for [`ensure_driven`].
pub(crate) fn ensure_driven_for_others(reactor: &Arc<Reactor>) -> io::Result<()> {
    if reactor.drivers.load(SeqCst) > 0 {
        if reactor.unserved.load(Relaxed) {
            return Ok(());
        }
        // Flag first, then look again: either the last driver, stopping,
        // sees the flag, or we see that it has stopped. Both looks are
        // read-modify-writes, as `stop_driving`'s are: a look at `drivers`
        // that still counts the last driver comes before its decrement in
        // that counter's order, and the decrement then acquires our flag.
        // With a plain store and load on both sides this would rest on
        // `SeqCst`'s single total order (store buffering), which loom does
        // not model; with read-modify-writes, release and acquire carry it.
        reactor.unserved.swap(true, SeqCst);
        if reactor.drivers.fetch_add(0, SeqCst) > 0 {
            return Ok(());
        }
    }
    find_driver(reactor)
}

/// Gives a reactor that nobody drives a driver: the fallback thread,
/// which for a thread's reactor drives it through the shared reactor's
/// watch.
fn find_driver(reactor: &Arc<Reactor>) -> io::Result<()> {
    if !reactor.is_shared() {
        crate::watch::watch(reactor)?;
    }
    fallback::start()
}

/// This thread's own reactor (created at its first guard), or the shared
/// one if it cannot be created; `None` if neither can.
fn own_reactor() -> Option<Arc<Reactor>> {
    OWN.try_with(|own| {
        let mut own = own.borrow_mut();
        if own.is_none() {
            // A failure (no fds left) is not remembered: this guard drives
            // the shared reactor, and the next one tries again.
            match Reactor::for_this_thread() {
                Ok(reactor) => *own = Some(reactor),
                Err(_) => return Reactor::shared().ok().cloned(),
            }
        }
        own.clone()
    })
    .ok()
    .flatten()
    .or_else(|| Reactor::shared().ok().cloned())
}

/// Marks the current thread as driving its reactor for as long as it lives.
///
/// Executors hold one for the duration of their `block_on` (see the
/// [module docs](self)). While it lives, this thread's reactor is the
/// [current](Reactor::current) one: sockets and timers created or first
/// awaited here settle on it, and the [`Parker`]s of this thread sleep in
/// its `select`. When the last guard goes, a reactor that holds wakers no
/// driver of this thread will poll (another executor's, another thread's)
/// is handed to the fallback thread (on epoll, through the shared reactor's
/// watch of its epoll fd).
#[derive(Debug)]
pub struct DriverGuard {
    reactor: Option<Arc<Reactor>>,
    /// This thread's `DRIVING` and `SERVING` before the guard, restored
    /// when it goes.
    /// (Its raw pointers keep the guard on its thread, whose thread-locals
    /// it restores.)
    driving_before: Option<Arc<Reactor>>,
    serving_before: Serving,
}

impl DriverGuard {
    /// Starts driving this thread's reactor. On epoll the thread's own
    /// reactor is created at its first guard (the shared one serves if it
    /// cannot be, say for want of fds); on poll and select it is the shared
    /// one, which the fallback thread, if running, releases meanwhile.
    pub fn enter() -> DriverGuard {
        let reactor = own_reactor();
        let serving = Serving {
            reactor: reactor.as_ref().map_or(std::ptr::null(), Arc::as_ptr),
            waker: Serving::NONE.waker,
        };
        let serving_before = SERVING
            .try_with(|s| s.replace(serving))
            .unwrap_or(Serving::NONE);
        let driving_before = DRIVING
            .try_with(|d| d.replace(reactor.clone()))
            .ok()
            .flatten();
        if let Some(reactor) = &reactor {
            start_driving(reactor);
        }
        DriverGuard {
            reactor,
            driving_before,
            serving_before,
        }
    }

    /// Names the waker of the poll this thread is about to make (a task's,
    /// or the one `block_on` polls its future with). Costs a thread-local
    /// store; executors call it before every poll.
    pub fn polling(waker: &Waker) {
        let _ = SERVING.try_with(|s| {
            s.set(Serving {
                reactor: s.get().reactor,
                waker: waker_id(waker),
            })
        });
    }

    /// The reactor this guard drives; `None` if no reactor could be
    /// created at all (no fds left), in which case parking panics.
    pub fn reactor(&self) -> Option<&Arc<Reactor>> {
        self.reactor.as_ref()
    }

    /// Looks at the reactor without blocking (fires due timers, wakes
    /// tasks whose I/O is ready), unless another thread holds its driver
    /// lock; returns how many wakers were woken.
    pub fn react_now(&self) -> usize {
        match self.reactor.as_ref().and_then(|r| r.try_lock()) {
            Some(mut driver) => driver.react(Some(Duration::ZERO)).unwrap_or(0),
            None => 0,
        }
    }
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        let _ = SERVING.try_with(|s| s.set(self.serving_before));
        let _ = DRIVING.try_with(|d| d.replace(self.driving_before.take()));
        if let Some(reactor) = &self.reactor {
            stop_driving(reactor, fallback::resume);
        }
    }
}

/// A guard starts driving `reactor`: the first of its drivers takes it
/// from the fallback thread (the shared reactor) or from the shared
/// reactor's watch (a thread's).
fn start_driving(reactor: &Arc<Reactor>) {
    if reactor.drivers.fetch_add(1, SeqCst) == 0 {
        if reactor.is_shared() {
            if fallback::running() {
                // The fallback thread steps aside.
                reactor.notify();
            }
        } else if reactor.watch.is_watched() {
            // Taken back from the shared reactor's watch. What waited there
            // for another driver may still wait: look for one again when
            // this thread stops (if it has gone by then, the watch costs a
            // wakeup or two of the fallback thread, and ends at this
            // thread's next guard).
            crate::watch::unwatch(reactor);
            reactor.unserved.store(true, SeqCst);
        }
    }
}

/// A guard stops driving `reactor`: the last of its drivers finds wakers
/// that nobody will poll another driver, and for the shared reactor
/// `resume`s the fallback thread.
fn stop_driving(reactor: &Arc<Reactor>, resume: impl FnOnce()) {
    if reactor.drivers.fetch_sub(1, SeqCst) == 1 {
        // Wakers stored while we drove that no driver will poll again did
        // not find a driver; from now on nobody else would wake them. One
        // stored after the decrement sees no driver and finds one itself.
        if reactor.unserved.swap(false, SeqCst) {
            if let Err(e) = find_driver(reactor) {
                // The next waiter, or the next guard to go, tries again.
                reactor.unserved.store(true, SeqCst);
                eprintln!("{e}; tasks of other executors waiting on tarn I/O wait until it can");
            }
        }
        if reactor.is_shared() {
            resume();
        }
    }
}

/// Drives this thread's reactor until `future` completes, and returns its
/// output.
///
/// This is the minimal driving executor: it polls one future and nothing
/// else (tarn's executor has its own `block_on`, which runs spawned tasks
/// too). Stack another executor on it to run many tasks on tarn's reactor
/// without the fallback thread, as smol does (see the [module docs](self)):
///
/// ```
/// let ex = async_executor::LocalExecutor::new();
/// let answer = tarn_reactor::drive(ex.run(async {
///     tarn_reactor::Timer::after(std::time::Duration::from_millis(1)).await;
///     42
/// }));
/// assert_eq!(answer, 42);
/// ```
pub fn drive<F: Future>(future: F) -> F::Output {
    let _driving = DriverGuard::enter();
    let parker = Parker::new();
    let waker = parker.waker();
    // Wakers of other executors stacked on this one are not this waker:
    // if they still wait when `drive` returns, the fallback thread drives.
    DriverGuard::polling(&waker);
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        parker.park();
    }
}

//! Who drives the reactor: threads that park in it, and the fallback thread.
//!
//! A [`Parker`] puts a thread to sleep until its [`Unparker`] is called. An
//! idle thread that can take the reactor's driver lock sleeps *inside*
//! `select` (so I/O and timers wake it without any extra thread); one that
//! cannot sleeps on a condition variable and is woken when the lock frees up.
//!
//! While any thread is inside a driving `block_on` (tarn's or the
//! executor's), that thread drives. When none is (tarn I/O awaited under
//! tokio, `futures::executor`, async-executor), a fallback thread named
//! `tarn-reactor` does; it starts the first time a waker is stored with no
//! driver around, and steps aside whenever a driving `block_on` is running.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, RawWakerVTable, Wake, Waker};
use std::time::Duration;

use crate::reactor::{lock, Reactor};

thread_local! {
    /// The parker whose thread is inside `react` right now, if any.
    static REACTING: Cell<*const ParkerInner> = const { Cell::new(std::ptr::null()) };
    /// The waker of the poll this thread's driver makes now, by identity
    /// (see [`DriverGuard::polling`]); null pointers when none.
    static SERVING: Cell<WakerId> = const { Cell::new(NO_WAKER) };
}

/// Driving `block_on`s in progress, process-wide.
static DRIVERS: AtomicUsize = AtomicUsize::new(0);
/// The fallback thread parks here while `DRIVERS > 0`.
static FALLBACK_IDLE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
/// The fallback thread runs (or is starting). Cleared if starting it
/// failed or it ended, so that the next waiter tries again.
static FALLBACK_RUNNING: AtomicBool = AtomicBool::new(false);
/// A waker that no driver will poll again was stored while a driver ran
/// (by another executor's thread, or by a future of another executor that
/// a driver polled): when the last driver stops, the fallback thread must
/// take over.
static UNSERVED: AtomicBool = AtomicBool::new(false);

/// A waker's identity: its data and vtable pointers.
type WakerId = (*const (), *const RawWakerVTable);

const NO_WAKER: WakerId = (std::ptr::null(), std::ptr::null());

fn waker_id(waker: &Waker) -> WakerId {
    (waker.data(), waker.vtable())
}

/// Makes sure somebody will drive the reactor now that `waker` is stored:
/// starts the fallback thread if no driving `block_on` runs, or notes that
/// it must start when the last one stops, unless `waker` is the one this
/// thread's driver is polling with (its own task, which it will poll again).
///
/// # Errors
///
/// If the fallback thread is needed and cannot start (no threads left);
/// the next call tries again.
pub(crate) fn ensure_driven(waker: &Waker) -> io::Result<()> {
    if DRIVERS.load(SeqCst) > 0 {
        let served = SERVING.try_with(|s| s.get() == waker_id(waker));
        if served.unwrap_or(false) || UNSERVED.load(Relaxed) {
            return Ok(());
        }
        // Flag first, then look again: either the last driver, stopping,
        // sees the flag, or we see that it has stopped.
        UNSERVED.store(true, SeqCst);
        if DRIVERS.load(SeqCst) > 0 {
            return Ok(());
        }
    }
    start_fallback()
}

fn start_fallback() -> io::Result<()> {
    if FALLBACK_RUNNING.load(SeqCst) || FALLBACK_RUNNING.swap(true, SeqCst) {
        return Ok(());
    }
    match std::thread::Builder::new()
        .name("tarn-reactor".into())
        .spawn(fallback)
    {
        Ok(_) => Ok(()),
        Err(e) => {
            FALLBACK_RUNNING.store(false, SeqCst);
            // Not `e.kind()`: EAGAIN would read as `WouldBlock`, which an
            // async operation must never return.
            Err(io::Error::other(format!(
                "tarn: cannot start the thread that drives the reactor for \
                 other executors (tarn-reactor): {e}"
            )))
        }
    }
}

fn fallback() {
    /// Lets the next waiter start a new fallback thread should this one end.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            FALLBACK_RUNNING.store(false, SeqCst);
        }
    }
    let _running = Running;
    let reactor = match Reactor::try_get() {
        Ok(reactor) => reactor,
        Err(e) => return eprintln!("tarn: the fallback reactor thread cannot start: {e}"),
    };
    crate::sys::batch_scheduling();
    loop {
        {
            let (mutex, idle) = &FALLBACK_IDLE;
            let mut guard = lock(mutex);
            while DRIVERS.load(SeqCst) > 0 {
                guard = idle.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        }
        let mut driver = reactor.lock();
        // A driving block_on that starts notifies the reactor, which ends
        // this wait; we then release the lock and step aside.
        if DRIVERS.load(SeqCst) == 0 {
            if let Err(e) = driver.react(None) {
                eprintln!("tarn: the fallback reactor thread failed to select: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Marks the current thread as a driver for as long as it lives.
///
/// Executors hold one for the duration of their `block_on`; the fallback
/// thread steps aside meanwhile. Before each poll, the executor names the
/// waker of that poll with [`polling`](Self::polling): a waker stored
/// during the poll that is this one belongs to a task the executor will
/// poll again, and needs no other driver once the guard goes. Any other
/// waker stored meanwhile (another executor's, on its own thread or in a
/// future this one polls) makes the fallback thread take over when the
/// last guard goes.
#[derive(Debug)]
pub struct DriverGuard {
    /// This thread's `SERVING` before the guard, restored when it goes.
    serving_before: WakerId,
}

impl DriverGuard {
    /// Starts driving. The fallback thread, if running, releases the reactor.
    pub fn enter() -> DriverGuard {
        let serving_before = SERVING
            .try_with(|s| s.replace(NO_WAKER))
            .unwrap_or(NO_WAKER);
        if DRIVERS.fetch_add(1, SeqCst) == 0 && FALLBACK_RUNNING.load(SeqCst) {
            if let Ok(reactor) = Reactor::try_get() {
                reactor.notify();
            }
        }
        DriverGuard { serving_before }
    }

    /// Names the waker of the poll this thread is about to make (a task's,
    /// or the one `block_on` polls its future with). Costs a thread-local
    /// store; executors call it before every poll.
    pub fn polling(waker: &Waker) {
        let _ = SERVING.try_with(|s| s.set(waker_id(waker)));
    }
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        let _ = SERVING.try_with(|s| s.set(self.serving_before));
        if DRIVERS.fetch_sub(1, SeqCst) == 1 {
            // Wakers stored while we drove that no driver will poll again
            // did not start the fallback thread; from now on nobody else
            // would wake them. One stored after the decrement sees no
            // driver and starts it itself.
            if UNSERVED.swap(false, SeqCst) {
                if let Err(e) = start_fallback() {
                    // The next waiter, or the next guard to go, tries again.
                    UNSERVED.store(true, SeqCst);
                    eprintln!(
                        "{e}; tasks of other executors waiting on tarn I/O wait until it can"
                    );
                }
            }
            let (mutex, idle) = &FALLBACK_IDLE;
            let _guard = lock(mutex);
            idle.notify_all();
        }
    }
}

/// Puts a thread to sleep until woken, driving the reactor meanwhile if it can.
#[derive(Debug)]
pub struct Parker {
    inner: Arc<ParkerInner>,
}

/// Wakes a [`Parker`]; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Unparker {
    inner: Arc<ParkerInner>,
}

#[derive(Debug, Default)]
struct ParkerInner {
    woken: AtomicBool,
    /// True while the parked thread is in (or about to enter) `select`.
    in_reactor: AtomicBool,
    /// True while this parker is on the reactor's list of threads waiting
    /// for the driver lock, so it is listed at most once.
    queued_for_lock: AtomicBool,
    mutex: Mutex<()>,
    condvar: Condvar,
}

impl Default for Parker {
    fn default() -> Parker {
        Parker::new()
    }
}

impl Parker {
    /// A parker for the current thread.
    pub fn new() -> Parker {
        Parker {
            inner: Arc::new(ParkerInner::default()),
        }
    }

    /// A handle that wakes this parker.
    pub fn unparker(&self) -> Unparker {
        Unparker {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Marks the parker woken without signalling its thread: for wakes made
    /// on the parker's own thread, which is running and will see the mark
    /// before it sleeps. Costs no syscall.
    pub fn mark_woken(&self) {
        // Only this thread sets `woken` back to false (in `park`), so a
        // relaxed look first is exact, and spares the store on every wake
        // of a busy executor. Other threads' `unpark` RMWs still order
        // against `park`'s swap.
        if !self.inner.woken.load(Relaxed) {
            self.inner.woken.store(true, Relaxed);
        }
    }

    /// A [`Waker`] that unparks this parker.
    pub fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.inner))
    }

    /// Sleeps until [`Unparker::unpark`] is called (returns at once if it was
    /// called since the last `park`). Meanwhile drives the reactor when no
    /// other thread does, so I/O events and timers are processed.
    pub fn park(&self) {
        let reactor = Reactor::get();
        let inner = &*self.inner;
        if inner.woken.swap(false, SeqCst) {
            // Woken already: return at once, but first process whatever I/O
            // and timers are due, without blocking. Otherwise a future that
            // always wakes itself (a busy task that yields) keeps this
            // thread from ever driving the reactor, and every task waiting
            // on I/O or a timer starves.
            if let Some(mut driver) = reactor.try_lock() {
                if let Err(e) = driver.react(Some(Duration::ZERO)) {
                    panic!("tarn: the reactor failed to select: {e}");
                }
            }
            return;
        }
        loop {
            if inner.woken.swap(false, SeqCst) {
                return;
            }
            if let Some(mut driver) = reactor.try_lock() {
                inner.in_reactor.store(true, SeqCst);
                if inner.woken.swap(false, SeqCst) {
                    inner.in_reactor.store(false, SeqCst);
                    return;
                }
                REACTING.with(|r| r.set(inner));
                let res = driver.react(None);
                REACTING.with(|r| r.set(std::ptr::null()));
                inner.in_reactor.store(false, SeqCst);
                if let Err(e) = res {
                    panic!("tarn: the reactor failed to select: {e}");
                }
                continue;
            }
            // Somebody else drives. Ask to be unparked when the lock frees
            // up, then try once more in case it freed up meanwhile.
            if !inner.queued_for_lock.swap(true, SeqCst) {
                reactor.wait_for_lock(self.unparker());
            }
            if let Some(driver) = reactor.try_lock() {
                drop(driver);
                continue;
            }
            let mut guard = lock(&inner.mutex);
            while !inner.woken.load(SeqCst) {
                guard = inner.condvar.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            drop(guard);
            inner.woken.store(false, SeqCst);
            return;
        }
    }
}

impl Unparker {
    /// Wakes the parker's thread, wherever it sleeps.
    pub fn unpark(&self) {
        self.inner.unpark();
    }

    /// Called by the reactor when the driver lock this parker waited for
    /// was released: it may be listed again, and should try the lock.
    pub(crate) fn lock_released(&self) {
        self.inner.queued_for_lock.store(false, SeqCst);
        self.inner.unpark();
    }
}

impl ParkerInner {
    fn unpark(&self) {
        let inner = self;
        if inner.woken.swap(true, SeqCst) {
            return;
        }
        if inner.in_reactor.load(SeqCst) {
            // Woken by its own `react` (dispatching an event): the thread
            // is not in `select`, and sees `woken` when `react` returns.
            // Only a wake from elsewhere must interrupt the `select`.
            if !REACTING.with(|r| std::ptr::eq(r.get(), inner)) {
                Reactor::get().notify();
            }
        } else {
            let _guard = lock(&inner.mutex);
            inner.condvar.notify_one();
        }
    }
}

impl Wake for ParkerInner {
    fn wake(self: Arc<Self>) {
        self.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.unpark();
    }
}

/// Drives the reactor on the current thread until `future` completes, and
/// returns its output.
///
/// This is the minimal driving executor: it polls one future and nothing
/// else (tarn's executor has its own `block_on`, which runs spawned tasks
/// too). Stack another executor on it to run many tasks on tarn's reactor
/// without the fallback thread, as smol does:
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

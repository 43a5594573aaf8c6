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

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::reactor::{lock, Reactor};

thread_local! {
    /// The parker whose thread is inside `react` right now, if any.
    static REACTING: std::cell::Cell<*const ParkerInner> =
        const { std::cell::Cell::new(std::ptr::null()) };
}

/// Driving `block_on`s in progress, process-wide.
static DRIVERS: AtomicUsize = AtomicUsize::new(0);
/// The fallback thread parks here while `DRIVERS > 0`.
static FALLBACK_IDLE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
static FALLBACK: Once = Once::new();

/// Makes sure somebody will drive the reactor: starts the fallback thread
/// the first time a waker is stored while no driving `block_on` runs.
pub(crate) fn ensure_driven() {
    if DRIVERS.load(SeqCst) == 0 && !FALLBACK.is_completed() {
        start_fallback();
    }
}

fn start_fallback() {
    FALLBACK.call_once(|| {
        std::thread::Builder::new()
            .name("tarn-reactor".into())
            .spawn(fallback)
            .expect("tarn: cannot spawn the fallback reactor thread");
    });
}

fn fallback() {
    let reactor = Reactor::get();
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
/// thread steps aside meanwhile.
#[derive(Debug)]
pub struct DriverGuard(());

impl DriverGuard {
    /// Starts driving: the fallback thread, if running, releases the reactor.
    pub fn enter() -> DriverGuard {
        if DRIVERS.fetch_add(1, SeqCst) == 0 && FALLBACK.is_completed() {
            if let Ok(reactor) = Reactor::try_get() {
                reactor.notify();
            }
        }
        DriverGuard(())
    }
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if DRIVERS.fetch_sub(1, SeqCst) == 1 {
            // Wakers that other executors' tasks stored while we drove did
            // not start the fallback thread (`ensure_driven` saw a driver);
            // from now on nobody else would wake them. A waker stored after
            // the decrement above sees no driver and starts it itself.
            if !FALLBACK.is_completed() {
                if let Ok(reactor) = Reactor::try_get() {
                    let stats = reactor.stats();
                    if stats.waiting_readers + stats.waiting_writers + stats.timers > 0 {
                        start_fallback();
                    }
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

/// Runs a future to completion on the current thread, driving the reactor
/// while it waits.
///
/// This is the minimal driving executor: it polls one future and nothing
/// else. Stack another executor on it to run many tasks on tarn's reactor
/// without the fallback thread, as smol does:
///
/// ```
/// let ex = async_executor::LocalExecutor::new();
/// let answer = tarn_reactor::block_on(ex.run(async {
///     tarn_reactor::Timer::after(std::time::Duration::from_millis(1)).await;
///     42
/// }));
/// assert_eq!(answer, 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let _driving = DriverGuard::enter();
    let parker = Parker::new();
    let waker = parker.waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        parker.park();
    }
}

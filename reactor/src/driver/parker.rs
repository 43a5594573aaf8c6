//! [`Parker`]: puts a thread to sleep until woken, inside its reactor's
//! `select` when it can take the driver lock, on a condition variable when
//! another thread holds it.

use std::cell::{Cell, Ref, RefCell};
use std::sync::atomic::{Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

use crate::reactor::Reactor;
use crate::sync::{AtomicBool, Condvar};

#[cfg(not(loom))]
thread_local! {
    /// The parker whose thread is inside `react` right now, if any.
    static REACTING: Cell<*const ParkerInner> = const { Cell::new(std::ptr::null()) };
}

// A model's threads share one OS thread: loom's thread-locals are theirs.
#[cfg(loom)]
loom::thread_local! {
    static REACTING: Cell<*const ParkerInner> = Cell::new(std::ptr::null());
}

/// Puts a thread to sleep until woken, driving the reactor meanwhile if it can.
///
/// Each `park` drives the reactor that is [current](Reactor::current) then:
/// inside a [`DriverGuard`](super::DriverGuard), the one the guard drives
/// (this thread's own, or the shared one if the thread's could not be
/// created); outside any guard, the shared one.
#[derive(Debug)]
pub struct Parker {
    inner: Arc<ParkerInner>,
    /// The reactor of the last `park`, kept while the current one is the
    /// same (the common case: one look at a thread-local).
    reactor: RefCell<Option<Arc<Reactor>>>,
    /// A loom model's parker keeps its reactor (see `pinned_to`).
    #[cfg(all(test, loom))]
    pinned: bool,
}

/// Wakes a [`Parker`]; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Unparker {
    inner: Arc<ParkerInner>,
}

#[derive(Debug)]
struct ParkerInner {
    woken: AtomicBool,
    /// True while the parked thread is in (or about to enter) `select`.
    in_reactor: AtomicBool,
    /// True while this parker is on the reactor's list of threads waiting
    /// for the driver lock, so it is listed at most once.
    queued_for_lock: AtomicBool,
    /// The reactor it parks in (the last `park`'s), for wakes from other
    /// threads to interrupt that reactor's `select`. Locked only by such a
    /// wake, which then makes a `notify` syscall anyway, and by a rebinding.
    /// (A loom mutex under `cfg(loom)`: the `notify` made under it is loom
    /// operations.)
    reactor: crate::sync::Mutex<Option<Arc<Reactor>>>,
    mutex: crate::sync::Mutex<()>,
    condvar: Condvar,
}

impl ParkerInner {
    fn new() -> ParkerInner {
        ParkerInner {
            woken: AtomicBool::new(false),
            in_reactor: AtomicBool::new(false),
            queued_for_lock: AtomicBool::new(false),
            reactor: crate::sync::Mutex::new(None),
            mutex: crate::sync::Mutex::new(()),
            condvar: Condvar::new(),
        }
    }
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
            inner: Arc::new(ParkerInner::new()),
            reactor: RefCell::new(None),
            #[cfg(all(test, loom))]
            pinned: false,
        }
    }

    /// A parker that parks in `reactor` whatever is current (a loom
    /// model's reactor: the thread-locals that name the current one
    /// outlive a model's execution).
    #[cfg(all(test, loom))]
    pub(crate) fn pinned_to(reactor: &Arc<Reactor>) -> Parker {
        let parker = Parker {
            pinned: true,
            ..Parker::new()
        };
        *crate::sync::lock(&parker.inner.reactor) = Some(Arc::clone(reactor));
        *parker.reactor.borrow_mut() = Some(Arc::clone(reactor));
        parker
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

    /// Like [`mark_woken`](Self::mark_woken), but only while this thread
    /// is inside [`park`](Self::park), dispatching the events of its
    /// `select`: for an executor whose wakes of its own tasks go to a run
    /// queue that it looks at before every park. Outside `park` the queue
    /// answers, and a mark would only make the next `park` return at once
    /// after one more look at the reactor (a second `select` per wakeup).
    pub fn mark_woken_if_parked(&self) {
        // Only this thread sets `in_reactor`, so a relaxed load is exact.
        if self.inner.in_reactor.load(Relaxed) {
            self.mark_woken();
        }
    }

    /// A [`Waker`] that unparks this parker.
    pub fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.inner))
    }

    /// The reactor to park in now: the one this thread's guard drives,
    /// else the shared one. Borrowed, not cloned: a park costs a look at a
    /// thread-local, and a rebinding only when the current reactor changed.
    ///
    /// # Panics
    ///
    /// If no reactor can be created (no fds left).
    fn reactor(&self) -> Ref<'_, Arc<Reactor>> {
        let bound = match &*self.reactor.borrow() {
            #[cfg(all(test, loom))]
            Some(_) if self.pinned => true,
            Some(reactor) => reactor.is_current(),
            None => false,
        };
        if !bound {
            self.rebind();
        }
        Ref::map(self.reactor.borrow(), |r| r.as_ref().expect("bound above"))
    }

    /// Binds this parker to the reactor that is current now.
    #[cold]
    fn rebind(&self) {
        let reactor =
            Reactor::current().unwrap_or_else(|e| panic!("tarn: cannot start the reactor: {e}"));
        *crate::sync::lock(&self.inner.reactor) = Some(Arc::clone(&reactor));
        // A place on the old reactor's list of lock waiters is no place on
        // this one's.
        self.inner.queued_for_lock.store(false, SeqCst);
        *self.reactor.borrow_mut() = Some(reactor);
    }

    /// Sleeps until [`Unparker::unpark`] is called (returns at once if it was
    /// called since the last `park`). Meanwhile drives the reactor when no
    /// other thread does, so I/O events and timers are processed.
    pub fn park(&self) {
        let reactor = self.reactor();
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
            let mut guard = crate::sync::lock(&inner.mutex);
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
                if let Some(reactor) = &*crate::sync::lock(&inner.reactor) {
                    reactor.notify();
                }
            }
        } else {
            let _guard = crate::sync::lock(&inner.mutex);
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

/// loom models of the driver hand-off: `bash .ci/loom.sh`. A parker parks
/// in a model's reactor (real epoll; under loom a `select` that would block
/// waits for a notification instead, see `Selector::select`) while other
/// threads unpark it or hold the driver lock.
#[cfg(all(test, loom))]
mod model {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Parker;
    use crate::reactor::Reactor;

    /// A thread parks (taking the driver lock, sleeping in `select`) while
    /// another unparks it: it always returns.
    #[test]
    fn an_unpark_ends_a_park_in_select() {
        loom::model(|| {
            let reactor = Reactor::for_this_thread().expect("an epoll reactor");
            let parker = Parker::pinned_to(&reactor);
            let unparker = parker.unparker();
            let waker = loom::thread::spawn(move || unparker.unpark());
            parker.park();
            waker.join().unwrap();
        });
    }

    /// A thread parks while another holds the driver lock (and looks at
    /// the reactor once, then lets go): the parker waits behind it on its
    /// condition variable, or takes the lock once it is free, and the
    /// unpark from a third thread reaches it wherever it sleeps.
    #[test]
    fn an_unpark_reaches_a_parker_behind_another_driver() {
        loom::model(|| {
            let reactor = Reactor::for_this_thread().expect("an epoll reactor");
            let parker = Parker::pinned_to(&reactor);
            let unparker = parker.unparker();
            let driver = {
                let reactor = Arc::clone(&reactor);
                loom::thread::spawn(move || {
                    if let Some(mut driving) = reactor.try_lock() {
                        driving.react(Some(Duration::ZERO)).unwrap();
                    }
                })
            };
            let waker = loom::thread::spawn(move || unparker.unpark());
            parker.park();
            driver.join().unwrap();
            waker.join().unwrap();
        });
    }

    /// A thread parks for I/O (its task waits to read a socket, with the
    /// parker's waker) while another holds the driver lock for one look at
    /// the reactor; a third writes the byte and then notifies the reactor
    /// (standing in for the kernel, which ends a blocked `select` when data
    /// comes; under loom a `select` waits for notifications only). No
    /// unpark comes from anywhere but the reactor: the event's dispatch, or
    /// the driver's release of the lock. The parker must end up selecting
    /// itself, or be handed the lock: it never sleeps on its condition
    /// variable while the lock is free and nobody selects.
    #[test]
    fn a_parker_behind_another_driver_takes_over_when_it_leaves() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        use std::os::unix::net::UnixStream;
        use std::task::{Context, Poll};

        use crate::source::Dir;

        loom::model(|| {
            let reactor = Reactor::for_this_thread().expect("an epoll reactor");
            let parker = Parker::pinned_to(&reactor);
            // This thread drives the reactor (as an executor parking in it
            // does): counted as a driver, a waiter starts no fallback thread.
            reactor
                .drivers
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (reader, writer) = UnixStream::pair().unwrap();
            reader.set_nonblocking(true).unwrap();
            let source = reactor.insert_io(reader.as_raw_fd()).unwrap();
            source.stay_home();
            let driver = {
                let reactor = Arc::clone(&reactor);
                loom::thread::spawn(move || {
                    if let Some(mut driving) = reactor.try_lock() {
                        driving.react(Some(Duration::ZERO)).unwrap();
                    }
                })
            };
            let sender = {
                let reactor = Arc::clone(&reactor);
                loom::thread::spawn(move || {
                    (&writer).write_all(b"x").unwrap();
                    reactor.notify();
                    writer
                })
            };
            let waker = parker.waker();
            let mut cx = Context::from_waker(&waker);
            loop {
                match source.poll_ready(Dir::Read, None, &mut cx) {
                    Poll::Ready(res) => break res.unwrap(),
                    Poll::Pending => parker.park(),
                }
            }
            driver.join().unwrap();
            drop(sender.join().unwrap());
            let (home, key) = source.home();
            home.release(reader.as_raw_fd(), key).unwrap();
            reactor
                .drivers
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

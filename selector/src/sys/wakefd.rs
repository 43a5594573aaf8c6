//! The eventfd that wakes a blocked `select`, with coalescing.

use std::io;
use std::os::fd::RawFd;

use crate::sync::atomic::{AtomicBool, Ordering::SeqCst};

/// A wakeup shared by the selector and its [`Notifier`](crate::Notifier)s.
///
/// `pending` makes repeated wakes cost one `write`: only the wake that flips
/// it from `false` to `true` touches the eventfd, and the waiter flips it back
/// after draining. `notified` tells a user's notification apart from the
/// selector's internal wakeups (the poll and select backends wake themselves
/// to rebuild their fd sets).
#[derive(Debug)]
pub(crate) struct Signal {
    counter: Counter,
    pending: AtomicBool,
    notified: AtomicBool,
}

impl Signal {
    pub(crate) fn new() -> io::Result<Signal> {
        Ok(Signal {
            counter: Counter::new()?,
            pending: AtomicBool::new(false),
            notified: AtomicBool::new(false),
        })
    }

    /// The fd the selector waits on (readable while a wake is pending).
    pub(crate) fn fd(&self) -> RawFd {
        self.counter.fd()
    }

    /// Makes the eventfd readable, unless a wake is already pending.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, SeqCst) {
            self.counter.add_one();
        }
    }

    /// A user's notification: wakes the waiter and makes `wait` return.
    pub(crate) fn notify(&self) {
        // A swap, not a store: see `reset`.
        self.notified.swap(true, SeqCst);
        self.wake();
    }

    /// Called by the waiter when the eventfd is readable: drains it and says
    /// whether a user notification was among the wakes.
    ///
    /// Order matters: drain first, then clear `pending`, then read
    /// `notified`. A wake racing with this either sees `pending` still set
    /// (and its `notified` is read below) or writes the eventfd again (and the
    /// next wait returns at once). Neither loses a notification.
    ///
    /// Every write of `pending` and `notified` is a swap (read-modify-write),
    /// never a plain store: of two writes, the second reads what the first
    /// wrote, so a notifier whose swap saw `pending` still set has its
    /// `notified` seen by the swap below, by release and acquire alone.
    /// With plain stores this rested on the single total order of `SeqCst`
    /// (the store-buffering pattern), which loom does not model, and loom
    /// also mis-orders a plain store against another thread's swap
    /// (tokio-rs/loom#389); with swaps only, its model is exact. On x86 a
    /// `SeqCst` store is an `xchg` anyway: the swaps cost nothing more.
    pub(crate) fn reset(&self) -> bool {
        self.counter.drain();
        self.pending.swap(false, SeqCst);
        self.notified.swap(false, SeqCst)
    }

    /// Under loom: blocks until a wake is pending, where a `select` would
    /// sleep (see `Selector::select`).
    #[cfg(loom)]
    pub(crate) fn wait_readable(&self) {
        self.counter.wait_readable();
    }
}

/// The kernel counter a `select` waits on: an eventfd.
#[derive(Debug)]
struct EventFd {
    fd: std::os::fd::OwnedFd,
}

impl EventFd {
    fn new() -> io::Result<EventFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd takes no pointers; flags are valid constants.
        let fd = unsafe { syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)) }?;
        // SAFETY: eventfd just returned this fd and nothing else owns it.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    fn fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// Makes the fd readable.
    fn add_one(&self) {
        let one: u64 = 1;
        // SAFETY: the pointer is to a live u64 of the 8 bytes given. An
        // error (EAGAIN on counter overflow) cannot happen while writes are
        // coalesced, and would leave the fd readable anyway.
        let _ = unsafe { syscall!(write(self.fd(), (&one as *const u64).cast(), 8)) };
    }

    /// Makes the fd unreadable until the next `add_one`.
    fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: the pointer is to a live u64 of the 8 bytes given; the fd is
        // non-blocking, so an already drained counter gives EAGAIN, ignored.
        let _ = unsafe { syscall!(read(self.fd(), (&mut count as *mut u64).cast(), 8)) };
    }
}

#[cfg(not(loom))]
type Counter = EventFd;

/// Under loom, the eventfd (still there, for selectors that register it)
/// doubled by a count and a condition variable that a model's waiter
/// blocks on where a `select` would, so that a lost wakeup is a deadlock
/// loom reports.
#[cfg(loom)]
#[derive(Debug)]
struct Counter {
    eventfd: EventFd,
    count: crate::sync::Mutex<u64>,
    readable: crate::sync::Condvar,
}

#[cfg(loom)]
impl Counter {
    fn new() -> io::Result<Counter> {
        Ok(Counter {
            eventfd: EventFd::new()?,
            count: crate::sync::Mutex::new(0),
            readable: crate::sync::Condvar::new(),
        })
    }

    fn fd(&self) -> RawFd {
        self.eventfd.fd()
    }

    // The eventfd and the count change together, under the count's lock:
    // a drain between one's write and the other's would leave a count
    // that says readable beside an eventfd that is not, and a waiter that
    // never sleeps.
    fn add_one(&self) {
        let mut count = self.count.lock().unwrap();
        self.eventfd.add_one();
        *count += 1;
        drop(count);
        self.readable.notify_all();
    }

    fn drain(&self) {
        let mut count = self.count.lock().unwrap();
        self.eventfd.drain();
        *count = 0;
    }

    /// Blocks until the count is non-zero, as `select` blocks until the
    /// eventfd is readable.
    fn wait_readable(&self) {
        let mut count = self.count.lock().unwrap();
        while *count == 0 {
            count = self.readable.wait(count).unwrap();
        }
    }
}

/// loom models of the wakeup protocol: `bash .ci/loom.sh`.
#[cfg(all(test, loom))]
mod model {
    use super::Signal;
    use crate::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use loom::sync::Arc;
    use loom::thread;

    /// A waiter's loop as the selectors run it: wait until the fd is
    /// readable, then reset; `work` is what the notifications announce.
    /// Returns once the waiter has seen `until` units of work after a
    /// notification. A lost wakeup leaves it blocked with every notifier
    /// done: loom reports the deadlock.
    fn wait_for(signal: &Signal, work: &AtomicUsize, until: usize) {
        loop {
            signal.counter.wait_readable();
            if signal.reset() && work.load(SeqCst) >= until {
                return;
            }
        }
    }

    /// Notifications from two threads against a waiting select: at least
    /// one wakeup, and coalescing (one eventfd write while a wake is
    /// pending) never swallows the last notification.
    #[test]
    fn notifications_from_two_threads_always_reach_the_waiter() {
        loom::model(|| {
            let signal = Arc::new(Signal::new().unwrap());
            let work = Arc::new(AtomicUsize::new(0));
            let notifiers: Vec<_> = (0..2)
                .map(|_| {
                    let (signal, work) = (Arc::clone(&signal), Arc::clone(&work));
                    thread::spawn(move || {
                        work.fetch_add(1, SeqCst);
                        signal.notify();
                    })
                })
                .collect();
            wait_for(&signal, &work, 2);
            notifiers.into_iter().for_each(|t| t.join().unwrap());
        });
    }

    /// The selector's own wakes (poll and select rebuilding their fd sets)
    /// mixed with a user's notification: the internal wake may take the
    /// eventfd write, and the notification must still be reported.
    #[test]
    fn an_internal_wake_does_not_hide_a_notification() {
        loom::model(|| {
            let signal = Arc::new(Signal::new().unwrap());
            let work = Arc::new(AtomicUsize::new(0));
            let internal = {
                let signal = Arc::clone(&signal);
                thread::spawn(move || signal.wake())
            };
            let user = {
                let (signal, work) = (Arc::clone(&signal), Arc::clone(&work));
                thread::spawn(move || {
                    work.fetch_add(1, SeqCst);
                    signal.notify();
                })
            };
            wait_for(&signal, &work, 1);
            internal.join().unwrap();
            user.join().unwrap();
        });
    }

    /// The same through the selector's own API: two threads `notify` a
    /// `Notifier` while this one waits in `Selector::select` (real epoll;
    /// under loom a wait without events waits for a notification). Each
    /// wakeup is a return of `select`; once both notifiers are done and
    /// their work seen, nothing is left pending: a last look finds no
    /// notification (a wake that stayed pending with the eventfd drained
    /// would make the next `select` return at once, or never).
    #[test]
    fn notifications_reach_a_waiting_select_and_leave_nothing_pending() {
        use crate::{Events, Selector};
        use std::time::Duration;

        loom::model(|| {
            let selector = Selector::new().unwrap();
            let work = Arc::new(AtomicUsize::new(0));
            let notifiers: Vec<_> = (0..2)
                .map(|_| {
                    let (notifier, work) = (selector.notifier(), Arc::clone(&work));
                    thread::spawn(move || {
                        work.fetch_add(1, SeqCst);
                        notifier.notify();
                    })
                })
                .collect();
            let mut events = Events::with_capacity(4);
            while work.load(SeqCst) < 2 {
                assert_eq!(selector.select(&mut events, None).unwrap(), 0);
            }
            notifiers.into_iter().for_each(|t| t.join().unwrap());
            // Drain what the last notification may have left, then the
            // signal must be quiet: no flag set, the eventfd unreadable.
            selector.select(&mut events, Some(Duration::ZERO)).unwrap();
            assert!(!selector.signal().reset(), "a notification left pending");
        });
    }
}

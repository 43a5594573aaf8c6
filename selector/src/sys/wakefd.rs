//! The eventfd that wakes a blocked `select`, with coalescing.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

/// A wakeup shared by the selector and its [`Notifier`](crate::Notifier)s.
///
/// `pending` makes repeated wakes cost one `write`: only the wake that flips
/// it from `false` to `true` touches the eventfd, and the waiter flips it back
/// after draining. `notified` tells a user's notification apart from the
/// selector's internal wakeups (the poll and select backends wake themselves
/// to rebuild their fd sets).
#[derive(Debug)]
pub(crate) struct Signal {
    fd: OwnedFd,
    pending: AtomicBool,
    notified: AtomicBool,
}

impl Signal {
    pub(crate) fn new() -> io::Result<Signal> {
        // SAFETY: eventfd takes no pointers; flags are valid constants.
        let fd = unsafe { syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)) }?;
        // SAFETY: eventfd just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signal {
            fd,
            pending: AtomicBool::new(false),
            notified: AtomicBool::new(false),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the eventfd readable, unless a wake is already pending.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, SeqCst) {
            let one: u64 = 1;
            // SAFETY: the pointer is to a live u64 of the 8 bytes given. An
            // error (EAGAIN on counter overflow) cannot happen while writes are
            // coalesced, and would leave the fd readable anyway.
            let _ = unsafe { syscall!(write(self.fd(), (&one as *const u64).cast(), 8)) };
        }
    }

    /// A user's notification: wakes the waiter and makes `wait` return.
    pub(crate) fn notify(&self) {
        self.notified.store(true, SeqCst);
        self.wake();
    }

    /// Called by the waiter when the eventfd is readable: drains it and says
    /// whether a user notification was among the wakes.
    ///
    /// Order matters: drain first, then clear `pending`, then read
    /// `notified`. A wake racing with this either sees `pending` still set
    /// (and its `notified` is read below) or writes the eventfd again (and the
    /// next wait returns at once). Neither loses a notification.
    pub(crate) fn reset(&self) -> bool {
        let mut count: u64 = 0;
        // SAFETY: the pointer is to a live u64 of the 8 bytes given; the fd is
        // non-blocking, so an already drained counter gives EAGAIN, ignored.
        let _ = unsafe { syscall!(read(self.fd(), (&mut count as *mut u64).cast(), 8)) };
        self.pending.store(false, SeqCst);
        self.notified.swap(false, SeqCst)
    }
}

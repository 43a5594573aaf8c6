//! The registration side shared by the backends that keep their fd set in
//! userspace (poll and select): the [`Table`] under its lock, and the wakeup
//! that makes a thread blocked in the kernel come back and rebuild its set
//! after a change.
//!
//! A backend's `wait` brackets its one blocking call with
//! [`WatchList::blocking`] (rebuild the fd set if the table changed, and count
//! as a waiter) and [`WatchList::returned`] (no longer a waiter; report what
//! the kernel said against the table). Registration changes made in between
//! wake the waiter through the [`Signal`] so that it rebuilds promptly.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::registry::Table;
use crate::sys::lock;
use crate::sys::wakefd::Signal;
use crate::{Interest, Mode, Registration, Token};

/// The table, and who is blocked on the fd set built from it.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub(crate) table: Table,
    /// Threads currently blocked in the kernel on this table's fd set; a
    /// change made while this is non-zero must wake them.
    waiters: usize,
    /// How many times a thread has come back from the kernel (see
    /// [`WatchList::returned`]).
    returns: u64,
    /// Threads in [`WatchList::deregister`] waiting for the blocked ones to
    /// come back.
    closers: usize,
}

/// The table of a poll or select backend, and the wakeup that makes a thread
/// blocked in the kernel come back and rebuild its set after a change.
#[derive(Debug)]
pub(crate) struct WatchList {
    watched: Mutex<Watched>,
    /// Signalled when a thread comes back from the kernel while a
    /// deregistration waits for it.
    returned: Condvar,
    pub(crate) signal: Arc<Signal>,
    /// The select backend cannot watch fds at or above FD_SETSIZE.
    fd_limit: Option<RawFd>,
}

impl WatchList {
    pub(crate) fn new(fd_limit: Option<RawFd>) -> io::Result<WatchList> {
        let signal = Arc::new(Signal::new()?);
        let list = WatchList {
            watched: Default::default(),
            returned: Condvar::new(),
            signal,
            fd_limit,
        };
        list.check_fd(list.signal.fd())?;
        Ok(list)
    }

    pub(crate) fn register(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.check_fd(fd)?;
        let mut watched = lock(&self.watched);
        watched.table.insert(fd, token, interest, mode)?;
        self.changed(&watched);
        Ok(())
    }

    pub(crate) fn modify(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        // No check that `fd` is still open here (it costs a syscall on every
        // re-arm): a registered fd closed behind our back is reported by the
        // next poll/select as an error event instead.
        let mut watched = lock(&self.watched);
        watched.table.get(fd)?;
        watched.table.update(fd, token, interest, mode)?;
        self.changed(&watched);
        Ok(())
    }

    /// Removes `fd`, and returns only once no thread is still blocked in
    /// poll/select on a set that holds it.
    ///
    /// The wait matters because the caller is about to close `fd`: for the
    /// duration of the call, poll and select hold a reference to the file of
    /// every fd they watch, so a close made meanwhile would not release the
    /// socket (the peer would not see it closed) until that thread came back.
    /// The wakeup makes it come back at once; when no other thread is
    /// blocked, as when one thread both runs the loop and closes, or when
    /// `fd` was not in the blocked thread's set, nothing waits.
    ///
    /// A process that forks while a thread is blocked here and goes on
    /// using the selector in the child would wait forever (the child has no
    /// such thread); like the rest of tarn, the selector is not meant to be
    /// used across `fork`.
    pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        let mut watched = lock(&self.watched);
        let entry = watched.table.remove(fd)?;
        // A disarmed fd (a oneshot registration that has reported) is not in
        // the set of a thread blocked now: disarming bumps the version, so
        // every wait since rebuilt its set without it. Nothing to wait for.
        if entry.armed && watched.waiters > 0 {
            self.signal.wake();
            let seen = watched.returns;
            watched.closers += 1;
            while watched.waiters > 0 && watched.returns == seen {
                watched = self
                    .returned
                    .wait(watched)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            watched.closers -= 1;
        }
        Ok(())
    }

    /// Called by a backend just before its thread blocks in the kernel:
    /// with the table locked, `build` brings the backend's fd set up to date
    /// (if the table's version changed), and the thread then counts as a
    /// waiter, to be woken by any change, until it calls
    /// [`returned`](Self::returned).
    pub(crate) fn blocking<R>(&self, build: impl FnOnce(&Table) -> R) -> R {
        let mut watched = lock(&self.watched);
        let built = build(&watched.table);
        watched.waiters += 1;
        built
    }

    /// Called by a backend when its thread comes back from the kernel: no
    /// longer a waiter, and the release that a waiting
    /// [`deregister`](Self::deregister) looks for. The backends take the
    /// scratch lock around the syscall, so at most one thread per selector
    /// is blocked at a time, and its return is the one awaited.
    ///
    /// Returns the table, still locked, to report what the kernel said.
    pub(crate) fn returned(&self) -> MutexGuard<'_, Watched> {
        let mut watched = lock(&self.watched);
        watched.waiters -= 1;
        watched.returns = watched.returns.wrapping_add(1);
        if watched.closers > 0 {
            self.returned.notify_all();
        }
        watched
    }

    pub(crate) fn registrations(&self) -> Vec<Registration> {
        lock(&self.watched).table.list()
    }

    /// Wakes the threads blocked on the old fd set, if any.
    fn changed(&self, watched: &Watched) {
        if watched.waiters > 0 {
            self.signal.wake();
        }
    }

    fn check_fd(&self, fd: RawFd) -> io::Result<()> {
        if let Some(limit) = self.fd_limit {
            if fd >= limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "fd {fd} exceeds FD_SETSIZE ({limit}) on the select backend; \
                         use the poll or epoll backend"
                    ),
                ));
            }
        }
        crate::sys::check_open(fd)
    }
}

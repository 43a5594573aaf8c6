//! The selector's own record of what is registered: one [`Table`] per
//! selector, the source of `AlreadyExists`/`NotFound` errors and of
//! `registrations()`, and for the poll and select backends the whole truth
//! (they rebuild their kernel-facing fd sets from it).

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;

use crate::event::{Event, ERROR, PRIORITY, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};
use crate::{Interest, Mode, Registration, Token};

/// One registered fd.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) token: Token,
    pub(crate) interest: Interest,
    pub(crate) mode: Mode,
    /// False once a oneshot (or, for files epoll refuses, an edge)
    /// registration has reported; `modify` sets it again.
    pub(crate) armed: bool,
    /// Distinguishes this registration from an earlier one of the same fd
    /// number, so an event for a stale fd set is never misattributed.
    pub(crate) generation: u64,
    /// epoll only: an fd epoll refuses (a regular file), reported ready on
    /// every `select` instead of by the kernel.
    pub(crate) always_ready: bool,
}

/// fd → registration, plus a version that changes whenever the set of fds a
/// userspace backend must watch changes.
#[derive(Debug, Default)]
pub(crate) struct Table {
    entries: HashMap<RawFd, Entry>,
    next_generation: u64,
    /// Bumped on every change that alters which fds are watched and how.
    pub(crate) version: u64,
    /// Threads currently blocked in the kernel on this table's fd set; a
    /// change made while this is non-zero must wake them.
    pub(crate) waiters: usize,
    /// How many times a thread has come back from the kernel (see
    /// [`WatchList::returned`]).
    returns: u64,
    /// Threads in [`WatchList::deregister`] waiting for the blocked ones to
    /// come back.
    closers: usize,
}

impl Table {
    /// Adds a registration, or fails with `AlreadyExists`.
    pub(crate) fn insert(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<&mut Entry> {
        self.vacant(fd)?;
        self.next_generation += 1;
        self.version += 1;
        let entry = Entry {
            token,
            interest,
            mode,
            armed: true,
            generation: self.next_generation,
            always_ready: false,
        };
        Ok(self.entries.entry(fd).or_insert(entry))
    }

    /// Fails with `AlreadyExists` if `fd` is registered.
    pub(crate) fn vacant(&self, fd: RawFd) -> io::Result<()> {
        if self.entries.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered; use modify to change it"),
            ));
        }
        Ok(())
    }

    /// The registration of `fd`, or `NotFound`.
    pub(crate) fn get(&self, fd: RawFd) -> io::Result<&Entry> {
        self.entries.get(&fd).ok_or_else(|| not_registered(fd))
    }

    /// Changes a registration and re-arms it, or fails with `NotFound`.
    pub(crate) fn update(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<&mut Entry> {
        let entry = self
            .entries
            .get_mut(&fd)
            .ok_or_else(|| not_registered(fd))?;
        entry.token = token;
        entry.interest = interest;
        entry.mode = mode;
        entry.armed = true;
        self.version += 1;
        Ok(entry)
    }

    /// Removes a registration, or fails with `NotFound`.
    pub(crate) fn remove(&mut self, fd: RawFd) -> io::Result<Entry> {
        let entry = self.entries.remove(&fd).ok_or_else(|| not_registered(fd))?;
        self.version += 1;
        Ok(entry)
    }

    /// The registrations that a userspace backend must hand to the kernel.
    pub(crate) fn armed(&self) -> impl Iterator<Item = (RawFd, &Entry)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.armed)
            .map(|(fd, e)| (*fd, e))
    }

    /// Turns raw readiness flags seen for `fd` into the event to report, if
    /// the registration that was watched is still current and armed.
    ///
    /// Directions the registration no longer asks for are masked out (it may
    /// have been modified while the kernel was waiting); error and hangup
    /// flags always pass. A oneshot registration is disarmed by reporting.
    pub(crate) fn report(&mut self, fd: RawFd, generation: u64, flags: u8) -> Option<Event> {
        let entry = self.entries.get_mut(&fd)?;
        if entry.generation != generation || !entry.armed {
            return None;
        }
        let flags = flags & mask(entry.interest);
        if flags == 0 {
            return None;
        }
        if entry.mode != Mode::Level {
            entry.armed = false;
            self.version += 1;
        }
        Some(Event::new(entry.token, flags))
    }

    /// Events for the fds epoll refused: ready in every direction asked for.
    pub(crate) fn report_always_ready(&mut self, events: &mut crate::Events) {
        for entry in self.entries.values_mut() {
            if !entry.always_ready || !entry.armed || !events.has_room() {
                continue;
            }
            let flags = (READABLE | WRITABLE) & mask(entry.interest);
            if flags == 0 {
                continue;
            }
            if entry.mode != Mode::Level {
                entry.armed = false;
            }
            events.push(Event::new(entry.token, flags));
        }
    }

    /// Every registration, ordered by fd.
    pub(crate) fn list(&self) -> Vec<Registration> {
        let mut list: Vec<Registration> = self
            .entries
            .iter()
            .map(|(fd, e)| Registration {
                fd: *fd,
                token: e.token,
                interest: e.interest,
                mode: e.mode,
            })
            .collect();
        list.sort_by_key(|r| r.fd);
        list
    }
}

/// The event flags a registration with `interest` may receive.
fn mask(interest: Interest) -> u8 {
    let mut mask = ERROR | READ_CLOSED | WRITE_CLOSED;
    if interest.is_readable() {
        mask |= READABLE;
    }
    if interest.is_writable() {
        mask |= WRITABLE;
    }
    if interest.is_priority() {
        mask |= PRIORITY;
    }
    mask
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered with this selector"),
    )
}

/// Locks a mutex, ignoring poisoning: every critical section in this crate
/// leaves its data consistent before it can panic.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The registration side shared by the backends that keep their fd set in
/// userspace (poll and select): the table, and the wakeup that makes a thread
/// blocked in the kernel come back and rebuild its set after a change.
#[derive(Debug)]
pub(crate) struct WatchList {
    pub(crate) table: std::sync::Mutex<Table>,
    /// Signalled when a thread comes back from the kernel while a
    /// deregistration waits for it.
    returned: std::sync::Condvar,
    pub(crate) signal: std::sync::Arc<crate::sys::wakefd::Signal>,
    /// The select backend cannot watch fds at or above FD_SETSIZE.
    fd_limit: Option<RawFd>,
}

impl WatchList {
    pub(crate) fn new(fd_limit: Option<RawFd>) -> io::Result<WatchList> {
        let signal = std::sync::Arc::new(crate::sys::wakefd::Signal::new()?);
        let list = WatchList {
            table: Default::default(),
            returned: std::sync::Condvar::new(),
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
        let mut table = lock(&self.table);
        table.insert(fd, token, interest, mode)?;
        self.changed(&table);
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
        let mut table = lock(&self.table);
        table.get(fd)?;
        table.update(fd, token, interest, mode)?;
        self.changed(&table);
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
        let mut table = lock(&self.table);
        let entry = table.remove(fd)?;
        // A disarmed fd (a oneshot registration that has reported) is not in
        // the set of a thread blocked now: disarming bumps the version, so
        // every wait since rebuilt its set without it. Nothing to wait for.
        if entry.armed && table.waiters > 0 {
            self.signal.wake();
            let seen = table.returns;
            table.closers += 1;
            while table.waiters > 0 && table.returns == seen {
                table = self
                    .returned
                    .wait(table)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            table.closers -= 1;
        }
        Ok(())
    }

    /// Called by a backend, with the table locked, when its thread comes
    /// back from the kernel: no longer a waiter, and the release that a
    /// waiting [`deregister`](Self::deregister) looks for. The backends take
    /// the scratch lock around the syscall, so at most one thread per
    /// selector is blocked at a time, and its return is the one awaited.
    pub(crate) fn returned(&self, table: &mut Table) {
        table.waiters -= 1;
        table.returns = table.returns.wrapping_add(1);
        if table.closers > 0 {
            self.returned.notify_all();
        }
    }

    pub(crate) fn registrations(&self) -> Vec<Registration> {
        lock(&self.table).list()
    }

    /// Wakes the threads blocked on the old fd set, if any.
    fn changed(&self, table: &Table) {
        if table.waiters > 0 {
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

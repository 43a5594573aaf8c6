//! The selector's own record of what is registered: one [`Table`] per
//! selector, the source of `AlreadyExists`/`NotFound` errors and of
//! `registrations()`, and for the poll and select backends the whole truth
//! (they rebuild their kernel-facing fd sets from it). How a change reaches a
//! thread blocked on an old fd set is the business of those backends, in
//! `sys/watch.rs`.

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

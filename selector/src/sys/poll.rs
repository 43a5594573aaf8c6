//! The poll backend (`ppoll(2)`, nanosecond timeouts).
//!
//! The fd set lives in userspace ([`WatchList`]); `wait` rebuilds its
//! `pollfd` array only when the table's version changed, and a change made
//! while a thread is blocked wakes it through the eventfd at index 0 so it
//! rebuilds promptly. Oneshot is emulated: reporting disarms the entry, which
//! leaves the array until `modify` re-arms it. Edge is not offered.
//!
//! Flag mapping: `POLLIN` → readable, `POLLOUT` → writable, `POLLPRI` →
//! priority, `POLLERR` or `POLLNVAL` (fd closed while registered) → error,
//! `POLLRDHUP` or `POLLHUP` → read_closed, `POLLHUP` → write_closed.
//! Registrations that ask for READABLE also ask for `POLLRDHUP`: asked for
//! alone it would wake a waiting writer over and over once the peer stopped
//! sending.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::event::{ERROR, PRIORITY, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};
use crate::sys::lock;
use crate::sys::wakefd::Signal;
use crate::sys::watch::WatchList;
use crate::{Events, Interest, Mode, Registration, Token};

#[derive(Debug)]
pub(crate) struct Selector {
    watch: WatchList,
    /// Held for the whole of a `wait`: concurrent waits take turns.
    scratch: Mutex<Scratch>,
}

#[derive(Debug)]
struct Scratch {
    /// Index 0 is the wakeup eventfd; the rest mirror the armed entries.
    fds: Vec<libc::pollfd>,
    /// The registration generation of each `fds[i]` (unused at 0).
    generations: Vec<u64>,
    /// The table version `fds` was built from.
    version: Option<u64>,
    /// Where the next scan for ready fds starts, so that a small `Events`
    /// buffer does not always favour the same fds.
    cursor: usize,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        Ok(Selector {
            watch: WatchList::new(None)?,
            scratch: Mutex::new(Scratch {
                fds: Vec::new(),
                generations: Vec::new(),
                version: None,
                cursor: 0,
            }),
        })
    }

    pub(crate) fn signal(&self) -> &Arc<Signal> {
        &self.watch.signal
    }

    pub(crate) fn register(
        &self,
        fd: i32,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.watch.register(fd, token, interest, mode)
    }

    pub(crate) fn modify(
        &self,
        fd: i32,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.watch.modify(fd, token, interest, mode)
    }

    pub(crate) fn deregister(&self, fd: i32) -> io::Result<()> {
        self.watch.deregister(fd)
    }

    pub(crate) fn registrations(&self) -> Vec<Registration> {
        self.watch.registrations()
    }

    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<bool> {
        events.list.clear();
        let mut scratch = lock(&self.scratch);
        let scratch = &mut *scratch;
        self.watch.blocking(|table| {
            if scratch.version != Some(table.version) {
                scratch.fds.clear();
                scratch.generations.clear();
                scratch
                    .fds
                    .push(pollfd(self.watch.signal.fd(), libc::POLLIN));
                scratch.generations.push(0);
                for (fd, entry) in table.armed() {
                    scratch.fds.push(pollfd(fd, poll_events(entry.interest)));
                    scratch.generations.push(entry.generation);
                }
                scratch.version = Some(table.version);
            }
        });

        let ts = timeout.map(crate::sys::timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
        // SAFETY: `fds` is a valid array of `len` pollfds; `ts_ptr` is null or
        // points to a timespec alive for the call; a null sigmask keeps the
        // current one.
        let res = unsafe {
            syscall!(ppoll(
                scratch.fds.as_mut_ptr(),
                scratch.fds.len() as libc::nfds_t,
                ts_ptr,
                std::ptr::null()
            ))
        };

        let mut watched = self.watch.returned();
        let table = &mut watched.table;
        if res? == 0 {
            return Ok(false);
        }
        let notified = scratch.fds[0].revents != 0 && self.watch.signal.reset();
        let watched = scratch.fds.len() - 1;
        if watched > 0 {
            scratch.cursor %= watched;
        }
        for k in 0..watched {
            let i = 1 + (scratch.cursor + k) % watched;
            let pfd = scratch.fds[i];
            if pfd.revents == 0 {
                continue;
            }
            if !events.has_room() {
                scratch.cursor = (scratch.cursor + k) % watched;
                break;
            }
            if let Some(event) =
                table.report(pfd.fd, scratch.generations[i], translate(pfd.revents))
            {
                events.push(event);
            }
        }
        Ok(notified || !events.is_empty())
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn poll_events(interest: Interest) -> libc::c_short {
    let mut events = 0;
    if interest.is_readable() {
        // Only a reader cares that the peer stopped sending; asked for
        // without POLLIN it would make a waiting writer's poll spin.
        events |= libc::POLLIN | libc::POLLRDHUP;
    }
    if interest.is_writable() {
        events |= libc::POLLOUT;
    }
    if interest.is_priority() {
        events |= libc::POLLPRI;
    }
    events
}

fn translate(revents: libc::c_short) -> u8 {
    let mut flags = 0;
    if revents & libc::POLLIN != 0 {
        flags |= READABLE;
    }
    if revents & libc::POLLOUT != 0 {
        flags |= WRITABLE;
    }
    if revents & libc::POLLPRI != 0 {
        flags |= PRIORITY;
    }
    if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        flags |= ERROR;
    }
    if revents & (libc::POLLRDHUP | libc::POLLHUP) != 0 {
        flags |= READ_CLOSED;
    }
    if revents & libc::POLLHUP != 0 {
        flags |= WRITE_CLOSED;
    }
    flags
}

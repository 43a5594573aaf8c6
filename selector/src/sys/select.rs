//! The select backend (`pselect(2)`, nanosecond timeouts), for fds below
//! `FD_SETSIZE` (1024) only; registering a larger fd is an `InvalidInput`
//! error naming the limit.
//!
//! Like the poll backend it keeps its fd set in userspace ([`WatchList`]),
//! rebuilds its master `fd_set`s when the table changes, and wakes a blocked
//! thread to rebuild after a change. Oneshot is emulated; Edge is not offered.
//!
//! Flag mapping: read set → readable, write set → writable, except set
//! (TCP urgent data) → priority. `select` has no way to report hangups or
//! errors: a hangup shows as readable (the read returns end of stream) and a
//! pending error as readable and writable (the call returns the error). The
//! one exception is an fd closed while registered, which makes `pselect`
//! fail with `EBADF`: the backend then finds the closed fds and reports each
//! with `error` set, as `poll` reports `POLLNVAL`.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::event::{ERROR, PRIORITY, READABLE, WRITABLE};
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

struct Scratch {
    /// The sets built from the table; copied before each `pselect`, which
    /// overwrites its arguments.
    read: FdSet,
    write: FdSet,
    except: FdSet,
    nfds: RawFd,
    /// The armed fds with their registration generation.
    fds: Vec<(RawFd, u64)>,
    version: Option<u64>,
    cursor: usize,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("fds", &self.fds)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        Ok(Selector {
            watch: WatchList::new(Some(libc::FD_SETSIZE as RawFd))?,
            scratch: Mutex::new(Scratch {
                read: FdSet::new(),
                write: FdSet::new(),
                except: FdSet::new(),
                nfds: 0,
                fds: Vec::new(),
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
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.watch.register(fd, token, interest, mode)
    }

    pub(crate) fn modify(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.watch.modify(fd, token, interest, mode)
    }

    pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        self.watch.deregister(fd)
    }

    pub(crate) fn registrations(&self) -> Vec<Registration> {
        self.watch.registrations()
    }

    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<bool> {
        events.list.clear();
        let mut scratch = lock(&self.scratch);
        let s = &mut *scratch;
        let wake_fd = self.watch.signal.fd();
        self.watch.blocking(|table| {
            if s.version != Some(table.version) {
                s.read.clear();
                s.write.clear();
                s.except.clear();
                s.fds.clear();
                s.read.insert(wake_fd);
                s.nfds = wake_fd + 1;
                for (fd, entry) in table.armed() {
                    if entry.interest.is_readable() {
                        s.read.insert(fd);
                    }
                    if entry.interest.is_writable() {
                        s.write.insert(fd);
                    }
                    if entry.interest.is_priority() {
                        s.except.insert(fd);
                    }
                    s.fds.push((fd, entry.generation));
                    s.nfds = s.nfds.max(fd + 1);
                }
                s.version = Some(table.version);
            }
        });

        let (mut read, mut write, mut except) = (s.read, s.write, s.except);
        let ts = timeout.map(crate::sys::timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
        // SAFETY: the three sets are valid fd_sets holding only fds below
        // `nfds` <= FD_SETSIZE; `ts_ptr` is null or points to a timespec alive
        // for the call; a null sigmask keeps the current one.
        let res = unsafe {
            syscall!(pselect(
                s.nfds,
                &mut read.0,
                &mut write.0,
                &mut except.0,
                ts_ptr,
                std::ptr::null()
            ))
        };

        let mut watched = self.watch.returned();
        let table = &mut watched.table;
        match res {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                // Some registered fd was closed: report each closed one.
                for &(fd, generation) in &s.fds {
                    if events.has_room() && crate::sys::check_open(fd).is_err() {
                        if let Some(event) = table.report(fd, generation, ERROR) {
                            events.push(event);
                        }
                    }
                }
                if events.is_empty() && s.version == Some(table.version) {
                    return Err(e);
                }
                return Ok(!events.is_empty());
            }
            Err(e) => return Err(e),
        }
        let notified = read.contains(wake_fd) && self.watch.signal.reset();
        let watched = s.fds.len();
        if watched > 0 {
            s.cursor %= watched;
        }
        for k in 0..watched {
            let (fd, generation) = s.fds[(s.cursor + k) % watched];
            let mut flags = 0;
            if read.contains(fd) {
                flags |= READABLE;
            }
            if write.contains(fd) {
                flags |= WRITABLE;
            }
            if except.contains(fd) {
                flags |= PRIORITY;
            }
            if flags == 0 {
                continue;
            }
            if !events.has_room() {
                s.cursor = (s.cursor + k) % watched;
                break;
            }
            if let Some(event) = table.report(fd, generation, flags) {
                events.push(event);
            }
        }
        Ok(notified || !events.is_empty())
    }
}

/// A `libc::fd_set` with safe methods for fds known to be below FD_SETSIZE.
#[derive(Clone, Copy)]
struct FdSet(libc::fd_set);

impl FdSet {
    fn new() -> FdSet {
        // SAFETY: fd_set is a plain bit array, valid when zeroed (the state
        // FD_ZERO produces).
        FdSet(unsafe { std::mem::zeroed() })
    }

    fn clear(&mut self) {
        *self = FdSet::new();
    }

    fn insert(&mut self, fd: RawFd) {
        debug_assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
        // SAFETY: callers only pass fds checked against FD_SETSIZE at
        // registration (WatchList::check_fd), so the bit is inside the set.
        unsafe { libc::FD_SET(fd, &mut self.0) }
    }

    fn contains(&self, fd: RawFd) -> bool {
        debug_assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
        // SAFETY: as for `insert`, the fd is within the set's bounds.
        unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

//! The epoll backend (Linux default).
//!
//! The kernel keeps the interest set, so `select` is one `epoll_pwait2` (or
//! `epoll_wait` on kernels before 5.11) and registration changes take effect
//! for a thread already blocked in it. The [`Table`] beside it only answers
//! `registrations()`, gives the portable errors, and holds the fds epoll
//! refuses with `EPERM` (regular files, directories): those are reported
//! ready in every direction asked for on every `select`, as Twisted's epoll
//! reactor does.
//!
//! Flag mapping: `EPOLLIN` → readable, `EPOLLOUT` → writable, `EPOLLPRI` →
//! priority, `EPOLLERR` → error, `EPOLLRDHUP` or `EPOLLHUP` → read_closed,
//! `EPOLLHUP` → write_closed. Registrations that ask for READABLE also ask
//! for `EPOLLRDHUP`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::event::{ERROR, PRIORITY, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};
use crate::registry::Table;
use crate::sys::lock;
use crate::sys::wakefd::Signal;
use crate::{Event, Events, Interest, Mode, Registration, Token};

#[derive(Debug)]
pub(crate) struct Selector {
    epfd: OwnedFd,
    table: Mutex<Table>,
    /// How many table entries are `always_ready`; lets `wait` skip the lock.
    always_ready: AtomicUsize,
    signal: Arc<Signal>,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        // SAFETY: epoll_create1 takes only flags.
        let epfd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC)) }?;
        // SAFETY: the kernel just returned this fd and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let signal = Arc::new(Signal::new()?);
        let selector = Selector {
            epfd,
            table: Mutex::default(),
            always_ready: AtomicUsize::new(0),
            signal,
        };
        selector.ctl(
            libc::EPOLL_CTL_ADD,
            selector.signal.fd(),
            libc::EPOLLIN as u32,
            Token::WAKE,
        )?;
        Ok(selector)
    }

    /// The epoll fd, which is readable while events are ready.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.epfd.as_fd()
    }

    pub(crate) fn signal(&self) -> &Arc<Signal> {
        &self.signal
    }

    pub(crate) fn register(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        let mut table = lock(&self.table);
        table.vacant(fd)?;
        let refused = match self.ctl(libc::EPOLL_CTL_ADD, fd, flags(interest, mode), token) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => true,
            Err(e) => return Err(e),
        };
        table.insert(fd, token, interest, mode)?.always_ready = refused;
        if refused {
            self.always_ready.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn modify(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        let mut table = lock(&self.table);
        if !table.get(fd)?.always_ready {
            self.ctl(libc::EPOLL_CTL_MOD, fd, flags(interest, mode), token)?;
        } else {
            crate::sys::check_open(fd)?;
        }
        table.update(fd, token, interest, mode)?;
        Ok(())
    }

    pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        let entry = lock(&self.table).remove(fd)?;
        if entry.always_ready {
            self.always_ready.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        // SAFETY: EPOLL_CTL_DEL ignores the event pointer; null is allowed
        // since Linux 2.6.9.
        match unsafe {
            syscall!(epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut()
            ))
        } {
            Ok(_) => Ok(()),
            // Closed before deregistration: the kernel already dropped it
            // (EBADF), or the number now names another file (ENOENT).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOENT)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn registrations(&self) -> Vec<Registration> {
        lock(&self.table).list()
    }

    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<bool> {
        events.list.clear();
        let mut timeout = timeout;
        if self.always_ready.load(Ordering::Relaxed) > 0 {
            lock(&self.table).report_always_ready(events);
            if !events.is_empty() {
                timeout = Some(Duration::ZERO);
            }
        }
        let room = events.capacity - events.len();
        if room == 0 {
            return Ok(true);
        }
        if events.raw.len() < room {
            events
                .raw
                .resize(room, libc::epoll_event { events: 0, u64: 0 });
        }
        let n = match epoll_wait(self.epfd.as_raw_fd(), &mut events.raw[..room], timeout) {
            Ok(n) => n,
            // Events already taken from the table must not be lost to a retry.
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !events.is_empty() => 0,
            Err(e) => return Err(e),
        };
        let mut notified = false;
        for i in 0..n {
            let raw = events.raw[i];
            let token = Token(raw.u64 as usize);
            if token == Token::WAKE {
                notified |= self.signal.reset();
                continue;
            }
            events.push(Event::new(token, translate(raw.events)));
        }
        Ok(notified || !events.is_empty())
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, flags: u32, token: Token) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: flags,
            u64: token.0 as u64,
        };
        // SAFETY: `event` is a valid epoll_event that outlives the call.
        unsafe { syscall!(epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event)) }?;
        Ok(())
    }
}

/// Whether `epoll_pwait2` works here: 0 unknown, 1 yes, 2 no.
static PWAIT2: AtomicU8 = AtomicU8::new(0);

/// One wait, with nanosecond timeouts where the kernel offers them.
fn epoll_wait(
    epfd: RawFd,
    buf: &mut [libc::epoll_event],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let max = libc::c_int::try_from(buf.len()).unwrap_or(libc::c_int::MAX);
    if PWAIT2.load(Ordering::Relaxed) != 2 {
        let ts = timeout.map(crate::sys::timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
        // SAFETY: `buf` is valid for `max` events; `ts_ptr` is null or points
        // to a timespec alive for the call; a null sigmask means "keep the
        // current one", so the size argument is unused.
        match unsafe {
            syscall!(syscall(
                libc::SYS_epoll_pwait2,
                epfd,
                buf.as_mut_ptr(),
                max,
                ts_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize
            ))
        } {
            Ok(n) => {
                PWAIT2.store(1, Ordering::Relaxed);
                return Ok(n as usize);
            }
            // Old kernels say ENOSYS; some seccomp filters say EPERM.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                PWAIT2.store(2, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    let ms = match timeout {
        None => -1,
        // Round up so that a sub-millisecond timeout does not become a busy poll.
        Some(t) => t
            .as_nanos()
            .div_ceil(1_000_000)
            .try_into()
            .unwrap_or(libc::c_int::MAX),
    };
    // SAFETY: `buf` is valid for `max` events.
    let n = unsafe { syscall!(epoll_wait(epfd, buf.as_mut_ptr(), max, ms)) }?;
    Ok(n as usize)
}

fn flags(interest: Interest, mode: Mode) -> u32 {
    let mut flags = 0;
    if interest.is_readable() {
        // Only a reader cares that the peer stopped sending; asked for
        // without EPOLLIN it would make a level-triggered writer spin.
        flags |= libc::EPOLLIN | libc::EPOLLRDHUP;
    }
    if interest.is_writable() {
        flags |= libc::EPOLLOUT;
    }
    if interest.is_priority() {
        flags |= libc::EPOLLPRI;
    }
    match mode {
        Mode::Level => {}
        Mode::Oneshot => flags |= libc::EPOLLONESHOT,
        Mode::Edge => flags |= libc::EPOLLET,
    }
    flags as u32
}

fn translate(raw: u32) -> u8 {
    let raw = raw as libc::c_int;
    let mut flags = 0;
    if raw & libc::EPOLLIN != 0 {
        flags |= READABLE;
    }
    if raw & libc::EPOLLOUT != 0 {
        flags |= WRITABLE;
    }
    if raw & libc::EPOLLPRI != 0 {
        flags |= PRIORITY;
    }
    if raw & libc::EPOLLERR != 0 {
        flags |= ERROR;
    }
    if raw & (libc::EPOLLRDHUP | libc::EPOLLHUP) != 0 {
        flags |= READ_CLOSED;
    }
    if raw & libc::EPOLLHUP != 0 {
        flags |= WRITE_CLOSED;
    }
    flags
}

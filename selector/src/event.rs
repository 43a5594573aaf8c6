//! What `select` reports: [`Token`], [`Event`] and the caller-owned [`Events`] buffer.

use std::fmt;

use crate::interest::write_flags;

/// The caller's name for a registration, handed back in every [`Event`] for it.
///
/// Typically an index into the caller's own table (a `slab` key). The value
/// `usize::MAX` is reserved by the selector for its internal wakeup and cannot
/// be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);

impl Token {
    /// The token the selector keeps for its own wakeup fd.
    pub(crate) const WAKE: Token = Token(usize::MAX);
}

impl From<usize> for Token {
    fn from(value: usize) -> Token {
        Token(value)
    }
}

impl From<Token> for usize {
    fn from(token: Token) -> usize {
        token.0
    }
}

pub(crate) const READABLE: u8 = 1 << 0;
pub(crate) const WRITABLE: u8 = 1 << 1;
pub(crate) const PRIORITY: u8 = 1 << 2;
pub(crate) const ERROR: u8 = 1 << 3;
pub(crate) const READ_CLOSED: u8 = 1 << 4;
pub(crate) const WRITE_CLOSED: u8 = 1 << 5;

/// One readiness report for one registration.
///
/// The flags are mapped from what the kernel said, without interpretation;
/// the crate documentation has the table for each backend. Note that
/// `error`, `read_closed` and `write_closed` may be reported even when the
/// registration asked only for another direction, because the kernel reports
/// them unconditionally.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: Token,
    flags: u8,
}

impl Event {
    pub(crate) fn new(token: Token, flags: u8) -> Event {
        Event { token, flags }
    }

    /// The token the fd was registered with.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Data can be read without blocking (`EPOLLIN`, `POLLIN`, the read set).
    pub fn readable(&self) -> bool {
        self.flags & READABLE != 0
    }

    /// Data can be written without blocking (`EPOLLOUT`, `POLLOUT`, the write set).
    pub fn writable(&self) -> bool {
        self.flags & WRITABLE != 0
    }

    /// Priority data is waiting (`EPOLLPRI`, `POLLPRI`, the except set).
    pub fn priority(&self) -> bool {
        self.flags & PRIORITY != 0
    }

    /// An error is pending on the fd (`EPOLLERR`, `POLLERR`), or the fd is not
    /// open (`POLLNVAL`, or `EBADF` from `select`).
    pub fn error(&self) -> bool {
        self.flags & ERROR != 0
    }

    /// The peer will send nothing more: a read returns end of stream
    /// (`EPOLLRDHUP`/`EPOLLHUP`, `POLLRDHUP`/`POLLHUP`).
    pub fn read_closed(&self) -> bool {
        self.flags & READ_CLOSED != 0
    }

    /// Writing can no longer succeed: the connection is shut down in both
    /// directions or was reset (`EPOLLHUP`, `POLLHUP`).
    pub fn write_closed(&self) -> bool {
        self.flags & WRITE_CLOSED != 0
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Flags(u8);
        impl fmt::Debug for Flags {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let names = [
                    (self.0 & READABLE != 0, "READABLE"),
                    (self.0 & WRITABLE != 0, "WRITABLE"),
                    (self.0 & PRIORITY != 0, "PRIORITY"),
                    (self.0 & ERROR != 0, "ERROR"),
                    (self.0 & READ_CLOSED != 0, "READ_CLOSED"),
                    (self.0 & WRITE_CLOSED != 0, "WRITE_CLOSED"),
                ];
                write_flags(f, &names, "NONE")
            }
        }
        f.debug_struct("Event")
            .field("token", &self.token)
            .field("flags", &Flags(self.flags))
            .finish()
    }
}

/// A caller-owned buffer that [`Selector::select`](crate::Selector::select) fills.
///
/// Its capacity bounds how many events one `select` returns; the rest wait
/// for the next call (level and oneshot registrations lose nothing by this).
/// The buffer is reused across calls, so the hot path does not allocate.
///
/// # Examples
///
/// Two sockets are ready, but a buffer for one event takes one per `select`;
/// the other is reported by the next call.
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use tarn_selector::{Events, Interest, Mode, Selector, Token};
///
/// let selector = Selector::new()?;
/// let (mut a1, b1) = UnixStream::pair()?;
/// let (mut a2, b2) = UnixStream::pair()?;
/// // Oneshot: each reports once, until `modify` re-arms it.
/// selector.register(b1.as_raw_fd(), Token(1), Interest::READABLE, Mode::Oneshot)?;
/// selector.register(b2.as_raw_fd(), Token(2), Interest::READABLE, Mode::Oneshot)?;
/// a1.write_all(b"x")?;
/// a2.write_all(b"y")?;
///
/// let mut events = Events::with_capacity(1);
/// let mut seen = Vec::new();
/// for _ in 0..2 {
///     assert_eq!(selector.select(&mut events, Some(Duration::from_secs(5)))?, 1);
///     seen.extend(events.iter().map(|event| event.token()));
/// }
/// seen.sort();
/// assert_eq!(seen, [Token(1), Token(2)]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Events {
    pub(crate) list: Vec<Event>,
    pub(crate) capacity: usize,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) raw: Vec<libc::epoll_event>,
}

impl Events {
    /// A buffer for at most `capacity` events per `select` (at least one).
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events {
            list: Vec::with_capacity(capacity),
            capacity,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            raw: Vec::new(),
        }
    }

    /// The most events one `select` can return into this buffer.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many events the last `select` returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last `select` returned no event.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The events of the last `select`.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Forgets the events held.
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Whether there is room for another event.
    pub(crate) fn has_room(&self) -> bool {
        self.list.len() < self.capacity
    }

    pub(crate) fn push(&mut self, event: Event) {
        debug_assert!(self.has_room());
        self.list.push(event);
    }
}

impl Default for Events {
    /// A buffer for 1024 events.
    fn default() -> Events {
        Events::with_capacity(1024)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.list.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

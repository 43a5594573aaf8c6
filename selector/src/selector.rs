//! The portable [`Selector`]: backend choice, argument checks, and the
//! timeout rules (retry `EINTR` with the time left, never return early).

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sys;
use crate::sys::wakefd::Signal;
use crate::{Events, Interest, Mode, Token};

/// The environment variable that overrides the backend [`Selector::new`] picks.
pub const BACKEND_ENV: &str = "TARN_SELECTOR";

/// A readiness mechanism the kernel offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `epoll(7)`: O(ready) waits, kernel-side interest set, edge mode. Linux only.
    Epoll,
    /// `poll(2)`: O(registered) per wait, no fd limit. Level and oneshot.
    Poll,
    /// `select(2)`: O(highest fd) per wait, fds below `FD_SETSIZE` (1024) only.
    /// Level and oneshot.
    Select,
}

impl Backend {
    /// Every backend this build supports, best first.
    pub const ALL: &'static [Backend] = &[
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Backend::Epoll,
        Backend::Poll,
        Backend::Select,
    ];

    /// The backend's name as `TARN_SELECTOR` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Epoll => "epoll",
            Backend::Poll => "poll",
            Backend::Select => "select",
        }
    }

    /// The best backend on this platform.
    pub fn best() -> Backend {
        Backend::ALL[0]
    }

    /// The backend named by `TARN_SELECTOR`, `None` if it is unset or empty,
    /// or an `InvalidInput` error listing the valid names.
    pub fn from_env() -> io::Result<Option<Backend>> {
        match std::env::var(BACKEND_ENV) {
            Ok(value) if value.is_empty() => Ok(None),
            Ok(value) => value
                .parse()
                .map(Some)
                .map_err(|e: io::Error| io::Error::new(e.kind(), format!("{BACKEND_ENV}: {e}"))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(value)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{BACKEND_ENV}={value:?} is not valid UTF-8"),
            )),
        }
    }

    fn supports(self, mode: Mode) -> bool {
        mode != Mode::Edge || self == Backend::Epoll
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = io::Error;

    /// Parses `epoll`, `poll` or `select` (ASCII case-insensitive).
    fn from_str(name: &str) -> io::Result<Backend> {
        Backend::ALL
            .iter()
            .copied()
            .find(|b| b.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                let valid: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "unknown selector backend {name:?}; valid backends: {}",
                        valid.join(", ")
                    ),
                )
            })
    }
}

/// One entry of [`Selector::registrations`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The registered file descriptor.
    pub fd: RawFd,
    /// The token its events carry.
    pub token: Token,
    /// The directions it watches.
    pub interest: Interest,
    /// How it reports.
    pub mode: Mode,
}

enum Inner {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(sys::epoll::Selector),
    Poll(sys::poll::Selector),
    Select(Box<sys::select::Selector>),
}

/// Calls the same method on whichever backend is live.
macro_rules! dispatch {
    ($inner: expr, $s: ident => $call: expr) => {
        match $inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Epoll($s) => $call,
            Inner::Poll($s) => $call,
            Inner::Select($s) => $call,
        }
    };
}

/// Waits for readiness on many file descriptors at once.
///
/// Every method takes `&self` and the selector is `Send + Sync`: one thread
/// may block in [`select`](Selector::select) while others register, modify
/// and deregister, and the change applies to the wait already in progress.
/// Concurrent `select` calls are allowed; on the poll and select backends
/// they take turns.
///
/// The selector never owns the fds registered with it: deregister an fd
/// before closing it. (Deregistering one already closed still succeeds and
/// cleans up, but on epoll a closed fd whose file is still open through a
/// `dup` keeps reporting until then.)
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use tarn_selector::{Events, Interest, Mode, Selector, Token};
///
/// let selector = Selector::new()?;
/// let (mut a, b) = UnixStream::pair()?;
/// selector.register(b.as_raw_fd(), Token(7), Interest::READABLE, Mode::Level)?;
///
/// let mut events = Events::with_capacity(64);
/// // Nothing to read yet: a zero timeout returns at once, empty-handed.
/// assert_eq!(selector.select(&mut events, Some(Duration::ZERO))?, 0);
///
/// a.write_all(b"ping")?;
/// selector.select(&mut events, Some(Duration::from_secs(5)))?;
/// let event = events.iter().next().expect("b is readable");
/// assert_eq!(event.token(), Token(7));
/// assert!(event.readable());
///
/// // Deregister before closing.
/// selector.deregister(b.as_raw_fd())?;
/// drop(b);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Selector {
    inner: Inner,
}

impl Selector {
    /// A selector on the backend named by `TARN_SELECTOR`, or the best one
    /// for this platform (epoll on Linux) when the variable is unset.
    ///
    /// An unknown name is an `InvalidInput` error that lists the valid ones.
    pub fn new() -> io::Result<Selector> {
        Selector::with_backend(Backend::from_env()?.unwrap_or_else(Backend::best))
    }

    /// A selector on the given backend, regardless of the environment.
    pub fn with_backend(backend: Backend) -> io::Result<Selector> {
        let inner = match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => Inner::Epoll(sys::epoll::Selector::new()?),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Backend::Epoll => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the epoll backend exists only on Linux",
                ))
            }
            Backend::Poll => Inner::Poll(sys::poll::Selector::new()?),
            Backend::Select => Inner::Select(Box::new(sys::select::Selector::new()?)),
        };
        Ok(Selector { inner })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Epoll(_) => Backend::Epoll,
            Inner::Poll(_) => Backend::Poll,
            Inner::Select(_) => Backend::Select,
        }
    }

    /// The selector's own fd, on backends that have one (epoll): it is
    /// readable whenever a `select` would report something, so another
    /// selector can watch this one (nested epoll). `None` on poll and
    /// select, which keep their sets in user space.
    ///
    /// ```
    /// use std::time::Duration;
    /// use std::os::fd::AsRawFd;
    /// use tarn_selector::{Backend, Events, Interest, Mode, Selector, Token};
    ///
    /// let inner = Selector::with_backend(Backend::Epoll)?;
    /// let outer = Selector::with_backend(Backend::Epoll)?;
    /// let fd = inner.pollable_fd().expect("epoll has one").as_raw_fd();
    /// outer.register(fd, Token(1), Interest::READABLE, Mode::Level)?;
    /// inner.notifier().notify(); // something for `inner` to report
    /// let mut events = Events::with_capacity(8);
    /// outer.select(&mut events, Some(Duration::from_secs(5)))?;
    /// assert_eq!(events.iter().next().map(|e| e.token()), Some(Token(1)));
    /// outer.deregister(fd)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Epoll(s) => Some(s.fd()),
            Inner::Poll(_) | Inner::Select(_) => None,
        }
    }

    /// Starts watching `fd` for `interest`, reporting events with `token`.
    ///
    /// # Errors
    ///
    /// - `AlreadyExists` if `fd` is registered already (use [`modify`](Self::modify));
    /// - `InvalidInput` for an empty interest, the reserved token
    ///   `Token(usize::MAX)`, or on the select backend an fd at or above
    ///   `FD_SETSIZE`;
    /// - `Unsupported` for [`Mode::Edge`] on a backend other than epoll;
    /// - the OS error (`EBADF`) if `fd` is not open.
    ///
    /// Files epoll refuses (regular files, with `EPERM`) are accepted and
    /// reported ready in every direction asked for on every `select`.
    pub fn register(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.check(token, interest, mode)?;
        dispatch!(&self.inner, s => s.register(fd, token, interest, mode))
    }

    /// Replaces the token, interest and mode of a registered `fd`, and
    /// re-arms it if it was a oneshot registration that has fired.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered, the OS error if it was closed,
    /// and the argument errors of [`register`](Self::register).
    pub fn modify(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.check(token, interest, mode)?;
        dispatch!(&self.inner, s => s.modify(fd, token, interest, mode))
    }

    /// Stops watching `fd`.
    ///
    /// Succeeds (and forgets the registration) even if `fd` was closed since
    /// it was registered. Events already collected by a concurrent `select`
    /// may still name its token.
    ///
    /// On the poll and select backends, if another thread is blocked in
    /// [`select`](Self::select), this wakes it and returns once it has left
    /// the kernel: until then the kernel keeps the fd's file open, and a
    /// close made right after would not reach the peer. epoll holds no such
    /// reference and never waits.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered.
    pub fn deregister(&self, fd: RawFd) -> io::Result<()> {
        dispatch!(&self.inner, s => s.deregister(fd))
    }

    /// Waits until a registered fd is ready, a [`Notifier`] fires, or
    /// `timeout` passes, and fills `events` (clearing what it held).
    ///
    /// `None` waits without limit; `Some(Duration::ZERO)` only looks. A
    /// timeout is never cut short: a wait interrupted by a signal (`EINTR`)
    /// is resumed with the time left, and a wake that brings nothing (a
    /// backend rebuilding its fd set) goes back to waiting. Returns the
    /// number of events, which is zero after a timeout or a notification.
    pub fn select(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        #[cfg(loom)]
        if timeout != Some(Duration::ZERO) {
            // Under loom, a model's threads take turns on one OS thread: a
            // wait in the kernel would stop them all. It looks without
            // blocking; a look that brought neither events nor a
            // notification waits for a notification, which is all that
            // ends a wait in a model (timeouts are not modelled), and looks
            // again. (A look that consumed a notification returns, as a
            // real wait it ended would: waiting then for another would
            // make a deadlock the real code cannot have.)
            loop {
                match dispatch!(&self.inner, s => s.wait(events, Some(Duration::ZERO))) {
                    Ok(true) => return Ok(events.len()),
                    Ok(false) => self.signal().wait_readable(),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // A timeout too large to represent as an Instant waits forever.
        let mut remaining = timeout.filter(|_| deadline.is_some());
        loop {
            match dispatch!(&self.inner, s => s.wait(events, remaining)) {
                Ok(true) => return Ok(events.len()),
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    events.clear();
                    return Ok(0);
                }
                remaining = Some(deadline - now);
            }
        }
    }

    /// A handle that wakes this selector's `select` from any thread.
    pub fn notifier(&self) -> Notifier {
        Notifier {
            signal: Arc::clone(self.signal()),
        }
    }

    /// Every registration, ordered by fd: what this selector is watching.
    pub fn registrations(&self) -> Vec<Registration> {
        dispatch!(&self.inner, s => s.registrations())
    }

    pub(crate) fn signal(&self) -> &Arc<Signal> {
        dispatch!(&self.inner, s => s.signal())
    }

    fn check(&self, token: Token, interest: Interest, mode: Mode) -> io::Result<()> {
        if interest.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty interest: ask for at least one of READABLE, WRITABLE, PRIORITY",
            ));
        }
        if token == Token::WAKE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Token(usize::MAX) is reserved for the selector's own wakeup",
            ));
        }
        let backend = self.backend();
        if !backend.supports(mode) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("edge-triggered mode needs the epoll backend; {backend} offers Level and Oneshot"),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("backend", &self.backend())
            .field("registrations", &self.registrations().len())
            .finish()
    }
}

/// Wakes a [`Selector`] blocked in `select`, from any thread.
///
/// Cheap to clone. Notifications coalesce: any number of `notify` calls made
/// before the selector wakes cost one `write` and cause one wakeup, in which
/// `select` returns with no events. A notification made while nobody is
/// waiting makes the next `select` return at once.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use tarn_selector::{Events, Selector};
///
/// let selector = Selector::new()?;
/// let notifier = selector.notifier();
/// let waker = std::thread::spawn(move || notifier.notify());
///
/// // Nothing is registered, yet the wait ends long before its minute: the
/// // notification wakes it (or, made first, makes it return at once).
/// let mut events = Events::with_capacity(8);
/// let start = Instant::now();
/// assert_eq!(selector.select(&mut events, Some(Duration::from_secs(60)))?, 0);
/// assert!(start.elapsed() < Duration::from_secs(60));
/// waker.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Notifier {
    signal: Arc<Signal>,
}

impl Notifier {
    /// Wakes the selector (or its next `select`).
    pub fn notify(&self) {
        self.signal.notify();
    }
}

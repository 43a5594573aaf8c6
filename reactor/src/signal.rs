//! Unix signals as streams: [`Signals`] and [`ctrl_c`].
//!
//! A [`Signals`] listens for a set of signals and yields each one that
//! arrives; every listener sees every delivery that happens while it
//! lives, and several deliveries of one signal since the listener last
//! looked come out as one item (the kernel coalesces pending signals the
//! same way). It works under any executor: tarn's, [`drive`](crate::drive),
//! or tokio and `futures::executor` with the reactor's fallback thread.
//!
//! ```
//! use tarn_reactor::signal::{Signal, Signals};
//!
//! tarn_reactor::drive(async {
//!     let mut signals = Signals::new([Signal::USR1, Signal::HUP])?;
//!     // SAFETY: raise only sends a signal to this thread, whose handler
//!     // tarn installed above.
//!     unsafe { libc::raise(libc::SIGUSR1) };
//!     assert_eq!(signals.recv().await, Signal::USR1);
//!     std::io::Result::Ok(())
//! })?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # How it works
//!
//! The first listener of a signal installs tarn's handler for it with
//! `sigaction` and keeps the action it replaces; when the last listener of
//! that signal is dropped, that action is put back. So a program that stops
//! listening for `SIGINT` or `SIGTERM` after a graceful shutdown gets the
//! default action back, and a second Ctrl-C kills it, as it would a program
//! that never listened. Meanwhile the replaced action does not run: tarn
//! does not chain to a handler installed before it, and a signal that was
//! ignored (`SIG_IGN`, as `nohup` leaves `SIGHUP`) is caught.
//!
//! The handler counts the delivery in a process-wide counter per signal and
//! writes one byte to a pipe, nothing else (both are async-signal-safe).
//! The first listener opens that pipe, which lives until the process exits:
//! closing it would let a handler still running on another thread write
//! into whatever file later got the same fd number. The read end is an
//! ordinary source of this reactor, shared by all listeners, so whoever
//! drives the reactor wakes them; it shows in [`Reactor::sources`] as one
//! fd for good.
//!
//! When the last listener of a signal goes, its previous action comes back
//! only if tarn's handler is still the one installed: a handler another
//! library installed after tarn's stays.
//!
//! After `fork`, the child shares the pipe (and the parent's reactor)
//! with its parent; listen for signals in one of the two only.
//!
//! Why not `signalfd` on Linux: it only receives a signal that is blocked
//! in every thread of the process, including threads tarn did not start
//! (a C library's, a runtime's, the test harness's), and a library cannot
//! block a signal in threads it does not own. A thread where the signal is
//! unblocked takes the default action instead, which for `SIGTERM` ends the
//! process.
//!
//! Signals that cannot or must not be caught are refused: `SIGKILL` and
//! `SIGSTOP` (the kernel never lets them be caught), the fault signals
//! `SIGSEGV`, `SIGBUS`, `SIGILL` and `SIGFPE` (a handler that returns, as
//! tarn's does, sends the thread back to the faulting instruction), and the
//! signals the C library keeps for its threads, between the 31 standard
//! signals and `SIGRTMIN`.
//!
//! [`Reactor::sources`]: crate::Reactor::sources

use std::convert::Infallible;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use libc::c_int;
use slab::Slab;
use tarn_selector::syscall;

use crate::async_fd::{Async, WaitSlot};
use crate::reactor::lock;

/// A Unix signal, by number.
///
/// The constants name the signals a program usually listens for; any other
/// is [`from_raw`](Self::from_raw). `Debug` and `Display` print the name
/// (`SIGTERM`), or `SIGRTMIN+n` for a real-time signal.
///
/// ```
/// use tarn_reactor::signal::Signal;
///
/// assert_eq!(Signal::TERM.to_string(), "SIGTERM");
/// assert_eq!(format!("{:?}", Signal::from_raw(libc::SIGUSR2)), "SIGUSR2");
/// assert_eq!(Signal::INT.as_raw(), libc::SIGINT);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(c_int);

impl Signal {
    /// `SIGHUP`: the controlling terminal went away; daemons take it as
    /// "reload the configuration".
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// `SIGINT`: Ctrl-C at the terminal.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// `SIGQUIT`: Ctrl-\ at the terminal.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// `SIGUSR1`: no meaning but the one a program gives it.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGUSR2`: no meaning but the one a program gives it.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// `SIGPIPE`: a write to a pipe or socket whose reader is gone.
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// `SIGALRM`: a timer set with `alarm` or `setitimer` expired.
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    /// `SIGTERM`: a polite request to stop (what `kill` and service
    /// managers send first).
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGCHLD`: a child process stopped or ended.
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    /// `SIGWINCH`: the terminal's window changed size.
    pub const WINCH: Signal = Signal(libc::SIGWINCH);

    /// The signal numbered `raw` (a `libc::SIG*` constant). Any number is
    /// accepted here; [`Signals::new`] refuses the ones that cannot be
    /// listened for.
    pub const fn from_raw(raw: i32) -> Signal {
        Signal(raw)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// Its slot in [`DELIVERED`], or why it cannot be listened for.
    fn slot(self) -> io::Result<usize> {
        let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        let raw = self.0;
        match raw {
            libc::SIGKILL | libc::SIGSTOP => refuse(format!("{self} cannot be caught")),
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE => refuse(format!(
                "{self} reports a fault and must not be caught: a handler that \
                 returns sends the thread back to the faulting instruction"
            )),
            _ if raw <= 0 || raw > max_signal() => refuse(format!(
                "signal {raw} is out of range: signals are numbered 1 to {}",
                max_signal()
            )),
            _ if raw > LAST_STANDARD && raw < libc::SIGRTMIN() => refuse(format!(
                "signal {raw} is reserved by the C library for its threads"
            )),
            _ => Ok(raw as usize),
        }
    }
}

/// The last of the standard (not real-time) signals on Linux, `SIGSYS`.
const LAST_STANDARD: c_int = 31;

/// The highest signal number a listener can take.
fn max_signal() -> c_int {
    libc::SIGRTMAX().min(SLOTS as c_int - 1)
}

/// The names `Debug` and `Display` print.
const NAMES: [(c_int, &str); 30] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGPWR, "SIGPWR"),
    (libc::SIGSYS, "SIGSYS"),
];

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0;
        if let Some((_, name)) = NAMES.iter().find(|(number, _)| *number == raw) {
            f.write_str(name)
        } else if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&raw) {
            write!(f, "SIGRTMIN+{}", raw - libc::SIGRTMIN())
        } else {
            write!(f, "signal {raw}")
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Signal numbers 1 to 64 (Linux's `SIGRTMAX`); slot 0 is unused.
const SLOTS: usize = 65;

/// Deliveries per signal since the process started, counted by the handler.
/// (`AtomicU64` is lock-free wherever std has it, so the handler may use it.)
static DELIVERED: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// The write end of the pipe, for the handler; -1 until the pipe is open.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// tarn's handler, for every signal it listens for. Async-signal-safe: it
/// touches atomics, `errno` and `write(2)`, and cannot panic.
extern "C" fn on_signal(signal: c_int) {
    let errno = errno_location();
    // SAFETY: `errno_location` points to this thread's errno, which lives
    // as long as the thread.
    let saved = unsafe { *errno };
    if let Some(count) = usize::try_from(signal).ok().and_then(|i| DELIVERED.get(i)) {
        // Before the byte: a listener that sees the byte gone (drained by
        // another) must find the count already moved (see `poll_recv`).
        count.fetch_add(1, SeqCst);
    }
    let fd = WRITE_FD.load(SeqCst);
    if fd >= 0 {
        let byte = 0u8;
        // SAFETY: write(2) is async-signal-safe; the pointer is to one live
        // byte. EAGAIN (the pipe is full) is fine: the bytes already in it
        // wake the listeners.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above; the interrupted code finds errno as it left it.
    unsafe { *errno = saved };
}

#[cfg(target_os = "android")]
fn errno_location() -> *mut c_int {
    // SAFETY: no arguments; returns the calling thread's errno.
    unsafe { libc::__errno() }
}

#[cfg(not(target_os = "android"))]
fn errno_location() -> *mut c_int {
    // SAFETY: no arguments; returns the calling thread's errno.
    unsafe { libc::__errno_location() }
}

/// The self-pipe and the listeners waiting on it; opened by the first
/// listener, never closed (see the module docs).
#[derive(Debug)]
struct Pipe {
    reader: Async<File>,
    /// Owned here so that it stays open; the handler writes to it through
    /// `WRITE_FD`.
    writer: OwnedFd,
    /// Each live listener's waker, once it has waited: a listener that
    /// drains bytes from the pipe wakes the others (see `poll_recv`).
    waiters: Mutex<Slab<Option<Waker>>>,
}

static PIPE: OnceLock<Pipe> = OnceLock::new();

impl Pipe {
    fn open() -> io::Result<Pipe> {
        let mut fds: [c_int; 2] = [-1, -1];
        // SAFETY: pipe2 writes two fds into the array of two it is given.
        unsafe { syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK)) }?;
        // SAFETY: pipe2 just opened both fds, and nothing else owns them.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Pipe {
            reader: Async::new_nonblocking(File::from(reader))?,
            writer,
            waiters: Mutex::new(Slab::new()),
        })
    }

    /// Keeps `waker` as listener `key`'s.
    fn store_waker(&self, key: usize, waker: &Waker) {
        let mut waiters = lock(&self.waiters);
        if let Some(stored) = waiters.get_mut(key) {
            match stored {
                Some(old) if old.will_wake(waker) => {}
                _ => *stored = Some(waker.clone()),
            }
        }
    }

    /// Wakes every listener but `key` that has stored a waker.
    fn wake_others(&self, key: usize) {
        let woken: Vec<Waker> = lock(&self.waiters)
            .iter_mut()
            .filter(|(other, _)| *other != key)
            .filter_map(|(_, waker)| waker.take())
            .collect();
        // One waker that panics must not keep the others asleep.
        let mut woken = woken.into_iter();
        while panic::catch_unwind(AssertUnwindSafe(|| woken.by_ref().for_each(Waker::wake)))
            .is_err()
        {}
    }
}

/// Which signals have listeners, and what they replaced. Only listeners
/// touch it, never the handler.
struct Registry {
    /// Live listeners per signal.
    listeners: [usize; SLOTS],
    /// The action tarn's handler replaced, while it is installed.
    previous: [Option<libc::sigaction>; SLOTS],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    listeners: [0; SLOTS],
    previous: [const { None }; SLOTS],
});

fn registry() -> MutexGuard<'static, Registry> {
    lock(&REGISTRY)
}

impl Registry {
    /// The pipe, opened on first use. Under the registry's lock (hence
    /// `&mut self`): opened once, and before any handler is installed.
    fn pipe(&mut self) -> io::Result<&'static Pipe> {
        if let Some(pipe) = PIPE.get() {
            return Ok(pipe);
        }
        let opened = Pipe::open()?;
        // Only this lock's holder sets PIPE, so `opened` is the pipe kept.
        let pipe = PIPE.get_or_init(|| opened);
        WRITE_FD.store(pipe.writer.as_raw_fd(), SeqCst);
        Ok(pipe)
    }

    /// One more listener of `signal` (in `slot`): the first installs the
    /// handler.
    fn attach(&mut self, signal: Signal, slot: usize) -> io::Result<()> {
        if self.listeners[slot] == 0 {
            let previous = install(signal.0).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot install tarn's handler for {signal}: {e}"),
                )
            })?;
            self.previous[slot] = Some(previous);
        }
        self.listeners[slot] += 1;
        Ok(())
    }

    /// One listener of `signal` fewer: the last puts the previous action
    /// back, unless someone replaced tarn's handler meanwhile (another
    /// library's handler, installed after tarn's, stays).
    fn detach(&mut self, signal: Signal, slot: usize) {
        self.listeners[slot] -= 1;
        if self.listeners[slot] == 0 {
            if let Some(previous) = self.previous[slot].take() {
                if current_handler(signal.0) == Some(handler_address()) {
                    // Cannot fail for a signal whose action could be set.
                    let _ = set_action(signal.0, &previous);
                }
            }
        }
    }
}

/// Installs tarn's handler for `signal`; returns the action it replaces.
///
/// `SA_RESTART`, so that a blocking call elsewhere in the program is not
/// cut short with `EINTR` by a signal it knows nothing of. The mask is
/// empty: the handler is reentrant (atomics, a `write`, errno saved per
/// call), so blocking other signals while it runs would only delay their
/// handlers; the kernel still blocks `signal` itself meanwhile.
fn install(signal: c_int) -> io::Result<libc::sigaction> {
    // SAFETY: sigaction is plain data; all zeros is a valid value (no
    // flags, `SIG_DFL`, no restorer), overwritten below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler_address();
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: sigemptyset initialises the set it is given, which lives
    // for the call.
    unsafe { syscall!(sigemptyset(&mut action.sa_mask)) }?;
    // SAFETY: as above: zeros are a valid sigaction, filled in by the call.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live sigaction structs; the handler is
    // an `extern "C" fn(c_int)` that lives as long as the program, as
    // `sa_handler` without `SA_SIGINFO` requires.
    unsafe { syscall!(sigaction(signal, &action, &mut previous)) }?;
    Ok(previous)
}

/// tarn's handler as `sigaction` stores it.
fn handler_address() -> libc::sighandler_t {
    on_signal as extern "C" fn(c_int) as libc::sighandler_t
}

/// The handler `signal` has now (`None` if it cannot be read).
fn current_handler(signal: c_int) -> Option<libc::sighandler_t> {
    // SAFETY: sigaction is plain data; zeros are a valid value, which the
    // call overwrites.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `current`,
    // a live struct.
    unsafe { syscall!(sigaction(signal, std::ptr::null(), &mut current)) }.ok()?;
    Some(current.sa_sigaction)
}

/// Sets `signal`'s action to `action` (one `install` returned).
fn set_action(signal: c_int, action: &libc::sigaction) -> io::Result<()> {
    // SAFETY: `action` is a live sigaction the kernel filled in earlier;
    // a null old-action pointer is allowed.
    unsafe { syscall!(sigaction(signal, action, std::ptr::null_mut())) }?;
    Ok(())
}

/// A listener for a set of signals: a stream that yields each signal as it
/// arrives, and never ends.
///
/// Every listener sees every delivery made while it lives, whoever else
/// listens; deliveries made before it was created are not reported.
/// Several deliveries of one signal between two looks are reported once:
/// a listener counts "it happened since I last looked", not how often
/// (the kernel merges pending signals the same way). The last delivery is
/// never lost.
///
/// Creating the first listener of a signal installs tarn's handler for it;
/// dropping the last puts back the action it replaced (see the
/// module docs). A `Signals` is [`Send`], so a task that owns one
/// can move between the threads of a multi-threaded executor; receiving
/// takes `&mut self` (one task receives from a listener; a task that wants
/// its own view of the signals creates its own).
///
/// Use it as a [`Stream`], or through [`recv`](Self::recv) without any
/// extension trait:
///
/// ```
/// use std::time::Duration;
/// use tarn_reactor::signal::{Signal, Signals};
///
/// tarn_reactor::drive(async {
///     let mut signals = Signals::new([Signal::USR2])?;
///     for _ in 0..3 {
///         // SAFETY: raise sends a signal to this thread; tarn handles it.
///         unsafe { libc::raise(libc::SIGUSR2) };
///     }
///     // Three deliveries since the last look: one item.
///     assert_eq!(signals.recv().await, Signal::USR2);
///     let more = tarn_reactor::timeout(Duration::from_millis(10), signals.recv()).await;
///     assert!(more.is_err());
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct Signals {
    pipe: &'static Pipe,
    watched: Box<[Watched]>,
    /// Where the next look starts, so that a signal that keeps arriving
    /// cannot hide the others.
    next: usize,
    /// This listener's place among the pipe's waiters in the reactor.
    slot: WaitSlot,
    /// Its key in `Pipe::waiters`.
    key: usize,
}

/// One signal a listener watches.
#[derive(Debug)]
struct Watched {
    signal: Signal,
    /// The signal's slot in `DELIVERED`.
    slot: usize,
    /// `DELIVERED[slot]` when this listener last reported it (or was
    /// created).
    seen: u64,
}

impl Signals {
    /// Starts listening for `signals` (duplicates are ignored).
    ///
    /// # Errors
    ///
    /// `InvalidInput`, naming the signal, for one that cannot or must not be
    /// caught (`SIGKILL`, `SIGSTOP`, `SIGSEGV`, `SIGBUS`, `SIGILL`,
    /// `SIGFPE`, a number the C library reserves, or one out of range);
    /// then nothing is installed. Otherwise the error of opening the pipe,
    /// registering it with the reactor, or `sigaction`.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use tarn_reactor::signal::{Signal, Signals};
    ///
    /// let refused = Signals::new([Signal::USR1, Signal::from_raw(libc::SIGKILL)]).unwrap_err();
    /// assert_eq!(refused.kind(), ErrorKind::InvalidInput);
    /// assert!(refused.to_string().contains("SIGKILL"));
    /// ```
    pub fn new(signals: impl IntoIterator<Item = Signal>) -> io::Result<Signals> {
        let mut wanted: Vec<(Signal, usize)> = signals
            .into_iter()
            .map(|signal| Ok((signal, signal.slot()?)))
            .collect::<io::Result<_>>()?;
        wanted.sort_unstable();
        wanted.dedup();
        let mut registry = registry();
        let pipe = registry.pipe()?;
        let mut watched: Vec<Watched> = Vec::with_capacity(wanted.len());
        for (signal, slot) in wanted {
            // Read before the handler goes in: a delivery between the two
            // is then reported, not swallowed (the handler would already
            // have replaced the default action).
            let seen = DELIVERED[slot].load(SeqCst);
            if let Err(e) = registry.attach(signal, slot) {
                for done in &watched {
                    registry.detach(done.signal, done.slot);
                }
                return Err(e);
            }
            watched.push(Watched { signal, slot, seen });
        }
        drop(registry);
        let key = lock(&pipe.waiters).insert(None);
        Ok(Signals {
            pipe,
            watched: watched.into_boxed_slice(),
            next: 0,
            slot: WaitSlot::default(),
            key,
        })
    }

    /// Waits for the next signal.
    ///
    /// Cancel-safe: a signal is taken only when this future completes, so
    /// dropping it (in a `select!`, say) loses nothing.
    pub async fn recv(&mut self) -> Signal {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// `Ready` with a signal delivered since this listener last reported it;
    /// otherwise arranges for `cx`'s task to be woken by the next delivery.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Signal> {
        // Why no delivery is missed. A delivery D of signal s does two
        // things, in this order: it adds one to DELIVERED[s], then writes a
        // byte B to the pipe. A poll does three: (1) it stores its waker
        // where the other listeners find it; (2) it reads the pipe until it
        // is empty, and registers with the reactor after the read that said
        // `WouldBlock` (the tick protocol of `poll_read_in`: a byte that
        // arrives after that read either makes it read again or wakes this
        // task); (3) it loads DELIVERED[s].
        //
        // If (3) sees D's increment, s is reported now. If not, the
        // increment comes after (3), so B is written after (2) found the
        // pipe empty, and somebody has yet to read B:
        // - nobody reads B before the reactor looks: the pipe is readable
        //   and the reactor wakes this task, registered in (2);
        // - another listener reads B first, perhaps before the reactor
        //   looks (which then sees an empty pipe and reports nothing): it
        //   read bytes, so it wakes every stored waker, and ours is among
        //   them, since (1) came before (3), before D, before B was read;
        // - this listener reads B in a later poll, whose (3) sees D.
        // In every case the task polls again, and that poll's (3) sees D.
        // Every listener has its own `seen`, so each reports D once.
        self.pipe.store_waker(self.key, cx.waker());
        if self.drain(cx) {
            self.pipe.wake_others(self.key);
        }
        let n = self.watched.len();
        for i in 0..n {
            let at = (self.next + i) % n;
            let watched = &mut self.watched[at];
            let count = DELIVERED[watched.slot].load(SeqCst);
            if count != watched.seen {
                // Every delivery up to `count` is reported by this one.
                watched.seen = count;
                self.next = (at + 1) % n;
                return Poll::Ready(watched.signal);
            }
        }
        Poll::Pending
    }

    /// Reads the pipe until it is empty and waits for it with the reactor;
    /// says whether there were bytes to read.
    fn drain(&mut self, cx: &mut Context<'_>) -> bool {
        let reader = &self.pipe.reader;
        let mut drained = false;
        let mut broken = false;
        let mut buf = [0u8; 64];
        let res = reader.poll_read_in(&mut self.slot, cx, || -> io::Result<Infallible> {
            loop {
                match reader.get_ref().read(&mut buf) {
                    Ok(0) => {
                        // The write end is never closed: only other code closing
                        // an fd it does not own could do this.
                        broken = true;
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    Ok(_) => drained = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        broken = e.kind() != io::ErrorKind::WouldBlock;
                        return Err(e);
                    }
                }
            }
        });
        match res {
            Poll::Ready(Ok(never)) => match never {},
            // Waiting with the reactor, or made to yield by the budget
            // (which wakes the task).
            Poll::Pending => {}
            Poll::Ready(Err(e)) if broken => {
                panic!("tarn: the signal pipe cannot be read ({e}); was its fd closed elsewhere?")
            }
            Poll::Ready(Err(_)) => {
                // The reactor could not arm the pipe or start its fallback
                // thread: try again at the next poll (which the next call
                // may get right), rather than sleep with nobody to wake us.
                cx.waker().wake_by_ref();
            }
        }
        drained
    }
}

impl Stream for Signals {
    type Item = Signal;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Signal>> {
        self.get_mut().poll_recv(cx).map(Some)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        lock(&self.pipe.waiters).try_remove(self.key);
        let mut registry = registry();
        for watched in self.watched.iter() {
            registry.detach(watched.signal, watched.slot);
        }
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field(
                "signals",
                &self.watched.iter().map(|w| w.signal).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Waits for one Ctrl-C (`SIGINT`).
///
/// The listener is created when `ctrl_c` is called, not when the future is
/// first polled: from the call on, Ctrl-C no longer ends the program. When
/// the future completes or is dropped, `SIGINT`'s previous action comes back
/// (unless another listener still holds it): a second Ctrl-C during a
/// graceful shutdown then ends the program as usual.
///
/// # Errors
///
/// Those of [`Signals::new`], from the first poll.
///
/// # In a loop
///
/// Call it once, before the loop, and poll the same future each time round
/// (it is `Unpin`: `select(&mut ctrl_c, work)`). A `ctrl_c()` made afresh in
/// every iteration, as tokio's examples do, leaves a gap between one
/// future's drop and the next one's creation in which `SIGINT` has its
/// default action back, and a Ctrl-C landing there ends the program. The
/// same holds for a [`Signals`] dropped and re-created.
///
/// ```no_run
/// tarn_reactor::drive(async {
///     tarn_reactor::signal::ctrl_c().await?;
///     println!("shutting down");
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub fn ctrl_c() -> CtrlC {
    CtrlC {
        listener: Some(Signals::new([Signal::INT])),
    }
}

/// The future of [`ctrl_c`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct CtrlC {
    /// `None` once completed, which has dropped the listener.
    listener: Option<io::Result<Signals>>,
}

impl Future for CtrlC {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let listener = this
            .listener
            .as_mut()
            .expect("CtrlC polled after it completed");
        if let Ok(signals) = listener {
            if signals.poll_recv(cx).is_pending() {
                return Poll::Pending;
            }
        }
        // Done: dropping the listener puts SIGINT's previous action back.
        match this.listener.take() {
            Some(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

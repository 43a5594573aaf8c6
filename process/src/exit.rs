//! How a child's end is seen without a helper thread, and what becomes of
//! children dropped while they still run.
//!
//! A pidfd (`pidfd_open`, Linux 5.3 and later) becomes readable when its
//! process ends; registered with the reactor like a socket, it wakes the
//! task that waits for the child, and `waitpid(WNOHANG)` then reaps it.
//! Where no pidfd can be had (an older kernel, a seccomp filter that
//! refuses the call), the waiter listens for `SIGCHLD` through
//! [`tarn_reactor::signal`] and tries `waitpid(WNOHANG)` after each one:
//! the listener is made before the first try, so an end between the two is
//! never missed.
//!
//! A [`Child`](crate::Child) dropped before it was reaped is adopted: it
//! goes on a process-wide list, each entry waiting on its pidfd (or
//! `SIGCHLD`) with a waker that reaps, so it leaves no zombie once it ends
//! (the reactor that holds its pidfd wakes the reaper; every spawn also
//! reaps what has ended).

use std::io;
use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::task::{Context, Poll, Wake, Waker};

use tarn_reactor::signal::{Signal, Signals};
use tarn_reactor::Async;

/// What tells a waiter that a child has ended.
#[derive(Debug)]
pub(crate) enum Exit {
    /// The child's pidfd, registered with a reactor: readable once the
    /// child has ended.
    Pidfd(Async<OwnedFd>),
    /// No pidfd here: a `SIGCHLD` listener.
    Signal(Signals),
}

impl Exit {
    /// A watch on the end of child `pid`: its pidfd if the kernel gives
    /// one, else a `SIGCHLD` listener.
    pub(crate) fn watch(pid: u32) -> io::Result<Exit> {
        let pidfd_error = match crate::sys::pidfd_open(pid) {
            Ok(fd) => match Async::new(fd) {
                Ok(fd) => return Ok(Exit::Pidfd(fd)),
                Err(e) => e,
            },
            Err(e) => e,
        };
        Signals::new([Signal::CHLD]).map(Exit::Signal).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot watch child {pid} for its end: no pidfd ({pidfd_error}), \
                     and no SIGCHLD listener ({e})"
                ),
            )
        })
    }

    /// Whether this watch is a pidfd (rather than `SIGCHLD`).
    pub(crate) fn is_pidfd(&self) -> bool {
        matches!(self, Exit::Pidfd(_))
    }

    /// `Ready` with the status of `child` once it has ended (and is reaped);
    /// otherwise `cx` is woken when it may have.
    pub(crate) fn poll_reap(
        &mut self,
        child: &mut std::process::Child,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<ExitStatus>> {
        // `WouldBlock` from the try is what the reactor's readiness
        // protocol expects of an operation that found nothing yet.
        let mut try_reap = || match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => Err(e),
        };
        match self {
            Exit::Pidfd(fd) => fd.poll_read_with(cx, try_reap),
            Exit::Signal(signals) => loop {
                match try_reap() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    done => return Poll::Ready(done),
                }
                // A SIGCHLD since the last look: some child ended; look again.
                if signals.poll_recv(cx).is_pending() {
                    return Poll::Pending;
                }
            },
        }
    }
}

/// A child dropped before it was reaped.
#[derive(Debug)]
struct Orphan {
    child: std::process::Child,
    exit: Exit,
}

/// The children dropped while running, until they end.
static ORPHANS: Mutex<Vec<Orphan>> = Mutex::new(Vec::new());

/// Set by every call of [`reap_orphans`]; the one holding the list looks
/// again while it is set, so a wake that found the list busy is not lost.
static REAP_AGAIN: AtomicBool = AtomicBool::new(false);

/// The waker the orphans wait with: it reaps.
struct Reaper;

impl Wake for Reaper {
    fn wake(self: Arc<Self>) {
        reap_orphans();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        reap_orphans();
    }
}

fn reaper() -> &'static Waker {
    static REAPER: OnceLock<Waker> = OnceLock::new();
    REAPER.get_or_init(|| Waker::from(Arc::new(Reaper)))
}

/// Takes `child`, which has not been reaped, onto the orphan list, where
/// it is reaped once it ends.
pub(crate) fn adopt(child: std::process::Child, exit: Exit) {
    ORPHANS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Orphan { child, exit });
    reap_orphans();
}

/// Reaps every orphan that has ended; the others wait with the reaper.
///
/// Never blocks: it may run inside a reactor's wake batch, or inside a
/// registration that wakes at once. If another call holds the list, that
/// one looks again before it lets go.
pub(crate) fn reap_orphans() {
    REAP_AGAIN.store(true, SeqCst);
    while REAP_AGAIN.load(SeqCst) {
        let mut orphans = match ORPHANS.try_lock() {
            Ok(orphans) => orphans,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        REAP_AGAIN.store(false, SeqCst);
        if orphans.is_empty() {
            return;
        }
        let mut cx = Context::from_waker(reaper());
        // An error (the child reaped by someone else: `SIGCHLD` ignored,
        // or a `waitpid(-1)` elsewhere) leaves nothing to wait for either.
        orphans.retain_mut(|orphan| {
            orphan
                .exit
                .poll_reap(&mut orphan.child, &mut cx)
                .is_pending()
        });
    }
}

/// How many dropped children have not ended yet.
pub(crate) fn orphans() -> usize {
    ORPHANS.lock().unwrap_or_else(|e| e.into_inner()).len()
}

//! Turning a hang into a failure: a watchdog thread that aborts the
//! process, and a bounded wait for a condition.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::backend::backend_name;
use crate::mode::native_or_valgrind;

/// How long any one test may run before it counts as hung.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The patience for a test whose failure mode is a hang and whose work
/// takes milliseconds (waiting for a 20 ms timer, say): far more than it
/// needs on any machine, short enough that a hang costs little.
pub const HANG: Duration = Duration::from_secs(5);

/// Aborts the whole process, naming `what`, if the guard is still alive
/// after `patience`: a hung test fails instead of hanging the suite.
///
/// Under [`valgrind`](crate::valgrind) the patience is ten times `patience`:
/// there, a loaded machine can make seconds of work out of milliseconds.
///
/// ```
/// use std::time::Duration;
///
/// let _watchdog = tarn_test_support::watchdog("an example", Duration::from_secs(60));
/// // ... work that must not hang ...
/// ```
#[must_use = "the watchdog stops watching when the guard is dropped"]
pub fn watchdog(what: &str, patience: Duration) -> Watchdog {
    let patience = native_or_valgrind(patience, patience * 10);
    let (done, wait) = mpsc::channel::<()>();
    let what = what.to_string();
    let backend = backend_name();
    let (started, has_started) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = started.send(());
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(patience) {
            eprintln!(
                "watchdog: {what} (TARN_SELECTOR={backend}) still running after {patience:?}: hung; aborting"
            );
            std::process::abort();
        }
    });
    // Returns once the thread runs, its start-up (stack guard, signal
    // stack) done: a test that then lowers `RLIMIT_AS` (no new threads)
    // must not catch the watchdog's own start-up inside it, which aborted
    // the process in CI ("failed to allocate an alternative stack").
    let _ = has_started.recv();
    Watchdog { _done: done }
}

/// The guard [`watchdog`] returns; dropping it stops the watchdog.
#[derive(Debug)]
pub struct Watchdog {
    _done: mpsc::Sender<()>,
}

/// Runs `f` under a [`watchdog`] of [`PATIENCE`] named `what`.
pub fn bounded<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let _watchdog = watchdog(what, PATIENCE);
    f()
}

/// Waits up to `patience` for `cond`, asking every 10 ms; returns its last
/// answer.
pub fn eventually(patience: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

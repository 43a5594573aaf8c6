//! The fallback thread, `tarn-reactor`: it drives the shared reactor (and
//! the thread reactors it watches) when no tarn executor does.
//!
//! It starts the first time a waker is stored where no tarn executor will
//! poll it, and then stays. On epoll it drives the shared reactor alone,
//! whatever tarn's executors do (they drive their own), except while a
//! thread that could not create a reactor of its own (no fds left) drives
//! the shared one instead. On poll and select, where the shared reactor is
//! the only one, it steps aside while a tarn executor drives, so that the
//! executor sleeps in `select` itself and its own events need no hand-off.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::reactor::{lock, Reactor};

/// The fallback thread parks here while a tarn executor drives the shared
/// reactor (poll and select only).
static IDLE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
/// The fallback thread runs (or is starting). Cleared if starting it
/// failed or it ended, so that the next waiter tries again.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Whether the fallback thread runs (or is starting).
pub(crate) fn running() -> bool {
    RUNNING.load(SeqCst)
}

/// Starts the fallback thread unless it runs.
///
/// # Errors
///
/// If the thread cannot start (no threads left); the next call tries again.
pub(crate) fn start() -> io::Result<()> {
    if RUNNING.load(SeqCst) || RUNNING.swap(true, SeqCst) {
        return Ok(());
    }
    match std::thread::Builder::new()
        .name("tarn-reactor".into())
        .spawn(run)
    {
        Ok(_) => Ok(()),
        Err(e) => {
            RUNNING.store(false, SeqCst);
            // Not `e.kind()`: EAGAIN would read as `WouldBlock`, which an
            // async operation must never return.
            Err(io::Error::other(format!(
                "tarn: cannot start the thread that drives the reactor for \
                 other executors (tarn-reactor): {e}"
            )))
        }
    }
}

/// The last tarn executor driving the shared reactor stopped: the
/// fallback thread, if parked, goes back to driving.
pub(crate) fn resume() {
    let (mutex, idle) = &IDLE;
    let _guard = lock(mutex);
    idle.notify_all();
}

fn run() {
    /// Lets the next waiter start a new fallback thread should this one end.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            RUNNING.store(false, SeqCst);
        }
    }
    let _running = Running;
    let reactor = match Reactor::shared() {
        Ok(reactor) => reactor,
        Err(e) => return eprintln!("tarn: the fallback reactor thread cannot start: {e}"),
    };
    crate::sys::batch_scheduling();
    loop {
        {
            let (mutex, idle) = &IDLE;
            let mut guard = lock(mutex);
            while reactor.drivers.load(SeqCst) > 0 {
                guard = idle.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        }
        let mut driver = reactor.lock();
        // A driving block_on that starts notifies the reactor, which ends
        // this wait; we then release the lock and step aside.
        if reactor.drivers.load(SeqCst) == 0 {
            if let Err(e) = driver.react(None) {
                eprintln!("tarn: the fallback reactor thread failed to select: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

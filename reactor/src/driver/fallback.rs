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
use std::time::Duration;

use crate::reactor::Reactor;
use crate::sync::{Condvar, Mutex};

/// Where the fallback thread parks while a tarn executor drives the shared
/// reactor (poll and select only).
#[derive(Debug)]
pub(crate) struct Idle {
    mutex: Mutex<()>,
    condvar: Condvar,
}

impl Idle {
    #[cfg(loom)]
    pub(crate) fn new() -> Idle {
        Idle {
            mutex: Mutex::new(()),
            condvar: Condvar::new(),
        }
    }

    /// The drivers of `reactor` stopped: a fallback thread parked here
    /// goes back to driving it.
    pub(crate) fn resume(&self) {
        let _guard = crate::sync::lock(&self.mutex);
        self.condvar.notify_all();
    }
}

#[cfg(not(loom))]
static IDLE: Idle = Idle {
    mutex: Mutex::new(()),
    condvar: Condvar::new(),
};

// loom's primitives have no `const` constructors; the fallback thread is
// not started under loom (its models run `serve` on a thread of their own).
#[cfg(loom)]
loom::lazy_static! {
    static ref IDLE: Idle = Idle::new();
}

/// The fallback thread runs (or is starting). Cleared if starting it
/// failed or it ended, so that the next waiter tries again.
pub(crate) static RUNNING: AtomicBool = AtomicBool::new(false);

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
    IDLE.resume();
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
    serve(reactor, &IDLE, || false);
}

/// The fallback thread's loop: drives `reactor` while it has no other
/// driver, and parks on `idle` while it has (a driving `block_on` that
/// starts notifies the reactor, which ends a wait in its `select`; one that
/// stops resumes `idle`). Returns once `stop` says so (a model's end; never
/// for the real thread).
pub(crate) fn serve(reactor: &Reactor, idle: &Idle, stop: impl Fn() -> bool) {
    loop {
        {
            let mut guard = crate::sync::lock(&idle.mutex);
            while reactor.drivers.load(SeqCst) > 0 && !stop() {
                guard = idle.condvar.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        }
        if stop() {
            return;
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

/// loom model of the fallback thread's hand-off: `bash .ci/loom.sh`. The
/// fallback thread is `serve` on a model thread, over a reactor that
/// behaves as the shared one; the main thread is an executor that drives
/// it for a while (as tarn's executors do on poll and select) and then a
/// foreign executor's task that only the fallback thread can serve.
#[cfg(all(test, loom))]
mod model {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;
    use std::task::Context;

    use super::{serve, Idle, RUNNING};
    use crate::driver::{start_driving, stop_driving, Parker};
    use crate::reactor::Reactor;
    use crate::source::{Dir, Source};

    /// The model's fallback thread: `serve` over the shared reactor on a
    /// model thread, counted as running (so that waiters start no other).
    struct Fallback {
        shared: Arc<Reactor>,
        idle: Arc<Idle>,
        stop: Arc<loom::sync::atomic::AtomicBool>,
        thread: loom::thread::JoinHandle<()>,
    }

    impl Fallback {
        fn start(shared: &Arc<Reactor>) -> Fallback {
            RUNNING.store(true, SeqCst);
            let idle = Arc::new(Idle::new());
            let stop = Arc::new(loom::sync::atomic::AtomicBool::new(false));
            let thread = {
                let (shared, idle, stop) =
                    (Arc::clone(shared), Arc::clone(&idle), Arc::clone(&stop));
                loom::thread::spawn(move || serve(&shared, &idle, || stop.load(SeqCst)))
            };
            Fallback {
                shared: Arc::clone(shared),
                idle,
                stop,
                thread,
            }
        }

        /// Ends its loop wherever it waits, and joins it.
        fn stop(self) {
            self.stop.store(true, SeqCst);
            self.idle.resume();
            self.shared.notify();
            self.thread.join().unwrap();
            RUNNING.store(false, SeqCst);
        }
    }

    /// A socket pair whose read end is registered with `reactor` (and
    /// stays there), and a thread that writes a byte to the other end and
    /// then notifies the reactor (standing in for the kernel, which ends a
    /// blocked `select` when data comes).
    struct Pipe {
        reader: UnixStream,
        source: Arc<Source>,
        writer: loom::thread::JoinHandle<UnixStream>,
    }

    impl Pipe {
        fn new(reactor: &Arc<Reactor>) -> Pipe {
            let (reader, writer) = UnixStream::pair().unwrap();
            reader.set_nonblocking(true).unwrap();
            let source = reactor.insert_io(reader.as_raw_fd()).unwrap();
            source.stay_home();
            let reactor = Arc::clone(reactor);
            let writer = loom::thread::spawn(move || {
                (&writer).write_all(b"x").unwrap();
                reactor.notify();
                writer
            });
            Pipe {
                reader,
                source,
                writer,
            }
        }

        fn end(self) {
            drop(self.writer.join().unwrap());
            let (home, key) = self.source.home();
            home.release(self.reader.as_raw_fd(), key).unwrap();
        }
    }

    /// The fallback thread drives the shared reactor until an executor
    /// starts driving it, steps aside (the executor's own I/O then reaches
    /// it, through its own `select` or the fallback's last one), and drives
    /// again once the executor stops, for a task no executor polls. Any
    /// lost hand-off leaves a waiter blocked: loom reports a deadlock.
    #[test]
    fn the_fallback_thread_steps_aside_for_a_driver_and_back_when_it_stops() {
        loom::model(|| {
            let shared = Arc::clone(Reactor::shared().unwrap());
            let fallback = Fallback::start(&shared);

            // An executor drives the shared reactor and waits for its I/O.
            start_driving(&shared);
            let mine = Pipe::new(&shared);
            let parker = Parker::pinned_to(&shared);
            let waker = parker.waker();
            let mut cx = Context::from_waker(&waker);
            while mine
                .source
                .poll_ready(Dir::Read, None, &mut cx)
                .is_pending()
            {
                parker.park();
            }
            stop_driving(&shared, || fallback.idle.resume());
            mine.end();

            // A foreign task's I/O, which only the fallback thread serves.
            let theirs = Pipe::new(&shared);
            loom::future::block_on(std::future::poll_fn(|cx| {
                theirs.source.poll_ready(Dir::Read, None, cx)
            }))
            .unwrap();
            theirs.end();

            fallback.stop();
        });
    }

    /// A socket made on one executor thread (A) is first awaited on
    /// another's (B): the source moves to B's reactor. A foreign task (C)
    /// awaits it too, maybe while it moves. Then both executors stop
    /// driving and the data comes: whoever C's waker waits on must still be
    /// driven (B's reactor, watched by the shared one, which the fallback
    /// thread drives). A waiter left on a reactor nobody drives or watches
    /// is never woken: loom reports a deadlock.
    #[test]
    fn a_waiter_that_comes_while_its_source_moves_is_served_where_it_went() {
        use crate::driver::DriverGuard;

        loom::model(|| {
            let shared = Arc::clone(Reactor::shared().unwrap());
            let fallback = Fallback::start(&shared);

            // A: an executor thread, where the socket is made.
            let a = DriverGuard::enter();
            let (reader, writer) = UnixStream::pair().unwrap();
            reader.set_nonblocking(true).unwrap();
            let here = Reactor::current().unwrap();
            let source = here.insert_io(reader.as_raw_fd()).unwrap();

            // B: another executor thread; its task awaits the socket (the
            // first wait moves it here), then B's executor stops, and the
            // data comes.
            let b = {
                let (source, shared) = (Arc::clone(&source), Arc::clone(&shared));
                loom::thread::spawn(move || {
                    let guard = DriverGuard::enter();
                    let parker = Parker::new();
                    let waker = parker.waker();
                    DriverGuard::polling(&waker);
                    let mut cx = Context::from_waker(&waker);
                    let _ = source.poll_ready(Dir::Read, None, &mut cx);
                    drop(guard);
                    (&writer).write_all(b"x").unwrap();
                    // The kernel makes the source's reactor readable, and
                    // so the shared reactor that may watch it.
                    source.home().0.notify();
                    shared.notify();
                    writer
                })
            };

            // C: a foreign executor's task awaiting the same socket.
            let c = {
                let source = Arc::clone(&source);
                loom::thread::spawn(move || {
                    loom::future::block_on(std::future::poll_fn(|cx| {
                        source.poll_ready(Dir::Read, None, cx)
                    }))
                    .unwrap();
                })
            };
            drop(a);
            c.join().unwrap();
            drop(b.join().unwrap());

            fallback.stop();
            let (home, key) = source.home();
            home.release(reader.as_raw_fd(), key).unwrap();
            // A's reactor lives in this thread's thread-local until the
            // model's shutdown, when the shared reactor is gone: off its
            // watch list now.
            crate::watch::unwatch(&here);
        });
    }

    /// A thread's reactor loses its last driver while a waiter that saw
    /// no driver asks the shared reactor to watch it (and finds the driver
    /// still counted): when both are done, the reactor is watched, so the
    /// fallback thread serves the waiter. (Looking at the count before
    /// flagging the reactor let the driver stop in between without seeing
    /// the flag: neither watched nor driven, found by a review.)
    #[test]
    fn a_watch_asked_while_the_last_driver_stops_is_not_lost() {
        loom::model(|| {
            // `find_driver` then starts no real thread: the watch is what
            // this model checks.
            RUNNING.store(true, SeqCst);
            let reactor = Reactor::for_this_thread().expect("an epoll reactor");
            start_driving(&reactor);
            let driver = {
                let reactor = Arc::clone(&reactor);
                loom::thread::spawn(move || stop_driving(&reactor, || {}))
            };
            crate::watch::watch(&reactor).unwrap();
            driver.join().unwrap();
            assert!(
                reactor.watch.is_watched(),
                "a reactor nobody drives is not watched: its waiter is never served"
            );
            crate::watch::unwatch(&reactor);
            RUNNING.store(false, SeqCst);
        });
    }
}

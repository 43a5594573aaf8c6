//! tarn's blocking pool: [`unblock`] runs blocking code (a name lookup, a
//! file read, a call into a blocking library) on a small pool of threads and
//! returns a future of its result, so an executor thread never blocks.
//!
//! The pool knows nothing of executors or sockets: the future it returns is
//! woken by the pool thread that finishes the job, and works under any
//! executor. tarn's sockets resolve host names through it.
//!
//! The pool starts empty, adds a thread when a job arrives and no thread is
//! idle (up to [`MAX_THREADS`]), and a thread that has been idle for
//! [`IDLE_TIMEOUT`] exits. Jobs beyond the limit wait in a FIFO queue. Pool
//! threads are named `tarn-unblock`.
//!
//! ```
//! let len = futures::executor::block_on(tarn_blocking::unblock(|| {
//!     std::fs::read_to_string("Cargo.toml").map(|text| text.len())
//! }))?;
//! assert!(len > 0);
//! # std::io::Result::Ok(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

/// The most threads the pool runs at once.
pub const MAX_THREADS: usize = 64;
/// How long an idle pool thread waits for work before it exits.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

struct PoolState {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

static POOL: Pool = Pool {
    state: Mutex::new(PoolState {
        jobs: VecDeque::new(),
        threads: 0,
        idle: 0,
    }),
    work: Condvar::new(),
};

/// The number of threads the pool has right now (for tests and operators).
pub fn threads() -> usize {
    lock(&POOL.state).threads
}

/// Jobs submitted to the pool so far, by the whole process: what a caller
/// that batches its work (`tarn::fs`'s `File`) can be checked against.
///
/// ```
/// let before = tarn_blocking::jobs();
/// tarn_executor::block_on(tarn_blocking::unblock(|| ()));
/// assert!(tarn_blocking::jobs() > before);
/// ```
pub fn jobs() -> u64 {
    JOBS.load(Ordering::Relaxed)
}

static JOBS: AtomicU64 = AtomicU64::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// Queues `job`, starting a thread for it if none is idle and the
    /// bound allows. Fails, taking the job back, only if no thread can
    /// start and none is running to take it later.
    fn submit(&'static self, job: Job) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.jobs.push_back(job);
        // Each idle thread will take one queued job; start a thread for
        // every job beyond that, up to the bound.
        if state.idle > 0 {
            self.work.notify_one();
        }
        if state.jobs.len() > state.idle && state.threads < MAX_THREADS {
            state.threads += 1;
            let spawned = thread::Builder::new()
                .name("tarn-unblock".into())
                .spawn(move || self.worker());
            if let Err(e) = spawned {
                state.threads -= 1;
                if state.threads == 0 {
                    state.jobs.pop_back();
                    // Not `e.kind()`: EAGAIN would read as `WouldBlock`,
                    // which an async operation must never return.
                    return Err(io::Error::other(format!(
                        "tarn: cannot start a blocking-pool thread: {e}"
                    )));
                }
                // Out of threads for now: a running worker takes the job.
            }
        }
        JOBS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn worker(&'static self) {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                drop(state);
                job();
                state = lock(&self.state);
                continue;
            }
            state.idle += 1;
            let (next, wait) = self
                .work
                .wait_timeout(state, IDLE_TIMEOUT)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            if wait.timed_out() && state.jobs.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}

/// Where a job leaves its result for the [`Unblock`] future.
struct Slot<T> {
    result: Option<thread::Result<T>>,
    waker: Option<Waker>,
}

/// The future of [`unblock`]: the job's result.
#[must_use = "the closure runs regardless, but its result is lost unless awaited"]
pub struct Unblock<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> fmt::Debug for Unblock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unblock").finish_non_exhaustive()
    }
}

/// Runs `f` on the blocking pool; the future yields its result.
///
/// A panic in `f` is re-raised where the future is awaited. Dropping the
/// future does not stop `f`, which runs to completion.
///
/// # Panics
///
/// If the pool has no thread and none can be started (the process is out
/// of threads or memory); [`try_unblock`] returns that error instead.
///
/// ```
/// let text = tarn_executor::block_on(tarn_blocking::unblock(|| {
///     std::fs::read_to_string("Cargo.toml")
/// }));
/// assert!(text.unwrap().contains("tarn-blocking"));
/// ```
pub fn unblock<T, F>(f: F) -> Unblock<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    try_unblock(f).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`unblock`], with an error instead of a panic when no pool thread
/// runs and none can be started; a later call tries again.
///
/// ```
/// # futures::executor::block_on(async {
/// let answer = tarn_blocking::try_unblock(|| 6 * 7)?.await;
/// assert_eq!(answer, 42);
/// # std::io::Result::Ok(())
/// # })?;
/// # std::io::Result::Ok(())
/// ```
pub fn try_unblock<T, F>(f: F) -> io::Result<Unblock<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        result: None,
        waker: None,
    }));
    let job_slot = Arc::clone(&slot);
    POOL.submit(Box::new(move || {
        let result = catch_unwind(AssertUnwindSafe(f));
        let waker = {
            let mut slot = lock(&job_slot);
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            // A waker that panics (a foreign executor's bug) must not end
            // the pool thread, which the pool would go on counting.
            let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
        }
    }))?;
    Ok(Unblock { slot })
}

impl<T> Future for Unblock<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = lock(&self.slot);
        match slot.result.take() {
            Some(Ok(value)) => Poll::Ready(value),
            Some(Err(payload)) => {
                drop(slot);
                resume_unwind(payload)
            }
            None => {
                match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

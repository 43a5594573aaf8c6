//! [`unblock`]: run blocking code on a small thread pool and await it.
//!
//! The pool starts empty, adds a thread when a job arrives and no thread is
//! idle (up to [`MAX_THREADS`]), and a thread that has been idle for
//! [`IDLE_TIMEOUT`] exits. Jobs beyond the limit wait in a FIFO queue.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
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

#[derive(Default)]
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
pub fn unblock_threads() -> usize {
    lock(&POOL.state).threads
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    fn submit(&'static self, job: Job) {
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
            if spawned.is_err() {
                // Out of threads: the job waits for a running worker.
                state.threads -= 1;
                assert!(state.threads > 0, "tarn: cannot start an unblock thread");
            }
        }
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

struct Shared<T> {
    result: Option<thread::Result<T>>,
    waker: Option<Waker>,
}

/// The future of [`unblock`].
#[must_use = "the closure runs regardless, but its result is lost unless awaited"]
pub struct Unblock<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

impl<T> std::fmt::Debug for Unblock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unblock").finish_non_exhaustive()
    }
}

/// Runs `f` on the blocking thread pool; the future yields its result.
///
/// A panic in `f` is re-raised where the future is awaited. Dropping the
/// future does not stop `f`, which runs to completion.
///
/// ```
/// let text = tarn_executor::block_on(tarn_executor::unblock(|| {
///     std::fs::read_to_string("Cargo.toml")
/// }));
/// assert!(text.unwrap().contains("tarn-executor"));
/// ```
pub fn unblock<T, F>(f: F) -> Unblock<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let shared = Arc::new(Mutex::new(Shared {
        result: None,
        waker: None,
    }));
    let job_shared = Arc::clone(&shared);
    POOL.submit(Box::new(move || {
        let result = catch_unwind(AssertUnwindSafe(f));
        let waker = {
            let mut shared = lock(&job_shared);
            shared.result = Some(result);
            shared.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }));
    Unblock { shared }
}

impl<T> Future for Unblock<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut shared = lock(&self.shared);
        match shared.result.take() {
            Some(Ok(value)) => Poll::Ready(value),
            Some(Err(payload)) => {
                drop(shared);
                resume_unwind(payload)
            }
            None => {
                match &shared.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => shared.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

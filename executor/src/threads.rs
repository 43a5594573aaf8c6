//! [`PerCore`]: one executor thread per core, in one call.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use crate::block_on;

/// Starts executor threads: each builds its future from its index and runs
/// it with [`block_on`], with its own executor (and tasks that need not be
/// `Send`). The thread-per-core model: nothing moves between threads, and
/// each thread takes its own share of the work (its own `SO_REUSEPORT`
/// listener, say; see `tarn::net::reuseport_listeners`).
///
/// ```
/// use tarn_executor::PerCore;
///
/// let executors = PerCore::new()
///     .threads(2)
///     .spawn(|index| async move {
///         // On executor thread `index`: spawn, serve, ...
///         tarn_executor::spawn(async move { index * 10 }).await.unwrap()
///     })?;
/// let results: Vec<usize> = executors.join().into_iter().map(Result::unwrap).collect();
/// assert_eq!(results, [0, 10]);
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct PerCore {
    threads: Option<usize>,
    pin: bool,
    name: String,
    stack_size: Option<usize>,
}

impl Default for PerCore {
    fn default() -> PerCore {
        PerCore::new()
    }
}

impl PerCore {
    /// As many threads as the process may use cores
    /// ([`available_parallelism`](thread::available_parallelism)), not
    /// pinned, named `executor-0`, `executor-1`, ...
    pub fn new() -> PerCore {
        PerCore {
            threads: None,
            pin: false,
            name: "executor".into(),
            stack_size: None,
        }
    }

    /// How many executor threads to start.
    pub fn threads(mut self, threads: usize) -> PerCore {
        self.threads = Some(threads);
        self
    }

    /// Pins thread `i` to the `i`-th CPU this process may run on (wrapping
    /// around when there are more threads than CPUs), so that its caches
    /// and its share of the network interrupts stay on one core. Off by
    /// default: on a machine shared with other busy programs, a pinned
    /// thread cannot move away from a contended core.
    pub fn pin(mut self, pin: bool) -> PerCore {
        self.pin = pin;
        self
    }

    /// The threads' name prefix (`prefix-0`, `prefix-1`, ...).
    pub fn name(mut self, prefix: impl Into<String>) -> PerCore {
        self.name = prefix.into();
        self
    }

    /// The threads' stack size (std's default otherwise).
    pub fn stack_size(mut self, bytes: usize) -> PerCore {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the threads; thread `i` runs `block_on(make(i))`.
    ///
    /// Returns once every thread has started (and, with [`pin`](Self::pin),
    /// been pinned). If one cannot start or be pinned, the threads already
    /// started are told to stop before they build their futures, and the
    /// error says which thread failed.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for zero threads; the error of `thread::spawn` or
    /// `sched_setaffinity` otherwise.
    pub fn spawn<F, Fut>(self, make: F) -> io::Result<Executors<Fut::Output>>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let count = match self.threads {
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        self.spawn_with(vec![(); count], move |index, ()| make(index))
    }

    /// [`spawn`](Self::spawn), handing thread `i` the `i`-th of `inputs`
    /// (one thread per input; [`threads`](Self::threads) is ignored): a
    /// listener per thread, say, made on this thread and adopted there.
    ///
    /// ```
    /// use tarn_executor::PerCore;
    ///
    /// let names = vec!["a".to_string(), "b".to_string()];
    /// let executors = PerCore::new().spawn_with(names, |index, name| async move {
    ///     format!("{index}: {name}")
    /// })?;
    /// let out: Vec<String> = executors.join().into_iter().map(Result::unwrap).collect();
    /// assert_eq!(out, ["0: a", "1: b"]);
    /// # std::io::Result::Ok(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn); `InvalidInput` for no inputs.
    pub fn spawn_with<I, F, Fut>(
        self,
        inputs: Vec<I>,
        make: F,
    ) -> io::Result<Executors<Fut::Output>>
    where
        I: Send + 'static,
        F: Fn(usize, I) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        if inputs.is_empty() {
            let e = "PerCore: at least one executor thread is needed (0 threads or inputs)";
            return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
        }
        let count = inputs.len();
        let cpus = if self.pin {
            allowed_cpus()?
        } else {
            Vec::new()
        };
        let make = Arc::new(make);
        let mut threads = Vec::with_capacity(count);
        // Each thread reports that it is ready (pinned) and then waits for
        // the go: all start, or none runs its future.
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let mut gos = Vec::with_capacity(count);
        for (index, input) in inputs.into_iter().enumerate() {
            let (go_tx, go_rx) = mpsc::channel::<bool>();
            let make = Arc::clone(&make);
            let ready = ready_tx.clone();
            let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let mut builder = thread::Builder::new().name(format!("{}-{index}", self.name));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            let started = builder.spawn(move || {
                let pinned = match cpu {
                    Some(cpu) => pin_to(cpu),
                    None => Ok(()),
                };
                let ok = pinned.is_ok();
                let _ = ready.send(pinned);
                if !ok || !go_rx.recv().unwrap_or(false) {
                    return None;
                }
                Some(block_on(make(index, input)))
            });
            let failed = match started {
                Ok(handle) => {
                    threads.push(handle);
                    gos.push(go_tx);
                    match ready_rx.recv() {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e),
                        Err(_) => Some(io::Error::other("the thread ended before it started")),
                    }
                }
                Err(e) => Some(e),
            };
            if let Some(e) = failed {
                for go in gos {
                    let _ = go.send(false);
                }
                for thread in threads {
                    let _ = thread.join();
                }
                let name = format!("{}-{index}", self.name);
                let message = format!("starting executor thread {name}: {e}");
                return Err(io::Error::new(e.kind(), message));
            }
        }
        for go in gos {
            let _ = go.send(true);
        }
        Ok(Executors { threads })
    }
}

/// The threads [`PerCore::spawn`] started.
pub struct Executors<T> {
    threads: Vec<thread::JoinHandle<Option<T>>>,
}

impl<T> Executors<T> {
    /// How many executor threads run.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether there are none (never, for executors that started).
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Whether every thread's future has completed (or panicked).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|thread| thread.is_finished())
    }

    /// Waits for every thread's future to complete; one result per thread,
    /// in index order: its output, or the payload of the panic that ended
    /// it.
    pub fn join(self) -> Vec<thread::Result<T>> {
        self.threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .map(|output| output.expect("a started executor thread runs its future"))
            })
            .collect()
    }
}

impl<T> fmt::Debug for Executors<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.threads.iter().map(|t| t.thread().name()).collect();
        f.debug_struct("Executors")
            .field("threads", &names)
            .finish()
    }
}

/// The CPUs this process may run on, in order.
#[allow(unsafe_code)]
fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, which lives for the call.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("sched_getaffinity: {e}")));
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's size in bits.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    Ok(cpus)
}

/// Pins the calling thread to `cpu`.
#[allow(unsafe_code)]
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from the allowed set, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the pointer and size describe `set`; 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("pinning to CPU {cpu}: {e}"),
        ));
    }
    Ok(())
}

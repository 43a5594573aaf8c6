//! [`LocalExecutor`]: a single-threaded, FIFO task executor that sleeps in
//! the reactor when it has nothing to run; [`block_on`] and [`spawn`] on top.
//!
//! Tasks live in a slab owned by the executor and need not be `Send`. Their
//! wakers are `Send`: a wake on the executor's own thread pushes the task
//! onto the local run queue (no lock, no syscall); a wake from another
//! thread pushes onto a mutex-protected remote queue and unparks the
//! executor, which may be asleep inside `select`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use slab::Slab;
use tarn_reactor::{DriverGuard, Parker, Reactor, Unparker};

use crate::join::{JoinHandle, JoinState, TaskFuture};

/// Tasks run between two non-blocking looks at the reactor, so that tasks
/// that are always ready cannot starve I/O and timers.
const REACTOR_EVERY: u32 = 61;

/// The key of the future passed to `run` in the run queue.
const MAIN: usize = usize::MAX;

thread_local! {
    /// The executor running on this thread, if any.
    static CURRENT: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
    /// Set while polling a task whose executor has its own panic handler:
    /// the process panic hook then stays quiet.
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// A single-threaded executor that an application can hold and run itself.
///
/// [`block_on`] uses one per thread underneath. Tasks are polled in the
/// order they were woken (FIFO). While a task is always ready, the reactor is
/// still polled (without blocking) every few dozen tasks, so I/O and timers
/// keep flowing. When nothing is runnable, the thread sleeps in the
/// reactor's `select` (or, if another thread is driving the reactor, on a
/// condition variable until woken).
///
/// ```
/// use tarn_executor::LocalExecutor;
///
/// let ex = LocalExecutor::new();
/// let task = ex.spawn(async { 1 + 1 });
/// assert_eq!(ex.run(task).unwrap(), 2);
/// ```
pub struct LocalExecutor {
    inner: Rc<Inner>,
}

/// Configures a [`LocalExecutor`].
#[derive(Default)]
pub struct Builder {
    on_panic: Option<Rc<PanicHandler>>,
}

type PanicHandler = dyn Fn(&(dyn Any + Send));

pub(crate) struct Inner {
    id: usize,
    shared: Arc<Shared>,
    queue: RefCell<VecDeque<usize>>,
    tasks: RefCell<Slab<Slot>>,
    parker: Parker,
    main: Arc<TaskWaker>,
    /// The task being polled, and whether it was cancelled meanwhile.
    running: Cell<Option<usize>>,
    cancel_running: Cell<bool>,
    on_panic: Option<Rc<PanicHandler>>,
}

struct Slot {
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    flag: Arc<TaskWaker>,
    waker: Waker,
}

/// The part of an executor that wakers on other threads can reach.
struct Shared {
    id: usize,
    remote: Mutex<Vec<usize>>,
    has_remote: AtomicBool,
    unparker: Unparker,
}

struct TaskWaker {
    key: usize,
    /// True from a wake until the task is next polled: repeated wakes queue
    /// the task once.
    scheduled: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            schedule(self.key, &self.shared);
        }
    }
}

fn schedule(key: usize, shared: &Shared) {
    let local = CURRENT.with(|current| match current.try_borrow().as_deref() {
        Ok(Some(inner)) if inner.id == shared.id => {
            inner.queue.borrow_mut().push_back(key);
            inner.parker.mark_woken();
            true
        }
        _ => false,
    });
    if !local {
        shared
            .remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key);
        shared.has_remote.store(true, Ordering::Release);
        shared.unparker.unpark();
    }
}

impl Builder {
    /// A builder with the defaults.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Replaces the report of a panicking task: instead of the process's
    /// panic hook printing the message, `handler` receives the payload.
    /// The task's [`JoinHandle`] still yields the panic.
    pub fn on_panic(mut self, handler: impl Fn(&(dyn Any + Send)) + 'static) -> Builder {
        self.on_panic = Some(Rc::new(handler));
        self
    }

    /// Builds the executor.
    pub fn build(self) -> LocalExecutor {
        if self.on_panic.is_some() {
            install_quiet_hook();
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let parker = Parker::new();
        let shared = Arc::new(Shared {
            id,
            remote: Mutex::new(Vec::new()),
            has_remote: AtomicBool::new(false),
            unparker: parker.unparker(),
        });
        let main = Arc::new(TaskWaker {
            key: MAIN,
            scheduled: AtomicBool::new(false),
            shared: Arc::clone(&shared),
        });
        LocalExecutor {
            inner: Rc::new(Inner {
                id,
                shared,
                queue: RefCell::new(VecDeque::new()),
                tasks: RefCell::new(Slab::new()),
                parker,
                main,
                running: Cell::new(None),
                cancel_running: Cell::new(false),
                on_panic: self.on_panic,
            }),
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("on_panic", &self.on_panic.is_some())
            .finish()
    }
}

impl Default for LocalExecutor {
    fn default() -> LocalExecutor {
        LocalExecutor::new()
    }
}

impl LocalExecutor {
    /// An executor with the default settings.
    pub fn new() -> LocalExecutor {
        Builder::new().build()
    }

    /// Spawns a task; it runs when the executor runs.
    pub fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        self.inner.spawn(future)
    }

    /// Runs `future` to completion, and the spawned tasks meanwhile.
    ///
    /// # Panics
    ///
    /// If this thread is already running an executor (`block_on` or `run`
    /// inside async code): that would block the outer executor's tasks.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        let _running = Running::enter(&self.inner);
        let _driving = DriverGuard::enter();
        let inner = &*self.inner;
        let main_waker = Waker::from(Arc::clone(&inner.main));
        let mut cx = Context::from_waker(&main_waker);
        let mut future = pin!(future);
        inner.main.scheduled.store(true, Ordering::Release);
        inner.queue.borrow_mut().push_back(MAIN);
        let mut ticks: u32 = 0;
        loop {
            let Some(key) = inner.next() else {
                inner.parker.park();
                continue;
            };
            if key == MAIN {
                inner.main.scheduled.store(false, Ordering::Release);
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
            } else {
                inner.run_task(key);
            }
            ticks += 1;
            if ticks % REACTOR_EVERY == 0 {
                poll_reactor();
            }
        }
    }

    /// Runs one ready task, if there is one; returns whether it did.
    pub fn try_tick(&self) -> bool {
        let _running = Running::enter(&self.inner);
        match self.inner.next() {
            Some(key) if key != MAIN => {
                self.inner.run_task(key);
                true
            }
            _ => false,
        }
    }

    /// Runs one task, waiting (and driving the reactor) until one is ready.
    pub fn tick(&self) {
        let _running = Running::enter(&self.inner);
        let _driving = DriverGuard::enter();
        loop {
            match self.inner.next() {
                Some(key) if key != MAIN => {
                    self.inner.run_task(key);
                    return;
                }
                _ => self.inner.parker.park(),
            }
        }
    }

    /// How many tasks are alive (spawned and not finished).
    pub fn len(&self) -> usize {
        self.inner.tasks.borrow().len()
    }

    /// Whether no task is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for LocalExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalExecutor")
            .field("tasks", &self.len())
            .field("queued", &self.inner.queue.borrow().len())
            .finish()
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        // Drop the tasks' futures outside the slab borrow: their destructors
        // may touch the executor (abort handles, wake others).
        let tasks = std::mem::take(&mut *self.inner.tasks.borrow_mut());
        drop(tasks);
    }
}

impl Inner {
    fn spawn<F: Future + 'static>(self: &Rc<Self>, future: F) -> JoinHandle<F::Output> {
        let state = JoinState::new();
        let task = TaskFuture::new(future, Rc::clone(&state));
        let key = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.vacant_entry();
            let key = entry.key();
            let flag = Arc::new(TaskWaker {
                key,
                scheduled: AtomicBool::new(true),
                shared: Arc::clone(&self.shared),
            });
            entry.insert(Slot {
                future: Some(Box::pin(task)),
                waker: Waker::from(Arc::clone(&flag)),
                flag,
            });
            key
        };
        self.queue.borrow_mut().push_back(key);
        self.parker.mark_woken();
        JoinHandle {
            state,
            executor: Rc::downgrade(self),
            key,
        }
    }

    /// The next task to poll. Wakes from other threads join the back of the
    /// queue as soon as they are seen, so a busy local queue cannot starve them.
    fn next(&self) -> Option<usize> {
        if self.shared.has_remote.load(Ordering::Relaxed)
            && self.shared.has_remote.swap(false, Ordering::Acquire)
        {
            let mut remote = self.shared.remote.lock().unwrap_or_else(|e| e.into_inner());
            self.queue.borrow_mut().extend(remote.drain(..));
        }
        self.queue.borrow_mut().pop_front()
    }

    fn run_task(&self, key: usize) {
        let (mut future, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(slot) = tasks.get_mut(key) else {
                return; // a stale wake of a finished or cancelled task
            };
            let Some(future) = slot.future.take() else {
                return;
            };
            // Wakes from here on queue the task again.
            slot.flag.scheduled.store(false, Ordering::Release);
            (future, slot.waker.clone())
        };
        self.running.set(Some(key));
        let quiet = self.on_panic.is_some();
        if quiet {
            QUIET_PANICS.with(|q| q.set(true));
        }
        let poll = future.as_mut().poll(&mut Context::from_waker(&waker));
        if quiet {
            QUIET_PANICS.with(|q| q.set(false));
        }
        self.running.set(None);
        let cancelled = self.cancel_running.replace(false);
        if poll.is_ready() || cancelled {
            let slot = self.tasks.borrow_mut().try_remove(key);
            drop(slot);
            drop(future);
        } else if let Some(slot) = self.tasks.borrow_mut().get_mut(key) {
            slot.future = Some(future);
        }
    }

    /// Cancels a task (from `JoinHandle::abort`).
    pub(crate) fn cancel(&self, key: usize) {
        if self.running.get() == Some(key) {
            self.cancel_running.set(true);
            return;
        }
        let slot = self.tasks.borrow_mut().try_remove(key);
        drop(slot);
    }
}

/// Looks at the reactor without blocking, if no other thread is driving it.
fn poll_reactor() {
    if let Some(mut driver) = Reactor::get().try_lock() {
        let _ = driver.react(Some(Duration::ZERO));
    }
}

/// Makes an executor current on this thread for its lifetime.
struct Running;

impl Running {
    fn enter(inner: &Rc<Inner>) -> Running {
        CURRENT.with(|current| {
            let mut current = current.borrow_mut();
            if current.is_some() {
                drop(current);
                panic!(
                    "tarn: block_on (or LocalExecutor::run/tick) called while this thread is \
                     already running an executor; inside async code, use .await or \
                     tarn::spawn instead of a nested block_on"
                );
            }
            *current = Some(Rc::clone(inner));
        });
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let inner = CURRENT.with(|current| current.borrow_mut().take());
        drop(inner);
    }
}

/// Spawns a task on the executor running on this thread.
///
/// The future need not be `Send`. Dropping the returned handle detaches
/// the task.
///
/// # Panics
///
/// Outside [`block_on`] (or [`LocalExecutor::run`]), where no executor
/// would ever run the task.
pub fn spawn<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    let inner = CURRENT.with(|current| current.borrow().clone());
    match inner {
        Some(inner) => inner.spawn(future),
        None => panic!(
            "tarn::spawn called outside of tarn::block_on: no executor runs on this thread; \
             wrap your code in tarn::block_on(async {{ ... }}) or use LocalExecutor::spawn"
        ),
    }
}

thread_local! {
    static EXECUTOR: LocalExecutor = LocalExecutor::new();
}

/// Runs `future` to completion on this thread, with the tasks it spawns,
/// sleeping in the reactor whenever nothing is runnable.
///
/// Tasks still running when it returns stay on this thread's executor and
/// continue at the next `block_on`.
///
/// ```
/// let sum = tarn_executor::block_on(async {
///     let a = tarn_executor::spawn(async { 20 });
///     let b = tarn_executor::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(sum, 42);
/// ```
///
/// # Panics
///
/// When called inside another `block_on` on the same thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    EXECUTOR.with(|executor| executor.run(future))
}

/// Calls the executor's panic handler, if it has one, for a task's panic.
pub(crate) fn report_panic(payload: &(dyn Any + Send)) {
    let handler = CURRENT.with(|current| {
        current
            .try_borrow()
            .ok()
            .and_then(|c| c.as_ref().and_then(|inner| inner.on_panic.clone()))
    });
    if let Some(handler) = handler {
        handler(payload);
    }
}

/// Installs (once) a process panic hook that defers to the previous one
/// except while a task with its own panic handler is being polled.
fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}

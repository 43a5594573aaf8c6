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
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use slab::Slab;
use tarn_reactor::driver::{with_budget, DriverGuard, Parker, Unparker};

use crate::dump::{TaskId, TaskInfo, Waiting};
use crate::join::JoinHandle;
use crate::sync;
use crate::task::{self, Header, OnExecutor, TaskRef};

/// Tasks run between two non-blocking looks at the reactor, so that tasks
/// that are always ready cannot starve I/O and timers.
const REACTOR_EVERY: u32 = 61;

sync::thread_locals! {
    /// The executor running on this thread, if any.
    static CURRENT: RefCell<Option<Rc<Inner>>> = RefCell::new(None);
    /// The panic handler of the executor running or being dropped on this
    /// thread, if it has one (see [`set_handler`]).
    static HANDLER: RefCell<Option<Rc<PanicHandler>>> = RefCell::new(None);
    /// Whether `HANDLER` holds one: read on every task poll, so a plain
    /// flag rather than a look into the `RefCell`.
    static HANDLED: Cell<bool> = Cell::new(false);
    /// Set while a task's code runs under a panic handler: the process
    /// panic hook then stays quiet.
    static QUIET_PANICS: Cell<bool> = Cell::new(false);
    /// How many executors are being dropped on this thread: a `spawn` from
    /// a destructor they run has no executor to go to.
    static TEARING_DOWN: Cell<usize> = Cell::new(0);
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

/// Configures a [`LocalExecutor`]: from [`LocalExecutor::builder`].
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let panics = Rc::new(Cell::new(0));
/// let counted = Rc::clone(&panics);
/// let ex = tarn_executor::LocalExecutor::builder()
///     .on_panic(move |_payload| counted.set(counted.get() + 1))
///     .build();
/// let task = ex.spawn(async { panic!("boom") });
/// assert!(ex.run(task).unwrap_err().is_panic());
/// assert_eq!(panics.get(), 1);
/// ```
#[derive(Default)]
pub struct ExecutorBuilder {
    on_panic: Option<Rc<PanicHandler>>,
}

type PanicHandler = dyn Fn(&(dyn Any + Send));

pub(crate) struct Inner {
    id: usize,
    shared: sync::Arc<Shared>,
    queue: RefCell<VecDeque<Job>>,
    /// Every live task, so that dropping the executor can drop them (and a
    /// task dump can list them).
    tasks: RefCell<Slab<Entry>>,
    /// The names of the live tasks spawned with one, by task id (apart
    /// from the table, so that unnamed tasks pay nothing for names).
    names: RefCell<HashMap<u64, Rc<str>>>,
    /// The id of the next task spawned.
    next_task: Cell<u64>,
    /// The id of the task being polled (0: none; ids start at 1).
    running: Cell<u64>,
    /// The coarse clock tasks' last polls are stamped with: milliseconds
    /// since `epoch`, read when the executor wakes and every
    /// `REACTOR_EVERY` polls.
    clock: Cell<u32>,
    epoch: Instant,
    parker: Parker,
    main: Arc<MainWaker>,
    on_panic: Option<Rc<PanicHandler>>,
}

/// A live task in the executor's table.
struct Entry {
    task: TaskRef,
    location: &'static Location<'static>,
    /// Its name is in `Inner::names`.
    named: bool,
}

/// An entry of the run queue.
pub(crate) enum Job {
    /// The future passed to `run`.
    Main,
    /// A spawned task (the entry holds a reference to it).
    Task(TaskRef),
}

/// The part of an executor that wakers on other threads can reach.
pub(crate) struct Shared {
    id: usize,
    remote: sync::Mutex<Remote>,
    has_remote: sync::AtomicBool,
    unparker: Unparker,
}

impl Shared {
    /// The shared part of executor `id`, whose thread `unparker` wakes;
    /// `closed`: one that takes no wakes (see `refused`).
    pub(crate) fn new(id: usize, unparker: Unparker, closed: bool) -> sync::Arc<Shared> {
        sync::Arc::new(Shared {
            id,
            remote: sync::Mutex::new(Remote {
                jobs: Vec::new(),
                closed,
            }),
            has_remote: sync::AtomicBool::new(false),
            unparker,
        })
    }

    /// The executor's number.
    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// Takes no more wakes (they are dropped from now on, where they are
    /// made); returns those queued meanwhile, for the caller to drop.
    pub(crate) fn close(&self) -> Vec<Job> {
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        remote.closed = true;
        std::mem::take(&mut remote.jobs)
    }

    /// Moves the wakes from other threads queued so far to the back of
    /// `queue` (keeping the remote queue's buffer for the next ones).
    pub(crate) fn drain_remote_into(&self, queue: &mut VecDeque<Job>) {
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        queue.extend(remote.jobs.drain(..));
    }
}

/// Wakes from other threads, waiting for the executor to pick them up.
#[derive(Default)]
struct Remote {
    jobs: Vec<Job>,
    /// The executor is gone: wakes are dropped instead of queued.
    closed: bool,
}

/// The waker of the future passed to `run`.
struct MainWaker {
    scheduled: sync::AtomicBool,
    shared: sync::Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            schedule(Job::Main, &self.shared);
        }
    }
}

/// Queues `job` on the executor of `shared`: on its local queue when that
/// executor is running on this thread, else on its remote queue (and
/// unparks it).
pub(crate) fn schedule(job: Job, shared: &Shared) {
    let mut job = Some(job);
    // `try_with`: wakes may come from destructors during thread exit.
    let _ = CURRENT.try_with(|current| {
        if let Ok(Some(inner)) = current.try_borrow().as_deref() {
            if inner.id == shared.id {
                if let Some(job) = job.take() {
                    inner.queue.borrow_mut().push_back(job);
                }
                // The executor looks at its queue before it parks; only a
                // wake dispatched from inside its park must end the park.
                inner.parker.mark_woken_if_parked();
            }
        }
    });
    let Some(job) = job else { return };
    let mut remote = shared.remote.lock().unwrap_or_else(|e| e.into_inner());
    if remote.closed {
        drop(remote);
        drop(job);
        return;
    }
    remote.jobs.push(job);
    drop(remote);
    shared.has_remote.store(true, Ordering::Release);
    shared.unparker.unpark();
}

impl ExecutorBuilder {
    /// A builder with the defaults.
    pub fn new() -> ExecutorBuilder {
        ExecutorBuilder::default()
    }

    /// Replaces the report of a panicking task: instead of the process's
    /// panic hook printing the message, `handler` receives the payload.
    /// The task's [`JoinHandle`] still yields the panic.
    pub fn on_panic(mut self, handler: impl Fn(&(dyn Any + Send)) + 'static) -> ExecutorBuilder {
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
        let shared = Shared::new(id, parker.unparker(), false);
        let main = Arc::new(MainWaker {
            scheduled: sync::AtomicBool::new(false),
            shared: sync::Arc::clone(&shared),
        });
        LocalExecutor {
            inner: Rc::new(Inner {
                id,
                shared,
                queue: RefCell::new(VecDeque::new()),
                tasks: RefCell::new(Slab::new()),
                names: RefCell::new(HashMap::new()),
                next_task: Cell::new(1),
                running: Cell::new(0),
                clock: Cell::new(0),
                epoch: Instant::now(),
                parker,
                main,
                on_panic: self.on_panic,
            }),
        }
    }
}

impl fmt::Debug for ExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorBuilder")
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
        ExecutorBuilder::new().build()
    }

    /// A builder, to set what [`new`](Self::new) leaves at its default.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::new()
    }

    /// Spawns a task; it runs when the executor runs.
    #[track_caller]
    pub fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        self.inner.spawn(future, None, Location::caller())
    }

    pub(crate) fn spawn_named<F: Future + 'static>(
        &self,
        future: F,
        name: Option<Rc<str>>,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output> {
        self.inner.spawn(future, name, location)
    }

    /// Every live task of this executor (see [`tasks`](crate::tasks)).
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.inner.tasks()
    }

    /// Runs `future` to completion, and the spawned tasks meanwhile.
    ///
    /// # Panics
    ///
    /// If this thread is already running an executor (`block_on` or `run`
    /// inside async code): that would block the outer executor's tasks.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        let _running = Running::enter(&self.inner);
        let driving = DriverGuard::enter();
        let inner = &*self.inner;
        let main_waker = Waker::from(Arc::clone(&inner.main));
        let mut cx = Context::from_waker(&main_waker);
        let mut future = pin!(future);
        inner.main.scheduled.store(true, Ordering::Release);
        inner.queue.borrow_mut().push_back(Job::Main);
        let mut ticks: u32 = 0;
        loop {
            let busy = match inner.next() {
                None => {
                    inner.parker.park();
                    inner.tick_clock();
                    continue;
                }
                Some(Job::Main) => {
                    // A swap, for the reason `TaskRef::run` gives.
                    inner.main.scheduled.swap(false, Ordering::Acquire);
                    DriverGuard::polling(&main_waker);
                    match with_budget(|| future.as_mut().poll(&mut cx)) {
                        (Poll::Ready(output), _) => return output,
                        (Poll::Pending, busy) => busy,
                    }
                }
                Some(Job::Task(task)) => match inner.run_task(task) {
                    Some(busy) => busy,
                    // A stale entry is no tick: it must not bring the next
                    // look at the reactor forward.
                    None => continue,
                },
            };
            ticks += 1;
            // A task that spent its I/O budget has others' I/O and timers
            // waiting behind it: look at the reactor now.
            if busy || ticks % REACTOR_EVERY == 0 {
                driving.react_now();
                inner.tick_clock();
            }
        }
    }

    /// Runs one ready task, if there is one; returns whether it did.
    ///
    /// Inside a task (of this executor or another one on this thread) it
    /// runs nothing and returns `false`: the task it would pick could be
    /// the very one being polled.
    pub fn try_tick(&self) -> bool {
        if CURRENT.try_with(|c| c.borrow().is_some()).unwrap_or(true) {
            return false;
        }
        let _running = Running::enter(&self.inner);
        loop {
            match self.inner.next() {
                Some(Job::Task(task)) => {
                    if self.inner.run_task(task).is_some() {
                        return true;
                    }
                }
                // A stale wake of a `run` that has returned.
                Some(Job::Main) => continue,
                None => return false,
            }
        }
    }

    /// Runs one task, waiting (and driving the reactor) until one is ready.
    pub fn tick(&self) {
        let _running = Running::enter(&self.inner);
        let _driving = DriverGuard::enter();
        loop {
            match self.inner.next() {
                Some(Job::Task(task)) => {
                    if self.inner.run_task(task).is_some() {
                        return;
                    }
                }
                Some(Job::Main) => {}
                None => {
                    self.inner.parker.park();
                    self.inner.tick_clock();
                }
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
        // From now on, wakes from other threads (and from the destructors
        // below) are dropped rather than queued.
        drop(self.inner.shared.close());
        // Drop the tasks' futures outside the table's borrow: their
        // destructors may touch the executor (abort handles, wake others).
        // A destructor that panics is that task's panic (reported, and what
        // its handle yields); the others are dropped all the same. One that
        // spawns finds no executor, and its future is dropped at once.
        let _teardown = Teardown::enter(self.inner.on_panic.clone());
        let tasks = std::mem::take(&mut *self.inner.tasks.borrow_mut());
        for (_, entry) in tasks {
            entry.task.cancel(OnExecutor::of(&self.inner));
        }
        let queue = std::mem::take(&mut *self.inner.queue.borrow_mut());
        drop(queue);
    }
}

impl Inner {
    #[inline]
    fn spawn<F: Future + 'static>(
        self: &Rc<Self>,
        future: F,
        name: Option<Rc<str>>,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output> {
        let handle = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.vacant_entry();
            let id = self.next_task.get();
            self.next_task.set(id + 1);
            let (table, queued, handle) =
                task::allocate(future, id, entry.key(), sync::Arc::clone(&self.shared));
            entry.insert(Entry {
                task: table,
                location,
                named: name.is_some(),
            });
            if let Some(name) = name {
                self.names.borrow_mut().insert(id, name);
            }
            self.queue.borrow_mut().push_back(Job::Task(queued));
            handle
        };
        self.parker.mark_woken_if_parked();
        JoinHandle::new(handle, Rc::downgrade(self))
    }

    /// The next job to run. Wakes from other threads join the back of the
    /// queue as soon as they are seen, so a busy local queue cannot starve them.
    fn next(&self) -> Option<Job> {
        if self.shared.has_remote.load(Ordering::Relaxed)
            && self.shared.has_remote.swap(false, Ordering::Acquire)
        {
            self.shared.drain_remote_into(&mut self.queue.borrow_mut());
        }
        self.queue.borrow_mut().pop_front()
    }

    /// Polls a queued task; drops it from the table once it is over.
    /// Returns whether the task spent its whole I/O budget.
    /// Runs `task`; returns whether it spent its I/O budget, or `None` if
    /// its future was already gone (a stale queue entry: nothing ran).
    fn run_task(&self, task: TaskRef) -> Option<bool> {
        let on = OnExecutor::of(self);
        self.running.set(task.id(on));
        let (over, busy) = with_budget(|| task.run(on, self.clock.get()));
        self.running.set(0);
        if over? {
            self.forget(task.key(on), task.as_ptr());
        }
        Some(busy)
    }

    /// The executor's number (its wakers' `Shared::id`).
    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// Reads the coarse clock anew (see `clock`).
    fn tick_clock(&self) {
        self.clock.set(self.millis());
    }

    /// Milliseconds since `epoch`, wrapping (see `LocalHeader::last_poll`).
    fn millis(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    /// The id of the task being polled, if any.
    pub(crate) fn running_task(&self) -> Option<TaskId> {
        let task = self.running.get();
        (task != 0).then_some(TaskId {
            executor: self.id,
            task,
        })
    }

    /// Every live task, in spawn order, with what the reactors hold its
    /// wakers for.
    pub(crate) fn tasks(&self) -> Vec<TaskInfo> {
        let on = OnExecutor::of(self);
        let now = self.millis();
        let started = Instant::now();
        let mut waits: std::collections::HashMap<(usize, usize), Vec<Waiting>> =
            std::collections::HashMap::new();
        for held in tarn_reactor::held_wakers() {
            let what = match held.waits_for {
                tarn_reactor::WaitsFor::Read(fd) => Waiting::Read(fd),
                tarn_reactor::WaitsFor::Write(fd) => Waiting::Write(fd),
                tarn_reactor::WaitsFor::Timer(at) => {
                    Waiting::Timer(at.saturating_duration_since(started))
                }
            };
            waits
                .entry((held.data, held.vtable))
                .or_default()
                .push(what);
        }
        let names = self.names.borrow();
        let mut infos: Vec<TaskInfo> = self
            .tasks
            .borrow()
            .iter()
            .map(|(_, entry)| {
                let snap = entry.task.snapshot(on);
                let mut waiting = waits
                    .remove(&(snap.waker.0, snap.waker.1))
                    .unwrap_or_default();
                waiting.sort_by_key(|w| match *w {
                    Waiting::Read(fd) => (0, fd as u128),
                    Waiting::Write(fd) => (1, fd as u128),
                    Waiting::Timer(left) => (2, left.as_nanos()),
                });
                waiting.dedup();
                TaskInfo {
                    id: TaskId {
                        executor: self.id,
                        task: snap.id,
                    },
                    name: names.get(&snap.id).map(|name| name.to_string()),
                    location: entry.location,
                    state: snap.state,
                    polls: snap.polls,
                    since_last_poll: snap.last_poll.map(|at| {
                        std::time::Duration::from_millis(u64::from(now.wrapping_sub(at)))
                    }),
                    waiting,
                }
            })
            .collect();
        infos.sort_by_key(|info| info.id);
        infos
    }

    /// Drops the table's reference to a task whose future is gone (from
    /// `JoinHandle::abort`): the entry at `key`, if it is still the task at
    /// `task` (the pointer is compared, never dereferenced).
    #[inline]
    pub(crate) fn forget(&self, key: usize, task: NonNull<Header>) {
        let removed = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get(key) {
                Some(entry) if entry.task.is(task) => tasks.try_remove(key),
                _ => None,
            }
        };
        if let Some(entry) = &removed {
            if entry.named {
                let id = entry.task.id(OnExecutor::of(self));
                self.names.borrow_mut().remove(&id);
            }
        }
        drop(removed);
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
        set_handler(inner.on_panic.clone());
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let handler = set_handler(None);
        let inner = CURRENT.with(|current| current.borrow_mut().take());
        drop((handler, inner));
    }
}

/// Puts `handler` in effect for this thread's task code; returns the one
/// it replaces.
fn set_handler(handler: Option<Rc<PanicHandler>>) -> Option<Rc<PanicHandler>> {
    HANDLED.with(|h| h.set(handler.is_some()));
    HANDLER
        .try_with(|h| std::mem::replace(&mut *h.borrow_mut(), handler))
        .ok()
        .flatten()
}

/// Marks an executor's drop in progress on this thread, with its panic
/// handler in effect, for as long as it lives.
///
/// It may run inside a task of another executor (dropped there), whose
/// panic handler and quiet hook are then set aside for its duration: the
/// dropped executor's tasks' panics are reported by its own rules.
struct Teardown {
    handler_before: Option<Rc<PanicHandler>>,
    quiet_before: bool,
}

impl Teardown {
    fn enter(handler: Option<Rc<PanicHandler>>) -> Teardown {
        TEARING_DOWN.with(|t| t.set(t.get() + 1));
        Teardown {
            handler_before: set_handler(handler),
            quiet_before: QUIET_PANICS.with(|q| q.replace(false)),
        }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        QUIET_PANICS.with(|q| q.set(self.quiet_before));
        set_handler(self.handler_before.take());
        TEARING_DOWN.with(|t| t.set(t.get() - 1));
    }
}

/// Spawns a task on the executor running on this thread.
///
/// The future need not be `Send`. Dropping the returned handle detaches
/// the task.
///
/// ```
/// let handle = tarn_executor::block_on(async {
///     let task = tarn_executor::spawn(async { "done" });
///     task.await
/// });
/// assert_eq!(handle.unwrap(), "done");
/// ```
///
/// While an executor is being dropped with none running on this thread (at
/// the end of the thread, say, when the tasks left in `block_on`'s executor
/// go), there is nowhere to run a new task: a destructor that spawns gets a
/// handle whose task is already cancelled, and the future is dropped at
/// once. (Dropped inside a task of a running executor, it spawns there.)
///
/// # Panics
///
/// Outside [`block_on`] (or [`LocalExecutor::run`]), where no executor
/// would ever run the task.
#[track_caller]
pub fn spawn<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    spawn_named(future, None, Location::caller())
}

/// [`spawn`] with a name and the caller's location (for task dumps).
#[inline]
pub(crate) fn spawn_named<F: Future + 'static>(
    future: F,
    name: Option<Rc<str>>,
    location: &'static Location<'static>,
) -> JoinHandle<F::Output> {
    match CURRENT.try_with(|current| current.borrow().clone()) {
        Ok(Some(inner)) => inner.spawn(future, name, location),
        // This thread's executor state is gone (thread exit), or an
        // executor is being dropped: the task could never run.
        Err(_) => refused(future),
        Ok(None) if TEARING_DOWN.with(Cell::get) > 0 => refused(future),
        Ok(None) => panic!(
            "tarn::spawn called outside of tarn::block_on: no executor runs on this thread; \
             wrap your code in tarn::block_on(async {{ ... }}) or use LocalExecutor::spawn"
        ),
    }
}

/// A task that no executor will run: its future is dropped at once (as
/// its own code, so a panic there is its own) and its handle yields a
/// cancelled [`JoinError`](crate::JoinError).
fn refused<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    let shared = Shared::new(0, Parker::new().unparker(), true);
    let (table, queued, handle) = task::allocate(future, 0, 0, shared);
    table.cancel(handle.on_executor());
    drop((table, queued));
    JoinHandle::new(handle, std::rc::Weak::new())
}

thread_local! {
    static EXECUTOR: LocalExecutor = LocalExecutor::new();
}

/// Runs `f` with the executor running on this thread, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(&Inner) -> R) -> Option<R> {
    let inner = CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()??;
    Some(f(&inner))
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

/// Runs `f`, a task's own code (a poll of its future, or the drop of its
/// future or output), catching a panic: the panic belongs to that task.
/// It is reported once: by the process's panic hook, or, under an executor
/// with a panic handler, by that handler alone.
#[inline]
pub(crate) fn catch_task_panic<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    if !HANDLED.with(Cell::get) {
        return catch_unwind(AssertUnwindSafe(f));
    }
    let quiet_before = QUIET_PANICS.with(|q| q.replace(true));
    let res = catch_unwind(AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(quiet_before));
    if let Err(payload) = &res {
        handle_panic(payload.as_ref());
    }
    res
}

/// Gives a task's panic to the panic handler in effect.
#[cold]
fn handle_panic(payload: &(dyn Any + Send)) {
    if let Some(handler) = HANDLER.try_with(|h| h.borrow().clone()).ok().flatten() {
        // A handler that panics itself is reported by the hook, and ignored.
        let _ = catch_unwind(AssertUnwindSafe(|| handler(payload)));
    }
}

/// Installs (once) a process panic hook that defers to the previous one
/// except while a task with its own panic handler is being polled.
fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_with`: a panic during thread exit finds no flag.
            if !QUIET_PANICS.try_with(Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
}

/// loom models of the executor's own side of a wake from another thread:
/// the real `run` loop (`Inner::next`'s look at the remote queue, the
/// parker's `park`, the main future's scheduled flag) against a thread that
/// wakes tasks, or the future passed to `run`, while the executor looks at
/// its queues or sleeps. A lost wakeup leaves the executor parked for good:
/// a deadlock loom reports. Run by `bash .ci/loom.sh`.
#[cfg(all(test, loom))]
mod model {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use loom::sync::{Arc, Mutex};
    use loom::thread::{self, JoinHandle};

    use super::LocalExecutor;

    /// Futures that another thread makes ready and wakes, one after the
    /// other, once each has been polled (and is `Pending`).
    struct Group {
        size: usize,
        ready: AtomicBool,
        wakers: Mutex<Vec<Waker>>,
        waker_thread: Mutex<Option<JoinHandle<()>>>,
    }

    impl Group {
        fn new(size: usize) -> Arc<Group> {
            Arc::new(Group {
                size,
                ready: AtomicBool::new(false),
                wakers: Mutex::new(Vec::new()),
                waker_thread: Mutex::new(None),
            })
        }

        /// A future of the group.
        fn member(group: &Arc<Group>) -> Member {
            Member {
                group: Arc::clone(group),
                polled: false,
            }
        }

        /// Waits for the waking thread.
        fn join(&self) {
            let thread = self.waker_thread.lock().unwrap().take();
            thread.expect("every member was polled").join().unwrap();
        }
    }

    struct Member {
        group: Arc<Group>,
        polled: bool,
    }

    impl Future for Member {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let group = Arc::clone(&self.group);
            if group.ready.load(SeqCst) {
                return Poll::Ready(());
            }
            if !std::mem::replace(&mut self.polled, true) {
                let mut wakers = group.wakers.lock().unwrap();
                wakers.push(cx.waker().clone());
                if wakers.len() == group.size {
                    let wakers = std::mem::take(&mut *wakers);
                    let ready = Arc::clone(&group);
                    *group.waker_thread.lock().unwrap() = Some(thread::spawn(move || {
                        ready.ready.store(true, SeqCst);
                        for waker in wakers {
                            waker.wake();
                        }
                    }));
                }
            }
            Poll::Pending
        }
    }

    /// Two spawned tasks woken from another thread, one after the other,
    /// while the executor runs its queue or parks: the second wake may
    /// come while the executor takes in the first, and `next` still finds
    /// it; both tasks complete, and so does `run` (woken locally by their
    /// join handles).
    #[test]
    fn tasks_woken_from_another_thread_run() {
        loom::model(|| {
            let executor = LocalExecutor::new();
            let group = Group::new(2);
            let first = executor.spawn(Group::member(&group));
            let second = executor.spawn(Group::member(&group));
            executor.run(async {
                first.await.expect("the first task completed");
                second.await.expect("the second task completed");
            });
            group.join();
            assert!(executor.is_empty());
        });
    }

    /// The future passed to `run` woken from another thread, maybe during
    /// its poll: its scheduled flag and the remote queue bring it back.
    #[test]
    fn the_main_future_woken_from_another_thread_completes() {
        loom::model(|| {
            let executor = LocalExecutor::new();
            let group = Group::new(1);
            executor.run(Group::member(&group));
            group.join();
        });
    }
}

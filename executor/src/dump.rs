//! Tasks people can see: ids, names, where they were spawned, and a dump
//! of every live task with what it is doing.
//!
//! What a task carries for this costs nothing until asked for: its id and
//! two counters in its header (16 bytes), its name and spawn location in
//! the executor's task table (written once, at spawn). A poll adds one to
//! a counter and stores the executor's coarse clock (read when the
//! executor wakes and every few dozen polls, never per poll).

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::rc::Rc;
use std::time::Duration;

use crate::JoinHandle;

/// A task's id: the executor's number and the task's number within it,
/// printed as `executor.task` (`3.17`). Unique in the process for as long
/// as it runs (ids are never reused).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TaskId {
    /// The executor's number.
    pub executor: usize,
    /// The task's number within its executor, from 1.
    pub task: u64,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.executor, self.task)
    }
}

/// What a task is doing when the dump is taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TaskState {
    /// Its future is being polled (it is the task that takes the dump, or
    /// one that called it).
    Running,
    /// It was woken and waits in the run queue.
    Scheduled,
    /// It waits to be woken.
    Idle,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Scheduled => "scheduled",
            TaskState::Idle => "idle",
        })
    }
}

/// What it is waiting for, where the reactor holds its waker.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Waiting {
    /// An fd to become readable.
    Read(std::os::fd::RawFd),
    /// An fd to become writable.
    Write(std::os::fd::RawFd),
    /// A timer, due after this long (zero: due now).
    Timer(Duration),
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::Read(fd) => write!(f, "read fd {fd}"),
            Waiting::Write(fd) => write!(f, "write fd {fd}"),
            Waiting::Timer(left) => write!(f, "timer in {left:.1?}"),
        }
    }
}

/// One live task, as [`tasks`] saw it.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// Its id.
    pub id: TaskId,
    /// The name it was spawned with ([`TaskBuilder::name`]), if any.
    pub name: Option<String>,
    /// Where it was spawned.
    pub location: &'static Location<'static>,
    /// What it is doing now.
    pub state: TaskState,
    /// How many times it has been polled (saturating at `u32::MAX`).
    pub polls: u32,
    /// How long ago its last poll started (to within the executor's
    /// coarse clock, a few milliseconds); `None` if never polled.
    pub since_last_poll: Option<Duration>,
    /// What it waits for, where its waker is held by this thread's reactor
    /// or the shared one: fds and directions, timers. Empty for a task
    /// woken by something else (a channel, another task).
    pub waiting: Vec<Waiting>,
}

impl fmt::Display for TaskInfo {
    /// One line: `task 1.4 "conn" (src/main.rs:20:9): idle, 3 polls, last
    /// 1.2s ago; waiting: read fd 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(
            f,
            " ({}): {}, {} polls",
            self.location, self.state, self.polls
        )?;
        match self.since_last_poll {
            Some(ago) => write!(f, ", last {ago:.1?} ago")?,
            None => f.write_str(", never polled")?,
        }
        if !self.waiting.is_empty() {
            f.write_str("; waiting:")?;
            for (i, w) in self.waiting.iter().enumerate() {
                write!(f, "{}{w}", if i == 0 { " " } else { ", " })?;
            }
        }
        Ok(())
    }
}

/// Every live task of the executor running on this thread (spawned and
/// not finished), in spawn order; empty outside one. The future given to
/// `block_on` is not a task and is not listed.
///
/// ```
/// use std::time::Duration;
///
/// tarn_executor::block_on(async {
///     let sleeper = tarn_executor::TaskBuilder::new()
///         .name("sleeper")
///         .spawn(tarn_reactor::Timer::after(Duration::from_secs(60)));
///     tarn_executor::yield_now().await; // let it start and wait
///     let dump = tarn_executor::tasks();
///     assert_eq!(dump.len(), 1);
///     assert_eq!(dump[0].name.as_deref(), Some("sleeper"));
///     assert_eq!(dump[0].state, tarn_executor::TaskState::Idle);
///     assert!(matches!(dump[0].waiting[..], [tarn_executor::Waiting::Timer(_)]));
///     println!("{}", dump[0]); // task 1.1 "sleeper" (src/main.rs:6:10): idle, 1 polls, ...
///     sleeper.abort();
/// });
/// ```
pub fn tasks() -> Vec<TaskInfo> {
    crate::executor::with_current(|inner| inner.tasks()).unwrap_or_default()
}

/// The id of the task being polled on this thread, if any (`None` in the
/// future given to `block_on`, which is not a task, and outside any).
pub fn try_id() -> Option<TaskId> {
    crate::executor::with_current(|inner| inner.running_task()).flatten()
}

/// Spawns a task with a name (and, as every spawn, the caller's location),
/// for [`tasks`] to show.
///
/// ```
/// tarn_executor::block_on(async {
///     let task = tarn_executor::TaskBuilder::new().name("worker").spawn(async {
///         tarn_executor::try_id().unwrap()
///     });
///     let id = task.await.unwrap();
///     assert!(id.task >= 1);
/// });
/// ```
#[derive(Debug, Default, Clone)]
pub struct TaskBuilder {
    name: Option<Rc<str>>,
}

impl TaskBuilder {
    /// A builder of unnamed tasks.
    pub fn new() -> TaskBuilder {
        TaskBuilder::default()
    }

    /// Names the tasks this builder spawns.
    pub fn name(mut self, name: impl Into<String>) -> TaskBuilder {
        self.name = Some(Rc::from(name.into()));
        self
    }

    /// Spawns a task on the executor running on this thread, as
    /// [`spawn`](crate::spawn) does.
    ///
    /// # Panics
    ///
    /// As [`spawn`](crate::spawn): outside an executor.
    #[track_caller]
    pub fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        crate::executor::spawn_named(future, self.name.clone(), Location::caller())
    }

    /// Spawns a task on this thread's executor as spawned at `location`.
    pub(crate) fn spawn_at<F: Future + 'static>(
        &self,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output> {
        crate::executor::spawn_named(future, self.name.clone(), location)
    }

    /// Spawns a task on `executor`.
    #[track_caller]
    pub fn spawn_on<F: Future + 'static>(
        &self,
        executor: &crate::LocalExecutor,
        future: F,
    ) -> JoinHandle<F::Output> {
        executor.spawn_named(future, self.name.clone(), Location::caller())
    }
}

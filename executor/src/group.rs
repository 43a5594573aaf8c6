//! A group that owns the tasks spawned into it: it hands back their
//! outputs as they finish, aborts what is left when it is dropped, and
//! shuts down gracefully (wait up to a deadline, then abort).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use slab::Slab;

use crate::{JoinError, JoinHandle, TaskBuilder, TaskId};

/// Tasks owned by a group, on the executor of the thread that spawns them.
///
/// - [`join_next`](Self::join_next) yields each task's outcome as it
///   finishes (completion order); [`join_all`](Self::join_all) waits for
///   them all.
/// - Dropping the group aborts every task still in it: nothing it spawned
///   outlives it.
/// - [`shutdown`](Self::shutdown) waits up to a grace period for the
///   tasks to finish, then aborts the rest: a server's graceful stop.
///
/// ```
/// use std::time::Duration;
/// use tarn_executor::TaskGroup;
///
/// tarn_executor::block_on(async {
///     let group = TaskGroup::new();
///     for i in 0..3 {
///         group.spawn(async move { i * 10 });
///     }
///     let mut outputs: Vec<i32> = group.join_all().await.into_iter().map(Result::unwrap).collect();
///     outputs.sort();
///     assert_eq!(outputs, [0, 10, 20]);
///
///     // A task that never ends is aborted once the grace period is over.
///     group.spawn(std::future::pending::<i32>());
///     let stopped = group.shutdown(Duration::from_millis(20)).await;
///     assert_eq!((stopped.finished, stopped.aborted), (0, 1));
/// });
/// ```
pub struct TaskGroup<T: 'static> {
    inner: Rc<Inner<T>>,
}

struct Inner<T> {
    /// The tasks not yet joined, by key (`None` only while `abort_all`
    /// holds the handle, outside the borrow).
    tasks: RefCell<Slab<Option<JoinHandle<T>>>>,
    /// Keys of tasks whose futures are gone (finished, panicked or
    /// aborted), in that order, not yet joined.
    ended: RefCell<VecDeque<usize>>,
    /// The waker of a `join_next` waiting for one to end.
    waiter: RefCell<Option<Waker>>,
}

/// What [`TaskGroup::shutdown`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stopped {
    /// Tasks that ended within the grace period (with an output or a
    /// panic).
    pub finished: usize,
    /// Tasks still running at its end, aborted.
    pub aborted: usize,
}

/// Lives in a group task's future: when the future is dropped (it
/// finished, panicked or was aborted), the group learns it.
struct Ended<T> {
    group: Weak<Inner<T>>,
    key: usize,
}

impl<T> Drop for Ended<T> {
    fn drop(&mut self) {
        let Some(group) = self.group.upgrade() else {
            return;
        };
        group.ended.borrow_mut().push_back(self.key);
        let waiter = group.waiter.borrow_mut().take();
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

impl<T: 'static> TaskGroup<T> {
    /// An empty group.
    pub fn new() -> TaskGroup<T> {
        TaskGroup {
            inner: Rc::new(Inner {
                tasks: RefCell::new(Slab::new()),
                ended: RefCell::new(VecDeque::new()),
                waiter: RefCell::new(None),
            }),
        }
    }

    /// Spawns `future` into the group, on the executor running on this
    /// thread; returns the task's id.
    ///
    /// # Panics
    ///
    /// As [`spawn`](crate::spawn): outside an executor.
    #[track_caller]
    pub fn spawn<F: Future<Output = T> + 'static>(&self, future: F) -> TaskId {
        self.spawn_with(&TaskBuilder::new(), future)
    }

    /// Like [`spawn`](Self::spawn), named by `builder`.
    #[track_caller]
    pub fn spawn_with<F: Future<Output = T> + 'static>(
        &self,
        builder: &TaskBuilder,
        future: F,
    ) -> TaskId {
        let location = Location::caller();
        let mut tasks = self.inner.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let ended = Ended {
            group: Rc::downgrade(&self.inner),
            key: entry.key(),
        };
        let handle = builder.spawn_at(
            async move {
                let _ended = ended;
                future.await
            },
            location,
        );
        let id = handle.id();
        entry.insert(Some(handle));
        id
    }

    /// How many tasks are in the group (running, or ended and not joined).
    pub fn len(&self) -> usize {
        self.inner.tasks.borrow().len()
    }

    /// Whether the group holds no task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The outcome of the next task to end, in the order they end; `None`
    /// once the group is empty.
    ///
    /// Cancel-safe: a task's outcome is taken only when this returns it.
    pub async fn join_next(&self) -> Option<Result<T, JoinError>> {
        let handle = poll_fn(|cx| {
            if self.inner.tasks.borrow().is_empty() {
                return Poll::Ready(None);
            }
            loop {
                let Some(key) = self.inner.ended.borrow_mut().pop_front() else {
                    *self.inner.waiter.borrow_mut() = Some(cx.waker().clone());
                    return Poll::Pending;
                };
                if let Some(Some(handle)) = self.inner.tasks.borrow_mut().try_remove(key) {
                    return Poll::Ready(Some(handle));
                }
            }
        })
        .await?;
        // Its future is gone, so its outcome is there (or comes with the
        // rest of the poll that dropped it).
        Some(handle.await)
    }

    /// The outcome of a task that has ended, if one has, without waiting:
    /// what a long-running owner (an accept loop) calls now and then, so
    /// that the tasks that ended do not pile up in the group.
    ///
    /// ```
    /// tarn_executor::block_on(async {
    ///     let group = tarn_executor::TaskGroup::new();
    ///     group.spawn(async { 1 });
    ///     assert!(group.try_join_next().is_none()); // not run yet
    ///     tarn_executor::yield_now().await;
    ///     assert_eq!(group.try_join_next().unwrap().unwrap(), 1);
    ///     assert!(group.is_empty());
    /// });
    /// ```
    pub fn try_join_next(&self) -> Option<Result<T, JoinError>> {
        loop {
            let key = self.inner.ended.borrow_mut().pop_front()?;
            let mut tasks = self.inner.tasks.borrow_mut();
            let outcome = match tasks.get_mut(key) {
                Some(Some(handle)) => handle.take_outcome(),
                _ => continue,
            };
            match outcome {
                Some(outcome) => {
                    tasks.remove(key);
                    return Some(outcome);
                }
                // Its future is gone but its outcome not yet recorded (this
                // runs inside the future's own destructor): later.
                None => {
                    drop(tasks);
                    self.inner.ended.borrow_mut().push_front(key);
                    return None;
                }
            }
        }
    }

    /// Waits for every task in the group; their outcomes, in the order
    /// they ended.
    pub async fn join_all(&self) -> Vec<Result<T, JoinError>> {
        let mut outcomes = Vec::with_capacity(self.len());
        while let Some(outcome) = self.join_next().await {
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Aborts every task in the group (each is dropped now, or right after
    /// its current poll); their outcomes, cancelled, are still joined.
    pub fn abort_all(&self) {
        let keys: Vec<usize> = self
            .inner
            .tasks
            .borrow()
            .iter()
            .map(|(key, _)| key)
            .collect();
        for key in keys {
            // The abort drops the task's future, whose destructor (the
            // task's code) may use the group: no borrow is held meanwhile.
            let handle = self
                .inner
                .tasks
                .borrow_mut()
                .get_mut(key)
                .and_then(Option::take);
            if let Some(handle) = handle {
                handle.abort();
                if let Some(slot) = self.inner.tasks.borrow_mut().get_mut(key) {
                    *slot = Some(handle);
                }
            }
        }
    }

    /// Waits up to `grace` for every task to end, then aborts those still
    /// running and joins them; says how many ended and how many were
    /// aborted. Outcomes are dropped (use [`join_next`](Self::join_next)
    /// for them).
    pub async fn shutdown(&self, grace: Duration) -> Stopped {
        let mut stopped = Stopped::default();
        let waited = tarn_reactor::timeout(grace, async {
            while let Some(outcome) = self.join_next().await {
                drop(outcome);
                stopped.finished += 1;
            }
        })
        .await;
        if waited.is_err() {
            self.abort_all();
            while let Some(outcome) = self.join_next().await {
                match outcome {
                    Err(e) if e.is_cancelled() => stopped.aborted += 1,
                    _ => stopped.finished += 1,
                }
            }
        }
        stopped
    }
}

impl<T: 'static> Default for TaskGroup<T> {
    fn default() -> TaskGroup<T> {
        TaskGroup::new()
    }
}

impl<T: 'static> Drop for TaskGroup<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T: 'static> fmt::Debug for TaskGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("tasks", &self.len())
            .finish()
    }
}

//! [`JoinHandle`] and [`JoinError`]: a spawned task's result, and how it ends
//! when it does not produce one.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Weak;
use std::task::{Context, Poll, Waker};

use crate::executor::Inner;
use crate::task::Handle;

/// Why a task produced no output.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Panicked(Box<dyn Any + Send + 'static>),
    Cancelled,
}

impl JoinError {
    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// Whether the task was cancelled with [`JoinHandle::abort`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The panic payload, to re-raise with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the task was cancelled rather than panicking.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.repr {
            Repr::Panicked(payload) => payload,
            Repr::Cancelled => {
                panic!("JoinError::into_panic: the task was cancelled, not panicked")
            }
        }
    }

    /// The panic message, when the payload is a string.
    pub fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panicked(payload) => payload_message(payload.as_ref()),
            Repr::Cancelled => None,
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panicked(payload),
        }
    }

    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }
}

/// The message of a panic payload made by `panic!` with a string.
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panicked(_) => f
                .debug_tuple("Panicked")
                .field(&self.panic_message().unwrap_or("<non-string payload>"))
                .finish(),
            Repr::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "task panicked: {msg}"),
                None => f.write_str("task panicked"),
            },
            Repr::Cancelled => f.write_str("task was cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

/// A task's join slot: what its handle will yield.
pub(crate) enum Outcome<T> {
    /// Not finished; the waker of whoever awaits the handle.
    Running(Option<Waker>),
    Done(Result<T, JoinError>),
    /// Yielded by the handle already (or the handle is gone).
    Taken,
}

impl<T> Outcome<T> {
    /// The task's result, leaving `Taken`, if it is done; else nothing changes.
    fn take_done(&mut self) -> Option<Result<T, JoinError>> {
        match std::mem::replace(self, Outcome::Taken) {
            Outcome::Done(result) => Some(result),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// A handle to a spawned task: await it for the task's output.
///
/// Dropping the handle detaches the task, which keeps running (a server's
/// `spawn(handle(conn))` needs nothing more). [`abort`](Self::abort) cancels it.
/// Awaiting it yields `Ok(output)`, or a [`JoinError`] if the task panicked
/// or was aborted.
///
/// ```
/// use std::time::Duration;
/// use tarn_executor::{block_on, spawn};
///
/// block_on(async {
///     let answer = spawn(async { 6 * 7 });
///     assert_eq!(answer.await.unwrap(), 42);
///
///     let forever = spawn(tarn_reactor::Timer::after(Duration::from_secs(3600)));
///     forever.abort();
///     assert!(forever.await.unwrap_err().is_cancelled());
///
///     let failing = spawn(async { panic!("boom") });
///     let err = failing.await.unwrap_err();
///     assert_eq!(err.panic_message(), Some("boom"));
/// });
/// ```
#[must_use = "dropping a JoinHandle detaches the task; bind it to `_task` or call .detach() to make that explicit"]
pub struct JoinHandle<T> {
    task: Handle<T>,
    executor: Weak<Inner>,
}

// The output lives in the task's heap allocation, never in the handle:
// moving a handle moves no `T`, whatever `T` is.
impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// The handle of a task just spawned on `executor`.
    pub(crate) fn new(task: Handle<T>, executor: Weak<Inner>) -> JoinHandle<T> {
        JoinHandle { task, executor }
    }

    /// Cancels the task: its future is dropped (at once, unless it is the
    /// task running right now, in which case when its poll returns), and
    /// awaiting the handle yields a cancelled [`JoinError`]. No effect on a
    /// finished task.
    pub fn abort(&self) {
        if self.is_finished() {
            return;
        }
        if self.task.cancel() {
            if let Some(executor) = self.executor.upgrade() {
                executor.forget(self.task.key(), self.task.as_ptr());
            }
        }
        let waker = self.task.with_outcome(|outcome| match outcome {
            Outcome::Running(waker) => {
                let waker = waker.take();
                *outcome = Outcome::Done(Err(JoinError::cancelled()));
                waker
            }
            _ => None,
        });
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the task has finished (with output, a panic, or cancellation).
    pub fn is_finished(&self) -> bool {
        self.task
            .with_outcome(|outcome| !matches!(outcome, Outcome::Running(_)))
    }

    /// The task's id, as [`tasks`](crate::tasks) and [`try_id`](crate::try_id)
    /// show it.
    pub fn id(&self) -> crate::TaskId {
        let (executor, task) = self.task.id();
        crate::TaskId { executor, task }
    }

    /// Lets the task run on without a handle (the same as dropping it).
    pub fn detach(self) {}

    /// The task's outcome if it has one, without waiting (and without a
    /// waker): for a `TaskGroup` reaping tasks it knows have ended.
    pub(crate) fn take_outcome(&mut self) -> Option<Result<T, JoinError>> {
        self.task.with_outcome(Outcome::take_done)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.task.with_outcome(|outcome| match outcome {
            Outcome::Running(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Outcome::Done(_) => Poll::Ready(outcome.take_done().expect("the task is done")),
            Outcome::Taken => panic!("JoinHandle polled after it returned the task's result"),
        })
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

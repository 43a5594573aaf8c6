//! [`JoinHandle`] and [`JoinError`]: a spawned task's result, and how it ends
//! when it does not produce one.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use crate::executor::Inner;

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

/// Where a task's outcome meets its handle.
pub(crate) struct JoinState<T> {
    pub(crate) outcome: RefCell<Outcome<T>>,
}

pub(crate) enum Outcome<T> {
    Running(Option<Waker>),
    Done(Result<T, JoinError>),
    Taken,
}

impl<T> JoinState<T> {
    pub(crate) fn new() -> Rc<JoinState<T>> {
        Rc::new(JoinState {
            outcome: RefCell::new(Outcome::Running(None)),
        })
    }

    /// Records the outcome (the first one wins) and wakes the handle.
    pub(crate) fn finish(&self, result: Result<T, JoinError>) {
        let previous = {
            let mut outcome = self.outcome.borrow_mut();
            if !matches!(*outcome, Outcome::Running(_)) {
                return;
            }
            std::mem::replace(&mut *outcome, Outcome::Done(result))
        };
        if let Outcome::Running(Some(waker)) = previous {
            waker.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// The future an executor runs for a spawned task: polls the user's
    /// future inside `catch_unwind` and hands the outcome to the handle.
    pub(crate) struct TaskFuture<F: Future> {
        #[pin]
        future: F,
        state: Rc<JoinState<F::Output>>,
    }

    impl<F: Future> PinnedDrop for TaskFuture<F> {
        // Dropped before finishing (aborted, or its executor dropped): the
        // handle learns it was cancelled. A no-op after the task finished.
        fn drop(this: Pin<&mut Self>) {
            this.project().state.finish(Err(JoinError::cancelled()));
        }
    }
}

impl<F: Future> TaskFuture<F> {
    pub(crate) fn new(future: F, state: Rc<JoinState<F::Output>>) -> Self {
        TaskFuture { future, state }
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let future = this.future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                this.state.finish(Ok(output));
                Poll::Ready(())
            }
            Err(payload) => {
                crate::executor::report_panic(payload.as_ref());
                this.state.finish(Err(JoinError::panicked(payload)));
                Poll::Ready(())
            }
        }
    }
}

/// A handle to a spawned task: await it for the task's output.
///
/// Dropping the handle detaches the task, which keeps running (a server's
/// `spawn(handle(conn))` needs nothing more). [`abort`](Self::abort) cancels it.
#[must_use = "dropping a JoinHandle detaches the task; bind it to `_task` or call .detach() to make that explicit"]
pub struct JoinHandle<T> {
    pub(crate) state: Rc<JoinState<T>>,
    pub(crate) executor: Weak<Inner>,
    pub(crate) key: usize,
}

impl<T> JoinHandle<T> {
    /// Cancels the task: its future is dropped (at once, unless it is the
    /// task running right now, in which case when its poll returns), and
    /// awaiting the handle yields a cancelled [`JoinError`]. No effect on a
    /// finished task.
    pub fn abort(&self) {
        if !self.is_finished() {
            if let Some(executor) = self.executor.upgrade() {
                executor.cancel(self.key);
            }
            self.state.finish(Err(JoinError::cancelled()));
        }
    }

    /// Whether the task has finished (with output, a panic, or cancellation).
    pub fn is_finished(&self) -> bool {
        !matches!(*self.state.outcome.borrow(), Outcome::Running(_))
    }

    /// Lets the task run on without a handle (the same as dropping it).
    pub fn detach(self) {}
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut outcome = self.state.outcome.borrow_mut();
        match &mut *outcome {
            Outcome::Running(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Outcome::Done(_) => match std::mem::replace(&mut *outcome, Outcome::Taken) {
                Outcome::Done(result) => Poll::Ready(result),
                _ => unreachable!(),
            },
            Outcome::Taken => panic!("JoinHandle polled after it returned the task's result"),
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

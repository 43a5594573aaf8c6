//! The cooperative I/O budget: how many I/O operations a task may complete
//! in one poll before it must yield.
//!
//! Without it, a task whose reads never block (a peer that sends faster
//! than the task consumes) would never return `Pending`, and every other
//! task, timer and accept on its executor would wait until the data ran
//! out. An executor gives each poll a budget with [`with_budget`]; every
//! `Async` operation spends one unit, and once the budget is
//! spent the next operation wakes its task and returns `Pending`, sending
//! it to the back of the run queue. Outside `with_budget` (under an
//! executor that knows nothing of it) the budget is unlimited.

use std::cell::Cell;
use std::task::{Context, Poll};

/// I/O operations a task may complete per poll (tokio uses the same figure).
pub const BUDGET: u32 = 128;

thread_local! {
    /// What is left of the budget of the poll in progress; `None` outside
    /// [`with_budget`].
    static LEFT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Runs `poll` (one poll of a task) with a fresh budget of [`BUDGET`]
/// I/O operations. Executors call this around each task poll. Also returns
/// whether the budget ran out (the task was made to yield): after such a
/// busy task the executor should look at the reactor soon, since the I/O
/// and timers of the others are waiting.
pub fn with_budget<R>(poll: impl FnOnce() -> R) -> (R, bool) {
    /// Restores the enclosing budget, also when `poll` panics.
    struct Restore(Option<u32>);

    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = LEFT.try_with(|left| left.set(self.0));
        }
    }

    let restore = Restore(LEFT.with(|left| left.replace(Some(BUDGET))));
    let output = poll();
    let exhausted = LEFT.with(|left| left.get() == Some(0));
    drop(restore);
    (output, exhausted)
}

/// Before an I/O operation: spends one unit of the budget, or, once it is
/// spent, wakes the task (so it runs again after the others) and returns
/// `Pending`.
pub(crate) fn poll_proceed(cx: &Context<'_>) -> Poll<()> {
    LEFT.with(|left| match left.get() {
        None => Poll::Ready(()),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            left.set(Some(n - 1));
            Poll::Ready(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out_inside_with_budget_only() {
        let waker = futures::task::noop_waker();
        let cx = Context::from_waker(&waker);
        for _ in 0..10 * BUDGET {
            assert!(
                poll_proceed(&cx).is_ready(),
                "unlimited outside with_budget"
            );
        }
        let ((), exhausted) = with_budget(|| {
            for _ in 0..BUDGET {
                assert!(poll_proceed(&cx).is_ready());
            }
            assert!(
                poll_proceed(&cx).is_pending(),
                "spent after BUDGET operations"
            );
            let ((), inner) = with_budget(|| assert!(poll_proceed(&cx).is_ready()));
            assert!(!inner, "a nested poll starts afresh");
            assert!(
                poll_proceed(&cx).is_pending(),
                "the outer budget is restored"
            );
        });
        assert!(exhausted);
        assert!(poll_proceed(&cx).is_ready());
    }
}

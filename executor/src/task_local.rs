//! Task-local values: a value set for the span of a future, seen by the
//! code that future runs, whichever thread polls it.
//!
//! [`LocalKey::scope`] wraps a future: each time it is polled, its value is
//! put in the key's thread-local slot, and taken back out when the poll
//! returns (or unwinds). So the value follows the future, not the thread:
//! under a multi-threaded foreign executor it is there on whichever thread
//! runs the poll, and nowhere else. Scopes nest; an inner one hides the
//! outer one's value until it ends. This is tokio's `task_local!` model.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// Declares task-local keys: `static NAME: Type;`, each a [`LocalKey`].
///
/// ```
/// tarn_executor::task_local! {
///     /// The request being served.
///     static REQUEST: u64;
/// }
///
/// let seen = tarn_executor::block_on(REQUEST.scope(7, async {
///     tarn_executor::yield_now().await;
///     REQUEST.get()
/// }));
/// assert_eq!(seen, 7);
/// assert!(REQUEST.try_with(|_| ()).is_err()); // not in a scope here
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::LocalKey<$t> = {
            ::std::thread_local! {
                static __TARN_TASK_LOCAL: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            $crate::LocalKey::new(&__TARN_TASK_LOCAL)
        };
        $crate::task_local!($($rest)*);
    };
}

/// A task-local key, declared with [`task_local!`].
pub struct LocalKey<T: 'static> {
    slot: &'static std::thread::LocalKey<RefCell<Option<T>>>,
}

impl<T: 'static> LocalKey<T> {
    /// The key over `slot` (what [`task_local!`] expands to; not for use
    /// on its own).
    #[doc(hidden)]
    pub const fn new(slot: &'static std::thread::LocalKey<RefCell<Option<T>>>) -> LocalKey<T> {
        LocalKey { slot }
    }

    /// Runs `future` with this key set to `value` during each of its polls.
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> Scoped<T, F> {
        Scoped {
            key: self,
            value: Some(value),
            future: Some(future),
        }
    }

    /// Runs `f` with this key set to `value`.
    pub fn sync_scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        let mut value = Some(value);
        let _swapped = Swapped::new(self, &mut value);
        f()
    }

    /// Calls `f` with the value of the enclosing scope.
    ///
    /// # Panics
    ///
    /// Outside any scope of this key (use [`try_with`](Self::try_with)).
    #[track_caller]
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// Calls `f` with the value of the enclosing scope, or fails outside
    /// any scope of this key.
    ///
    /// # Errors
    ///
    /// [`AccessError`] outside a scope (or while the thread is exiting).
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, AccessError> {
        let mut f = Some(f);
        self.slot
            .try_with(|slot| {
                let slot = slot.borrow();
                slot.as_ref()
                    .map(|value| (f.take().expect("called once"))(value))
            })
            .ok()
            .flatten()
            .ok_or(AccessError(()))
    }
}

impl<T: Copy + 'static> LocalKey<T> {
    /// A copy of the value of the enclosing scope.
    ///
    /// # Panics
    ///
    /// Outside any scope of this key.
    #[track_caller]
    pub fn get(&'static self) -> T {
        self.with(|v| *v)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

/// Puts a value in a key's slot for as long as it lives, and back where
/// it came from when dropped (a poll that unwinds included).
struct Swapped<'a, T: 'static> {
    key: &'static LocalKey<T>,
    value: &'a mut Option<T>,
}

impl<'a, T: 'static> Swapped<'a, T> {
    fn new(key: &'static LocalKey<T>, value: &'a mut Option<T>) -> Swapped<'a, T> {
        key.slot
            .with(|slot| std::mem::swap(&mut *slot.borrow_mut(), value));
        Swapped { key, value }
    }
}

impl<T: 'static> Drop for Swapped<'_, T> {
    fn drop(&mut self) {
        // `try_with`: at thread exit the slot may be gone; the value then
        // stays with the future.
        let _ = self
            .key
            .slot
            .try_with(|slot| std::mem::swap(&mut *slot.borrow_mut(), self.value));
    }
}

pin_project! {
    /// The future of [`LocalKey::scope`].
    pub struct Scoped<T: 'static, F> {
        key: &'static LocalKey<T>,
        value: Option<T>,
        // `Option` so that the future is dropped inside the scope too.
        #[pin]
        future: Option<F>,
    }

    impl<T: 'static, F> PinnedDrop for Scoped<T, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.future.is_some() {
                // The future's destructor sees the value, as its polls did.
                let _swapped = Swapped::new(this.key, this.value);
                let mut future = this.future;
                future.set(None);
            }
        }
    }
}

impl<T: 'static, F: Future> Future for Scoped<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _swapped = Swapped::new(this.key, this.value);
        match this.future.as_pin_mut() {
            Some(future) => future.poll(cx),
            None => panic!("a task-local scope polled after it completed"),
        }
    }
}

impl<T: 'static, F> fmt::Debug for Scoped<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

/// The error of [`LocalKey::try_with`] outside a scope of its key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccessError(());

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessError")
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a task-local value was read outside any scope of its key")
    }
}

impl Error for AccessError {}

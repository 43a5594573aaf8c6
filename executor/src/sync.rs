//! What a task shares with other threads (its reference count and
//! scheduled flag, the executor's queue of wakes from elsewhere): std's
//! atomics, `Arc` and `Mutex`, or loom's under `cfg(loom)`, where
//! `.ci/loom.sh` model-checks the task's state machine over them (`mod
//! model` in task.rs). Statics and what needs std's own types (`Wake` takes
//! std's `Arc`) keep std's.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicUsize},
    Arc, Mutex,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicUsize},
    Arc, Mutex,
};

/// Declares thread-locals: std's, or loom's under `cfg(loom)`, because a
/// model's threads share one OS thread and each must see its own (a wake
/// from a model's "other thread" would otherwise find the executor running
/// there and take the local path).
macro_rules! thread_locals {
    ($($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;)*) => {
        #[cfg(not(loom))]
        std::thread_local! {
            $($(#[$attr])* static $name: $t = const { $init };)*
        }
        #[cfg(loom)]
        loom::thread_local! {
            $($(#[$attr])* static $name: $t = $init;)*
        }
    };
}
pub(crate) use thread_locals;

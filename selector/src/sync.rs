//! The synchronisation primitives of the selector's concurrent part (the
//! wakeup of [`Signal`](crate::sys::wakefd::Signal)): std's, or loom's
//! under `cfg(loom)`, where `.ci/loom.sh` model-checks the protocol built
//! on them.

#[cfg(loom)]
pub(crate) use loom::sync::{atomic, Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic;

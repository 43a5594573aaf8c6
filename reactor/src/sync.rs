//! The synchronisation primitives of the reactor's concurrent protocols
//! (a source's readiness words and lock; the sources table; the driver
//! lock, its waiters, the driver count and the parker; the fallback
//! thread's idle wait): std's, or loom's under `cfg(loom)`, where
//! `.ci/loom.sh` model-checks the protocols built on them. The rest of the
//! reactor (its timers, registries, statics and `Arc`s, which need `Weak`
//! and `const` constructors loom lacks) keeps std's.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};

/// Locks `mutex`, carrying on past a poisoning panic (the state these
/// locks guard stays consistent across one).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

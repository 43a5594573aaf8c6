//! The synchronisation primitives of a source's readiness protocol (its
//! readiness words and its lock): std's, or loom's under `cfg(loom)`,
//! where `.ci/loom.sh` model-checks the protocol built on them. The rest
//! of the reactor (its registries, statics and `Arc`s, which need `Weak`
//! and `const` constructors loom lacks) keeps std's.

#[cfg(loom)]
pub(crate) use loom::sync::{atomic::AtomicU64, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{atomic::AtomicU64, Mutex, MutexGuard};

//! What tarn-net's integration tests share that needs tarn itself: a
//! bounded `block_on`. Everything else (re-runs on other backends,
//! isolated tests, temporary socket paths, checksums) comes from
//! `tarn-test-support`.
//!
//! Each test binary compiles its own copy of this module and uses only part
//! of it, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::time::Duration;

use tarn_test_support::backend_name;

/// How long any one test's body may run before it counts as hung.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `future` on tarn's executor, failing the test if it takes longer
/// than [`PATIENCE`] (a hang fails instead of hanging the suite).
pub fn block_on_bounded<F: Future>(future: F) -> F::Output {
    tarn_executor::block_on(tarn_reactor::timeout(PATIENCE, future))
        .unwrap_or_else(|e| panic!("test hung: {e} (TARN_SELECTOR={})", backend_name()))
}

/// Runs `body` with [`block_on_bounded`], failing the test if it errs.
pub fn run<F: Future<Output = io::Result<()>>>(body: F) {
    if let Err(e) = block_on_bounded(body) {
        panic!("test failed: {e} ({:?})", e.kind());
    }
}

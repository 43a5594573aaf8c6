//! What the executor's integration tests share that needs tarn itself;
//! everything else (re-runs on other backends, isolated tests, watchdogs,
//! sizes) comes from `tarn-test-support`.
//!
//! Each test binary compiles its own copy of this module.

use std::future::Future;

use tarn_test_support::PATIENCE;

/// Runs `future` with `block_on`, failing the test if it takes longer than
/// [`PATIENCE`]: a hang becomes a failure.
pub fn run<F: Future>(future: F) -> F::Output {
    tarn_executor::block_on(async {
        tarn_reactor::timeout(PATIENCE, future)
            .await
            .unwrap_or_else(|_| panic!("test still running after {PATIENCE:?}: hung"))
    })
}

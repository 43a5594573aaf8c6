//! When no pool thread can start (the process is out of threads or of
//! address space for their stacks), `try_unblock` says so with an error,
//! and the next call, once threads can start again, works.
//!
//! Its own binary: it lowers the process's address-space limit.

use tarn_test_support::without_new_threads;

#[test]
fn try_unblock_fails_while_no_thread_can_start_then_recovers() {
    let (res, threads) = without_new_threads(|| {
        let res = tarn_blocking::try_unblock(|| 42);
        (res, tarn_blocking::threads())
    });

    let err = res.expect_err("a job was accepted with no thread to run it");
    assert!(
        err.to_string()
            .contains("cannot start a blocking-pool thread"),
        "{err}"
    );
    assert_ne!(
        err.kind(),
        std::io::ErrorKind::WouldBlock,
        "an async operation must not return WouldBlock"
    );
    assert_eq!(threads, 0);
    // Threads can start again: the next job runs.
    let answer = tarn_executor::block_on(tarn_blocking::try_unblock(|| 42).unwrap());
    assert_eq!(answer, 42);
}

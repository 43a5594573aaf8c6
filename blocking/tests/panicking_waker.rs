//! A waker that panics when the pool wakes it (a foreign executor's bug)
//! does not cost the pool a thread: before, each such panic ended a pool
//! thread that the pool went on counting, and after `MAX_THREADS` of them
//! every job waited forever.
//!
//! Its own binary: it counts the pool's threads.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tarn_blocking::{threads, try_unblock, MAX_THREADS};
use tarn_test_support::{eventually, threads_named};

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics in wake()");
    }
}

#[test]
fn a_panicking_waker_leaves_the_pool_whole() {
    let waker = Waker::from(Arc::new(Panics));
    for _ in 0..MAX_THREADS + 1 {
        let mut job =
            Box::pin(try_unblock(|| std::thread::sleep(Duration::from_millis(1))).unwrap());
        assert!(job
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        // The job finishes and wakes the panicking waker.
        assert!(eventually(Duration::from_secs(5), || threads_named(
            "tarn-unblock"
        ) > 0));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        threads(),
        threads_named("tarn-unblock"),
        "the pool counts threads that are gone"
    );
    let answer = tarn_executor::block_on(async {
        tarn_reactor::timeout(Duration::from_secs(5), try_unblock(|| 42).unwrap()).await
    });
    assert_eq!(answer.expect("a job after the panics never ran"), 42);
}

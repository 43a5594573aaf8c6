//! The blocking pool: results and panics come back to the awaiting task,
//! the pool grows on demand up to its bound and shrinks when idle.
//!
//! Its own binary, so that no other test's jobs change the thread count.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tarn_blocking::{threads, unblock, IDLE_TIMEOUT, MAX_THREADS};
use tarn_executor::{block_on, spawn};

#[test]
fn unblock_pool_behaviour() {
    // Results come back; the executor thread is not the one that ran the job.
    let here = thread::current().id();
    let there = block_on(unblock(|| thread::current().id()));
    assert_ne!(here, there);

    // A panic is re-raised where the future is awaited.
    let err =
        std::panic::catch_unwind(|| block_on(unblock(|| panic!("blocking boom")))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"blocking boom"));

    // Grows on demand: 8 jobs that can only finish together need 8 threads.
    let barrier = Arc::new(Barrier::new(8));
    let sum = block_on(async {
        let jobs: Vec<_> = (0..8)
            .map(|i| {
                let barrier = barrier.clone();
                spawn(unblock(move || {
                    barrier.wait();
                    i
                }))
            })
            .collect();
        let mut sum = 0;
        for job in jobs {
            sum += job.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 28);
    let grown = threads();
    assert!((8..=MAX_THREADS).contains(&grown), "{grown} threads");

    // Bounded: more jobs than MAX_THREADS still all complete, queued.
    let n = MAX_THREADS * 2;
    let done = block_on(async {
        let jobs: Vec<_> = (0..n)
            .map(|_| spawn(unblock(|| thread::sleep(Duration::from_millis(5)))))
            .collect();
        for job in &jobs {
            assert!(threads() <= MAX_THREADS);
            let _ = job;
        }
        let count = jobs.len();
        for job in jobs {
            job.await.unwrap();
        }
        count
    });
    assert_eq!(done, n);
    assert!(threads() <= MAX_THREADS);

    // Shrinks when idle.
    let deadline = Instant::now() + IDLE_TIMEOUT + Duration::from_secs(20);
    while threads() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} threads still alive",
            threads()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

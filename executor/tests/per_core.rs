//! `PerCore`: executor threads started in one call.

use std::rc::Rc;

use tarn_executor::{spawn, PerCore};

/// The name of the calling thread.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn each_thread_runs_its_own_future_and_results_come_back_in_order() {
    let executors = PerCore::new()
        .threads(3)
        .name("worker")
        .spawn(|index| async move {
            // A task that is not Send, on this thread's own executor.
            let local = Rc::new(index);
            let doubled = spawn(async move { *local * 2 }).await.unwrap();
            (doubled, thread_name())
        })
        .unwrap();
    assert_eq!(executors.len(), 3);
    let results: Vec<_> = executors.join().into_iter().map(Result::unwrap).collect();
    let expected: Vec<_> = (0..3).map(|i| (i * 2, format!("worker-{i}"))).collect();
    assert_eq!(results, expected);
}

#[test]
fn a_panic_ends_its_own_thread_only() {
    let executors = PerCore::new()
        .threads(2)
        .spawn(|index| async move {
            assert_ne!(index, 1, "thread 1 panics on purpose");
            index
        })
        .unwrap();
    let results = executors.join();
    assert_eq!(*results[0].as_ref().unwrap(), 0);
    assert!(results[1].is_err());
}

#[test]
fn zero_threads_is_an_error_that_says_so() {
    let e = PerCore::new().threads(0).spawn(|_| async {}).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("at least one"), "{e}");
}

/// The CPUs the calling thread may run on.
fn my_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array; zeros are the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(rc, 0);
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

#[test]
fn pinned_threads_run_on_one_allowed_cpu_each() {
    let allowed = my_cpus();
    let executors = PerCore::new()
        .threads(allowed.len() + 1)
        .pin(true)
        .spawn(|_| async { my_cpus() })
        .unwrap();
    let pinned: Vec<Vec<usize>> = executors.join().into_iter().map(Result::unwrap).collect();
    for (index, cpus) in pinned.iter().enumerate() {
        // Wrapping around when there are more threads than CPUs.
        assert_eq!(cpus, &[allowed[index % allowed.len()]], "thread {index}");
    }
}

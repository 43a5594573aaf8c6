//! When no pool thread can start (the process is out of threads or of
//! address space for their stacks), `try_unblock` says so with an error,
//! and the next call, once threads can start again, works.
//!
//! Its own binary: it lowers the process's address-space limit.

use std::io;

/// The soft and hard `RLIMIT_AS`.
fn address_space_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) }, 0);
    limit
}

fn set_address_space_limit(limit: libc::rlimit) {
    // SAFETY: setrlimit reads the struct it is given.
    let res = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    assert_eq!(res, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// This process's virtual size in bytes.
fn virtual_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn try_unblock_fails_while_no_thread_can_start_then_recovers() {
    let before = address_space_limit();
    // 1 MiB of room: less than a thread's stack, so no thread can start.
    set_address_space_limit(libc::rlimit {
        rlim_cur: virtual_size() + (1 << 20),
        rlim_max: before.rlim_max,
    });
    let res = tarn_blocking::try_unblock(|| 42);
    let threads = tarn_blocking::threads();
    set_address_space_limit(before);

    let err = res.expect_err("a job was accepted with no thread to run it");
    assert!(
        err.to_string()
            .contains("cannot start a blocking-pool thread"),
        "{err}"
    );
    assert_eq!(threads, 0);
    // Threads can start again: the next job runs.
    let answer = tarn_executor::block_on(tarn_blocking::try_unblock(|| 42).unwrap());
    assert_eq!(answer, 42);
}

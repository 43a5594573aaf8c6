//! Helpers shared by the facade's integration tests: re-running a test
//! binary on the poll and select backends, a watchdog that turns a hang into
//! a failure, fd limits, echo servers and checksummed data.
//!
//! Each test binary compiles its own copy of this module and uses only part
//! of it, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};

/// Set in a child that re-runs a binary on another backend, so that the
/// child does not re-run itself in turn.
const BACKEND_CHILD: &str = "TARN_TEST_BACKEND_CHILD";
/// Set in a child that runs one test alone; holds that test's name.
const ISOLATED: &str = "TARN_TEST_ISOLATED";

/// How long any one test may run before it counts as hung.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Whether this process is a re-run on another backend.
pub fn is_backend_child() -> bool {
    std::env::var_os(BACKEND_CHILD).is_some()
}

/// The backend this process's reactor uses (from `TARN_SELECTOR`).
pub fn backend_name() -> String {
    std::env::var("TARN_SELECTOR").unwrap_or_else(|_| "epoll".into())
}

/// Re-runs this test binary with `TARN_SELECTOR=poll`, then `=select`, in a
/// child process each, skipping `this_test`; fails with the children's
/// output if either fails. A no-op inside such a child.
pub fn rerun_on_poll_and_select(this_test: &str, test_threads: usize) {
    let threads = test_threads.to_string();
    rerun_on_backends(&["--skip", this_test, "--test-threads", &threads]);
}

/// Runs `test` alone on `TARN_SELECTOR=poll`, then `=select`, in a child
/// process each: for a binary whose one test cannot share its process (it
/// lowers the fd limit). A no-op inside such a child.
pub fn rerun_test_on_poll_and_select(test: &str) {
    rerun_on_backends(&["--exact", test, "--test-threads", "1"]);
}

fn rerun_on_backends(args: &[&str]) {
    if is_backend_child() {
        return;
    }
    let failures: Vec<String> = ["poll", "select"]
        .into_iter()
        .filter_map(|backend| {
            let output = Command::new(std::env::current_exe().expect("current_exe"))
                .env("TARN_SELECTOR", backend)
                .env(BACKEND_CHILD, "1")
                .env_remove(ISOLATED)
                .args(args)
                .output()
                .expect("cannot re-run the test binary");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let ran = stdout.contains(" passed;") && !stdout.contains(" 0 passed;");
            (!output.status.success() || !ran).then(|| {
                format!(
                    "TARN_SELECTOR={backend}: the re-run failed or ran no test ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr),
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `body` in a process of its own (this binary re-run with `--exact
/// test_name`): for tests that change process-wide state such as signal
/// dispositions. Fails with the child's output if the child fails.
pub fn isolated(test_name: &str, body: impl FnOnce()) {
    if std::env::var(ISOLATED).as_deref() == Ok(test_name) {
        let _watchdog = watchdog(test_name, PATIENCE);
        body();
        return;
    }
    let output = Command::new(std::env::current_exe().expect("current_exe"))
        .env(ISOLATED, test_name)
        .args(["--exact", test_name, "--test-threads", "1", "--nocapture"])
        .output()
        .expect("cannot re-run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "isolated {test_name}: the child failed or ran no test ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
    );
}

/// Aborts the whole process, naming `what`, if the guard is still alive
/// after `patience`: a hung test fails instead of hanging the suite.
#[must_use = "the watchdog stops watching when the guard is dropped"]
pub fn watchdog(what: &str, patience: Duration) -> Watchdog {
    let (done, wait) = mpsc::channel::<()>();
    let what = what.to_string();
    let backend = backend_name();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(patience) {
            eprintln!(
                "watchdog: {what} (TARN_SELECTOR={backend}) still running after {patience:?}: hung; aborting"
            );
            std::process::abort();
        }
    });
    Watchdog { _done: done }
}

/// Stops its watchdog when dropped.
#[derive(Debug)]
pub struct Watchdog {
    _done: mpsc::Sender<()>,
}

/// Runs `future` with `tarn::block_on`, failing the test if it takes longer
/// than [`PATIENCE`].
pub fn run<F: Future>(future: F) -> F::Output {
    tarn::block_on(async {
        tarn::timeout(PATIENCE, future)
            .await
            .unwrap_or_else(|_| panic!("test still running after {PATIENCE:?}: hung"))
    })
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> (libc::rlim_t, libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given.
    let res = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(res, 0, "getrlimit: {}", io::Error::last_os_error());
    (limit.rlim_cur, limit.rlim_max)
}

/// Sets the soft `RLIMIT_NOFILE` (the hard one stays).
pub fn set_nofile_soft(soft: libc::rlim_t) {
    let (_, hard) = nofile_limit();
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given.
    let res = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(res, 0, "setrlimit({soft}): {}", io::Error::last_os_error());
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new limit.
pub fn raise_nofile_limit() -> libc::rlim_t {
    let (soft, hard) = nofile_limit();
    if soft < hard {
        set_nofile_soft(hard);
    }
    hard
}

/// The number of open fds of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Copies what `conn` reads back to it until end of stream; returns the
/// number of bytes echoed.
pub async fn echo(mut conn: TcpStream) -> io::Result<u64> {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        conn.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// Starts an echo server on 127.0.0.1 (a free port) on the current
/// executor; it stops when the executor does (at the end of the test's
/// thread). Call inside `tarn::block_on`.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    tarn::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tarn::spawn(echo(conn)).detach();
        }
    })
    .detach();
    addr
}

/// `len` deterministic pseudo-random bytes (xorshift seeded with `seed`).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut data = vec![0; len];
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// FNV-1a over `data`, continuing from `hash` (start with [`FNV_START`]).
pub fn fnv1a(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The FNV-1a offset basis.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

//! Helpers shared by the reactor's integration tests: re-running a test
//! binary on the other selector backends, running one test in a fresh
//! process, a watchdog that turns a hang into a failure, fd counting and a
//! small deterministic random number generator.
//!
//! Each test binary compiles its own copy of this module and uses only part
//! of it, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

/// Set in a child that re-runs a binary on another backend, so that its own
/// `on_poll_and_select_backends` does not recurse.
const BACKEND_CHILD: &str = "TARN_TEST_BACKEND_CHILD";
/// Set in a child that runs one test alone; holds that test's name.
const ISOLATED: &str = "TARN_TEST_ISOLATED";

/// How long any one test may run before the watchdog calls it hung.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The patience for a test whose failure mode is a hang and whose work
/// takes milliseconds (waiting for a 20 ms timer, say): far more than it
/// needs on any machine, short enough that a hang costs little.
pub const HANG: Duration = Duration::from_secs(5);

/// Whether the tests run in their short mode: `TARN_VALGRIND` is set (to
/// anything but "0"), as `.ci/valgrind.sh` does, because under valgrind a
/// test runs 30 to 50 times slower than natively.
pub fn short_mode() -> bool {
    std::env::var_os("TARN_VALGRIND").is_some_and(|v| v != "0")
}

/// `full`, or `short` in the [`short_mode`]: an iteration count that the
/// heavy tests shrink, or a setup margin that slow code needs widened.
pub fn scaled<T>(full: T, short: T) -> T {
    if short_mode() {
        short
    } else {
        full
    }
}

/// Re-runs every other test of this binary with `TARN_SELECTOR=poll`, then
/// `=select`, in a child process each, and fails (with the child's output)
/// if either run fails. `this_test` is the name of the calling test, skipped
/// in the children. A no-op inside such a child.
pub fn rerun_on_poll_and_select(this_test: &str, test_threads: usize) {
    if std::env::var_os(BACKEND_CHILD).is_some() {
        return;
    }
    let mut failures = Vec::new();
    for backend in ["poll", "select"] {
        let threads = test_threads.to_string();
        let output = Command::new(std::env::current_exe().expect("current_exe"))
            .env("TARN_SELECTOR", backend)
            .env(BACKEND_CHILD, "1")
            .env_remove(ISOLATED)
            .args(["--skip", this_test, "--test-threads", &threads])
            .output()
            .expect("cannot re-run the test binary");
        if let Some(report) = child_failure(&format!("TARN_SELECTOR={backend}"), &output) {
            failures.push(report);
        }
    }
    if !failures.is_empty() {
        panic!("{}", failures.join("\n"));
    }
}

/// Runs `body` in a fresh process of its own (the test binary re-executed
/// with `--exact test_name`), for tests that need the process-wide reactor
/// or its fallback thread in their initial state. The child inherits
/// `TARN_SELECTOR`. Fails, printing the child's output, if the child does.
pub fn isolated(test_name: &str, body: impl FnOnce()) {
    isolated_with_patience(test_name, PATIENCE, body);
}

/// Like [`isolated`], with the child's watchdog set to `patience` (for
/// tests whose failure mode is a hang, so that it fails sooner).
pub fn isolated_with_patience(test_name: &str, patience: Duration, body: impl FnOnce()) {
    if std::env::var(ISOLATED).as_deref() == Ok(test_name) {
        let _watchdog = watchdog(test_name, patience);
        body();
        return;
    }
    let output = Command::new(std::env::current_exe().expect("current_exe"))
        .env(ISOLATED, test_name)
        .args(["--exact", test_name, "--test-threads", "1", "--nocapture"])
        .output()
        .expect("cannot re-run the test binary");
    check_child(&format!("isolated {test_name}"), &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 passed"),
        "isolated {test_name}: the child ran no test (wrong name?):\n{stdout}"
    );
}

fn check_child(what: &str, output: &Output) {
    if let Some(report) = child_failure(what, output) {
        panic!("{report}");
    }
}

fn child_failure(what: &str, output: &Output) -> Option<String> {
    if output.status.success() {
        return None;
    }
    Some(format!(
        "{what}: the child test run failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    ))
}

/// Aborts the whole process, naming `what`, if the guard is still alive
/// after `patience` (ten times that in the [`short_mode`], where valgrind
/// on a loaded machine can make seconds of work out of milliseconds): a
/// hung test fails instead of hanging the suite.
#[must_use = "the watchdog stops watching when the guard is dropped"]
pub fn watchdog(what: &str, patience: Duration) -> Watchdog {
    let patience = scaled(patience, patience * 10);
    let (done, wait) = mpsc::channel::<()>();
    let what = what.to_string();
    let backend = std::env::var("TARN_SELECTOR").unwrap_or_else(|_| "epoll".into());
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(patience) {
            eprintln!("watchdog: {what} (TARN_SELECTOR={backend}) still running after {patience:?}: hung; aborting");
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

/// Runs `f` under a [`watchdog`] of [`PATIENCE`].
pub fn bounded<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let _watchdog = watchdog(what, PATIENCE);
    f()
}

/// The number of open fds of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// The backend the reactor of this process uses (from `TARN_SELECTOR`).
pub fn backend_name() -> String {
    std::env::var("TARN_SELECTOR").unwrap_or_else(|_| "epoll".into())
}

/// A connected pair of Unix stream sockets.
pub fn pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().expect("socketpair")
}

/// A connected pair of TCP sockets on the loopback interface.
pub fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

/// Fills the send buffer of a non-blocking socket until a write would
/// block; returns how many bytes it wrote.
pub fn fill(socket: &UnixStream) -> usize {
    use std::io::Write;
    socket.set_nonblocking(true).unwrap();
    let chunk = [0xa5u8; 64 * 1024];
    let mut total = 0;
    loop {
        match (&mut &*socket).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("fill: {e}"),
        }
    }
}

/// A small xorshift generator: deterministic per seed, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0), close enough for tests.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill_bytes(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
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

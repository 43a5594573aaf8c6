//! Helpers shared by tarn-net's integration tests: a bounded `block_on`,
//! re-running a test binary on the other selector backends, running one
//! test in a fresh process, temporary socket paths and a checksum.
//!
//! Each test binary compiles its own copy of this module and uses only part
//! of it, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Set in a child that re-runs a binary on another backend, so that its own
/// `rerun_on_poll_and_select` does not recurse.
const BACKEND_CHILD: &str = "TARN_TEST_BACKEND_CHILD";
/// Set in a child that runs one test alone; holds that test's name.
const ISOLATED: &str = "TARN_TEST_ISOLATED";

/// How long any one test's body may run before it counts as hung.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `body` on tarn's executor, failing the test if it errs or takes
/// longer than [`PATIENCE`] (a hang fails instead of hanging the suite).
pub fn run<F: Future<Output = io::Result<()>>>(body: F) {
    let res = tarn_executor::block_on(tarn_reactor::timeout(PATIENCE, body));
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("test failed: {e} ({:?})", e.kind()),
        Err(e) => panic!("test hung: {e} (TARN_SELECTOR={})", backend_name()),
    }
}

/// The backend the reactor of this process uses (from `TARN_SELECTOR`).
pub fn backend_name() -> String {
    std::env::var("TARN_SELECTOR").unwrap_or_else(|_| "epoll".into())
}

/// Re-runs every other test of this binary with `TARN_SELECTOR=poll`, then
/// `=select`, in a child process each, and fails (with the child's output)
/// if either run fails. `this_test` is the name of the calling test, skipped
/// in the children. A no-op inside such a child.
pub fn rerun_on_poll_and_select(this_test: &str) {
    if std::env::var_os(BACKEND_CHILD).is_some() {
        return;
    }
    let mut failures = Vec::new();
    for backend in ["poll", "select"] {
        let output = Command::new(std::env::current_exe().expect("current_exe"))
            .env("TARN_SELECTOR", backend)
            .env(BACKEND_CHILD, "1")
            .env_remove(ISOLATED)
            .args(["--skip", this_test])
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
/// with `--exact test_name`), for tests that change process-wide state
/// (signal dispositions, fd limits). The child inherits `TARN_SELECTOR`.
/// Fails, printing the child's output, if the child fails or dies.
pub fn isolated(test_name: &str, body: impl FnOnce()) {
    if std::env::var(ISOLATED).as_deref() == Ok(test_name) {
        body();
        return;
    }
    let output = Command::new(std::env::current_exe().expect("current_exe"))
        .env(ISOLATED, test_name)
        .args(["--exact", test_name, "--test-threads", "1", "--nocapture"])
        .output()
        .expect("cannot re-run the test binary");
    if let Some(report) = child_failure(&format!("isolated {test_name}"), &output) {
        panic!("{report}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 passed"),
        "isolated {test_name}: the child ran no test (wrong name?):\n{stdout}"
    );
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

/// A socket path in the temp directory, unique to this process and call,
/// removed (if it exists) when the guard drops.
pub fn temp_path(name: &str) -> TempPath {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("tarn-net-{}-{n}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    TempPath(path)
}

/// A path removed when dropped; derefs to the path.
#[derive(Debug)]
pub struct TempPath(PathBuf);

impl std::ops::Deref for TempPath {
    type Target = PathBuf;

    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempPath {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `len` bytes of a deterministic pseudo-random pattern (xorshift).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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

//! Running this test binary again in a child process: all of it on the
//! poll and select backends, or one test alone in a fresh process.
//!
//! Children inherit this process's environment (`TARN_SELECTOR`,
//! `TARN_SOAK`, `TARN_VALGRIND`, ...) unless a helper sets a variable
//! itself. They run with `--nocapture`; their [`figure`](crate::figure)
//! lines are printed again by the parent, and a failing child fails the
//! calling test with the child's whole output.

use std::process::{Command, Output};
use std::time::Duration;

use crate::backend::{backends, BACKEND_CHILD_ENV, SELECTOR_ENV};
use crate::figures::pass_on_figures;
use crate::watchdog::{watchdog, PATIENCE};

/// Set in a child that runs one test alone; holds that test's name.
pub(crate) const ISOLATED_ENV: &str = "TARN_TEST_ISOLATED";

/// Re-runs this test binary with `TARN_SELECTOR=poll`, then `=select`, in
/// a child process each, skipping `this_test` (the calling test, by its
/// name); `test_threads` is the children's `--test-threads` (`None`:
/// libtest's default). Fails with the children's output if either fails or
/// runs no test. A no-op inside such a child.
///
/// A binary calls it from one test of its own:
///
/// ```no_run
/// #[test]
/// fn on_poll_and_select_backends() {
///     tarn_test_support::rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
/// }
/// ```
pub fn rerun_on_poll_and_select(this_test: &str, test_threads: Option<usize>) {
    let mut args = vec!["--skip".to_string(), this_test.to_string()];
    if let Some(threads) = test_threads {
        args.extend(["--test-threads".to_string(), threads.to_string()]);
    }
    rerun_on_backends(&args);
}

/// Runs `test` alone on `TARN_SELECTOR=poll`, then `=select`, in a child
/// process each: for a binary whose one test cannot share its process (it
/// lowers the fd limit, say) and that runs on the default backend itself.
/// A no-op inside such a child.
pub fn rerun_test_on_poll_and_select(test: &str) {
    rerun_on_backends(&["--exact", test, "--test-threads", "1"].map(String::from));
}

fn rerun_on_backends(args: &[String]) {
    if crate::is_backend_child() {
        return;
    }
    let failures: Vec<String> = ["poll", "select"]
        .into_iter()
        .filter_map(|backend| {
            let output = run(test_binary()
                .env(SELECTOR_ENV, backend)
                .env(BACKEND_CHILD_ENV, "1")
                .env_remove(ISOLATED_ENV)
                .args(args));
            let stdout = String::from_utf8_lossy(&output.stdout);
            let ran = stdout.contains(" passed;") && !stdout.contains(" 0 passed;");
            (!output.status.success() || !ran)
                .then(|| report(&format!("TARN_SELECTOR={backend}: the re-run"), &output))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `body` in a process of its own (this binary re-run with `--exact
/// test_name`), under a [`watchdog`] of [`PATIENCE`]: for a test that
/// changes process-wide state (signal dispositions, fd limits) or needs the
/// process-wide reactor in its initial state. The child inherits
/// `TARN_SELECTOR`. Fails with the child's output if the child fails, dies
/// or runs no test (a `test_name` that is not the calling test's).
///
/// ```no_run
/// #[test]
/// fn writing_to_a_closed_peer_is_an_error_not_sigpipe() {
///     tarn_test_support::isolated("writing_to_a_closed_peer_is_an_error_not_sigpipe", || {
///         // ... change the SIGPIPE disposition and check ...
///     });
/// }
/// ```
pub fn isolated(test_name: &str, body: impl FnOnce()) {
    isolated_with_patience(test_name, PATIENCE, body);
}

/// Like [`isolated`], with the child's watchdog set to `patience`: shorter
/// for a test whose failure mode is a hang ([`HANG`](crate::HANG)), longer
/// for a slow one.
pub fn isolated_with_patience(test_name: &str, patience: Duration, body: impl FnOnce()) {
    if std::env::var(ISOLATED_ENV).as_deref() == Ok(test_name) {
        let _watchdog = watchdog(test_name, patience);
        body();
        return;
    }
    let output = run(test_binary().env(ISOLATED_ENV, test_name).args([
        "--exact",
        test_name,
        "--test-threads",
        "1",
    ]));
    check_one_test(&format!("isolated {test_name}"), &output);
}

/// Runs `body` alone in a child process (this binary re-run with `--exact
/// test_name`) once per backend of [`backends`], one after the other, so
/// that it can count the process's fds, memory and reactor sources, and
/// change signal dispositions, without other tests in the way. Inside the
/// child, `body` runs under a [`watchdog`] of `patience`. A failing child
/// fails the test with its output.
pub fn isolated_on_each_backend(test_name: &str, patience: Duration, body: impl FnOnce()) {
    if std::env::var(ISOLATED_ENV).as_deref() == Ok(test_name) {
        let _watchdog = watchdog(test_name, patience);
        body();
        return;
    }
    for backend in backends() {
        let output = run(test_binary()
            .env(SELECTOR_ENV, &backend)
            .env(BACKEND_CHILD_ENV, "1")
            .env(ISOLATED_ENV, test_name)
            .args(["--exact", test_name, "--test-threads", "1"]));
        check_one_test(&format!("{test_name} on TARN_SELECTOR={backend}"), &output);
    }
}

/// This test binary, to run again.
pub(crate) fn test_binary() -> Command {
    Command::new(std::env::current_exe().expect("current_exe"))
}

/// Runs `child` with `--nocapture` to its end; prints its figure lines.
pub(crate) fn run(child: &mut Command) -> Output {
    let output = child
        .arg("--nocapture")
        .output()
        .expect("cannot re-run the test binary");
    pass_on_figures(&output);
    output
}

/// Fails unless the child succeeded and ran exactly one test.
pub(crate) fn check_one_test(what: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(" 1 passed;"),
        "{}",
        report(what, output)
    );
}

/// What a failed child says: its exit status and its whole output.
fn report(what: &str, output: &Output) -> String {
    format!(
        "{what}: the child failed or ran no test ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    )
}

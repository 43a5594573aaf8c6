//! Child processes on every backend, under tarn's executor and under
//! `futures::executor` (the fallback thread driving): pipes that carry
//! megabytes both ways at once, exit codes, kills, children dropped while
//! they run, a missing program, and a thousand short children that leave
//! no zombie and no fd behind; then the same with pidfds refused by the
//! fault interposer (a kernel before 5.3), so that `SIGCHLD` does the
//! watching.

use std::future::Future;
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use futures::future::{join3, join_all};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use tarn_process::{Command, Stdio};
use tarn_test_support::{
    bounded, fnv1a, isolated, isolated_under_faults, open_fds, random_bytes,
    rerun_on_poll_and_select, FNV_START, PATIENCE,
};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

/// How long an ended child may take to be reaped: far more than the
/// milliseconds it needs.
const REAPED: Duration = Duration::from_secs(10);

fn run<F: Future>(future: F) -> F::Output {
    tarn_executor::block_on(future)
}

/// Waits (without blocking the executor) until `cond` holds, for at most
/// `patience`; returns whether it did.
async fn until(patience: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        tarn_reactor::Timer::after(Duration::from_millis(5)).await;
    }
    true
}

/// The state letter of process `pid` if it is a child of this process
/// (`Z` for a zombie), `None` if there is no such child.
fn child_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces, so split after ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid: u32 = fields.next()?.parse().ok()?;
    (ppid == std::process::id()).then_some(state)
}

/// `sh` echoing `data` back through `cat` while it writes `noise` bytes of
/// zeros to its standard error; the three pipes served at once. Fails
/// unless every byte comes back, in order.
async fn echo_through_cat(data: &[u8], noise: usize) {
    let script = format!("head -c {noise} /dev/zero >&2 & cat; wait");
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start sh");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let write = async {
        stdin.write_all(data).await.expect("writing to cat");
        drop(stdin);
    };
    let mut echoed = Vec::new();
    let mut errors = Vec::new();
    let read_out = async { stdout.read_to_end(&mut echoed).await.expect("reading cat") };
    let read_err = async {
        stderr
            .read_to_end(&mut errors)
            .await
            .expect("reading stderr")
    };
    join3(write, read_out, read_err).await;
    let status = child.status().await.expect("waiting for sh");
    assert!(status.success(), "sh ended with {status}");
    assert_eq!(echoed.len(), data.len(), "cat echoed a different length");
    assert_eq!(
        fnv1a(FNV_START, &echoed),
        fnv1a(FNV_START, data),
        "cat echoed other bytes"
    );
    assert_eq!(errors.len(), noise, "stderr lost bytes");
    assert!(errors.iter().all(|&b| b == 0));
}

#[test]
fn cat_echoes_8_mib_through_its_pipes_while_stderr_is_drained() {
    bounded("cat_echoes_8_mib", || {
        let data = random_bytes(8 << 20, 7);
        run(echo_through_cat(&data, 1 << 20));
    });
}

#[test]
fn exit_codes_and_signals_come_back() {
    bounded("exit_codes_and_signals_come_back", || {
        run(async {
            let status = Command::new("false").status().await.unwrap();
            assert_eq!(status.code(), Some(1));
            let status = Command::new("sh")
                .args(["-c", "exit 7"])
                .status()
                .await
                .unwrap();
            assert_eq!(status.code(), Some(7));
            let out = Command::new("sh")
                .args(["-c", "echo out; echo err >&2; exit 3"])
                .output()
                .await
                .unwrap();
            assert_eq!(
                (out.status.code(), &out.stdout[..], &out.stderr[..]),
                (Some(3), &b"out\n"[..], &b"err\n"[..])
            );
        });
    });
}

#[test]
fn a_killed_sleep_ends_at_once_with_sigkill() {
    bounded("a_killed_sleep_ends_at_once", || {
        run(async {
            let mut child = Command::new("sleep").arg("30").spawn().unwrap();
            assert!(
                child.try_status().unwrap().is_none(),
                "sleep 30 ended early"
            );
            let started = Instant::now();
            child.kill().unwrap();
            let status = child.status().await.unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
            assert!(started.elapsed() < Duration::from_secs(5));
            // Killing a reaped child is no error.
            child.kill().unwrap();
            assert_eq!(child.try_status().unwrap(), Some(status));
        });
    });
}

#[test]
fn a_child_dropped_with_kill_on_drop_is_killed_and_reaped() {
    bounded("kill_on_drop", || {
        run(async {
            let child = Command::new("sleep")
                .arg("30")
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pid = child.id();
            assert_eq!(child_state(pid).map(|s| s != 'Z'), Some(true));
            drop(child);
            let gone = until(REAPED, || child_state(pid).is_none()).await;
            assert!(
                gone,
                "killed child {pid} not reaped: {:?}",
                child_state(pid)
            );
        });
    });
}

#[test]
fn a_child_dropped_while_it_runs_runs_on_and_is_reaped_when_it_ends() {
    bounded("dropped_child_runs_on", || {
        run(async {
            let dir = std::env::temp_dir().join(format!("tarn-process-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mark = dir.join("ran-on");
            let _ = std::fs::remove_file(&mark);
            let script = format!("sleep 0.2; echo done > '{}'", mark.display());
            let child = Command::new("sh").args(["-c", &script]).spawn().unwrap();
            let pid = child.id();
            drop(child);
            assert!(
                child_state(pid).is_some_and(|s| s != 'Z'),
                "dropped child ended at once"
            );
            let reaped = until(REAPED, || child_state(pid).is_none()).await;
            assert!(reaped, "dropped child {pid} left as {:?}", child_state(pid));
            assert_eq!(
                std::fs::read_to_string(&mark).unwrap(),
                "done\n",
                "it did not run on"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        });
    });
}

#[test]
fn a_missing_program_is_not_found_and_named() {
    run(async {
        let err = Command::new("tarn-no-such-program").spawn().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("tarn-no-such-program"), "{err}");
        let err = Command::new("/tarn/no/such/dir/prog")
            .output()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("/tarn/no/such/dir/prog"), "{err}");
    });
}

#[test]
fn children_work_under_a_foreign_executor() {
    bounded("children_work_under_a_foreign_executor", || {
        let data = random_bytes(1 << 20, 11);
        futures::executor::block_on(async {
            echo_through_cat(&data, 64 << 10).await;
            let out = Command::new("sh")
                .args(["-c", "echo hi"])
                .output()
                .await
                .unwrap();
            assert_eq!(out.stdout, b"hi\n");
            // A dropped child is reaped with no tarn executor anywhere: its
            // pidfd wakes the reaper from the fallback thread.
            let child = Command::new("sleep").arg("0.1").spawn().unwrap();
            let pid = child.id();
            drop(child);
            let deadline = Instant::now() + REAPED;
            while child_state(pid).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(child_state(pid), None, "dropped child not reaped");
        });
    });
}

/// A thousand `true`s, ten at a time: each awaited, none left as a zombie,
/// and this process's fds back where they were.
fn thousand_short_children(pidfd: bool) {
    // The first child makes this thread's reactor (its epoll fd and
    // eventfd), which stays: count from after it.
    let status = run(async { Command::new("true").status().await });
    assert!(status.unwrap().success());
    let before = open_fds();
    let pids = run(async {
        let mut pids = Vec::new();
        for _ in 0..100 {
            let batch: Vec<_> = (0..10)
                .map(|_| Command::new("true").spawn().expect("cannot start true"))
                .collect();
            for child in &batch {
                assert_eq!(child.watched_by_pidfd(), pidfd);
                pids.push(child.id());
            }
            let statuses =
                join_all(batch.into_iter().map(|mut child| async move {
                    child.status().await.expect("waiting for true")
                }))
                .await;
            assert!(statuses.iter().all(|s| s.success()));
        }
        pids
    });
    let zombies: Vec<u32> = pids
        .into_iter()
        .filter(|&pid| child_state(pid).is_some())
        .collect();
    assert!(zombies.is_empty(), "children left behind: {zombies:?}");
    assert_eq!(open_fds(), before, "fds left behind");
    assert_eq!(tarn_process::orphans(), 0);
}

#[test]
fn a_thousand_short_children_leave_no_zombie_and_no_fd() {
    isolated(
        "a_thousand_short_children_leave_no_zombie_and_no_fd",
        || {
            thousand_short_children(true);
        },
    );
}

#[test]
fn without_pidfds_sigchld_watches_the_children() {
    isolated_under_faults(
        "without_pidfds_sigchld_watches_the_children",
        "pidfd=1",
        PATIENCE,
        || {
            thousand_short_children(false);
            let data = random_bytes(2 << 20, 13);
            run(async {
                echo_through_cat(&data, 256 << 10).await;
                let mut child = Command::new("sleep").arg("30").spawn().unwrap();
                assert!(!child.watched_by_pidfd());
                child.kill().unwrap();
                assert_eq!(child.status().await.unwrap().signal(), Some(libc::SIGKILL));
                let child = Command::new("sleep")
                    .arg("30")
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                let pid = child.id();
                drop(child);
                assert!(
                    until(REAPED, || child_state(pid).is_none()).await,
                    "not reaped"
                );
            });
        },
    );
}

#[test]
fn a_child_dropped_on_a_thread_whose_executor_has_returned_is_still_reaped() {
    bounded("dropped_where_no_executor_runs_any_more", || {
        for thread_stays in [true, false] {
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let (pid_tx, pid_rx) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                let pid = run(async {
                    let child = Command::new("sleep").arg("0.2").spawn().unwrap();
                    let pid = child.id();
                    drop(child);
                    pid
                });
                pid_tx.send(pid).unwrap();
                // No executor runs on this thread from here on; its
                // reactor holds the dropped child's pidfd.
                if thread_stays {
                    let _ = done_rx.recv();
                }
            });
            let pid = pid_rx.recv().unwrap();
            let deadline = Instant::now() + REAPED;
            while child_state(pid).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                child_state(pid),
                None,
                "child {pid} not reaped (its thread {})",
                if thread_stays { "idle" } else { "gone" }
            );
            drop(done_tx);
            thread.join().unwrap();
        }
    });
}

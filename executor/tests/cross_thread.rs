//! Wakes sent from other threads into one single-threaded executor are
//! never lost. Four threads deliver 200,000 wakes (1,000,000 with
//! `TARN_SOAK=1`) to the tasks of one `block_on`, and each task answers a
//! wake before its thread sends the next, so one lost wake would stall the
//! run for good: a watchdog then aborts the process instead of letting CI
//! hang. Two more tests pin the sleeping states a wake must end: an
//! executor asleep inside the reactor's `select` system call (seen in
//! /proc before every wake, so the wake has to interrupt the call), and an
//! executor asleep while another thread's executor drives a reactor (in its
//! own `select` on epoll, where each executor thread has a reactor; parked
//! on its condition variable behind the driver on poll and select, which
//! keep one reactor). `on_poll_and_select_backends` re-runs the
//! binary with `TARN_SELECTOR=poll` and `=select`.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use tarn_executor::{block_on, spawn};
use tarn_test_support::{
    backend_name, figure, rerun_on_poll_and_select, sized, watchdog, PATIENCE,
};

/// Threads that send wakes in the soak test.
const THREADS: u64 = 4;
/// Tasks (one signal each) that every sending thread keeps busy.
const SIGNALS_PER_THREAD: u64 = 8;

/// How long one test may run before the watchdog calls it hung (a lost
/// wake): far more than it needs here (the soak's million wakes take a few
/// seconds).
fn patience() -> Duration {
    sized(PATIENCE, Duration::from_secs(300))
}

/// Held by every test of this binary while it runs; see [`serial`].
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs this binary's tests one at a time: the reactor is process-wide, and
/// a test that needs its executor to drive it (and sleep in `select`) must
/// not find another test's executor driving instead.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Re-runs the other tests of this binary with `TARN_SELECTOR=poll`, then
/// `=select`, one child process each, failing with a child's output if it
/// fails. Keeps `TARN_SOAK` as it is.
#[test]
fn on_poll_and_select_backends() {
    let _serial = serial();
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

/// One task's signal from one sending thread: a round counter the sender
/// raises, the round the task has acknowledged, and the task's waker.
#[derive(Debug)]
struct Signal {
    /// The last round the sender posted.
    posted: AtomicU64,
    /// The last round the task saw.
    seen: AtomicU64,
    waker: AtomicWaker,
    /// The sending thread, unparked by each acknowledgement.
    sender: Thread,
}

impl Signal {
    /// A signal whose sender is the current thread.
    fn new() -> Signal {
        Signal {
            posted: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            waker: AtomicWaker::new(),
            sender: thread::current(),
        }
    }

    /// Posts `round` and wakes the task; true if the task had a waker
    /// stored (it was waiting, so this wake is the only thing that can
    /// bring it back).
    fn post(&self, round: u64) -> bool {
        self.posted.store(round, Ordering::SeqCst);
        match self.waker.take() {
            Some(waker) => {
                waker.wake();
                true
            }
            None => false,
        }
    }

    /// Waits until `round` is posted. The waker is stored before the
    /// second look, so a post in between still wakes this task.
    async fn wait_for(&self, round: u64) {
        poll_fn(|cx| {
            if self.posted.load(Ordering::SeqCst) >= round {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.posted.load(Ordering::SeqCst) >= round {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Records that the task saw `round`, and tells the sender.
    fn acknowledge(&self, round: u64) {
        self.seen.store(round, Ordering::SeqCst);
        self.sender.unpark();
    }

    /// Blocks the sending thread until the task has seen `round`.
    fn wait_seen(&self, round: u64) {
        while self.seen.load(Ordering::SeqCst) < round {
            thread::park();
        }
    }
}

/// The sending side of the soak test: posts rounds `1..=rounds` to each of
/// `signals`, each one only after the task saw the previous one, parking
/// while every task still has a round to look at. Returns how many posts
/// found a stored waker.
fn send_rounds(signals: &[Arc<Signal>], rounds: u64) -> u64 {
    let mut next = vec![1u64; signals.len()];
    let mut unfinished = signals.len();
    let mut woke_a_waiter = 0;
    while unfinished > 0 {
        let mut posted_any = false;
        for (signal, next) in signals.iter().zip(&mut next) {
            if *next <= rounds && signal.seen.load(Ordering::SeqCst) == *next - 1 {
                woke_a_waiter += u64::from(signal.post(*next));
                *next += 1;
                posted_any = true;
                if *next > rounds {
                    unfinished -= 1;
                }
            }
        }
        if !posted_any {
            thread::park();
        }
    }
    woke_a_waiter
}

/// 4 threads × 8 tasks; each task awaits every round of its signal in turn.
/// Every round is a wake that must arrive: the sender posts the next only
/// after the task acknowledged this one.
#[test]
fn wakes_from_four_threads_are_never_lost() {
    let _serial = serial();
    let _watchdog = watchdog("wakes_from_four_threads_are_never_lost", patience());
    let total: u64 = sized(200_000, 1_000_000);
    let tasks = THREADS * SIGNALS_PER_THREAD;
    let rounds = total / tasks;
    let start = Instant::now();

    let (signals_tx, signals_rx) = mpsc::channel();
    let senders: Vec<_> = (0..THREADS)
        .map(|_| {
            let signals_tx = signals_tx.clone();
            thread::spawn(move || {
                let signals: Vec<_> = (0..SIGNALS_PER_THREAD)
                    .map(|_| Arc::new(Signal::new()))
                    .collect();
                signals_tx.send(signals.clone()).unwrap();
                drop(signals_tx);
                send_rounds(&signals, rounds)
            })
        })
        .collect();
    drop(signals_tx);

    let seen: Vec<u64> = block_on(async {
        let handles: Vec<_> = signals_rx
            .iter()
            .flatten()
            .map(|signal| {
                spawn(async move {
                    for round in 1..=rounds {
                        signal.wait_for(round).await;
                        assert_eq!(
                            signal.posted.load(Ordering::SeqCst),
                            round,
                            "a round was posted before its predecessor was seen"
                        );
                        signal.acknowledge(round);
                    }
                    signal.seen.load(Ordering::SeqCst)
                })
            })
            .collect();
        let mut seen = Vec::new();
        for handle in handles {
            seen.push(handle.await.unwrap());
        }
        seen
    });
    let woke_a_waiter: u64 = senders.into_iter().map(|s| s.join().unwrap()).sum();

    assert_eq!(seen, vec![rounds; tasks as usize], "rounds each task saw");
    figure(format_args!(
        "cross_thread: {} wakes from {THREADS} threads into {tasks} tasks on {}: {:?} \
         ({woke_a_waiter} found the task waiting)",
        rounds * tasks,
        backend_name(),
        start.elapsed()
    ));
}

/// This thread's kernel thread id, from /proc/thread-self ("pid/task/tid").
fn thread_id() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = link.file_name().expect("a tid").to_str().expect("a number");
    tid.parse().expect("a numeric tid")
}

/// The system calls the selector backends sleep in.
fn select_syscalls() -> Vec<libc::c_long> {
    #[allow(unused_mut)]
    let mut calls = vec![
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
        libc::SYS_ppoll,
        libc::SYS_pselect6,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([libc::SYS_epoll_wait, libc::SYS_poll, libc::SYS_select]);
    calls
}

/// Whether thread `tid` of this process is asleep (state `S`) inside one of
/// `calls`, according to /proc.
fn asleep_in(tid: u32, calls: &[libc::c_long]) -> bool {
    let task = format!("/proc/self/task/{tid}");
    let Ok(syscall) = std::fs::read_to_string(format!("{task}/syscall")) else {
        return false;
    };
    // "running", or the call's number followed by its arguments.
    let in_call = syscall
        .split_whitespace()
        .next()
        .and_then(|nr| nr.parse::<libc::c_long>().ok())
        .is_some_and(|nr| calls.contains(&nr));
    // The state follows the parenthesised command name.
    let sleeping = std::fs::read_to_string(format!("{task}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state == "S")
        })
        .unwrap_or(false);
    in_call && sleeping
}

/// Waits until thread `tid` sleeps inside one of `calls`.
fn wait_until_asleep_in(tid: u32, calls: &[libc::c_long]) {
    while !asleep_in(tid, calls) {
        thread::sleep(Duration::from_micros(50));
    }
}

/// Runs `rounds` rounds on this thread's executor: a task awaits each
/// round of one signal, and another thread posts the round only once
/// `ready_to_post(this thread's tid)` returns, then checks that the post
/// found the task's waker stored (the task was really waiting).
fn rounds_posted_when(rounds: u64, ready_to_post: impl Fn(u32) + Send + 'static) {
    let tid = thread_id();
    let (signal_tx, signal_rx) = mpsc::channel();
    let sender = thread::spawn(move || {
        let signal = Arc::new(Signal::new());
        signal_tx.send(Arc::clone(&signal)).unwrap();
        for round in 1..=rounds {
            signal.wait_seen(round - 1);
            ready_to_post(tid);
            assert!(
                signal.post(round),
                "round {round}: the task was asleep but had stored no waker"
            );
        }
    });
    let signal: Arc<Signal> = signal_rx.recv().unwrap();
    block_on(async {
        let task = spawn(async move {
            for round in 1..=rounds {
                signal.wait_for(round).await;
                signal.acknowledge(round);
            }
        });
        task.await.unwrap();
    });
    sender.join().unwrap();
}

/// Each wake arrives while the executor thread is asleep in the reactor's
/// `select` (epoll_pwait2, ppoll, pselect6, ... as /proc shows), so the
/// wake has to interrupt the system call through the reactor's notifier.
#[test]
fn wakes_interrupt_an_executor_asleep_in_select() {
    let _serial = serial();
    let _watchdog = watchdog("wakes_interrupt_an_executor_asleep_in_select", patience());
    let rounds = sized(200, 2_000);
    let start = Instant::now();
    let calls = select_syscalls();
    rounds_posted_when(rounds, move |tid| wait_until_asleep_in(tid, &calls));
    figure(format_args!(
        "cross_thread: {rounds} wakes into an executor asleep in select on {}: {:?}",
        backend_name(),
        start.elapsed()
    ));
}

/// Another thread's executor drives a reactor, asleep in its `select`
/// throughout, while each wake arrives for this thread's executor, which
/// must wake wherever it sleeps. On epoll this executor has a reactor of
/// its own and sleeps in its own `select` (the other reactor never selects
/// again: nothing of this thread's goes through it); on poll and select
/// there is one reactor per process, which the other thread holds, so this
/// executor parks on its condition variable (in `futex`, as /proc shows).
#[test]
fn wakes_reach_an_executor_while_another_thread_drives() {
    let _serial = serial();
    let _watchdog = watchdog(
        "wakes_reach_an_executor_while_another_thread_drives",
        patience(),
    );
    let rounds = sized(200, 2_000);
    let per_thread = backend_name() == "epoll";

    // The driving executor sleeps in select until `stop` is posted.
    let (driver_tx, driver_rx) = mpsc::channel();
    let driver = thread::Builder::new()
        .name("other-driver".into())
        .spawn(move || {
            let stop = Arc::new(Signal::new());
            driver_tx.send((thread_id(), Arc::clone(&stop))).unwrap();
            block_on(stop.wait_for(1));
        })
        .unwrap();
    let (driver_tid, stop) = driver_rx.recv().unwrap();
    wait_until_asleep_in(driver_tid, &select_syscalls());

    // The selects of the reactor the other thread drives.
    let driven_selects = || {
        tarn_reactor::reactors()
            .into_iter()
            .filter(|r| !per_thread || r.thread.as_deref() == Some("other-driver"))
            .map(|r| r.stats.selects)
            .sum::<u64>()
    };
    let start = Instant::now();
    let selects = driven_selects();
    let asleep_in = if per_thread {
        select_syscalls()
    } else {
        vec![libc::SYS_futex]
    };
    rounds_posted_when(rounds, move |tid| wait_until_asleep_in(tid, &asleep_in));
    assert_eq!(
        driven_selects(),
        selects,
        "the other executor stayed in its one select throughout"
    );
    figure(format_args!(
        "cross_thread: {rounds} wakes into an executor {} while another thread drives on {}: {:?}",
        if per_thread {
            "asleep in its own select"
        } else {
            "parked behind the driver"
        },
        backend_name(),
        start.elapsed()
    ));

    stop.post(1);
    driver.join().unwrap();
}

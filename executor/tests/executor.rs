//! The executor's behaviour: spawning and joining, FIFO order, detaching and
//! aborting, panic isolation, starvation freedom, nested `block_on`, wakes
//! from other threads, and `LocalExecutor` driven by hand.
//!
//! `on_poll_and_select_backends` re-runs this binary with
//! `TARN_SELECTOR=poll` and `=select`, so every test runs on every backend.

mod common;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::panic::catch_unwind;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::run;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use tarn_executor::{block_on, spawn, yield_now, LocalExecutor};
use tarn_reactor::{Async, Timer};
use tarn_test_support::rerun_on_poll_and_select;

#[test]
fn spawned_tasks_return_their_output() {
    let out = run(async {
        let handles: Vec<_> = (0..100).map(|i| spawn(async move { i * 2 })).collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(out, (0..100).map(|i| i * 2).sum::<i32>());
}

#[test]
fn tasks_run_in_fifo_order() {
    let order = run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let log = log.clone();
                spawn(async move {
                    log.borrow_mut().push(i);
                    yield_now().await;
                    log.borrow_mut().push(10 + i);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let order = log.borrow().clone();
        order
    });
    assert_eq!(order, vec![0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
}

#[test]
fn dropping_the_handle_detaches_the_task() {
    run(async {
        let done = Rc::new(Cell::new(false));
        let flag = done.clone();
        drop(spawn(async move {
            Timer::after(Duration::from_millis(5)).await;
            flag.set(true);
        }));
        // Waits for the task rather than for a fixed time, which a
        // descheduled thread could overrun.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done.get() {
            assert!(Instant::now() < deadline, "a detached task keeps running");
            Timer::after(Duration::from_millis(1)).await;
        }
    });
}

struct SetOnDrop(Rc<Cell<bool>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn abort_cancels_and_drops_the_future() {
    run(async {
        let dropped = Rc::new(Cell::new(false));
        let guard = SetOnDrop(dropped.clone());
        let task = spawn(async move {
            let _guard = guard;
            Timer::never().await;
        });
        yield_now().await; // let it start
        assert!(!task.is_finished());
        task.abort();
        assert!(dropped.get(), "the future is dropped at once");
        assert!(task.is_finished());
        let err = task.await.unwrap_err();
        assert!(err.is_cancelled() && !err.is_panic());
        assert_eq!(err.to_string(), "task was cancelled");

        // A finished task is not affected by abort.
        let done = spawn(async { 7 });
        yield_now().await;
        done.abort();
        assert_eq!(done.await.unwrap(), 7);
    });
}

#[test]
fn a_task_can_abort_itself() {
    run(async {
        let slot: Rc<RefCell<Option<tarn_executor::JoinHandle<()>>>> = Rc::default();
        let inner = slot.clone();
        let dropped = Rc::new(Cell::new(false));
        let guard = SetOnDrop(dropped.clone());
        let task = spawn(async move {
            let _guard = guard;
            yield_now().await;
            inner.borrow().as_ref().unwrap().abort();
            yield_now().await;
            unreachable!("aborted while running: never polled again");
        });
        *slot.borrow_mut() = Some(task);
        Timer::after(Duration::from_millis(10)).await;
        assert!(dropped.get());
        let task = slot.borrow_mut().take().unwrap();
        assert!(task.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn a_panicking_task_does_not_stop_the_others() {
    run(async {
        let bad = spawn(async {
            yield_now().await;
            panic!("boom in a task");
        });
        let good = spawn(async {
            for _ in 0..10 {
                yield_now().await;
            }
            "fine"
        });
        let err = bad.await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("boom in a task"));
        assert!(err.to_string().contains("boom in a task"));
        assert_eq!(good.await.unwrap(), "fine");
        let payload = spawn(async { std::panic::panic_any(42u32) })
            .await
            .unwrap_err()
            .into_panic();
        assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
    });
}

#[test]
fn a_custom_panic_handler_receives_each_panic_once() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let ex = LocalExecutor::builder()
        .on_panic(move |payload| {
            let msg = payload.downcast_ref::<&str>().copied().unwrap_or("?");
            log.borrow_mut().push(msg.to_string());
        })
        .build();
    let a = ex.spawn(async { panic!("first") });
    let b = ex.spawn(async { panic!("second") });
    let ok = ex.spawn(async { 1 });
    let results = ex.run(async { (a.await.is_err(), b.await.is_err(), ok.await.unwrap()) });
    assert_eq!(results, (true, true, 1));
    assert_eq!(
        *seen.borrow(),
        vec!["first".to_string(), "second".to_string()]
    );
}

#[test]
fn an_always_ready_task_cannot_starve_io_or_timers() {
    run(async {
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u64));
        let (flag, count) = (stop.clone(), spins.clone());
        let spinner = spawn(async move {
            while !flag.get() {
                count.set(count.get() + 1);
                yield_now().await;
            }
        });
        // A timer fires while the spinner is always ready.
        let start = Instant::now();
        Timer::after(Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        // I/O from another thread arrives while the spinner is always ready.
        let (a, b) = UnixStream::pair().unwrap();
        let b = Async::new(b).unwrap();
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            (&a).write_all(b"x").unwrap();
            a
        });
        b.readable().await.unwrap();
        let _a = writer.join().unwrap();
        stop.set(true);
        spinner.await.unwrap();
        assert!(spins.get() > 10, "the spinner did run: {}", spins.get());
    });
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .expect("a string panic")
            .to_string(),
    }
}

#[test]
fn an_always_ready_task_cannot_starve_wakes_from_other_threads() {
    run(async {
        let stop = Rc::new(Cell::new(false));
        let flag = stop.clone();
        let spinner = spawn(async move {
            while !flag.get() {
                yield_now().await;
            }
        });
        for _ in 0..20 {
            let (tx, rx) = oneshot::channel();
            let sender = thread::spawn(move || tx.send(7).unwrap());
            assert_eq!(rx.await.unwrap(), 7);
            sender.join().unwrap();
        }
        stop.set(true);
        spinner.await.unwrap();
    });
}

#[test]
fn nested_block_on_panics_with_a_clear_message() {
    let err = catch_unwind(|| block_on(async { block_on(async {}) })).unwrap_err();
    let msg = panic_message(err);
    assert!(
        msg.contains("already running an executor") && msg.contains("spawn"),
        "{msg}"
    );
    // The thread's executor is usable again afterwards.
    assert_eq!(block_on(async { 5 }), 5);
}

#[test]
fn spawn_outside_block_on_panics_naming_the_fix() {
    let err = catch_unwind(|| drop(spawn(async {}))).unwrap_err();
    let msg = panic_message(err);
    assert!(
        msg.contains("outside of tarn::block_on") && msg.contains("block_on(async"),
        "{msg}"
    );
}

#[test]
fn wakes_from_other_threads_reach_the_tasks() {
    const THREADS: usize = 4;
    const EACH: usize = 5_000;
    let received = run(async {
        let (tx, mut rx) = mpsc::unbounded::<usize>();
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let tx = tx.clone();
                thread::spawn(move || {
                    for i in 0..EACH {
                        tx.unbounded_send(t * EACH + i).unwrap();
                        if i % 100 == 0 {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let consumer = spawn(async move {
            let mut seen = vec![false; THREADS * EACH];
            while let Some(v) = rx.next().await {
                assert!(!seen[v], "{v} twice");
                seen[v] = true;
            }
            seen.iter().filter(|s| **s).count()
        });
        let n = consumer.await.unwrap();
        senders.into_iter().for_each(|s| s.join().unwrap());
        n
    });
    assert_eq!(received, THREADS * EACH);
}

#[test]
fn oneshot_from_another_thread_wakes_a_sleeping_executor() {
    let got = run(async {
        let (tx, rx) = oneshot::channel();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            tx.send("hello").unwrap();
        });
        rx.await.unwrap()
    });
    assert_eq!(got, "hello");
}

#[test]
fn local_executor_ticks_by_hand() {
    let ex = LocalExecutor::new();
    assert!(!ex.try_tick(), "nothing to run");
    let counter = Rc::new(Cell::new(0));
    let c = counter.clone();
    let task = ex.spawn(async move {
        c.set(c.get() + 1);
        yield_now().await;
        c.set(c.get() + 1);
    });
    assert_eq!(ex.len(), 1);
    assert!(ex.try_tick());
    assert_eq!(counter.get(), 1);
    ex.tick(); // runs the task's second half
    assert_eq!(counter.get(), 2);
    assert!(task.is_finished());
    assert!(ex.is_empty());

    // tick() waits for a task woken by a timer.
    let timed = ex.spawn(async { Timer::after(Duration::from_millis(5)).await });
    ex.tick(); // first poll: registers the timer
    ex.tick(); // waits for the timer, then completes
    assert!(timed.is_finished());
}

#[test]
fn unfinished_tasks_continue_at_the_next_block_on() {
    let counter = Rc::new(Cell::new(0));
    let c = counter.clone();
    block_on(async move {
        drop(spawn(async move {
            loop {
                c.set(c.get() + 1);
                Timer::after(Duration::from_millis(1)).await;
            }
        }));
        yield_now().await;
    });
    let before = counter.get();
    // Waits for the task to run again rather than for a fixed time: a
    // thread descheduled long enough (under valgrind, on a busy machine)
    // would see a fixed timer done before the task's turn came.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = counter.clone();
    block_on(async move {
        while seen.get() == before {
            assert!(
                Instant::now() < deadline,
                "the spawned task did not run during the second block_on"
            );
            Timer::after(Duration::from_millis(1)).await;
        }
    });
    assert!(counter.get() > before);
}

#[test]
fn dropping_an_executor_cancels_its_tasks() {
    let ex = LocalExecutor::new();
    let dropped = Rc::new(Cell::new(false));
    let guard = SetOnDrop(dropped.clone());
    let task = ex.spawn(async move {
        let _guard = guard;
        Timer::never().await;
    });
    assert!(ex.try_tick());
    drop(ex);
    assert!(dropped.get());
    assert!(task.is_finished());
    let err = futures::executor::block_on(task).unwrap_err();
    assert!(err.is_cancelled());
}

/// A waker of a stored task kept by another thread.
type Stash = Arc<std::sync::Mutex<Option<std::task::Waker>>>;

/// Pending forever, leaving its waker in `stash` for another thread.
async fn park_waker_in(stash: Stash) {
    std::future::poll_fn(|cx| {
        *stash.lock().unwrap() = Some(cx.waker().clone());
        std::task::Poll::<()>::Pending
    })
    .await
}

/// Records the thread it is dropped on.
struct DropThread(Arc<std::sync::Mutex<Option<thread::ThreadId>>>);

impl Drop for DropThread {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(thread::current().id());
    }
}

#[test]
fn wakers_outliving_their_task_and_executor_are_harmless() {
    // A waker kept by another thread after the task finished, and after its
    // executor is gone: waking and dropping it there does nothing (and, as
    // valgrind checks, touches no freed memory).
    let stash: Stash = Arc::default();
    let ex = LocalExecutor::new();
    let task = ex.spawn({
        let stash = stash.clone();
        async move {
            std::future::poll_fn(|cx| {
                let first = stash.lock().unwrap().is_none();
                *stash.lock().unwrap() = Some(cx.waker().clone());
                if first {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(7)
                }
            })
            .await
        }
    });
    assert_eq!(ex.run(task).unwrap(), 7);
    let waker = stash.lock().unwrap().take().unwrap();
    let still = ex.spawn(park_waker_in(stash.clone()));
    assert!(ex.try_tick());
    let parked = stash.lock().unwrap().take().unwrap();
    drop(ex);
    assert!(still.is_finished());
    thread::spawn(move || {
        waker.wake_by_ref();
        waker.wake();
        parked.wake_by_ref();
        let clone = parked.clone();
        drop(parked);
        clone.wake();
    })
    .join()
    .unwrap();
}

#[test]
fn outputs_and_futures_are_dropped_on_the_executor_thread() {
    // The last reference to a task can be a waker on another thread; the
    // task's future and its output (which need not be Send) must still be
    // dropped here, on the executor's thread.
    let future_dropped_on = Arc::default();
    let output_dropped_on = Arc::default();
    let stash: Stash = Arc::default();
    let ex = LocalExecutor::new();
    let guard = DropThread(Arc::clone(&future_dropped_on));
    let output = DropThread(Arc::clone(&output_dropped_on));
    let first = Rc::new(Cell::new(true));
    ex.spawn({
        let stash = stash.clone();
        async move {
            let _guard = guard;
            let _not_send = Rc::new(());
            std::future::poll_fn(|cx| {
                *stash.lock().unwrap() = Some(cx.waker().clone());
                if first.replace(false) {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            })
            .await;
            output
        }
    })
    .detach();
    while ex.try_tick() {}
    assert!(ex.is_empty());
    let here = thread::current().id();
    assert_eq!(*future_dropped_on.lock().unwrap(), Some(here));
    assert_eq!(*output_dropped_on.lock().unwrap(), Some(here));
    let waker = stash.lock().unwrap().take().unwrap();
    thread::spawn(move || drop(waker)).join().unwrap();
}

#[test]
fn a_finished_task_has_dropped_its_future_when_the_handle_yields() {
    let dropped = Rc::new(Cell::new(false));
    let guard = SetOnDrop(dropped.clone());
    let seen = run(async move {
        let task = spawn(async move {
            let _guard = guard;
            yield_now().await;
        });
        task.await.unwrap();
        dropped.get()
    });
    assert!(
        seen,
        "the task's locals were dropped before its handle yielded"
    );
}

#[test]
fn executors_on_several_threads_each_drive_their_reactor() {
    let total = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let total = total.clone();
            thread::spawn(move || {
                run(async move {
                    for _ in 0..20 {
                        Timer::after(Duration::from_millis(1)).await;
                        let (a, b) = UnixStream::pair().unwrap();
                        let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
                        let reader = spawn(async move {
                            let mut buf = [0; 1];
                            b.read_with(|s| std::io::Read::read(&mut &*s, &mut buf))
                                .await
                                .unwrap()
                        });
                        a.write_with(|s| (&*s).write(b"z")).await.unwrap();
                        total.fetch_add(reader.await.unwrap(), Ordering::SeqCst);
                    }
                })
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(total.load(Ordering::SeqCst), 60);
}

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

#[test]
fn a_task_woken_by_another_task_costs_no_extra_select() {
    // A wake made while a task runs goes to the run queue, which the
    // executor looks at before it parks: it must not also make the next
    // park return at once after a look at the reactor (a second select per
    // round). Here each round is one timer wakeup, in which one task wakes
    // the other; counted, not timed.
    tarn_test_support::isolated("a_task_woken_by_another_task_costs_no_extra_select", || {
        const ROUNDS: u64 = 50;
        let selects = run(async {
            let before = tarn_reactor::stats().selects;
            let (tx, mut rx) = mpsc::unbounded::<u64>();
            let waiter = spawn(async move {
                let mut seen = 0;
                while rx.next().await.is_some() {
                    seen += 1;
                }
                seen
            });
            for round in 0..ROUNDS {
                Timer::after(Duration::from_millis(1)).await;
                tx.unbounded_send(round).unwrap();
            }
            drop(tx);
            assert_eq!(waiter.await.unwrap(), ROUNDS);
            tarn_reactor::stats().selects - before
        });
        // One select per timer wakeup, and a few more (the executor's
        // periodic look, the timeout's own timer).
        assert!(
            selects <= ROUNDS + ROUNDS / 5,
            "{selects} selects for {ROUNDS} timer wakeups"
        );
    });
}

#[test]
fn a_wake_after_the_task_is_over_queues_nothing() {
    // h2 wakes each stream's task once more after it has finished; such a
    // wake must not cost a queue entry (nor a tick that delays the reactor).
    let executor = LocalExecutor::new();
    let stash: Rc<RefCell<Vec<std::task::Waker>>> = Rc::default();
    let finished = {
        let stash = Rc::clone(&stash);
        executor.spawn(std::future::poll_fn(move |cx| {
            stash.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Ready(())
        }))
    };
    let aborted = {
        let stash = Rc::clone(&stash);
        executor.spawn(std::future::poll_fn(move |cx| {
            stash.borrow_mut().push(cx.waker().clone());
            std::task::Poll::<()>::Pending
        }))
    };
    assert!(executor.try_tick() && executor.try_tick());
    assert!(!executor.try_tick());
    assert!(finished.is_finished());
    aborted.abort();
    for waker in stash.borrow().iter() {
        waker.wake_by_ref();
        waker.wake_by_ref();
    }
    assert!(
        !executor.try_tick(),
        "a wake of a finished or aborted task was queued"
    );
}

#[test]
fn a_wake_during_the_last_poll_is_no_tick() {
    let executor = LocalExecutor::new();
    let task = executor.spawn(std::future::poll_fn(|cx| {
        // Woken while it finishes: the queue entry outlives the future.
        cx.waker().wake_by_ref();
        std::task::Poll::Ready(())
    }));
    assert!(executor.try_tick());
    assert!(task.is_finished());
    assert!(
        !executor.try_tick(),
        "the stale entry counted as a task run"
    );
}

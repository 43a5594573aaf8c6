//! A reactor per driving thread: which reactor a source or timer lives on,
//! that a thread's reactor goes with its thread, that what waits on a
//! thread's reactor after the thread stopped driving it is still driven
//! (by the shared reactor watching it), and that a thread busy inside its
//! executor does not hold up other executors' tarn I/O.
//!
//! On poll and select there is one reactor, the shared one, for every
//! thread (the design allows it: reactors per thread are for speed); the
//! tests that are about reactors per thread check that instead there.
//! Each test runs in a process of its own, to count its threads and fds.

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use tarn_reactor::{drive, Async, Reactor, Timer};
use tarn_selector::Backend;
use tarn_test_support::{
    eventually, isolated, native_or_valgrind, open_fds, rerun_on_poll_and_select, threads_named,
    unix_pair, PATIENCE,
};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

/// Whether this process has reactors per thread (epoll).
fn per_thread() -> bool {
    Reactor::shared().unwrap().backend() == Backend::Epoll
}

/// The reactor `fd` is registered with, by id.
fn home_of(fd: i32) -> Option<u64> {
    tarn_reactor::sources()
        .into_iter()
        .find(|s| s.fd == fd)
        .map(|s| s.reactor)
}

/// Milliseconds (timing margins are widened under valgrind, which runs
/// everything 30 to 50 times slower).
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fd(io: &impl std::os::fd::AsRawFd) -> i32 {
    io.as_raw_fd()
}

#[test]
fn a_driving_thread_has_a_reactor_of_its_own_that_goes_with_the_thread() {
    isolated(
        "a_driving_thread_has_a_reactor_of_its_own_that_goes_with_the_thread",
        || {
            let shared = Reactor::shared().unwrap().id();
            let fds = open_fds();
            let (ids, names) = thread::Builder::new()
                .name("driver-1".into())
                .spawn(|| {
                    let first = drive(async { Reactor::current().unwrap() });
                    let second = drive(async { Reactor::current().unwrap() });
                    let name = first.thread_name().map(String::from);
                    ((first.id(), second.id()), name)
                })
                .unwrap()
                .join()
                .unwrap();
            if per_thread() {
                assert_ne!(ids.0, shared, "the thread drove the shared reactor");
                assert_eq!(ids.0, ids.1, "a second drive made another reactor");
                assert_eq!(names.as_deref(), Some("driver-1"));
            } else {
                assert_eq!(ids, (shared, shared), "poll and select share one reactor");
                assert_eq!(names, None);
            }
            // Gone with its thread: its fds closed, and no longer listed.
            assert_eq!(open_fds(), fds, "the thread's reactor left fds open");
            assert!(tarn_reactor::reactors().iter().all(|r| r.id == shared));
            // Outside any driver, the current reactor is the shared one.
            assert_eq!(Reactor::current().unwrap().id(), shared);
        },
    );
}

#[test]
fn a_source_made_outside_any_driver_settles_where_it_is_first_waited_on() {
    isolated(
        "a_source_made_outside_any_driver_settles_where_it_is_first_waited_on",
        || {
            let (a, b) = unix_pair();
            let b = Async::new(b).unwrap();
            let shared = Reactor::shared().unwrap().id();
            assert_eq!(home_of(fd(&b)), Some(shared), "made outside: shared");
            let writer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                (&a).write_all(b"x").unwrap();
                a
            });
            let (here, home) = drive(async {
                b.readable().await.unwrap();
                (Reactor::current().unwrap().id(), home_of(fd(&b)))
            });
            assert_eq!(
                home,
                Some(here),
                "it settled on the waiting thread's reactor"
            );
            let _a = writer.join().unwrap();
            // Its events were this thread's to handle: no fallback thread.
            assert_eq!(
                threads_named("tarn-reactor"),
                0,
                "a fallback thread started"
            );
            // Settled: a wait elsewhere later does not move it again.
            let mut buf = [0; 1];
            b.get_ref().read_exact(&mut buf).unwrap();
            assert!(futures::executor::block_on(futures::future::poll_fn(
                |cx| { Poll::Ready(b.poll_readable(cx).is_pending()) }
            )));
            assert_eq!(home_of(fd(&b)), Some(here));
        },
    );
}

#[test]
fn a_socket_used_on_another_thread_is_woken_from_its_home_reactor() {
    isolated(
        "a_socket_used_on_another_thread_is_woken_from_its_home_reactor",
        || {
            let (to_b, from_a) = mpsc::channel::<Async<std::os::unix::net::UnixStream>>();
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let (peer, b) = unix_pair();
            // Thread A: makes the socket, waits on it once (it settles on
            // A's reactor), hands it to thread B, and keeps driving.
            let thread_a = thread::spawn(move || {
                drive(async move {
                    let b = Async::new(b).unwrap();
                    // A wait here (nothing to read yet) settles it here.
                    let peer = thread::spawn(move || {
                        thread::sleep(Duration::from_millis(10));
                        (&peer).write_all(b"1").unwrap();
                        peer
                    });
                    b.readable().await.unwrap();
                    let peer = peer.join().unwrap();
                    b.get_ref().read_exact(&mut [0; 1]).unwrap();
                    let home = home_of(fd(&b)).unwrap();
                    assert_eq!(home, Reactor::current().unwrap().id());
                    to_b.send(b).unwrap();
                    // Once B surely waits, the byte it waits for.
                    Timer::after(Duration::from_millis(20)).await;
                    (&peer).write_all(b"2").unwrap();
                    // Drive until B is done: B's read is woken from here.
                    while done_rx.try_recv().is_err() {
                        Timer::after(Duration::from_millis(1)).await;
                    }
                    (peer, home)
                })
            });
            let thread_b = thread::spawn(move || {
                let b = from_a.recv().unwrap();
                drive(async move {
                    let mut byte = [0; 1];
                    let got = b.read_with(|s| (&mut &*s).read(&mut byte)).await.unwrap();
                    assert_eq!((got, byte), (1, *b"2"));
                    (Reactor::current().unwrap().id(), home_of(fd(&b)), b)
                })
            });
            let (b_reactor, b_home, b) = thread_b.join().unwrap();
            done_tx.send(()).unwrap();
            let (peer, a_home) = thread_a.join().unwrap();
            assert_eq!(b_home, Some(a_home), "it stayed on A's reactor");
            if per_thread() {
                assert_ne!(b_reactor, a_home, "B drove a reactor of its own");
            }
            drop((peer, b));
        },
    );
}

#[test]
fn a_thread_reactor_whose_thread_ended_still_wakes_a_waiter_of_another_thread() {
    isolated(
        "a_thread_reactor_whose_thread_ended_still_wakes_a_waiter_of_another_thread",
        || {
            let (peer, b) = unix_pair();
            // Settled on a thread's reactor by a wait there; then the
            // thread ends, and the socket is another executor's.
            let (b, peer) = thread::spawn(move || {
                drive(async move {
                    let b = Async::new(b).unwrap();
                    let peer = thread::spawn(move || {
                        thread::sleep(Duration::from_millis(10));
                        (&peer).write_all(b"1").unwrap();
                        peer
                    });
                    b.readable().await.unwrap();
                    let peer = peer.join().unwrap();
                    let mut byte = [0; 1];
                    b.get_ref().read_exact(&mut byte).unwrap();
                    (b, peer)
                })
            })
            .join()
            .unwrap();
            let writer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                (&peer).write_all(b"2").unwrap();
                peer
            });
            let start = Instant::now();
            let woken = futures::executor::block_on(tarn_reactor::timeout(PATIENCE, b.readable()));
            assert!(woken.is_ok(), "never woken: its reactor had no driver");
            assert!(start.elapsed() < PATIENCE);
            let _peer = writer.join().unwrap();
        },
    );
}

#[test]
fn a_foreign_timer_polled_inside_drive_fires_after_drive_returns() {
    isolated(
        "a_foreign_timer_polled_inside_drive_fires_after_drive_returns",
        || {
            use futures::task::LocalSpawnExt;

            let fired = Arc::new(AtomicBool::new(false));
            let mut pool = futures::executor::LocalPool::new();
            let deadline = Instant::now() + native_or_valgrind(ms(50), ms(3_000));
            let set = Arc::clone(&fired);
            pool.spawner()
                .spawn_local(async move {
                    Timer::at(deadline).await;
                    assert!(Instant::now() >= deadline, "fired early");
                    set.store(true, SeqCst);
                })
                .unwrap();
            // First polled inside drive (on epoll: on this thread's reactor,
            // with the pool's waker, which drive will not poll).
            drive(async { pool.run_until_stalled() });
            assert!(!fired.load(SeqCst));
            assert!(
                eventually(PATIENCE, || {
                    pool.run_until_stalled();
                    fired.load(SeqCst)
                }),
                "the timer never fired once drive returned"
            );
        },
    );
}

#[test]
fn a_timer_polled_with_another_threads_waker_moves_to_that_threads_reactor() {
    isolated(
        "a_timer_polled_with_another_threads_waker_moves_to_that_threads_reactor",
        || {
            let (send, recv) = mpsc::channel();
            let mut timer = Timer::after(native_or_valgrind(ms(100), ms(5_000)));
            let driver = thread::spawn(move || {
                drive(async move {
                    std::future::poll_fn(|cx| {
                        assert!(Pin::new(&mut timer).poll(cx).is_pending());
                        Poll::Ready(())
                    })
                    .await;
                    let here = Reactor::current().unwrap();
                    assert_eq!(here.stats().timers, 1, "armed on this thread's reactor");
                    send.send(timer).unwrap();
                    here
                })
            });
            let mut timer = recv.recv().unwrap();
            let theirs = driver.join().unwrap();
            let shared = Reactor::shared().unwrap();
            let before = shared.stats().timers;
            futures::executor::block_on(futures::future::poll_fn(|cx: &mut Context<'_>| {
                assert!(Pin::new(&mut timer).poll(cx).is_pending());
                Poll::Ready(())
            }));
            if per_thread() {
                assert_eq!(theirs.stats().timers, 0, "left the first thread's reactor");
                assert_eq!(shared.stats().timers, before + 1, "now on the shared one");
            }
            futures::executor::block_on(&mut timer);
        },
    );
}

#[test]
fn a_thread_busy_in_its_executor_does_not_hold_up_a_foreign_executors_timer() {
    if !per_thread() {
        // poll and select keep one shared reactor, which a tarn executor
        // drives while it runs (the fallback thread stepping aside), as
        // the driver module documents: this holds on epoll only.
        return;
    }
    isolated(
        "a_thread_busy_in_its_executor_does_not_hold_up_a_foreign_executors_timer",
        || {
            let busy = Arc::new(AtomicBool::new(true));
            let (started_tx, started_rx) = mpsc::channel();
            let still_busy = Arc::clone(&busy);
            let tokio_thread = thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    started_rx.recv().unwrap();
                    Timer::after(Duration::from_millis(10)).await;
                    // Fired while the other thread was still in its poll.
                    still_busy.load(SeqCst)
                })
            });
            drive(async {
                started_tx.send(()).unwrap();
                // One long poll: this thread's reactor waits meanwhile, the
                // shared one (the tokio task's timer) must not.
                thread::sleep(native_or_valgrind(ms(600), ms(6_000)));
                busy.store(false, SeqCst);
            });
            assert!(
                tokio_thread.join().unwrap(),
                "the tokio task's 10 ms timer waited for the busy thread"
            );
        },
    );
}

/// A multi-threaded executor plugged in through `DriverGuard` polls one
/// task with the same waker on whichever thread runs it. A timer the task
/// armed on thread A and polls again on thread B moves to B's reactor even
/// though the waker is the same: A has stopped driving (and named that
/// waker as its own, so nothing handed A's reactor on), and B, parked in
/// its own reactor, is the only one left to fire it. Before, a re-poll
/// with the same waker kept the timer where it was, and it never fired.
#[test]
fn a_timer_polled_with_the_same_waker_on_another_driving_thread_moves_there() {
    isolated(
        "a_timer_polled_with_the_same_waker_on_another_driving_thread_moves_there",
        || {
            use tarn_reactor::driver::{DriverGuard, Parker};
            let parker = Parker::new();
            let waker = parker.waker();
            let (timer_tx, timer_rx) = mpsc::channel();
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let thread_a = {
                let waker = waker.clone();
                thread::spawn(move || {
                    let guard = DriverGuard::enter();
                    DriverGuard::polling(&waker);
                    let mut timer = Timer::after(native_or_valgrind(ms(20), ms(2_000)));
                    let mut cx = Context::from_waker(&waker);
                    assert!(Pin::new(&mut timer).poll(&mut cx).is_pending());
                    drop(guard);
                    timer_tx.send(timer).unwrap();
                    // The thread (and its reactor) lives on, not driving.
                    let _ = done_rx.recv();
                })
            };
            let mut timer = timer_rx.recv().unwrap();
            let _guard = DriverGuard::enter();
            DriverGuard::polling(&waker);
            let mut cx = Context::from_waker(&waker);
            // A hung run ends here instead: unpark once the timer is long
            // due (the timer then sees the clock past its deadline).
            let unparker = parker.unparker();
            let rescued = Arc::new(AtomicBool::new(false));
            let rescuer = Arc::clone(&rescued);
            thread::spawn(move || {
                thread::sleep(native_or_valgrind(PATIENCE / 10, PATIENCE));
                rescuer.store(true, SeqCst);
                unparker.unpark();
            });
            while Pin::new(&mut timer).poll(&mut cx).is_pending() {
                parker.park();
            }
            assert!(
                !rescued.load(SeqCst),
                "a 20 ms timer re-polled on this thread did not fire (no reactor drove it)"
            );
            drop(done_tx);
            thread_a.join().unwrap();
        },
    );
}

//! No lost wakeups: readiness that races with a task storing its waker still
//! wakes it (100k-round ping-pong against a plain thread, through the
//! `AsyncRead`/`AsyncWrite` path and through `readable()` plus a raw read,
//! and between threads that all drive the reactor); wakers fired from other
//! threads end a `block_on` asleep in `select`; every task waiting on one fd
//! and direction is woken by one event, and reader and writer of one fd
//! independently; a future polled elsewhere first wakes its last waker; the
//! reactor keeps firing timers and I/O under a future that always wakes
//! itself, and after a panic while its driver lock was held; a task woken
//! by its own thread's `react` costs no extra `select`; and
//! `async_executor::LocalExecutor` stacked on `tarn_reactor::drive` runs
//! I/O and timers. Re-run on the poll and select backends.
mod common;

use std::future::Future;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::pin::{pin, Pin};
use std::sync::{mpsc, Arc, Barrier};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use common::waiting_on;
use futures::future::{join_all, select, Either};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::stream::{FuturesUnordered, StreamExt};
use tarn_reactor::{drive, timeout, Async, Timer};
use tarn_test_support::{
    bounded, fill_send_buffer, isolated, isolated_with_patience, native_or_valgrind,
    rerun_on_poll_and_select, unix_pair, Rng, HANG,
};

/// Round trips of the ping-pong tests (1,000 under valgrind).
fn rounds() -> u32 {
    native_or_valgrind(100_000, 1_000)
}

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
}

/// A future that wakes itself and returns `Pending` once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_now() -> YieldNow {
    YieldNow(false)
}

#[test]
fn ping_pong_with_a_thread_through_async_read_never_loses_a_wakeup() {
    bounded("ping_pong_async_read", || {
        let (mut a, b) = unix_pair();
        let peer = thread::spawn(move || {
            let mut ack = [0u8];
            for i in 0..rounds() {
                a.write_all(&[i as u8]).unwrap();
                a.read_exact(&mut ack).unwrap();
                assert_eq!(ack[0], (i as u8).wrapping_add(1), "round {i}");
            }
        });
        drive(async {
            let mut b = Async::new(b)?;
            let mut byte = [0u8];
            for i in 0..rounds() {
                b.read_exact(&mut byte).await?;
                assert_eq!(byte[0], i as u8, "round {i}");
                b.write_all(&[byte[0].wrapping_add(1)]).await?;
            }
            io::Result::Ok(())
        })
        .unwrap();
        peer.join().unwrap();
    });
}

#[test]
fn ping_pong_with_a_thread_through_readable_and_a_raw_read_never_loses_a_wakeup() {
    bounded("ping_pong_readable", || {
        let (mut a, b) = unix_pair();
        let peer = thread::spawn(move || {
            let mut ack = [0u8];
            for i in 0..rounds() {
                a.write_all(&[i as u8]).unwrap();
                a.read_exact(&mut ack).unwrap();
                assert_eq!(ack[0], i as u8, "round {i}");
            }
        });
        drive(async {
            let b = Async::new(b)?;
            let mut byte = [0u8];
            for i in 0..rounds() {
                loop {
                    b.readable().await?;
                    match b.get_ref().read(&mut byte) {
                        Ok(1) => break,
                        Ok(n) => panic!("round {i}: read {n} bytes"),
                        // Readiness may be stale; waiting again must work.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                }
                assert_eq!(byte[0], i as u8, "round {i}");
                // The socket buffer is nearly empty: this cannot block.
                (&mut b.get_ref()).write_all(&byte)?;
            }
            io::Result::Ok(())
        })
        .unwrap();
        peer.join().unwrap();
    });
}

#[test]
fn stream_of_single_bytes_from_a_thread_is_read_completely() {
    bounded("stream_of_single_bytes", || {
        let (mut a, b) = unix_pair();
        let peer = thread::spawn(move || {
            for i in 0..rounds() {
                a.write_all(&[i as u8]).unwrap();
                if i % 64 == 0 {
                    thread::yield_now();
                }
            }
        });
        let received = drive(async {
            let b = Async::new(b)?;
            let mut expected = 0u32;
            let mut buf = [0u8; 256];
            loop {
                let n = (&b).read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                for &byte in &buf[..n] {
                    assert_eq!(byte, expected as u8, "byte {expected}");
                    expected += 1;
                }
            }
            io::Result::Ok(expected)
        })
        .unwrap();
        peer.join().unwrap();
        assert_eq!(received, rounds());
    });
}

#[test]
fn ping_pong_between_two_driving_threads_never_loses_a_wakeup() {
    // Both threads run tarn's block_on, so they take turns holding the
    // driver lock: a wakeup must reach a thread whichever of them drives.
    bounded("ping_pong_two_drivers", || {
        let (a, b) = unix_pair();
        let rounds = rounds() / 2;
        let other = thread::spawn(move || {
            drive(async {
                let mut a = Async::new(a)?;
                let mut byte = [0u8];
                for i in 0..rounds {
                    a.write_all(&[i as u8]).await?;
                    a.read_exact(&mut byte).await?;
                    assert_eq!(byte[0], i as u8, "round {i}");
                }
                io::Result::Ok(())
            })
        });
        drive(async {
            let mut b = Async::new(b)?;
            let mut byte = [0u8];
            for i in 0..rounds {
                b.read_exact(&mut byte).await?;
                assert_eq!(byte[0], i as u8, "round {i}");
                b.write_all(&byte).await?;
            }
            io::Result::Ok(())
        })
        .unwrap();
        other.join().unwrap().unwrap();
    });
}

#[test]
fn task_is_woken_by_a_oneshot_sent_from_another_thread() {
    bounded("oneshot_from_thread", || {
        let mut rng = Rng::xorshift(2);
        for i in 0..native_or_valgrind(2_000u32, 200) {
            let (tx, rx) = futures::channel::oneshot::channel();
            // Mostly immediate sends (racing with the task going to sleep),
            // sometimes after the block_on is surely asleep in select.
            let delay = match rng.below(8) {
                0 => Duration::from_micros(rng.below(2_000)),
                _ => Duration::ZERO,
            };
            let sender = thread::spawn(move || {
                if !delay.is_zero() {
                    thread::sleep(delay);
                }
                tx.send(i).unwrap();
            });
            assert_eq!(drive(rx), Ok(i));
            sender.join().unwrap();
        }
    });
}

#[test]
fn task_woken_from_another_thread_while_also_waiting_on_io_and_a_timer() {
    bounded("wake_from_thread_with_io", || {
        let (a, b) = unix_pair();
        let b = Async::new(b).unwrap();
        let (tx, rx) = futures::channel::oneshot::channel();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            tx.send(()).unwrap();
        });
        drive(async {
            let io = pin!(b.readable());
            let timer = Timer::after(Duration::from_secs(30));
            match select(pin!(rx), select(io, timer)).await {
                Either::Left((res, _)) => res.unwrap(),
                Either::Right(_) => panic!("the I/O or the 30 s timer won over the channel"),
            }
        });
        sender.join().unwrap();
        drop(a);
    });
}

#[test]
fn timers_and_io_interleave_without_losing_either() {
    bounded("timers_and_io", || {
        let (mut a, b) = unix_pair();
        const BYTES: usize = 2_000;
        let writer = thread::spawn(move || {
            for i in 0..BYTES {
                a.write_all(&[i as u8]).unwrap();
                if i % 20 == 0 {
                    thread::sleep(Duration::from_micros(300));
                }
            }
        });
        drive(async {
            let b = Async::new(b).unwrap();
            let reader = async {
                let mut got = 0;
                let mut buf = [0u8; 64];
                while got < BYTES {
                    let n = (&b).read(&mut buf).await.unwrap();
                    assert!(n > 0, "early end of stream");
                    for &byte in &buf[..n] {
                        assert_eq!(byte, got as u8);
                        got += 1;
                    }
                }
            };
            let timers = async {
                for i in 0..50u64 {
                    let d = Duration::from_micros(100 + i * 37);
                    let start = Instant::now();
                    let fired = Timer::after(d).await;
                    assert!(start.elapsed() >= d, "timer {d:?} fired early");
                    assert!(fired >= start + d);
                }
            };
            futures::join!(reader, timers);
        });
        writer.join().unwrap();
    });
}

#[test]
fn one_write_wakes_every_readable_waiter() {
    bounded("readable_waiters", || {
        let (a, b) = unix_pair();
        let b = Async::new(b).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
        drive(async {
            // Readiness futures under one join (one waker, many slots).
            let waiters = join_all((0..4).map(|_| b.readable()));
            let write = async {
                assert_eq!(waiting_on(fd).0, 4, "4 readable() futures wait");
                (&a).write_all(b"x").unwrap();
            };
            let (results, ()) = futures::join!(waiters, write);
            assert!(results.iter().all(|r| r.is_ok()));
        });
        assert_eq!(waiting_on(fd), (0, 0));
        let mut byte = [0u8];
        b.get_ref().read_exact(&mut byte).unwrap();
    });
}

#[test]
fn one_write_from_another_thread_wakes_every_readable_waiter_with_its_own_waker() {
    bounded("readable_waiters_own_wakers", || {
        let (a, b) = unix_pair();
        let b = Async::new(b).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
        let writer = thread::spawn(move || {
            // Wait until all six wait, then write once.
            while waiting_on(fd).0 < 6 {
                thread::sleep(Duration::from_millis(1));
            }
            (&a).write_all(b"x").unwrap();
            a
        });
        drive(async {
            // FuturesUnordered gives each future its own waker: three wait
            // with readable() and three with poll_readable.
            let mut set = FuturesUnordered::new();
            for i in 0..6 {
                let b = &b;
                set.push(async move {
                    if i % 2 == 0 {
                        b.readable().await
                    } else {
                        std::future::poll_fn(|cx| b.poll_readable(cx)).await
                    }
                });
            }
            let mut done = 0;
            while let Some(res) = set.next().await {
                res.unwrap();
                done += 1;
            }
            assert_eq!(done, 6);
        });
        let _a = writer.join().unwrap();
        assert_eq!(waiting_on(fd), (0, 0));
    });
}

#[test]
fn one_drain_wakes_every_writable_waiter() {
    bounded("writable_waiters", || {
        let (a, b) = unix_pair();
        fill_send_buffer(&a);
        let a = Async::new(a).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        let drainer = thread::spawn(move || {
            while waiting_on(fd).1 < 5 {
                thread::sleep(Duration::from_millis(1));
            }
            let mut buf = vec![0u8; 1 << 20];
            b.set_nonblocking(true).unwrap();
            loop {
                match (&b).read(&mut buf) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            b
        });
        drive(async {
            let set = FuturesUnordered::new();
            for i in 0..5 {
                let a = &a;
                set.push(async move {
                    if i % 2 == 0 {
                        a.writable().await
                    } else {
                        std::future::poll_fn(|cx| a.poll_writable(cx)).await
                    }
                });
            }
            let together = futures::future::join(
                set.collect::<Vec<_>>(),
                // The same under one join.
                join_all((0..3).map(|_| a.writable())),
            );
            let (own, shared) = together.await;
            assert_eq!(own.len(), 5);
            assert!(own.into_iter().chain(shared).all(|r| r.is_ok()));
        });
        let _b = drainer.join().unwrap();
        assert_eq!(waiting_on(fd), (0, 0));
    });
}

#[test]
fn readiness_future_first_polled_elsewhere_wakes_the_task_that_polls_it_last() {
    // readable() polled once by hand (a waker that does nothing), then
    // awaited by block_on: the stored waker must be replaced, or the task
    // sleeps through the event.
    bounded("readiness_new_waker", || {
        let (a, b) = unix_pair();
        let b = Async::new(b).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
        let mut readable = Box::pin(b.readable());
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(readable.as_mut().poll(&mut cx).is_pending());
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            (&a).write_all(b"n").unwrap();
            a
        });
        drive(readable).unwrap();
        let _a = writer.join().unwrap();
        assert_eq!(waiting_on(fd), (0, 0));
    });
}

#[test]
fn two_tasks_reading_one_byte_each_are_both_served() {
    // poll_read_with stores each task's waker; both are woken by the first
    // byte, one gets it, the other waits again for the second.
    bounded("two_readers", || {
        let (a, b) = unix_pair();
        let b = Async::new(b).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
        let writer = thread::spawn(move || {
            for _ in 0..2 {
                while waiting_on(fd).0 < 1 {
                    thread::sleep(Duration::from_millis(1));
                }
                (&a).write_all(b"y").unwrap();
                thread::sleep(Duration::from_millis(5));
            }
            a
        });
        drive(async {
            let set = FuturesUnordered::new();
            for _ in 0..2 {
                let b = &b;
                set.push(async move {
                    let mut byte = [0u8];
                    b.read_with(|s| (&mut &*s).read(&mut byte)).await.unwrap();
                    byte[0]
                });
            }
            let got: Vec<u8> = set.collect().await;
            assert_eq!(got, b"yy");
        });
        let _a = writer.join().unwrap();
    });
}

#[test]
fn local_executor_stacked_on_block_on_runs_io_and_timers() {
    bounded("local_executor_stacked", || {
        let ex = async_executor::LocalExecutor::new();
        let total = drive(ex.run(async {
            let mut tasks = Vec::new();
            for i in 0..8u8 {
                tasks.push(ex.spawn(async move {
                    let (a, b) = unix_pair();
                    let (mut a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
                    Timer::after(Duration::from_millis(u64::from(i))).await;
                    a.write_all(&[i; 1000]).await.unwrap();
                    let mut buf = [0u8; 1000];
                    b.read_exact(&mut buf).await.unwrap();
                    assert!(buf.iter().all(|&x| x == i));
                    u32::from(i)
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await;
            }
            total
        }));
        assert_eq!(total, (0..8).sum());
    });
}

/// Runs `work` beside a future that wakes itself on every poll, in a
/// `FuturesUnordered` (so `work` is polled only when its own waker fires),
/// until `work` completes.
async fn beside_a_spinner(work: impl Future<Output = ()>) {
    let mut set: FuturesUnordered<Pin<Box<dyn Future<Output = bool> + '_>>> =
        FuturesUnordered::new();
    set.push(Box::pin(async {
        work.await;
        true
    }));
    set.push(Box::pin(async {
        loop {
            yield_now().await;
        }
    }));
    while let Some(done) = set.next().await {
        if done {
            return;
        }
    }
}

#[test]
fn block_on_fires_a_timer_while_another_future_keeps_waking_itself() {
    // A future that is always ready again (a busy task yielding in a loop)
    // must not starve the reactor: the timer, polled only when woken, still
    // fires.
    isolated_with_patience(
        "block_on_fires_a_timer_while_another_future_keeps_waking_itself",
        HANG,
        || {
            let start = Instant::now();
            drive(beside_a_spinner(async {
                Timer::after(Duration::from_millis(20)).await;
            }));
            assert!(start.elapsed() >= Duration::from_millis(20));
        },
    );
}

#[test]
fn block_on_delivers_io_while_another_future_keeps_waking_itself() {
    isolated_with_patience(
        "block_on_delivers_io_while_another_future_keeps_waking_itself",
        HANG,
        || {
            let (a, b) = unix_pair();
            let b = Async::new(b).unwrap();
            let writer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                (&a).write_all(b"z").unwrap();
                a
            });
            drive(beside_a_spinner(async {
                let mut byte = [0u8];
                (&b).read_exact(&mut byte).await.unwrap();
                assert_eq!(&byte, b"z");
            }));
            let _a = writer.join().unwrap();
        },
    );
}

#[test]
fn stacked_local_executor_with_a_busy_task_still_fires_timers() {
    // smol's model: a LocalExecutor on tarn's block_on. A task that yields
    // in a loop keeps the executor busy; it yields to block_on every so
    // often, which must still let the reactor fire the other task's timer.
    isolated_with_patience(
        "stacked_local_executor_with_a_busy_task_still_fires_timers",
        HANG,
        || {
            let stop = std::cell::Cell::new(false);
            let ex = async_executor::LocalExecutor::new();
            drive(ex.run(async {
                let busy = ex.spawn(async {
                    while !stop.get() {
                        yield_now().await;
                    }
                });
                let sleeper = ex.spawn(async {
                    let start = Instant::now();
                    Timer::after(Duration::from_millis(20)).await;
                    assert!(start.elapsed() >= Duration::from_millis(20));
                    stop.set(true);
                });
                sleeper.await;
                busy.await;
            }));
        },
    );
}

#[test]
fn reactor_keeps_working_after_a_panic_while_its_driver_lock_was_held() {
    // A panic while the driver lock is held (an executor's own code, or a
    // waker that panics inside `react`) poisons the lock's mutex; the
    // reactor must still be drivable afterwards.
    isolated_with_patience(
        "reactor_keeps_working_after_a_panic_while_its_driver_lock_was_held",
        HANG,
        || {
            let panicked = std::panic::catch_unwind(|| {
                let guard = tarn_reactor::driver::DriverGuard::enter();
                let _driving = guard.reactor().unwrap().lock();
                panic!("boom while driving");
            });
            assert!(panicked.is_err());
            let start = Instant::now();
            drive(Timer::after(Duration::from_millis(5)));
            assert!(start.elapsed() >= Duration::from_millis(5));
            let (a, b) = unix_pair();
            let b = Async::new(b).unwrap();
            (&a).write_all(b"p").unwrap();
            drive(b.readable()).unwrap();
        },
    );
}

#[test]
fn task_woken_by_its_own_threads_react_does_not_interrupt_the_next_select() {
    // DESIGN: block_on sleeps in select with no extra wakeup. A task woken
    // by the event its own thread is dispatching must not also notify the
    // reactor (that thread is not in select): the notification would make
    // the next select return at once with nothing, once per wakeup. Counted
    // as selects that delivered no event (there are no timers here); a
    // count, not a timing, and generous.
    isolated(
        "task_woken_by_its_own_threads_react_does_not_interrupt_the_next_select",
        || {
            const TRIPS: u32 = 2_000;
            let (mut a, b) = unix_pair();
            let peer = thread::spawn(move || {
                let mut byte = [0u8];
                for _ in 0..TRIPS {
                    a.read_exact(&mut byte).unwrap();
                    // Reply only once the task surely sleeps in select, so
                    // that a needless wakeup shows as a select of its own.
                    thread::sleep(Duration::from_micros(100));
                    a.write_all(&byte).unwrap();
                }
            });
            let before = tarn_reactor::stats();
            drive(async {
                let mut b = Async::new(b).unwrap();
                let mut byte = [0u8];
                for i in 0..TRIPS {
                    b.write_all(&[i as u8]).await.unwrap();
                    b.read_exact(&mut byte).await.unwrap();
                }
            });
            let after = tarn_reactor::stats();
            peer.join().unwrap();
            let selects = after.selects - before.selects;
            let events = after.events - before.events;
            let empty = selects.saturating_sub(events);
            assert!(
                empty < u64::from(TRIPS) / 4,
                "{selects} selects delivered {events} events in {TRIPS} round trips: \
                 at least {empty} returned with nothing"
            );
        },
    );
}

#[test]
fn reader_and_writer_waiting_on_one_fd_are_woken_independently() {
    // Both directions of one fd wait at once: data arriving wakes only the
    // reader and must leave the writer's wait armed (the oneshot backends
    // re-arm the direction that did not fire); then room to write wakes
    // the writer.
    bounded("both_directions", || {
        for _ in 0..50 {
            let (a, b) = unix_pair();
            fill_send_buffer(&a);
            let a = Async::new(a).unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
            let peer = thread::spawn(move || {
                while waiting_on(fd) != (1, 1) {
                    thread::sleep(Duration::from_micros(200));
                }
                (&b).write_all(b"d").unwrap();
                // Let the reader's wakeup happen before making room.
                thread::sleep(Duration::from_millis(1));
                b.set_nonblocking(true).unwrap();
                let mut sink = vec![0u8; 1 << 20];
                while let Ok(n) = (&b).read(&mut sink) {
                    if n == 0 {
                        break;
                    }
                }
                b
            });
            drive(async {
                let read = async {
                    let mut byte = [0u8];
                    (&a).read_exact(&mut byte).await.unwrap();
                    assert_eq!(&byte, b"d");
                };
                let write = async {
                    (&a).write_all(b"w").await.unwrap();
                };
                futures::join!(read, write);
            });
            let _b = peer.join().unwrap();
        }
    });
}

#[test]
fn many_threads_each_driving_their_own_ping_pong() {
    // Four block_on threads contend for the driver lock; each must be woken
    // whichever thread happens to be in select.
    bounded("many_drivers", || {
        let threads = 4;
        let barrier = Arc::new(Barrier::new(threads));
        let (done_tx, done_rx) = mpsc::channel();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = barrier.clone();
                let done_tx = done_tx.clone();
                thread::spawn(move || {
                    let (mut a, b): (UnixStream, UnixStream) = unix_pair();
                    let trips = native_or_valgrind(5_000u32, 200);
                    let peer = thread::spawn(move || {
                        let mut byte = [0u8];
                        for _ in 0..trips {
                            a.read_exact(&mut byte).unwrap();
                            a.write_all(&byte).unwrap();
                        }
                    });
                    barrier.wait();
                    drive(async {
                        let mut b = Async::new(b).unwrap();
                        let mut byte = [0u8];
                        for i in 0..trips {
                            b.write_all(&[i as u8]).await.unwrap();
                            // Sometimes also sleep on a timer, so that
                            // threads park in every state.
                            if i % 500 == 0 {
                                let _ = timeout(Duration::from_micros(200), b.readable()).await;
                            }
                            b.read_exact(&mut byte).await.unwrap();
                            assert_eq!(byte[0], i as u8);
                        }
                    });
                    peer.join().unwrap();
                    done_tx.send(t).unwrap();
                })
            })
            .collect();
        drop(done_tx);
        let mut finished: Vec<usize> = done_rx.iter().collect();
        finished.sort_unstable();
        assert_eq!(finished, (0..threads).collect::<Vec<_>>());
        for h in handles {
            h.join().unwrap();
        }
    });
}

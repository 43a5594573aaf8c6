//! tarn's `Async` and `Timer` under executors that know nothing of tarn,
//! with the reactor driven by its fallback thread: `futures::executor`'s
//! `block_on` and `ThreadPool`, tokio's current-thread and multi-thread
//! runtimes, and `async_executor::Executor`; each runs echo exchanges over
//! `Async<UnixStream>` and `Async<TcpStream>` beside timers. Also: the
//! fallback thread takes over when the last tarn `block_on` returns while a
//! foreign executor's task still waits on tarn I/O or a timer. No test in
//! this binary runs tarn's own `block_on` in-process (it would make the
//! fallback thread step aside meanwhile); the one that needs it runs in a
//! child process. Re-run on the poll and select backends.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::task::SpawnExt;
use tarn_reactor::{timeout, Async, Timer};
use tarn_test_support::{
    bounded, isolated_with_patience, native_or_valgrind, rerun_on_poll_and_select, tcp_pair,
    unix_pair, HANG,
};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
}

/// Echoes `rounds` messages of growing size through a server task and a
/// client task joined in one future, with a timer between some rounds.
async fn echo_unix(rounds: usize) -> io::Result<()> {
    let (a, b) = unix_pair();
    let (mut client, mut server) = (Async::new(a)?, Async::new(b)?);
    let serve = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = server.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(());
            }
            server.write_all(&buf[..n]).await?;
        }
    };
    let talk = async move {
        for round in 0..rounds {
            let msg: Vec<u8> = (0..round * 997 + 1).map(|i| (i + round) as u8).collect();
            client.write_all(&msg).await?;
            let mut back = vec![0u8; msg.len()];
            client.read_exact(&mut back).await?;
            assert_eq!(back, msg, "round {round}");
            if round % 4 == 0 {
                let start = Instant::now();
                Timer::after(Duration::from_millis(1)).await;
                assert!(start.elapsed() >= Duration::from_millis(1));
            }
        }
        drop(client);
        io::Result::Ok(())
    };
    let (served, talked) = futures::join!(serve, talk);
    served?;
    talked
}

/// The same over TCP, with the server side on a plain thread.
async fn echo_tcp(rounds: usize) -> io::Result<()> {
    let (client, server): (TcpStream, TcpStream) = tcp_pair();
    let echo = thread::spawn(move || {
        let mut server = server;
        let mut buf = [0u8; 4096];
        loop {
            match server.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => server.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let client = Async::new(client)?;
    for round in 0..rounds {
        let msg = format!("message {round}").into_bytes();
        (&client).write_all(&msg).await?;
        let mut back = vec![0u8; msg.len()];
        (&client).read_exact(&mut back).await?;
        assert_eq!(back, msg);
    }
    // Nothing more comes: the read times out.
    let mut byte = [0u8];
    let mut reader = &client;
    assert!(timeout(Duration::from_millis(5), reader.read(&mut byte))
        .await
        .is_err());
    drop(client);
    echo.join().unwrap();
    Ok(())
}

async fn timers_in_order() {
    // Deadlines from one start, so the order does not depend on how fast
    // the timers are created.
    let ms = |n: u64| Duration::from_millis(n * native_or_valgrind(1, 25));
    let start = Instant::now();
    let (a, b, c) = futures::join!(
        Timer::at(start + ms(6)),
        Timer::at(start + ms(2)),
        Timer::at(start + ms(4)),
    );
    assert!(b < c && c < a);
    assert!(start.elapsed() >= ms(6));
}

#[test]
fn futures_block_on_runs_tarn_io_and_timers() {
    bounded("futures_block_on", || {
        futures::executor::block_on(async {
            echo_unix(20).await.unwrap();
            echo_tcp(20).await.unwrap();
            timers_in_order().await;
        });
    });
}

#[test]
fn futures_thread_pool_runs_tarn_io_and_timers() {
    bounded("futures_thread_pool", || {
        let pool = futures::executor::ThreadPool::builder()
            .pool_size(3)
            .create()
            .unwrap();
        let handles: Vec<_> = (0..6)
            .map(|i| {
                pool.spawn_with_handle(async move {
                    if i % 2 == 0 {
                        echo_unix(10).await.unwrap();
                    } else {
                        echo_tcp(10).await.unwrap();
                    }
                    timers_in_order().await;
                    i
                })
                .unwrap()
            })
            .collect();
        let done = futures::executor::block_on(futures::future::join_all(handles));
        assert_eq!(done, (0..6).collect::<Vec<_>>());
    });
}

#[test]
fn tokio_current_thread_runtime_runs_tarn_io_and_timers() {
    bounded("tokio_current_thread", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..4)
                .map(|i| {
                    tokio::spawn(async move {
                        echo_unix(10).await.unwrap();
                        echo_tcp(5).await.unwrap();
                        timers_in_order().await;
                        i
                    })
                })
                .collect();
            // tokio's own timer beside tarn's.
            tokio::time::sleep(Duration::from_millis(1)).await;
            for (i, t) in tasks.into_iter().enumerate() {
                assert_eq!(t.await.unwrap(), i);
            }
        });
    });
}

#[test]
fn tokio_multi_thread_runtime_runs_tarn_io_and_timers() {
    bounded("tokio_multi_thread", || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    tokio::spawn(async move {
                        echo_unix(10).await.unwrap();
                        echo_tcp(5).await.unwrap();
                        timers_in_order().await;
                        i
                    })
                })
                .collect();
            for (i, t) in tasks.into_iter().enumerate() {
                assert_eq!(t.await.unwrap(), i);
            }
        });
    });
}

#[test]
fn tokio_task_awaits_a_tarn_readable_woken_by_a_std_thread() {
    bounded("tokio_readable", || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (a, b) = unix_pair();
        let writer = thread::spawn(move || {
            for i in 0..200u8 {
                thread::sleep(Duration::from_micros(200));
                (&a).write_all(&[i]).unwrap();
            }
            a
        });
        rt.block_on(async move {
            let b = Async::new(b).unwrap();
            let mut next = 0u8;
            while next < 200 {
                b.readable().await.unwrap();
                let mut buf = [0u8; 16];
                match b.get_ref().read(&mut buf) {
                    Ok(n) => {
                        for &x in &buf[..n] {
                            assert_eq!(x, next);
                            next += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let _a = writer.join().unwrap();
    });
}

#[test]
fn async_executor_runs_tarn_io_and_timers() {
    bounded("async_executor", || {
        let ex = async_executor::Executor::new();
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                ex.spawn(async move {
                    if i % 2 == 0 {
                        echo_unix(10).await.unwrap();
                    } else {
                        echo_tcp(10).await.unwrap();
                    }
                    timers_in_order().await;
                    i
                })
            })
            .collect();
        // One extra thread also runs the executor.
        let (stop_tx, stop_rx) = async_channel_pair();
        thread::scope(|s| {
            s.spawn(|| futures::executor::block_on(ex.run(stop_rx)));
            let done = futures::executor::block_on(ex.run(futures::future::join_all(tasks)));
            assert_eq!(done, (0..6).collect::<Vec<_>>());
            stop_tx.send(()).unwrap();
        });
    });
}

/// A one-use stop signal usable as a future on the executor's thread.
fn async_channel_pair() -> (
    futures::channel::oneshot::Sender<()>,
    impl std::future::Future<Output = ()>,
) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

#[test]
fn fallback_thread_takes_over_when_the_last_tarn_block_on_returns() {
    // A fresh process: the fallback thread has not started. A tarn
    // block_on runs on one thread (so it, not the fallback, drives) while a
    // task on a futures ThreadPool stores its wakers for a tarn timer and
    // tarn I/O; then that block_on returns, and the task is not polled again
    // until woken. Somebody must still drive the reactor.
    isolated_with_patience(
        "fallback_thread_takes_over_when_the_last_tarn_block_on_returns",
        HANG,
        || {
            let (started_tx, started_rx) = mpsc::channel();
            let (waiting_tx, waiting_rx) = mpsc::channel::<()>();
            let driver = thread::spawn(move || {
                tarn_reactor::drive(async {
                    started_tx.send(()).unwrap();
                    // Drive until the foreign task has stored its wakers.
                    while waiting_rx.try_recv().is_err() {
                        Timer::after(Duration::from_millis(1)).await;
                    }
                });
            });
            started_rx.recv().unwrap();

            let (a, b) = unix_pair();
            let pool = futures::executor::ThreadPool::builder()
                .pool_size(1)
                .create()
                .unwrap();
            let start = Instant::now();
            let task = pool
                .spawn_with_handle(async move {
                    let b = Async::new(b).unwrap();
                    let timer = Timer::after(Duration::from_millis(50));
                    let mut both = Box::pin(futures::future::join(timer, b.readable()));
                    let mut told = false;
                    let (_, readable) = std::future::poll_fn(|cx| {
                        let res = both.as_mut().poll(cx);
                        if res.is_pending() && !told {
                            // Both wakers are stored now.
                            told = true;
                            waiting_tx.send(()).unwrap();
                        }
                        res
                    })
                    .await;
                    readable.unwrap();
                })
                .unwrap();
            driver.join().unwrap();
            (&a).write_all(b"x").unwrap();
            futures::executor::block_on(task);
            assert!(start.elapsed() >= Duration::from_millis(50));
            // The fallback thread runs as a batch thread (SCHED_BATCH = 3,
            // field 41 of its stat): it does not preempt the threads it
            // serves on every event.
            let fallback = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .map(|t| t.unwrap().path())
                .find(|t| {
                    std::fs::read_to_string(t.join("comm"))
                        .is_ok_and(|c| c.trim() == "tarn-reactor")
                })
                .expect("a thread named tarn-reactor");
            let stat = std::fs::read_to_string(fallback.join("stat")).unwrap();
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            // Fields after the command start at field 3.
            assert_eq!(fields[41 - 3], "3", "scheduling policy of tarn-reactor");
        },
    );
}

#[test]
fn tarn_io_under_a_foreign_executor_after_a_tarn_block_on_returned() {
    // The common sequence in a program: some setup in tarn's block_on,
    // then serving under tokio. Run in a fresh process so that the fallback
    // thread has not been started by another test.
    isolated_with_patience(
        "tarn_io_under_a_foreign_executor_after_a_tarn_block_on_returned",
        HANG,
        || {
            tarn_reactor::drive(Timer::after(Duration::from_millis(1)));
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                echo_unix(5).await.unwrap();
                timers_in_order().await;
            });
        },
    );
}

#[test]
fn echo_pairs_on_plain_threads_each_with_futures_block_on() {
    // Several threads, none of them a tarn driver, all relying on the one
    // fallback thread.
    bounded("plain_threads", || {
        let threads: Vec<_> = (0..4)
            .map(|_| thread::spawn(|| futures::executor::block_on(echo_unix(20)).unwrap()))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn unix_stream_pair_is_usable_after_into_inner_under_a_foreign_executor() {
    bounded("into_inner_foreign", || {
        futures::executor::block_on(async {
            let (a, b): (UnixStream, UnixStream) = unix_pair();
            let a = Async::new(a).unwrap();
            (&a).write_all(b"abc").await.unwrap();
            let mut a = a.into_inner().unwrap();
            a.set_nonblocking(false).unwrap();
            a.write_all(b"def").unwrap();
            let mut b = Async::new(b).unwrap();
            let mut buf = [0u8; 6];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"abcdef");
        });
    });
}

/// A waker that panics in `wake`, as a buggy foreign executor's might.
fn panicking_waker() -> Waker {
    struct Panics;
    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("this waker panics in wake()");
        }
    }
    Waker::from(Arc::new(Panics))
}

/// A waker that records that it was woken.
fn flag_waker() -> (Waker, Arc<AtomicBool>) {
    struct Flag(Arc<AtomicBool>);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }
    let flag = Arc::new(AtomicBool::new(false));
    (Waker::from(Arc::new(Flag(Arc::clone(&flag)))), flag)
}

/// Counts the panics of this process (and prints them as usual).
fn count_panics() -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, SeqCst);
        previous(info);
    }));
    count
}

#[test]
fn a_panicking_waker_does_not_stop_the_rest_of_its_batch() {
    isolated_with_patience(
        "a_panicking_waker_does_not_stop_the_rest_of_its_batch",
        HANG,
        || {
            let panics = count_panics();
            let (peer, a) = unix_pair();
            let a = Async::new(a).unwrap();
            // Drive this thread's reactor here (on poll and select, the
            // shared one, which the fallback thread then leaves to us), so
            // the event is dispatched by the `react` call below.
            let driving = tarn_reactor::driver::DriverGuard::enter();
            let mut driver = driving.reactor().unwrap().lock();
            // Two waiters on one fd and direction, the panicking one first:
            // one event wakes both, in that order.
            let bad = panicking_waker();
            let (good, woken) = flag_waker();
            let mut first = Box::pin(a.readable());
            let mut second = Box::pin(a.readable());
            let mut cx = Context::from_waker(&bad);
            assert!(first.as_mut().poll(&mut cx).is_pending());
            let mut cx = Context::from_waker(&good);
            assert!(second.as_mut().poll(&mut cx).is_pending());

            (&peer).write_all(b"x").unwrap();
            let reacted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                driver.react(Some(Duration::from_secs(2)))
            }));
            assert!(
                woken.load(SeqCst),
                "the waker after the panicking one was not woken"
            );
            assert_eq!(reacted.ok().map(|r| r.unwrap()), Some(2), "react");
            assert_eq!(panics.load(SeqCst), 1, "the panic is reported once");
        },
    );
}

#[test]
fn the_fallback_thread_survives_a_panicking_waker() {
    isolated_with_patience(
        "the_fallback_thread_survives_a_panicking_waker",
        Duration::from_secs(20),
        || {
            let panics = count_panics();
            let (a_peer, a) = unix_pair();
            let a = Async::new(a).unwrap();
            // No tarn executor here: the fallback thread drives, and it is
            // the one that calls the panicking waker.
            let bad = panicking_waker();
            let mut readable = Box::pin(a.readable());
            assert!(readable
                .as_mut()
                .poll(&mut Context::from_waker(&bad))
                .is_pending());
            (&a_peer).write_all(b"x").unwrap();
            let started = Instant::now();
            while panics.load(SeqCst) == 0 {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the fallback thread never woke the panicking waker"
                );
                thread::sleep(Duration::from_millis(1));
            }

            // Later foreign reads and timers still complete.
            let (b_peer, b) = unix_pair();
            let (done, finished) = mpsc::channel();
            thread::spawn(move || {
                let res = futures::executor::block_on(async {
                    let mut b = Async::new(b)?;
                    Timer::after(Duration::from_millis(5)).await;
                    let mut buf = [0; 5];
                    b.read_exact(&mut buf).await?;
                    io::Result::Ok(buf)
                });
                let _ = done.send(res);
            });
            thread::sleep(Duration::from_millis(20));
            (&b_peer).write_all(b"hello").unwrap();
            let read = finished
                .recv_timeout(Duration::from_secs(5))
                .expect("a foreign read after the panic never completed");
            assert_eq!(&read.unwrap(), b"hello");
            assert_eq!(panics.load(SeqCst), 1);
        },
    );
}

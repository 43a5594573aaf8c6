//! Which threads tarn starts: none of its own for a program that only uses
//! tarn's executor, and the fallback reactor thread (`tarn-reactor`) only
//! when a task of another executor waits on tarn I/O.
//!
//! Each test runs in a process of its own, to count that process's
//! threads. `on_poll_and_select_backends` re-runs this binary with
//! `TARN_SELECTOR=poll` and `=select`; the isolated children inherit the
//! backend.

mod common;

use std::io;
use std::time::Duration;

use tarn::io::AsyncReadExt;
use tarn::net::{TcpListener, TcpStream};
use tarn_test_support::{eventually, isolated, rerun_on_poll_and_select, threads_named};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

#[test]
fn block_on_leaving_a_task_waiting_starts_no_thread() {
    isolated("block_on_leaving_a_task_waiting_starts_no_thread", || {
        let (_client, _listener) = tarn::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let client = TcpStream::connect(listener.local_addr()?).await?;
            let (mut conn, _) = listener.accept().await?;
            // A task still waiting on a read when block_on returns: it
            // continues at the next block_on, and needs no other driver.
            tarn::spawn(async move {
                let mut buf = [0; 16];
                conn.read(&mut buf).await
            })
            .detach();
            tarn::Timer::after(Duration::from_millis(1)).await;
            io::Result::Ok((client, listener))
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            threads_named("tarn-reactor"),
            0,
            "a fallback thread started"
        );
    });
}

#[test]
fn a_foreign_task_waiting_when_block_on_returns_gets_the_fallback_thread() {
    isolated(
        "a_foreign_task_waiting_when_block_on_returns_gets_the_fallback_thread",
        || {
            let (stored_tx, stored_rx) = std::sync::mpsc::channel();
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let foreign = std::thread::spawn(move || {
                futures::executor::block_on(async {
                    let b = tarn::Async::new(b)?;
                    let mut readable = Box::pin(b.readable());
                    // Stored its waker while the main thread drives.
                    assert!(futures::poll!(readable.as_mut()).is_pending());
                    stored_tx.send(()).unwrap();
                    readable.await
                })
            });
            tarn::block_on(async {
                while stored_rx.try_recv().is_err() {
                    tarn::Timer::after(Duration::from_millis(1)).await;
                }
            });
            // It starts as block_on returns, and names itself once running.
            assert!(
                eventually(Duration::from_secs(5), || threads_named("tarn-reactor")
                    == 1),
                "no fallback thread took over"
            );
            std::io::Write::write_all(&mut &a, b"x").unwrap();
            foreign.join().unwrap().unwrap();
        },
    );
}

/// A foreign executor's task first polled inside `tarn::block_on` (a
/// futures `LocalPool` stacked on it) stores its waker there; block_on
/// returns and the task waits under its own executor. That waker is not
/// one tarn's executor will poll again, so the fallback thread drives.
#[test]
fn a_foreign_task_first_polled_inside_block_on_is_woken_after_it_returns() {
    isolated(
        "a_foreign_task_first_polled_inside_block_on_is_woken_after_it_returns",
        || {
            use futures::task::LocalSpawnExt;

            let (mut a, b) = tarn::net::UnixStream::pair().unwrap();
            let mut pool = futures::executor::LocalPool::new();
            let done = std::rc::Rc::new(std::cell::Cell::new(false));
            let finished = std::rc::Rc::clone(&done);
            pool.spawner()
                .spawn_local(async move {
                    let mut buf = [0u8; 1];
                    a.read_exact(&mut buf).await.unwrap();
                    finished.set(true);
                })
                .unwrap();
            tarn::block_on(async { pool.run_until_stalled() });
            assert!(!done.get());
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                let b = b.into_std().unwrap();
                std::io::Write::write_all(&mut &b, b"x").unwrap();
            });
            assert!(
                eventually(Duration::from_secs(5), || {
                    pool.run_until_stalled();
                    done.get()
                }),
                "the foreign task was never woken once block_on returned"
            );
            writer.join().unwrap();
        },
    );
}

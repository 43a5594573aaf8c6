//! A resource that runs out for a moment (fds, threads) fails the call that
//! needed it with an `io::Error`, and the next call, once the resource is
//! back, works: nothing is remembered as broken for the life of the process.
//!
//! Each test runs in a process of its own: they lower process-wide limits
//! (`RLIMIT_NOFILE`, `RLIMIT_AS`) and need the reactor and its threads in
//! their initial state. `on_poll_and_select_backends` re-runs this binary
//! with `TARN_SELECTOR=poll` and `=select`; the isolated children inherit
//! the backend.

mod common;

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tarn::net::{TcpListener, TcpStream};
use tarn_test_support::{
    isolated, isolated_with_patience, rerun_on_poll_and_select, with_soft_limit,
    without_new_threads, HANG,
};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

#[test]
fn the_reactor_starts_once_fds_are_free_again() {
    isolated("the_reactor_starts_once_fds_are_free_again", || {
        let (a, b) = UnixStream::pair().unwrap();
        // No fd left for the reactor's epoll and eventfd: the limit is the
        // lowest free fd number.
        let lowest_free = {
            use std::os::fd::AsRawFd;
            std::fs::File::open("/dev/null").unwrap().as_raw_fd() as u64
        };
        let first = with_soft_limit(libc::RLIMIT_NOFILE, lowest_free, || tarn::Async::new(a));
        let err = first.expect_err("registered with no fd for the reactor");
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");

        // With fds back, the reactor starts and works.
        let b = tarn::Async::new(b).expect("the reactor starts now");
        tarn::block_on(async {
            let (c, d) = UnixStream::pair()?;
            let d = tarn::Async::new(d)?;
            (&c).write_all(b"x")?;
            d.readable().await?;
            tarn::Timer::after(Duration::from_millis(1)).await;
            io::Result::Ok(())
        })
        .unwrap();
        drop(b);
    });
}

#[test]
fn a_foreign_await_without_a_fallback_thread_fails_then_recovers() {
    isolated(
        "a_foreign_await_without_a_fallback_thread_fails_then_recovers",
        || {
            let _ = tarn::stats(); // the reactor exists before the limit
            let (a_peer, a) = UnixStream::pair().unwrap();
            let a = tarn::Async::new(a).unwrap();
            // Under a foreign executor, waiting needs the fallback thread.
            let first = without_new_threads(|| futures::executor::block_on(a.readable()));
            let err = first.expect_err("waited with no thread to drive the reactor");
            assert!(err.to_string().contains("tarn-reactor"), "{err}");
            assert_ne!(err.kind(), io::ErrorKind::WouldBlock, "{err}");

            // Threads can start again: the next await works.
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                (&a_peer).write_all(b"x").unwrap();
                a_peer
            });
            futures::executor::block_on(a.readable()).expect("readable once written");
            drop(writer.join().unwrap());
        },
    );
}

#[test]
fn connecting_by_name_without_threads_is_an_error_then_works() {
    isolated(
        "connecting_by_name_without_threads_is_an_error_then_works",
        || {
            let listener = tarn::block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
            let port = listener.local_addr().unwrap().port();
            let first =
                without_new_threads(|| tarn::block_on(TcpStream::connect(("localhost", port))));
            let err = first.expect_err("resolved a name with no thread to do it");
            assert!(err.to_string().contains("blocking-pool thread"), "{err}");
            assert_ne!(err.kind(), io::ErrorKind::WouldBlock, "{err}");

            let conn = tarn::block_on(TcpStream::connect(("localhost", port)))
                .expect("the lookup runs now");
            assert_eq!(conn.peer_addr().unwrap().port(), port);
        },
    );
}

/// An executor whose first `run` found no fd for a reactor of its thread's
/// own (so it drove the shared one) drives its own reactor once a later
/// `run` has one: a timer set there fires. Before, its parker stayed bound
/// to the reactor of its first park and slept in the shared reactor's
/// `select` while the timer waited on the thread's reactor (a hang the
/// watchdog reports).
#[test]
fn an_executor_parks_in_the_reactor_of_each_run() {
    isolated_with_patience("an_executor_parks_in_the_reactor_of_each_run", HANG, || {
        let (_a, b) = UnixStream::pair().unwrap();
        // The shared reactor exists before the limit.
        let b = tarn::Async::new(b).unwrap();
        let ex = tarn::LocalExecutor::new();
        let lowest_free = {
            use std::os::fd::AsRawFd;
            std::fs::File::open("/dev/null").unwrap().as_raw_fd() as u64
        };
        let tick = || tarn::Timer::after(Duration::from_millis(1));
        with_soft_limit(libc::RLIMIT_NOFILE, lowest_free, || {
            ex.run(async {
                assert_eq!(own_reactors(), 0, "no fd for a thread reactor, yet one");
                tick().await;
            })
        });
        ex.run(async {
            let epoll = tarn_test_support::backend_name() == "epoll";
            assert_eq!(
                own_reactors(),
                usize::from(epoll),
                "reactors of this thread"
            );
            tick().await;
        });
        drop(b);
    });
}

/// How many reactors belong to the calling thread.
fn own_reactors() -> usize {
    let me = std::thread::current();
    let me = me
        .name()
        .map_or_else(|| format!("{:?}", me.id()), String::from);
    tarn::reactors()
        .iter()
        .filter(|r| r.thread.as_deref() == Some(me.as_str()))
        .count()
}

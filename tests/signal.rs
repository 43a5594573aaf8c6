//! `tarn::signal` under tarn's own executor: a `block_on` that waits for a
//! signal the way a server waits for Ctrl-C, and spawned tasks that each
//! see the same delivery. Each test owns its signal (`SIGUSR1`, `SIGUSR2`);
//! none raises `SIGINT` or `SIGTERM`, which could end the test process.

use std::thread;
use std::time::Duration;

use tarn::signal::{Signal, Signals};
use tarn_test_support::{bounded, rerun_on_poll_and_select, HANG};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

/// Sends `signal` to this process from another thread after a short delay.
fn send_soon(signal: libc::c_int) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        // SAFETY: kill takes no pointers; the signal has a tarn listener.
        assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
    })
}

#[test]
fn block_on_waits_for_a_signal_like_ctrl_c() {
    bounded("block_on_waits_for_a_signal", || {
        let got = tarn::block_on(async {
            let mut signals = Signals::new([Signal::USR1])?;
            let sender = send_soon(libc::SIGUSR1);
            let got = tarn::timeout(HANG, signals.recv()).await;
            sender.join().unwrap();
            std::io::Result::Ok(got)
        });
        assert_eq!(got.unwrap().expect("no SIGUSR1"), Signal::USR1);
    });
}

#[test]
fn spawned_tasks_each_see_the_delivery() {
    bounded("spawned_tasks_each_see_the_delivery", || {
        tarn::block_on(async {
            let listeners: Vec<_> = (0..3)
                .map(|_| Signals::new([Signal::USR2]).unwrap())
                .map(|mut signals| {
                    tarn::spawn(async move { tarn::timeout(HANG, signals.recv()).await })
                })
                .collect();
            let sender = send_soon(libc::SIGUSR2);
            for task in listeners {
                assert_eq!(task.await.unwrap().expect("no SIGUSR2"), Signal::USR2);
            }
            sender.join().unwrap();
        });
    });
}

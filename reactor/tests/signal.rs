//! Unix signals through the reactor: every listener sees every delivery,
//! bursts coalesce without losing the last, dispositions come back when the
//! last listener goes, and it all works under tarn's `drive` and under
//! foreign executors (the fallback thread). Re-run on the poll and select
//! backends.
//!
//! Tests here run on parallel threads of one process, where a signal's
//! disposition and delivery counts are shared: each test owns its signals
//! (no two tests use the same one), and `SIGINT` is raised only in a child
//! process of its own.

use std::mem;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use tarn_reactor::driver::DriverGuard;
use tarn_reactor::signal::{ctrl_c, Signal, Signals};
use tarn_reactor::{drive, timeout};
use tarn_test_support::{bounded, isolated_with_patience, rerun_on_poll_and_select, HANG};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

/// Sends `signal` to this thread; its handler has run when this returns.
fn raise(signal: libc::c_int) {
    // SAFETY: raise takes no pointers; every signal raised here has a
    // handler (tarn's, or a test's own) or is harmless.
    assert_eq!(unsafe { libc::raise(signal) }, 0);
}

/// Sends `signal` to the process: any thread may run the handler.
fn kill_self(signal: libc::c_int) {
    // SAFETY: kill takes no pointers; see `raise`.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
}

/// `signal`'s current action.
fn action_of(signal: libc::c_int) -> libc::sigaction {
    // SAFETY: sigaction is plain data; zeros are valid, and overwritten.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `action`.
    assert_eq!(
        unsafe { libc::sigaction(signal, ptr::null(), &mut action) },
        0
    );
    action
}

/// Sets `signal`'s action to `action`; returns the one it replaced.
fn set_action(signal: libc::c_int, action: &libc::sigaction) -> libc::sigaction {
    // SAFETY: as in `action_of`.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: both pointers are to live sigaction structs.
    assert_eq!(unsafe { libc::sigaction(signal, action, &mut old) }, 0);
    old
}

/// A handler that does nothing: a previous action tarn must put back.
extern "C" fn earlier_handler(_: libc::c_int) {}

fn earlier_handler_address() -> libc::sighandler_t {
    earlier_handler as extern "C" fn(libc::c_int) as libc::sighandler_t
}

/// A waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let count = Arc::new(CountingWaker::default());
    (count.clone(), Waker::from(count))
}

#[test]
fn two_listeners_both_see_one_delivery() {
    bounded("two_listeners_both_see_one_delivery", || {
        drive(async {
            let mut first = Signals::new([Signal::USR1]).unwrap();
            let mut second = Signals::new([Signal::USR1]).unwrap();
            kill_self(libc::SIGUSR1);
            let (a, b) = futures::join!(timeout(HANG, first.recv()), timeout(HANG, second.recv()));
            assert_eq!(a.expect("first listener: no SIGUSR1"), Signal::USR1);
            assert_eq!(b.expect("second listener: no SIGUSR1"), Signal::USR1);
            // One delivery, one item each.
            let again = timeout(Duration::from_millis(20), first.recv()).await;
            assert!(again.is_err(), "first listener saw a second SIGUSR1");
        });
    });
}

#[test]
fn a_listener_is_woken_when_another_drains_the_pipe_first() {
    // Alone in a process, with no thread driving the reactor: the reactor
    // never sees the pipe readable, so only the listener that drains it can
    // wake the other.
    isolated_with_patience(
        "a_listener_is_woken_when_another_drains_the_pipe_first",
        HANG,
        || {
            // Counts as a driver, so the fallback thread does not start.
            let _not_driving = DriverGuard::enter();
            let mut drainer = Signals::new([Signal::ALRM]).unwrap();
            let mut sleeper = Signals::new([Signal::ALRM]).unwrap();
            let (sleeper_woken, sleeper_waker) = counting_waker();
            let mut drainer_cx = Context::from_waker(futures::task::noop_waker_ref());
            let mut sleeper_cx = Context::from_waker(&sleeper_waker);
            assert!(drainer.poll_recv(&mut drainer_cx).is_pending());
            assert!(sleeper.poll_recv(&mut sleeper_cx).is_pending());

            raise(libc::SIGALRM);
            assert_eq!(
                drainer.poll_recv(&mut drainer_cx),
                Poll::Ready(Signal::ALRM)
            );
            assert!(
                sleeper_woken.0.load(SeqCst) > 0,
                "the sleeping listener was not woken when the pipe was drained"
            );
            assert_eq!(
                sleeper.poll_recv(&mut sleeper_cx),
                Poll::Ready(Signal::ALRM)
            );
            assert!(drainer.poll_recv(&mut drainer_cx).is_pending());
        },
    );
}

#[test]
fn the_previous_action_comes_back_when_the_last_listener_drops() {
    bounded("the_previous_action_comes_back", || {
        let sig = libc::SIGHUP;
        // SAFETY: as in `action_of`.
        let mut earlier: libc::sigaction = unsafe { mem::zeroed() };
        earlier.sa_sigaction = earlier_handler_address();
        earlier.sa_flags = libc::SA_RESTART | libc::SA_NODEFER;
        let original = set_action(sig, &earlier);
        let before = action_of(sig);
        assert_eq!(before.sa_sigaction, earlier_handler_address());

        let first = Signals::new([Signal::HUP]).unwrap();
        let tarns = action_of(sig).sa_sigaction;
        assert_ne!(tarns, before.sa_sigaction, "no handler installed");
        assert_ne!(tarns, libc::SIG_DFL);
        assert_ne!(tarns, libc::SIG_IGN);
        let second = Signals::new([Signal::HUP]).unwrap();
        drop(first);
        assert_eq!(
            action_of(sig).sa_sigaction,
            tarns,
            "restored while a listener still lives"
        );
        drop(second);
        let after = action_of(sig);
        assert_eq!(after.sa_sigaction, before.sa_sigaction);
        assert_eq!(after.sa_flags, before.sa_flags);

        // A new listener installs the handler again and receives.
        drive(async {
            let mut third = Signals::new([Signal::HUP]).unwrap();
            raise(sig);
            let got = timeout(HANG, third.recv()).await;
            assert_eq!(got.expect("no SIGHUP after re-install"), Signal::HUP);
        });
        assert_eq!(action_of(sig).sa_sigaction, earlier_handler_address());
        set_action(sig, &original);
    });
}

#[test]
fn a_handler_installed_after_tarn_is_left_alone_when_the_last_listener_drops() {
    bounded("a_handler_installed_after_tarn", || {
        let sig = libc::SIGTTIN;
        let original = action_of(sig);
        let listener = Signals::new([Signal::from_raw(sig)]).unwrap();
        // Another library takes the signal over while tarn listens.
        // SAFETY: as in `action_of`.
        let mut later: libc::sigaction = unsafe { mem::zeroed() };
        later.sa_sigaction = earlier_handler_address();
        set_action(sig, &later);
        drop(listener);
        assert_eq!(
            action_of(sig).sa_sigaction,
            earlier_handler_address(),
            "tarn put its old action over a handler installed after it"
        );
        set_action(sig, &original);
    });
}

#[test]
fn a_burst_is_one_item_and_the_last_delivery_is_never_lost() {
    bounded("a_burst_is_one_item", || {
        drive(async {
            let mut signals = Signals::new([Signal::USR2]).unwrap();
            for _ in 0..100 {
                raise(libc::SIGUSR2);
            }
            let got = timeout(HANG, signals.recv()).await;
            assert_eq!(got.expect("no SIGUSR2 after a burst"), Signal::USR2);
            let more = timeout(Duration::from_millis(20), signals.recv()).await;
            assert!(more.is_err(), "the burst gave a second item: {more:?}");

            raise(libc::SIGUSR2);
            let got = timeout(HANG, signals.recv()).await;
            assert_eq!(
                got.expect("the delivery after a burst was lost"),
                Signal::USR2
            );

            // A listener created now reports none of the deliveries before.
            let mut late = Signals::new([Signal::USR2]).unwrap();
            let old = timeout(Duration::from_millis(20), late.recv()).await;
            assert!(old.is_err(), "a new listener reported an old delivery");
        });
    });
}

#[test]
fn one_listener_reports_each_of_its_signals() {
    bounded("one_listener_reports_each_of_its_signals", || {
        let (quit, pipe) = (Signal::QUIT, Signal::PIPE);
        drive(async {
            let mut signals = Signals::new([quit, pipe]).unwrap();
            raise(libc::SIGQUIT);
            raise(libc::SIGPIPE);
            let mut got = Vec::new();
            for _ in 0..2 {
                got.push(
                    timeout(HANG, signals.recv())
                        .await
                        .expect("a signal missing"),
                );
            }
            got.sort();
            assert_eq!(got, [quit, pipe]);
        });
    });
}

#[test]
fn futures_block_on_receives_a_signal_sent_from_another_thread() {
    bounded("futures_block_on_receives_a_signal", || {
        let mut signals = Signals::new([Signal::WINCH]).unwrap();
        let sender = thread::spawn(|| {
            thread::sleep(Duration::from_millis(20));
            kill_self(libc::SIGWINCH);
        });
        let got = futures::executor::block_on(timeout(HANG, signals.recv()));
        assert_eq!(got.expect("no SIGWINCH under block_on"), Signal::WINCH);
        sender.join().unwrap();
    });
}

#[test]
fn a_tokio_current_thread_runtime_receives_a_signal_sent_from_another_thread() {
    bounded("tokio_receives_a_signal", || {
        let urg = Signal::from_raw(libc::SIGURG);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(async move {
            let mut signals = Signals::new([urg]).unwrap();
            let sender = thread::spawn(|| {
                thread::sleep(Duration::from_millis(20));
                kill_self(libc::SIGURG);
            });
            let got = timeout(HANG, signals.recv()).await;
            sender.join().unwrap();
            got
        });
        assert_eq!(got.expect("no SIGURG under tokio"), urg);
    });
}

#[test]
fn signals_is_send_and_a_stream() {
    fn send<T: Send + Unpin + futures::Stream<Item = Signal>>() {}
    send::<Signals>();
    fn send_future<T: Send>(_: &T) {}
    send_future(&ctrl_c());
}

#[test]
fn uncatchable_and_fault_signals_are_refused() {
    for (raw, name) in [
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGFPE, "SIGFPE"),
    ] {
        let before = action_of(raw).sa_sigaction;
        let err = Signals::new([Signal::from_raw(raw)]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{name}");
        assert!(err.to_string().contains(name), "{name}: {err}");
        assert_eq!(
            action_of(raw).sa_sigaction,
            before,
            "{name}: action changed"
        );
    }
    let err = Signals::new([Signal::from_raw(libc::SIGKILL)]).unwrap_err();
    assert_eq!(err.to_string(), "SIGKILL cannot be caught");
    for raw in [0, -1, 65, libc::SIGRTMAX() + 1, 32] {
        let err = Signals::new([Signal::from_raw(raw)]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{raw}");
        assert!(err.to_string().contains(&format!("signal {raw}")), "{err}");
    }
}

#[test]
fn a_refused_signal_in_a_set_installs_nothing() {
    let sig = libc::SIGTSTP;
    let before = action_of(sig).sa_sigaction;
    let set = [Signal::from_raw(sig), Signal::from_raw(libc::SIGKILL)];
    assert!(Signals::new(set).is_err());
    assert_eq!(action_of(sig).sa_sigaction, before);
}

#[test]
fn signals_print_their_names() {
    assert_eq!(format!("{:?}", Signal::TERM), "SIGTERM");
    assert_eq!(Signal::INT.to_string(), "SIGINT");
    assert_eq!(Signal::from_raw(libc::SIGCONT).to_string(), "SIGCONT");
    let rt = Signal::from_raw(libc::SIGRTMIN() + 2);
    assert_eq!(rt.to_string(), "SIGRTMIN+2");
    assert_eq!(Signal::from_raw(0).to_string(), "signal 0");
    assert_eq!(Signal::WINCH.as_raw(), libc::SIGWINCH);
    let listener = Signals::new([Signal::from_raw(libc::SIGVTALRM)]).unwrap();
    assert_eq!(
        format!("{listener:?}"),
        "Signals { signals: [SIGVTALRM], .. }"
    );
}

#[test]
fn ctrl_c_completes_on_sigint_and_gives_the_default_action_back() {
    // In a child process: should SIGINT reach its default action, only the
    // child dies (and the test fails).
    isolated_with_patience(
        "ctrl_c_completes_on_sigint_and_gives_the_default_action_back",
        HANG,
        || {
            let before = action_of(libc::SIGINT).sa_sigaction;
            drive(async {
                let ctrl_c = ctrl_c();
                assert_ne!(
                    action_of(libc::SIGINT).sa_sigaction,
                    before,
                    "ctrl_c() did not listen when called"
                );
                raise(libc::SIGINT);
                timeout(HANG, ctrl_c)
                    .await
                    .expect("ctrl_c did not see SIGINT")
                    .unwrap();
            });
            assert_eq!(action_of(libc::SIGINT).sa_sigaction, before);

            // Dropped unpolled: the action comes back too.
            let pending = ctrl_c();
            assert_ne!(action_of(libc::SIGINT).sa_sigaction, before);
            drop(pending);
            assert_eq!(action_of(libc::SIGINT).sa_sigaction, before);
        },
    );
}

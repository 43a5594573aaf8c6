//! Process-wide behaviour: the `TARN_SELECTOR` override, signals (`EINTR`),
//! close-on-exec, and freeing every fd on drop.
//!
//! These tests change the environment, signal handlers and the fd table, so
//! they live in their own binary and take turns.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use tarn_selector::{Backend, Event, Events, Interest, Mode, Selector, Token, BACKEND_ENV};
use tarn_test_support::open_fd_numbers;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn env_variable_overrides_the_default_backend() {
    let _turn = turn();
    for backend in Backend::ALL {
        std::env::set_var(BACKEND_ENV, backend.name());
        assert_eq!(Selector::new().unwrap().backend(), *backend);
    }
    std::env::set_var(BACKEND_ENV, "POLL");
    assert_eq!(Selector::new().unwrap().backend(), Backend::Poll);

    std::env::set_var(BACKEND_ENV, "kqueue");
    let err = Selector::new().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(
        msg.contains("TARN_SELECTOR") && msg.contains("kqueue"),
        "{msg}"
    );
    for backend in Backend::ALL {
        assert!(msg.contains(backend.name()), "lists {backend}: {msg}");
    }

    std::env::set_var(BACKEND_ENV, "");
    assert_eq!(Selector::new().unwrap().backend(), Backend::best());
    std::env::remove_var(BACKEND_ENV);
    assert_eq!(Selector::new().unwrap().backend(), Backend::best());
    #[cfg(target_os = "linux")]
    assert_eq!(Backend::best(), Backend::Epoll);
}

#[test]
fn selector_fds_are_close_on_exec_and_freed_on_drop() {
    let _turn = turn();
    for &backend in Backend::ALL {
        let before = open_fd_numbers();
        let selector = Selector::with_backend(backend).unwrap();
        let notifier = selector.notifier();
        let created: Vec<RawFd> = open_fd_numbers().difference(&before).copied().collect();
        assert!(!created.is_empty(), "{backend} opened no fd?");
        for fd in &created {
            // SAFETY: F_GETFD only reads flags.
            let flags = unsafe { libc::fcntl(*fd, libc::F_GETFD) };
            assert!(
                flags >= 0 && flags & libc::FD_CLOEXEC != 0,
                "{backend}: fd {fd} lacks FD_CLOEXEC"
            );
        }
        drop(selector);
        notifier.notify(); // harmless after the selector is gone
        drop(notifier);
        let leaked: Vec<RawFd> = open_fd_numbers().difference(&before).copied().collect();
        assert!(leaked.is_empty(), "{backend} leaked fds {leaked:?}");
    }
}

extern "C" fn on_signal(_: libc::c_int) {}

#[test]
fn signals_do_not_cut_a_timeout_short() {
    let _turn = turn();
    // A handler without SA_RESTART makes every blocking call fail with EINTR.
    // SAFETY: a zeroed sigaction is valid; we install a handler that does nothing.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
    for &backend in Backend::ALL {
        let selector = Selector::with_backend(backend).unwrap();
        // SAFETY: pthread_self has no preconditions.
        let target = unsafe { libc::pthread_self() } as usize;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopper = stop.clone();
        let sender = thread::spawn(move || {
            let mut sent = 0;
            while !stopper.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: the target thread is alive until `stop` is set,
                // which happens before it is joined.
                unsafe { libc::pthread_kill(target as libc::pthread_t, libc::SIGUSR1) };
                sent += 1;
                thread::sleep(Duration::from_millis(2));
            }
            sent
        });
        let mut events = Events::with_capacity(8);
        let timeout = Duration::from_millis(150);
        let start = Instant::now();
        let n = selector.select(&mut events, Some(timeout)).unwrap();
        let waited = start.elapsed();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let sent = sender.join().unwrap();
        assert_eq!(n, 0, "{backend}");
        assert!(sent > 10, "{backend}: only {sent} signals sent");
        assert!(
            waited >= timeout,
            "{backend}: returned after {waited:?} of {timeout:?}"
        );
    }
}

// The two tests below close an fd and then use its number: in a binary whose
// tests ran in parallel, another test could be handed that number meanwhile.

#[test]
fn closed_fd_cannot_register() {
    let _turn = turn();
    for &backend in Backend::ALL {
        let selector = Selector::with_backend(backend).unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.into_raw_fd();
        // SAFETY: we own fd (into_raw_fd) and close it exactly once.
        unsafe { libc::close(fd) };
        let err = selector
            .register(fd, Token(1), Interest::READABLE, Mode::Level)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{backend}: {err}");
        let err = selector
            .register(-1, Token(1), Interest::READABLE, Mode::Level)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{backend}: {err}");
        assert!(selector.registrations().is_empty());
    }
}

#[test]
fn fd_closed_while_registered() {
    let _turn = turn();
    for &backend in Backend::ALL {
        let selector = Selector::with_backend(backend).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let fd = b.as_raw_fd();
        selector
            .register(fd, Token(1), Interest::READABLE, Mode::Oneshot)
            .unwrap();
        drop(b);
        let mut events = Events::with_capacity(8);
        selector
            .select(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        let got: Vec<Event> = events.iter().copied().collect();
        if backend == Backend::Epoll {
            // Closing the last reference removes the fd from the epoll set.
            assert!(got.is_empty(), "{got:?}");
        } else {
            // POLLNVAL, or EBADF from select(2) traced back to this fd.
            assert_eq!(got.len(), 1, "{backend}: {got:?}");
            assert_eq!(got[0].token(), Token(1));
            assert!(got[0].error(), "{backend}: {got:?}");
            assert_eq!(
                selector.select(&mut events, Some(Duration::ZERO)).unwrap(),
                0,
                "oneshot: reported once"
            );
        }
        selector.deregister(fd).unwrap();
        assert!(selector.registrations().is_empty());
        drop(a);
    }
}

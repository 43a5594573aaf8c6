//! A thousand registered fds with events on a few, on every backend.
//!
//! Its own test binary so that the select backend's fds all stay below
//! FD_SETSIZE: the tests here hold a lock, so only one of them has its
//! thousand fds open at a time.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

use tarn_selector::{Backend, Events, Interest, Mode, Selector, Token};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn thousand_fds_with_events_on_a_few(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let selector = Selector::with_backend(backend).unwrap();
    // 500 pairs, both ends registered: 1000 fds.
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..500).map(|_| UnixStream::pair().unwrap()).collect();
    for (i, (a, b)) in pairs.iter().enumerate() {
        selector
            .register(a.as_raw_fd(), Token(2 * i), Interest::READABLE, Mode::Level)
            .unwrap();
        selector
            .register(
                b.as_raw_fd(),
                Token(2 * i + 1),
                Interest::READABLE,
                Mode::Oneshot,
            )
            .unwrap();
    }
    assert_eq!(selector.registrations().len(), 1000);

    let mut events = Events::with_capacity(1024);
    assert_eq!(
        selector.select(&mut events, Some(Duration::ZERO)).unwrap(),
        0
    );

    // Write into a few: 3 level `a` ends (via their `b` peers) and 2 oneshot `b` ends.
    let active_a = [0usize, 257, 499];
    let active_b = [13usize, 400];
    for &i in &active_a {
        (&pairs[i].1).write_all(b"a").unwrap();
    }
    for &i in &active_b {
        (&pairs[i].0).write_all(b"b").unwrap();
    }
    let expected: BTreeSet<usize> = active_a
        .iter()
        .map(|i| 2 * i)
        .chain(active_b.iter().map(|i| 2 * i + 1))
        .collect();

    selector
        .select(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    let got: BTreeSet<usize> = events.iter().map(|e| e.token().0).collect();
    assert_eq!(got, expected);
    assert!(events.iter().all(|e| e.readable() && !e.writable()));

    // Level ends keep reporting; oneshot ends are spent.
    selector
        .select(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    let got: BTreeSet<usize> = events.iter().map(|e| e.token().0).collect();
    assert_eq!(got, active_a.iter().map(|i| 2 * i).collect());

    for (a, b) in &pairs {
        selector.deregister(a.as_raw_fd()).unwrap();
        selector.deregister(b.as_raw_fd()).unwrap();
    }
    assert!(selector.registrations().is_empty());
    assert_eq!(
        selector.select(&mut events, Some(Duration::ZERO)).unwrap(),
        0
    );
}

#[cfg(target_os = "linux")]
#[test]
fn epoll_thousand_fds_with_events_on_a_few() {
    thousand_fds_with_events_on_a_few(Backend::Epoll);
}

#[test]
fn poll_thousand_fds_with_events_on_a_few() {
    thousand_fds_with_events_on_a_few(Backend::Poll);
}

#[test]
fn select_thousand_fds_with_events_on_a_few() {
    thousand_fds_with_events_on_a_few(Backend::Select);
}

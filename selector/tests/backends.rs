//! The selector's behaviour, pinned once and run on every backend.
//!
//! Each test is a function taking a [`Backend`]; the `on_every_backend!`
//! macro at the bottom turns it into one `#[test]` per backend
//! (`epoll::readable_after_peer_writes`, `poll::...`, `select::...`).

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use tarn_selector::{Backend, Event, Events, Interest, Mode, Selector, Token};
use tarn_test_support::{
    nofile_limit, nonblocking_pipe, nonblocking_unix_pair, raise_nofile_limit, reset_on_close,
    tcp_pair,
};

const ZERO: Option<Duration> = Some(Duration::ZERO);
/// Long enough that a test which should not wait this long fails loudly
/// instead of hanging, short enough to keep a broken run bounded.
const PATIENCE: Option<Duration> = Some(Duration::from_secs(10));

fn selector(backend: Backend) -> Selector {
    let selector = Selector::with_backend(backend).expect("selector");
    assert_eq!(selector.backend(), backend);
    selector
}

fn select(selector: &Selector, timeout: Option<Duration>) -> Vec<Event> {
    let mut events = Events::with_capacity(256);
    let n = selector.select(&mut events, timeout).expect("select");
    assert_eq!(n, events.len());
    events.iter().copied().collect()
}

fn tokens(events: &[Event]) -> BTreeSet<usize> {
    events.iter().map(|e| e.token().0).collect()
}

fn only(events: &[Event], token: Token) -> Event {
    assert_eq!(
        events.len(),
        1,
        "expected one event for {token:?}, got {events:?}"
    );
    assert_eq!(events[0].token(), token);
    events[0]
}

fn drain(stream: &mut UnixStream) {
    let mut buf = [0; 4096];
    while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
}

fn kind<T: std::fmt::Debug>(result: io::Result<T>) -> io::ErrorKind {
    result.expect_err("expected an error").kind()
}

// --- readiness -----------------------------------------------------------

fn readable_after_peer_writes(backend: Backend) {
    let selector = selector(backend);
    let (mut a, b) = nonblocking_unix_pair();
    selector
        .register(b.as_raw_fd(), Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    assert!(select(&selector, ZERO).is_empty(), "nothing written yet");
    a.write_all(b"x").unwrap();
    let event = only(&select(&selector, PATIENCE), Token(1));
    assert!(event.readable());
    assert!(!event.writable(), "writable was not asked for");
    assert!(!event.read_closed() && !event.error());
}

fn writable_at_once(backend: Backend) {
    let selector = selector(backend);
    let (a, _b) = nonblocking_unix_pair();
    selector
        .register(a.as_raw_fd(), Token(2), Interest::WRITABLE, Mode::Level)
        .unwrap();
    let event = only(&select(&selector, PATIENCE), Token(2));
    assert!(event.writable() && !event.readable());
}

fn pipe_ends_report_their_direction(backend: Backend) {
    let selector = selector(backend);
    let (r, w) = nonblocking_pipe();
    let rw = Interest::READABLE | Interest::WRITABLE;
    selector
        .register(r.as_raw_fd(), Token(10), rw, Mode::Level)
        .unwrap();
    selector
        .register(w.as_raw_fd(), Token(11), rw, Mode::Level)
        .unwrap();
    let event = only(&select(&selector, PATIENCE), Token(11));
    assert!(event.writable() && !event.readable());

    let mut writer = std::fs::File::from(w.try_clone().unwrap());
    writer.write_all(b"data").unwrap();
    let events = select(&selector, PATIENCE);
    assert_eq!(tokens(&events), BTreeSet::from([10, 11]));
    let read_end = events.iter().find(|e| e.token() == Token(10)).unwrap();
    assert!(read_end.readable() && !read_end.writable());
}

fn level_reports_while_ready(backend: Backend) {
    let selector = selector(backend);
    let (mut a, mut b) = nonblocking_unix_pair();
    selector
        .register(b.as_raw_fd(), Token(3), Interest::READABLE, Mode::Level)
        .unwrap();
    a.write_all(b"abc").unwrap();
    for _ in 0..3 {
        assert!(only(&select(&selector, PATIENCE), Token(3)).readable());
    }
    drain(&mut b);
    assert!(
        select(&selector, ZERO).is_empty(),
        "drained: no longer readable"
    );
}

fn oneshot_reports_once_until_rearmed(backend: Backend) {
    let selector = selector(backend);
    let (mut a, b) = nonblocking_unix_pair();
    let fd = b.as_raw_fd();
    selector
        .register(fd, Token(4), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    a.write_all(b"abc").unwrap();
    assert!(only(&select(&selector, PATIENCE), Token(4)).readable());
    assert!(
        select(&selector, ZERO).is_empty(),
        "disarmed after reporting"
    );
    a.write_all(b"more").unwrap();
    assert!(
        select(&selector, ZERO).is_empty(),
        "new data does not re-arm"
    );

    selector
        .modify(fd, Token(5), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    assert!(only(&select(&selector, PATIENCE), Token(5)).readable());
    assert!(select(&selector, ZERO).is_empty());
}

fn edge_reports_on_transitions_only(backend: Backend) {
    let selector = selector(backend);
    let (mut a, mut b) = nonblocking_unix_pair();
    let fd = b.as_raw_fd();
    if backend != Backend::Epoll {
        let err = selector
            .register(fd, Token(6), Interest::READABLE, Mode::Edge)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("epoll"), "{err}");
        assert!(selector.registrations().is_empty());
        return;
    }
    selector
        .register(fd, Token(6), Interest::READABLE, Mode::Edge)
        .unwrap();
    assert!(
        select(&selector, ZERO).is_empty(),
        "not readable at registration"
    );
    a.write_all(b"one").unwrap();
    assert!(only(&select(&selector, PATIENCE), Token(6)).readable());
    assert!(
        select(&selector, ZERO).is_empty(),
        "still readable, but no new edge"
    );
    a.write_all(b"two").unwrap();
    assert!(
        only(&select(&selector, PATIENCE), Token(6)).readable(),
        "new data is an edge"
    );
    drain(&mut b);
    assert!(select(&selector, ZERO).is_empty());
}

fn events_beyond_capacity_wait_for_the_next_select(backend: Backend) {
    let selector = selector(backend);
    let pairs: Vec<_> = (0..5).map(|_| nonblocking_unix_pair()).collect();
    for (i, (a, b)) in pairs.iter().enumerate() {
        (&*a).write_all(b"x").unwrap();
        selector
            .register(b.as_raw_fd(), Token(i), Interest::READABLE, Mode::Oneshot)
            .unwrap();
    }
    let mut events = Events::with_capacity(2);
    let mut seen = BTreeSet::new();
    for expected in [2, 2, 1] {
        assert_eq!(selector.select(&mut events, PATIENCE).unwrap(), expected);
        for event in &events {
            assert!(seen.insert(event.token().0), "{event:?} reported twice");
        }
    }
    assert_eq!(seen, (0..5).collect());
    assert_eq!(selector.select(&mut events, ZERO).unwrap(), 0);
}

fn level_events_beyond_capacity_are_served_fairly(backend: Backend) {
    let selector = selector(backend);
    let pairs: Vec<_> = (0..5).map(|_| nonblocking_unix_pair()).collect();
    for (i, (a, b)) in pairs.iter().enumerate() {
        (&*a).write_all(b"x").unwrap();
        selector
            .register(b.as_raw_fd(), Token(i), Interest::READABLE, Mode::Level)
            .unwrap();
    }
    let mut events = Events::with_capacity(2);
    let mut seen = BTreeSet::new();
    for _ in 0..5 {
        selector.select(&mut events, PATIENCE).unwrap();
        assert_eq!(events.len(), 2);
        seen.extend(events.iter().map(|e| e.token().0));
    }
    assert_eq!(seen, (0..5).collect(), "every ready fd gets its turn");
}

// --- hangup, error, priority -------------------------------------------

fn peer_close_reports_read_closed(backend: Backend) {
    let selector = selector(backend);
    let (a, b) = nonblocking_unix_pair();
    selector
        .register(b.as_raw_fd(), Token(7), Interest::READABLE, Mode::Level)
        .unwrap();
    drop(a);
    let event = only(&select(&selector, PATIENCE), Token(7));
    assert!(event.readable(), "end of stream is readable");
    match backend {
        // select(2) cannot tell a hangup from data.
        Backend::Select => assert!(!event.read_closed()),
        _ => assert!(event.read_closed(), "{event:?}"),
    }
    let mut buf = [0; 8];
    assert_eq!((&b).read(&mut buf).unwrap(), 0);
}

fn tcp_half_close_reports_read_closed_only(backend: Backend) {
    let selector = selector(backend);
    let (client, server) = tcp_pair();
    let rw = Interest::READABLE | Interest::WRITABLE;
    selector
        .register(server.as_raw_fd(), Token(8), rw, Mode::Level)
        .unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let event = wait_for(&selector, Token(8), |e| e.readable());
    assert!(event.writable(), "our direction is still open");
    if backend != Backend::Select {
        assert!(event.read_closed(), "{event:?}");
        assert!(!event.write_closed(), "{event:?}");
    }
}

fn peer_reset_reports_error(backend: Backend) {
    let selector = selector(backend);
    let (client, server) = tcp_pair();
    // SO_LINGER with a zero timeout makes close() send RST.
    reset_on_close(&client);
    selector
        .register(
            server.as_raw_fd(),
            Token(9),
            Interest::READABLE,
            Mode::Level,
        )
        .unwrap();
    drop(client);
    let event = wait_for(&selector, Token(9), |e| e.readable() || e.error());
    if backend == Backend::Select {
        assert!(
            event.readable(),
            "select shows a reset as readable: {event:?}"
        );
    } else {
        assert!(event.error(), "{event:?}");
        assert!(event.read_closed() && event.write_closed(), "{event:?}");
    }
    let err = (&server).read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

fn urgent_byte_reports_priority(backend: Backend) {
    let selector = selector(backend);
    let (client, server) = tcp_pair();
    selector
        .register(
            server.as_raw_fd(),
            Token(12),
            Interest::PRIORITY,
            Mode::Level,
        )
        .unwrap();
    assert!(select(&selector, ZERO).is_empty());
    // SAFETY: the buffer is one live byte.
    let sent = unsafe { libc::send(client.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    assert_eq!(sent, 1);
    let event = wait_for(&selector, Token(12), |e| e.priority());
    assert!(!event.readable(), "only PRIORITY was asked for");
}

/// Selects until an event for `token` satisfies `done` (TCP state changes
/// travel through the loopback device, so the first select may be early).
fn wait_for(selector: &Selector, token: Token, done: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for event in select(selector, Some(Duration::from_millis(100))) {
            assert_eq!(event.token(), token);
            if done(&event) {
                return event;
            }
        }
    }
    panic!("no matching event for {token:?} within 10 s");
}

// --- timeouts and notification ------------------------------------------

fn timeouts_are_never_early(backend: Backend) {
    let selector = selector(backend);
    let (_a, b) = nonblocking_unix_pair();
    selector
        .register(b.as_raw_fd(), Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    for micros in [1, 300, 999, 1_000, 1_500, 20_000] {
        let timeout = Duration::from_micros(micros);
        let start = Instant::now();
        assert!(select(&selector, Some(timeout)).is_empty());
        let waited = start.elapsed();
        assert!(
            waited >= timeout,
            "asked {timeout:?}, returned after {waited:?}"
        );
    }
}

fn zero_timeout_only_looks(backend: Backend) {
    let selector = selector(backend);
    let (_a, b) = nonblocking_unix_pair();
    selector
        .register(b.as_raw_fd(), Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    for _ in 0..100 {
        assert!(select(&selector, ZERO).is_empty());
    }
}

fn notify_wakes_a_select_without_timeout(backend: Backend) {
    let selector = selector(backend);
    let notifier = selector.notifier();
    let (tx, rx) = mpsc::channel();
    let waker = thread::spawn(move || {
        rx.recv().unwrap();
        thread::sleep(Duration::from_millis(20));
        notifier.notify();
    });
    tx.send(()).unwrap();
    assert!(
        select(&selector, None).is_empty(),
        "a notification brings no event"
    );
    waker.join().unwrap();
}

fn notify_before_select_makes_it_return_at_once(backend: Backend) {
    let selector = selector(backend);
    selector.notifier().notify();
    assert!(select(&selector, None).is_empty());
}

fn notifications_coalesce(backend: Backend) {
    let selector = selector(backend);
    let notifier = selector.notifier();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let notifier = notifier.clone();
            thread::spawn(move || (0..250).for_each(|_| notifier.notify()))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert!(
        select(&selector, None).is_empty(),
        "woken by the notifications"
    );
    // All 1000 were one wakeup: the next select waits out its timeout.
    let timeout = Duration::from_millis(30);
    let start = Instant::now();
    assert!(select(&selector, Some(timeout)).is_empty());
    assert!(
        start.elapsed() >= timeout,
        "a second wakeup was left behind"
    );
}

// --- registration from other threads -----------------------------------

fn register_from_another_thread_during_select(backend: Backend) {
    let selector = Arc::new(selector(backend));
    let (a, b) = nonblocking_unix_pair();
    (&a).write_all(b"ready").unwrap();
    let fd = b.as_raw_fd();
    let other = Arc::clone(&selector);
    let registrar = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        other
            .register(fd, Token(42), Interest::READABLE, Mode::Level)
            .unwrap();
    });
    let start = Instant::now();
    let events = select(&selector, Some(Duration::from_secs(20)));
    registrar.join().unwrap();
    assert_eq!(
        tokens(&events),
        BTreeSet::from([42]),
        "after {:?}",
        start.elapsed()
    );
}

fn modify_from_another_thread_rearms_during_select(backend: Backend) {
    let selector = Arc::new(selector(backend));
    let (a, b) = nonblocking_unix_pair();
    let fd = b.as_raw_fd();
    (&a).write_all(b"ready").unwrap();
    selector
        .register(fd, Token(1), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    assert_eq!(tokens(&select(&selector, PATIENCE)), BTreeSet::from([1]));
    let other = Arc::clone(&selector);
    let rearm = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        other
            .modify(fd, Token(2), Interest::READABLE, Mode::Oneshot)
            .unwrap();
    });
    let events = select(&selector, Some(Duration::from_secs(20)));
    rearm.join().unwrap();
    assert_eq!(tokens(&events), BTreeSet::from([2]));
}

fn deregister_from_another_thread_silences_the_fd(backend: Backend) {
    let selector = Arc::new(selector(backend));
    let (a, b) = nonblocking_unix_pair();
    let fd = b.as_raw_fd();
    selector
        .register(fd, Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    let other = Arc::clone(&selector);
    let notifier = selector.notifier();
    let worker = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        other.deregister(fd).unwrap();
        (&a).write_all(b"too late").unwrap();
        thread::sleep(Duration::from_millis(30));
        notifier.notify();
        a
    });
    let events = select(&selector, Some(Duration::from_secs(20)));
    let _a = worker.join().unwrap();
    assert!(events.is_empty(), "deregistered fd reported: {events:?}");
    assert!(select(&selector, ZERO).is_empty());
}

/// poll and select hold a reference to every watched file while they are
/// blocked, so a close made then would leave the socket alive (its peer
/// unaware) until they returned; `deregister` waits for that return. Half
/// the rounds close an fd still in the blocked set (level mode), half one
/// whose oneshot registration has fired and is out of it (no wait needed).
fn close_after_deregister_reaches_the_peer_during_select(backend: Backend) {
    let selector = Arc::new(selector(backend));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, events) = mpsc::channel();
    let poller = {
        let (selector, stop) = (Arc::clone(&selector), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                for event in select(&selector, Some(Duration::from_secs(20))) {
                    let _ = seen.send(event.token());
                }
            }
        })
    };
    for round in 0..50 {
        let (a, b) = nonblocking_unix_pair();
        let fd = a.as_raw_fd();
        if round % 2 == 0 {
            selector
                .register(fd, Token(1), Interest::READABLE, Mode::Level)
                .unwrap();
        } else {
            selector
                .register(fd, Token(2), Interest::READABLE, Mode::Oneshot)
                .unwrap();
            (&b).write_all(b"fire").unwrap();
            let token = events.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(token, Token(2), "round {round}");
        }
        // Let the poller go back into the kernel (with `a` in its set in
        // level rounds).
        thread::sleep(Duration::from_millis(2));
        selector.deregister(fd).unwrap();
        drop(a);
        assert_eq!(
            kind((&b).write(b"x")),
            io::ErrorKind::BrokenPipe,
            "round {round}: the peer is still open after close"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    selector.notifier().notify();
    poller.join().unwrap();
}

// --- errors ------------------------------------------------------------

fn double_register_is_already_exists(backend: Backend) {
    let selector = selector(backend);
    let (a, _b) = nonblocking_unix_pair();
    let fd = a.as_raw_fd();
    selector
        .register(fd, Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    let err = selector
        .register(fd, Token(2), Interest::WRITABLE, Mode::Level)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert!(err.to_string().contains(&fd.to_string()), "{err}");
    assert_eq!(
        selector.registrations()[0].token,
        Token(1),
        "first registration kept"
    );
}

fn unknown_fd_is_not_found(backend: Backend) {
    let selector = selector(backend);
    let (a, _b) = nonblocking_unix_pair();
    let fd = a.as_raw_fd();
    assert_eq!(
        kind(selector.modify(fd, Token(1), Interest::READABLE, Mode::Level)),
        io::ErrorKind::NotFound
    );
    assert_eq!(kind(selector.deregister(fd)), io::ErrorKind::NotFound);
    selector
        .register(fd, Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    selector.deregister(fd).unwrap();
    assert_eq!(
        kind(selector.deregister(fd)),
        io::ErrorKind::NotFound,
        "second deregister"
    );
}

fn empty_interest_is_invalid_input(backend: Backend) {
    let selector = selector(backend);
    let (a, _b) = nonblocking_unix_pair();
    let fd = a.as_raw_fd();
    let err = selector
        .register(fd, Token(1), Interest::NONE, Mode::Level)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("empty interest"), "{err}");
    let emptied = Interest::READABLE.remove(Interest::READABLE);
    selector
        .register(fd, Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    assert_eq!(
        kind(selector.modify(fd, Token(1), emptied, Mode::Level)),
        io::ErrorKind::InvalidInput
    );
}

fn reserved_token_is_invalid_input(backend: Backend) {
    let selector = selector(backend);
    let (a, _b) = nonblocking_unix_pair();
    let res = selector.register(
        a.as_raw_fd(),
        Token(usize::MAX),
        Interest::READABLE,
        Mode::Level,
    );
    assert_eq!(kind(res), io::ErrorKind::InvalidInput);
}

fn closed_then_deregistered_fd_is_cleaned_up(backend: Backend) {
    let selector = selector(backend);
    let (a, b) = nonblocking_unix_pair();
    let fd = b.as_raw_fd();
    selector
        .register(fd, Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    drop(b);
    drop(a);
    selector.deregister(fd).unwrap();
    assert!(selector.registrations().is_empty());
    // The fd number is free to be registered again once reused.
    let (c, _d) = nonblocking_unix_pair();
    selector
        .register(c.as_raw_fd(), Token(2), Interest::WRITABLE, Mode::Level)
        .unwrap();
    assert_eq!(tokens(&select(&selector, PATIENCE)), BTreeSet::from([2]));
}

fn select_backend_rejects_fds_past_fd_setsize(backend: Backend) {
    let selector = selector(backend);
    let (a, _b) = nonblocking_unix_pair();
    let high = dup_at_least(&a, 1100);
    let res = selector.register(high.as_raw_fd(), Token(1), Interest::READABLE, Mode::Level);
    if backend == Backend::Select {
        let err = res.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(
            msg.contains("FD_SETSIZE")
                && msg.contains("1024")
                && msg.contains(&high.as_raw_fd().to_string()),
            "{msg}"
        );
    } else {
        res.unwrap();
        (&a).write_all(b"x").unwrap_or(());
        selector.deregister(high.as_raw_fd()).unwrap();
    }
}

/// A duplicate of `fd` numbered `min` or higher (raising RLIMIT_NOFILE if needed).
fn dup_at_least(fd: &impl AsRawFd, min: i32) -> OwnedFd {
    if nofile_limit().0 <= min as libc::rlim_t {
        raise_nofile_limit();
    }
    // SAFETY: F_DUPFD_CLOEXEC duplicates an open fd; it takes an int.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    assert!(high >= min, "F_DUPFD: {}", io::Error::last_os_error());
    // SAFETY: fcntl just returned this fd, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(high) }
}

// --- files, introspection, mixed ----------------------------------------

fn regular_files_are_ready_on_every_select(backend: Backend) {
    let selector = selector(backend);
    let file = tempfile("regular");
    let fd = file.as_raw_fd();
    let rw = Interest::READABLE | Interest::WRITABLE;
    selector.register(fd, Token(20), rw, Mode::Level).unwrap();
    for _ in 0..3 {
        let event = only(&select(&selector, PATIENCE), Token(20));
        assert!(event.readable() && event.writable(), "{event:?}");
    }
    selector
        .modify(fd, Token(21), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    let event = only(&select(&selector, PATIENCE), Token(21));
    assert!(event.readable() && !event.writable());
    assert!(
        select(&selector, ZERO).is_empty(),
        "oneshot file reported once"
    );
    selector.deregister(fd).unwrap();
    assert!(select(&selector, ZERO).is_empty());
}

fn tempfile(tag: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "tarn-selector-{tag}-{}-{:?}",
        std::process::id(),
        thread::current().id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

fn registrations_list_what_is_watched(backend: Backend) {
    let selector = selector(backend);
    let (a, b) = nonblocking_unix_pair();
    let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
    selector
        .register(fb, Token(2), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    selector
        .register(
            fa,
            Token(1),
            Interest::WRITABLE | Interest::PRIORITY,
            Mode::Level,
        )
        .unwrap();
    let list = selector.registrations();
    assert_eq!(list.len(), 2);
    let (low, high) = if fa < fb { (fa, fb) } else { (fb, fa) };
    assert_eq!((list[0].fd, list[1].fd), (low, high), "ordered by fd");
    let ra = list.iter().find(|r| r.fd == fa).unwrap();
    assert_eq!(
        (ra.token, ra.interest, ra.mode),
        (
            Token(1),
            Interest::WRITABLE | Interest::PRIORITY,
            Mode::Level
        )
    );
    selector
        .modify(fb, Token(3), Interest::WRITABLE, Mode::Level)
        .unwrap();
    let rb = selector
        .registrations()
        .into_iter()
        .find(|r| r.fd == fb)
        .unwrap();
    assert_eq!(
        (rb.token, rb.interest, rb.mode),
        (Token(3), Interest::WRITABLE, Mode::Level)
    );
    selector.deregister(fa).unwrap();
    selector.deregister(fb).unwrap();
    assert!(selector.registrations().is_empty());
    assert!(format!("{selector:?}")
        .to_lowercase()
        .contains(backend.name()));
}

fn reading_and_writing_interest_together(backend: Backend) {
    let selector = selector(backend);
    let (a, b) = nonblocking_unix_pair();
    let rw = Interest::READABLE | Interest::WRITABLE;
    selector
        .register(b.as_raw_fd(), Token(1), rw, Mode::Level)
        .unwrap();
    let event = only(&select(&selector, PATIENCE), Token(1));
    assert!(event.writable() && !event.readable());
    (&a).write_all(b"x").unwrap();
    let event = only(&select(&selector, PATIENCE), Token(1));
    assert!(event.writable() && event.readable());
}

macro_rules! on_every_backend {
    ($($test: ident),* $(,)?) => {
        #[cfg(target_os = "linux")]
        mod epoll {
            $(#[test] fn $test() { super::$test(tarn_selector::Backend::Epoll) })*
        }
        mod poll {
            $(#[test] fn $test() { super::$test(tarn_selector::Backend::Poll) })*
        }
        mod select {
            $(#[test] fn $test() { super::$test(tarn_selector::Backend::Select) })*
        }
    };
}

on_every_backend!(
    readable_after_peer_writes,
    writable_at_once,
    pipe_ends_report_their_direction,
    level_reports_while_ready,
    oneshot_reports_once_until_rearmed,
    edge_reports_on_transitions_only,
    events_beyond_capacity_wait_for_the_next_select,
    level_events_beyond_capacity_are_served_fairly,
    peer_close_reports_read_closed,
    tcp_half_close_reports_read_closed_only,
    peer_reset_reports_error,
    urgent_byte_reports_priority,
    timeouts_are_never_early,
    zero_timeout_only_looks,
    notify_wakes_a_select_without_timeout,
    notify_before_select_makes_it_return_at_once,
    notifications_coalesce,
    register_from_another_thread_during_select,
    modify_from_another_thread_rearms_during_select,
    deregister_from_another_thread_silences_the_fd,
    close_after_deregister_reaches_the_peer_during_select,
    double_register_is_already_exists,
    unknown_fd_is_not_found,
    empty_interest_is_invalid_input,
    reserved_token_is_invalid_input,
    closed_then_deregistered_fd_is_cleaned_up,
    select_backend_rejects_fds_past_fd_setsize,
    regular_files_are_ready_on_every_select,
    registrations_list_what_is_watched,
    reading_and_writing_interest_together,
);

#[test]
fn selector_and_notifier_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Selector>();
    assert_send_sync::<tarn_selector::Notifier>();
}

//! Cancellation is safe and leaves nothing behind: dropping read, write,
//! `readable()`, `writable()`, timer and `timeout()` futures at any point
//! (after a few polls by hand, or when a random short timeout expires, in a
//! proptest-generated schedule over shared sockets) keeps the other waiters
//! working, and once every `Async` and `Timer` is dropped `Reactor::stats()`
//! shows no source, no waiting reader or writer and no timer, and no fd is
//! left open. A `read_with`/`write_with` that completed or was cancelled
//! is no longer listed as waiting while its `Async` lives on. Every test
//! here asserts on the process-wide totals, so they all take one lock and
//! run one at a time. Re-run on the poll and select backends.

mod common;

use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use common::waiting_on;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::task::noop_waker;
use proptest::prelude::*;
use tarn_reactor::{drive, timeout, Async, Reactor, Stats, Timer};
use tarn_test_support::{
    bounded, fill_send_buffer, native_or_valgrind, open_io_fds, rerun_on_poll_and_select,
    unix_pair, Rng,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lock that serializes this binary's tests. Their fd counts
/// leave out the reactors' own fds (`open_io_fds`): each test thread that
/// drives has a reactor of its own, which closes as the thread ends, maybe
/// while the next test counts.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn on_poll_and_select_backends() {
    // Holds the lock so that the children's pipes do not disturb the fd
    // counts of the tests running here meanwhile.
    let _serial = serial();
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(1));
}

/// The gauges of `stats()` (not the ever-growing counters).
fn gauges() -> (usize, usize, usize, usize) {
    let s: Stats = tarn_reactor::stats();
    (s.sources, s.waiting_readers, s.waiting_writers, s.timers)
}

fn assert_clean(fds_before: usize, what: &str) {
    assert_eq!(
        gauges(),
        (0, 0, 0, 0),
        "{what}: (sources, waiting readers, waiting writers, timers) after dropping everything; {:?}",
        tarn_reactor::sources()
    );
    assert_eq!(open_io_fds(), fds_before, "{what}: fds leaked");
}

/// Polls `fut` `times` times with `waker`; true if it completed.
fn poll_times<F: Future + ?Sized>(mut fut: Pin<&mut F>, times: usize, waker: &Waker) -> bool {
    let mut cx = Context::from_waker(waker);
    (0..times).any(|_| fut.as_mut().poll(&mut cx).is_ready())
}

#[test]
fn dropping_pending_operations_by_hand_leaves_nothing_registered() {
    let _serial = serial();
    bounded("drop_by_hand", || {
        let fds = open_io_fds();
        assert_eq!(gauges(), (0, 0, 0, 0), "the reactor starts clean");
        {
            // `a` cannot write (its buffer is full); `b` has nothing to read.
            let (a, peer_a) = unix_pair();
            let (b, peer_b) = unix_pair();
            let (a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
            fill_send_buffer(a.get_ref());
            let waker = noop_waker();
            let mut buf = [0u8; 16];

            assert!(!poll_times(Box::pin(b.readable()).as_mut(), 3, &waker));
            assert!(!poll_times(Box::pin(a.writable()).as_mut(), 3, &waker));
            assert!(!poll_times(
                Box::pin((&b).read(&mut buf)).as_mut(),
                2,
                &waker
            ));
            assert!(!poll_times(
                Box::pin((&a).write(&[1; 10])).as_mut(),
                2,
                &waker
            ));
            assert!(!poll_times(
                Box::pin(b.read_with(|s| (&mut &*s).read(&mut [0u8; 4]))).as_mut(),
                2,
                &waker
            ));
            assert!(!poll_times(
                Box::pin(a.write_with(|s| (&mut &*s).write(b"x"))).as_mut(),
                2,
                &waker
            ));
            assert!(!poll_times(
                Box::pin(b.read_exact(&mut buf)).as_mut(),
                2,
                &waker
            ));
            let mut timer = Timer::after(Duration::from_secs(3600));
            assert!(!poll_times(Pin::new(&mut timer), 2, &waker));
            assert_eq!(tarn_reactor::stats().timers, 1);
            drop(timer);
            assert_eq!(tarn_reactor::stats().timers, 0, "a dropped timer stays");
            assert_eq!(tarn_reactor::stats().sources, 2);
            drop((peer_a, peer_b));
        }
        assert_clean(fds, "drop_by_hand");
    });
}

#[test]
fn dropping_readiness_futures_removes_their_waiters_at_once() {
    let _serial = serial();
    bounded("readiness_slots", || {
        let fds = open_io_fds();
        {
            let (a, _peer_a) = unix_pair();
            let (b, _peer_b) = unix_pair();
            let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
            fill_send_buffer(a.get_ref());
            let waker = noop_waker();
            let mut readers: Vec<_> = (0..5).map(|_| Box::pin(b.readable())).collect();
            let mut writers: Vec<_> = (0..3).map(|_| Box::pin(a.writable())).collect();
            for r in &mut readers {
                assert!(!poll_times(r.as_mut(), 1, &waker));
            }
            for w in &mut writers {
                assert!(!poll_times(w.as_mut(), 1, &waker));
            }
            let s = tarn_reactor::stats();
            assert_eq!((s.waiting_readers, s.waiting_writers), (5, 3));
            readers.truncate(2);
            writers.truncate(1);
            let s = tarn_reactor::stats();
            assert_eq!((s.waiting_readers, s.waiting_writers), (2, 1));
            drop(readers);
            drop(writers);
            let s = tarn_reactor::stats();
            assert_eq!((s.waiting_readers, s.waiting_writers), (0, 0));
        }
        assert_clean(fds, "readiness_slots");
    });
}

#[test]
fn dropping_timers_removes_them() {
    let _serial = serial();
    bounded("drop_timers", || {
        let fds = open_io_fds();
        let waker = noop_waker();
        let mut timers: Vec<Timer> = (0..1000)
            .map(|i| Timer::after(Duration::from_millis(500 + i)))
            .collect();
        // Not registered until polled.
        assert_eq!(tarn_reactor::stats().timers, 0);
        for t in &mut timers {
            assert!(!poll_times(Pin::new(t), 2, &waker));
        }
        assert_eq!(tarn_reactor::stats().timers, 1000);
        timers.truncate(400);
        assert_eq!(tarn_reactor::stats().timers, 400);
        // Re-targeting replaces the entry, it does not add one.
        for t in &mut timers {
            t.set_after(Duration::from_secs(7200));
            assert!(!poll_times(Pin::new(t), 1, &waker));
        }
        assert_eq!(tarn_reactor::stats().timers, 400);
        // Polling with another waker replaces the waker, not the entry.
        let other = futures::task::waker(std::sync::Arc::new(Nothing));
        for t in &mut timers {
            assert!(!poll_times(Pin::new(t), 1, &other));
        }
        assert_eq!(tarn_reactor::stats().timers, 400);
        drop(timers);
        // Intervals, timeouts, and timers that fired.
        drive(async {
            let mut interval = Timer::interval(Duration::from_millis(1));
            futures::StreamExt::next(&mut interval).await;
            assert!(timeout(Duration::from_millis(1), Timer::never())
                .await
                .is_err());
            assert_eq!(timeout(Duration::from_secs(60), async { 1 }).await, Ok(1));
            assert!(timeout(
                Duration::from_secs(60),
                Timer::after(Duration::from_millis(1))
            )
            .await
            .is_ok());
        });
        assert_clean(fds, "drop_timers");
    });
}

struct Nothing;

impl futures::task::ArcWake for Nothing {
    fn wake_by_ref(_: &std::sync::Arc<Self>) {}
}

#[test]
fn operations_cancelled_by_random_timeouts_leave_nothing_behind() {
    let _serial = serial();
    bounded("random_timeouts", || {
        let fds = open_io_fds();
        let mut rng = Rng::xorshift(44);
        drive(async {
            let (a, b) = unix_pair();
            let (mut a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
            for round in 0..400 {
                let d = Duration::from_micros(rng.below(400));
                let mut buf = [0u8; 32];
                match rng.below(6) {
                    0 => drop(timeout(d, b.readable()).await),
                    1 => drop(timeout(d, (&b).read(&mut buf)).await),
                    2 => drop(timeout(d, b.read_exact(&mut buf)).await),
                    3 => {
                        let timer = Timer::after(Duration::from_micros(rng.below(600)));
                        let _ = timeout(d, timer).await;
                    }
                    4 => {
                        // A write that may or may not fill the buffer.
                        let data = vec![round as u8; rng.below(300_000) as usize];
                        drop(timeout(d, a.write_all(&data)).await);
                    }
                    _ => {
                        // Drain what was written so far.
                        let mut sink = vec![0u8; 1 << 20];
                        while let Ok(Ok(n)) = timeout(Duration::ZERO, (&b).read(&mut sink)).await {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                }
            }
            // Still consistent: a fresh exchange in both directions works.
            let mut sink = vec![0u8; 1 << 20];
            while let Ok(Ok(_)) = timeout(Duration::from_millis(1), (&b).read(&mut sink)).await {}
            a.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            b.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
            b.write_all(b"pong").await.unwrap();
            a.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"pong");
        });
        assert_clean(fds, "random_timeouts");
    });
}

#[test]
fn dropping_async_with_waiters_on_another_thread_is_clean() {
    // A thread waits on readable() through a timeout; the Async is dropped
    // after that thread gives up: nothing of it remains.
    let _serial = serial();
    bounded("drop_async_threads", || {
        let fds = open_io_fds();
        for _ in 0..50 {
            let (a, b) = unix_pair();
            let b = Async::new(b).unwrap();
            std::thread::scope(|s| {
                s.spawn(|| {
                    drive(async {
                        let start = Instant::now();
                        let res = timeout(Duration::from_millis(1), b.readable()).await;
                        assert!(res.is_err());
                        assert!(start.elapsed() >= Duration::from_millis(1));
                    })
                });
            });
            drop(b);
            drop(a);
        }
        assert_clean(fds, "drop_async_threads");
    });
}

#[test]
fn dropped_async_closes_its_fd_exactly_once() {
    let _serial = serial();
    bounded("close_once", || {
        let fds = open_io_fds();
        let (a, b) = unix_pair();
        let a = Async::new(a).unwrap();
        assert_eq!(open_io_fds(), fds + 2);
        drop(a);
        assert_eq!(open_io_fds(), fds + 1, "dropping Async closes its fd");
        let b = Async::new(b).unwrap();
        let b: UnixStream = b.into_inner().unwrap();
        assert_eq!(open_io_fds(), fds + 1, "into_inner keeps the fd open");
        // The reactor kept no reference: a write to the closed peer fails.
        let err = (&b).write(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        drop(b);
        assert_clean(fds, "close_once");
    });
}

#[test]
fn a_wait_slot_keeps_to_one_fd_and_direction_and_leaves_when_dropped() {
    let _serial = serial();
    bounded("wait_slot", || {
        let fds = open_io_fds();
        {
            let (x, _x_peer) = unix_pair();
            let (y, _y_peer) = unix_pair();
            let (x, y) = (Async::new(x).unwrap(), Async::new(y).unwrap());
            // Polled as a driver's own task would be, so that no fallback
            // thread starts (the next tests take the driver lock).
            let _driving = tarn_reactor::driver::DriverGuard::enter();
            let waker = noop_waker();
            tarn_reactor::driver::DriverGuard::polling(&waker);
            let mut cx = Context::from_waker(&waker);

            // Another waiter on y, in a place of its own.
            let mut other = Box::pin(y.readable());
            assert!(other.as_mut().poll(&mut cx).is_pending());

            // A slot that waited on x, then waits on y, then to write on y.
            let mut slot = tarn_reactor::WaitSlot::default();
            let mut buf = [0u8; 1];
            let read_x = x.poll_read_in(&mut slot, &mut cx, || (&mut x.get_ref()).read(&mut buf));
            assert!(read_x.is_pending());
            let read_y = y.poll_read_in(&mut slot, &mut cx, || (&mut y.get_ref()).read(&mut buf));
            assert!(read_y.is_pending());
            assert_eq!(waiting_on(x.as_raw_fd()), (0, 0), "the slot left x for y");
            assert_eq!(
                waiting_on(y.as_raw_fd()),
                (2, 0),
                "the other reader and the slot"
            );
            assert!(fill_send_buffer(y.get_ref()) > 0);
            let write_y = y.poll_write_in(&mut slot, &mut cx, || (&mut y.get_ref()).write(b"z"));
            assert!(write_y.is_pending());
            assert_eq!(
                waiting_on(y.as_raw_fd()),
                (1, 1),
                "the slot moved to writing"
            );
            drop(slot);
            assert_eq!(waiting_on(y.as_raw_fd()), (1, 0), "a dropped slot leaves");
            drop(other);
            assert_eq!(waiting_on(y.as_raw_fd()), (0, 0));
        }
        assert_clean(fds, "wait slots");
    });
}

#[test]
fn completed_read_with_and_write_with_leave_no_waiter_behind() {
    // An operation that waited, then completed because its retry found the
    // fd ready before any event was processed (an early or spurious
    // wakeup), is no longer waiting: introspection must not list it. Holding
    // the driver lock keeps any thread from processing the event in
    // between, which makes the case deterministic. (The `poll_*` API and
    // `AsyncRead`/`AsyncWrite` share one deduplicated waker list with no
    // drop to hook; their stale wakers go at the next event, by design.)
    let _serial = serial();
    bounded("completed_read_with", || {
        let fds = open_io_fds();
        {
            let (a, b) = unix_pair();
            let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
            let (fa, fb) = (
                std::os::fd::AsRawFd::as_raw_fd(&a),
                std::os::fd::AsRawFd::as_raw_fd(&b),
            );
            // Observations are asserted after the lock is released, so that
            // a failure here does not poison it for the other tests.
            let shared = Reactor::shared().unwrap();
            let driving = shared.lock();
            let waker = noop_waker();

            let mut read = Box::pin(b.read_with(|s| (&mut &*s).read(&mut [0u8; 4])));
            let read_first = poll_times(read.as_mut(), 1, &waker);
            let read_listed = waiting_on(fb);
            (&mut a.get_ref()).write_all(b"1").unwrap();
            let read_second = poll_times(read.as_mut(), 1, &waker);
            drop(read);
            let read_after = waiting_on(fb);

            let filled = fill_send_buffer(a.get_ref());
            let mut write = Box::pin(a.write_with(|s| (&mut &*s).write(b"x")));
            let write_first = poll_times(write.as_mut(), 1, &waker);
            let write_listed = waiting_on(fa);
            let mut sink = vec![0u8; filled + 16];
            let mut drained = 0;
            while drained < filled {
                drained += b.get_ref().read(&mut sink[drained..]).unwrap();
            }
            let write_second = poll_times(write.as_mut(), 1, &waker);
            drop(write);
            let write_after = waiting_on(fa);
            drop(driving);

            assert!(!read_first, "nothing to read yet");
            assert_eq!(read_listed, (1, 0), "the pending read_with is listed");
            assert!(read_second, "the data is there");
            assert_eq!(
                read_after,
                (0, 0),
                "the completed read_with is still listed"
            );
            assert!(!write_first, "no room to write yet");
            assert_eq!(write_listed, (0, 1), "the pending write_with is listed");
            assert!(write_second, "there is room now");
            assert_eq!(
                write_after,
                (0, 0),
                "the completed write_with is still listed"
            );
        }
        assert_clean(fds, "completed_read_with");
    });
}

#[test]
fn cancelled_read_with_and_write_with_leave_no_waiter_behind() {
    // Dropping a pending read_with/write_with future (a timeout expiring)
    // while the Async lives on must not leave its waker counted as waiting
    // (nor kept: each tarn block_on has a waker of its own, so a loop of
    // `drive(timeout(d, s.read_with(..)))` would pile them up).
    let _serial = serial();
    bounded("cancelled_read_with", || {
        let fds = open_io_fds();
        {
            let (a, _peer_a) = unix_pair();
            let (b, peer_b) = unix_pair();
            let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
            fill_send_buffer(a.get_ref());
            let (fa, fb) = (
                std::os::fd::AsRawFd::as_raw_fd(&a),
                std::os::fd::AsRawFd::as_raw_fd(&b),
            );
            for _ in 0..20 {
                let res = drive(timeout(
                    Duration::from_micros(50),
                    b.read_with(|s| (&mut &*s).read(&mut [0u8; 4])),
                ));
                assert!(res.is_err());
                let res = drive(timeout(
                    Duration::from_micros(50),
                    a.write_with(|s| (&mut &*s).write(b"x")),
                ));
                assert!(res.is_err());
            }
            assert_eq!(
                waiting_on(fb),
                (0, 0),
                "cancelled read_with futures are still listed"
            );
            assert_eq!(
                waiting_on(fa),
                (0, 0),
                "cancelled write_with futures are still listed"
            );
            drop(peer_b);
        }
        assert_clean(fds, "cancelled_read_with");
    });
}

/// One step of a random cancellation schedule.
#[derive(Debug, Clone)]
enum Step {
    /// Start an operation on socket `sock` (0..4) and poll it `polls` times
    /// by hand (0 = never), then drop it.
    ByHand { op: Op, sock: usize, polls: usize },
    /// Run an operation under `timeout(micros)` in block_on.
    Timed { op: Op, sock: usize, micros: u64 },
    /// Write `len` bytes to socket `sock` from its (plain) peer.
    Feed { sock: usize, len: usize },
    /// Read whatever is queued on `sock` from its peer's side.
    Drain { sock: usize },
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Read,
    ReadExact,
    Write,
    Readable,
    Writable,
    ReadWith,
    Timer(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Read),
        Just(Op::ReadExact),
        Just(Op::Write),
        Just(Op::Readable),
        Just(Op::Writable),
        Just(Op::ReadWith),
        (0u64..2_000).prop_map(Op::Timer),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (op(), 0usize..4, 0usize..4).prop_map(|(op, sock, polls)| Step::ByHand { op, sock, polls }),
        (op(), 0usize..4, 0u64..1_500).prop_map(|(op, sock, micros)| Step::Timed {
            op,
            sock,
            micros
        }),
        (0usize..4, 1usize..400_000).prop_map(|(sock, len)| Step::Feed { sock, len }),
        (0usize..4).prop_map(|sock| Step::Drain { sock }),
    ]
}

/// Four registered sockets, each with a plain non-blocking peer.
struct Rig {
    sockets: Vec<Async<UnixStream>>,
    peers: Vec<UnixStream>,
}

impl Rig {
    fn new() -> Rig {
        let mut sockets = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..4 {
            let (a, b) = unix_pair();
            b.set_nonblocking(true).unwrap();
            sockets.push(Async::new(a).unwrap());
            peers.push(b);
        }
        Rig { sockets, peers }
    }

    /// A boxed future for `op` on socket `sock`, borrowing the rig.
    fn start<'a>(
        &'a self,
        op: Op,
        sock: usize,
        buf: &'a mut [u8],
    ) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
        let s = &self.sockets[sock];
        match op {
            Op::Read => Box::pin(async move {
                let mut s = s;
                let _ = s.read(buf).await;
            }),
            Op::ReadExact => Box::pin(async move {
                let mut s = s;
                let _ = s.read_exact(buf).await;
            }),
            Op::Write => Box::pin(async move {
                let mut s = s;
                let data = vec![7u8; 300_000];
                let _ = s.write_all(&data).await;
            }),
            Op::Readable => Box::pin(async move {
                let _ = s.readable().await;
            }),
            Op::Writable => Box::pin(async move {
                let _ = s.writable().await;
            }),
            Op::ReadWith => Box::pin(async move {
                let _ = s.read_with(|s| (&mut &*s).read(buf)).await;
            }),
            Op::Timer(micros) => Box::pin(async move {
                Timer::after(Duration::from_micros(micros)).await;
            }),
        }
    }

    fn feed(&self, sock: usize, len: usize) {
        let data = vec![3u8; len];
        let _ = (&self.peers[sock]).write(&data);
    }

    fn drain(&self, sock: usize) {
        let mut sink = vec![0u8; 1 << 20];
        while let Ok(n) = (&self.peers[sock]).read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    }

    /// Every socket still works both ways after the schedule.
    fn check_consistent(&mut self) {
        for sock in 0..4 {
            self.drain(sock);
            // Empty the socket's receive queue too.
            let s = &self.sockets[sock];
            let mut sink = vec![0u8; 1 << 20];
            while let Ok(n) = s.get_ref().read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
            let peer = self.peers[sock].try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1));
                (&peer).write_all(b"ok").unwrap();
            });
            drive(async {
                let mut got = [0u8; 2];
                let mut s = s;
                timeout(Duration::from_secs(20), s.read_exact(&mut got))
                    .await
                    .expect("a read after the schedule never completed")
                    .unwrap();
                assert_eq!(&got, b"ok");
                timeout(Duration::from_secs(20), s.write_all(b"back"))
                    .await
                    .expect("a write after the schedule never completed")
                    .unwrap();
            });
            writer.join().unwrap();
            let mut back = [0u8; 4];
            self.peers[sock].set_nonblocking(false).unwrap();
            self.peers[sock].read_exact(&mut back).unwrap();
            self.peers[sock].set_nonblocking(true).unwrap();
            assert_eq!(&back, b"back");
        }
    }
}

fn run_schedule(steps: &[Step]) {
    let fds = open_io_fds();
    assert_eq!(gauges(), (0, 0, 0, 0), "the reactor starts clean");
    {
        let mut rig = Rig::new();
        // Futures polled by hand and kept pending across later steps, so
        // that cancellations interleave with other waiters.
        let waker = noop_waker();
        for step in steps {
            match step {
                Step::ByHand { op, sock, polls } => {
                    let mut buf = [0u8; 64];
                    let mut fut = rig.start(*op, *sock, &mut buf);
                    poll_times(fut.as_mut(), *polls, &waker);
                }
                Step::Timed { op, sock, micros } => {
                    let mut buf = [0u8; 64];
                    let fut = rig.start(*op, *sock, &mut buf);
                    let _ = drive(timeout(Duration::from_micros(*micros), fut));
                }
                Step::Feed { sock, len } => rig.feed(*sock, *len),
                Step::Drain { sock } => rig.drain(*sock),
            }
        }
        rig.check_consistent();
    }
    assert_clean(fds, "random schedule");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: native_or_valgrind(40, 16),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_cancellation_schedules_leave_the_reactor_clean(
        steps in proptest::collection::vec(step(), 1..30)
    ) {
        let _serial = serial();
        bounded("random_schedule", || run_schedule(&steps));
    }
}

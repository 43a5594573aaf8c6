//! Cancelling any socket operation at any point is safe. proptest generates
//! schedules over one listener and three TCP connections: `accept`,
//! `incoming`, `read`, `read_exact`, `peek`, `write_all`, `readable`,
//! `writable`, `connect` (completing, stalled on a full accept queue, or
//! refused) and timer futures are dropped after a few polls by hand, held
//! pending across later steps and dropped at a random one, cut off by a
//! random short `timeout`, or aborted as spawned tasks, while plain-socket
//! peers sometimes write, drain or connect. Afterwards every connection
//! still carries data both ways, the listener still accepts, a new connect
//! succeeds, and once everything is dropped `Reactor::stats()` (sources,
//! waiting readers and writers, timers) and the count of open fds are back
//! where they started. Each test asserts on process-wide totals, so they
//! take one lock and run one at a time. `on_poll_and_select_backends`
//! re-runs the binary with `TARN_SELECTOR=poll` and `=select`; `TARN_SOAK=1`
//! runs ten times as many schedules (1,000 instead of 100).

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Context;
use std::time::{Duration, Instant};

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::task::noop_waker;
use futures::StreamExt;
use proptest::prelude::*;
use tarn_executor::{block_on, spawn};
use tarn_net::{TcpListener, TcpSocket, TcpStream};
use tarn_reactor::{timeout, Timer};
use tarn_test_support::{open_io_fds, rerun_on_poll_and_select, sized, watchdog};

/// Connections between the rig's tarn sockets and their plain peers.
const CONNS: usize = 3;

/// How long the checks after a schedule may take before they count as hung.
const CHECK_PATIENCE: Duration = Duration::from_secs(20);

/// Held by every test of this binary while it runs; see [`serial`].
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lock that serializes this binary's tests, and creates what
/// outlives every test (the stalled and refusing addresses) before any fd
/// is counted. The counts leave out the reactors' own fds (`open_io_fds`):
/// each test thread that drives has a reactor of its own, which closes as
/// the thread ends, maybe while the next test counts.
fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ = stalled_addr();
    let _ = refused_addr();
    guard
}

/// Re-runs the other tests with `TARN_SELECTOR=poll` and `=select`.
#[test]
fn on_poll_and_select_backends() {
    // Holds the lock so that the children's pipes do not disturb the fd
    // counts of the tests running here meanwhile.
    let _serial = serial();
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

/// The gauges of `stats()` (not the ever-growing counters): sources,
/// waiting readers, waiting writers, timers.
fn gauges() -> (usize, usize, usize, usize) {
    let s = tarn_reactor::stats();
    (s.sources, s.waiting_readers, s.waiting_writers, s.timers)
}

/// An address whose accept queue is full: Linux drops the SYNs of further
/// connects, which stay in progress (retransmitting) far longer than any
/// test. A plain listener that never accepts, made once per process.
fn stalled_addr() -> SocketAddr {
    static STALLED: OnceLock<(std::net::TcpListener, Vec<std::net::TcpStream>)> = OnceLock::new();
    let (listener, _queued) = STALLED.get_or_init(|| {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap().into_std().unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        loop {
            assert!(queued.len() < 16, "the accept queue of {addr} never filled");
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(conn) => queued.push(conn),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                Err(e) => panic!("filling the accept queue of {addr}: {e}"),
            }
        }
        (listener, queued)
    });
    listener.local_addr().unwrap()
}

/// An address that refuses connections: a socket bound to it that never
/// listens, held for the whole process so that nobody else takes the port.
fn refused_addr() -> SocketAddr {
    static REFUSING: OnceLock<(TcpSocket, SocketAddr)> = OnceLock::new();
    REFUSING
        .get_or_init(|| {
            let socket = TcpSocket::new_v4().unwrap();
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = probe.local_addr().unwrap();
            drop(probe);
            socket.bind(addr).unwrap();
            (socket, addr)
        })
        .1
}

/// One operation whose future a schedule starts and may cancel.
#[derive(Debug, Clone, Copy)]
enum Op {
    Accept,
    Incoming,
    Read(usize),
    ReadExact(usize),
    Peek(usize),
    Write(usize),
    Readable(usize),
    Writable(usize),
    Connect,
    ConnectStalled,
    ConnectRefused,
    Timer(u64),
}

/// One step of a schedule.
#[derive(Debug, Clone)]
enum Step {
    /// Poll the op's future `polls` times with a no-op waker, then drop it.
    ByHand { op: Op, polls: usize },
    /// Poll it `polls` times and keep it, pending, for a later `DropHeld`.
    Hold { op: Op, polls: usize },
    /// Drop one held future (the `index`th, modulo how many there are).
    DropHeld { index: usize },
    /// Run it under `block_on`, cut off by a `timeout` of `micros`.
    Timed { op: Op, micros: u64 },
    /// Spawn it as a task, and abort the task after `micros`.
    Aborted { op: Op, micros: u64 },
    /// The plain peer of connection `conn` writes `len` bytes (as many as fit).
    PeerWrite { conn: usize, len: usize },
    /// The plain peer of connection `conn` reads whatever is queued.
    PeerDrain { conn: usize },
    /// A plain client connects to the listener (and stays open).
    PeerConnect,
}

/// Any op, on any of the connections.
fn op() -> impl Strategy<Value = Op> {
    let conn = 0..CONNS;
    prop_oneof![
        Just(Op::Accept),
        Just(Op::Incoming),
        conn.clone().prop_map(Op::Read),
        conn.clone().prop_map(Op::ReadExact),
        conn.clone().prop_map(Op::Peek),
        conn.clone().prop_map(Op::Write),
        conn.clone().prop_map(Op::Readable),
        conn.prop_map(Op::Writable),
        Just(Op::Connect),
        Just(Op::ConnectStalled),
        Just(Op::ConnectRefused),
        (0u64..2_000).prop_map(Op::Timer),
    ]
}

/// Any step; starting an op is the most likely.
fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (op(), 0usize..4).prop_map(|(op, polls)| Step::ByHand { op, polls }),
        2 => (op(), 1usize..4).prop_map(|(op, polls)| Step::Hold { op, polls }),
        1 => any::<usize>().prop_map(|index| Step::DropHeld { index }),
        2 => (op(), 0u64..1_500).prop_map(|(op, micros)| Step::Timed { op, micros }),
        2 => (op(), 0u64..1_500).prop_map(|(op, micros)| Step::Aborted { op, micros }),
        2 => (0..CONNS, 1usize..300_000).prop_map(|(conn, len)| Step::PeerWrite { conn, len }),
        1 => (0..CONNS).prop_map(|conn| Step::PeerDrain { conn }),
        1 => Just(Step::PeerConnect),
    ]
}

/// A tarn listener, and tarn connections each with a plain non-blocking peer.
struct Rig {
    listener: TcpListener,
    addr: SocketAddr,
    conns: Vec<TcpStream>,
    peers: Vec<std::net::TcpStream>,
    /// Plain clients of `PeerConnect`, kept open until the rig drops.
    clients: RefCell<Vec<std::net::TcpStream>>,
}

/// A future the schedule may drop at any point.
type OpFuture = Pin<Box<dyn Future<Output = ()>>>;

impl Rig {
    /// A listener on a fresh port and `CONNS` connections accepted from it.
    fn new() -> Rc<Rig> {
        block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut conns = Vec::new();
            let mut peers = Vec::new();
            for _ in 0..CONNS {
                let peer = std::net::TcpStream::connect(addr).unwrap();
                peer.set_nonblocking(true).unwrap();
                let (conn, from) = listener.accept().await.unwrap();
                assert_eq!(from, peer.local_addr().unwrap());
                conns.push(conn);
                peers.push(peer);
            }
            Rc::new(Rig {
                listener,
                addr,
                conns,
                peers,
                clients: RefCell::new(Vec::new()),
            })
        })
    }

    /// The future of `op`; it fails the test if the operation completes
    /// with an unexpected result.
    fn start(self: &Rc<Rig>, op: Op) -> OpFuture {
        let rig = Rc::clone(self);
        match op {
            Op::Accept => Box::pin(async move {
                rig.listener.accept().await.expect("accept");
            }),
            Op::Incoming => Box::pin(async move {
                let mut incoming = rig.listener.incoming();
                incoming
                    .next()
                    .await
                    .expect("incoming ended")
                    .expect("incoming");
            }),
            Op::Read(c) => Box::pin(async move {
                let mut buf = [0u8; 512];
                let n = (&rig.conns[c]).read(&mut buf).await.expect("read");
                assert!(n > 0, "end of stream from a peer that never closes");
            }),
            Op::ReadExact(c) => Box::pin(async move {
                let mut buf = vec![0u8; 100_000];
                (&rig.conns[c])
                    .read_exact(&mut buf)
                    .await
                    .expect("read_exact");
            }),
            Op::Peek(c) => Box::pin(async move {
                let mut buf = [0u8; 512];
                let n = rig.conns[c].peek(&mut buf).await.expect("peek");
                assert!(n > 0, "end of stream from a peer that never closes");
            }),
            Op::Write(c) => Box::pin(async move {
                let data = vec![7u8; 1 << 20];
                (&rig.conns[c]).write_all(&data).await.expect("write_all");
            }),
            Op::Readable(c) => Box::pin(async move {
                rig.conns[c].readable().await.expect("readable");
            }),
            Op::Writable(c) => Box::pin(async move {
                rig.conns[c].writable().await.expect("writable");
            }),
            Op::Connect => Box::pin(async move {
                TcpStream::connect(rig.addr).await.expect("connect");
            }),
            Op::ConnectStalled => Box::pin(async move {
                // Only the drop matters: this connect does not finish in a
                // test's time, and if it did, either result would do.
                let _ = TcpStream::connect(stalled_addr()).await;
            }),
            Op::ConnectRefused => Box::pin(async move {
                let err = TcpStream::connect(refused_addr()).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
            }),
            Op::Timer(micros) => Box::pin(async move {
                Timer::after(Duration::from_micros(micros)).await;
            }),
        }
    }

    /// The peer of `conn` writes up to `len` bytes.
    fn peer_write(&self, conn: usize, len: usize) {
        let _ = (&self.peers[conn]).write(&vec![3u8; len]);
    }

    /// The peer of `conn` reads whatever is queued; returns how much.
    fn peer_drain(&self, conn: usize) -> usize {
        let mut sink = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            match (&self.peers[conn]).read(&mut sink) {
                Ok(0) => panic!("end of stream on the peer of connection {conn}"),
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
                Err(e) => panic!("peer of connection {conn}: {e}"),
            }
        }
    }

    /// Empties both directions of `conn`, including what still sits in a
    /// send queue behind a closed window, so that only new data follows.
    fn quiesce(&self, conn: usize) {
        let deadline = Instant::now() + CHECK_PATIENCE;
        let (ours, theirs) = (self.conns[conn].as_raw_fd(), self.peers[conn].as_raw_fd());
        loop {
            let moved = self.peer_drain(conn) + recv_all(ours);
            if moved == 0 && unsent(ours) == 0 && unsent(theirs) == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "connection {conn} never went quiet"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Every connection carries data both ways, the listener accepts, and
    /// a new connect succeeds.
    fn check_usable(&self) {
        for conn in 0..CONNS {
            self.quiesce(conn);
        }
        let checks = async {
            for conn in 0..CONNS {
                let peer = &self.peers[conn];
                (&*peer).write_all(b"ping").unwrap();
                let mut got = [0u8; 4];
                (&self.conns[conn]).read_exact(&mut got).await?;
                assert_eq!(&got, b"ping", "connection {conn}");
                (&self.conns[conn]).write_all(b"pong").await?;
                let mut back = [0u8; 4];
                peer.set_nonblocking(false).unwrap();
                peer.set_read_timeout(Some(CHECK_PATIENCE)).unwrap();
                (&*peer).read_exact(&mut back).unwrap();
                peer.set_nonblocking(true).unwrap();
                assert_eq!(&back, b"pong", "connection {conn}");
            }
            // Earlier connects may still be queued: accept until ours.
            let mut client = TcpStream::connect(self.addr).await?;
            let mine = client.local_addr()?;
            let mut server = loop {
                let (server, from) = self.listener.accept().await?;
                if from == mine {
                    break server;
                }
            };
            client.write_all(b"hello").await?;
            let mut got = [0u8; 5];
            server.read_exact(&mut got).await?;
            assert_eq!(&got, b"hello");
            Timer::after(Duration::from_millis(1)).await;
            io::Result::Ok(())
        };
        block_on(timeout(CHECK_PATIENCE, checks))
            .expect("the checks after the schedule hung")
            .expect("the checks after the schedule failed");
    }
}

/// Reads (without tarn) whatever is queued on `fd`; returns how much.
fn recv_all(fd: RawFd) -> usize {
    let mut sink = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        // SAFETY: `sink` is valid for writes of its length.
        let n = unsafe { libc::recv(fd, sink.as_mut_ptr().cast(), sink.len(), libc::MSG_DONTWAIT) };
        match n {
            0 => panic!("end of stream on fd {fd}"),
            n if n > 0 => total += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "recv on fd {fd}: {e}");
                return total;
            }
        }
    }
}

/// Bytes `fd` has queued to send and the peer has not acknowledged.
fn unsent(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one c_int through the pointer.
    let res = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    assert_eq!(res, 0, "TIOCOUTQ: {}", io::Error::last_os_error());
    n as usize
}

/// Polls `fut` up to `times` times with a no-op waker.
fn poll_times(fut: &mut OpFuture, times: usize) {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for _ in 0..times {
        if fut.as_mut().poll(&mut cx).is_ready() {
            return;
        }
    }
}

/// Runs one schedule, checks the sockets, drops everything and checks
/// that the reactor's gauges and the fd count are back where they were.
fn run_schedule(steps: &[Step]) {
    let fds = open_io_fds();
    let before = gauges();
    {
        let rig = Rig::new();
        let mut held: Vec<OpFuture> = Vec::new();
        for step in steps {
            match *step {
                Step::ByHand { op, polls } => poll_times(&mut rig.start(op), polls),
                Step::Hold { op, polls } => {
                    let mut fut = rig.start(op);
                    poll_times(&mut fut, polls);
                    held.push(fut);
                }
                Step::DropHeld { index } => {
                    if !held.is_empty() {
                        drop(held.remove(index % held.len()));
                    }
                }
                Step::Timed { op, micros } => {
                    let _ = block_on(timeout(Duration::from_micros(micros), rig.start(op)));
                }
                Step::Aborted { op, micros } => block_on(async {
                    let task = spawn(rig.start(op));
                    Timer::after(Duration::from_micros(micros)).await;
                    task.abort();
                    if let Err(e) = task.await {
                        if e.is_panic() {
                            std::panic::resume_unwind(e.into_panic());
                        }
                    }
                }),
                Step::PeerWrite { conn, len } => rig.peer_write(conn, len),
                Step::PeerDrain { conn } => {
                    rig.peer_drain(conn);
                }
                Step::PeerConnect => {
                    let client = std::net::TcpStream::connect(rig.addr).unwrap();
                    rig.clients.borrow_mut().push(client);
                }
            }
        }
        drop(held);
        rig.check_usable();
        assert_eq!(Rc::strong_count(&rig), 1, "a future still holds the rig");
    }
    assert_eq!(
        gauges(),
        before,
        "(sources, waiting readers, waiting writers, timers) after dropping everything; {:?}",
        tarn_reactor::sources()
    );
    assert_eq!(open_io_fds(), fds, "fds left open");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: sized(100, 1_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random schedules of started, held, timed-out and aborted socket and
    /// timer futures leave the sockets usable and the reactor as it was.
    #[test]
    fn random_cancellations_leave_sockets_usable_and_the_reactor_clean(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let _serial = serial();
        let _watchdog = watchdog("random_cancellations", Duration::from_secs(60));
        run_schedule(&steps);
    }
}

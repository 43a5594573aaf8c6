//! Faults stay where they happen: a peer resetting in the middle of a large
//! write fails that writer's task only; half-closed clients still get their
//! whole echo; a storm of signals (a no-op handler without `SA_RESTART`,
//! one every 100 µs) interrupts the server's waits without losing or
//! corrupting a byte or firing a timer early; a task panicking on every
//! 100th connection is reported to its `JoinHandle` and to the executor's
//! `on_panic` while the server serves on; a task blocking the thread for
//! 50 ms delays the others but loses nothing. Afterwards the process's fds
//! and the reactor's sources, wakers and timers are back where they were.
//!
//! Servers are tarn, on a thread of their own; clients are std threads, or
//! tarn on the test's thread. Each test runs alone in a process per backend
//! (epoll, poll, select). `TARN_SOAK=1` runs the larger sizes.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::ServerThread;
use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::TcpListener;
use tarn_test_support::{
    backend_name, connect_with_timeouts, figure, fnv1a, isolated_on_each_backend, reset_on_close,
    sized, Latency, RandomChunks, Rng, FNV_START, MAX_IO,
};

/// How long a std client waits for any one reply before failing.
const CLIENT_PATIENCE: Duration = Duration::from_secs(10);

/// A std client with [`CLIENT_PATIENCE`] timeouts.
fn connect(addr: SocketAddr) -> std::net::TcpStream {
    connect_with_timeouts(addr, CLIENT_PATIENCE).unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Streams `len` random bytes (in random sizes, seeded with `seed`) through
/// the std connection `conn` to an echo server from a writer thread, then
/// shuts its write direction down; reads the echo until end of stream on
/// this thread; checks length and checksum.
fn std_stream_through(conn: std::net::TcpStream, seed: u64, len: usize) {
    let mut writer = conn.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let mut sizes = Rng::xorshift_star(2 * seed);
        let mut chunks = RandomChunks::new(Rng::xorshift_star(2 * seed + 1), len);
        while let Some(chunk) = chunks.next_chunk(sizes.io_size()) {
            writer.write_all(chunk).expect("write");
        }
        writer.shutdown(Shutdown::Write).expect("shutdown(Write)");
        chunks.checksum()
    });
    let mut reader = conn;
    let mut sizes = Rng::xorshift_star(seed + 1000);
    let mut buf = vec![0; MAX_IO];
    let (mut received, mut hash) = (0, FNV_START);
    loop {
        let size = sizes.io_size();
        let n = reader.read(&mut buf[..size]).expect("read the echo");
        if n == 0 {
            break;
        }
        received += n;
        hash = fnv1a(hash, &buf[..n]);
    }
    let sent = sender.join().expect("the writer thread failed");
    assert_eq!(received, len, "stream {seed}: echoed length");
    assert_eq!(hash, sent, "stream {seed}: echoed checksum");
}

/// Peers that reset while their server task is in the middle of a large
/// write: each such task gets `BrokenPipe` or `ConnectionReset`, while
/// bystanders streaming checksummed data through the same server at the
/// same time are unaffected, and a newcomer is served.
#[test]
fn peer_resets_mid_write_fail_only_their_own_tasks() {
    isolated_on_each_backend(
        "peer_resets_mid_write_fail_only_their_own_tasks",
        common::reliability_patience(),
        || {
            let victims = sized(8, 64);
            let bystander_bytes = sized(8 << 20, 64 << 20);
            const BYSTANDERS: usize = 4;
            let start = common::Held::start();
            let (flood_tx, flood_errors) = mpsc::channel::<io::Error>();
            // A connection that starts with b'F' gets an endless stream of
            // 1 MiB writes; any other byte, an echo (that byte included).
            let server = ServerThread::start(move |listener: TcpListener| async move {
                loop {
                    let (mut conn, _) = listener.accept().await.expect("accept");
                    let flood_tx = flood_tx.clone();
                    tarn::spawn(async move {
                        let mut first = [0; 1];
                        conn.read_exact(&mut first).await?;
                        if &first == b"F" {
                            let chunk = vec![0x5a; 1 << 20];
                            let err = loop {
                                if let Err(e) = conn.write_all(&chunk).await {
                                    break e;
                                }
                            };
                            let _ = flood_tx.send(err);
                            return Ok(());
                        }
                        conn.write_all(&first).await?;
                        common::echo(conn).await.map(drop)
                    })
                    .detach();
                }
            });
            let serving = start.with_server();
            serving.wait_for("with the server started");
            let addr = server.addr();

            let started = Instant::now();
            thread::scope(|scope| {
                for _ in 0..victims {
                    scope.spawn(move || {
                        let mut conn = connect(addr);
                        conn.write_all(b"F").unwrap();
                        // Read 2 MiB of the flood, then reset under the writer.
                        let mut buf = vec![0; 2 << 20];
                        conn.read_exact(&mut buf).unwrap();
                        reset_on_close(&conn);
                    });
                }
                for seed in 0..BYSTANDERS as u64 {
                    scope.spawn(move || {
                        let mut conn = connect(addr);
                        conn.write_all(b"E").unwrap();
                        let mut first = [0; 1];
                        conn.read_exact(&mut first).unwrap();
                        std_stream_through(conn, seed, bystander_bytes);
                    });
                }
            });
            let mut kinds = Vec::new();
            for _ in 0..victims {
                let err = flood_errors
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a flooding task never saw its peer go");
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ),
                    "a flooding task got {err:?}, not BrokenPipe or ConnectionReset"
                );
                kinds.push(err.kind());
            }
            let took = started.elapsed();

            // The server goes on.
            let mut newcomer = connect(addr);
            newcomer.write_all(b"Ehello").unwrap();
            let mut reply = [0; 6];
            newcomer.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"Ehello");
            drop(newcomer);

            serving.wait_for("after the resets");
            server.stop();
            start.wait_for("after the server stopped");
            let resets = kinds
                .iter()
                .filter(|k| **k == io::ErrorKind::ConnectionReset)
                .count();
            figure(format_args!(
                "faults [{}] reset mid-write: {victims} writers failed ({} BrokenPipe, {resets} \
             ConnectionReset) while {BYSTANDERS} bystanders echoed {} MiB each intact, in \
             {took:.2?}; fds and reactor sources back to start",
                backend_name(),
                victims - resets,
                bystander_bytes >> 20,
            ));
        },
    );
}

/// Clients that shut their write direction down once they have sent
/// everything still read the whole echo; the server task sees the end of
/// stream and finishes cleanly with every byte echoed.
#[test]
fn half_closed_clients_still_read_the_whole_echo() {
    isolated_on_each_backend(
        "half_closed_clients_still_read_the_whole_echo",
        common::reliability_patience(),
        || {
            let clients = sized(32, 64);
            let bytes = sized(1 << 20, 16 << 20);
            let start = common::Held::start();
            let (done_tx, done) = mpsc::channel();
            let server = ServerThread::start(move |listener: TcpListener| async move {
                loop {
                    let (conn, _) = listener.accept().await.expect("accept");
                    let done_tx = done_tx.clone();
                    tarn::spawn(async move {
                        let _ = done_tx.send(common::echo(conn).await);
                    })
                    .detach();
                }
            });
            let serving = start.with_server();
            serving.wait_for("with the server started");
            let addr = server.addr();

            let started = Instant::now();
            thread::scope(|scope| {
                for seed in 0..clients as u64 {
                    scope.spawn(move || std_stream_through(connect(addr), seed, bytes));
                }
            });
            let took = started.elapsed();
            common::assert_each_echoed(&done, clients, bytes);
            serving.wait_for("after the clients");
            server.stop();
            start.wait_for("after the server stopped");
            figure(format_args!(
            "faults [{}] half-close: {clients} clients sent {} KiB each, shut down writing and \
             read the whole echo back ({took:.2?}); every server task ended cleanly",
            backend_name(),
            bytes >> 10
        ));
        },
    );
}

/// Signals the storm's handler received.
static SIGNALS_RECEIVED: AtomicU64 = AtomicU64::new(0);

/// The storm's no-op handler: counts, nothing else (async-signal-safe).
extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS_RECEIVED.fetch_add(1, Ordering::Relaxed);
}

/// Installs [`count_signal`] for `SIGUSR1` without `SA_RESTART`, so that
/// every blocking syscall it lands in fails with `EINTR`.
fn install_interrupting_handler() {
    // SAFETY: sigaction is plain data, valid when zeroed.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = 0; // no SA_RESTART
                         // SAFETY: sa_mask is a valid sigset_t to empty.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is a valid sigaction whose handler is
    // async-signal-safe; this process runs this test alone.
    let res = unsafe { libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()) };
    assert_eq!(res, 0, "sigaction: {}", io::Error::last_os_error());
}

/// A thread that sends `SIGUSR1` every 100 µs, in turn to each thread of
/// `targets` and to the whole process, until dropped.
struct SignalStorm {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<u64>>,
}

impl SignalStorm {
    /// Starts the storm. The targets must outlive it.
    fn start(targets: Vec<libc::pthread_t>) -> SignalStorm {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut sent = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                let turn = (sent % (targets.len() as u64 + 1)) as usize;
                let res = match targets.get(turn) {
                    // SAFETY: the target threads outlive the storm (see `start`).
                    Some(&thread) => unsafe { libc::pthread_kill(thread, libc::SIGUSR1) },
                    // SAFETY: kill with our own pid and a handled signal.
                    None => unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) },
                };
                assert_eq!(res, 0, "sending SIGUSR1 failed");
                sent += 1;
                thread::sleep(Duration::from_micros(100));
            }
            sent
        });
        SignalStorm {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the storm; the number of signals sent.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("the storm thread")
    }
}

impl Drop for SignalStorm {
    /// Stops the storm, so that it never outlives its target threads.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A storm of signals (a no-op handler without `SA_RESTART`, one every
/// 100 µs, aimed at the server's thread, the clients' thread and the
/// process) while tarn clients stream checksummed data through a tarn
/// echo server and tarn timers run: every byte comes back intact and no
/// timer fires early.
#[test]
fn a_signal_storm_loses_no_data_and_fires_no_timer_early() {
    isolated_on_each_backend(
        "a_signal_storm_loses_no_data_and_fires_no_timer_early",
        common::reliability_patience(),
        || {
            const CONNECTIONS: u64 = 8;
            let bytes = sized(4 << 20, 64 << 20);
            let timer_rounds = sized(100, 2000);
            install_interrupting_handler();
            let start = common::Held::start();
            let (thread_tx, server_thread) = mpsc::channel();
            let server = ServerThread::start(move |listener: TcpListener| async move {
                // SAFETY: pthread_self has no preconditions.
                thread_tx.send(unsafe { libc::pthread_self() }).unwrap();
                loop {
                    let (conn, _) = listener.accept().await.expect("accept");
                    tarn::spawn(common::echo(conn)).detach();
                }
            });
            let server_thread = server_thread.recv().unwrap();
            let serving = start.with_server();
            serving.wait_for("with the server started");
            let addr = server.addr();

            // SAFETY: pthread_self has no preconditions.
            let storm = SignalStorm::start(vec![server_thread, unsafe { libc::pthread_self() }]);
            let started = Instant::now();
            let early = common::run(async {
                let streams = futures::future::try_join_all(
                    (0..CONNECTIONS).map(|i| common::stream_through_echo(addr, i, bytes)),
                );
                // Timers of 1 to 3 ms, each checked against the clock.
                let timers = async {
                    let mut early = 0;
                    for i in 0..timer_rounds {
                        let wanted = Duration::from_micros(1000 + 1000 * (i % 3));
                        let set = Instant::now();
                        tarn::Timer::after(wanted).await;
                        if set.elapsed() < wanted {
                            early += 1;
                        }
                    }
                    early
                };
                let (streams, early) = futures::join!(streams, timers);
                streams.expect("a stream failed");
                early
            });
            let took = started.elapsed();
            let sent = storm.stop();
            let received = SIGNALS_RECEIVED.load(Ordering::Relaxed);

            serving.wait_for("after the storm");
            server.stop();
            start.wait_for("after the server stopped");
            figure(format_args!(
                "faults [{}] signal storm: {sent} SIGUSR1 sent ({received} handled) in \
                 {took:.2?} while {CONNECTIONS} connections echoed {} MiB each intact; {early} of \
                 {timer_rounds} timers early",
                backend_name(),
                bytes >> 20
            ));
            assert_eq!(early, 0, "timers fired early under the signal storm");
            assert!(
                received >= sent / 2 && sent >= 100,
                "the storm was too weak to mean anything: {sent} sent, {received} handled"
            );
        },
    );
}

/// A server whose tasks panic on every 100th connection, on an executor
/// with an `on_panic` handler: each panic reaches the handler and the
/// task's `JoinHandle`, the panicking connection is closed, and every
/// other client, including long-lived ones, is served.
#[test]
fn a_task_panicking_every_100th_connection_harms_no_other() {
    isolated_on_each_backend(
        "a_task_panicking_every_100th_connection_harms_no_other",
        common::reliability_patience(),
        || {
            let connections = sized(1_000, 20_000);
            const LONG_LIVED: usize = 2;
            let start = common::Held::start();
            let handled = Arc::new(AtomicUsize::new(0));
            let handler_count = Arc::clone(&handled);
            let (outcome_tx, outcomes) = mpsc::channel::<(usize, Result<(), String>)>();
            let server = ServerThread::start_on(
                move || {
                    tarn::LocalExecutor::builder()
                        .on_panic(move |payload| {
                            let message = payload
                                .downcast_ref::<String>()
                                .map(String::as_str)
                                .unwrap_or("");
                            assert!(message.starts_with("deliberate panic"), "{message}");
                            handler_count.fetch_add(1, Ordering::Relaxed);
                        })
                        .build()
                },
                move |listener: TcpListener| async move {
                    for i in 0.. {
                        let (mut conn, _) = listener.accept().await.expect("accept");
                        let task = tarn::spawn(async move {
                            let mut request = [0; 16];
                            conn.read_exact(&mut request).await?;
                            if i % 100 == 99 {
                                panic!("deliberate panic on connection {i}");
                            }
                            conn.write_all(&request).await?;
                            common::echo(conn).await.map(drop)
                        });
                        // Await each handle in a task of its own, reporting
                        // how the connection's task ended.
                        let outcome_tx = outcome_tx.clone();
                        tarn::spawn(async move {
                            let outcome = match task.await {
                                Ok(_) => Ok(()),
                                Err(e) if e.is_panic() => {
                                    Err(e.panic_message().unwrap_or("?").to_string())
                                }
                                Err(e) => panic!("connection {i}: {e}"),
                            };
                            let _ = outcome_tx.send((i, outcome));
                        })
                        .detach();
                    }
                },
            );
            let serving = start.with_server();
            serving.wait_for("with the server started");
            let addr = server.addr();

            // Long-lived clients first (connections 0 and 1), then one
            // connection per request, one at a time, so that the server's
            // count and ours agree.
            let mut long_lived: Vec<_> = (0..LONG_LIVED).map(|_| connect(addr)).collect();
            let ping = |conn: &mut std::net::TcpStream, msg: &[u8; 16]| {
                conn.write_all(msg).unwrap();
                let mut reply = [0; 16];
                conn.read_exact(&mut reply).unwrap();
                assert_eq!(&reply, msg);
            };
            for conn in &mut long_lived {
                ping(conn, b"long-lived hello");
            }
            let started = Instant::now();
            let mut refused = Vec::new();
            for i in LONG_LIVED..connections {
                let mut conn = connect(addr);
                let msg = format!("request {i:08}");
                conn.write_all(msg.as_bytes()).unwrap();
                let mut reply = [0; 16];
                match conn.read(&mut reply) {
                    Ok(16) => assert_eq!(&reply, msg.as_bytes()),
                    // The task panicked: its connection closed unanswered.
                    Ok(0) => refused.push(i),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => refused.push(i),
                    other => panic!("connection {i}: {other:?}"),
                }
                if i % 10 == 0 {
                    for conn in &mut long_lived {
                        ping(conn, b"still served? ok");
                    }
                }
            }
            let took = started.elapsed();
            drop(long_lived);

            let expected: Vec<usize> = (LONG_LIVED..connections)
                .filter(|i| i % 100 == 99)
                .collect();
            assert_eq!(refused, expected, "the connections left unanswered");
            let mut panicked = Vec::new();
            for _ in 0..connections {
                let (i, outcome) = outcomes
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a connection's task never finished");
                if let Err(message) = outcome {
                    assert_eq!(message, format!("deliberate panic on connection {i}"));
                    panicked.push(i);
                }
            }
            panicked.sort_unstable();
            assert_eq!(panicked, expected, "the JoinHandles that reported a panic");
            assert_eq!(
                handled.load(Ordering::Relaxed),
                expected.len(),
                "on_panic calls"
            );

            serving.wait_for("after the clients");
            server.stop();
            start.wait_for("after the server stopped");
            figure(format_args!(
                "faults [{}] panics: {connections} connections in {took:.2?}, {} tasks panicked \
                 (each reported once to on_panic and to its JoinHandle), every other client \
                 and the {LONG_LIVED} long-lived ones served",
                backend_name(),
                expected.len()
            ));
        },
    );
}

/// A server where every 20th connection's task blocks the thread for
/// 50 ms (`std::thread::sleep`, as careless blocking code would): the
/// other clients wait, but every request is answered, correctly.
#[test]
fn a_task_blocking_the_thread_delays_others_but_loses_nothing() {
    isolated_on_each_backend(
        "a_task_blocking_the_thread_delays_others_but_loses_nothing",
        common::reliability_patience(),
        || {
            const CLIENTS: usize = 8;
            const REQUESTS: usize = 4;
            const BLOCK: Duration = Duration::from_millis(50);
            let connections = sized(400, 10_000);
            let start = common::Held::start();
            let blocked = Arc::new(AtomicUsize::new(0));
            let blocks = Arc::clone(&blocked);
            let server = ServerThread::start(move |listener: TcpListener| async move {
                for i in 0.. {
                    let (mut conn, _) = listener.accept().await.expect("accept");
                    let blocks = Arc::clone(&blocks);
                    tarn::spawn(async move {
                        let mut request = [0; 32];
                        conn.read_exact(&mut request).await?;
                        if i % 20 == 0 {
                            std::thread::sleep(BLOCK);
                            blocks.fetch_add(1, Ordering::Relaxed);
                        }
                        conn.write_all(&request).await?;
                        common::echo(conn).await.map(drop)
                    })
                    .detach();
                }
            });
            let serving = start.with_server();
            serving.wait_for("with the server started");
            let addr = server.addr();

            let started = Instant::now();
            let samples: Vec<Duration> = thread::scope(|scope| {
                let clients: Vec<_> = (0..CLIENTS)
                    .map(|client| {
                        scope.spawn(move || {
                            let mut samples = Vec::new();
                            for n in (client..connections).step_by(CLIENTS) {
                                let mut conn = connect(addr);
                                for r in 0..REQUESTS {
                                    let msg = format!("client {client} conn {n:06} request {r}");
                                    let msg = format!("{msg:<32}");
                                    let asked = Instant::now();
                                    conn.write_all(msg.as_bytes()).unwrap();
                                    let mut reply = [0; 32];
                                    conn.read_exact(&mut reply).unwrap_or_else(|e| {
                                        panic!("conn {n} request {r}: no answer: {e}")
                                    });
                                    samples.push(asked.elapsed());
                                    assert_eq!(&reply, msg.as_bytes());
                                }
                            }
                            samples
                        })
                    })
                    .collect();
                clients
                    .into_iter()
                    .flat_map(|c| c.join().expect("a client failed"))
                    .collect()
            });
            let took = started.elapsed();
            let latency = Latency::of(samples);
            let blocked = blocked.load(Ordering::Relaxed);

            serving.wait_for("after the clients");
            server.stop();
            start.wait_for("after the server stopped");
            figure(format_args!(
                "faults [{}] blocking task: {blocked} tasks blocked the thread {BLOCK:?} each; \
                 {CLIENTS} clients made {} requests on {connections} connections in \
                 {took:.2?}, all answered: {latency}",
                backend_name(),
                latency.count
            ));
            assert_eq!(blocked, connections.div_ceil(20), "blocking tasks");
            assert_eq!(latency.count, connections * REQUESTS, "answers");
            assert!(
                latency.max >= BLOCK,
                "no request waited for a blocked thread: {latency}"
            );
            assert!(
                took >= BLOCK * blocked as u32,
                "the blocks did not add up ({took:?})"
            );
            // Each client waits behind at most one block per other client.
            let bound = BLOCK * CLIENTS as u32 + Duration::from_millis(500);
            assert!(
                latency.max <= bound,
                "a request waited {:?} (bound {bound:?})",
                latency.max
            );
        },
    );
}

//! What the facade's integration tests share that needs tarn itself: a
//! bounded `block_on`, echo servers (on this thread's executor or on a
//! thread of their own), streams of random sizes through them, and the
//! reactor's gauges beside the process's fds. Everything generic
//! (re-runs on other backends, isolated tests, watchdogs, sizes, process
//! gauges, limits, random data, example programs) comes from
//! `tarn-test-support`.
//!
//! Each test binary compiles its own copy of this module and uses only part
//! of it, hence the `dead_code` allowance.

#![allow(dead_code)]

pub mod children;

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use tarn::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};
use tarn_test_support::{
    eventually, fnv1a, open_fds, sized, RandomChunks, Rng, FNV_START, MAX_IO, PATIENCE,
};

/// Runs `future` with `tarn::block_on`, failing the test if it takes longer
/// than [`PATIENCE`].
pub fn run<F: Future>(future: F) -> F::Output {
    tarn::block_on(async {
        tarn::timeout(PATIENCE, future)
            .await
            .unwrap_or_else(|_| panic!("test still running after {PATIENCE:?}: hung"))
    })
}

/// Copies what `conn` reads back to it until end of stream; returns the
/// number of bytes echoed.
pub async fn echo(mut conn: TcpStream) -> io::Result<u64> {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        conn.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// Starts an echo server on 127.0.0.1 (a free port) on the current
/// executor; it stops when the executor does (at the end of the test's
/// thread). Call inside `tarn::block_on`.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    tarn::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tarn::spawn(echo(conn)).detach();
        }
    })
    .detach();
    addr
}

/// How long one reliability test (`tests/reliability_*.rs`) may run:
/// [`PATIENCE`], or half an hour under `TARN_SOAK`.
pub fn reliability_patience() -> Duration {
    sized(PATIENCE, Duration::from_secs(30 * 60))
}

/// Waits for the results of `count` server tasks on `totals` (10 s each at
/// most) and checks that each echoed `len` bytes and ended cleanly.
pub fn assert_each_echoed(totals: &mpsc::Receiver<io::Result<u64>>, count: usize, len: usize) {
    for _ in 0..count {
        let echoed = totals
            .recv_timeout(Duration::from_secs(10))
            .expect("a server task never finished")
            .expect("a server task failed");
        assert_eq!(echoed, len as u64, "bytes echoed by a server task");
    }
}

/// A tarn TCP server on a thread of its own, with its own executor,
/// listening on 127.0.0.1 (a free port). It stops, dropping every task it
/// spawned, when [`stop`](ServerThread::stop)ped or dropped.
#[derive(Debug)]
pub struct ServerThread {
    addr: SocketAddr,
    stop: Option<futures::channel::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `serve(listener)` on a new thread's [`tarn::LocalExecutor`].
    pub fn start<S, F>(serve: S) -> ServerThread
    where
        S: FnOnce(TcpListener) -> F + Send + 'static,
        F: Future<Output = ()> + 'static,
    {
        ServerThread::start_on(tarn::LocalExecutor::new, serve)
    }

    /// Runs `serve(listener)` on a new thread, on the executor `executor()`
    /// builds there (one with a panic handler, say).
    pub fn start_on<E, S, F>(executor: E, serve: S) -> ServerThread
    where
        E: FnOnce() -> tarn::LocalExecutor + Send + 'static,
        S: FnOnce(TcpListener) -> F + Send + 'static,
        F: Future<Output = ()> + 'static,
    {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stopped) = futures::channel::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let executor = executor();
            executor.run(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let serve = std::pin::pin!(serve(listener));
                // Either the server ends by itself or it is told to stop.
                futures::future::select(serve, stopped).await;
            });
            drop(executor);
        });
        let addr = addr_rx.recv().expect("the server thread failed to start");
        ServerThread {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits until its thread (and every task and
    /// socket of its executor) is gone; fails if the thread panicked.
    pub fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread panicked");
        }
    }
}

impl Drop for ServerThread {
    /// Stops the server and waits for its thread, ignoring its panic (a
    /// test failing already).
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One read of a random size into the start of `buf`; one in four is a
/// vectored read into two slices of it.
pub async fn read_some(
    reader: &mut (impl AsyncRead + Unpin),
    rng: &mut Rng,
    buf: &mut [u8],
) -> io::Result<usize> {
    let size = rng.io_size();
    if rng.next_u64() % 4 == 0 && size > 1 {
        let (a, b) = buf[..size].split_at_mut(size / 2);
        reader
            .read_vectored(&mut [IoSliceMut::new(a), IoSliceMut::new(b)])
            .await
    } else {
        reader.read(&mut buf[..size]).await
    }
}

/// Writes all of `data`; one time in four as vectored writes of its two
/// halves (partial writes carried on from where they stopped).
pub async fn write_some(
    writer: &mut (impl AsyncWrite + Unpin),
    rng: &mut Rng,
    data: &[u8],
) -> io::Result<()> {
    if rng.next_u64() % 4 != 0 || data.len() < 2 {
        return writer.write_all(data).await;
    }
    let mid = data.len() / 2;
    let mut done = 0;
    while done < data.len() {
        let n = if done < mid {
            let slices = [IoSlice::new(&data[done..mid]), IoSlice::new(&data[mid..])];
            writer.write_vectored(&slices).await?
        } else {
            writer.write(&data[done..]).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}

/// Echoes `conn` with reads of random sizes (seeded with `seed`), some of
/// them vectored, until end of stream; returns the bytes echoed.
pub async fn echo_random_reads(mut conn: TcpStream, seed: u64) -> io::Result<u64> {
    let mut rng = Rng::xorshift_star(seed);
    let mut buf = vec![0; MAX_IO];
    let mut total = 0;
    loop {
        let n = read_some(&mut conn, &mut rng, &mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        conn.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// An echo server on a thread of its own that serves each connection with
/// [`echo_random_reads`] (seeded with the connection's number) and sends
/// each task's result to the receiver returned; an error from `accept`
/// panics its thread (fails [`ServerThread::stop`]).
pub fn random_reads_echo_server() -> (ServerThread, mpsc::Receiver<io::Result<u64>>) {
    let (totals_tx, totals) = mpsc::channel();
    let server = ServerThread::start(move |listener: TcpListener| async move {
        for seed in 0.. {
            let (conn, _) = listener.accept().await.expect("accept");
            let totals = totals_tx.clone();
            tarn::spawn(async move {
                let _ = totals.send(echo_random_reads(conn, seed).await);
            })
            .detach();
        }
    });
    (server, totals)
}

/// Streams `len` random bytes through the echo server at `addr` on one
/// connection, writing and reading at once with random sizes; checks the
/// length and checksum of what comes back.
pub async fn stream_through_echo(addr: SocketAddr, i: u64, len: usize) -> io::Result<()> {
    stream_through_echo_pausing(addr, i, len, None).await
}

/// [`stream_through_echo`], with a reader that, given `pause: Some((every,
/// for_))`, stops for `for_` after each `every` bytes: meanwhile the
/// server's writes fill the connection's send buffer, and its socket waits
/// to write.
pub async fn stream_through_echo_pausing(
    addr: SocketAddr,
    i: u64,
    len: usize,
    pause: Option<(usize, std::time::Duration)>,
) -> io::Result<()> {
    let conn = TcpStream::connect(addr).await?;
    let (mut reader, mut writer) = conn.split();
    let send = async {
        let mut sizes = Rng::xorshift_star(3 * i + 1);
        let mut chunks = RandomChunks::new(Rng::xorshift_star(3 * i + 2), len);
        while let Some(chunk) = chunks.next_chunk(sizes.io_size()) {
            write_some(&mut writer, &mut sizes, chunk).await?;
        }
        writer.close().await?; // end of stream: the server then closes too
        io::Result::Ok(chunks.checksum())
    };
    let receive = async {
        let mut sizes = Rng::xorshift_star(3 * i + 3);
        let mut buf = vec![0; MAX_IO];
        let (mut received, mut hash) = (0, FNV_START);
        loop {
            let n = read_some(&mut reader, &mut sizes, &mut buf).await?;
            if n == 0 {
                return io::Result::Ok((received, hash));
            }
            if let Some((every, for_)) = pause {
                if received / every != (received + n) / every && received + n < len {
                    tarn::Timer::after(for_).await;
                }
            }
            received += n;
            hash = fnv1a(hash, &buf[..n]);
        }
    };
    let (sent, received) = futures::join!(send, receive);
    let sent = sent?;
    let (received_len, received_hash) = received?;
    assert_eq!(received_len, len, "connection {i}: echoed length");
    assert_eq!(received_hash, sent, "connection {i}: echoed checksum");
    Ok(())
}

/// Creates the reactors that outlive what a leak check counts, so that it
/// counts their fds from the start: the shared one, and this thread's own
/// (which `block_on` keeps for the thread's next call). Call outside
/// `block_on`.
pub fn warm_up_reactors() {
    let _ = tarn_reactor::Reactor::shared();
    tarn::block_on(async {});
}

/// The fds of the reactor that a thread running tarn's executor has of its
/// own, for as long as the thread lives: an epoll fd and an eventfd on
/// epoll; none on poll and select, where every thread uses the shared one.
pub fn thread_reactor_fds() -> usize {
    let backend = tarn::selector::Backend::from_env()
        .expect("TARN_SELECTOR")
        .unwrap_or_else(tarn::selector::Backend::best);
    match backend {
        tarn::selector::Backend::Epoll => 2,
        _ => 0,
    }
}

/// What the leak checks compare before and after: the process's open fds
/// and the reactors' gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub fds: usize,
    pub sources: usize,
    pub waiting_readers: usize,
    pub waiting_writers: usize,
    pub timers: usize,
}

impl Held {
    /// The counts a leak check starts from: the long-lived reactors made
    /// first (see [`warm_up_reactors`]), then [`now`](Self::now).
    pub fn start() -> Held {
        warm_up_reactors();
        Held::now()
    }

    /// The process's open fds and the reactors' gauges now.
    pub fn now() -> Held {
        let stats = tarn::stats();
        Held {
            fds: open_fds(),
            sources: stats.sources,
            waiting_readers: stats.waiting_readers,
            waiting_writers: stats.waiting_writers,
            timers: stats.timers,
        }
    }

    /// The counts with a server thread running (its reactor, see
    /// [`thread_reactor_fds`]) and its listener waiting in `accept`.
    pub fn with_server(self) -> Held {
        Held {
            fds: self.fds + thread_reactor_fds() + 1,
            sources: self.sources + 1,
            waiting_readers: self.waiting_readers + 1,
            ..self
        }
    }

    /// Waits (5 s at most) for the counts to come to `self` (a server
    /// closes its side only after reading the client's end of stream).
    pub fn wait_for(self, when: &str) {
        let mut now = Held::now();
        eventually(Duration::from_secs(5), || {
            now = Held::now();
            now == self
        });
        assert_eq!(now, self, "{when}: fds or reactor entries left behind");
    }
}

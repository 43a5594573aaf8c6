//! Connections leave nothing behind: after thousands of connect, accept,
//! echo and close cycles against a tarn echo server (its own thread, a
//! 30 s read timeout per connection as in the README), the process's open
//! fds and the reactor's sources, waiting wakers and timers are back at
//! their start values, and resident memory stays within a stated bound
//! after a warm-up. Once with std clients, once with tarn clients that
//! also abandon reads half-way (the cancellation path).
//!
//! Short mode: 5000 cycles per test; `TARN_SOAK=1`: 100 000. Each test
//! runs alone in a process per backend (epoll, poll, select), so the counts
//! it compares are its own.

mod common;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Held, ServerThread};
use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};
use tarn_test_support::{backend_name, figure, isolated_on_each_backend, rss_kib, sized};

/// Concurrent clients during the cycles.
const CLIENTS: usize = 4;

/// The bound on resident memory growth between the end of the warm-up
/// (a tenth of the cycles) and the end of the run, in KiB: 512 KiB at every
/// size (the runs measured grow by 0 to 8 KiB). One leaked 4 KiB buffer per
/// connection crosses it within 130 cycles; 120 bytes per connection,
/// within the short run's 4500.
const RSS_BOUND_KIB: u64 = 512;

/// The number of connect/echo/close cycles.
fn cycles() -> usize {
    sized(5_000, 100_000)
}

/// The README's handler: echoes until end of stream, dropping a client
/// silent for 30 s (so that every read also sets and cancels a timer).
async fn echo_with_timeout(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = tarn::timeout(Duration::from_secs(30), conn.read(&mut buf)).await??;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await?;
    }
}

/// An echo server spawning [`echo_with_timeout`] for every connection.
fn start_echo_server() -> ServerThread {
    ServerThread::start(|listener: TcpListener| async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => tarn::spawn(echo_with_timeout(conn)).detach(),
                Err(e) => panic!("accept: {e}"),
            }
        }
    })
}

/// Runs `cycle(client, i)` for `count` cycles split over [`CLIENTS`]
/// std threads.
fn run_std_cycles(addr: SocketAddr, first: usize, count: usize) {
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            scope.spawn(move || {
                for i in (first + client..first + count).step_by(CLIENTS) {
                    std_cycle(addr, i).unwrap_or_else(|e| panic!("cycle {i}: {e}"));
                }
            });
        }
    });
}

/// One cycle with a std client: connect, send a message, read its echo,
/// close.
fn std_cycle(addr: SocketAddr, i: usize) -> io::Result<()> {
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_nodelay(true)?;
    let msg = format!("cycle {i:06} from a std client");
    conn.write_all(msg.as_bytes())?;
    let mut reply = vec![0; msg.len()];
    conn.read_exact(&mut reply)?;
    assert_eq!(reply, msg.as_bytes());
    Ok(())
}

/// One cycle with a tarn client: connect (with a timeout), send a
/// message, read its echo; every tenth cycle also gives up on a read that
/// gets nothing (a cancelled read and timer); close.
async fn tarn_cycle(addr: SocketAddr, i: usize) -> io::Result<()> {
    let mut conn = TcpStream::connect_timeout(addr, Duration::from_secs(10)).await?;
    conn.set_nodelay(true)?;
    let msg = format!("cycle {i:06} from a tarn client");
    conn.write_all(msg.as_bytes()).await?;
    let mut reply = vec![0; msg.len()];
    conn.read_exact(&mut reply).await?;
    assert_eq!(reply, msg.as_bytes());
    if i % 10 == 0 {
        let abandoned = tarn::timeout(Duration::from_millis(1), conn.read(&mut reply)).await;
        assert!(abandoned.is_err(), "the server sent more than the echo");
    }
    Ok(())
}

/// Runs `count` [`tarn_cycle`]s from `first` on this thread's executor,
/// [`CLIENTS`] at a time.
fn run_tarn_cycles(addr: SocketAddr, first: usize, count: usize) {
    tarn::block_on(async {
        let clients = (0..CLIENTS).map(|client| async move {
            for i in (first + client..first + count).step_by(CLIENTS) {
                tarn_cycle(addr, i)
                    .await
                    .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
            }
        });
        futures::future::join_all(clients).await;
    });
}

/// The whole leak check around `run(addr, first, count)`: counts before,
/// a warm-up of a tenth of the cycles, memory after it, the rest, then
/// counts and memory again, with the server running and after it stopped.
fn check_cycles(what: &str, run: fn(SocketAddr, usize, usize)) {
    let start = Held::start();
    let server = start_echo_server();
    // The server holds its listener, and waits on it once it got to accept.
    let serving = start.with_server();
    serving.wait_for("with the server started");

    let total = cycles();
    let warm_up = total / 10;
    run(server.addr(), 0, warm_up);
    serving.wait_for("after the warm-up");
    let rss_warm = rss_kib();

    let started = Instant::now();
    run(server.addr(), warm_up, total - warm_up);
    let took = started.elapsed();
    serving.wait_for("after the cycles");
    let rss_end = rss_kib();

    server.stop();
    start.wait_for("after the server stopped");

    let growth = rss_end.saturating_sub(rss_warm);
    let bound = RSS_BOUND_KIB;
    figure(format_args!(
        "leaks [{}] {what}: {total} connect/echo/close cycles ({:.0}/s); fds {} and reactor \
         sources {} back to start; RSS {rss_warm} KiB after warm-up, {rss_end} KiB at the end \
         (+{growth} KiB, bound {bound} KiB)",
        backend_name(),
        (total - warm_up) as f64 / took.as_secs_f64(),
        start.fds,
        start.sources,
    ));
    assert!(
        growth <= bound,
        "resident memory grew by {growth} KiB over {} cycles after the warm-up (bound {bound} KiB)",
        total - warm_up
    );
}

/// std clients: fds, reactor gauges and memory come back after the cycles.
#[test]
fn std_client_cycles_leave_no_fds_sources_or_memory_behind() {
    isolated_on_each_backend(
        "std_client_cycles_leave_no_fds_sources_or_memory_behind",
        common::reliability_patience(),
        || check_cycles("std clients", run_std_cycles),
    );
}

/// tarn clients (both ends on tarn, reads cancelled every tenth cycle):
/// fds, reactor gauges and memory come back after the cycles.
#[test]
fn tarn_client_cycles_leave_no_fds_sources_or_memory_behind() {
    isolated_on_each_backend(
        "tarn_client_cycles_leave_no_fds_sources_or_memory_behind",
        common::reliability_patience(),
        || check_cycles("tarn clients", run_tarn_cycles),
    );
}

//! Fairness under a flood: a task whose socket reads never block (its peer
//! sends faster than it consumes, so every read finds data) must still let
//! the rest of its executor run. tarn gives each task poll an I/O budget
//! (`tarn_reactor::driver::{with_budget, BUDGET}`, 128 operations); a task that spends it is made
//! to yield, and the executor then looks at the reactor at once, so timers
//! and other sockets are served between its bursts.
//!
//! Found by the reliability suite: before the budget, a 10 ms timer fired
//! 1.44-1.49 s late on every backend while a task read 64 MiB in 1 KiB
//! reads; with the budget alone (reactor looked at every 61 polls) it was
//! still ~155 ms late in a debug build; now it is ~3 ms late.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use tarn::io::AsyncReadExt;
use tarn::net::TcpListener;
use tarn_test_support::{backend_name, figure, fnv1a, isolated_on_each_backend, FNV_START};

/// How late a 10 ms timer may fire while another task is reading (a debug
/// build spends ~1.5 ms per budget of 128 reads here).
const LATENESS_BOUND: Duration = Duration::from_millis(100);

/// A reader that never blocks delays a timer on its executor by one budget,
/// not by the whole stream; on every backend.
#[test]
fn a_task_whose_reads_never_block_does_not_starve_timers() {
    isolated_on_each_backend(
        "a_task_whose_reads_never_block_does_not_starve_timers",
        common::reliability_patience(),
        starve,
    );
}

/// The scenario, in this process, on its backend.
fn starve() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A peer that sends 64 MiB as fast as it can.
    let sender = std::thread::spawn(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..64 {
            if conn.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let (lateness, read) = common::run(async move {
        let listener = TcpListener::from_std(listener).unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        // The reader does a little work per byte, as a parser would.
        let reader = tarn::spawn(async move {
            let mut buf = vec![0; 1024];
            let mut total = 0u64;
            let mut hash = FNV_START;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                // Slower than the sender, so the socket never runs dry.
                for _ in 0..4 {
                    hash = fnv1a(hash, &buf[..n]);
                }
                total += n as u64;
            }
            std::hint::black_box(hash);
            total
        });
        let set = Instant::now();
        tarn::Timer::after(Duration::from_millis(10)).await;
        let lateness = set.elapsed() - Duration::from_millis(10);
        (lateness, reader.await.unwrap())
    });
    drop(sender);
    figure(format_args!(
        "[{}] a 10 ms timer fired {lateness:?} late while a task read {} MiB",
        backend_name(),
        read >> 20
    ));
    assert!(
        lateness <= LATENESS_BOUND,
        "a 10 ms timer fired {lateness:?} late: the reading task never yielded"
    );
}

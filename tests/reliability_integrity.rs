//! Bytes arrive intact: a stream of random data goes through a tarn echo
//! server over 16 connections at once, with random write sizes and random
//! read sizes on both ends (plain and vectored), and comes back with the
//! same length and FNV-1a checksum it left with; the server counts the same
//! bytes. Both ends are tarn: the server on a thread of its own, the
//! clients on the test's thread (two executors; on epoll each drives a
//! reactor of its own, elsewhere they share one).
//!
//! Short mode: 32 MiB in all; `TARN_SOAK=1`: 1 GiB. Runs on every backend
//! (epoll, poll, select), each in a process of its own.

mod common;

use std::time::Instant;

use futures::future::try_join_all;
use tarn_test_support::{backend_name, figure, isolated_on_each_backend, sized};

/// Connections streaming at once.
const CONNECTIONS: usize = 16;

/// The bytes streamed through each connection: 2 MiB (32 MiB in all), or
/// 64 MiB (1 GiB in all) under `TARN_SOAK=1`.
fn bytes_per_connection() -> usize {
    sized(32 << 20, 1 << 30) / CONNECTIONS
}

/// 16 connections stream their bytes through the echo server at once;
/// every byte comes back, in order, on every backend.
#[test]
fn random_sized_streams_come_back_intact_on_every_backend() {
    isolated_on_each_backend(
        "random_sized_streams_come_back_intact_on_every_backend",
        common::reliability_patience(),
        || {
            let (server, totals) = common::random_reads_echo_server();
            let len = bytes_per_connection();
            let started = Instant::now();
            common::run(async {
                let streams = (0..CONNECTIONS as u64)
                    .map(|i| common::stream_through_echo(server.addr(), i, len));
                try_join_all(streams).await
            })
            .expect("a stream failed");
            let took = started.elapsed();

            // The server saw every connection end cleanly, with every byte.
            common::assert_each_echoed(&totals, CONNECTIONS, len);
            server.stop();
            let total = (len * CONNECTIONS) as f64 / (1 << 20) as f64;
            figure(format_args!(
                "integrity [{}]: {total:.0} MiB echoed over {CONNECTIONS} connections with random \
                 read/write sizes in {took:.2?} ({:.0} MiB/s each way), checksums equal",
                backend_name(),
                total / took.as_secs_f64()
            ));
        },
    );
}

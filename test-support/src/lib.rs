//! Helpers shared by tarn's test suites, so that each exists once and all
//! suites follow the same rules.
//!
//! This crate owns what a tarn test needs that is not tarn:
//!
//! - **Backends** ([`backend_name`], [`backends`],
//!   [`rerun_on_poll_and_select`]): a test binary runs on the default
//!   backend (epoll) and re-runs itself on poll and select in child
//!   processes, so one `cargo test` covers all three.
//! - **Isolation** ([`isolated`], [`isolated_with_patience`],
//!   [`isolated_on_each_backend`]): a test that changes process-wide state
//!   (fd limits, signal dispositions) or counts the process's fds runs in
//!   a child process of its own.
//! - **Syscall faults** ([`isolated_under_faults`], [`injected`],
//!   [`set_injecting`]): a test runs alone under an `LD_PRELOAD`
//!   interposer that injects `EINTR`, spurious readiness, short writes,
//!   accept errors and failed registrations on a seeded schedule.
//! - **Hangs** ([`watchdog`], [`bounded`], [`eventually`], [`PATIENCE`],
//!   [`HANG`]): a hung test aborts its process instead of hanging CI.
//! - **Modes and sizes** ([`sized`], [`native_or_valgrind`], [`soak`],
//!   [`valgrind`]): one rule for each switch, below.
//! - **Gauges** ([`open_fds`], [`rss_kib`], [`cpu_time`], ... and their
//!   `_of(pid)` twins), **limits** ([`nofile_limit`], [`with_soft_limit`],
//!   [`without_new_threads`], ...), **data** ([`Rng`], [`random_bytes`],
//!   [`RandomChunks`], [`fnv1a`]), **plain sockets** ([`tcp_pair`], [`fill_send_buffer`],
//!   [`reset_on_close`], [`temp_path`], ...), **figures** for the README
//!   ([`figure`], [`Latency`]) and the package's **example programs**
//!   ([`example_path`], [`ExampleServer`]).
//!
//! What needs tarn itself (an echo server on tarn's `TcpListener`,
//! `tarn::stats()` gauges, `block_on` with a timeout) stays in each
//! crate's `tests/common` module. This crate must never depend on a tarn
//! crate: a test suite would then link a second copy of tarn-reactor, with
//! a process-wide reactor of its own.
//!
//! # Environment
//!
//! | variable | set by | effect |
//! |---|---|---|
//! | `TARN_SOAK` | you | [`sized`] returns its full (soak) size |
//! | `TARN_VALGRIND` | `.ci/valgrind.sh` | [`native_or_valgrind`] returns its valgrind value; watchdogs wait ten times longer |
//! | `TARN_FAULTS` | [`isolated_under_faults`] | the interposer's schedule (rates per fault) |
//! | `TARN_FAULT_SEED` | you, or [`isolated_under_faults`] | the schedule's seed; set it to replay a run |
//! | `TARN_SELECTOR` | you, or a re-run | the backend ([`backend_name`]); [`backends`] is that one alone |
//!
//! `TARN_SOAK` and `TARN_VALGRIND` are **on when set to anything but the
//! empty string or `"0"`** ([`switched_on`]): `TARN_SOAK=1` and
//! `TARN_SOAK=yes` ask for the soak sizes, `TARN_SOAK=0` does not.
//!
//! # Example
//!
//! A test binary that covers every backend, with a test that must run
//! alone and one sized by the mode:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use tarn_test_support::{bounded, isolated, open_fds, sized};
//!
//! #[test]
//! fn on_poll_and_select_backends() {
//!     tarn_test_support::rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
//! }
//!
//! #[test]
//! fn closing_leaves_no_fd_behind() {
//!     // Alone in its process: other tests' fds would disturb the count.
//!     isolated("closing_leaves_no_fd_behind", || {
//!         let before = open_fds();
//!         drop(tarn_test_support::unix_pair());
//!         assert_eq!(open_fds(), before);
//!     });
//! }
//!
//! #[test]
//! fn many_rounds() {
//!     bounded("many_rounds", || {
//!         for _ in 0..sized(1_000, 100_000) {
//!             std::thread::sleep(Duration::ZERO);
//!         }
//!     });
//! }
//! # fn main() {}
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod backend;
mod data;
mod examples;
mod faults;
mod figures;
mod limits;
mod mode;
mod process;
mod rerun;
mod sockets;
mod watchdog;

pub use backend::{backend_name, backends, is_backend_child, SELECTOR_ENV};
pub use data::{fnv1a, random_bytes, RandomChunks, Rng, FNV_START, MAX_IO};
pub use examples::{example_path, ExampleServer};
pub use faults::{
    injected, interposer_path, isolated_under_faults, set_injecting, FaultyChild, Injected,
    FAULTS_ENV, FAULT_NAMES, FAULT_REPORT_ENV, FAULT_SEED_ENV,
};
pub use figures::{figure, Latency};
pub use limits::{
    limit, nofile_limit, raise_nofile_limit, set_limit, set_nofile_soft, with_soft_limit,
    without_new_threads, Resource,
};
pub use mode::{native_or_valgrind, sized, soak, switched_on, valgrind, SOAK_ENV, VALGRIND_ENV};
pub use process::{
    cpu_time, cpu_time_of, open_fd_numbers, open_fds, open_fds_of, open_io_fds, rss_kib,
    rss_kib_of, thread_cpu_time, threads_named, virtual_size,
};
pub use rerun::{
    isolated, isolated_on_each_backend, isolated_with_patience, rerun_on_poll_and_select,
    rerun_test_on_poll_and_select,
};
pub use sockets::{
    connect_with_timeouts, fill_send_buffer, nonblocking_pipe, nonblocking_unix_pair, pipe,
    reset_on_close, tcp_pair, temp_path, unix_pair, TempPath,
};
pub use watchdog::{bounded, eventually, watchdog, Watchdog, HANG, PATIENCE};

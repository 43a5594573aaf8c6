//! What one `Selector::select` costs when a few registered fds are ready
//! among many idle ones, on every backend.
//!
//! Each row registers `idle + active` Unix socket fds for `READABLE`,
//! `Mode::Level`, writes one byte into the peer of `active` of them and never
//! reads it back, so every `select(&mut events, Some(Duration::ZERO))`
//! returns the same `active` events. The idle fds are both ends of socket
//! pairs nobody writes to, plus the writing ends of the active pairs: every
//! fd the benchmark opens is registered, which is what lets 10,000 + 100 fit
//! under a 20,000-fd limit. The soft `RLIMIT_NOFILE` is raised to the hard
//! limit first.
//!
//! epoll's cost should follow the active count; poll's and select's follow
//! the registered count (and select's the highest fd). select cannot hold an
//! fd at or above `FD_SETSIZE` (1024), so every backend is also measured at
//! 900 idle + 100 active, where the three can be compared directly.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin selector            # ~2 s a row
//! cargo run --release --manifest-path bench/Cargo.toml --bin selector -- --quick # smoke run
//! ```

#![warn(clippy::undocumented_unsafe_blocks)]

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tarn_selector::{Backend, Events, Interest, Mode, Selector, Token};

/// The large configuration, for the backends without an fd limit.
const LARGE_IDLE: usize = 10_000;
/// The configuration select can hold: every fd below `FD_SETSIZE`.
const SMALL_IDLE: usize = 900;
/// Ready fds in every configuration.
const ACTIVE: usize = 100;
/// fds the process may need besides the registered ones (stdio, the
/// selector's own epoll fd and eventfd, whatever the parent passed down).
const SPARE_FDS: usize = 64;

/// How long a measurement runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    /// A few hundred selects per row: proves the benchmark works (CI).
    Quick,
    /// `ROUNDS` timed rounds of `ROUND` each per row; the median is reported.
    Full,
}

const QUICK_WARMUP: u64 = 30;
const QUICK_ITERATIONS: u64 = 300;
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_millis(400);

/// One line of the result table.
#[derive(Debug)]
struct Row {
    backend: Backend,
    idle: usize,
    active: usize,
    ns_per_select: f64,
}

/// A selector with its registered sockets, ready to be timed.
#[derive(Debug)]
struct Workload {
    selector: Selector,
    /// Kept open for as long as they are registered.
    sockets: Vec<UnixStream>,
    active: usize,
}

impl Workload {
    /// Registers `idle + active` fds on `backend`, `active` of them readable.
    ///
    /// `active` pairs give one readable fd (the reading end) and one idle fd
    /// (the writing end) each; the remaining idle fds come in pairs.
    fn build(backend: Backend, idle: usize, active: usize) -> io::Result<Workload> {
        assert!(
            idle >= active && (idle - active) % 2 == 0,
            "idle - active must be even and non-negative"
        );
        let selector = Selector::with_backend(backend)?;
        let pairs = active + (idle - active) / 2;
        let mut sockets = Vec::with_capacity(2 * pairs);
        for p in 0..pairs {
            let (a, mut b) = UnixStream::pair()?;
            if p < active {
                // A byte no one reads: `a` stays readable for the whole run.
                b.write_all(&[1])?;
            }
            sockets.push(a);
            sockets.push(b);
        }
        for (i, socket) in sockets.iter().enumerate() {
            selector
                .register(
                    socket.as_raw_fd(),
                    Token(i),
                    Interest::READABLE,
                    Mode::Level,
                )
                .map_err(|e| io::Error::new(e.kind(), format!("{backend}: register: {e}")))?;
        }
        Ok(Workload {
            selector,
            sockets,
            active,
        })
    }

    /// Runs `iterations` selects and returns the time they took, checking
    /// that each returned exactly the active fds' events.
    fn time(&self, events: &mut Events, iterations: u64) -> io::Result<Duration> {
        let start = Instant::now();
        for _ in 0..iterations {
            let n = self.selector.select(events, Some(Duration::ZERO))?;
            if n != self.active {
                return Err(io::Error::other(format!(
                    "{}: select returned {n} events, expected {} (of {} registered)",
                    self.selector.backend(),
                    self.active,
                    self.sockets.len()
                )));
            }
        }
        Ok(start.elapsed())
    }

    /// The nanoseconds one select takes: the mean of a quick run, or the
    /// median of `ROUNDS` calibrated rounds.
    fn ns_per_select(&self, length: Length) -> io::Result<f64> {
        let mut events = Events::with_capacity(2 * self.active);
        // The first select also checks the setup and warms the caches.
        self.time(&mut events, 1)?;
        let per = |elapsed: Duration, n: u64| elapsed.as_nanos() as f64 / n as f64;
        match length {
            Length::Quick => {
                self.time(&mut events, QUICK_WARMUP)?;
                Ok(per(
                    self.time(&mut events, QUICK_ITERATIONS)?,
                    QUICK_ITERATIONS,
                ))
            }
            Length::Full => {
                // Calibrate (and warm up) until a batch takes a tenth of a round.
                let mut n = 16;
                let estimate = loop {
                    let elapsed = self.time(&mut events, n)?;
                    if elapsed >= ROUND / 10 {
                        break per(elapsed, n);
                    }
                    n *= 2;
                };
                let iterations = ((ROUND.as_nanos() as f64 / estimate) as u64).max(1);
                let mut samples = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    samples.push(per(self.time(&mut events, iterations)?, iterations));
                }
                samples.sort_by(f64::total_cmp);
                Ok(samples[ROUNDS / 2])
            }
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit in force afterwards.
fn raise_fd_limit() -> io::Result<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `limit`, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads `raised`, which outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            let e = io::Error::last_os_error();
            eprintln!(
                "warning: cannot raise RLIMIT_NOFILE to {}: {e}",
                limit.rlim_max
            );
        }
    }
    Ok(usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

fn run(length: Length) -> io::Result<Vec<Row>> {
    let fd_limit = raise_fd_limit()?;
    // Shrink the large configuration if the fd limit cannot hold it, keeping
    // idle - active even.
    let room = fd_limit.saturating_sub(ACTIVE + SPARE_FDS);
    if room < SMALL_IDLE {
        return Err(io::Error::other(format!(
            "RLIMIT_NOFILE is {fd_limit}; the benchmark needs at least {} fds",
            SMALL_IDLE + ACTIVE + SPARE_FDS
        )));
    }
    let large_idle = LARGE_IDLE.min(room - (room - ACTIVE) % 2);
    if large_idle < LARGE_IDLE {
        eprintln!(
            "warning: RLIMIT_NOFILE is {fd_limit}; measuring {large_idle} idle fds instead of {LARGE_IDLE}"
        );
    }

    let mut plan: Vec<(Backend, usize)> = Backend::ALL
        .iter()
        .filter(|&&b| b != Backend::Select)
        .map(|&b| (b, large_idle))
        .collect();
    plan.extend(Backend::ALL.iter().map(|&b| (b, SMALL_IDLE)));

    let mut rows = Vec::new();
    for (backend, idle) in plan {
        // Each workload is dropped before the next is built, so the small
        // ones get low fd numbers again.
        let workload = Workload::build(backend, idle, ACTIVE)?;
        let ns_per_select = workload.ns_per_select(length)?;
        rows.push(Row {
            backend,
            idle,
            active: ACTIVE,
            ns_per_select,
        });
    }
    Ok(rows)
}

fn print(rows: &[Row], length: Length) {
    match length {
        Length::Quick => println!(
            "tarn-selector: select() with a zero timeout, quick run \
             (mean of {QUICK_ITERATIONS} selects per row; numbers are rough)"
        ),
        Length::Full => println!(
            "tarn-selector: select() with a zero timeout, median of {ROUNDS} rounds of {} ms per row",
            ROUND.as_millis()
        ),
    }
    println!();
    println!(
        "{:<8} {:>9} {:>10} {:>11} {:>9}",
        "backend", "idle fds", "active fds", "ns/select", "ns/event"
    );
    for row in rows {
        println!(
            "{:<8} {:>9} {:>10} {:>11.0} {:>9.1}",
            row.backend.name(),
            row.idle,
            row.active,
            row.ns_per_select,
            row.ns_per_select / row.active as f64
        );
    }
    println!();
    println!(
        "All fds are Unix sockets registered READABLE, Level; the active ones hold one unread byte."
    );
    println!(
        "select holds only fds below FD_SETSIZE (1024), so it runs at {SMALL_IDLE} idle + {ACTIVE} active;"
    );
    println!("the other backends are measured at that size too, for comparison.");
}

fn main() -> ExitCode {
    let mut length = Length::Full;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => length = Length::Quick,
            "-h" | "--help" => {
                println!("usage: selector [--quick]");
                println!("  --quick  a few hundred selects per backend (smoke run)");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("selector: unknown argument {other:?}; usage: selector [--quick]");
                return ExitCode::from(2);
            }
        }
    }
    match run(length) {
        Ok(rows) => {
            print(&rows, length);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("selector: {e}");
            ExitCode::FAILURE
        }
    }
}

//! Measured figures for the README: printed as `figure: ...` lines on
//! stderr, passed on from child processes to the test binary that started
//! them, and latency percentiles to print.

use std::fmt;
use std::process::Output;
use std::time::Duration;

/// The start of a figure line.
const FIGURE: &str = "figure: ";

/// Prints a measured figure as `figure: <line>` on stderr. `cargo test --
/// --nocapture` shows it; the helpers that run this binary again in a
/// child process ([`isolated`](crate::isolated),
/// [`rerun_on_poll_and_select`](crate::rerun_on_poll_and_select), ...)
/// print their children's figure lines as their own.
pub fn figure(line: impl fmt::Display) {
    eprintln!("{FIGURE}{line}");
}

/// Prints the figure lines of a child's output as this process's own.
pub(crate) fn pass_on_figures(output: &Output) {
    for stream in [&output.stdout, &output.stderr] {
        for line in String::from_utf8_lossy(stream).lines() {
            if let Some(start) = line.find(FIGURE) {
                eprintln!("{}", &line[start..]);
            }
        }
    }
}

/// Percentiles of a set of latency samples.
///
/// ```
/// use std::time::Duration;
///
/// let latency = tarn_test_support::Latency::of((1..=100).map(Duration::from_millis).collect());
/// assert_eq!(latency.p50, Duration::from_millis(50));
/// assert_eq!(latency.max, Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// How many samples.
    pub count: usize,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The slowest sample.
    pub max: Duration,
}

impl Latency {
    /// The percentiles of `samples` (not empty).
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        assert!(!samples.is_empty(), "no latency samples");
        samples.sort_unstable();
        let at = |p: usize| samples[(samples.len() - 1) * p / 100];
        Latency {
            count: samples.len(),
            p50: at(50),
            p99: at(99),
            max: samples[samples.len() - 1],
        }
    }
}

impl fmt::Display for Latency {
    /// "p50 0.10 ms, p99 1.00 ms, max 2.00 ms (1000 requests)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.count
        )
    }
}

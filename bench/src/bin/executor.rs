//! tarn's executor beside tokio's `current_thread` runtime and smol's
//! `LocalExecutor`: what spawning, waking, yielding and timers cost.
//!
//! Each runtime runs on the main thread in its usual single-threaded setup:
//! `tarn_executor::block_on` with `tarn_executor::spawn`; a tokio
//! `current_thread` runtime (time enabled) with `tokio::spawn`; and
//! `smol::block_on(ex.run(...))` with `ex.spawn` on a `smol::LocalExecutor`.
//! All three are measured in the same process, interleaved (tarn, tokio,
//! smol, tarn, tokio, smol, ...) for several rounds, after one warm-up round,
//! so drifting clocks and a noisy neighbour hit them alike. Each row reports
//! the median over the rounds, the ratio to tokio, and the min–max.
//!
//! Every measurement checks its own result (the sum of the task outputs, the
//! number of messages echoed, timers that fired and never early), so a broken
//! runtime fails the run instead of reporting a fast number; a watchdog ends
//! the process if one measurement runs for more than a minute.
//!
//! The benchmarks:
//!
//! - **spawn+await**: spawn a task returning its index and await its handle,
//!   one at a time.
//! - **spawn all, await all**: spawn 200,000 such tasks, then await every
//!   handle in order.
//! - **ping-pong**: two tasks pass a counter back and forth over two
//!   capacity-1 channels: `tokio::sync::mpsc` for tokio, `async-channel` for
//!   tarn and smol. A round trip is one send each way, so two wakes and two
//!   task switches; the one-way row is half of it. A second row runs
//!   `tokio::sync::mpsc` on every runtime, to tell the executor's share from
//!   the channel's.
//! - **yield_now**: one task calls each runtime's `yield_now` in a loop.
//! - **timers**: 100,000 tasks each sleep until a deadline drawn from a
//!   seeded RNG within 0..100 ms (the same deadlines for every runtime);
//!   reported as process CPU time per timer, spawn included, since the wall
//!   time is mostly the 100 ms wait, and as how late the tasks woke.
//! - **random wakes**: as many tasks as the timer benchmark, each parked on a
//!   future that stores its waker in a shared table, then woken all at once
//!   in an order drawn from the same RNG, and awaited; process CPU time per
//!   task, spawn included. The timer benchmark without the timers: the
//!   cost of waking tasks whose memory is cold, which every timer pays.
//! - **1 ms sleep overshoot**: 200 sequential 1 ms sleeps; how late each one
//!   returned, p50 and p99 over all rounds.
//!
//! ```text
//! taskset -c 0 cargo run --release --manifest-path bench/Cargo.toml --bin executor            # ~20 s
//! cargo run --release --manifest-path bench/Cargo.toml --bin executor -- --quick              # smoke run
//! cargo run --release --manifest-path bench/Cargo.toml --bin executor -- --only tarn          # to profile
//! cargo run --release --manifest-path bench/Cargo.toml --bin executor -- --only tarn --bench timers
//! ```
//!
//! `--bench NAME` runs only the benchmarks whose name starts with NAME
//! ("timers", "random wakes", "ping-pong", ...), e.g. to profile one row
//! under callgrind.

#![warn(clippy::undocumented_unsafe_blocks)]

use std::fmt;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The runtimes, in the order each round measures them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    Tarn,
    Tokio,
    Smol,
}

const RUNTIMES: [Runtime; 3] = [Runtime::Tarn, Runtime::Tokio, Runtime::Smol];

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Tarn => "tarn",
            Runtime::Tokio => "tokio",
            Runtime::Smol => "smol",
        })
    }
}

/// The peers' executors, built once and reused by every measurement (tarn's
/// `block_on` keeps its own per-thread executor).
struct Peers {
    tokio: tokio::runtime::Runtime,
    smol: smol::LocalExecutor<'static>,
}

impl Peers {
    fn new() -> Result<Peers, String> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot build the tokio runtime: {e}"))?;
        Ok(Peers {
            tokio,
            smol: smol::LocalExecutor::new(),
        })
    }

    /// Runs `future` to completion on `runtime`'s executor; `tarn_executor::spawn`,
    /// `tokio::spawn` and `self.smol.spawn` work inside it respectively.
    fn block_on<F: Future>(&self, runtime: Runtime, future: F) -> F::Output {
        match runtime {
            Runtime::Tarn => tarn_executor::block_on(future),
            Runtime::Tokio => self.tokio.block_on(future),
            Runtime::Smol => smol::block_on(self.smol.run(future)),
        }
    }
}

/// How much work each measurement does, and on which runtimes.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    /// Measure only this runtime (`--only`, for profiling one of them).
    only: Option<Runtime>,
    /// Run only the benchmarks whose name starts with this (`--bench`).
    bench: Option<&'static str>,
    /// Timed rounds per benchmark (after the warm-up round, if any).
    rounds: usize,
    warmup: bool,
    spawn_await: u64,
    spawn_all: u64,
    ping_pong: u64,
    yields: u64,
    timers: usize,
    /// The deadlines of the timer benchmark lie in `0..timer_window`.
    timer_window: Duration,
    sleeps: usize,
}

const FULL: Sizes = Sizes {
    only: None,
    bench: None,
    rounds: 9,
    warmup: true,
    spawn_await: 200_000,
    spawn_all: 200_000,
    ping_pong: 100_000,
    yields: 1_000_000,
    timers: 100_000,
    timer_window: Duration::from_millis(100),
    sleeps: 200,
};

const QUICK: Sizes = Sizes {
    only: None,
    bench: None,
    rounds: 1,
    warmup: false,
    spawn_await: 1_000,
    spawn_all: 1_000,
    ping_pong: 1_000,
    yields: 1_000,
    timers: 1_000,
    timer_window: Duration::from_millis(10),
    sleeps: 10,
};

/// The requested length of each sleep in the overshoot benchmark.
const SLEEP: Duration = Duration::from_millis(1);

/// The seed of the timer deadlines, so every run and runtime gets the same.
const SEED: u64 = 0x7461_726e_5f74_696d;

/// A measurement running longer than this is taken for a hang.
const WATCHDOG_LIMIT: Duration = Duration::from_secs(60);

type Outcome<T> = Result<T, String>;

fn ns_per(elapsed: Duration, n: u64) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

/// The sum `0 + 1 + ... + (n - 1)`: what the spawn benchmarks' tasks return.
fn index_sum(n: u64) -> u64 {
    n * (n - 1) / 2
}

fn check_sum(sum: u64, n: u64) -> Outcome<()> {
    if sum == index_sum(n) {
        Ok(())
    } else {
        Err(format!(
            "the tasks' outputs sum to {sum}, expected {}",
            index_sum(n)
        ))
    }
}

/// Spawns a trivial task and awaits it, `n` times in sequence; ns per task.
fn spawn_await(peers: &Peers, runtime: Runtime, n: u64) -> Outcome<f64> {
    let (elapsed, sum) = peers.block_on(runtime, async {
        let start = Instant::now();
        let mut sum = 0;
        for i in 0..n {
            sum += match runtime {
                Runtime::Tarn => tarn_executor::spawn(async move { i })
                    .await
                    .map_err(|e| e.to_string())?,
                Runtime::Tokio => tokio::spawn(async move { i })
                    .await
                    .map_err(|e| e.to_string())?,
                Runtime::Smol => peers.smol.spawn(async move { i }).await,
            };
        }
        Outcome::Ok((start.elapsed(), sum))
    })?;
    check_sum(sum, n)?;
    Ok(ns_per(elapsed, n))
}

/// Spawns `n` trivial tasks, then awaits them all; ns per task.
fn spawn_all(peers: &Peers, runtime: Runtime, n: u64) -> Outcome<f64> {
    let (elapsed, sum) = peers.block_on(runtime, async {
        let start = Instant::now();
        let mut sum = 0;
        match runtime {
            Runtime::Tarn => {
                let tasks: Vec<_> = (0..n)
                    .map(|i| tarn_executor::spawn(async move { i }))
                    .collect();
                for task in tasks {
                    sum += task.await.map_err(|e| e.to_string())?;
                }
            }
            Runtime::Tokio => {
                let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
                for task in tasks {
                    sum += task.await.map_err(|e| e.to_string())?;
                }
            }
            Runtime::Smol => {
                let tasks: Vec<_> = (0..n).map(|i| peers.smol.spawn(async move { i })).collect();
                for task in tasks {
                    sum += task.await;
                }
            }
        }
        Outcome::Ok((start.elapsed(), sum))
    })?;
    check_sum(sum, n)?;
    Ok(ns_per(elapsed, n))
}

/// The sending half of a capacity-1 channel, whichever crate provides it.
trait Tx {
    /// Sends `v`; false if the receiver is gone.
    async fn send_u64(&self, v: u64) -> bool;
}

/// The receiving half of a capacity-1 channel.
trait Rx {
    /// The next value; `None` once every sender is gone.
    async fn recv_u64(&mut self) -> Option<u64>;
}

impl Tx for async_channel::Sender<u64> {
    async fn send_u64(&self, v: u64) -> bool {
        self.send(v).await.is_ok()
    }
}

impl Rx for async_channel::Receiver<u64> {
    async fn recv_u64(&mut self) -> Option<u64> {
        self.recv().await.ok()
    }
}

impl Tx for tokio::sync::mpsc::Sender<u64> {
    async fn send_u64(&self, v: u64) -> bool {
        self.send(v).await.is_ok()
    }
}

impl Rx for tokio::sync::mpsc::Receiver<u64> {
    async fn recv_u64(&mut self) -> Option<u64> {
        self.recv().await
    }
}

/// The channel crate of a ping-pong measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    /// `tokio::sync::mpsc` on tokio, `async-channel` on tarn and smol.
    Natural,
    /// `tokio::sync::mpsc` on every runtime (it needs no tokio runtime), to
    /// tell the executor's share of a round trip from the channel's.
    TokioMpsc,
}

/// The pinging side: sends `0..n`, checking that each comes back before
/// sending the next; the time it took.
async fn ping(n: u64, tx: impl Tx, mut rx: impl Rx) -> Outcome<Duration> {
    let start = Instant::now();
    for i in 0..n {
        if !tx.send_u64(i).await {
            return Err("pong hung up".into());
        }
        match rx.recv_u64().await {
            Some(back) if back == i => {}
            Some(back) => return Err(format!("sent {i}, got {back} back")),
            None => return Err("pong hung up".into()),
        }
    }
    Ok(start.elapsed())
}

/// The echoing side: how many messages it echoed.
async fn pong(tx: impl Tx, mut rx: impl Rx) -> u64 {
    let mut echoed = 0;
    while let Some(v) = rx.recv_u64().await {
        if !tx.send_u64(v).await {
            break;
        }
        echoed += 1;
    }
    echoed
}

/// Runs `pinger` and `echo` as two tasks on `runtime`; their outputs.
fn two_tasks<P, E>(peers: &Peers, runtime: Runtime, pinger: P, echo: E) -> Outcome<(Duration, u64)>
where
    P: Future<Output = Outcome<Duration>> + Send + 'static,
    E: Future<Output = u64> + Send + 'static,
{
    peers.block_on(runtime, async {
        match runtime {
            Runtime::Tarn => {
                let echo = tarn_executor::spawn(echo);
                let elapsed = tarn_executor::spawn(pinger)
                    .await
                    .map_err(|e| e.to_string())??;
                Ok((elapsed, echo.await.map_err(|e| e.to_string())?))
            }
            Runtime::Tokio => {
                let echo = tokio::spawn(echo);
                let elapsed = tokio::spawn(pinger).await.map_err(|e| e.to_string())??;
                Ok((elapsed, echo.await.map_err(|e| e.to_string())?))
            }
            Runtime::Smol => {
                let echo = peers.smol.spawn(echo);
                let elapsed = peers.smol.spawn(pinger).await?;
                Ok((elapsed, echo.await))
            }
        }
    })
}

/// Two tasks bounce a value `n` times over two capacity-1 channels; ns per
/// round trip.
fn ping_pong(peers: &Peers, runtime: Runtime, channel: Channel, n: u64) -> Outcome<f64> {
    let (elapsed, echoed) = if channel == Channel::TokioMpsc || runtime == Runtime::Tokio {
        let (ping_tx, ping_rx) = tokio::sync::mpsc::channel(1);
        let (pong_tx, pong_rx) = tokio::sync::mpsc::channel(1);
        two_tasks(
            peers,
            runtime,
            ping(n, ping_tx, pong_rx),
            pong(pong_tx, ping_rx),
        )?
    } else {
        let (ping_tx, ping_rx) = async_channel::bounded(1);
        let (pong_tx, pong_rx) = async_channel::bounded(1);
        two_tasks(
            peers,
            runtime,
            ping(n, ping_tx, pong_rx),
            pong(pong_tx, ping_rx),
        )?
    };
    if echoed != n {
        return Err(format!("pong echoed {echoed} messages, expected {n}"));
    }
    Ok(ns_per(elapsed, n))
}

/// One task yields `n` times; ns per yield.
fn yield_loop(peers: &Peers, runtime: Runtime, n: u64) -> Outcome<f64> {
    async fn yields<Y: Future<Output = ()>>(n: u64, yield_now: fn() -> Y) -> (Duration, u64) {
        let start = Instant::now();
        let mut count = 0;
        for _ in 0..n {
            yield_now().await;
            count += 1;
        }
        (start.elapsed(), count)
    }
    let (elapsed, count) = peers.block_on(runtime, async {
        Outcome::Ok(match runtime {
            Runtime::Tarn => tarn_executor::spawn(yields(n, tarn_executor::yield_now))
                .await
                .map_err(|e| e.to_string())?,
            Runtime::Tokio => tokio::spawn(yields(n, tokio::task::yield_now))
                .await
                .map_err(|e| e.to_string())?,
            Runtime::Smol => peers.smol.spawn(yields(n, smol::future::yield_now)).await,
        })
    })?;
    if count != n {
        return Err(format!("the task yielded {count} times, expected {n}"));
    }
    Ok(ns_per(elapsed, n))
}

/// The process's CPU time so far (every thread, user + system).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `n` timer deadlines (offsets from the start) spread over `0..window`,
/// from a seeded splitmix64, so every runtime and every run sees the same.
fn deadlines(n: usize, window: Duration) -> Vec<Duration> {
    let mut state = SEED;
    let window_ns = window.as_nanos() as u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            Duration::from_nanos(z % window_ns)
        })
        .collect()
}

/// The wakers of the parked tasks of [`random_wakes`], by task index, and
/// how many have parked. (A mutex, not a `RefCell`, so that tokio's tasks
/// are `Send`; uncontended, it costs every runtime alike.)
#[derive(Default)]
struct ParkTable {
    wakers: Vec<Option<std::task::Waker>>,
    parked: usize,
    /// The main task, waiting for every task to park.
    main: Option<std::task::Waker>,
}

type SharedTable = std::sync::Arc<Mutex<ParkTable>>;

/// Pending once (storing its waker at `index`), then ready.
struct Park {
    table: SharedTable,
    index: usize,
    parked: bool,
}

impl Future for Park {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.parked {
            return std::task::Poll::Ready(());
        }
        self.parked = true;
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.wakers[self.index] = Some(cx.waker().clone());
        table.parked += 1;
        if table.parked == table.wakers.len() {
            if let Some(main) = table.main.take() {
                main.wake();
            }
        }
        std::task::Poll::Pending
    }
}

/// Ready once every task has parked.
struct AllParked(SharedTable);

impl Future for AllParked {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if table.parked == table.wakers.len() {
            return std::task::Poll::Ready(());
        }
        table.main = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// A task of [`random_wakes`]: parks once, then returns its index.
async fn parked(table: SharedTable, index: usize) -> u64 {
    Park {
        table,
        index,
        parked: false,
    }
    .await;
    index as u64
}

/// Spawns `order.len()` tasks that park, wakes them in `order`, awaits them
/// all; process CPU ns per task.
fn random_wakes(peers: &Peers, runtime: Runtime, order: &[usize]) -> Outcome<f64> {
    let n = order.len();
    let table: SharedTable = Default::default();
    table.lock().unwrap_or_else(|e| e.into_inner()).wakers = vec![None; n];
    let (cpu, sum) = peers.block_on(runtime, async {
        let cpu_start = cpu_time();
        let mut sum = 0;
        let wake_all = || {
            let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
            for &i in order {
                if let Some(waker) = table.wakers[i].take() {
                    waker.wake();
                }
            }
        };
        match runtime {
            Runtime::Tarn => {
                let tasks: Vec<_> = (0..n)
                    .map(|i| tarn_executor::spawn(parked(table.clone(), i)))
                    .collect();
                AllParked(table.clone()).await;
                wake_all();
                for task in tasks {
                    sum += task.await.map_err(|e| e.to_string())?;
                }
            }
            Runtime::Tokio => {
                let tasks: Vec<_> = (0..n)
                    .map(|i| tokio::spawn(parked(table.clone(), i)))
                    .collect();
                AllParked(table.clone()).await;
                wake_all();
                for task in tasks {
                    sum += task.await.map_err(|e| e.to_string())?;
                }
            }
            Runtime::Smol => {
                let tasks: Vec<_> = (0..n)
                    .map(|i| peers.smol.spawn(parked(table.clone(), i)))
                    .collect();
                AllParked(table.clone()).await;
                wake_all();
                for task in tasks {
                    sum += task.await;
                }
            }
        }
        Outcome::Ok((cpu_time() - cpu_start, sum))
    })?;
    check_sum(sum, n as u64)?;
    Ok(cpu.as_nanos() as f64 / n as f64)
}

/// `0..n` in a seeded random order (Fisher–Yates on [`deadlines`]' RNG).
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let draws = deadlines(n, Duration::from_nanos(u64::MAX));
    for i in (1..n).rev() {
        let j = (draws[i].as_nanos() as u64 % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// What the timer benchmark measured once.
#[derive(Clone, Debug)]
struct TimerRun {
    cpu_ns_per_timer: f64,
    wall: Duration,
    /// How long after its deadline each task saw its timer fire, in µs.
    late_us: Vec<f64>,
}

/// Spawns one task per deadline, each sleeping until `start + deadline`,
/// and awaits them all; process CPU ns per timer, and how late they fired.
fn timers(peers: &Peers, runtime: Runtime, offsets: &[Duration]) -> Outcome<TimerRun> {
    // Allocated before the clock starts, and never grown.
    let mut late_us = Vec::with_capacity(offsets.len());
    let (cpu, wall, early) = peers.block_on(runtime, async {
        let cpu_start = cpu_time();
        let start = Instant::now();
        // Each task returns how late it woke, or `None` if it woke before
        // its deadline.
        let mut early = 0usize;
        let mut tally = |late: Option<Duration>| match late {
            Some(late) => late_us.push(late.as_nanos() as f64 / 1e3),
            None => early += 1,
        };
        match runtime {
            Runtime::Tarn => {
                let tasks: Vec<_> = offsets
                    .iter()
                    .map(|&offset| {
                        let when = start + offset;
                        tarn_executor::spawn(async move {
                            tarn_reactor::Timer::at(when).await;
                            Instant::now().checked_duration_since(when)
                        })
                    })
                    .collect();
                for task in tasks {
                    tally(task.await.map_err(|e| e.to_string())?);
                }
            }
            Runtime::Tokio => {
                let tasks: Vec<_> = offsets
                    .iter()
                    .map(|&offset| {
                        let when = start + offset;
                        tokio::spawn(async move {
                            tokio::time::sleep_until(tokio::time::Instant::from_std(when)).await;
                            Instant::now().checked_duration_since(when)
                        })
                    })
                    .collect();
                for task in tasks {
                    tally(task.await.map_err(|e| e.to_string())?);
                }
            }
            Runtime::Smol => {
                let tasks: Vec<_> = offsets
                    .iter()
                    .map(|&offset| {
                        let when = start + offset;
                        peers.smol.spawn(async move {
                            smol::Timer::at(when).await;
                            Instant::now().checked_duration_since(when)
                        })
                    })
                    .collect();
                for task in tasks {
                    tally(task.await);
                }
            }
        }
        Outcome::Ok((cpu_time() - cpu_start, start.elapsed(), early))
    })?;
    if early > 0 {
        return Err(format!(
            "{early} of {} timers fired before their deadline",
            offsets.len()
        ));
    }
    if late_us.len() != offsets.len() {
        return Err(format!(
            "{} timers fired, expected {}",
            late_us.len(),
            offsets.len()
        ));
    }
    let latest = offsets.iter().max().copied().unwrap_or_default();
    if wall < latest {
        return Err(format!(
            "all timers done after {wall:?}, before the latest deadline ({latest:?})"
        ));
    }
    Ok(TimerRun {
        cpu_ns_per_timer: cpu.as_nanos() as f64 / offsets.len() as f64,
        wall,
        late_us,
    })
}

/// `n` sequential sleeps of [`SLEEP`]; how late each returned, in µs.
fn overshoot(peers: &Peers, runtime: Runtime, n: usize) -> Outcome<Vec<f64>> {
    let lates = peers.block_on(runtime, async {
        let mut lates = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            match runtime {
                Runtime::Tarn => {
                    tarn_reactor::Timer::after(SLEEP).await;
                }
                Runtime::Tokio => tokio::time::sleep(SLEEP).await,
                Runtime::Smol => {
                    smol::Timer::after(SLEEP).await;
                }
            }
            let slept = start.elapsed();
            if slept < SLEEP {
                return Err(format!("a {SLEEP:?} sleep returned after {slept:?}"));
            }
            lates.push((slept - SLEEP).as_nanos() as f64 / 1e3);
        }
        Ok(lates)
    })?;
    if lates.len() != n {
        return Err(format!("{} sleeps done, expected {n}", lates.len()));
    }
    Ok(lates)
}

/// Ends the process if one measurement runs for longer than
/// [`WATCHDOG_LIMIT`]: a hung runtime must fail the run, not stall CI.
static WATCHED: Mutex<Option<(String, Instant)>> = Mutex::new(None);

fn start_watchdog() {
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_millis(500));
            let watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((what, since)) = &*watched {
                if since.elapsed() > WATCHDOG_LIMIT {
                    eprintln!(
                        "executor: {what} has run for {:?}; taking it for a hang and exiting",
                        since.elapsed()
                    );
                    std::process::exit(3);
                }
            }
        })
        .expect("cannot spawn the watchdog thread");
}

/// Runs `measure` for every runtime, interleaved, for the warm-up round (if
/// any) and `sizes.rounds` rounds; the samples of each runtime in
/// [`RUNTIMES`] order.
fn rounds<T>(
    name: &str,
    sizes: Sizes,
    mut measure: impl FnMut(Runtime) -> Outcome<T>,
) -> Outcome<[Vec<T>; 3]> {
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    if sizes.bench.is_some_and(|bench| !name.starts_with(bench)) {
        return Ok(samples);
    }
    for round in 0..sizes.rounds + usize::from(sizes.warmup) {
        for (i, runtime) in RUNTIMES.into_iter().enumerate() {
            if sizes.only.is_some_and(|only| only != runtime) {
                continue;
            }
            *WATCHED.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((format!("{name} on {runtime}"), Instant::now()));
            let sample = measure(runtime).map_err(|e| format!("{name} on {runtime}: {e}"))?;
            if round > 0 || !sizes.warmup {
                samples[i].push(sample);
            }
        }
    }
    *WATCHED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    Ok(samples)
}

/// `[&a[0], &a[1], &a[2]]`: `<[T; 3]>::each_ref`, which is newer than the
/// bench's MSRV.
fn each_ref<T>(a: &[T; 3]) -> [&T; 3] {
    [&a[0], &a[1], &a[2]]
}

/// One runtime's figure in a row: the central value and the range.
#[derive(Clone, Copy, Debug)]
struct Cell {
    value: f64,
    min: f64,
    max: f64,
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median of the rounds, and their range; `None` for a runtime that
/// was not measured.
fn per_round(samples: &[f64]) -> Option<Cell> {
    (!samples.is_empty()).then(|| Cell {
        value: quantile(samples, 0.5),
        min: samples.iter().copied().fold(f64::INFINITY, f64::min),
        max: samples.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// One line of the result tables.
#[derive(Debug)]
struct Row {
    name: &'static str,
    unit: &'static str,
    cells: [Option<Cell>; 3],
}

impl Row {
    fn per_round(name: &'static str, unit: &'static str, samples: &[Vec<f64>; 3]) -> Row {
        Row {
            name,
            unit,
            cells: [0, 1, 2].map(|i| per_round(&samples[i])),
        }
    }
}

/// What the whole run measured.
#[derive(Debug)]
struct Report {
    rows: Vec<Row>,
    /// The median wall time of the timer benchmark per runtime.
    timer_wall: [Option<Duration>; 3],
}

/// The p50 and p99 rows of samples in µs: the central value pools every
/// sample of every round; the range is that of the rounds' own quantiles.
fn pooled_quantiles(names: [&'static str; 2], samples: &[Vec<Vec<f64>>; 3]) -> [Row; 2] {
    let row = |name, q| Row {
        name,
        unit: "µs",
        cells: each_ref(samples).map(|rounds| {
            let all: Vec<f64> = rounds.iter().flatten().copied().collect();
            let per: Vec<f64> = rounds.iter().map(|r| quantile(r, q)).collect();
            per_round(&per).map(|range| Cell {
                value: quantile(&all, q),
                ..range
            })
        }),
    };
    [row(names[0], 0.5), row(names[1], 0.99)]
}

fn run(sizes: Sizes) -> Outcome<Report> {
    let peers = Peers::new()?;
    let mut rows = Vec::new();

    let samples = rounds("spawn+await", sizes, |rt| {
        spawn_await(&peers, rt, sizes.spawn_await)
    })?;
    rows.push(Row::per_round("spawn+await", "ns/task", &samples));

    let samples = rounds("spawn all, await all", sizes, |rt| {
        spawn_all(&peers, rt, sizes.spawn_all)
    })?;
    rows.push(Row::per_round("spawn all, await all", "ns/task", &samples));

    let samples = rounds("ping-pong", sizes, |rt| {
        ping_pong(&peers, rt, Channel::Natural, sizes.ping_pong)
    })?;
    rows.push(Row::per_round("ping-pong round trip", "ns/trip", &samples));
    let one_way = samples.map(|s| s.iter().map(|rt| rt / 2.0).collect());
    rows.push(Row::per_round(
        "ping-pong one-way wake",
        "ns/wake",
        &one_way,
    ));
    let samples = rounds("ping-pong, tokio mpsc", sizes, |rt| {
        ping_pong(&peers, rt, Channel::TokioMpsc, sizes.ping_pong)
    })?;
    rows.push(Row::per_round(
        "ping-pong, all tokio mpsc",
        "ns/trip",
        &samples,
    ));

    let samples = rounds("yield_now", sizes, |rt| {
        yield_loop(&peers, rt, sizes.yields)
    })?;
    rows.push(Row::per_round("yield_now", "ns/yield", &samples));

    let order = shuffled(sizes.timers);
    let samples = rounds("random wakes", sizes, |rt| random_wakes(&peers, rt, &order))?;
    rows.push(Row::per_round("random wakes", "CPU ns/task", &samples));

    let offsets = deadlines(sizes.timers, sizes.timer_window);
    let runs = rounds("timers", sizes, |rt| timers(&peers, rt, &offsets))?;
    let cpu = each_ref(&runs).map(|runs| runs.iter().map(|r| r.cpu_ns_per_timer).collect());
    rows.push(Row::per_round("timers", "CPU ns/timer", &cpu));
    let timer_wall = each_ref(&runs).map(|runs| {
        let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
        walls.sort();
        walls.get(walls.len() / 2).copied()
    });

    rows.extend(pooled_quantiles(
        ["timer lateness p50", "timer lateness p99"],
        &runs.map(|runs| runs.into_iter().map(|r| r.late_us).collect()),
    ));

    let lates = rounds("1 ms sleep", sizes, |rt| {
        overshoot(&peers, rt, sizes.sleeps)
    })?;
    rows.extend(pooled_quantiles(
        ["1 ms sleep overshoot p50", "1 ms sleep overshoot p99"],
        &lates,
    ));

    // Rows of benchmarks that `--bench` left out.
    rows.retain(|row| row.cells.iter().any(Option::is_some));
    Ok(Report { rows, timer_wall })
}

/// A figure with about three significant digits.
fn figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A cell's central value, or "-" for a runtime that was not measured.
fn value(cell: Option<Cell>) -> String {
    cell.map_or_else(|| "-".to_string(), |c| figure(c.value))
}

/// A cell's min–max, or "-".
fn range(cell: Option<Cell>) -> String {
    cell.map_or_else(
        || "-".to_string(),
        |c| format!("{}–{}", figure(c.min), figure(c.max)),
    )
}

/// `cell / tokio`, or "-" when either was not measured.
fn ratio(cell: Option<Cell>, tokio: Option<Cell>) -> String {
    match (cell, tokio) {
        (Some(c), Some(t)) => format!("{:.2}", c.value / t.value),
        _ => "-".to_string(),
    }
}

fn print(report: &Report, sizes: Sizes, pinned: Option<&str>) {
    let mode = if sizes.warmup {
        format!(
            "median of {} interleaved rounds after a warm-up round",
            sizes.rounds
        )
    } else {
        "quick run, one round: the figures are rough".to_string()
    };
    println!("tarn-executor vs tokio current_thread vs smol LocalExecutor ({mode})");
    match pinned {
        Some(cpus) => println!("CPU affinity: {cpus}"),
        None => {
            println!("CPU affinity: not pinned (run under `taskset -c 0` for steadier figures)")
        }
    }
    println!();

    // `{:<w$}` pads by chars, so "µs" and "–" line up with ASCII text.
    let name_w = report.rows.iter().map(|r| r.name.chars().count()).max();
    let name_w = name_w.unwrap_or(0);
    let unit_w = report.rows.iter().map(|r| r.unit.chars().count()).max();
    let unit_w = unit_w.unwrap_or(0);
    println!(
        "{:<name_w$}  {:<unit_w$}  {:>9} {:>9} {:>9}  {:>10} {:>10}",
        "benchmark", "unit", "tarn", "tokio", "smol", "tarn/tokio", "smol/tokio"
    );
    for row in &report.rows {
        let [tarn, tokio, smol] = row.cells;
        println!(
            "{:<name_w$}  {:<unit_w$}  {:>9} {:>9} {:>9}  {:>10} {:>10}",
            row.name,
            row.unit,
            value(tarn),
            value(tokio),
            value(smol),
            ratio(tarn, tokio),
            ratio(smol, tokio),
        );
    }
    println!();
    println!("min–max over the rounds");
    println!(
        "{:<name_w$}  {:<unit_w$}  {:>13} {:>13} {:>13}",
        "benchmark", "unit", "tarn", "tokio", "smol"
    );
    for row in &report.rows {
        let [tarn, tokio, smol] = row.cells;
        println!(
            "{:<name_w$}  {:<unit_w$}  {:>13} {:>13} {:>13}",
            row.name,
            row.unit,
            range(tarn),
            range(tokio),
            range(smol),
        );
    }
    println!();
    println!(
        "spawn+await: {} tasks one at a time; spawn all, await all: {} tasks.",
        sizes.spawn_await, sizes.spawn_all
    );
    println!(
        "ping-pong: {} round trips over capacity-1 channels: tokio::sync::mpsc for tokio, \
         async-channel bounded(1) for tarn and smol; \"all tokio mpsc\": tokio::sync::mpsc on every runtime.",
        sizes.ping_pong
    );
    println!(
        "yield_now: one task, {} yields (tarn_executor::yield_now, tokio::task::yield_now, \
         smol::future::yield_now).",
        sizes.yields
    );
    let [tarn, tokio, smol] = report.timer_wall.map(|wall| {
        wall.map_or_else(
            || "-".to_string(),
            |w| format!("{:.1}", w.as_secs_f64() * 1e3),
        )
    });
    println!(
        "timers: {} tasks sleeping until seeded deadlines in 0..{} ms; process CPU time, spawning \
         included; lateness: when each task woke after its deadline, all rounds pooled \
         (min–max: each round's own); median wall {tarn} / {tokio} / {smol} ms (tarn / tokio / smol).",
        sizes.timers,
        sizes.timer_window.as_millis()
    );
    println!(
        "1 ms sleep: {} sequential sleeps a round; p50 and p99 of all rounds' sleeps pooled, \
         min–max of each round's own.",
        sizes.sleeps
    );
}

/// The CPUs this process may run on, as `taskset -c` would print them,
/// when that is fewer than the machine has; `None` when not pinned.
fn pinned_cpus() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim()
        .to_string();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    (allowed != online.trim()).then_some(allowed)
}

fn main() -> ExitCode {
    let usage = "usage: executor [--quick] [--only tarn|tokio|smol] [--bench NAME]";
    let mut quick = false;
    let mut only = None;
    let mut bench = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let name = args.next().unwrap_or_default();
                match RUNTIMES.into_iter().find(|r| r.to_string() == name) {
                    Some(runtime) => only = Some(runtime),
                    None => {
                        eprintln!("executor: --only takes tarn, tokio or smol, not {name:?}");
                        return ExitCode::from(2);
                    }
                }
            }
            "--bench" => match args.next() {
                Some(name) => bench = Some(&*Box::leak(name.into_boxed_str())),
                None => {
                    eprintln!("executor: --bench takes the start of a benchmark's name");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{usage}");
                println!("  --quick       tiny sizes, one round (smoke run)");
                println!("  --only NAME   measure one runtime alone (to profile it)");
                println!("  --bench NAME  run only the benchmarks whose name starts with NAME");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("executor: unknown argument {other:?}; {usage}");
                return ExitCode::from(2);
            }
        }
    }
    let sizes = Sizes {
        only,
        bench,
        ..if quick { QUICK } else { FULL }
    };
    start_watchdog();
    match run(sizes) {
        Ok(report) => {
            print(&report, sizes, pinned_cpus().as_deref());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("executor: {e}");
            ExitCode::FAILURE
        }
    }
}

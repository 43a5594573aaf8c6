//! Helpers shared by the facade's integration tests: re-running a test
//! binary on the poll and select backends, a watchdog that turns a hang into
//! a failure, fd limits, echo servers and checksummed data.
//!
//! Each test binary compiles its own copy of this module and uses only part
//! of it, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use tarn::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};

/// Set in a child that re-runs a binary on another backend, so that the
/// child does not re-run itself in turn.
const BACKEND_CHILD: &str = "TARN_TEST_BACKEND_CHILD";
/// Set in a child that runs one test alone; holds that test's name.
const ISOLATED: &str = "TARN_TEST_ISOLATED";

/// How long any one test may run before it counts as hung.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Whether this process is a re-run on another backend.
pub fn is_backend_child() -> bool {
    std::env::var_os(BACKEND_CHILD).is_some()
}

/// The backend this process's reactor uses (from `TARN_SELECTOR`).
pub fn backend_name() -> String {
    std::env::var("TARN_SELECTOR").unwrap_or_else(|_| "epoll".into())
}

/// Re-runs this test binary with `TARN_SELECTOR=poll`, then `=select`, in a
/// child process each, skipping `this_test`; fails with the children's
/// output if either fails. A no-op inside such a child.
pub fn rerun_on_poll_and_select(this_test: &str, test_threads: usize) {
    let threads = test_threads.to_string();
    rerun_on_backends(&["--skip", this_test, "--test-threads", &threads]);
}

/// Runs `test` alone on `TARN_SELECTOR=poll`, then `=select`, in a child
/// process each: for a binary whose one test cannot share its process (it
/// lowers the fd limit). A no-op inside such a child.
pub fn rerun_test_on_poll_and_select(test: &str) {
    rerun_on_backends(&["--exact", test, "--test-threads", "1"]);
}

fn rerun_on_backends(args: &[&str]) {
    if is_backend_child() {
        return;
    }
    let failures: Vec<String> = ["poll", "select"]
        .into_iter()
        .filter_map(|backend| {
            let output = Command::new(std::env::current_exe().expect("current_exe"))
                .env("TARN_SELECTOR", backend)
                .env(BACKEND_CHILD, "1")
                .env_remove(ISOLATED)
                .args(args)
                .output()
                .expect("cannot re-run the test binary");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let ran = stdout.contains(" passed;") && !stdout.contains(" 0 passed;");
            (!output.status.success() || !ran).then(|| {
                format!(
                    "TARN_SELECTOR={backend}: the re-run failed or ran no test ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr),
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `body` in a process of its own (this binary re-run with `--exact
/// test_name`): for tests that change process-wide state such as signal
/// dispositions. Fails with the child's output if the child fails.
pub fn isolated(test_name: &str, body: impl FnOnce()) {
    if std::env::var(ISOLATED).as_deref() == Ok(test_name) {
        let _watchdog = watchdog(test_name, PATIENCE);
        body();
        return;
    }
    let output = Command::new(std::env::current_exe().expect("current_exe"))
        .env(ISOLATED, test_name)
        .args(["--exact", test_name, "--test-threads", "1", "--nocapture"])
        .output()
        .expect("cannot re-run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "isolated {test_name}: the child failed or ran no test ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
    );
}

/// Aborts the whole process, naming `what`, if the guard is still alive
/// after `patience`: a hung test fails instead of hanging the suite.
#[must_use = "the watchdog stops watching when the guard is dropped"]
pub fn watchdog(what: &str, patience: Duration) -> Watchdog {
    let (done, wait) = mpsc::channel::<()>();
    let what = what.to_string();
    let backend = backend_name();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(patience) {
            eprintln!(
                "watchdog: {what} (TARN_SELECTOR={backend}) still running after {patience:?}: hung; aborting"
            );
            std::process::abort();
        }
    });
    Watchdog { _done: done }
}

/// Stops its watchdog when dropped.
#[derive(Debug)]
pub struct Watchdog {
    _done: mpsc::Sender<()>,
}

/// Runs `future` with `tarn::block_on`, failing the test if it takes longer
/// than [`PATIENCE`].
pub fn run<F: Future>(future: F) -> F::Output {
    tarn::block_on(async {
        tarn::timeout(PATIENCE, future)
            .await
            .unwrap_or_else(|_| panic!("test still running after {PATIENCE:?}: hung"))
    })
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> (libc::rlim_t, libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given.
    let res = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(res, 0, "getrlimit: {}", io::Error::last_os_error());
    (limit.rlim_cur, limit.rlim_max)
}

/// Sets the soft `RLIMIT_NOFILE` (the hard one stays).
pub fn set_nofile_soft(soft: libc::rlim_t) {
    let (_, hard) = nofile_limit();
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given.
    let res = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(res, 0, "setrlimit({soft}): {}", io::Error::last_os_error());
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new limit.
pub fn raise_nofile_limit() -> libc::rlim_t {
    let (soft, hard) = nofile_limit();
    if soft < hard {
        set_nofile_soft(hard);
    }
    hard
}

/// The number of open fds of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
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

/// `len` deterministic pseudo-random bytes (xorshift seeded with `seed`).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut data = vec![0; len];
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// FNV-1a over `data`, continuing from `hash` (start with [`FNV_START`]).
pub fn fnv1a(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The FNV-1a offset basis.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

// Helpers of the reliability suite (tests/reliability_*.rs): short and
// soak sizes, figures for the README, each test alone in a process per
// backend, servers on threads of their own, example programs as child
// processes, memory and fd counts, latencies.

/// Set to `1` to run the reliability suite at the sizes of issue 6 (soak)
/// instead of the short sizes CI uses.
pub const SOAK: &str = "TARN_SOAK";

/// Whether `TARN_SOAK=1` asks for the full (soak) sizes.
pub fn soak() -> bool {
    std::env::var(SOAK).as_deref() == Ok("1")
}

/// `short` normally, `full` under `TARN_SOAK=1`.
pub fn sized<T>(short: T, full: T) -> T {
    if soak() {
        full
    } else {
        short
    }
}

/// How long one reliability test may run: [`PATIENCE`], or half an hour
/// under `TARN_SOAK=1`.
pub fn reliability_patience() -> Duration {
    sized(PATIENCE, Duration::from_secs(30 * 60))
}

/// The start of a figure line, which the helpers below pass on from child
/// processes.
const FIGURE: &str = "figure: ";

/// Prints a measured figure (for the README) as `figure: <line>` on stderr;
/// shown by `cargo test -- --nocapture`, and passed on by
/// [`isolated_on_each_backend`] from its child processes.
pub fn figure(line: impl std::fmt::Display) {
    eprintln!("{FIGURE}{line}");
}

/// Prints the figure lines of a child's output as this process's own.
fn pass_on_figures(output: &std::process::Output) {
    for stream in [&output.stdout, &output.stderr] {
        for line in String::from_utf8_lossy(stream).lines() {
            if let Some(start) = line.find(FIGURE) {
                eprintln!("{}", &line[start..]);
            }
        }
    }
}

/// The backends a reliability test runs on: `TARN_SELECTOR`'s if it is
/// set, else epoll, poll and select.
pub fn backends() -> Vec<String> {
    match std::env::var("TARN_SELECTOR") {
        Ok(backend) => vec![backend],
        Err(_) => ["epoll", "poll", "select"].map(String::from).to_vec(),
    }
}

/// Runs `body` alone in a child process (this binary re-run with `--exact
/// test_name`) once per backend of [`backends`], one after the other, so
/// that it can count the process's fds, memory and reactor sources, and
/// change signal dispositions, without other tests in the way. The
/// children's figure lines are passed on; a failing child fails the test
/// with its output. Inside the child, `body` runs under a watchdog of
/// [`reliability_patience`].
pub fn isolated_on_each_backend(test_name: &str, body: impl FnOnce()) {
    if std::env::var(ISOLATED).as_deref() == Ok(test_name) {
        let _watchdog = watchdog(test_name, reliability_patience());
        body();
        return;
    }
    for backend in backends() {
        let output = Command::new(std::env::current_exe().expect("current_exe"))
            .env("TARN_SELECTOR", &backend)
            .env(BACKEND_CHILD, "1")
            .env(ISOLATED, test_name)
            .args(["--exact", test_name, "--test-threads", "1", "--nocapture"])
            .output()
            .expect("cannot re-run the test binary");
        pass_on_figures(&output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{test_name} on TARN_SELECTOR={backend}: the child failed or ran no test ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
        );
    }
}

/// Waits up to `patience` for `cond`, looking every 10 ms; its last answer.
pub fn eventually(patience: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + patience;
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`, ...); `pid`
/// may be `"self"`.
fn proc_status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// This process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib() -> u64 {
    proc_status_kib("self", "VmRSS")
}

/// Process `pid`'s resident memory (`VmRSS`), in KiB.
pub fn rss_kib_of(pid: u32) -> u64 {
    proc_status_kib(&pid.to_string(), "VmRSS")
}

/// The CPU time (user plus system, all threads) process `pid` has used.
pub fn cpu_time_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The fields after the command name, which is in parentheses: utime
    // and stime are the 12th and 13th of them, in clock ticks.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// The number of open fds of process `pid`.
pub fn open_fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// Makes closing `conn` send a RST instead of a FIN (`SO_LINGER` of 0).
pub fn reset_on_close(conn: &impl std::os::fd::AsRawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the option value points to a live `linger` of the size given.
    let res = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(res, 0, "SO_LINGER: {}", io::Error::last_os_error());
}

/// A xorshift64* generator: reproducible random sizes and data streams.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// A size for one read or write: mostly up to 64 KiB, one in eight
    /// tiny (1 to 16 bytes), one in sixteen large (up to 256 KiB).
    pub fn io_size(&mut self) -> usize {
        match self.next_u64() % 16 {
            0 | 1 => self.between(1, 16),
            2 => self.between(64 * 1024, 256 * 1024),
            _ => self.between(1, 64 * 1024),
        }
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Percentiles of a set of latency samples.
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

impl std::fmt::Display for Latency {
    /// "p50 0.10 ms, p99 1.00 ms, max 2.00 ms (1000 requests)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// The path of example program `name` in this test binary's profile,
/// after `cargo build --examples` (once per process, when run under cargo;
/// instant when they are up to date).
pub fn example_path(name: &str) -> std::path::PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf();
    BUILD.call_once(|| {
        let Some(cargo) = std::env::var_os("CARGO") else {
            return;
        };
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--examples", "--manifest-path"]);
        build.arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        match profile_dir.file_name().and_then(|p| p.to_str()) {
            Some("debug") => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(profile) => {
                build.args(["--profile", profile]);
            }
            None => return,
        }
        match build.status() {
            Ok(status) if status.success() => {}
            other => {
                eprintln!("cargo build --examples failed ({other:?}); using the binaries there are")
            }
        }
    });
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --examples`",
        path.display()
    );
    path
}

/// An example server running as a child process on a free port, with its
/// stdout and stderr drained (and stderr's lines counted); killed when
/// dropped.
#[derive(Debug)]
pub struct ExampleServer {
    name: &'static str,
    backend: String,
    child: std::process::Child,
    addr: SocketAddr,
    stderr_lines: StderrLines,
}

/// How many lines a child printed on stderr, and the first 20 of them.
type StderrLines = std::sync::Arc<std::sync::Mutex<(usize, Vec<String>)>>;

impl ExampleServer {
    /// Starts example `name` on `127.0.0.1:0` with `TARN_SELECTOR=backend`
    /// and the fd limit this process has; waits for the address it prints.
    pub fn start(name: &'static str, backend: &str) -> ExampleServer {
        use std::io::BufRead;
        use std::process::Stdio;

        let mut child = Command::new(example_path(name))
            .arg("127.0.0.1:0")
            .env("TARN_SELECTOR", backend)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((_, rest)) = line.split_once("listening on ") {
                    let _ = addr_tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let stderr_lines: StderrLines = std::sync::Arc::default();
        let lines = std::sync::Arc::clone(&stderr_lines);
        std::thread::spawn(move || {
            for line in io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut lines = lines.lock().unwrap();
                lines.0 += 1;
                if lines.1.len() < 20 {
                    lines.1.push(line);
                }
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("example {name} printed no address: {e}"));
        ExampleServer {
            name,
            backend: backend.to_string(),
            child,
            addr: addr.parse().expect("a socket address"),
            stderr_lines,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "echo on poll", for messages.
    pub fn label(&self) -> String {
        format!("{} on {}", self.name, self.backend)
    }

    /// Its resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.child.id())
    }

    /// Its open fds.
    pub fn open_fds(&self) -> usize {
        open_fds_of(self.child.id())
    }

    /// Waits until it uses no CPU for 200 ms (at most `patience`); returns
    /// how long that took: how long it was still busy.
    pub fn wait_until_idle(&self, patience: Duration) -> Duration {
        let started = std::time::Instant::now();
        let mut before = cpu_time_of(self.child.id());
        while started.elapsed() < patience {
            std::thread::sleep(Duration::from_millis(200));
            let now = cpu_time_of(self.child.id());
            if now == before {
                return started.elapsed().saturating_sub(Duration::from_millis(200));
            }
            before = now;
        }
        panic!("{} still busy after {patience:?}", self.label());
    }

    /// Fails if the process has exited, with its exit status and the first
    /// lines of its stderr.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited ({status}); its stderr began:\n{}",
                self.label(),
                self.stderr_lines.lock().unwrap().1.join("\n")
            );
        }
    }

    /// How many lines it has printed on stderr (one per failed connection,
    /// for the echo example).
    pub fn stderr_line_count(&self) -> usize {
        self.stderr_lines.lock().unwrap().0
    }
}

impl Drop for ExampleServer {
    /// Kills the process and reaps it.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The largest single read or write of [`Rng::io_size`].
pub const MAX_IO: usize = 256 * 1024;

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

/// Streams `len` random bytes through the echo server at `addr` on one
/// connection, writing and reading at once with random sizes; checks the
/// length and checksum of what comes back.
pub async fn stream_through_echo(addr: SocketAddr, i: u64, len: usize) -> io::Result<()> {
    let conn = TcpStream::connect(addr).await?;
    let (mut reader, mut writer) = conn.split();
    let send = async {
        let (mut sizes, mut data) = (Rng::new(3 * i + 1), Rng::new(3 * i + 2));
        let mut buf = vec![0; MAX_IO];
        let (mut sent, mut hash) = (0, FNV_START);
        while sent < len {
            let n = sizes.io_size().min(len - sent);
            data.fill(&mut buf[..n]);
            hash = fnv1a(hash, &buf[..n]);
            write_some(&mut writer, &mut sizes, &buf[..n]).await?;
            sent += n;
        }
        writer.close().await?; // end of stream: the server then closes too
        io::Result::Ok(hash)
    };
    let receive = async {
        let mut sizes = Rng::new(3 * i + 3);
        let mut buf = vec![0; MAX_IO];
        let (mut received, mut hash) = (0, FNV_START);
        loop {
            let n = read_some(&mut reader, &mut sizes, &mut buf).await?;
            if n == 0 {
                return io::Result::Ok((received, hash));
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

/// What the leak checks compare before and after: the process's open fds
/// and the reactor's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub fds: usize,
    pub sources: usize,
    pub waiting_readers: usize,
    pub waiting_writers: usize,
    pub timers: usize,
}

impl Held {
    /// The process's open fds and the reactor's gauges now.
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

    /// The counts with one more listener, waiting in `accept`.
    pub fn with_listener(self) -> Held {
        Held {
            fds: self.fds + 1,
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

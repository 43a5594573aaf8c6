//! The package's example programs as child processes: their paths (built
//! if need be) and a server example to measure from outside.

use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::process::{cpu_time_of, open_fds_of, rss_kib_of};

/// The path of example program `name` in this test binary's profile
/// (`target/<profile>/examples/<name>`).
///
/// Under cargo (which sets `CARGO` and `CARGO_MANIFEST_DIR` for the tests
/// it runs), the first call in a process runs `cargo build --examples` for
/// the test binary's package and profile, which is instant when they are
/// up to date, so that `cargo test --test <one>` works on its own. Fails if
/// the example is missing.
pub fn example_path(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf();
    BUILD.call_once(|| build_examples(&profile_dir));
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --examples`",
        path.display()
    );
    path
}

/// `cargo build --examples` for the package under test, in the profile of
/// `profile_dir`; a failure is reported and left to [`example_path`]'s
/// check.
fn build_examples(profile_dir: &Path) {
    let (Some(cargo), Some(manifest_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        return;
    };
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--examples", "--manifest-path"]);
    build.arg(Path::new(&manifest_dir).join("Cargo.toml"));
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
}

/// An example server running as a child process on a free port, with its
/// stdout and stderr drained (and stderr's lines counted); killed when
/// dropped.
#[derive(Debug)]
pub struct ExampleServer {
    name: &'static str,
    backend: String,
    child: Child,
    addr: SocketAddr,
    stderr_lines: StderrLines,
}

/// How many lines a child printed on stderr, and the first 20 of them.
type StderrLines = Arc<Mutex<(usize, Vec<String>)>>;

impl ExampleServer {
    /// Starts example `name` on `127.0.0.1:0` with `TARN_SELECTOR=backend`
    /// and the fd limit this process has; waits for the address it prints
    /// ("... listening on ADDR ...").
    pub fn start(name: &'static str, backend: &str) -> ExampleServer {
        ExampleServer::start_with(name, backend, |_| {})
    }

    /// Like [`start`](Self::start), with `configure` applied to the
    /// child's `Command` first (more environment: a
    /// [`FaultyChild`](crate::FaultyChild)'s, say).
    pub fn start_with(
        name: &'static str,
        backend: &str,
        configure: impl FnOnce(&mut Command),
    ) -> ExampleServer {
        let mut command = Command::new(example_path(name));
        configure(&mut command);
        let mut child = command
            .arg("127.0.0.1:0")
            .env(crate::SELECTOR_ENV, backend)
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
        let stderr_lines: StderrLines = Arc::default();
        let lines = Arc::clone(&stderr_lines);
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

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        let started = Instant::now();
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

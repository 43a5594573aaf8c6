//! Example programs as child processes: start one on a free port, read
//! the address it prints, run real clients (curl) against it; every child
//! is killed when its test ends, pass or fail.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tarn_test_support::example_path;

/// How long a child may take to start, answer or finish.
pub const CHILD_PATIENCE: Duration = Duration::from_secs(30);

/// The path of example `name`, built if need be.
pub fn example(name: &str) -> PathBuf {
    example_path(name)
}

/// A running example, killed when dropped.
pub struct Running {
    pub name: &'static str,
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts example `name` with `args`, stdout piped (read line by line).
    pub fn start(name: &'static str, args: &[&str]) -> Running {
        let mut child = Command::new(example(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { name, child, lines }
    }

    /// The next line the example prints.
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(CHILD_PATIENCE)
            .unwrap_or_else(|e| panic!("example {}: no line on stdout: {e}", self.name))
    }

    /// The address in the example's first line ("...: listening on ADDR ...").
    pub fn listening_on(&self) -> String {
        let line = self.line();
        let (_, rest) = line
            .split_once("listening on ")
            .unwrap_or_else(|| panic!("example {}: unexpected first line {line:?}", self.name));
        rest.split_whitespace().next().unwrap().to_string()
    }

    /// Starts a server example on a free port; returns it and its address.
    pub fn server(name: &'static str) -> (Running, SocketAddr) {
        let server = Running::start(name, &["127.0.0.1:0"]);
        let addr = server.listening_on().parse().expect("a socket address");
        (server, addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, killing it after `patience`.
pub fn wait_output(mut child: Child, patience: Duration) -> Output {
    let deadline = Instant::now() + patience;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("wait");
            panic!(
                "still running after {patience:?}; killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("wait")
}

/// Runs `program` with `args` to its end; fails with the package to
/// install if it is missing.
pub fn run_tool(program: &str, package: &str, args: &[&str]) -> Output {
    match Command::new(program).args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            panic!("{program} is not installed; install {package} to run this test")
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

/// Runs curl with `args`; fails with a hint if curl is not installed.
pub fn curl(args: &[&str]) -> Output {
    run_tool("curl", "curl (apt-get install curl)", args)
}

/// Runs curl, which must succeed; returns what it printed.
pub fn curl_ok(args: &[&str]) -> String {
    let out = curl(args);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Python websockets client (`python3 -c WEBSOCKET_CLIENT URL ROUNDS`):
/// ROUNDS connections one after the other, each sending a text, a 1 MiB
/// binary message and a ping and closing with code 1000; prints `ok` when
/// each came back as it should.
pub const WEBSOCKET_CLIENT: &str = r#"
import asyncio, os, sys
import websockets

async def main(url, rounds):
    for _ in range(rounds):
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send("hello, tarn")
            assert await ws.recv() == "hello, tarn"
            blob = os.urandom(1 << 20)
            await ws.send(blob)
            assert await ws.recv() == blob
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            await ws.close(code=1000, reason="done")
            assert ws.close_code == 1000, ws.close_code
    print("ok")

asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2])), 60))
"#;

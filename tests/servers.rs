//! The hyper, TLS and WebSocket examples, run as processes and exercised by
//! clients nobody here wrote: curl (HTTP/1.1, h2c with prior knowledge,
//! https verifying the example's certificate), h2load, `openssl s_client`,
//! and Python's `websockets`; plus `hyper_client` and `tokio_interop`, and
//! graceful shutdown on SIGTERM as a process test.
//!
//! `.ci/run` installs the clients. A missing one fails its test with the
//! package to install, never skips it.
//!
//! `on_poll_and_select_backends` re-runs this binary with
//! `TARN_SELECTOR=poll` and `=select`, which the examples inherit.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::children::{curl_ok, example, run_tool, Running, CHILD_PATIENCE, WEBSOCKET_CLIENT};
use tarn_test_support::{fnv1a, open_fds_of, random_bytes, rerun_on_poll_and_select, FNV_START};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("tarn-{}-{n}-{name}", std::process::id());
        TempFile(std::env::temp_dir().join(name))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends `signal` (SIGTERM, SIGINT) to the example.
fn terminate(server: &Running, signal: libc::c_int) {
    // SAFETY: kill takes plain integers; the pid is our own child's.
    let rc = unsafe { libc::kill(server.child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
}

/// Waits for the example to exit after a signal: its exit status must be 0.
fn assert_exits_cleanly(mut server: Running) {
    let deadline = Instant::now() + CHILD_PATIENCE;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{} exited with {status}", server.name);
            return;
        }
        assert!(Instant::now() < deadline, "{} still running", server.name);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn hyper_server_speaks_http1_and_h2c_to_curl() {
    let (server, addr) = Running::server("hyper_server");
    let url = format!("http://{addr}/");
    let out = curl_ok(&["-sS", "--max-time", "30", "-w", " %{http_version}", &url]);
    assert_eq!(out, "Hello, World! 1.1");
    let h2 = [
        "-sS",
        "--max-time",
        "30",
        "--http2-prior-knowledge",
        "-w",
        " %{http_version}",
        &url,
    ];
    assert_eq!(curl_ok(&h2), "Hello, World! 2");
    let missing = format!("http://{addr}/missing");
    let status = curl_ok(&[
        "-sS",
        "--max-time",
        "30",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &missing,
    ]);
    assert_eq!(status, "404");
    let slow = format!("http://{addr}/slow?ms=20");
    assert_eq!(curl_ok(&["-sS", "--max-time", "30", &slow]), "done");
    terminate(&server, libc::SIGTERM);
    assert_exits_cleanly(server);
}

#[test]
fn hyper_server_echoes_a_10_mib_post_over_both_protocols() {
    let (_server, addr) = Running::server("hyper_server");
    let body = TempFile::new("post.bin");
    let data = random_bytes(10 * 1024 * 1024, 10);
    std::fs::write(&body.0, &data).unwrap();
    let url = format!("http://{addr}/echo");
    let upload = format!("@{}", body.path());
    for protocol in ["--http1.1", "--http2-prior-knowledge"] {
        let echoed = TempFile::new("echoed.bin");
        let args = [
            "-sS",
            "--max-time",
            "60",
            protocol,
            "--data-binary",
            &upload,
            "-o",
            echoed.path(),
            &url,
        ];
        curl_ok(&args);
        let back = std::fs::read(&echoed.0).unwrap();
        assert_eq!(back.len(), data.len(), "{protocol}");
        assert_eq!(
            fnv1a(FNV_START, &back),
            fnv1a(FNV_START, &data),
            "{protocol}"
        );
    }
}

/// The peak resident memory of process `pid`, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn hyper_server_streams_a_100_mib_post_without_holding_it() {
    let (server, addr) = Running::server("hyper_server");
    let body = TempFile::new("post-100m.bin");
    let data = random_bytes(100 * 1024 * 1024, 100);
    std::fs::write(&body.0, &data).unwrap();
    let url = format!("http://{addr}/echo");
    // `--upload-file` streams the file (`--data-binary @` would load it).
    let echoed = TempFile::new("echoed-100m.bin");
    let args = [
        "-sS",
        "--max-time",
        "120",
        "-X",
        "POST",
        "-H",
        "expect:",
        "--upload-file",
        body.path(),
        "-o",
        echoed.path(),
        &url,
    ];
    curl_ok(&args);
    let back = std::fs::read(&echoed.0).unwrap();
    assert_eq!(back.len(), data.len());
    assert_eq!(fnv1a(FNV_START, &back), fnv1a(FNV_START, &data));
    // The body passed through in frames: the server never held more than
    // a fraction of it.
    let peak = peak_rss_kib(server.child.id());
    eprintln!("hyper_server peak RSS after a 100 MiB echo: {peak} KiB");
    assert!(
        peak < 40 * 1024,
        "the server's peak RSS was {peak} KiB for a 100 MiB echo"
    );
}

#[test]
fn hyper_server_serves_h2load_without_a_failure() {
    let (_server, addr) = Running::server("hyper_server");
    let url = format!("http://{addr}/");
    let out = run_tool(
        "h2load",
        "nghttp2-client",
        &["-n", "2000", "-c", "4", "-m", "8", &url],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "h2load: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("no requests line in h2load's output:\n{text}"));
    assert!(
        line.contains("2000 succeeded, 0 failed, 0 errored"),
        "h2load: {line}"
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_refuses_and_exits_0() {
    let (server, addr) = Running::server("hyper_server");
    let fds = open_fds_of(server.child.id());
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(CHILD_PATIENCE)).unwrap();
    slow.write_all(b"GET /slow?ms=1500 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    // The request is in the server's socket; once the server has accepted
    // the connection (one more fd), the request is in flight.
    let deadline = Instant::now() + CHILD_PATIENCE;
    while open_fds_of(server.child.id()) == fds {
        assert!(
            Instant::now() < deadline,
            "the connection was never accepted"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    terminate(&server, libc::SIGTERM);
    // New connections are refused soon after the signal.
    loop {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
            Err(e) => panic!("connect: {e}"),
            Ok(_) => {
                assert!(Instant::now() < deadline, "still accepting after SIGTERM");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let mut response = String::new();
    slow.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response:?}");
    assert!(response.ends_with("done"), "{response:?}");
    assert_exits_cleanly(server);
}

#[test]
fn hyper_server_answers_expect_100_continue_before_the_body() {
    let (_server, addr) = Running::server("hyper_server");
    let body = TempFile::new("continue.bin");
    std::fs::write(&body.0, random_bytes(1024 * 1024, 7)).unwrap();
    let url = format!("http://{addr}/echo");
    let args = [
        "-sS",
        "-v",
        "--max-time",
        "30",
        "-X",
        "POST",
        "--upload-file",
        body.path(),
        "-o",
        "/dev/null",
        &url,
    ];
    let out = common::children::curl(&args);
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl: {trace}");
    // Without it, curl waits a second ("Done waiting for 100-continue").
    assert!(trace.contains("HTTP/1.1 100 Continue"), "{trace}");
}

#[test]
fn https_server_negotiates_h2_and_http1_with_a_verified_certificate() {
    let cert = TempFile::new("https.pem");
    let server = Running::start("https_server", &["127.0.0.1:0", "--cert-out", cert.path()]);
    let addr: SocketAddr = server.listening_on().parse().unwrap();
    let port = addr.port().to_string();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{port}/");
        let resolve = format!("localhost:{port}:127.0.0.1");
        let base = [
            "-sS",
            "--max-time",
            "30",
            "--cacert",
            cert.path(),
            "--resolve",
            &resolve,
        ];
        let h2 = [&base[..], &["-w", " %{http_version}", &url]].concat();
        assert_eq!(curl_ok(&h2), "Hello, World! 2");
        let h1 = [&base[..], &["--http1.1", "-w", " %{http_version}", &url]].concat();
        assert_eq!(curl_ok(&h1), "Hello, World! 1.1");
    }
    // Without the certificate, curl refuses the server.
    let url = format!("https://127.0.0.1:{port}/");
    let untrusted = common::children::curl(&["-sS", "--max-time", "30", &url]);
    assert!(
        !untrusted.status.success(),
        "curl trusted a self-signed certificate"
    );
    terminate(&server, libc::SIGTERM);
    assert_exits_cleanly(server);
}

#[test]
fn tls_echo_echoes_to_openssl_s_client() {
    let cert = TempFile::new("echo.pem");
    let server = Running::start("tls_echo", &["127.0.0.1:0", "--cert-out", cert.path()]);
    let addr = server.listening_on();
    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-CAfile", cert.path()])
        .args(["-verify_return_error", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl (apt-get install openssl)");
    let stdout = client.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stdin = client.stdin.take().unwrap();
    for line in ["hello over TLS", "a second line"] {
        writeln!(stdin, "{line}").unwrap();
        let echoed = lines.recv_timeout(CHILD_PATIENCE);
        assert_eq!(echoed.as_deref(), Ok(line), "s_client printed no echo");
    }
    drop(stdin);
    let _ = client.kill();
    let _ = client.wait();
    terminate(&server, libc::SIGTERM);
    assert_exits_cleanly(server);
}

#[test]
fn websocket_echo_talks_to_python_websockets() {
    let (server, addr) = Running::server("websocket_echo");
    let url = format!("ws://{addr}/");
    let out = run_tool("python3", "python3", &["-c", WEBSOCKET_CLIENT, &url, "1"]);
    assert!(
        out.status.success(),
        "python websockets client (pip install websockets): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    terminate(&server, libc::SIGTERM);
    assert_exits_cleanly(server);
}

/// A Python client that connects, says so, and waits for the server to
/// close: prints the close code it got.
const WEBSOCKET_WAITER: &str = r#"
import asyncio, sys
import websockets

async def main(url):
    async with websockets.connect(url) as ws:
        print("connected", flush=True)
        try:
            await ws.recv()
        except websockets.ConnectionClosed as closed:
            print("closed", closed.rcvd.code if closed.rcvd else None, flush=True)

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 30))
"#;

#[test]
fn websocket_echo_closes_open_connections_with_1001_on_sigint() {
    let (server, addr) = Running::server("websocket_echo");
    let url = format!("ws://{addr}/");
    let mut client = Command::new("python3")
        .args(["-c", WEBSOCKET_WAITER, &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let first = lines.next().map(|l| l.unwrap());
    assert_eq!(
        first.as_deref(),
        Some("connected"),
        "the client never connected"
    );
    terminate(&server, libc::SIGINT);
    let last = lines.next().map(|l| l.unwrap());
    let _ = client.wait();
    assert_eq!(
        last.as_deref(),
        Some("closed 1001"),
        "the server did not say it was going away"
    );
    assert_exits_cleanly(server);
}

#[test]
fn hyper_client_gets_from_hyper_server_and_names_a_refused_address() {
    let (_server, addr) = Running::server("hyper_server");
    let url = format!("http://{addr}/");
    for extra in [None, Some("--http2")] {
        let mut cmd = Command::new(example("hyper_client"));
        cmd.args(extra).arg(&url);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!");
    }
    let missing = Command::new(example("hyper_client"))
        .arg(format!("http://{addr}/missing"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = Command::new(example("hyper_client"))
        .arg(format!("http://{closed}/"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&closed.to_string()) && stderr.contains("refused"),
        "{stderr}"
    );

    // A server that accepts (the kernel does, into the backlog) but never
    // answers: the client gives up at its timeout, saying where.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let timed_out = Command::new(example("hyper_client"))
        .args(["--timeout", "0.5", &format!("http://{silent_addr}/")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&timed_out.stderr);
    assert_eq!(timed_out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let named = stderr.contains(&silent_addr.to_string()) && stderr.contains("timed out");
    assert!(named, "{stderr}");
}

#[test]
fn tokio_interop_runs_tokio_code_on_a_tarn_socket() {
    let out = Command::new(example("tokio_interop")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("echoed through tarn's socket: hello from tokio code"),
        "{stdout}"
    );
}

//! The examples, run the way their readers will run them: each one is
//! started as a process on a free port (`127.0.0.1:0` as argv[1]; the
//! server prints the address it got) and exercised with real clients: std
//! sockets, `curl` for `http_hello`, and the `client` example itself.
//!
//! The example binaries are the ones `cargo test` builds; the first test to
//! need one also runs `cargo build --examples`, which is instant when they
//! are up to date and makes `cargo test --test examples` work on its own.
//! Every child process is killed when its test ends, pass or fail.
//!
//! `on_poll_and_select_backends` re-runs this binary with
//! `TARN_SELECTOR=poll` and `=select`, which the examples inherit.

mod common;

use common::children::{curl_ok, example, wait_output, Running, CHILD_PATIENCE};

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tarn_test_support::{backend_name, is_backend_child, random_bytes, rerun_on_poll_and_select};

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
}

/// A std client with generous timeouts, so that a hang fails the test.
fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    conn.set_read_timeout(Some(CHILD_PATIENCE)).unwrap();
    conn.set_write_timeout(Some(CHILD_PATIENCE)).unwrap();
    conn.set_nodelay(true).unwrap();
    conn
}

/// Sends `msg` and checks that exactly `msg` comes back.
fn assert_echoes(conn: &mut (impl Read + Write), msg: &[u8]) {
    conn.write_all(msg).unwrap();
    let mut reply = vec![0; msg.len()];
    conn.read_exact(&mut reply).unwrap();
    assert!(reply == msg, "the echo differs from what was sent");
}

/// Reads whatever arrives within `wait` (none expected): its length.
fn stray_bytes(conn: &mut TcpStream, wait: Duration) -> usize {
    conn.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0; 1024];
    let n = match conn.read(&mut buf) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            0
        }
        Err(e) => panic!("read: {e}"),
    };
    conn.set_read_timeout(Some(CHILD_PATIENCE)).unwrap();
    n
}

#[test]
fn echo_example_echoes_every_client() {
    let (_server, addr) = Running::server("echo");
    let mut a = connect(addr);
    let mut b = connect(addr);
    assert_echoes(&mut a, b"hello\n");
    assert_echoes(&mut b, b"world\n");
    // More than its 4 KiB buffer, read while it is written.
    let data = random_bytes(256 * 1024, 1);
    let mut reader = a.try_clone().unwrap();
    let expected = data.clone();
    let echoed = std::thread::spawn(move || {
        let mut reply = vec![0; expected.len()];
        reader.read_exact(&mut reply).unwrap();
        reply == expected
    });
    a.write_all(&data).unwrap();
    assert!(echoed.join().unwrap(), "the large echo differs");
}

#[test]
fn idle_echo_echoes_while_holding_buffers_only_for_data_in_hand() {
    let (server, addr) = Running::server("idle_echo");
    let mut a = connect(addr);
    let mut b = connect(addr);
    assert_echoes(&mut a, b"hello\n");
    assert_echoes(&mut b, b"world\n");
    // Far more than one pooled buffer (16 KiB), read while it is written.
    let data = random_bytes(1024 * 1024, 3);
    let mut reader = a.try_clone().unwrap();
    let expected = data.clone();
    let echoed = std::thread::spawn(move || {
        let mut reply = vec![0; expected.len()];
        reader.read_exact(&mut reply).unwrap();
        reply == expected
    });
    a.write_all(&data).unwrap();
    assert!(echoed.join().unwrap(), "the large echo differs");
    // A thousand idle connections cost far less than a buffer each
    // (`echo` holds 4 KiB per connection; a pooled buffer is 16 KiB).
    let before = tarn_test_support::rss_kib_of(server.child.id());
    let idle: Vec<TcpStream> = (0..1000).map(|_| connect(addr)).collect();
    assert_echoes(&mut b, b"all accepted?\n");
    let deadline = Instant::now() + CHILD_PATIENCE;
    while tarn_test_support::open_fds_of(server.child.id()) < idle.len() + 2 {
        assert!(
            Instant::now() < deadline,
            "the idle connections were never accepted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let grown = tarn_test_support::rss_kib_of(server.child.id()).saturating_sub(before);
    assert!(
        grown < 2 * 1024,
        "1,000 idle connections grew RSS by {grown} KiB"
    );
}

#[test]
fn http_hello_answers_curl() {
    let (_server, addr) = Running::server("http_hello");
    let url = format!("http://{addr}/");

    let out = curl_ok(&[
        "--silent",
        "--show-error",
        "--include",
        "--max-time",
        "30",
        &url,
    ]);
    assert_eq!(out, String::from_utf8_lossy(HELLO));

    // Two requests on one kept-alive connection: one connect in all.
    let out = curl_ok(&[
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--write-out",
        " connects=%{num_connects}\n",
        &url,
        &url,
    ]);
    assert_eq!(out, "Hello, World! connects=1\nHello, World! connects=0\n");

    // A request with a body.
    let out = curl_ok(&[
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--data",
        "name=tarn",
        &url,
    ]);
    assert_eq!(out, "Hello, World!");

    // A request with a 12 KiB header, as browsers send with many cookies.
    let cookie = format!("Cookie: session={}", "c".repeat(12 * 1024));
    let out = curl_ok(&[
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--header",
        &cookie,
        &url,
    ]);
    assert_eq!(out, "Hello, World!");
}

#[test]
fn http_hello_answers_pipelined_and_split_requests() {
    let (_server, addr) = Running::server("http_hello");
    let mut conn = connect(addr);
    let responses = |n: usize| HELLO.repeat(n);

    // Three requests in one write (one with a body): three responses.
    conn.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET /again HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut reply = responses(3);
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply, responses(3));

    // A head split across writes: no answer until it is complete.
    for part in [&b"GET / HT"[..], b"TP/1.1\r\nHost: x\r", b"\n\r"] {
        conn.write_all(part).unwrap();
        assert_eq!(stray_bytes(&mut conn, Duration::from_millis(50)), 0);
    }
    conn.write_all(b"\n").unwrap();
    let mut reply = responses(1);
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply, HELLO);

    // A body that looks like a request, split across writes, the next
    // request right behind it: the body is skipped, not answered.
    conn.write_all(b"POST / HTTP/1.1\r\nContent-Length: 18\r\n\r\nGET / HTTP/1.1\r")
        .unwrap();
    let mut reply = responses(1);
    conn.read_exact(&mut reply).unwrap();
    conn.write_all(b"\n\r\nGET / HTTP/1.1\r\n\r\n").unwrap();
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(stray_bytes(&mut conn, Duration::from_millis(100)), 0);

    // `Connection: close`: the answer, then end of stream.
    conn.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, HELLO);

    // Heads as large as real servers take (nginx 4 x 8 KiB, Node 16 KiB)
    // are answered, up to 64 KiB, and split across writes too.
    for size in [12 * 1024, 63 * 1024] {
        let mut conn = connect(addr);
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(size));
        for part in big.as_bytes().chunks(5000) {
            conn.write_all(part).unwrap();
        }
        let mut reply = responses(1);
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(reply, HELLO, "a head of {size} bytes");
    }

    // A head larger than that is refused.
    let mut conn = connect(addr);
    let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(65 * 1024));
    let _ = conn.write_all(huge.as_bytes());
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    assert!(
        rest.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// A chat participant: a std client reading lines.
struct Chatter {
    conn: TcpStream,
    lines: BufReader<TcpStream>,
    name: String,
}

impl Chatter {
    fn join(addr: SocketAddr) -> Chatter {
        let conn = connect(addr);
        let name = conn.local_addr().unwrap().to_string();
        let lines = BufReader::new(conn.try_clone().unwrap());
        let mut chatter = Chatter { conn, lines, name };
        let welcome = chatter.line();
        assert!(welcome.starts_with("* welcome"), "{welcome:?}");
        chatter
    }

    fn say(&mut self, line: &str) {
        self.conn.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        line
    }
}

#[test]
fn chat_broadcasts_lines_and_announces_joins_and_leaves() {
    let (_server, addr) = Running::server("chat");
    let mut alice = Chatter::join(addr);
    let mut bob = Chatter::join(addr);
    assert_eq!(alice.line(), format!("* {} joined\n", bob.name));

    alice.say("hello from alice");
    assert_eq!(bob.line(), format!("{}: hello from alice\n", alice.name));
    // Alice does not get her own line back: the next one she reads is Bob's.
    bob.say("hi alice");
    assert_eq!(alice.line(), format!("{}: hi alice\n", bob.name));

    let bob_name = bob.name.clone();
    drop(bob);
    assert_eq!(alice.line(), format!("* {bob_name} left\n"));
}

#[test]
fn client_example_sends_stdin_lines_to_the_echo_example() {
    let (_server, addr) = Running::server("echo");
    let addr = addr.to_string();
    let mut client = Command::new(example("client"))
        .arg(&addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client example");
    // The last line has no newline: the client adds one.
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\nthree")
        .unwrap();
    let output = wait_output(client, CHILD_PATIENCE);
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "one\ntwo\nthree\n");
}

#[test]
fn client_example_gives_up_on_a_silent_server() {
    // Connections queue in the kernel; nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut client = Command::new(example("client"))
        .arg(&addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client example");
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"anyone?\n")
        .unwrap();
    let started = Instant::now();
    let output = wait_output(client, CHILD_PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the client exited with success");
    assert!(stderr.contains("no reply from"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(4), "gave up early");
}

#[test]
fn client_example_names_the_address_it_cannot_reach() {
    // Bound but not listening: refused, and held so that no other test can
    // listen on the port meanwhile.
    let closed = tarn::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    let client = Command::new(example("client"))
        .arg(&addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client example");
    let output = wait_output(client, CHILD_PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the client exited with success");
    assert!(
        stderr.contains(&format!("cannot connect to {addr}")),
        "{stderr}"
    );
}

#[test]
fn udp_echo_returns_each_datagram_to_its_sender() {
    let (_server, addr) = Running::server("udp_echo");
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    for socket in [&a, &b] {
        socket.set_read_timeout(Some(CHILD_PATIENCE)).unwrap();
    }
    a.send_to(b"from a", addr).unwrap();
    b.send_to(b"from b", addr).unwrap();
    let mut buf = [0; 64];
    for (socket, msg) in [(&a, &b"from a"[..]), (&b, b"from b")] {
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr);
        assert_eq!(&buf[..n], msg);
    }
    // A large datagram comes back whole.
    let big = random_bytes(60_000, 2);
    a.send_to(&big, addr).unwrap();
    let mut buf = vec![0; 65536];
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert!(buf[..n] == big[..], "the large datagram differs");
}

#[test]
fn unix_echo_replaces_a_stale_socket_and_echoes() {
    let path = std::env::temp_dir().join(format!(
        "tarn-unix-echo-{}-{}.sock",
        std::process::id(),
        backend_name()
    ));
    let _ = std::fs::remove_file(&path);
    // A socket file left by a server that is gone.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());

    let server = Running::start("unix_echo", &[path.to_str().unwrap()]);
    assert_eq!(server.listening_on(), path.to_str().unwrap());
    let mut conns: Vec<_> = (0..3)
        .map(|_| {
            let conn = UnixStream::connect(&path).unwrap();
            conn.set_read_timeout(Some(CHILD_PATIENCE)).unwrap();
            conn
        })
        .collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        assert_echoes(conn, format!("over unix {i}").as_bytes());
    }
    drop(server);
    let _ = std::fs::remove_file(&path);
}

/// Runs `work` while strace watches process `pid`; returns how many
/// read-family syscalls it made meanwhile, and how many of them failed with
/// `EAGAIN`.
fn reads_during(pid: u32, work: impl FnOnce()) -> (usize, usize) {
    let out = std::env::temp_dir().join(format!(
        "tarn-strace-{}-{pid}-{}.txt",
        std::process::id(),
        backend_name()
    ));
    let mut strace = match Command::new("strace")
        .args(["-f", "-e", "trace=read,readv,recvfrom,recvmsg", "-o"])
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(strace) => strace,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            panic!("strace is not installed; install it (apt-get install strace) to run this test")
        }
        Err(e) => panic!("cannot run strace: {e}"),
    };
    // strace says so on stderr once it has attached.
    let mut stderr = BufReader::new(strace.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("attached") {
        line.clear();
        let n = stderr.read_line(&mut line).expect("strace's stderr");
        assert!(n > 0, "strace exited without attaching to {pid}");
    }
    work();
    // SIGINT: strace detaches and writes out what it saw.
    // SAFETY: kill takes plain integers; the pid is our own child's.
    unsafe { libc::kill(strace.id() as libc::pid_t, libc::SIGINT) };
    strace.wait().expect("strace");
    let trace = std::fs::read_to_string(&out).expect("strace's output");
    let _ = std::fs::remove_file(&out);
    let reads = trace.lines().filter(|l| l.contains(") = ")).count();
    let eagain = trace.lines().filter(|l| l.contains("EAGAIN")).count();
    (reads, eagain)
}

/// The echo examples answer each message with one read and one write: a
/// read that comes back short shows the socket drained, so the next read
/// waits for readiness instead of making a syscall that says `EAGAIN`.
/// TCP and Unix streams share that path.
#[test]
fn echo_examples_read_each_message_without_an_eagain() {
    const MESSAGES: usize = 200;
    fn exchange(conn: &mut (impl Read + Write)) {
        for i in 0..MESSAGES {
            assert_echoes(conn, format!("message {i:04} of {MESSAGES}").as_bytes());
            // Time for the server to come back to its read before the next
            // message: a read syscall then would say EAGAIN.
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    let (server, addr) = Running::server("echo");
    let mut conn = connect(addr);
    let (reads, eagain) = reads_during(server.child.id(), || exchange(&mut conn));
    assert!(
        eagain <= MESSAGES / 100 && reads <= MESSAGES + MESSAGES / 100,
        "echo: {reads} reads, {eagain} of them EAGAIN, for {MESSAGES} messages"
    );

    let path = std::env::temp_dir().join(format!(
        "tarn-unix-echo-reads-{}-{}.sock",
        std::process::id(),
        backend_name()
    ));
    let server = Running::start("unix_echo", &[path.to_str().unwrap()]);
    server.listening_on();
    let mut conn = UnixStream::connect(&path).unwrap();
    conn.set_read_timeout(Some(CHILD_PATIENCE)).unwrap();
    let (reads, eagain) = reads_during(server.child.id(), || exchange(&mut conn));
    drop(server);
    let _ = std::fs::remove_file(&path);
    assert!(
        eagain <= MESSAGES / 100 && reads <= MESSAGES + MESSAGES / 100,
        "unix_echo: {reads} reads, {eagain} of them EAGAIN, for {MESSAGES} messages"
    );
}

#[test]
fn unix_echo_refuses_to_remove_a_file_that_is_not_a_socket() {
    let path = std::env::temp_dir().join(format!(
        "tarn-unix-echo-{}-{}.txt",
        std::process::id(),
        backend_name()
    ));
    std::fs::write(&path, "precious").unwrap();
    let child = Command::new(example("unix_echo"))
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_output(child, CHILD_PATIENCE);
    assert!(!output.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn foreign_executor_runs_to_completion() {
    let child = Command::new(example("foreign_executor"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start foreign_executor");
    let output = wait_output(child, CHILD_PATIENCE);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "foreign_executor failed ({})\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("tokio: 8 tarn clients"), "{stdout}");
    assert!(
        stdout.contains("futures ThreadPool: 8 tarn clients"),
        "{stdout}"
    );
    assert!(stdout.contains("fallback thread"), "{stdout}");
}

#[test]
fn per_core_serves_connections_on_every_listener() {
    let (_server, addr) = Running::server("per_core");
    let mut conns: Vec<_> = (0..16).map(|_| connect(addr)).collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        assert_echoes(conn, format!("connection {i}\n").as_bytes());
    }
}

/// A program needs `tarn` alone for the everyday things (sockets, I/O,
/// streams, channels, the extension traits): the chat example builds as a
/// crate whose only dependency is `tarn`.
#[test]
fn chat_example_builds_with_tarn_as_its_only_dependency() {
    if is_backend_child() {
        return; // Nothing here depends on the backend.
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        panic!("run this test under cargo (it builds a crate)");
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("tarn-only-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"tarn-only\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\ntarn = {{ path = {:?} }}\n\n[workspace]\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::copy(root.join("examples/chat.rs"), dir.join("src/main.rs")).unwrap();
    let out = Command::new(cargo)
        .args(["check", "--quiet", "--offline", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        // The workspace's own target directory: its dependencies are built.
        .env("CARGO_TARGET_DIR", root.join("target").join("tarn-only"))
        .output()
        .expect("cannot run cargo");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "examples/chat.rs does not build with tarn alone:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn task_dump_prints_every_task_and_what_it_waits_for_on_sigusr1() {
    let (server, addr) = Running::server("task_dump");
    let mut conn = connect(addr);
    assert_echoes(&mut conn, b"hello\n");
    let conn_port = conn.local_addr().unwrap().port();
    // SAFETY: kill takes no pointers; the example listens for SIGUSR1.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGUSR1) },
        0
    );
    let mut dump = Vec::new();
    loop {
        let line = server.line();
        if line == "end of dump" {
            break;
        }
        dump.push(line);
    }
    let find = |name: &str| {
        dump.iter()
            .find(|l| l.contains(&format!("\"{name}")))
            .unwrap_or_else(|| panic!("no task {name:?} in the dump:\n{}", dump.join("\n")))
            .clone()
    };
    let accept = find("accept");
    assert!(
        accept.contains("idle") && accept.contains("waiting: read fd"),
        "{accept}"
    );
    assert!(
        accept.contains("examples/task_dump.rs:"),
        "no spawn location: {accept}"
    );
    let conn_task = find(&format!("conn 127.0.0.1:{conn_port}"));
    assert!(
        conn_task.contains("idle") && conn_task.contains("waiting: read fd"),
        "{conn_task}"
    );
    let timer = find("housekeeping");
    assert!(timer.contains("waiting: timer in"), "{timer}");
    let dumper = find("dump on SIGUSR1");
    assert!(dumper.contains("running"), "{dumper}");
    assert_eq!(dump.len(), 4, "tasks beyond the four:\n{}", dump.join("\n"));
    // The server still serves after the dump.
    assert_echoes(&mut conn, b"after\n");
}

#[test]
fn echo_stops_gracefully_on_sigterm_ending_what_ends_and_aborting_the_rest() {
    let (mut server, addr) = Running::server("echo");
    let mut leaving = connect(addr);
    let mut staying = connect(addr);
    assert_echoes(&mut leaving, b"bye\n");
    assert_echoes(&mut staying, b"still here\n");
    // SAFETY: kill takes no pointers; the example listens for SIGTERM.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    let line = server.line();
    assert!(
        line.contains("SIGTERM: stopping, 2 connections open"),
        "{line}"
    );
    let asked = Instant::now();
    drop(leaving);
    let line = server.line();
    assert!(
        line.contains("stopped: 1 connections ended, 1 aborted"),
        "{line}"
    );
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "stopped before its grace period: {took:?}"
    );
    // The aborted connection is closed, and the server has exited.
    let mut buf = [0; 8];
    assert_eq!(
        staying.read(&mut buf).unwrap_or(0),
        0,
        "the aborted connection stays open"
    );
    let deadline = Instant::now() + CHILD_PATIENCE;
    while server.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = server.child.try_wait().unwrap().expect("echo did not exit");
    assert!(status.success(), "echo exited with {status}");
}

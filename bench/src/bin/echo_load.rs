//! The echo load client: N connections ping-pong S-byte messages with an
//! echo server for D seconds, checking every byte, and print messages per
//! second.
//!
//! Each connection writes a message, reads until the whole message has come
//! back, compares it with what it sent, and starts the next; a message's
//! bytes depend on its connection and sequence number, so a server that
//! mixes up connections, drops, reorders or repeats bytes fails the run
//! (exit status 1) instead of reporting a figure.
//!
//! Two clients do exactly that, one thread each, so pinned to one CPU
//! (`taskset -c 1`) they leave the other CPU to the server:
//!
//! - `--client epoll` (the default): a hand-written level-triggered epoll
//!   loop over non-blocking sockets. Per message it costs one `send`, one
//!   `recv` and a share of one `epoll_wait`; messages are slices of a
//!   precomputed byte ramp, so writing one copies nothing and checking one
//!   is a `memcmp`. It exists because the tokio client below saturates its
//!   CPU before the faster servers do, which compresses their ratios.
//! - `--client tokio`: one tokio `current_thread` runtime, one task per
//!   connection (the first client `run.sh` used; kept to compare).
//!
//! With `--wait-usr1` the epoll client connects, prints `connected N`,
//! and starts the timed load only when it receives `SIGUSR1`; after the
//! load it prints its summary line and waits for a second `SIGUSR1` before
//! it closes the connections and exits. `run.sh` attaches strace after the
//! first line and detaches it after the second, so that its counts are
//! those of the steady state, without the connections' set-up or teardown.
//!
//! With `--idle N` it instead opens N connections, sends nothing, prints
//! `connected N` once they are all established and holds them until it is
//! killed: `run.sh` measures the server's memory meanwhile.
//!
//! With `--sources K` the idle connections come from 127.0.0.1 to
//! 127.0.0.K in turn (one address pair has about 28,000 ephemeral ports, so
//! 100,000 connections need 4 or more).
//!
//! ```text
//! echo_load ADDR [--conns 64] [--size 64] [--secs 5] [--client epoll|tokio]
//! echo_load ADDR [--conns 64] [--size 64] [--secs 5] --wait-usr1
//! echo_load ADDR --idle 10000 [--sources 4]
//! ```
//!
//! Output (one line, `key value` pairs, for `run.sh`):
//! `msgs 1234567 secs 5.000 msgs/s 246913.4 bytes/s 15802457.6 cpu_secs 4.98`,
//! where `cpu_secs` is the client's own user + system CPU time over the
//! load (near `secs` means the client, not the server, was the limit).

#![warn(clippy::undocumented_unsafe_blocks)]

use std::cell::Cell;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which client drives the load.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    /// The hand-written level-triggered epoll loop.
    Epoll,
    /// One tokio `current_thread` task per connection.
    Tokio,
}

/// The command line.
struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: f64,
    idle: Option<usize>,
    /// Idle connections come from this many loopback addresses
    /// (127.0.0.1, 127.0.0.2, ...): one address pair has ~28k ports.
    sources: u8,
    client: Client,
    /// Whether to wait for `SIGUSR1` between connecting and the load.
    wait_usr1: bool,
}

fn usage() -> String {
    "usage: echo_load ADDR [--conns N] [--size BYTES] [--secs S] [--client epoll|tokio] \
     [--wait-usr1] | echo_load ADDR --idle N [--sources K]"
        .into()
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let addr = argv
        .next()
        .ok_or_else(usage)?
        .parse()
        .map_err(|e| format!("bad address: {e}"))?;
    let mut args = Args {
        addr,
        conns: 64,
        size: 64,
        secs: 5.0,
        idle: None,
        sources: 1,
        client: Client::Epoll,
        wait_usr1: false,
    };
    while let Some(flag) = argv.next() {
        if flag == "--wait-usr1" {
            args.wait_usr1 = true;
            continue;
        }
        let value = argv.next().ok_or_else(usage)?;
        let bad = |e: &dyn std::fmt::Display| format!("bad {flag} {value}: {e}");
        match flag.as_str() {
            "--conns" => args.conns = value.parse().map_err(|e| bad(&e))?,
            "--size" => args.size = value.parse().map_err(|e| bad(&e))?,
            "--secs" => args.secs = value.parse().map_err(|e| bad(&e))?,
            "--idle" => args.idle = Some(value.parse().map_err(|e| bad(&e))?),
            "--sources" => args.sources = value.parse().map_err(|e| bad(&e))?,
            "--client" => {
                args.client = match value.as_str() {
                    "epoll" => Client::Epoll,
                    "tokio" => Client::Tokio,
                    _ => return Err(bad(&"expected epoll or tokio")),
                }
            }
            _ => return Err(usage()),
        }
    }
    if args.sources == 0 {
        return Err("--sources must be at least 1".into());
    }
    if args.conns == 0 || args.size == 0 {
        return Err("--conns and --size must be at least 1".into());
    }
    if args.wait_usr1 && args.client != Client::Epoll {
        return Err("--wait-usr1 needs --client epoll".into());
    }
    Ok(args)
}

/// The byte at offset `i` of message `seq` on connection `conn`: differs
/// between connections, between consecutive messages and along a message.
fn pattern(conn: usize, seq: u64, i: usize) -> u8 {
    (conn as u64)
        .wrapping_mul(131)
        .wrapping_add(seq.wrapping_mul(7))
        .wrapping_add(i as u64) as u8
}

/// Acknowledges received data at once instead of after the delayed-ACK
/// timer (40 ms). The echo servers, like tarn's example, leave Nagle's
/// algorithm on and echo a large message in 4 KiB writes, each of which
/// Nagle holds until the previous one is acknowledged; with delayed ACKs
/// every 16 KiB message would then wait for the timer and measure it, not
/// the server. Linux leaves quick-ACK mode by itself, so it is set again
/// after every partial read.
fn quick_ack(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is a socket its caller keeps open for the call, and the
    // option value is a c_int that outlives it, with its size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// This process's user + system CPU time so far.
fn cpu_time() -> Duration {
    // SAFETY: `rusage` is plain data, for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Blocks `SIGUSR1` in this thread (so that it stays pending instead of
/// ending the process) and returns the set holding it, for [`wait_usr1`].
fn block_usr1() -> Result<libc::sigset_t, String> {
    // SAFETY: `sigset_t` is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for each call, and a null old-set
    // pointer is allowed.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(format!(
            "pthread_sigmask: {}",
            io::Error::from_raw_os_error(rc)
        ));
    }
    Ok(set)
}

/// Prints `line` and waits until `SIGUSR1` (blocked by [`block_usr1`])
/// arrives.
fn wait_usr1(set: &libc::sigset_t, line: &str) -> Result<(), String> {
    println!("{line}");
    io::stdout().flush().map_err(|e| e.to_string())?;
    let mut sig = 0;
    // SAFETY: `set` is an initialised sigset_t and `sig` a writable c_int.
    let rc = unsafe { libc::sigwait(set, &mut sig) };
    if rc != 0 {
        return Err(format!("sigwait: {}", io::Error::from_raw_os_error(rc)));
    }
    Ok(())
}

/// What a load run did.
struct Outcome {
    msgs: u64,
    elapsed: Duration,
    cpu: Duration,
}

/// Where a message differs from what was sent, as an error.
fn mismatch(conn: usize, seq: u64, back: &[u8], sent: &[u8]) -> String {
    let at = back.iter().zip(sent).position(|(a, b)| a != b).unwrap_or(0);
    format!(
        "connection {conn}: message {seq} differs at byte {at}: sent {}, got {}",
        sent[at], back[at]
    )
}

// --- the epoll client ------------------------------------------------------

/// One connection of the epoll client.
struct Conn {
    stream: std::net::TcpStream,
    /// The sequence number of the message in flight.
    seq: u64,
    /// Bytes of it written so far.
    sent: usize,
    /// Bytes of it read back so far (into `back`).
    got: usize,
    back: Vec<u8>,
    /// Whether `EPOLLOUT` is registered (only while a write is partial).
    want_write: bool,
    /// Whether it stopped after its last message.
    finished: bool,
}

/// An epoll instance, closed on drop.
struct Epoll(RawFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; the returned fd is owned by the `Epoll`.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    /// Registers (`libc::EPOLL_CTL_ADD`) or changes (`EPOLL_CTL_MOD`) `fd`,
    /// level-triggered, with `token` as its data.
    fn ctl(&self, op: libc::c_int, fd: RawFd, write: bool, token: usize) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | if write { libc::EPOLLOUT } else { 0 }) as u32,
            u64: token as u64,
        };
        // SAFETY: `self.0` is an epoll fd, `fd` an open socket, and `event`
        // a valid epoll_event for the call.
        if unsafe { libc::epoll_ctl(self.0, op, fd, &mut event) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` for events; returns how many were stored.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        loop {
            // SAFETY: `events` is a writable buffer of `events.len()` entries.
            let n = unsafe {
                libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms)
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: `self.0` is an fd this value owns and closes once.
        unsafe { libc::close(self.0) };
    }
}

/// The epoll client's run: every connection ping-pongs until `deadline`.
fn run_epoll(args: &Args) -> Result<Outcome, String> {
    let size = args.size;
    // Every message is `ramp[b..b + size]` with `b = pattern(conn, seq, 0)`,
    // since `pattern(conn, seq, i) = (b + i) mod 256 = ramp[b + i]`.
    let ramp: Vec<u8> = (0..256 + size).map(|j| j as u8).collect();
    let message = |conn: usize, seq: u64| {
        let b = pattern(conn, seq, 0) as usize;
        &ramp[b..b + size]
    };
    let usr1 = if args.wait_usr1 {
        Some(block_usr1()?)
    } else {
        None
    };
    let epoll = Epoll::new().map_err(|e| format!("epoll_create1: {e}"))?;
    let mut conns = Vec::with_capacity(args.conns);
    for conn in 0..args.conns {
        let stream = std::net::TcpStream::connect(args.addr)
            .map_err(|e| format!("connect to {}: {e}", args.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        epoll
            .ctl(libc::EPOLL_CTL_ADD, stream.as_raw_fd(), false, conn)
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        conns.push(Conn {
            stream,
            seq: 0,
            sent: 0,
            got: 0,
            back: vec![0; size],
            want_write: false,
            finished: false,
        });
    }

    // Writes what is left of connection `i`'s message; registers for
    // writability while the socket buffer is full.
    let send = |i: usize, c: &mut Conn| -> Result<(), String> {
        let msg = message(i, c.seq);
        while c.sent < size {
            match c.stream.write(&msg[c.sent..]) {
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("connection {i}: write: {e}")),
            }
        }
        let want_write = c.sent < size;
        if want_write != c.want_write {
            epoll
                .ctl(libc::EPOLL_CTL_MOD, c.stream.as_raw_fd(), want_write, i)
                .map_err(|e| format!("epoll_ctl: {e}"))?;
            c.want_write = want_write;
        }
        Ok(())
    };

    if let Some(set) = &usr1 {
        wait_usr1(set, &format!("connected {}", conns.len()))?;
    }
    let cpu0 = cpu_time();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.secs);
    for (i, c) in conns.iter_mut().enumerate() {
        send(i, c)?;
    }
    let mut msgs = 0u64;
    let mut active = conns.len();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len()];
    while active > 0 {
        // A round trip takes microseconds; 10 s without any event is a
        // hang (a busy shared machine can stall the server for a second).
        let n = epoll
            .wait(&mut events, 10_000)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        if n == 0 {
            return Err(format!("no reply for 10 s on {active} connections"));
        }
        let go_on = Instant::now() < deadline;
        for event in &events[..n] {
            let i = event.u64 as usize;
            let c = &mut conns[i];
            if c.finished {
                continue;
            }
            if c.want_write {
                send(i, c)?;
            }
            if event.events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                continue;
            }
            let got = match c.stream.read(&mut c.back[c.got..]) {
                Ok(0) => {
                    return Err(format!(
                        "connection {i}: closed after {} of {size} bytes",
                        c.got
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("connection {i}: read: {e}")),
            };
            c.got += got;
            if c.got < size {
                quick_ack(c.stream.as_raw_fd());
                continue;
            }
            let sent = message(i, c.seq);
            if c.back != sent {
                return Err(mismatch(i, c.seq, &c.back, sent));
            }
            msgs += 1;
            c.seq += 1;
            c.sent = 0;
            c.got = 0;
            if go_on {
                send(i, c)?;
            } else {
                c.finished = true;
                active -= 1;
            }
        }
    }
    let outcome = Outcome {
        msgs,
        elapsed: start.elapsed(),
        cpu: cpu_time().saturating_sub(cpu0),
    };
    if let Some(set) = &usr1 {
        // The connections stay open until the second signal.
        wait_usr1(set, &summary(args, &outcome))?;
    }
    Ok(outcome)
}

// --- the tokio client ------------------------------------------------------

/// One connection's ping-pong until `deadline`; counts each verified
/// round trip in `done`.
async fn ping_pong(
    addr: SocketAddr,
    conn: usize,
    size: usize,
    deadline: Instant,
    done: Rc<Cell<u64>>,
) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut out = vec![0; size];
    let mut back = vec![0; size];
    let mut seq = 0u64;
    while Instant::now() < deadline {
        for (i, b) in out.iter_mut().enumerate() {
            *b = pattern(conn, seq, i);
        }
        stream
            .write_all(&out)
            .await
            .map_err(|e| format!("connection {conn}: write: {e}"))?;
        let mut got = 0;
        while got < size {
            let n = stream
                .read(&mut back[got..])
                .await
                .map_err(|e| format!("connection {conn}: read: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "connection {conn}: closed after {got} of {size} bytes"
                ));
            }
            got += n;
            if got < size {
                quick_ack(stream.as_raw_fd());
            }
        }
        if back != out {
            return Err(mismatch(conn, seq, &back, &out));
        }
        seq += 1;
        done.set(done.get() + 1);
    }
    Ok(())
}

/// The tokio client's run.
fn run_tokio(args: &Args) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let done = Rc::new(Cell::new(0u64));
    let cpu0 = cpu_time();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.secs);
    local.block_on(&rt, async {
        let tasks: Vec<_> = (0..args.conns)
            .map(|conn| {
                tokio::task::spawn_local(ping_pong(
                    args.addr,
                    conn,
                    args.size,
                    deadline,
                    done.clone(),
                ))
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    })?;
    Ok(Outcome {
        msgs: done.get(),
        elapsed: start.elapsed(),
        cpu: cpu_time().saturating_sub(cpu0),
    })
}

/// The summary line of a run.
fn summary(args: &Args, outcome: &Outcome) -> String {
    let Outcome { msgs, elapsed, cpu } = outcome;
    let secs = elapsed.as_secs_f64();
    format!(
        "msgs {msgs} secs {secs:.3} msgs/s {:.1} bytes/s {:.1} cpu_secs {:.3}",
        *msgs as f64 / secs,
        (msgs * args.size as u64) as f64 / secs,
        cpu.as_secs_f64()
    )
}

/// The timed ping-pong run; prints the summary line.
fn run_load(args: &Args) -> Result<(), String> {
    let outcome = match args.client {
        Client::Epoll => run_epoll(args)?,
        Client::Tokio => run_tokio(args)?,
    };
    // With --wait-usr1, run_epoll printed it before its second wait.
    if !args.wait_usr1 {
        println!("{}", summary(args, &outcome));
    }
    Ok(())
}

/// Opens `n` idle connections, from `sources` loopback addresses in turn,
/// and holds them until the process is killed.
fn hold_idle(addr: SocketAddr, n: usize, sources: u8) -> Result<(), String> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let stream = if sources == 1 {
            std::net::TcpStream::connect(addr)
                .map_err(|e| format!("idle connection {i} to {addr}: {e}"))?
        } else {
            let from = std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(sources)) as u8);
            connect_from(from, addr)
                .map_err(|e| format!("idle connection {i} from {from} to {addr}: {e}"))?
        };
        conns.push(stream);
    }
    println!("connected {n}");
    // stdout is a file or pipe when run.sh reads it: flush the line now.
    io::stdout().flush().map_err(|e| e.to_string())?;
    loop {
        std::thread::park();
    }
}

/// A blocking TCP connection to `to` from address `from` (any port).
fn connect_from(from: std::net::Ipv4Addr, to: SocketAddr) -> io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = to else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only"));
    };
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else; the
    // stream closes it on every path from here.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    // The port is picked at connect, by the whole address pair (a port
    // picked at bind would have to be free for every destination).
    let on: libc::c_int = 1;
    // SAFETY: the value points to a live c_int of the size given.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    let local = sockaddr(from, 0);
    // SAFETY: `local` is a valid sockaddr_in of `len` bytes, alive for the call.
    if unsafe { libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let remote = sockaddr(*to.ip(), to.port());
    // SAFETY: as above.
    if unsafe { libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stream)
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| match args.idle {
        Some(n) => hold_idle(args.addr, n, args.sources),
        None => run_load(&args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_load: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The echo load client: N connections ping-pong S-byte messages with an
//! echo server for D seconds, checking every byte, and print messages per
//! second.
//!
//! Each connection writes a message, reads until the whole message has come
//! back, compares it with what it sent, and starts the next; a message's
//! bytes depend on its connection and sequence number, so a server that
//! mixes up connections, drops, reorders or repeats bytes fails the run
//! (exit status 1) instead of reporting a figure. The client is one tokio
//! `current_thread` runtime (one task per connection), so pinned to one CPU
//! (`taskset -c 1`) it leaves the other CPU to the server.
//!
//! With `--idle N` it instead opens N connections, sends nothing, prints
//! `connected N` once they are all established and holds them until it is
//! killed: `run.sh` measures the server's memory meanwhile.
//!
//! ```text
//! echo_load ADDR [--conns 64] [--size 64] [--secs 5]
//! echo_load ADDR --idle 10000
//! ```
//!
//! Output (one line, `key value` pairs, for `run.sh`):
//! `msgs 1234567 secs 5.000 msgs/s 246913.4 bytes/s 15802457.6`.

use std::cell::Cell;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The command line.
struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: f64,
    idle: Option<usize>,
}

fn usage() -> String {
    "usage: echo_load ADDR [--conns N] [--size BYTES] [--secs S] | echo_load ADDR --idle N".into()
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
    };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(usage)?;
        let bad = |e: &dyn std::fmt::Display| format!("bad {flag} {value}: {e}");
        match flag.as_str() {
            "--conns" => args.conns = value.parse().map_err(|e| bad(&e))?,
            "--size" => args.size = value.parse().map_err(|e| bad(&e))?,
            "--secs" => args.secs = value.parse().map_err(|e| bad(&e))?,
            "--idle" => args.idle = Some(value.parse().map_err(|e| bad(&e))?),
            _ => return Err(usage()),
        }
    }
    if args.conns == 0 || args.size == 0 {
        return Err("--conns and --size must be at least 1".into());
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
fn quick_ack(stream: &TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: the fd is a valid socket owned by `stream` for the call, and
    // the option value is a c_int that outlives it, with its size passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One connection's ping-pong until `deadline`; counts each verified
/// round trip in `done`.
async fn ping_pong(
    addr: SocketAddr,
    conn: usize,
    size: usize,
    deadline: Instant,
    done: Rc<Cell<u64>>,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
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
                quick_ack(&stream);
            }
        }
        if back != out {
            let at = back.iter().zip(&out).position(|(a, b)| a != b).unwrap();
            return Err(format!(
                "connection {conn}: message {seq} differs at byte {at}: sent {}, got {}",
                out[at], back[at]
            ));
        }
        seq += 1;
        done.set(done.get() + 1);
    }
    Ok(())
}

/// The timed ping-pong run; prints the summary line.
fn run_load(args: &Args) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let done = Rc::new(Cell::new(0u64));
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
    let secs = start.elapsed().as_secs_f64();
    let msgs = done.get();
    println!(
        "msgs {msgs} secs {secs:.3} msgs/s {:.1} bytes/s {:.1}",
        msgs as f64 / secs,
        (msgs * args.size as u64) as f64 / secs
    );
    Ok(())
}

/// Opens `n` idle connections and holds them until the process is killed.
fn hold_idle(addr: SocketAddr, n: usize) -> Result<(), String> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let stream = std::net::TcpStream::connect(addr)
            .map_err(|e| format!("idle connection {i} to {addr}: {e}"))?;
        conns.push(stream);
    }
    println!("connected {n}");
    // stdout is a file or pipe when run.sh reads it: flush the line now.
    io::stdout().flush().map_err(|e| e.to_string())?;
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| match args.idle {
        Some(n) => hold_idle(args.addr, n),
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

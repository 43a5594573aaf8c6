//! A task dump on `SIGUSR1`: an echo server whose tasks have names, and a
//! task that, on each `SIGUSR1`, prints every live task of the executor
//! (id, name, where it was spawned, state, polls, time since its last
//! poll, and the fds and timers it waits on), then `end of dump`.
//!
//! ```text
//! cargo run --example task_dump                # listens on 127.0.0.1:7000
//! nc 127.0.0.1 7000 &                          # a connection to see
//! kill -USR1 $(pgrep -f 'examples/task_dump')  # the dump, on stdout
//! ```
//!
//! A dump looks like:
//!
//! ```text
//! task 1.1 "accept" (examples/task_dump.rs:62:14): idle, 2 polls, last 3.1s ago; waiting: read fd 5
//! task 1.2 "dump on SIGUSR1" (examples/task_dump.rs:73:14): running, 2 polls, last 0.0ns ago; waiting: read fd 7
//! task 1.3 "conn 127.0.0.1:51234" (examples/task_dump.rs:51:18): idle, 1 polls, last 3.1s ago; waiting: read fd 8
//! end of dump
//! ```

use std::io::{self, Write};
use std::time::Duration;

use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};
use tarn::signal::{Signal, Signals};
use tarn::task::Builder;

/// Copies what `conn` reads back to it until the client closes.
async fn echo(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await?;
    }
}

async fn accept(listener: TcpListener) -> io::Result<()> {
    loop {
        let (conn, peer) = listener.accept().await?;
        Builder::new()
            .name(format!("conn {peer}"))
            .spawn(async move {
                if let Err(e) = echo(conn).await {
                    eprintln!("task_dump: {peer}: {e}");
                }
            })
            .detach();
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    tarn::block_on(async {
        // Listening for SIGUSR1 before saying so: until then its default
        // action would end the process.
        let mut signals = Signals::new([Signal::USR1])?;
        let listener = TcpListener::bind(&addr).await?;
        println!(
            "task_dump: listening on {} (pid {}); send SIGUSR1 for a task dump",
            listener.local_addr()?,
            std::process::id()
        );
        let acceptor = Builder::new().name("accept").spawn(accept(listener));
        // A timer task, so that the dump shows one waiting on a deadline.
        Builder::new()
            .name("housekeeping")
            .spawn(async {
                loop {
                    tarn::Timer::after(Duration::from_secs(3600)).await;
                }
            })
            .detach();
        Builder::new()
            .name("dump on SIGUSR1")
            .spawn(async move {
                loop {
                    signals.recv().await;
                    let mut out = io::stdout().lock();
                    for task in tarn::task::tasks() {
                        let _ = writeln!(out, "{task}");
                    }
                    let _ = writeln!(out, "end of dump");
                    let _ = out.flush();
                }
            })
            .detach();
        acceptor
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
    })
}

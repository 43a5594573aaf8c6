//! A TCP echo server: every byte a client sends comes back to it.
//!
//! One task per connection, each with a 4 KiB buffer, all in a
//! `TaskGroup`. On `SIGINT` (Ctrl-C) or `SIGTERM` it stops accepting,
//! gives the open connections two seconds to end (a client that closes is
//! done), aborts the rest, says how many of each, and exits; a second
//! signal meanwhile ends it at once (the default action is back once the
//! listener is gone).
//!
//! ```text
//! cargo run --example echo                  # listens on 127.0.0.1:7000
//! cargo run --example echo 0.0.0.0:9000     # or on the address given
//! cargo run --example client                # then type lines (or use nc)
//! ```

use std::io;
use std::pin::pin;
use std::time::Duration;

use tarn::future::{select, Either};
use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};
use tarn::signal::{Signal, Signals};
use tarn::task::TaskGroup;

/// How long open connections may take to end once asked to stop.
const GRACE: Duration = Duration::from_secs(2);

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

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    tarn::block_on(async {
        // Before saying it listens: whoever counts its fds from then on
        // sees the signal pipe among them.
        let mut stop = Signals::new([Signal::INT, Signal::TERM])?;
        let listener = TcpListener::bind(&addr).await?;
        println!("echo: listening on {}", listener.local_addr()?);
        let connections = TaskGroup::new();
        let accepting = async {
            loop {
                let (conn, peer) = listener.accept().await?;
                // The connections that have ended leave the group.
                while connections.try_join_next().is_some() {}
                connections.spawn(async move {
                    if let Err(e) = echo(conn).await {
                        eprintln!("echo: {peer}: {e}");
                    }
                });
            }
        };
        match select(pin!(accepting), pin!(stop.recv())).await {
            Either::Left((accept_error, _)) => return accept_error,
            Either::Right((signal, _)) => {
                println!(
                    "echo: {signal}: stopping, {} connections open",
                    connections.len()
                )
            }
        }
        drop(stop);
        let stopped = connections.shutdown(GRACE).await;
        println!(
            "echo: stopped: {} connections ended, {} aborted after {GRACE:?}",
            stopped.finished, stopped.aborted
        );
        Ok(())
    })
}

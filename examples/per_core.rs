//! Thread-per-core: one tarn executor per core, each with its own
//! `SO_REUSEPORT` listener on the same address, serving echo. The kernel
//! spreads incoming connections across the listeners; no task ever moves
//! between threads.
//!
//! ```text
//! cargo run --release --example per_core               # listens on 127.0.0.1:7002
//! cargo run --release --example per_core 127.0.0.1:7002 2   # two executors
//! cargo run --example client 127.0.0.1:7002            # or nc 127.0.0.1 7002
//! ```
//!
//! `reuseport_listeners` makes the listeners here (the first fixes the
//! port, with port 0 too); `PerCore` starts the threads, hands each its
//! listener, which it adopts on its own thread, and runs its accept loop
//! there, on a reactor of its own (so a connection's events are handled by
//! the thread that serves it, with no lock or wakeup shared with the
//! others). The second argument sets how many executors (one per core by
//! default); `TARN_PIN=1` pins executor `i` to the `i`-th allowed CPU.

use std::io;
use std::net::SocketAddr;

use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{reuseport_listeners, TcpListener, TcpStream};
use tarn::PerCore;

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

async fn serve(core: usize, listener: std::net::TcpListener) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    loop {
        let (conn, peer) = listener.accept().await?;
        tarn::spawn(async move {
            if let Err(e) = echo(conn).await {
                eprintln!("per_core: executor {core}: {peer}: {e}");
            }
        })
        .detach();
    }
}

fn main() -> io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:7002")
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let cores = match std::env::args().nth(2) {
        Some(n) => n
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("threads: {e}")))?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let listeners = reuseport_listeners(addr, cores)?;
    let addr = listeners[0].local_addr()?;
    println!("per_core: listening on {addr} with {cores} executors");

    let pin = std::env::var_os("TARN_PIN").is_some_and(|v| v == "1");
    let executors = PerCore::new().pin(pin).spawn_with(listeners, serve)?;
    for result in executors.join() {
        result.expect("an executor thread panicked")?;
    }
    Ok(())
}

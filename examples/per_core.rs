//! Thread-per-core: one tarn executor per core, each with its own
//! `SO_REUSEPORT` listener on the same address, serving echo. The kernel
//! spreads incoming connections across the listeners; no task ever moves
//! between threads.
//!
//! ```text
//! cargo run --release --example per_core               # listens on 127.0.0.1:7002
//! cargo run --example client 127.0.0.1:7002            # or nc 127.0.0.1 7002
//! ```

use std::io;
use std::net::SocketAddr;
use std::thread;

use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpSocket, TcpStream, DEFAULT_BACKLOG};

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

/// A listener on `addr` that shares the port with the others.
fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_for(&addr)?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(DEFAULT_BACKLOG)
}

async fn serve(core: usize, listener: TcpListener) -> io::Result<()> {
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
    let cores = thread::available_parallelism().map_or(1, |n| n.get());

    // The first bind fixes the port (port 0 picks one); the rest share it.
    let first = reuseport_listener(addr)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..cores {
        listeners.push(reuseport_listener(addr)?);
    }
    println!("per_core: listening on {addr} with {cores} executors");

    let executors: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(core, listener)| {
            thread::Builder::new()
                .name(format!("executor-{core}"))
                .spawn(move || tarn::block_on(serve(core, listener)))
        })
        .collect::<io::Result<_>>()?;
    for executor in executors {
        executor.join().expect("an executor thread panicked")?;
    }
    Ok(())
}

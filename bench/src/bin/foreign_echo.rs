//! tarn's `examples/echo.rs` with tarn's sockets under a foreign executor:
//! a tokio `current_thread` runtime runs the accept loop and one task per
//! connection, while every socket is a `tarn::net` one. No tarn executor
//! runs, so tarn's reactor is driven by its fallback thread `tarn-reactor`:
//! the process has two busy threads (tokio's and the fallback's), and
//! `run.sh` pins the whole process to CPU 0 like every other server.
//! Listens on argv[1] (default 127.0.0.1:7000).
//!
//! tokio's runtime is built with neither its I/O driver nor its timer: the
//! server awaits nothing of tokio's, so tokio's thread sleeps on a condition
//! variable while tarn's fallback thread waits in `epoll_wait` and wakes it.

use std::io;

use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};

#[path = "../peer.rs"]
mod peer;

/// Copies what `conn` reads back to it until the client closes.
async fn echo(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0; peer::BUF_SIZE];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await?;
    }
}

fn main() -> io::Result<()> {
    let addr = peer::listen_addr("127.0.0.1:7000");
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("foreign_echo: listening on {}", listener.local_addr()?);
        loop {
            let (conn, peer) = listener.accept().await?;
            tokio::spawn(async move {
                if let Err(e) = echo(conn).await {
                    eprintln!("foreign_echo: {peer}: {e}");
                }
            });
        }
    })
}

//! tarn's sockets and timers under other executors: a tarn echo server and
//! tarn clients running on tokio's multi-thread runtime, then more clients
//! on `futures::executor::ThreadPool`.
//!
//! No tarn executor runs here, so tarn's reactor is driven by its fallback
//! thread (`tarn-reactor`), which starts by itself the first time a tarn
//! future waits. The program prints what it did and exits.
//!
//! ```text
//! cargo run --example foreign_executor                 # server on a free port
//! cargo run --example foreign_executor 127.0.0.1:7003  # or on this address
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::executor::ThreadPool;
use futures::future::try_join_all;
use futures::task::SpawnExt;
use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};

const CLIENTS: usize = 8;
const ROUND_TRIPS: usize = 100;

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

/// Connects to `addr` and checks `ROUND_TRIPS` echoes, each under a tarn timeout.
async fn round_trips(addr: SocketAddr, client: usize) -> io::Result<()> {
    let mut conn = TcpStream::connect(addr).await?;
    let mut reply = [0; 64];
    for i in 0..ROUND_TRIPS {
        let msg = format!("client {client} message {i}");
        conn.write_all(msg.as_bytes()).await?;
        let reply = &mut reply[..msg.len()];
        tarn::timeout(Duration::from_secs(5), conn.read_exact(reply)).await??;
        assert_eq!(reply, msg.as_bytes());
    }
    Ok(())
}

/// Whether a thread named `tarn-reactor` runs in this process (Linux).
fn fallback_thread_running() -> bool {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .any(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "tarn-reactor")
        })
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;

    // The server: a tarn listener, its accept loop and connections on tokio.
    let listener = tokio.block_on(TcpListener::bind(&addr))?;
    let addr = listener.local_addr()?;
    println!("foreign_executor: tarn echo server on {addr}, running on tokio");
    tokio.spawn(async move {
        while let Ok((conn, peer)) = listener.accept().await {
            tokio::spawn(async move {
                if let Err(e) = echo(conn).await {
                    eprintln!("foreign_executor: {peer}: {e}");
                }
            });
        }
    });

    // Clients as tokio tasks.
    tokio.block_on(async {
        let clients = (0..CLIENTS).map(|i| tokio::spawn(round_trips(addr, i)));
        for client in clients {
            client.await.map_err(io::Error::other)??;
        }
        io::Result::Ok(())
    })?;
    println!("tokio: {CLIENTS} tarn clients made {ROUND_TRIPS} round trips each");

    // Clients on a futures ThreadPool, against the same server.
    let pool = ThreadPool::builder().pool_size(2).create()?;
    let clients = (0..CLIENTS)
        .map(|i| pool.spawn_with_handle(round_trips(addr, i)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    futures::executor::block_on(try_join_all(clients))?;
    println!("futures ThreadPool: {CLIENTS} tarn clients made {ROUND_TRIPS} round trips each");

    if fallback_thread_running() {
        println!("tarn's reactor was driven by its fallback thread `tarn-reactor`");
    }
    Ok(())
}

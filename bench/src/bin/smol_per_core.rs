//! tarn's `examples/per_core.rs` on smol: a `LocalExecutor` per thread
//! under `smol::block_on`, each with its own `SO_REUSEPORT` listener on the
//! same address (made by the same helper as tarn's), over smol's one
//! reactor for the process (async-io's), a task per connection with a
//! 4 KiB buffer. Listens on argv[1] (default 127.0.0.1:7002) with argv[2]
//! threads (default: one per core).

use std::io;
use std::net::SocketAddr;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

#[path = "../peer.rs"]
mod peer;

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

async fn serve(
    ex: &smol::LocalExecutor<'_>,
    core: usize,
    listener: std::net::TcpListener,
) -> io::Result<()> {
    let listener = TcpListener::try_from(listener)?;
    loop {
        let (conn, peer) = listener.accept().await?;
        ex.spawn(async move {
            if let Err(e) = echo(conn).await {
                eprintln!("smol_per_core: executor {core}: {peer}: {e}");
            }
        })
        .detach();
    }
}

fn main() -> io::Result<()> {
    let addr: SocketAddr = peer::listen_addr("127.0.0.1:7002")
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let cores = peer::threads()?;
    let listeners = tarn::net::reuseport_listeners(addr, cores)?;
    let addr = listeners[0].local_addr()?;
    println!("smol_per_core: listening on {addr} with {cores} executors");

    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(core, listener)| {
            std::thread::spawn(move || {
                let ex = smol::LocalExecutor::new();
                smol::block_on(ex.run(serve(&ex, core, listener)))
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("an executor thread panicked")?;
    }
    Ok(())
}

//! tarn's `examples/per_core.rs` on tokio: one `current_thread` runtime
//! per thread, each with its own `SO_REUSEPORT` listener on the same
//! address (made by the same helper as tarn's), a task per connection
//! with a 4 KiB buffer. Listens on argv[1] (default 127.0.0.1:7002) with
//! argv[2] threads (default: one per core).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

async fn serve(core: usize, listener: std::net::TcpListener) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    loop {
        let (conn, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = echo(conn).await {
                eprintln!("tokio_per_core: executor {core}: {peer}: {e}");
            }
        });
    }
}

fn main() -> io::Result<()> {
    let addr: SocketAddr = peer::listen_addr("127.0.0.1:7002")
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let cores = peer::threads()?;
    let listeners = tarn::net::reuseport_listeners(addr, cores)?;
    let addr = listeners[0].local_addr()?;
    println!("tokio_per_core: listening on {addr} with {cores} executors");

    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(core, listener)| {
            std::thread::spawn(move || {
                listener.set_nonblocking(true)?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()?;
                rt.block_on(serve(core, listener))
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("an executor thread panicked")?;
    }
    Ok(())
}

//! tarn's `examples/echo.rs` on tokio: a `current_thread` runtime, one task
//! per connection, each with a 4 KiB buffer. Listens on argv[1] (default
//! 127.0.0.1:7000).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::from_std(peer::std_listener(&addr)?)?;
        println!("tokio_echo: listening on {}", listener.local_addr()?);
        loop {
            let (conn, peer) = listener.accept().await?;
            tokio::spawn(async move {
                if let Err(e) = echo(conn).await {
                    eprintln!("tokio_echo: {peer}: {e}");
                }
            });
        }
    })
}

//! tarn's `examples/echo.rs` on smol: a `LocalExecutor` under
//! `smol::block_on`, one task per connection, each with a 4 KiB buffer.
//! Listens on argv[1] (default 127.0.0.1:7000).

use std::io;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

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
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let listener = TcpListener::try_from(peer::std_listener(&addr)?)?;
        println!("smol_echo: listening on {}", listener.local_addr()?);
        loop {
            let (conn, peer) = listener.accept().await?;
            ex.spawn(async move {
                if let Err(e) = echo(conn).await {
                    eprintln!("smol_echo: {peer}: {e}");
                }
            })
            .detach();
        }
    }))
}

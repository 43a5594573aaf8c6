//! A TCP echo server: every byte a client sends comes back to it.
//!
//! One task per connection, each with a 4 KiB buffer.
//!
//! ```text
//! cargo run --example echo                  # listens on 127.0.0.1:7000
//! cargo run --example echo 0.0.0.0:9000     # or on the address given
//! cargo run --example client                # then type lines (or use nc)
//! ```

use std::io;

use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};

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
        let listener = TcpListener::bind(&addr).await?;
        println!("echo: listening on {}", listener.local_addr()?);
        loop {
            let (conn, peer) = listener.accept().await?;
            tarn::spawn(async move {
                if let Err(e) = echo(conn).await {
                    eprintln!("echo: {peer}: {e}");
                }
            })
            .detach();
        }
    })
}

//! tarn's `examples/http_hello.rs` on tokio: a `current_thread` runtime,
//! one task per connection, the same parsing, buffer, backlog and
//! `TCP_NODELAY` (see `peer.rs`). Listens on argv[1] (default
//! 127.0.0.1:8080).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "../peer.rs"]
mod peer;
use peer::{Conn, TOO_LARGE};

async fn serve(mut conn: TcpStream) -> io::Result<()> {
    let mut c = Conn::new();
    loop {
        let Some(spare) = c.spare() else {
            return conn.write_all(TOO_LARGE).await;
        };
        let n = conn.read(spare).await?;
        if n == 0 {
            return Ok(());
        }
        let (close, start) = c.answer(n);
        if !c.out.is_empty() {
            conn.write_all(&c.out).await?;
            c.out.clear();
        }
        if close {
            return Ok(());
        }
        c.keep_rest(start);
    }
}

fn main() -> io::Result<()> {
    let addr = peer::listen_addr("127.0.0.1:8080");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::from_std(peer::std_listener(&addr)?)?;
        println!("tokio_http: listening on {}", listener.local_addr()?);
        loop {
            // Accepted streams inherit the listener's TCP_NODELAY.
            let (conn, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = serve(conn).await;
            });
        }
    })
}

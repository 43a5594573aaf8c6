//! A Unix-domain stream echo server: every byte a client sends comes back.
//!
//! The socket file is created at the path given (a socket file left behind
//! by an earlier run is removed first).
//!
//! ```text
//! cargo run --example unix_echo                  # listens on /tmp/tarn-echo.sock
//! nc -U /tmp/tarn-echo.sock                      # or socat - UNIX-CONNECT:/tmp/tarn-echo.sock
//! ```

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{UnixListener, UnixStream};

async fn echo(mut conn: UnixStream) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await?;
    }
}

/// Removes `path` if it is a socket file (never anything else).
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn main() -> io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/tarn-echo.sock".into());
    remove_stale_socket(path.as_ref())?;
    tarn::block_on(async {
        let listener = UnixListener::bind(&path)?;
        println!("unix_echo: listening on {path}");
        loop {
            let (conn, _) = listener.accept().await?;
            tarn::spawn(async move {
                if let Err(e) = echo(conn).await {
                    eprintln!("unix_echo: {e}");
                }
            })
            .detach();
        }
    })
}

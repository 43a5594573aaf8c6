//! tokio-only code inside `tarn::block_on`, and tarn's sockets where tokio's
//! I/O traits are required, through async-compat.
//!
//! ```text
//! cargo run --example tokio_interop
//! ```
//!
//! What it costs: async-compat runs a tokio runtime for the futures it
//! wraps (tokio's timers and its I/O driver live there), on one extra
//! thread it starts the first time a wrapped future is polled (named
//! `async-compat/tokio-*`) and keeps for the rest of the process. tarn's
//! own sockets stay on tarn's reactor: wrapping a tarn `TcpStream` for
//! tokio's traits adds no thread and no syscall, only a trait adapter.
//! This program prints the process's threads before and after to show it.

use std::io;
use std::time::{Duration, Instant};

use async_compat::Compat;
use tarn::net::{TcpListener, TcpStream};
use tarn::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt as _};

/// A "tokio-only library": it takes tokio's I/O traits and uses tokio's
/// timer, so it runs only inside a tokio runtime.
async fn tokio_library_hello<S>(stream: S) -> io::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stream = tokio::io::BufReader::new(stream);
    tokio::time::sleep(Duration::from_millis(20)).await;
    stream
        .get_mut()
        .write_all(b"hello from tokio code\n")
        .await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    Ok(line)
}

fn threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn main() -> io::Result<()> {
    println!("threads before: {:?}", threads());
    tarn::block_on(async {
        // A tarn echo server, on tarn's reactor.
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tarn::spawn(async move {
            let (mut conn, _) = listener.accept().await?;
            let mut buf = [0; 64];
            let n = conn.read(&mut buf).await?;
            conn.write_all(&buf[..n]).await?;
            io::Result::Ok(())
        })
        .detach();

        // A tarn TcpStream, seen through tokio's AsyncRead/AsyncWrite, given
        // to tokio-only code; Compat also gives that code a tokio runtime
        // for its timer.
        let stream = TcpStream::connect(addr).await?;
        let start = Instant::now();
        let echoed = Compat::new(tokio_library_hello(Compat::new(stream))).await?;
        print!("echoed through tarn's socket: {echoed}");
        println!("tokio's 20 ms sleep took {:?}", start.elapsed());
        io::Result::Ok(())
    })?;
    println!("threads after:  {:?}", threads());
    Ok(())
}

//! A line client for the echo server: sends each line of stdin, prints the
//! reply, and gives up with an error if a reply takes more than 5 seconds.
//!
//! Stdin is read on tarn's blocking pool ([`tarn::unblock`]), so the
//! terminal is left in blocking mode and the executor never blocks.
//!
//! ```text
//! cargo run --example echo                          # in one terminal
//! cargo run --example client                        # connects to 127.0.0.1:7000
//! printf 'one\ntwo\n' | cargo run --example client 127.0.0.1:7000
//! ```

use std::io::{self, BufRead};
use std::process::ExitCode;
use std::time::Duration;

use tarn::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tarn::net::TcpStream;

const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The next line of stdin, with its newline; `None` at end of input.
async fn next_line() -> io::Result<Option<String>> {
    tarn::unblock(|| {
        let mut line = String::new();
        let n = io::stdin().lock().read_line(&mut line)?;
        if n > 0 && !line.ends_with('\n') {
            line.push('\n');
        }
        Ok((n > 0).then_some(line))
    })
    .await
}

async fn run(addr: &str) -> io::Result<()> {
    let conn = TcpStream::connect(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
    let mut replies = BufReader::new(&conn);
    let mut reply = String::new();
    while let Some(line) = next_line().await? {
        (&conn).write_all(line.as_bytes()).await?;
        reply.clear();
        let n = tarn::timeout(REPLY_TIMEOUT, replies.read_line(&mut reply))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply from {addr} within {REPLY_TIMEOUT:?}"),
                )
            })??;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{addr} closed the connection"),
            ));
        }
        print!("{reply}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    match tarn::block_on(run(&addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::FAILURE
        }
    }
}

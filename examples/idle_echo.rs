//! A TCP echo server whose idle connections hold no buffer.
//!
//! `echo` gives every connection task a 4 KiB buffer for its whole life,
//! so 100,000 idle connections cost 400 MiB of buffers alone. Here a task
//! waits for readability with no buffer, borrows one from a per-thread
//! pool only to read and write back what is there, and returns it before
//! it waits again: an idle connection costs its task (a few hundred bytes)
//! and its reactor source (128 bytes). Buffers in use are bounded by the
//! connections with data in hand at once, not by the connections open.
//!
//! ```text
//! cargo run --release --example idle_echo 127.0.0.1:7003
//! ```
//!
//! Holding 100,000 connections needs `ulimit -n` above 200,000 (one fd in
//! the server and one in the client per connection) and several client
//! addresses (127.0.0.2, 127.0.0.3, ...): one address pair has about
//! 28,000 ephemeral ports.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use tarn::io::{AsyncRead, AsyncWriteExt};
use tarn::net::{TcpListener, TcpStream};

/// The size of a pooled buffer.
const BUFFER: usize = 16 * 1024;
/// Buffers kept for reuse; more in use at once are allocated and freed.
const POOLED: usize = 64;

thread_local! {
    /// Free buffers of this executor thread.
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer borrowed from the pool, given back on drop.
struct Borrowed(Option<Box<[u8]>>);

impl Borrowed {
    fn take() -> Borrowed {
        let buf = POOL.with(|pool| pool.borrow_mut().pop());
        Borrowed(Some(
            buf.unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice()),
        ))
    }

    fn get(&mut self) -> &mut [u8] {
        self.0.as_mut().expect("held until dropped")
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        let buf = self.0.take();
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOLED {
                pool.extend(buf);
            }
        });
    }
}

/// Reads what is there now: `None` if nothing is (the socket then waits
/// for the next event, with this task's waker).
async fn read_now(conn: &TcpStream, buf: &mut [u8]) -> Option<io::Result<usize>> {
    poll_fn(|cx| match Pin::new(&mut &*conn).poll_read(cx, buf) {
        Poll::Pending => Poll::Ready(None),
        Poll::Ready(read) => Poll::Ready(Some(read)),
    })
    .await
}

/// Echoes until the client closes, holding a buffer only while there is
/// data in hand.
async fn echo(conn: TcpStream) -> io::Result<()> {
    loop {
        // Idle here: no buffer held.
        conn.readable().await?;
        let mut buf = Borrowed::take();
        let n = match read_now(&conn, buf.get()).await {
            None => continue, // a spurious wakeup; `buf` goes back
            Some(read) => read?,
        };
        if n == 0 {
            return Ok(());
        }
        (&conn).write_all(&buf.get()[..n]).await?;
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7003".into());
    tarn::block_on(async {
        let listener = TcpListener::bind(addr.as_str()).await?;
        println!("idle_echo: listening on {}", listener.local_addr()?);
        loop {
            let (conn, peer) = listener.accept().await?;
            tarn::spawn(async move {
                if let Err(e) = echo(conn).await {
                    eprintln!("idle_echo: {peer}: {e}");
                }
            })
            .detach();
        }
    })
}

//! A line-based chat server: each line a client sends goes to every other
//! client, prefixed with the sender's address; joins and leaves are announced.
//!
//! The executor runs on one thread, so the room is an `Rc<RefCell<..>>` of
//! per-client channels; each client's task forwards its channel to its socket
//! while it reads the lines the client types.
//!
//! ```text
//! cargo run --example chat                  # listens on 127.0.0.1:7001
//! nc 127.0.0.1 7001                         # in two or more terminals
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use tarn::channel::mpsc::{unbounded, UnboundedSender};
use tarn::io::BufReader;
use tarn::net::{TcpListener, TcpStream};
use tarn::prelude::*;

/// Everyone connected, by address: the sending end of each one's outbox.
#[derive(Default)]
struct Room {
    members: RefCell<HashMap<SocketAddr, UnboundedSender<Rc<str>>>>,
}

impl Room {
    /// Sends `line` to everyone but `from`.
    fn broadcast(&self, from: SocketAddr, line: &str) {
        let line: Rc<str> = Rc::from(line);
        for (addr, outbox) in self.members.borrow().iter() {
            if *addr != from {
                // A member whose task has ended is about to leave; skip it.
                let _ = outbox.unbounded_send(Rc::clone(&line));
            }
        }
    }
}

async fn client(conn: TcpStream, peer: SocketAddr, room: Rc<Room>) -> io::Result<()> {
    let (reader, mut writer) = conn.into_split();
    let (outbox, mut inbox) = unbounded();
    let others = room.members.borrow().len();
    outbox
        .unbounded_send(format!("* welcome {peer}; {others} other(s) here\n").into())
        .expect("the inbox is alive");
    room.members.borrow_mut().insert(peer, outbox);
    room.broadcast(peer, &format!("* {peer} joined\n"));

    // What the others say goes out from a task of its own.
    let forward = tarn::spawn(async move {
        while let Some(line) = inbox.next().await {
            if writer.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });

    let mut lines = BufReader::new(reader).lines();
    let result = loop {
        match lines.next().await {
            Some(Ok(line)) => room.broadcast(peer, &format!("{peer}: {}\n", line.trim_end())),
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };

    room.members.borrow_mut().remove(&peer);
    room.broadcast(peer, &format!("* {peer} left\n"));
    forward.abort();
    result
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    tarn::block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("chat: listening on {}", listener.local_addr()?);
        let room = Rc::new(Room::default());
        loop {
            let (conn, peer) = listener.accept().await?;
            let room = Rc::clone(&room);
            tarn::spawn(async move {
                if let Err(e) = client(conn, peer, room).await {
                    eprintln!("chat: {peer}: {e}");
                }
            })
            .detach();
        }
    })
}

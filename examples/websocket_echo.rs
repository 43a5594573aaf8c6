//! A WebSocket echo server on tarn (async-tungstenite over tarn's
//! `TcpStream`): text and binary messages come back as sent, pings are
//! answered with pongs, and a close is answered with a close.
//!
//! ```text
//! cargo run --release --example websocket_echo 127.0.0.1:9001
//! python3 -m websockets ws://127.0.0.1:9001/
//! ```
//!
//! SIGINT or SIGTERM: stop accepting, close each connection with 1001
//! (going away) and wait for the client's close (up to 10 s), exit 0. A
//! client has 10 s to finish its opening handshake.

#[path = "shared/tracked.rs"]
mod tracked;

use std::io;
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::Message;
use futures::SinkExt;
use tarn::future::Either;
use tarn::net::{TcpListener, TcpStream};
use tarn::prelude::*;
use tarn::signal::{Signal, Signals};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    tarn::block_on(async {
        let listener = TcpListener::bind(addr.as_str()).await?;
        let mut signals = Signals::new([Signal::INT, Signal::TERM])?;
        println!("listening on {}", listener.local_addr()?);
        let mut connections = tracked::Tracked::default();
        loop {
            match tarn::future::select(Box::pin(listener.accept()), Box::pin(signals.recv())).await
            {
                Either::Left((Ok((tcp, _)), _)) => connections.spawn(|stop| echo(tcp, stop)),
                Either::Left((Err(e), _)) => eprintln!("accept: {e}"),
                Either::Right((signal, _)) => {
                    eprintln!("{signal}: shutting down");
                    break;
                }
            }
        }
        drop((listener, signals));
        let dropped = connections.finish(Duration::from_secs(10)).await;
        eprintln!("{dropped} connections dropped at shutdown");
        Ok(())
    })
}

/// How long a client has to finish its opening handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn echo(tcp: TcpStream, mut stop: tracked::Stop) {
    let accept = async_tungstenite::accept_async(tcp);
    let Ok(Ok(mut ws)) = tarn::timeout(HANDSHAKE_TIMEOUT, accept).await else {
        return;
    };
    // tungstenite queues the pong for a ping and the reply to a close
    // itself; they go out with the next write or flush.
    loop {
        let message = match tarn::future::select(ws.next(), &mut stop).await {
            Either::Left((Some(Ok(message)), _)) => message,
            Either::Left(_) => return,
            Either::Right(_) => break,
        };
        let reply = match message {
            Message::Text(_) | Message::Binary(_) => ws.send(message).await,
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {
                SinkExt::flush(&mut ws).await
            }
            Message::Frame(_) => Ok(()),
        };
        if reply.is_err() {
            return;
        }
    }
    // Shutting down: close with 1001 (going away), then wait for the
    // client's close until the server's grace period ends.
    let going_away = CloseFrame {
        code: CloseCode::Away,
        reason: "server shutting down".into(),
    };
    if ws.close(Some(going_away)).await.is_ok() {
        while let Some(Ok(_)) = ws.next().await {}
    }
}

//! Stream reads that come back short: on epoll the socket is then known to be
//! drained and the next read waits for an event instead of trying a syscall.
//! These pin that nothing is lost that way: later data, end of stream, and
//! data racing with the short read all still arrive.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::thread;

use common::block_on_bounded;
use futures::io::AsyncReadExt;
use tarn_net::{TcpListener, TcpStream};

/// A tarn stream connected to a std stream driven from a plain thread.
async fn pair() -> (TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().await.unwrap();
    (server, client.join().unwrap())
}

#[test]
fn data_after_a_short_read_is_still_read() {
    block_on_bounded(async {
        let (mut server, mut client) = pair().await;
        let mut buf = [0; 64];
        for round in 0..200u32 {
            let msg = round.to_be_bytes();
            client.write_all(&msg).unwrap();
            let n = server.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &msg[..n], "round {round}");
            let mut rest = n;
            while rest < 4 {
                rest += server.read(&mut buf[rest..4]).await.unwrap();
            }
        }
    });
}

#[test]
fn end_of_stream_after_a_short_read_is_seen() {
    block_on_bounded(async {
        let (mut server, mut client) = pair().await;
        client.write_all(b"last words").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut buf = [0; 64];
        let mut got = Vec::new();
        loop {
            let n = server.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"last words");
        assert_eq!(
            server.read(&mut buf).await.unwrap(),
            0,
            "end of stream stays"
        );
    });
}

#[test]
fn a_writer_thread_racing_short_reads_loses_nothing() {
    block_on_bounded(async {
        let (mut server, mut client) = pair().await;
        const TOTAL: usize = 2_000_000;
        let writer = thread::spawn(move || {
            let mut sent = 0;
            let mut size = 1;
            while sent < TOTAL {
                let chunk: Vec<u8> = (sent..(sent + size).min(TOTAL)).map(|i| i as u8).collect();
                client.write_all(&chunk).unwrap();
                sent += chunk.len();
                size = size * 7 % 9973 + 1;
            }
        });
        let mut buf = vec![0; 8192];
        let mut received = 0;
        while received < TOTAL {
            let n = server.read(&mut buf).await.unwrap();
            assert!(n > 0, "early end of stream at {received}");
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, (received + k) as u8, "byte {}", received + k);
            }
            received += n;
        }
        writer.join().unwrap();
    });
}

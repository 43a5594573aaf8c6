//! A UDP echo server: every datagram goes back to its sender.
//!
//! ```text
//! cargo run --example udp_echo                   # listens on 127.0.0.1:7003
//! nc -u 127.0.0.1 7003                           # each line typed comes back
//! ```

use std::io;

use tarn::net::UdpSocket;

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7003".into());
    tarn::block_on(async {
        let socket = UdpSocket::bind(&addr).await?;
        println!("udp_echo: listening on {}", socket.local_addr()?);
        // Room for the largest datagram UDP can carry.
        let mut buf = vec![0; 65536];
        loop {
            let (n, peer) = socket.recv_from(&mut buf).await?;
            if let Err(e) = socket.send_to(&buf[..n], peer).await {
                eprintln!("udp_echo: {peer}: {e}");
            }
        }
    })
}

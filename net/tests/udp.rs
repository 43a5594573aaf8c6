//! `UdpSocket`: datagram round trips, peeking, options, bind errors, and
//! the same suite on the poll and select backends.

mod common;

use std::io;
use std::time::Duration;

use common::run;
use tarn_net::UdpSocket;
use tarn_test_support::rerun_on_poll_and_select;

#[test]
fn send_to_and_recv_from_round_trip() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);

        assert_eq!(a.send_to(b"ping", b_addr).await?, 4);
        let mut buf = [0; 64];
        let (n, from) = b.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));

        // A string address goes through the crate's own resolution.
        b.send_to(b"pong", a_addr.to_string()).await?;
        let (n, from) = a.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from), (&b"pong"[..], b_addr));
        Ok(())
    });
}

#[test]
fn connected_send_and_recv_round_trip() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        assert_eq!(
            a.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        a.connect(b.local_addr()?).await?;
        b.connect(a.local_addr()?).await?;
        assert_eq!(a.peer_addr()?, b.local_addr()?);

        a.send(b"over").await?;
        let mut buf = [0; 64];
        let n = b.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"over");
        b.send(b"out").await?;
        let n = a.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"out");
        Ok(())
    });
}

#[test]
fn recv_waits_for_a_datagram_sent_later() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        let b_addr = b.local_addr()?;
        // The receiver blocks first, so the datagram arrives through a
        // readiness event rather than the first try of the syscall.
        let sender = tarn_executor::spawn(async move {
            tarn_reactor::Timer::after(Duration::from_millis(20)).await;
            a.send_to(b"late", b_addr).await
        });
        let mut buf = [0; 64];
        let (n, _) = b.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"late");
        sender.await.unwrap()?;
        Ok(())
    });
}

#[test]
fn peek_from_leaves_the_datagram_queued() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        a.send_to(b"first", b.local_addr()?).await?;
        a.send_to(b"second", b.local_addr()?).await?;

        let mut buf = [0; 64];
        for _ in 0..2 {
            let (n, from) = b.peek_from(&mut buf).await?;
            assert_eq!((&buf[..n], from), (&b"first"[..], a.local_addr()?));
        }
        let (n, _) = b.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"first");

        b.connect(a.local_addr()?).await?;
        let n = b.peek(&mut buf).await?;
        assert_eq!(&buf[..n], b"second");
        let n = b.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"second");
        Ok(())
    });
}

#[test]
fn broadcast_and_ttl_options_round_trip() {
    run(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        assert!(!socket.broadcast()?);
        socket.set_broadcast(true)?;
        assert!(socket.broadcast()?);
        socket.set_broadcast(false)?;
        assert!(!socket.broadcast()?);

        socket.set_ttl(42)?;
        assert_eq!(socket.ttl()?, 42);
        socket.set_multicast_ttl_v4(3)?;
        assert_eq!(socket.multicast_ttl_v4()?, 3);
        socket.set_multicast_loop_v4(false)?;
        assert!(!socket.multicast_loop_v4()?);
        Ok(())
    });
}

#[test]
fn bind_error_names_the_address() {
    run(async {
        let first = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = first.local_addr()?;
        let err = UdpSocket::bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(
            err.to_string().contains(&addr.to_string()),
            "the error should name {addr}: {err}"
        );

        let err = UdpSocket::bind(&[][..]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        Ok(())
    });
}

#[test]
fn bind_uses_the_first_address_that_works() {
    run(async {
        let taken = UdpSocket::bind("127.0.0.1:0").await?;
        let free: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let addrs = [taken.local_addr()?, free];
        let socket = UdpSocket::bind(&addrs[..]).await?;
        assert_ne!(socket.local_addr()?, taken.local_addr()?);
        Ok(())
    });
}

#[test]
fn readable_and_writable_report_readiness() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        a.writable().await?;
        a.send_to(b"x", b.local_addr()?).await?;
        b.readable().await?;
        let mut buf = [0; 8];
        assert_eq!(b.recv_from(&mut buf).await?.0, 1);
        Ok(())
    });
}

#[test]
fn std_conversions_keep_the_socket() {
    run(async {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let addr = std_socket.local_addr()?;
        let socket = UdpSocket::from_std(std_socket)?;
        assert_eq!(socket.local_addr()?, addr);
        assert!(format!("{socket:?}").contains(&addr.to_string()));

        let back = socket.into_std()?;
        assert_eq!(back.local_addr()?, addr);
        // Still non-blocking: an empty queue is WouldBlock, not a hang.
        let err = back.recv(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // And adoptable again (it was deregistered).
        let again = UdpSocket::from_std(back)?;
        assert_eq!(again.local_addr()?, addr);
        Ok(())
    });
}

#[test]
fn sockets_are_close_on_exec() {
    run(async {
        use std::os::fd::AsRawFd;
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        // SAFETY: fcntl on an fd the socket keeps open.
        let flags = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0);
        Ok(())
    });
}

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

//! TCP through the `tarn` facade, end to end: echo round trips from 1 byte
//! to 8 MiB, a thousand concurrent clients, half-close, a peer resetting a
//! connection mid-write, refused and timed-out connects, the stream halves,
//! `peek`, socket options and the std conversions.
//!
//! `on_poll_and_select_backends` re-runs this binary with
//! `TARN_SELECTOR=poll` and `=select`, so every test runs on every backend.

mod common;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{echo_server, run};
use futures::channel::oneshot;
use futures::future::try_join_all;
use futures::StreamExt;
use tarn::io::{AsyncReadExt, AsyncWriteExt};
use tarn::net::{TcpListener, TcpSocket, TcpStream};
use tarn_test_support::{
    backend_name, figure, fnv1a, isolated, open_fds, raise_nofile_limit, random_bytes,
    rerun_on_poll_and_select, reset_on_close, rss_kib, FNV_START,
};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
}

/// Sends `size` bytes through an echo server while reading the echo
/// concurrently; checks the length and checksum of what came back.
async fn round_trip(size: usize) -> io::Result<()> {
    let addr = echo_server().await;
    let data = random_bytes(size, size as u64);
    let conn = TcpStream::connect(addr).await?;
    let (mut reader, mut writer) = conn.split();
    let send = async {
        writer.write_all(&data).await?;
        writer.close().await
    };
    let receive = async {
        let mut buf = vec![0; 64 * 1024];
        let (mut len, mut hash) = (0, FNV_START);
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok((len, hash));
            }
            len += n;
            hash = fnv1a(hash, &buf[..n]);
        }
    };
    let (sent, received) = futures::join!(send, receive);
    sent?;
    let (len, hash) = received?;
    assert_eq!(len, size, "echoed length");
    assert_eq!(hash, fnv1a(FNV_START, &data), "echoed checksum");
    Ok(())
}

#[test]
fn echo_round_trip_1_byte() {
    run(round_trip(1)).unwrap();
}

#[test]
fn echo_round_trip_1_kib() {
    run(round_trip(1024)).unwrap();
}

#[test]
fn echo_round_trip_64_kib() {
    run(round_trip(64 * 1024)).unwrap();
}

#[test]
fn echo_round_trip_1_mib() {
    run(round_trip(1024 * 1024)).unwrap();
}

#[test]
fn echo_round_trip_8_mib() {
    run(round_trip(8 * 1024 * 1024)).unwrap();
}

#[test]
fn a_thousand_concurrent_clients_are_all_served() {
    // select() cannot watch fds past FD_SETSIZE (1024); each client costs
    // two fds here (client and server side).
    let clients = if backend_name() == "select" {
        300
    } else {
        1000
    };
    let limit = raise_nofile_limit();
    assert!(
        limit > (2 * clients + 200) as libc::rlim_t,
        "RLIMIT_NOFILE hard limit {limit} is too low for {clients} clients"
    );
    run(async {
        let addr = echo_server().await;
        // All connected at once, then all talking at once.
        let conns = try_join_all((0..clients).map(|_| TcpStream::connect(addr))).await?;
        try_join_all(
            conns
                .into_iter()
                .enumerate()
                .map(|(i, mut conn)| async move {
                    let msg = format!("client {i:04}");
                    conn.write_all(msg.as_bytes()).await?;
                    let mut reply = vec![0; msg.len()];
                    conn.read_exact(&mut reply).await?;
                    assert_eq!(reply, msg.as_bytes());
                    io::Result::Ok(())
                }),
        )
        .await?;
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn half_closed_client_still_receives_the_whole_reply() {
    run(async {
        let addr = echo_server().await;
        let data = random_bytes(256 * 1024, 7);
        let conn = TcpStream::connect(addr).await?;
        let send = async {
            (&conn).write_all(&data).await?;
            conn.shutdown(Shutdown::Write)?;
            // The write direction is closed for good.
            let err = (&conn).write_all(b"more").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            io::Result::Ok(())
        };
        let mut reply = Vec::new();
        let mut reader = &conn;
        let (sent, received) = futures::join!(send, reader.read_to_end(&mut reply));
        sent?;
        received?;
        assert_eq!(reply.len(), data.len());
        assert!(reply == data, "the echo differs from what was sent");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn peer_reset_during_a_large_write_fails_the_writer_not_the_server() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (flood_done, flood_result) = oneshot::channel();
        // The first connection gets an endless stream; the others, echo.
        tarn::spawn(async move {
            let (mut first, _) = listener.accept().await?;
            tarn::spawn(async move {
                let chunk = vec![0x5a; 256 * 1024];
                let err = loop {
                    if let Err(e) = first.write_all(&chunk).await {
                        break e;
                    }
                };
                let _ = flood_done.send(err);
            })
            .detach();
            loop {
                let (conn, _) = listener.accept().await?;
                tarn::spawn(common::echo(conn)).detach();
            }
            #[allow(unreachable_code)]
            io::Result::Ok(())
        })
        .detach();

        let victim = TcpStream::connect(addr).await?;
        let mut bystander = TcpStream::connect(addr).await?;
        // Let the flood get going, then reset the connection under it.
        let mut buf = vec![0; 1024 * 1024];
        (&victim).read_exact(&mut buf).await?;
        reset_on_close(&victim);
        drop(victim);

        let err = flood_result.await.expect("the flooding task reports");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "the writer got {err:?}, not BrokenPipe or ConnectionReset"
        );

        // The server goes on: an existing and a new connection both echo.
        let mut newcomer = TcpStream::connect(addr).await?;
        for conn in [&mut bystander, &mut newcomer] {
            conn.write_all(b"still there?").await?;
            let mut reply = [0; 12];
            conn.read_exact(&mut reply).await?;
            assert_eq!(&reply, b"still there?");
        }
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn writing_to_a_closed_peer_is_an_error_not_sigpipe() {
    isolated("writing_to_a_closed_peer_is_an_error_not_sigpipe", || {
        // Rust programs ignore SIGPIPE by default; restore the default
        // (terminate) so that only MSG_NOSIGNAL keeps the process alive.
        // SAFETY: SIG_DFL is a valid disposition; this process runs this test alone.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        run(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let mut conn = TcpStream::connect(listener.local_addr()?).await?;
            let (peer, _) = listener.accept().await?;

            // A peer that closed: the writes after the first error are EPIPE.
            drop(peer);
            let chunk = [0; 64 * 1024];
            let first = loop {
                if let Err(e) = conn.write_all(&chunk).await {
                    break e;
                }
            };
            for err in [first, conn.write_all(&chunk).await.unwrap_err()] {
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ),
                    "{err:?}"
                );
            }

            // Our own shut-down write side: EPIPE at once.
            let mut conn = TcpStream::connect(listener.local_addr()?).await?;
            conn.shutdown(Shutdown::Write)?;
            let err = conn.write_all(b"x").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            io::Result::Ok(())
        })
        .unwrap();
    });
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    // Bound but not listening: refused, and held so that no other test can
    // listen on the port meanwhile.
    let closed = TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = closed.local_addr().unwrap();
    let err = run(TcpStream::connect(addr)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn connect_tries_every_address_of_a_host_name() {
    // "localhost" may resolve to ::1 first; the listener is on 127.0.0.1 only.
    run(async {
        let addr = echo_server().await;
        let mut conn = TcpStream::connect(("localhost", addr.port())).await?;
        assert_eq!(conn.peer_addr()?, addr);
        conn.write_all(b"by name").await?;
        let mut reply = [0; 7];
        conn.read_exact(&mut reply).await?;
        assert_eq!(&reply, b"by name");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn connect_timeout_expires_when_the_accept_queue_is_full() {
    run(async {
        // A listener that never accepts, with the smallest queue. Once the
        // queue is full, Linux drops incoming SYNs, so a connect hangs in
        // SYN_SENT, retransmitting, until something gives up.
        let socket = TcpSocket::new_v4()?;
        socket.bind("127.0.0.1:0".parse().unwrap())?;
        let listener = socket.listen(0)?;
        let addr = listener.local_addr()?;
        let mut queued = Vec::new();
        let full = loop {
            assert!(queued.len() < 16, "the accept queue of {addr} never filled");
            // Long enough for a handshake on a busy machine: a timeout here
            // must mean the queue is full, not that loopback was slow.
            match TcpStream::connect_timeout(addr, Duration::from_secs(2)).await {
                Ok(conn) => queued.push(conn),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break e,
                Err(e) => return Err(e),
            }
        };
        assert!(
            !queued.is_empty(),
            "no connection was queued at all: {full}"
        );

        let started = Instant::now();
        let err = TcpStream::connect_timeout(addr, Duration::from_millis(200))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert!(
            took >= Duration::from_millis(200),
            "gave up early: {took:?}"
        );
        assert!(took < Duration::from_secs(5), "gave up late: {took:?}");
        Ok(())
    })
    .unwrap();
}

#[test]
fn borrowed_halves_read_and_write_at_once() {
    run(round_trip(512 * 1024)).unwrap();
}

#[test]
fn owned_halves_move_to_tasks_and_reunite() {
    run(async {
        let addr = echo_server().await;
        let conn = TcpStream::connect(addr).await?;
        let local = conn.local_addr()?;
        let (mut reader, mut writer) = conn.into_split();
        let writing = tarn::spawn(async move {
            writer.write_all(b"through the halves").await?;
            io::Result::Ok(writer)
        });
        let reading = tarn::spawn(async move {
            let mut reply = [0; 18];
            reader.read_exact(&mut reply).await?;
            assert_eq!(&reply, b"through the halves");
            io::Result::Ok(reader)
        });
        let writer = writing.await.unwrap()?;
        let reader = reading.await.unwrap()?;
        assert_eq!(reader.stream().local_addr()?, writer.stream().local_addr()?);

        let mut conn = reader.reunite(writer).expect("halves of one stream");
        assert_eq!(conn.local_addr()?, local);
        conn.write_all(b"whole again").await?;
        let mut reply = [0; 11];
        conn.read_exact(&mut reply).await?;
        assert_eq!(&reply, b"whole again");

        // Halves of different streams are handed back.
        let (r1, w1) = conn.into_split();
        let (r2, w2) = TcpStream::connect(addr).await?.into_split();
        let tarn::net::ReuniteError(r1, w2) = r1.reunite(w2).unwrap_err();
        assert!(w1.reunite(r1).is_ok());
        drop(r2.reunite(w2).unwrap());
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn dropping_the_owned_write_half_sends_end_of_stream() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        let (mut reader, writer) = client.into_split();
        drop(writer);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await?;
        assert!(rest.is_empty());
        // The read direction still works.
        server.write_all(b"bye").await?;
        let mut reply = [0; 3];
        reader.read_exact(&mut reply).await?;
        assert_eq!(&reply, b"bye");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn peek_leaves_the_data_for_the_next_read() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        let peeker = tarn::spawn(async move {
            let mut buf = [0; 5];
            let n = server.peek(&mut buf).await?;
            assert_eq!(&buf[..n], &b"hello"[..n]);
            let mut read = [0; 5];
            server.read_exact(&mut read).await?;
            assert_eq!(&read, b"hello");
            io::Result::Ok(n)
        });
        // The peek waits for data that is not there yet.
        tarn::Timer::after(Duration::from_millis(20)).await;
        client.write_all(b"hello").await?;
        assert!(peeker.await.unwrap()? > 0);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn nodelay_and_ttl_setters_stick() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        listener.set_ttl(33)?;
        assert_eq!(listener.ttl()?, 33);
        let conn = TcpStream::connect(listener.local_addr()?).await?;
        conn.set_nodelay(true)?;
        assert!(conn.nodelay()?);
        conn.set_nodelay(false)?;
        assert!(!conn.nodelay()?);
        conn.set_ttl(42)?;
        assert_eq!(conn.ttl()?, 42);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn std_sockets_convert_both_ways() {
    run(async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = std_listener.local_addr()?;
        let listener = TcpListener::from_std(std_listener)?;
        let std_client = std::net::TcpStream::connect(addr)?;
        let mut client = TcpStream::from_std(std_client)?;
        let (mut server, _) = listener.accept().await?;
        client.write_all(b"ping").await?;
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");

        // Back to std: deregistered, still non-blocking.
        let mut std_server = server.into_std()?;
        let err = std_server.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        std_server.set_nonblocking(false)?;
        std_server.write_all(b"pong")?;
        client.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"pong");

        let std_listener = listener.into_std()?;
        assert_eq!(std_listener.local_addr()?, addr);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn incoming_yields_each_connection() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let clients = tarn::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..3 {
                conns.push(TcpStream::connect(addr).await?);
            }
            io::Result::Ok(conns)
        });
        let accepted: Vec<_> = listener.incoming().take(3).collect().await;
        let clients = clients.await.unwrap()?;
        let mut peers: Vec<_> = accepted
            .into_iter()
            .map(|conn| conn.unwrap().peer_addr().unwrap())
            .collect();
        let mut locals: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        peers.sort();
        locals.sort();
        assert_eq!(peers, locals);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn connections_leave_no_sources_wakers_or_fds_behind() {
    isolated("connections_leave_no_sources_wakers_or_fds_behind", || {
        // The reactors first: their fds stay open.
        common::warm_up_reactors();
        let sources = tarn::stats().sources;
        let fds = open_fds();
        run(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            // A server for exactly 50 connections, each echoed by a task.
            let server = tarn::spawn(async move {
                let mut echoes = Vec::new();
                for _ in 0..50 {
                    let (conn, _) = listener.accept().await?;
                    echoes.push(tarn::spawn(common::echo(conn)));
                }
                for echo in echoes {
                    echo.await.unwrap()?;
                }
                io::Result::Ok(())
            });
            let clients = (0..50).map(|i| async move {
                let mut conn = TcpStream::connect(addr).await?;
                let msg = format!("client {i}");
                conn.write_all(msg.as_bytes()).await?;
                let mut reply = vec![0; msg.len()];
                conn.read_exact(&mut reply).await?;
                // Abandon a read half-way, as a timeout would.
                let pending = tarn::timeout(Duration::from_millis(5), conn.read(&mut reply)).await;
                assert!(pending.is_err(), "nothing more was sent");
                io::Result::Ok(())
            });
            try_join_all(clients).await?;
            server.await.unwrap()
        })
        .unwrap();
        let stats = tarn::stats();
        assert_eq!(stats.sources, sources, "sources left registered: {stats:?}");
        assert_eq!(
            (stats.waiting_readers, stats.waiting_writers, stats.timers),
            (0, 0, 0),
            "wakers or timers left behind: {stats:?}"
        );
        assert_eq!(open_fds(), fds, "fds left open");
    });
}

#[test]
fn cancelled_accept_and_read_leave_the_sockets_usable() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Give up on an accept, then accept for real.
        assert!(tarn::timeout(Duration::from_millis(10), listener.accept())
            .await
            .is_err());
        let mut client = TcpStream::connect(addr).await?;
        let (mut server, _) = listener.accept().await?;

        // Give up on a read, then read what arrives afterwards.
        let mut buf = [0; 5];
        assert!(
            tarn::timeout(Duration::from_millis(10), server.read(&mut buf))
                .await
                .is_err()
        );
        client.write_all(b"later").await?;
        server.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"later");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn a_connection_that_cannot_be_registered_does_not_end_the_accept_loop() {
    // On select, an accepted fd past FD_SETSIZE (1024) cannot be watched:
    // that connection is closed and `accept` goes on to the next one. On
    // epoll and poll the same connection is simply served.
    isolated(
        "a_connection_that_cannot_be_registered_does_not_end_the_accept_loop",
        || {
            let limit = raise_nofile_limit();
            assert!(
                limit >= 1100,
                "this test needs RLIMIT_NOFILE >= 1100, have {limit}"
            );
            let select = backend_name() == "select";
            run(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                // Fill the fd table past 1024, so the next accepted fd is high.
                let filler: Vec<std::fs::File> = (0..1030)
                    .map_while(|_| std::fs::File::open("/dev/null").ok())
                    .take_while(|f| f.as_raw_fd() < 1030)
                    .collect();
                let high = std::net::TcpStream::connect(addr).unwrap();
                let mut accepting = std::pin::pin!(listener.accept());
                if select {
                    // Accepted, found unwatchable, closed: the client sees
                    // the end of the connection, the accept keeps waiting.
                    // Keep polling the accept (which does the closing) until
                    // the client sees its end, however slow the machine.
                    high.set_nonblocking(true).unwrap();
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let mut buf = [0; 1];
                    loop {
                        let waited = tarn::timeout(Duration::from_millis(50), &mut accepting).await;
                        assert!(waited.is_err(), "accept yielded {waited:?}");
                        match (&high).read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => panic!("{n} bytes from the unwatchable connection"),
                            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => assert!(
                                Instant::now() < deadline,
                                "the unwatchable connection was not closed"
                            ),
                            Err(e) => panic!("reading the unwatchable connection: {e}"),
                        }
                    }
                    drop(filler);
                    let mut low = std::net::TcpStream::connect(addr).unwrap();
                    let (mut conn, _) = accepting.await.unwrap();
                    low.write_all(b"ping").unwrap();
                    let mut got = [0; 4];
                    conn.read_exact(&mut got).await.unwrap();
                    assert_eq!(&got, b"ping", "the next connection is served");
                } else {
                    let (mut conn, _) = accepting.await.unwrap();
                    assert!(conn.as_raw_fd() >= 1024, "fd {}", conn.as_raw_fd());
                    (&high).write_all(b"ping").unwrap();
                    let mut got = [0; 4];
                    conn.read_exact(&mut got).await.unwrap();
                    assert_eq!(&got, b"ping");
                    drop(filler);
                }
            });
        },
    );
}

#[test]
fn accepted_and_connected_streams_have_nodelay_on() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connected = TcpStream::connect(addr).await?;
        let (accepted, _) = listener.accept().await?;
        assert!(connected.nodelay()?, "TcpStream::connect");
        assert!(accepted.nodelay()?, "TcpListener::accept");
        let from_socket = TcpSocket::new_v4()?.connect(addr).await?;
        assert!(from_socket.nodelay()?, "TcpSocket::connect");
        // Opting out sticks.
        connected.set_nodelay(false)?;
        assert!(!connected.nodelay()?);
        io::Result::Ok(())
    })
    .unwrap();
}

/// The obvious echo loop (a 4 KiB buffer, `write_all` per read) answering
/// 16 KiB requests: each reply leaves in four writes, and with Nagle's
/// algorithm on, the last one waits for the client's delayed ACK (~40 ms).
/// tarn turns `TCP_NODELAY` on for accepted streams, so it does not.
#[test]
fn a_small_buffer_echo_answers_16_kib_requests_without_a_nagle_stall() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tarn::spawn(async move {
            let (mut conn, _) = listener.accept().await?;
            let mut buf = [0; 4096];
            loop {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    return io::Result::Ok(());
                }
                conn.write_all(&buf[..n]).await?;
            }
        })
        .detach();
        // A plain blocking client with Nagle and delayed ACKs as the
        // kernel sets them, on a pool thread.
        let mut times = tarn::unblock(move || -> io::Result<Vec<Duration>> {
            let mut conn = std::net::TcpStream::connect(addr)?;
            let request = random_bytes(16 * 1024, 16);
            let mut reply = vec![0; request.len()];
            let mut times = Vec::new();
            for _ in 0..20 {
                let started = Instant::now();
                conn.write_all(&request)?;
                conn.read_exact(&mut reply)?;
                times.push(started.elapsed());
                assert!(reply == request, "the echo differs from the request");
            }
            Ok(times)
        })
        .await?;
        times.sort();
        let median = times[times.len() / 2];
        assert!(
            median < Duration::from_millis(10),
            "median round trip {median:?} (all: {times:?}): a Nagle stall"
        );
        io::Result::Ok(())
    })
    .unwrap();
}

/// More slices than the kernel takes in one `sendmsg` (IOV_MAX, 1024): the
/// write sends what fits and says how much, as std's `write_vectored` does.
#[test]
fn a_vectored_write_of_2000_slices_writes_what_fits() {
    run(async {
        let addr = echo_server().await;
        let mut conn = TcpStream::connect(addr).await?;
        let data = random_bytes(20_000, 2000);
        let slices: Vec<io::IoSlice<'_>> = data.chunks(10).map(io::IoSlice::new).collect();
        assert_eq!(slices.len(), 2000);
        let first = conn.write_vectored(&slices).await?;
        assert!(first > 0, "the first vectored write wrote nothing");
        assert!(first <= data.len());
        conn.write_all(&data[first..]).await?;
        let mut echoed = vec![0; data.len()];
        conn.read_exact(&mut echoed).await?;
        assert!(echoed == data, "the stream arrived altered");
        io::Result::Ok(())
    })
    .unwrap();
}

/// `connect_timeout` bounds the name lookup too: with every blocking-pool
/// thread busy, the lookup of "localhost" waits in the pool's queue, and
/// the deadline must end the wait.
#[test]
fn connect_timeout_covers_name_resolution() {
    isolated("connect_timeout_covers_name_resolution", || {
        run(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let port = listener.local_addr()?.port();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let released = std::sync::Arc::new(std::sync::Mutex::new(released));
            let busy: Vec<_> = (0..tarn::blocking::MAX_THREADS)
                .map(|_| {
                    let released = std::sync::Arc::clone(&released);
                    tarn::unblock(move || {
                        let _ = released
                            .lock()
                            .unwrap()
                            .recv_timeout(Duration::from_secs(10));
                    })
                })
                .collect();
            let res =
                TcpStream::connect_timeout(("localhost", port), Duration::from_millis(100)).await;
            drop(release);
            futures::future::join_all(busy).await;
            let err = res.expect_err("connected although the lookup could not run in time");
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            assert!(err.to_string().contains("localhost"), "{err}");
            io::Result::Ok(())
        })
        .unwrap();
    });
}

/// 5,000 short tasks, one after the other, each giving up on a read of one
/// idle shared socket (a `timeout` around `read`, as a request handler with
/// a deadline does), each task 16 KiB large. Their wakers must not stay
/// behind, each keeping its finished task's memory alive until the
/// socket's next event.
#[test]
fn cancelled_reads_on_an_idle_socket_keep_no_finished_task_alive() {
    isolated(
        "cancelled_reads_on_an_idle_socket_keep_no_finished_task_alive",
        || {
            run(async {
                let (idle, _client) = connected_pair().await?;
                let idle = std::rc::Rc::new(idle);
                let rss_before = rss_kib();
                for _ in 0..5000 {
                    cancelled_read(std::rc::Rc::clone(&idle)).await;
                }
                let waiting = tarn::stats().waiting_readers;
                let grown = rss_kib().saturating_sub(rss_before);
                figure(format_args!(
                    "5,000 cancelled reads one at a time: {waiting} wakers left, RSS +{grown} KiB"
                ));
                assert!(
                    waiting <= 8,
                    "{waiting} wakers of finished reads wait on the socket"
                );
                assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
                io::Result::Ok(())
            })
            .unwrap();
        },
    );
}

/// The same 5,000 cancelled reads, 100 at a time: what they leave behind is
/// bounded by how many waited at once, not by how many there were.
#[test]
fn concurrent_cancelled_reads_leave_what_one_round_left() {
    isolated(
        "concurrent_cancelled_reads_leave_what_one_round_left",
        || {
            run(async {
                let (idle, _client) = connected_pair().await?;
                let idle = std::rc::Rc::new(idle);
                let rss_before = rss_kib();
                let mut most = 0;
                for round in 0..50 {
                    let reads: Vec<_> = (0..100)
                        .map(|_| tarn::spawn(cancelled_read(std::rc::Rc::clone(&idle))))
                        .collect();
                    for read in reads {
                        read.await.unwrap();
                    }
                    let waiting = tarn::stats().waiting_readers;
                    most = most.max(waiting);
                    assert!(
                        waiting <= 2 * 128,
                        "round {round}: {waiting} wakers of finished reads wait on the socket"
                    );
                }
                let grown = rss_kib().saturating_sub(rss_before);
                figure(format_args!(
                    "5,000 cancelled reads 100 at a time: at most {most} wakers left, RSS +{grown} KiB"
                ));
                assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
                io::Result::Ok(())
            })
            .unwrap();
        },
    );
}

/// A connected pair: the accepted side and the client.
async fn connected_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (accepted, _) = listener.accept().await?;
    Ok((accepted, client))
}

/// A 16 KiB task's read of `idle` that a 100 µs timeout cancels.
async fn cancelled_read(idle: std::rc::Rc<TcpStream>) {
    let mut buf = [0u8; 16 * 1024];
    let mut conn: &TcpStream = &idle;
    let read = tarn::timeout(Duration::from_micros(100), conn.read(&mut buf));
    assert!(read.await.is_err(), "nothing was sent");
    std::hint::black_box(&buf);
}

/// Nine (and then thirty-two) tasks reading one idle shared socket through
/// `AsyncRead` at once, more than the shared list of wakers holds at first:
/// they must wait quietly, not flush each other out over and over.
#[test]
fn many_tasks_reading_one_idle_socket_wait_quietly() {
    run(async {
        let (idle, _client) = connected_pair().await?;
        let idle = std::rc::Rc::new(idle);
        for readers in [9, 32] {
            let polls = std::rc::Rc::new(std::cell::Cell::new(0));
            let tasks: Vec<_> = (0..readers)
                .map(|_| {
                    let idle = std::rc::Rc::clone(&idle);
                    tarn::spawn(counting_polls(std::rc::Rc::clone(&polls), async move {
                        let mut buf = [0u8; 16];
                        let mut conn: &TcpStream = &idle;
                        conn.read(&mut buf).await
                    }))
                })
                .collect();
            tarn::Timer::after(Duration::from_millis(100)).await;
            figure(format_args!(
                "{readers} readers on an idle socket: {} polls in 100 ms",
                polls.get()
            ));
            assert!(
                polls.get() <= 4 * readers,
                "{readers} readers were polled {} times in 100 ms on an idle socket",
                polls.get()
            );
            for task in tasks {
                task.abort();
            }
        }
        io::Result::Ok(())
    })
    .unwrap();
}

/// Polls `future`, counting its polls in `polls`.
async fn counting_polls<F: std::future::Future>(
    polls: std::rc::Rc<std::cell::Cell<usize>>,
    future: F,
) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        polls.set(polls.get() + 1);
        future.as_mut().poll(cx)
    })
    .await
}

/// Any number of tasks may wait in `accept` on one listener: each waits in
/// a place of its own, none is woken while nothing arrives, and each gets a
/// connection when one comes.
#[test]
fn many_tasks_accepting_on_one_listener_wait_quietly() {
    run(async {
        let listener = std::rc::Rc::new(TcpListener::bind("127.0.0.1:0").await?);
        let addr = listener.local_addr()?;
        let polls = std::rc::Rc::new(std::cell::Cell::new(0));
        let acceptors: Vec<_> = (0..32)
            .map(|_| {
                let listener = std::rc::Rc::clone(&listener);
                tarn::spawn(counting_polls(std::rc::Rc::clone(&polls), async move {
                    listener.accept().await.map(|(conn, _)| conn)
                }))
            })
            .collect();
        tarn::Timer::after(Duration::from_millis(50)).await;
        assert_eq!(
            polls.get(),
            32,
            "acceptors were woken with nothing to accept"
        );
        let mut clients = Vec::new();
        for _ in 0..32 {
            clients.push(TcpStream::connect(addr).await?);
        }
        for acceptor in acceptors {
            acceptor.await.unwrap()?;
        }
        io::Result::Ok(())
    })
    .unwrap();
}

/// "abc", one byte of urgent data (`MSG_OOB`), then "def": a read stops
/// short at the urgent mark, which must not count as the socket running
/// dry; "def" is read too.
#[test]
fn a_read_that_stops_at_the_urgent_mark_does_not_stall_the_stream() {
    use std::os::fd::AsRawFd;

    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept().await?;
        (&client).write_all(b"abc")?;
        // SAFETY: send reads one byte from a live buffer.
        let sent =
            unsafe { libc::send(client.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1, "send(MSG_OOB): {}", io::Error::last_os_error());
        (&client).write_all(b"def")?;
        // Let the reactor see those arrivals first: no event is left over
        // to wake the reads below.
        tarn::Timer::after(Duration::from_millis(20)).await;
        let mut got = Vec::new();
        let mut buf = [0; 64];
        while got.len() < 6 {
            let read = tarn::timeout(Duration::from_secs(2), server.read(&mut buf)).await;
            let n = read.map_err(|_| {
                io::Error::other(format!("stalled after {:?}", String::from_utf8_lossy(&got)))
            })??;
            assert!(n > 0, "end of stream after {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"abcdef");
        io::Result::Ok(())
    })
    .unwrap();
}

/// Vectored calls with empty slices in front, more than the kernel takes:
/// they move the data behind them (a read that moved nothing would read as
/// end of stream), and a read that fills all the slices one call can pass
/// is not taken for a drained socket.
#[test]
fn vectored_calls_skip_empty_slices_and_do_not_stall_past_iov_max() {
    run(async {
        let (mut server, mut client) = connected_pair().await?;
        let empty: Vec<&[u8]> = vec![&[]; 1100];
        let mut slices: Vec<io::IoSlice<'_>> = empty.iter().map(|e| io::IoSlice::new(e)).collect();
        slices.push(io::IoSlice::new(b"after the empty ones"));
        let wrote = client.write_vectored(&slices).await?;
        assert_eq!(wrote, 20, "the data behind 1,100 empty slices");

        let mut empties: Vec<[u8; 0]> = vec![[]; 1100];
        let mut buf = [0u8; 64];
        let mut bufs: Vec<io::IoSliceMut<'_>> =
            empties.iter_mut().map(|e| io::IoSliceMut::new(e)).collect();
        bufs.push(io::IoSliceMut::new(&mut buf));
        let read = server.read_vectored(&mut bufs).await?;
        assert_eq!(read, 20, "read as end of stream");
        assert_eq!(&buf[..20], b"after the empty ones");

        // 30,000 bytes queued, read through 2,000 slices of 10 bytes: one
        // call fills 1,024 of them; the rest must not wait for an event.
        let data = random_bytes(30_000, 30);
        client.write_all(&data).await?;
        tarn::Timer::after(Duration::from_millis(20)).await; // the reactor sees the arrival
        let mut got: Vec<u8> = Vec::new();
        while got.len() < data.len() {
            let mut chunks = vec![[0u8; 10]; 2000];
            let mut bufs: Vec<io::IoSliceMut<'_>> =
                chunks.iter_mut().map(|c| io::IoSliceMut::new(c)).collect();
            let n = tarn::timeout(Duration::from_secs(2), server.read_vectored(&mut bufs))
                .await
                .map_err(|_| io::Error::other(format!("stalled after {} bytes", got.len())))??;
            assert!(n > 0);
            got.extend(chunks.iter().flatten().take(n));
        }
        assert!(got == data, "the stream arrived altered");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn poll_read_uninit_fills_uninitialised_memory_and_sees_end_of_stream() {
    use std::mem::MaybeUninit;
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        server.write_all(b"hello").await?;
        server.close().await?;
        let mut buf = [MaybeUninit::<u8>::uninit(); 64];
        let mut got = Vec::new();
        loop {
            let n = futures::future::poll_fn(|cx| client.poll_read_uninit(cx, &mut buf)).await?;
            if n == 0 {
                break;
            }
            // SAFETY: poll_read_uninit initialised the first n bytes.
            got.extend(buf[..n].iter().map(|b| unsafe { b.assume_init() }));
        }
        assert_eq!(got, b"hello");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn reuseport_listeners_share_one_port_and_each_accepts() {
    let listeners = tarn::net::reuseport_listeners("127.0.0.1:0".parse().unwrap(), 3).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    assert!(listeners.iter().all(|l| l.local_addr().unwrap() == addr));
    let e = tarn::net::reuseport_listeners(addr, 0).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    // Every listener is adopted on an executor thread of its own; the
    // kernel spreads connections over them, so connect until each has
    // accepted one.
    let executors = tarn::PerCore::new()
        .spawn_with(listeners, |_, listener| async move {
            let listener = TcpListener::from_std(listener).unwrap();
            let (conn, _) = listener.accept().await.unwrap();
            conn.nodelay().unwrap()
        })
        .unwrap();
    let mut clients = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !executors.is_finished() {
        assert!(Instant::now() < deadline, "some listener never accepted");
        clients.push(std::net::TcpStream::connect(addr).unwrap());
        std::thread::sleep(Duration::from_millis(1));
    }
    // Accepted streams inherit TCP_NODELAY from the listener.
    assert!(executors.join().into_iter().all(|nodelay| nodelay.unwrap()));
}

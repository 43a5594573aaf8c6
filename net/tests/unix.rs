//! Unix-domain sockets: stream echo, half-close, `BrokenPipe` without
//! `SIGPIPE`, datagrams, bind and connect errors, many concurrent clients,
//! a full backlog, fd exhaustion, and the same suite on the poll and select
//! backends.

mod common;

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::run;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::StreamExt;
use tarn_net::{UnixDatagram, UnixListener, UnixStream};
use tarn_reactor::Timer;
use tarn_test_support::{
    cpu_time, fnv1a, isolated, nofile_limit, open_fds, random_bytes, rerun_on_poll_and_select,
    set_nofile_soft, temp_path, FNV_START,
};

const MIB: usize = 1 << 20;

/// Echoes everything `conn` reads until end of stream, then closes writing.
async fn echo(conn: UnixStream) -> io::Result<()> {
    let (reader, mut writer) = conn.split();
    futures::io::copy(reader, &mut writer).await?;
    writer.close().await
}

#[test]
fn stream_echo_round_trip_of_one_mebibyte() {
    run(async {
        let path = temp_path("echo");
        let listener = UnixListener::bind(&path)?;
        let server = tarn_executor::spawn(async move {
            let (conn, _) = listener.accept().await?;
            echo(conn).await
        });

        let client = UnixStream::connect(&path).await?;
        let payload = random_bytes(MIB, 1);
        let (mut reader, mut writer) = client.split();
        let send = async {
            // Uneven chunks, so that writes and reads interleave oddly.
            for chunk in payload.chunks(64 * 1024 - 7) {
                writer.write_all(chunk).await?;
            }
            writer.close().await
        };
        let mut echoed = Vec::with_capacity(MIB);
        let receive = reader.read_to_end(&mut echoed);
        let (sent, received) = futures::join!(send, receive);
        sent?;
        assert_eq!(received?, MIB);
        assert_eq!(fnv1a(FNV_START, &echoed), fnv1a(FNV_START, &payload));
        server.await.unwrap()?;
        Ok(())
    });
}

#[test]
fn half_close_lets_the_peer_reply() {
    run(async {
        let path = temp_path("half-close");
        let listener = UnixListener::bind(&path)?;
        let server = tarn_executor::spawn(async move {
            let (mut conn, _) = listener.accept().await?;
            let mut request = Vec::new();
            // End of stream arrives while the server's write side is open.
            conn.read_to_end(&mut request).await?;
            conn.write_all(b"got ").await?;
            conn.write_all(&request).await?;
            conn.close().await
        });

        let mut client = UnixStream::connect(&path).await?;
        client.write_all(b"question").await?;
        client.shutdown(Shutdown::Write)?;
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await?;
        assert_eq!(reply, b"got question");
        server.await.unwrap()?;
        Ok(())
    });
}

#[test]
fn write_to_a_closed_peer_is_broken_pipe_not_sigpipe() {
    isolated("write_to_a_closed_peer_is_broken_pipe_not_sigpipe", || {
        // Rust ignores SIGPIPE by default; restore the C default, under
        // which a write without MSG_NOSIGNAL kills this child process.
        // SAFETY: this child runs this test alone; no other thread cares.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        run(async {
            let (mut a, b) = UnixStream::pair()?;
            drop(b);
            let err = a.write_all(b"into the void").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            let bufs = [IoSlice::new(b"vectored"), IoSlice::new(b" too")];
            let err = (&a).write_vectored(&bufs).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");

            let path = temp_path("broken-pipe");
            let listener = UnixListener::bind(&path)?;
            let mut client = UnixStream::connect(&path).await?;
            let (server_side, _) = listener.accept().await?;
            drop(server_side);
            let err = client.write_all(&[7; 4096]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            Ok(())
        });
    });
}

#[test]
fn pair_round_trip_with_vectored_writes() {
    run(async {
        let (a, mut b) = UnixStream::pair()?;
        let bufs = [
            IoSlice::new(b"one "),
            IoSlice::new(b"two "),
            IoSlice::new(b"three"),
        ];
        let n = (&a).write_vectored(&bufs).await?;
        assert_eq!(n, 13);
        let mut got = [0; 13];
        b.read_exact(&mut got).await?;
        assert_eq!(&got, b"one two three");
        assert!(a.local_addr()?.is_unnamed());
        assert!(b.peer_addr()?.is_unnamed());
        Ok(())
    });
}

/// More slices than the kernel takes in one `sendmsg` (IOV_MAX, 1024): the
/// write sends what fits and says how much.
#[test]
fn a_vectored_write_of_2000_slices_writes_what_fits() {
    run(async {
        let (mut a, mut b) = UnixStream::pair()?;
        let data = random_bytes(20_000, 2000);
        let slices: Vec<IoSlice<'_>> = data.chunks(10).map(IoSlice::new).collect();
        assert_eq!(slices.len(), 2000);
        let reader = tarn_executor::spawn(async move {
            let mut got = vec![0; 20_000];
            b.read_exact(&mut got).await.map(|()| got)
        });
        let first = a.write_vectored(&slices).await?;
        assert!(first > 0, "the first vectored write wrote nothing");
        a.write_all(&data[first..]).await?;
        let got = reader.await.unwrap()?;
        assert!(got == data, "the stream arrived altered");
        Ok(())
    });
}

#[test]
fn owned_halves_move_to_tasks_and_reunite() {
    run(async {
        let (a, mut b) = UnixStream::pair()?;
        let (mut reader, mut writer) = a.into_split();
        let echo = tarn_executor::spawn(async move {
            let mut buf = [0; 5];
            reader.read_exact(&mut buf).await?;
            writer.write_all(&buf).await?;
            io::Result::Ok((reader, writer))
        });
        b.write_all(b"hello").await?;
        let mut got = [0; 5];
        b.read_exact(&mut got).await?;
        assert_eq!(&got, b"hello");
        let (reader, writer) = echo.await.unwrap()?;
        let a = reader.reunite(writer).expect("halves of one stream");
        // The stream is whole again: dropping it closes it.
        drop(a);
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await?;
        assert!(rest.is_empty());

        // Halves of two different streams do not reunite.
        let (c, _c_peer) = UnixStream::pair()?;
        let (d, _d_peer) = UnixStream::pair()?;
        let ((c_read, c_write), (d_read, d_write)) = (c.into_split(), d.into_split());
        let err = c_read.reunite(d_write).unwrap_err();
        assert!(
            err.to_string().contains("not from the same stream"),
            "{err}"
        );
        let tarn_net::ReuniteError(c_read, d_write) = err;
        c_read.reunite(c_write).unwrap();
        d_write.reunite(d_read).unwrap();
        Ok(())
    });
}

#[test]
fn peek_leaves_the_data_queued() {
    run(async {
        let (mut a, mut b) = UnixStream::pair()?;
        // The peeker waits first, so data arrives through readiness.
        let peeked = async {
            let mut buf = [0; 5];
            let n = b.peek(&mut buf).await?;
            io::Result::Ok(buf[..n].to_vec())
        };
        let write = async {
            Timer::after(Duration::from_millis(10)).await;
            a.write_all(b"hello").await
        };
        let (peeked, written) = futures::join!(peeked, write);
        written?;
        assert_eq!(peeked?, b"hello");
        let mut buf = [0; 5];
        b.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"hello");
        Ok(())
    });
}

#[test]
fn datagram_pair_round_trip() {
    run(async {
        let (a, b) = UnixDatagram::pair()?;
        a.send(b"one").await?;
        a.send(b"two").await?;
        let mut buf = [0; 16];
        assert_eq!(b.peek(&mut buf).await?, 3);
        let n = b.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"one");
        let (n, from) = b.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"two");
        assert!(from.is_unnamed());
        b.send(b"back").await?;
        let n = a.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"back");
        Ok(())
    });
}

#[test]
fn datagram_bound_round_trip() {
    run(async {
        let server_path = temp_path("dgram-server");
        let client_path = temp_path("dgram-client");
        let server = UnixDatagram::bind(&server_path)?;
        let client = UnixDatagram::bind(&client_path)?;
        assert_eq!(
            server.local_addr()?.as_pathname(),
            Some(server_path.as_path())
        );

        // The server waits first; the message arrives through readiness.
        let serve = async {
            let mut buf = [0; 64];
            let (n, from) = server.recv_from(&mut buf).await?;
            let from = from.as_pathname().expect("a bound sender").to_path_buf();
            server.send_to(&buf[..n], &from).await?;
            io::Result::Ok(from)
        };
        let ask = async {
            Timer::after(Duration::from_millis(10)).await;
            client.send_to(b"echo me", &server_path).await?;
            let mut buf = [0; 64];
            let (n, from) = client.recv_from(&mut buf).await?;
            assert_eq!(from.as_pathname(), Some(server_path.as_path()));
            io::Result::Ok(buf[..n].to_vec())
        };
        let (served, asked) = futures::join!(serve, ask);
        assert_eq!(served?, client_path.as_path());
        assert_eq!(asked?, b"echo me");

        // An unbound socket connected to the server.
        let unbound = UnixDatagram::unbound()?;
        unbound.connect(&server_path)?;
        assert_eq!(
            unbound.peer_addr()?.as_pathname(),
            Some(server_path.as_path())
        );
        unbound.send(b"hi").await?;
        let mut buf = [0; 8];
        let (n, from) = server.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from.is_unnamed()), (&b"hi"[..], true));
        Ok(())
    });
}

/// `send_to` a receiver whose queue is full waits without spinning (the
/// kernel offers no readiness for another socket's queue, so it waits on a
/// timer), and the message goes once the receiver reads.
#[test]
fn send_to_a_full_receiver_waits_without_spinning() {
    run(async {
        let path = temp_path("dgram-full");
        let receiver = UnixDatagram::bind(&path)?;
        let sender = UnixDatagram::unbound()?;
        // Fill the receiver's queue.
        let mut queued = 0;
        loop {
            match tarn_reactor::timeout(Duration::from_millis(50), sender.send_to(b"fill", &path))
                .await
            {
                Ok(sent) => {
                    sent?;
                    queued += 1;
                }
                Err(_) => break,
            }
            assert!(queued < 100_000, "the receiver's queue never filled");
        }
        // One more, while the receiver does not read for 300 ms: the send
        // is polled a handful of times (its timer doubling from 1 ms), not
        // over and over.
        let polls = std::rc::Rc::new(std::cell::Cell::new(0));
        let counted = std::rc::Rc::clone(&polls);
        let send = tarn_executor::spawn(async move {
            let mut sending = std::pin::pin!(sender.send_to(b"last", &path));
            std::future::poll_fn(|cx| {
                counted.set(counted.get() + 1);
                std::future::Future::poll(sending.as_mut(), cx)
            })
            .await
        });
        Timer::after(Duration::from_millis(300)).await;
        assert!(!send.is_finished(), "sent to a full queue");
        assert!(polls.get() <= 30, "polled {} times in 300 ms", polls.get());
        let mut buf = [0; 8];
        for _ in 0..queued {
            let n = receiver.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"fill");
        }
        assert_eq!(send.await.unwrap()?, 4);
        let n = receiver.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"last");
        Ok(())
    });
}

#[test]
fn bind_and_connect_errors_name_the_path() {
    run(async {
        let path = temp_path("in-use");
        let shown = path.display().to_string();
        let _listener = UnixListener::bind(&path)?;

        let err = UnixListener::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains(&shown), "{err}");
        let err = UnixDatagram::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains(&shown), "{err}");

        let missing = temp_path("missing");
        let shown = missing.display().to_string();
        let err = UnixStream::connect(&missing).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains(&shown), "{err}");
        let err = UnixDatagram::unbound()?.connect(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains(&shown), "{err}");
        let err = UnixDatagram::unbound()?
            .send_to(b"x", &missing)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains(&shown), "{err}");

        let long = std::env::temp_dir().join("x".repeat(200));
        let err = UnixListener::bind(&long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("at most"), "{err}");
        let err = UnixListener::bind("/tmp/nul\0inside").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = UnixStream::connect("").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        Ok(())
    });
}

#[test]
fn listener_accepts_a_hundred_concurrent_clients() {
    const CLIENTS: usize = 100;
    run(async {
        let path = temp_path("hundred");
        let listener = UnixListener::bind(&path)?;
        let server = tarn_executor::spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..CLIENTS {
                let (conn, _) = listener.accept().await?;
                handlers.push(tarn_executor::spawn(echo(conn)));
            }
            for handler in handlers {
                handler.await.unwrap()?;
            }
            io::Result::Ok(())
        });

        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let path = path.to_path_buf();
                tarn_executor::spawn(async move {
                    let mut conn = UnixStream::connect(&path).await?;
                    let message = random_bytes(1000 + i, i as u64);
                    conn.write_all(&message).await?;
                    conn.close().await?;
                    let mut back = Vec::new();
                    conn.read_to_end(&mut back).await?;
                    assert_eq!(back, message, "client {i}");
                    io::Result::Ok(())
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap()?;
        }
        server.await.unwrap()?;
        Ok(())
    });
}

#[test]
fn incoming_yields_connections() {
    run(async {
        let path = temp_path("incoming");
        let listener = UnixListener::bind(&path)?;
        let connect = async {
            let mut conns = Vec::new();
            for _ in 0..3 {
                conns.push(UnixStream::connect(&path).await?);
            }
            io::Result::Ok(conns)
        };
        let accept = listener.incoming().take(3).collect::<Vec<_>>();
        let (conns, accepted) = futures::join!(connect, accept);
        assert_eq!(conns?.len(), 3);
        for conn in accepted {
            assert!(conn?.local_addr()?.as_pathname() == Some(path.as_path()));
        }
        Ok(())
    });
}

/// A listener on `path` with the given backlog (std and tarn offer no knob).
fn listener_with_backlog(path: &Path, backlog: i32) -> io::Result<UnixListener> {
    let std_listener = std::os::unix::net::UnixListener::bind(path)?;
    // SAFETY: listen on an fd the std listener keeps open.
    if unsafe { libc::listen(std_listener.as_raw_fd(), backlog) } == -1 {
        return Err(io::Error::last_os_error());
    }
    UnixListener::from_std(std_listener)
}

#[test]
fn connect_waits_while_the_backlog_is_full() {
    run(async {
        let path = temp_path("backlog");
        // Linux queues backlog + 1 connections; further connects get EAGAIN.
        let listener = listener_with_backlog(&path, 0)?;
        let clients: Vec<_> = (0..4)
            .map(|_| tarn_executor::spawn(UnixStream::connect(path.to_path_buf())))
            .collect();
        Timer::after(Duration::from_millis(50)).await;
        assert!(
            clients.iter().any(|c| !c.is_finished()),
            "a backlog of 0 should hold back some of 4 connects"
        );
        let mut accepted = Vec::new();
        for _ in 0..4 {
            accepted.push(listener.accept().await?.0);
        }
        for client in clients {
            client.await.unwrap()?;
        }
        Ok(())
    });
}

#[test]
fn accepted_sockets_are_nonblocking_and_close_on_exec() {
    run(async {
        let path = temp_path("flags");
        let listener = UnixListener::bind(&path)?;
        let client = UnixStream::connect(&path).await?;
        let (server_side, _) = listener.accept().await?;
        let (pair_a, _pair_b) = UnixStream::pair()?;
        let dgram = UnixDatagram::unbound()?;
        for fd in [
            listener.as_raw_fd(),
            client.as_raw_fd(),
            server_side.as_raw_fd(),
            pair_a.as_raw_fd(),
            dgram.as_raw_fd(),
        ] {
            // SAFETY: fcntl on fds the sockets above keep open.
            let (fl, fd_flags) = unsafe {
                (
                    libc::fcntl(fd, libc::F_GETFL),
                    libc::fcntl(fd, libc::F_GETFD),
                )
            };
            assert!(fl & libc::O_NONBLOCK != 0, "fd {fd} blocks");
            assert!(
                fd_flags & libc::FD_CLOEXEC != 0,
                "fd {fd} is inherited by exec"
            );
        }
        Ok(())
    });
}

/// A blocking stream socket bound to the raw address `name` (a path, or an
/// abstract name with its leading NUL), connected to `target`.
fn bound_client(name: &[u8], target: &Path) -> io::Result<std::os::unix::net::UnixStream> {
    fn sockaddr(bytes: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
        // SAFETY: sockaddr_un is plain data, valid when zeroed.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        // sun_family, the bytes, and a NUL for a path.
        let len = 2 + bytes.len() + usize::from(bytes[0] != 0);
        (addr, len as libc::socklen_t)
    }
    // SAFETY: plain socket creation; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    for (bytes, bind) in [(name, true), (target.as_os_str().as_bytes(), false)] {
        let (addr, len) = sockaddr(bytes);
        let ptr = (&addr as *const libc::sockaddr_un).cast();
        // SAFETY: `addr` holds `len` valid bytes.
        let res = unsafe {
            if bind {
                libc::bind(fd.as_raw_fd(), ptr, len)
            } else {
                libc::connect(fd.as_raw_fd(), ptr, len)
            }
        };
        if res == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(std::os::unix::net::UnixStream::from(fd))
}

#[test]
fn accept_reports_a_bound_peer_address() {
    run(async {
        let path = temp_path("named-peer");
        let client_path = temp_path("named-client");
        let listener = UnixListener::bind(&path)?;

        let _client = bound_client(client_path.as_os_str().as_bytes(), &path)?;
        let (_, peer) = listener.accept().await?;
        assert_eq!(peer.as_pathname(), Some(client_path.as_path()));

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("\0tarn-net-{}-abstract-client", std::process::id());
            let _client = bound_client(name.as_bytes(), &path)?;
            let (_, peer) = listener.accept().await?;
            assert_eq!(peer.as_abstract_name(), Some(&name.as_bytes()[1..]));
        }
        Ok(())
    });
}

#[cfg(target_os = "linux")]
#[test]
fn abstract_names_need_no_file() {
    use std::os::linux::net::SocketAddrExt;
    run(async {
        let name = format!("\0tarn-net-{}-abstract", std::process::id());
        let listener = UnixListener::bind(&name)?;
        assert_eq!(
            listener.local_addr()?.as_abstract_name(),
            Some(&name.as_bytes()[1..])
        );
        let mut client = UnixStream::connect(&name).await?;
        let (mut server_side, _) = listener.accept().await?;
        client.write_all(b"abstract").await?;
        let mut buf = [0; 8];
        server_side.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"abstract");

        let err = UnixListener::bind(&name).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(
            err.to_string().contains("abstract name @tarn-net-"),
            "{err}"
        );

        let dgram_name = format!("\0tarn-net-{}-abstract-dgram", std::process::id());
        let receiver = UnixDatagram::bind(&dgram_name)?;
        UnixDatagram::unbound()?
            .send_to(b"ping", &dgram_name)
            .await?;
        let n = receiver.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"ping");
        Ok(())
    });
}

#[test]
fn std_conversions_keep_the_socket() {
    run(async {
        let (std_a, std_b) = std::os::unix::net::UnixStream::pair()?;
        let mut a = UnixStream::from_std(std_a)?;
        let b = UnixStream::from_std(std_b)?;
        a.write_all(b"x").await?;
        let mut std_b = b.into_std()?;
        // Deregistered but still non-blocking.
        let mut buf = [0; 2];
        assert_eq!(io::Read::read(&mut std_b, &mut buf)?, 1);
        let err = io::Read::read(&mut std_b, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let _ = UnixStream::from_std(std_b)?;

        let path = temp_path("std-listener");
        let listener = UnixListener::from_std(std::os::unix::net::UnixListener::bind(&path)?)?;
        assert!(format!("{listener:?}").contains(&*path.to_string_lossy()));
        let _ = UnixListener::from_std(listener.into_std()?)?;

        let (d, _) = std::os::unix::net::UnixDatagram::pair()?;
        let d = UnixDatagram::from_std(d)?;
        let _ = UnixDatagram::from_std(d.into_std()?)?;
        Ok(())
    });
}

#[test]
fn accept_backs_off_while_out_of_fds() {
    isolated("accept_backs_off_while_out_of_fds", || {
        run(async {
            let path = temp_path("emfile");
            let listener = UnixListener::bind(&path)?;
            let mut clients = Vec::new();
            for _ in 0..3 {
                clients.push(UnixStream::connect(&path).await?);
            }
            let (mut a, mut b) = UnixStream::pair()?;

            // Use up every fd this process may open (a few more than are
            // open now: the limit may be huge).
            let open = open_fds() as libc::rlim_t;
            set_nofile_soft(nofile_limit().0.min(open + 16));
            let mut hoard = Vec::new();
            let exhausted = loop {
                match std::fs::File::open("/dev/null") {
                    Ok(f) => hoard.push(f),
                    Err(e) => break e,
                }
            };
            assert_eq!(exhausted.raw_os_error(), Some(libc::EMFILE));

            let start = Instant::now();
            let cpu_start = cpu_time();
            let accept = async {
                let mut accepted = Vec::new();
                for _ in 0..3 {
                    accepted.push(listener.accept().await?);
                }
                io::Result::Ok((accepted, start.elapsed()))
            };
            let meanwhile = async {
                // Existing connections keep working while accept waits.
                for round in 0..5u8 {
                    a.write_all(&[round]).await?;
                    let mut got = [0];
                    b.read_exact(&mut got).await?;
                    assert_eq!(got, [round]);
                    Timer::after(Duration::from_millis(20)).await;
                }
                drop(hoard);
                io::Result::Ok(())
            };
            let (accepted, meanwhile) = futures::join!(accept, meanwhile);
            meanwhile?;
            let (accepted, waited) = accepted?;
            let cpu = cpu_time() - cpu_start;
            assert_eq!(accepted.len(), 3);
            assert!(
                waited >= Duration::from_millis(100),
                "accept completed while out of fds, after {waited:?}"
            );
            assert!(
                cpu < waited / 2,
                "accept spun while out of fds: {cpu:?} of CPU in {waited:?}"
            );
            Ok(())
        });
    });
}

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

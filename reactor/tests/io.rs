//! `Async<T>` as an I/O handle: `AsyncRead`/`AsyncWrite` on `Async<T>` and
//! on `&Async<T>` carry a few MiB intact (checksummed) between two tasks and
//! between two threads, vectored, through pipes as through sockets;
//! end-of-stream and `BrokenPipe` surface as such; `read_with`/`write_with`
//! (and their `_mut` forms) retry on `WouldBlock`; `into_inner` returns the
//! handle and the reactor forgets the fd; `get_ref`/`get_mut` reach the
//! handle; an fd cannot be registered twice, and the select backend refuses
//! one above `FD_SETSIZE` by name. Introspection: `sources()` lists a
//! waiting task's fd with its reader or writer, and `stats()` counters grow.
//! Neither a blocked writer whose peer shut down its write side nor a
//! blocked reader makes the reactor spin. Re-run on the poll and select
//! backends.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use tarn_reactor::{drive, timeout, Async, Reactor};
use tarn_test_support::{
    backend_name, bounded, fill_send_buffer, fnv1a, isolated_with_patience, native_or_valgrind,
    nofile_limit, pipe, rerun_on_poll_and_select, set_nofile_soft, unix_pair, Rng, FNV_START, HANG,
};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
}

const MIB: usize = 1 << 20;

fn source_of(fd: i32) -> Option<tarn_reactor::SourceInfo> {
    tarn_reactor::sources().into_iter().find(|s| s.fd == fd)
}

/// Writes `len` pseudo-random bytes in chunks of random sizes; returns
/// their checksum.
async fn send_random(
    mut w: impl futures::io::AsyncWrite + Unpin,
    len: usize,
    seed: u64,
) -> io::Result<u64> {
    let mut rng = Rng::xorshift(seed);
    let mut hash = FNV_START;
    let mut sent = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    while sent < len {
        let n = (1 + rng.below(chunk.len() as u64) as usize).min(len - sent);
        rng.fill(&mut chunk[..n]);
        hash = fnv1a(hash, &chunk[..n]);
        w.write_all(&chunk[..n]).await?;
        sent += n;
    }
    w.flush().await?;
    w.close().await?;
    Ok(hash)
}

/// Reads to end of stream with reads of random sizes; returns the byte
/// count and checksum.
async fn receive_all(
    mut r: impl futures::io::AsyncRead + Unpin,
    seed: u64,
) -> io::Result<(usize, u64)> {
    let mut rng = Rng::xorshift(seed);
    let mut hash = FNV_START;
    let mut total = 0;
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let want = 1 + rng.below(buf.len() as u64) as usize;
        let n = r.read(&mut buf[..want]).await?;
        if n == 0 {
            return Ok((total, hash));
        }
        hash = fnv1a(hash, &buf[..n]);
        total += n;
    }
}

#[test]
fn large_transfer_between_two_tasks_through_owned_async() {
    bounded("large_transfer_owned", || {
        let (a, b) = unix_pair();
        let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        let len = 4 * MIB + 17;
        let (sent, received) =
            drive(async { futures::join!(send_random(a, len, 1), receive_all(b, 2)) });
        let (n, hash) = received.unwrap();
        assert_eq!(n, len);
        assert_eq!(hash, sent.unwrap(), "the data arrived altered");
    });
}

#[test]
fn large_transfer_between_two_tasks_through_shared_references() {
    bounded("large_transfer_refs", || {
        let (a, b) = unix_pair();
        let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        let len = 3 * MIB + 5;
        drive(async {
            let send = async {
                let hash = send_random(&a, len, 3).await;
                // `a` stays alive: end the stream by hand.
                a.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
                hash
            };
            let (sent, received) = futures::join!(send, receive_all(&b, 4));
            let (n, hash) = received.unwrap();
            assert_eq!(n, len);
            assert_eq!(hash, sent.unwrap());
        });
        // Both handles are still registered and usable the other way.
        drive(async {
            (&b).write_all(b"back").await.unwrap();
            let mut buf = [0u8; 4];
            (&a).read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"back");
        });
    });
}

#[test]
fn large_transfer_between_two_threads_each_driving() {
    bounded("large_transfer_threads", || {
        let (a, b) = unix_pair();
        let len = 4 * MIB;
        let sender =
            thread::spawn(move || drive(send_random(Async::new(a).unwrap(), len, 5)).unwrap());
        let (n, hash) = drive(receive_all(Async::new(b).unwrap(), 6)).unwrap();
        assert_eq!(n, len);
        assert_eq!(hash, sender.join().unwrap());
    });
}

#[test]
fn large_transfer_through_a_pipe() {
    bounded("pipe_transfer", || {
        let (r, w) = pipe();
        let (r, w) = (Async::new(r).unwrap(), Async::new(w).unwrap());
        let len = 2 * MIB + 3;
        drive(async {
            // OwnedFd implements neither Read nor Write: use the closures.
            let send = async {
                let mut rng = Rng::xorshift(9);
                let mut hash = FNV_START;
                let mut sent = 0;
                let mut chunk = vec![0u8; 100_000];
                while sent < len {
                    let n = chunk.len().min(len - sent);
                    rng.fill(&mut chunk[..n]);
                    let mut off = 0;
                    while off < n {
                        off += w.write_with(|fd| raw_write(fd, &chunk[off..n])).await?;
                    }
                    hash = fnv1a(hash, &chunk[..n]);
                    sent += n;
                }
                drop(w);
                io::Result::Ok(hash)
            };
            let receive = async {
                let mut hash = FNV_START;
                let mut total = 0;
                let mut buf = vec![0u8; 70_000];
                loop {
                    let n = r.read_with(|fd| raw_read(fd, &mut buf)).await?;
                    if n == 0 {
                        return io::Result::Ok((total, hash));
                    }
                    hash = fnv1a(hash, &buf[..n]);
                    total += n;
                }
            };
            let (sent, received) = futures::join!(send, receive);
            let (n, hash) = received.unwrap();
            assert_eq!(n, len);
            assert_eq!(hash, sent.unwrap());
        });
    });
}

fn raw_read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length for the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn raw_write(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length for the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[test]
fn vectored_writes_and_reads_keep_the_order() {
    bounded("vectored", || {
        let (a, b) = unix_pair();
        let (mut a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        drive(async {
            let parts: [&[u8]; 3] = [b"one,", b"two,", b"three"];
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            let n = a.write_vectored(&slices).await.unwrap();
            assert_eq!(n, 13);
            let (mut x, mut y) = ([0u8; 6], [0u8; 7]);
            let mut bufs = [io::IoSliceMut::new(&mut x), io::IoSliceMut::new(&mut y)];
            let n = b.read_vectored(&mut bufs).await.unwrap();
            assert_eq!(n, 13);
            assert_eq!(&x, b"one,tw");
            assert_eq!(&y, b"o,three");
        });
    });
}

#[test]
fn end_of_stream_and_broken_pipe_are_reported() {
    bounded("eof_epipe", || {
        let (a, b) = unix_pair();
        let (a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        drive(async {
            let mut buf = [0u8; 8];
            let reader = async {
                // Waits, then sees end of stream when the peer goes away.
                assert_eq!((&b).read(&mut buf).await.unwrap(), 0);
            };
            let closer = async {
                yield_once().await;
                drop(a);
            };
            futures::join!(reader, closer);
            let err = loop {
                match b.write(&[1u8; 1024]).await {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
        });
    });
}

/// Returns `Pending` once (waking itself), then `Ready`.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

#[test]
fn read_with_and_write_with_retry_until_the_operation_succeeds() {
    bounded("read_with", || {
        let (a, b) = unix_pair();
        let (mut a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        drive(async {
            // read_with: the closure is called again after each WouldBlock.
            let calls = std::cell::Cell::new(0);
            let reader = b.read_with(|s| {
                calls.set(calls.get() + 1);
                let mut buf = [0u8; 3];
                (&mut &*s).read_exact(&mut buf).map(|()| buf)
            });
            let writer = async {
                yield_once().await;
                a.write_with(|s| (&mut &*s).write(b"abc")).await
            };
            let (got, wrote) = futures::join!(reader, writer);
            assert_eq!(&got.unwrap(), b"abc");
            assert_eq!(wrote.unwrap(), 3);
            assert!(calls.get() >= 2, "the closure was not retried");

            // write_with on a full socket waits for the peer to drain.
            let filled = fill_send_buffer(a.get_ref());
            assert!(filled > 0);
            let drain = async {
                yield_once().await;
                let mut left = filled;
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    // SAFETY: the closure reads; it keeps the fd.
                    let n = unsafe { b.read_with_mut(|s| s.read(&mut buf)) }
                        .await
                        .unwrap();
                    left -= n;
                }
                // SAFETY: as above.
                unsafe {
                    b.read_with_mut(|s| {
                        let mut one = [0u8];
                        s.read_exact(&mut one).map(|()| one[0])
                    })
                }
                .await
                .unwrap()
            };
            // SAFETY: the closure writes; it keeps the fd.
            let write = unsafe { a.write_with_mut(|s| s.write(&[42])) };
            let (last, wrote) = futures::join!(drain, write);
            assert_eq!(wrote.unwrap(), 1);
            assert_eq!(last, 42);

            // Errors other than WouldBlock are returned, not retried.
            let err = a
                .read_with(|_| Err::<(), _>(io::Error::other("boom")))
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "boom");
        });
    });
}

#[test]
fn into_inner_returns_the_handle_and_the_reactor_forgets_the_fd() {
    bounded("into_inner", || {
        let (a, b) = unix_pair();
        let a = Async::new(a).unwrap();
        let fd = a.as_raw_fd();
        assert!(source_of(fd).is_some());
        let a: UnixStream = a.into_inner().unwrap();
        assert_eq!(a.as_raw_fd(), fd, "the same fd comes back");
        assert!(source_of(fd).is_none(), "the reactor still lists fd {fd}");
        // Still open and usable; it can be registered anew.
        (&a).write_all(b"1").unwrap();
        let a = Async::new(a).unwrap();
        assert!(source_of(fd).is_some());
        let mut b = Async::new(b).unwrap();
        drive(async {
            let mut buf = [0u8];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"1");
            (&a).write_all(b"2").await.unwrap();
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"2");
        });
        drop(a);
        assert!(
            source_of(fd).is_none(),
            "dropping Async deregisters fd {fd}"
        );
    });
}

#[test]
fn get_ref_and_get_mut_reach_the_handle() {
    bounded("get_ref", || {
        let (a, b) = unix_pair();
        let peer_addr = a.peer_addr().unwrap().as_pathname().map(|p| p.to_owned());
        let mut a = Async::new(a).unwrap();
        let b = Async::new(b).unwrap();
        assert_eq!(a.get_ref().as_raw_fd(), a.as_raw_fd());
        assert_eq!(a.as_fd().as_raw_fd(), a.as_raw_fd());
        assert_eq!(
            a.get_ref()
                .peer_addr()
                .unwrap()
                .as_pathname()
                .map(|p| p.to_owned()),
            peer_addr
        );
        // Non-blocking was set by Async::new: a raw read would block.
        let mut byte = [0u8];
        // SAFETY: reads and writes through the handle keep its fd.
        let inner = unsafe { a.get_mut() };
        let err = inner.read(&mut byte).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        inner.write_all(b"m").unwrap();
        drive(async {
            let mut b = b;
            b.read_exact(&mut byte).await.unwrap();
        });
        assert_eq!(&byte, b"m");
    });
}

#[test]
fn registering_one_fd_twice_fails_with_already_exists() {
    bounded("already_exists", || {
        let (a, _b) = unix_pair();
        let a = Async::new(a).unwrap();
        let err = Async::new(a.get_ref().as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        // The first registration is intact.
        let source = source_of(a.as_raw_fd()).expect("still registered");
        assert_eq!(source.readers + source.writers, 0);
    });
}

#[test]
fn fd_above_fd_setsize_is_refused_by_name_on_the_select_backend_only() {
    bounded("fd_setsize", || {
        // Room for an fd number above 1024 (raise the soft limit if the
        // hard limit allows; skip otherwise).
        let (soft, hard) = nofile_limit();
        let high = 1500;
        if hard <= high as libc::rlim_t {
            eprintln!("skipped: RLIMIT_NOFILE hard limit {hard} too low");
            return;
        }
        if soft <= high as libc::rlim_t {
            set_nofile_soft(hard.min(4096));
        }
        let (a, _b) = unix_pair();
        // Find a free fd number above FD_SETSIZE and move the socket there.
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd >= `high` that we own.
        let fd = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, high) };
        assert!(fd >= high, "{}", io::Error::last_os_error());
        // SAFETY: `fd` was just created by fcntl and is owned by nobody else.
        let high_socket = unsafe { UnixStream::from_raw_fd(fd) };
        let res = Async::new(high_socket);
        if backend_name() == "select" {
            let err = res.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains("FD_SETSIZE") && msg.contains(&fd.to_string()),
                "{msg}"
            );
        } else {
            let high = res.unwrap();
            assert!(source_of(fd).is_some());
            drop(high);
        }
        assert!(source_of(fd).is_none());
    });
}

#[test]
fn sources_lists_a_waiting_reader_and_writer() {
    bounded("sources", || {
        let (a, b) = unix_pair();
        let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        let info = source_of(fb).expect("b is listed");
        assert_eq!((info.readers, info.writers), (0, 0));
        assert_ne!(source_of(fa).unwrap().token, info.token);
        drive(async {
            let reading = async {
                let mut byte = [0u8];
                (&b).read_exact(&mut byte).await.unwrap();
            };
            let check = async {
                let info = source_of(fb).unwrap();
                assert_eq!((info.readers, info.writers), (1, 0), "{info:?}");
                (&a).write_all(b"r").await.unwrap();
            };
            futures::join!(reading, check);

            fill_send_buffer(a.get_ref());
            let writing = a.writable();
            let check = async {
                let info = source_of(fa).unwrap();
                assert_eq!((info.readers, info.writers), (0, 1), "{info:?}");
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    match b.get_ref().read(&mut buf) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            };
            let (res, ()) = futures::join!(writing, check);
            res.unwrap();
            // writable() removes its waiter when it completes.
            assert_eq!(source_of(fa).map(|s| (s.readers, s.writers)), Some((0, 0)));
        });
    });
}

#[test]
fn stats_counters_grow_with_selects_events_and_wakes() {
    bounded("stats_grow", || {
        let before = tarn_reactor::stats();
        let (a, b) = unix_pair();
        let b = Async::new(b).unwrap();
        // Write once block_on surely sleeps in select (later under valgrind).
        let delay = native_or_valgrind(Duration::from_millis(10), Duration::from_millis(500));
        let writer = thread::spawn(move || {
            thread::sleep(delay);
            (&a).write_all(b"s").unwrap();
            a
        });
        drive(async {
            b.readable().await.unwrap();
        });
        let _a = writer.join().unwrap();
        let after = tarn_reactor::stats();
        assert!(after.selects > before.selects, "{before:?} -> {after:?}");
        assert!(after.events > before.events, "{before:?} -> {after:?}");
        assert!(after.wakes > before.wakes, "{before:?} -> {after:?}");
        let shown = format!("{:?}", Reactor::current().unwrap());
        assert!(
            shown.contains("backend") && shown.contains("stats"),
            "{shown}"
        );
        assert_eq!(
            Reactor::current().unwrap().backend().name(),
            backend_name(),
            "TARN_SELECTOR picks the backend"
        );
    });
}

#[test]
fn blocked_writer_does_not_spin_when_the_peer_shuts_down_its_write_side() {
    // The peer stops sending (shutdown(Write)) but does not read: the
    // writer stays blocked, and while it waits the reactor must sleep, not
    // spin on the "read side closed" condition nobody asked about.
    isolated_with_patience(
        "blocked_writer_does_not_spin_when_the_peer_shuts_down_its_write_side",
        HANG,
        || {
            let (a, b) = unix_pair();
            fill_send_buffer(&a);
            let a = Async::new(a).unwrap();
            b.shutdown(std::net::Shutdown::Write).unwrap();
            drive(async {
                let before = tarn_reactor::stats().selects;
                let waited = timeout(Duration::from_millis(200), a.writable()).await;
                assert!(waited.is_err(), "the socket cannot have become writable");
                let selects = tarn_reactor::stats().selects - before;
                // A sleeping reactor selects a handful of times in 200 ms;
                // a spinning one, thousands.
                assert!(
                    selects < 100,
                    "the reactor ran {selects} selects in 200 ms while one writer waited"
                );
            });
            drop(b);
        },
    );
}

#[test]
fn blocked_reader_does_not_spin_when_the_socket_is_writable() {
    // The mirror case: a reader waits, the socket is (always) writable.
    isolated_with_patience(
        "blocked_reader_does_not_spin_when_the_socket_is_writable",
        HANG,
        || {
            let (a, b) = unix_pair();
            let a = Async::new(a).unwrap();
            drive(async {
                let before = tarn_reactor::stats().selects;
                assert!(timeout(Duration::from_millis(200), a.readable())
                    .await
                    .is_err());
                let selects = tarn_reactor::stats().selects - before;
                assert!(selects < 100, "{selects} selects in 200 ms");
            });
            drop(b);
        },
    );
}

//! A server out of file descriptors neither spins nor stops: with
//! `RLIMIT_NOFILE` lowered so that `accept` fails with `EMFILE`, the
//! listener backs off (the process stays nearly idle), existing connections
//! keep echoing, and once fds are freed the queued connection and new ones
//! are accepted and served.
//!
//! This binary has one test, because it lowers the fd limit of its whole
//! process; the test first re-runs itself on the poll and select backends.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{self, Either};
use tarn::net::TcpListener;
use tarn_test_support::{
    backend_name, cpu_time, eventually, nofile_limit, open_fds, rerun_test_on_poll_and_select,
    set_nofile_soft, watchdog, PATIENCE,
};

const TEST: &str = "accept_backs_off_when_out_of_fds_and_recovers";

/// Starts an echo server on its own thread and executor; it stops when the
/// returned sender is dropped.
fn start_server() -> (SocketAddr, oneshot::Sender<()>, thread::JoinHandle<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = thread::spawn(move || {
        tarn::block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let serve = async {
                loop {
                    match listener.accept().await {
                        Ok((conn, _)) => tarn::spawn(common::echo(conn)).detach(),
                        Err(e) => panic!("accept failed instead of backing off: {e}"),
                    }
                }
            };
            futures::pin_mut!(serve);
            match future::select(serve, stopped).await {
                Either::Left(((), _)) | Either::Right(_) => {}
            }
        });
    });
    (addr_rx.recv().expect("server address"), stop, server)
}

/// Sends `msg` and waits up to `patience` for its echo: `Ok(false)` if it
/// did not come in time.
fn echoes(client: &mut TcpStream, msg: &[u8], patience: Duration) -> io::Result<bool> {
    client.set_read_timeout(Some(patience))?;
    client.write_all(msg)?;
    read_echo(client, msg)
}

fn read_echo(client: &mut TcpStream, msg: &[u8]) -> io::Result<bool> {
    let mut reply = vec![0; msg.len()];
    match client.read_exact(&mut reply) {
        Ok(()) => {
            assert_eq!(reply, msg);
            Ok(true)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether the listener waits on its back-off timer (it has no other
/// timer): the sign that `accept` failed with `EMFILE`.
fn backing_off() -> bool {
    eventually(Duration::from_secs(2), || tarn::stats().timers > 0)
}

#[test]
fn accept_backs_off_when_out_of_fds_and_recovers() {
    rerun_test_on_poll_and_select(TEST);
    let _watchdog = watchdog(TEST, PATIENCE);

    let (addr, stop, server) = start_server();
    // One fd to give back when the clients' side runs out before the server's.
    let mut spare = Some(std::fs::File::open("/dev/null").unwrap());
    let (soft, _) = nofile_limit();
    let limit = open_fds() as libc::rlim_t + 40;
    set_nofile_soft(limit);

    // Connect until the server cannot accept: each accepted client costs
    // two fds (ours and the server's); the first that gets no echo while
    // the listener backs off stays queued.
    let mut served = Vec::new();
    let pending = loop {
        assert!(served.len() < 100, "{limit} fds never ran out");
        match TcpStream::connect(addr) {
            Ok(mut client) => {
                if echoes(&mut client, b"ping", Duration::from_secs(1)).unwrap() {
                    served.push(client);
                } else if backing_off() {
                    break client;
                } else {
                    // Only slow (a loaded machine): the echo still comes.
                    client
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    assert!(
                        read_echo(&mut client, b"ping").unwrap(),
                        "no echo, no back-off"
                    );
                    served.push(client);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                assert!(
                    spare.take().is_some(),
                    "out of fds twice on the client side"
                );
            }
            Err(e) => panic!("connect: {e}"),
        }
    };
    assert!(served.len() >= 8, "only {} clients served", served.len());

    // Out of fds, the process is nearly idle.
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    println!(
        "{}: {} clients served before EMFILE; {cpu:?} of CPU in {wall:?} while out of fds",
        backend_name(),
        served.len()
    );
    assert!(
        cpu < wall / 5,
        "{cpu:?} of CPU in {wall:?} while out of fds: the accept loop spins"
    );

    // Existing connections are still served.
    for client in &mut served {
        assert!(echoes(client, b"still here", Duration::from_secs(5)).unwrap());
    }

    // Free some fds: the queued connection gets accepted, new ones too.
    served.truncate(served.len() - 4);
    let mut pending = pending;
    pending
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(
        read_echo(&mut pending, b"ping").unwrap(),
        "the queued connection was not accepted after fds were freed"
    );
    for _ in 0..2 {
        let mut client = TcpStream::connect(addr).expect("connect after recovery");
        assert!(echoes(&mut client, b"new", Duration::from_secs(5)).unwrap());
        served.push(client);
    }

    drop(served);
    drop(pending);
    set_nofile_soft(soft);
    drop(stop);
    server.join().expect("the server thread panicked");
}

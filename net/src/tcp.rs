//! TCP: [`TcpListener`] and [`TcpStream`]. What they share with the Unix
//! stream types lives in `stream.rs` and `accept.rs`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::task::{Context, Poll};
use std::time::Duration;

use tarn_reactor::Async;

use crate::accept::{sealed::Accept, AcceptState};
use crate::addr::{lookup, no_address, resolve, ToSocketAddrs};
use crate::socket::{TcpSocket, DEFAULT_BACKLOG};
use crate::sys;

/// A TCP socket listening for connections.
///
/// ```
/// use tarn_net::{TcpListener, TcpStream};
///
/// tarn_executor::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = tarn_executor::spawn(async move { TcpStream::connect(addr).await });
///     let (server_side, peer) = listener.accept().await?;
///     assert_eq!(peer, client.await.unwrap()?.local_addr()?);
///     assert!(server_side.nodelay()?);
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct TcpListener {
    io: Async<std::net::TcpListener>,
    /// Whether `accept` must turn `TCP_NODELAY` on itself: for a listener
    /// adopted with `from_std`, or where accepted sockets do not inherit
    /// the listener's setting (they do on Linux, and [`TcpSocket`] sets it).
    nodelay_on_accept: bool,
}

/// Whether an accepted socket inherits the listener's `TCP_NODELAY`.
const ACCEPT_INHERITS_NODELAY: bool = cfg!(any(target_os = "linux", target_os = "android"));

listener_socket!(TcpListener, std::net::TcpListener, TcpStream, SocketAddr);

impl TcpListener {
    /// Binds to the first of `addr`'s addresses that works, with
    /// `SO_REUSEADDR` and a backlog of [`DEFAULT_BACKLOG`]; use
    /// [`TcpSocket`] for other settings. The streams it accepts have
    /// `TCP_NODELAY` on (see [`TcpStream::set_nodelay`]).
    ///
    /// # Errors
    ///
    /// The last address's error, naming the address ("cannot bind to
    /// 127.0.0.1:80: Permission denied").
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addrs = resolve(&addr).await?;
        let mut last = None;
        for addr in &addrs {
            let bound = TcpSocket::new_for(addr).and_then(|socket| {
                socket.set_reuseaddr(true)?;
                socket.bind(*addr)?;
                socket.listen(DEFAULT_BACKLOG)
            });
            match bound {
                Ok(listener) => return Ok(listener),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| no_address("bind to")))
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Adopts a std listener (made non-blocking here). The streams it
    /// accepts get `TCP_NODELAY`, as those of [`bind`](Self::bind) do:
    /// inherited where the listener has it (one made by [`TcpSocket`] or
    /// [`reuseport_listeners`](crate::reuseport_listeners)), set on each
    /// accepted stream otherwise.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        let has_nodelay =
            sys::getsockopt(listener.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0;
        Ok(TcpListener {
            io: Async::new(listener)?,
            nodelay_on_accept: !(ACCEPT_INHERITS_NODELAY && has_nodelay),
        })
    }

    /// A listener on a listening socket made by [`TcpSocket`], whose
    /// `TCP_NODELAY` setting its accepted streams inherit where they can.
    pub(crate) fn from_socket(fd: OwnedFd) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Async::new_nonblocking(std::net::TcpListener::from(fd))?,
            nodelay_on_accept: !ACCEPT_INHERITS_NODELAY,
        })
    }
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn poll_accept(
        &self,
        state: &mut AcceptState,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let fd = self.io.as_raw_fd();
        state.poll(
            cx,
            |slot, cx| self.io.poll_read_in(slot, cx, || sys::accept(fd)),
            |(conn, addr)| {
                if self.nodelay_on_accept {
                    sys::setsockopt(conn.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
                }
                Ok((TcpStream::from_nonblocking(conn)?, addr.inet()?))
            },
        )
    }
}

/// A TCP connection.
///
/// Reads and writes go straight to the syscall and wait for readiness only
/// on `WouldBlock`. Writes use `MSG_NOSIGNAL`: writing to a closed peer
/// returns `BrokenPipe` (or `ConnectionReset`) and never raises `SIGPIPE`.
/// `poll_close` shuts the write direction down (the peer reads end of stream).
/// `TCP_NODELAY` is on ([`set_nodelay`](Self::set_nodelay) says why).
///
/// ```
/// use tarn_net::{TcpListener, TcpStream};
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
///
/// tarn_executor::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     // One task reads while another writes: split the stream.
///     let (mut from_client, mut to_client) = server.into_split();
///     tarn_executor::spawn(async move {
///         futures::io::copy(&mut from_client, &mut to_client).await
///     })
///     .detach();
///     client.write_all(b"ping").await?;
///     let mut reply = [0; 4];
///     client.read_exact(&mut reply).await?;
///     assert_eq!(&reply, b"ping");
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct TcpStream {
    io: Async<std::net::TcpStream>,
}

stream_socket!(TcpStream, std::net::TcpStream, SocketAddr);

impl TcpStream {
    /// Connects to `addr`, trying each of its addresses in order; host names
    /// are resolved on the blocking pool. The stream has `TCP_NODELAY` on
    /// (see [`set_nodelay`](Self::set_nodelay)).
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`, ...).
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = resolve(&addr).await?;
        let mut last = None;
        for addr in &addrs {
            let attempt = async {
                let socket = TcpSocket::new_for(addr)?;
                socket.connect(*addr).await
            };
            match attempt.await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| no_address("connect to")))
    }

    /// Like [`connect`](Self::connect), giving up after `timeout` with a
    /// `TimedOut` error that names the addresses (or the host name). The
    /// timeout covers the name lookup too.
    pub async fn connect_timeout(
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        let resolve = lookup(&addr);
        let what = resolve.describe();
        let connect = async { TcpStream::connect(resolve.addrs().await?.as_slice()).await };
        match tarn_reactor::timeout(timeout, connect).await {
            Ok(res) => res,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {what} timed out after {timeout:?}"),
            )),
        }
    }

    pub(crate) async fn connect_socket(fd: OwnedFd, addr: SocketAddr) -> io::Result<TcpStream> {
        let connected = sys::connect(&fd, &addr)?;
        let stream = TcpStream::from_nonblocking(fd)?;
        if !connected {
            stream.io.writable().await?;
            if let Some(e) = sys::take_error(stream.as_raw_fd())? {
                return Err(e);
            }
        }
        Ok(stream)
    }

    /// Sets `TCP_NODELAY`: small writes leave at once instead of waiting
    /// (Nagle's algorithm) for the peer to acknowledge earlier data.
    ///
    /// tarn turns it on for every stream that [`TcpListener::accept`] returns
    /// and that [`connect`](Self::connect) makes, as Go does: with Nagle on,
    /// a reply written in more than one piece (an echo loop with a 4 KiB
    /// buffer answering 16 KiB) waits ~40 ms for the peer's delayed ACK.
    /// `set_nodelay(false)` opts out, for a stream that sends many small
    /// writes and prefers fewer packets to lower latency. A stream adopted
    /// with [`from_std`](Self::from_std) keeps its own setting.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }
}

//! UDP: [`UdpSocket`].
//!
//! Datagrams go straight to `send`/`recv` (and their `_to`/`_from`
//! forms); a call waits for readiness only when the syscall returns
//! `WouldBlock`. Destination names in [`UdpSocket::send_to`] and
//! [`UdpSocket::connect`] resolve on the blocking pool, like TCP's.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use tarn_reactor::Async;

use crate::addr::{no_address, resolve, ToSocketAddrs};
use crate::sys;

/// A UDP socket.
///
/// Unconnected, it sends to any address ([`send_to`](Self::send_to)) and
/// receives from any ([`recv_from`](Self::recv_from)). After
/// [`connect`](Self::connect) it talks to one peer with
/// [`send`](Self::send) and [`recv`](Self::recv), and the kernel drops
/// datagrams from anyone else.
///
/// ```
/// use tarn_net::UdpSocket;
///
/// tarn_executor::block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0").await?;
///     let b = UdpSocket::bind("127.0.0.1:0").await?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct UdpSocket {
    io: Async<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to the first of `addr`'s addresses that works (without
    /// `SO_REUSEADDR`: a port in use is an error). Port 0 picks a free port;
    /// [`local_addr`](Self::local_addr) tells which.
    ///
    /// # Errors
    ///
    /// The last address's error, naming the address ("cannot bind to
    /// 127.0.0.1:53: Permission denied").
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addrs = resolve(&addr).await?;
        let mut last = None;
        for addr in &addrs {
            match UdpSocket::bind_one(addr) {
                Ok(socket) => return Ok(socket),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| no_address("bind to")))
    }

    fn bind_one(addr: &SocketAddr) -> io::Result<UdpSocket> {
        let fd = sys::socket(sys::domain(addr), libc::SOCK_DGRAM)?;
        sys::bind(&fd, addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind to {addr}: {e}")))?;
        Ok(UdpSocket {
            io: Async::new_nonblocking(std::net::UdpSocket::from(fd))?,
        })
    }

    /// Sets the socket's peer to the first of `addr`'s addresses that it
    /// accepts: [`send`](Self::send) goes there, and only its datagrams
    /// are received. No packet is sent; this cannot tell whether the peer
    /// listens (a later `recv` may fail with `ConnectionRefused`).
    ///
    /// # Errors
    ///
    /// The last address's error.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addrs = resolve(&addr).await?;
        let mut last = None;
        for addr in &addrs {
            match self.io.get_ref().connect(addr) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| no_address("connect to")))
    }

    /// Sends `buf` as one datagram to the connected peer; returns the
    /// bytes sent.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write_with(|s| s.send(buf)).await
    }

    /// Receives one datagram from the connected peer into `buf`; the rest
    /// of a datagram longer than `buf` is discarded.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|s| s.recv(buf)).await
    }

    /// Sends `buf` as one datagram to the first of `addr`'s addresses.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `addr` resolves to no address.
    pub async fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addrs = resolve(&addr).await?;
        let Some(addr) = addrs.first() else {
            return Err(no_address("send to"));
        };
        self.io.write_with(|s| s.send_to(buf, addr)).await
    }

    /// Receives one datagram into `buf`; returns its length and sender.
    /// The rest of a datagram longer than `buf` is discarded.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.read_with(|s| s.recv_from(buf)).await
    }

    /// Like [`recv`](Self::recv), leaving the datagram queued.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|s| s.peek(buf)).await
    }

    /// Like [`recv_from`](Self::recv_from), leaving the datagram queued.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.read_with(|s| s.peek_from(buf)).await
    }

    /// Waits until a datagram can be received without blocking.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Waits until a datagram can be sent without blocking.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address (`NotConnected` before
    /// [`connect`](Self::connect)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Allows sending to broadcast addresses (`SO_BROADCAST`).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Joins the IPv4 multicast group `group` on the interface with
    /// address `interface` (`Ipv4Addr::UNSPECIFIED`: the kernel chooses).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().join_multicast_v4(&group, &interface)
    }

    /// Leaves a group joined with [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v4(&group, &interface)
    }

    /// Joins the IPv6 multicast group `group` on interface number
    /// `interface` (0: the kernel chooses).
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().join_multicast_v6(&group, interface)
    }

    /// Leaves a group joined with [`join_multicast_v6`](Self::join_multicast_v6).
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v6(&group, interface)
    }

    /// Sets whether IPv4 multicast datagrams sent come back to this host
    /// (`IP_MULTICAST_LOOP`).
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v4(on)
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v4()
    }

    /// Sets the TTL of IPv4 multicast datagrams (`IP_MULTICAST_TTL`).
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_multicast_ttl_v4(ttl)
    }

    /// The `IP_MULTICAST_TTL` value.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.io.get_ref().multicast_ttl_v4()
    }

    /// Sets whether IPv6 multicast datagrams sent come back to this host
    /// (`IPV6_MULTICAST_LOOP`).
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v6(on)
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v6()
    }

    /// Adopts a std socket (made non-blocking here).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: Async::new(socket)?,
        })
    }

    /// Deregisters the socket and returns it as a std socket (still non-blocking).
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        self.io.into_inner()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.io.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

fd_traits!(UdpSocket);

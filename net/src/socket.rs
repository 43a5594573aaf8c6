//! [`TcpSocket`]: set socket options before binding, listening or connecting.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::sys;
use crate::{TcpListener, TcpStream};

/// The backlog [`TcpListener::bind`] uses, and [`TcpSocket::listen`]'s usual value.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// A TCP socket not yet listening or connected: the place to set
/// `SO_REUSEADDR`, `SO_REUSEPORT`, buffer sizes and the backlog.
///
/// ```
/// use tarn_net::TcpSocket;
///
/// let socket = TcpSocket::new_v4()?;
/// socket.set_reuseaddr(true)?;
/// socket.set_reuseport(true)?;
/// socket.bind("127.0.0.1:0".parse().unwrap())?;
/// let listener = socket.listen(128)?;
/// # drop(listener);
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    fd: OwnedFd,
}

impl TcpSocket {
    /// A new IPv4 TCP socket (non-blocking, close-on-exec).
    pub fn new_v4() -> io::Result<TcpSocket> {
        TcpSocket::new(libc::AF_INET)
    }

    /// A new IPv6 TCP socket (non-blocking, close-on-exec).
    pub fn new_v6() -> io::Result<TcpSocket> {
        TcpSocket::new(libc::AF_INET6)
    }

    /// A new TCP socket of the family of `addr`.
    pub fn new_for(addr: &SocketAddr) -> io::Result<TcpSocket> {
        TcpSocket::new(sys::domain(addr))
    }

    fn new(domain: libc::c_int) -> io::Result<TcpSocket> {
        let socket = TcpSocket {
            fd: sys::socket(domain, libc::SOCK_STREAM)?,
        };
        socket.set_nodelay(true)?;
        Ok(socket)
    }

    /// Allows binding an address still in `TIME_WAIT` (`SO_REUSEADDR`).
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        sys::setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            on.into(),
        )
    }

    /// Whether `SO_REUSEADDR` is set.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        Ok(sys::getsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR)? != 0)
    }

    /// Lets several sockets bind the same address, the kernel spreading
    /// connections among them (`SO_REUSEPORT`): one listener per core.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        sys::setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            on.into(),
        )
    }

    /// Whether `SO_REUSEPORT` is set.
    pub fn reuseport(&self) -> io::Result<bool> {
        Ok(sys::getsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT)? != 0)
    }

    /// Sets the send buffer size (`SO_SNDBUF`; the kernel doubles it).
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        sys::setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            clamp(size),
        )
    }

    /// The send buffer size (`SO_SNDBUF`).
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        Ok(sys::getsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF)? as u32)
    }

    /// Sets the receive buffer size (`SO_RCVBUF`; the kernel doubles it).
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        sys::setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            clamp(size),
        )
    }

    /// The receive buffer size (`SO_RCVBUF`).
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        Ok(sys::getsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF)? as u32)
    }

    /// Sets `TCP_NODELAY`: small writes leave at once instead of waiting
    /// (Nagle's algorithm) for the peer to acknowledge earlier data.
    ///
    /// On by default in tarn, as in Go: with Nagle on, a reply written in
    /// more than one piece can wait for the peer's delayed ACK, some 40 ms.
    /// The stream [`connect`](Self::connect) makes keeps this socket's
    /// setting, and so do the streams a listener made by
    /// [`listen`](Self::listen) accepts: `set_nodelay(false)` here turns
    /// Nagle back on for all of them.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        sys::setsockopt(
            self.fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            on.into(),
        )
    }

    /// Whether `TCP_NODELAY` is set (it is, unless turned off).
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(sys::getsockopt(self.fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0)
    }

    /// Binds to `addr`; the error names the address.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        sys::bind(&self.fd, &addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind to {addr}: {e}")))
    }

    /// The address the socket is bound to: after [`bind`](Self::bind) to
    /// port 0, the port the kernel chose. An unbound socket reports the
    /// unspecified address and port 0.
    ///
    /// ```
    /// use tarn_net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// socket.bind("127.0.0.1:0".parse().unwrap())?;
    /// let addr = socket.local_addr()?;
    /// assert_eq!(addr.ip().to_string(), "127.0.0.1");
    /// assert_ne!(addr.port(), 0);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        // getsockname through std, on a duplicate of the fd that is closed
        // again at once (this is not a hot path).
        std::net::TcpStream::from(self.fd.try_clone()?).local_addr()
    }

    /// Starts listening with room for `backlog` pending connections.
    pub fn listen(self, backlog: i32) -> io::Result<TcpListener> {
        sys::listen(&self.fd, backlog)?;
        TcpListener::from_socket(self.fd)
    }

    /// Connects to `addr`.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect_socket(self.fd, addr).await
    }
}

/// `count` listening sockets on `addr` sharing its port (`SO_REUSEPORT`),
/// for the thread-per-core model: the kernel spreads incoming connections
/// across them, and each executor thread adopts one with
/// [`TcpListener::from_std`] on that thread (so that it is that thread's
/// to drive). With port 0, the first picks a free port and the others
/// share it. Each has `SO_REUSEADDR`, `TCP_NODELAY` (which accepted
/// streams inherit), close-on-exec and the [`DEFAULT_BACKLOG`].
///
/// ```
/// let listeners = tarn_net::reuseport_listeners("127.0.0.1:0".parse().unwrap(), 2)?;
/// let port = listeners[0].local_addr()?.port();
/// assert_eq!(listeners[1].local_addr()?.port(), port);
/// # std::io::Result::Ok(())
/// ```
///
/// # Errors
///
/// `InvalidInput` for a count of zero; otherwise those of socket, bind
/// (naming the address) and listen.
pub fn reuseport_listeners(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    if count == 0 {
        let e = "reuseport_listeners: a count of 0 listeners";
        return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
    }
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = TcpSocket::new_for(&addr)?;
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        sys::listen(&socket.fd, DEFAULT_BACKLOG)?;
        let listener = std::net::TcpListener::from(socket.fd);
        // The rest share the port the first got.
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn clamp(size: u32) -> libc::c_int {
    size.min(libc::c_int::MAX as u32) as libc::c_int
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

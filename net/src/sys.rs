//! The socket system calls std does not offer: non-blocking, close-on-exec
//! socket creation and accept, `send` without `SIGPIPE`, and the options
//! the socket builder sets. All of tarn-net's `unsafe` is here; every call
//! that reports failure with `-1` goes through tarn-selector's `syscall!`.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tarn_selector::syscall;

/// A new non-blocking, close-on-exec socket.
pub(crate) fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket takes plain integers.
    let fd = unsafe {
        syscall!(socket(
            domain,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0
        ))
    }?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The address family of `addr`.
pub(crate) fn domain(addr: &SocketAddr) -> libc::c_int {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// A `sockaddr_storage` holding `addr`, and its length.
fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Reads back a socket address the kernel filled in.
fn from_sockaddr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected address family {family}"),
        )),
    }
}

pub(crate) fn bind(fd: &OwnedFd, addr: &SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid address of `len` bytes.
    unsafe {
        syscall!(bind(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len
        ))
    }?;
    Ok(())
}

pub(crate) fn listen(fd: &OwnedFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes plain integers.
    unsafe { syscall!(listen(fd.as_raw_fd(), backlog)) }?;
    Ok(())
}

/// Starts a connect; `Ok(false)` means it is in progress (`EINPROGRESS`).
pub(crate) fn connect(fd: &OwnedFd, addr: &SocketAddr) -> io::Result<bool> {
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid address of `len` bytes.
    match unsafe {
        syscall!(connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len
        ))
    } {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A socket address as the kernel wrote it (`accept`), of any family.
pub(crate) struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    /// The address of an IPv4 or IPv6 peer.
    pub(crate) fn inet(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.storage)
    }

    /// The address of a Unix-domain peer.
    pub(crate) fn unix(&self) -> io::Result<std::os::unix::net::SocketAddr> {
        // SAFETY: sockaddr_storage is larger than and aligned for
        // sockaddr_un, and the kernel wrote a Unix address (or nothing,
        // leaving zeroes, which read as an unnamed address).
        let addr: &libc::sockaddr_un =
            unsafe { &*(&self.storage as *const libc::sockaddr_storage).cast() };
        from_sockaddr_un(addr, self.len)
    }
}

/// Accepts a connection as a non-blocking, close-on-exec socket.
pub(crate) fn accept(fd: RawFd) -> io::Result<(OwnedFd, RawAddr)> {
    let mut addr = RawAddr {
        // SAFETY: sockaddr_storage is plain data, valid when zeroed.
        storage: unsafe { std::mem::zeroed() },
        len: size_of::<libc::sockaddr_storage>() as libc::socklen_t,
    };
    // SAFETY: `storage` has room for `len` bytes, and `len` is updated by the kernel.
    let conn = unsafe {
        syscall!(accept4(
            fd,
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
        ))
    }?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok((unsafe { OwnedFd::from_raw_fd(conn) }, addr))
}

/// `recv` into `buf`.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live slice `buf`.
    unsafe { syscall!(recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0)) }.map(|n| n as usize)
}

/// `recv` into memory that may be uninitialised: the kernel only writes.
pub(crate) fn recv_uninit(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live, writable slice
    // `buf`; recv writes bytes into it and never reads it, so it need not
    // be initialised.
    unsafe { syscall!(recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0)) }.map(|n| n as usize)
}

/// `readv` into `bufs` (at most [`MAX_IOV`] of them).
pub(crate) fn recv_vectored(fd: RawFd, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
    let bufs = iov_window_mut(bufs);
    // SAFETY: IoSliceMut is ABI-compatible with iovec on Unix, and the
    // slices describe live, writable buffers.
    unsafe { syscall!(readv(fd, bufs.as_ptr().cast(), bufs.len() as libc::c_int)) }
        .map(|n| n as usize)
}

/// The slices one vectored call passes to the kernel: from the first that
/// is not empty (so that empty ones in front cannot make a call move
/// nothing, which a read would report as end of stream), at most
/// [`MAX_IOV`] of them.
pub(crate) fn iov_window<'a, 'b>(bufs: &'a [io::IoSlice<'b>]) -> &'a [io::IoSlice<'b>] {
    let start = bufs
        .iter()
        .position(|b| !b.is_empty())
        .unwrap_or(bufs.len());
    let bufs = &bufs[start..];
    &bufs[..bufs.len().min(MAX_IOV)]
}

/// [`iov_window`] of buffers to read into.
pub(crate) fn iov_window_mut<'a, 'b>(
    bufs: &'a mut [io::IoSliceMut<'b>],
) -> &'a mut [io::IoSliceMut<'b>] {
    let start = bufs
        .iter()
        .position(|b| !b.is_empty())
        .unwrap_or(bufs.len());
    let bufs = &mut bufs[start..];
    let len = bufs.len().min(MAX_IOV);
    &mut bufs[..len]
}

/// Shuts down one or both directions of a socket.
pub(crate) fn shutdown(fd: RawFd, how: std::net::Shutdown) -> io::Result<()> {
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: shutdown takes plain integers.
    unsafe { syscall!(shutdown(fd, how)) }.map(drop)
}

/// `send` that reports a closed peer as `EPIPE` instead of raising `SIGPIPE`.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live slice `buf`.
    unsafe { syscall!(send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)) }
        .map(|n| n as usize)
}

/// The most slices one `sendmsg` takes (`IOV_MAX`); more is `EMSGSIZE`.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_IOV: usize = libc::UIO_MAXIOV as usize;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAX_IOV: usize = 1024;

/// Vectored `send` without `SIGPIPE`. Of more than [`MAX_IOV`] slices it
/// sends what the first `MAX_IOV` hold (as std's `write_vectored` does) and
/// returns the count, so the caller writes the rest (see [`iov_window`]).
pub(crate) fn send_vectored(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let bufs = iov_window(bufs);
    // SAFETY: msghdr is plain data, valid when zeroed.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `msg` points to `bufs`, live for the call, and names no address
    // or control data.
    unsafe { syscall!(sendmsg(fd, &msg, libc::MSG_NOSIGNAL)) }.map(|n| n as usize)
}

/// The pending error of a socket (`SO_ERROR`), cleared by reading it.
pub(crate) fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let err: libc::c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

pub(crate) fn setsockopt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the value points to a live c_int of the size given.
    unsafe {
        syscall!(setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t
        ))
    }?;
    Ok(())
}

pub(crate) fn getsockopt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value = MaybeUninit::<libc::c_int>::zeroed();
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` has room for the `len` bytes the kernel may write.
    unsafe {
        syscall!(getsockopt(
            fd,
            level,
            name,
            value.as_mut_ptr().cast(),
            &mut len
        ))
    }?;
    // SAFETY: zero-initialised, and possibly overwritten by the kernel.
    Ok(unsafe { value.assume_init() })
}

/// A connected pair of non-blocking, close-on-exec Unix-domain sockets.
pub(crate) fn socketpair(ty: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two fds the kernel writes.
    unsafe {
        syscall!(socketpair(
            libc::AF_UNIX,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr()
        ))
    }?;
    // SAFETY: the kernel just returned these fds; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A Unix-domain socket address in the kernel's form.
///
/// A path that starts with a NUL byte names a socket in Linux's abstract
/// namespace (the rest of the bytes, no file); any other path is a file.
pub(crate) struct UnixAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl UnixAddr {
    pub(crate) fn new(path: &std::path::Path) -> io::Result<UnixAddr> {
        use std::os::unix::ffi::OsStrExt;

        // SAFETY: sockaddr_un is plain data, valid when zeroed.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Unix socket path must not be empty",
            ));
        }
        let abstract_name = bytes[0] == 0;
        if bytes[usize::from(abstract_name)..].contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Unix socket path must not contain NUL bytes (except a leading one, for an abstract name)",
            ));
        }
        // A file path needs room for its terminating NUL.
        let room = addr.sun_path.len() - usize::from(!abstract_name);
        if bytes.len() > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a Unix socket path may be at most {room} bytes long; this one has {}",
                    bytes.len()
                ),
            ));
        }
        for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        let len = sun_path_offset() + bytes.len() + usize::from(!abstract_name);
        Ok(UnixAddr {
            addr,
            len: len as libc::socklen_t,
        })
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.addr as *const libc::sockaddr_un).cast()
    }
}

/// Where `sun_path` starts inside `sockaddr_un`.
fn sun_path_offset() -> usize {
    // `offset_of!` would need Rust 1.77.
    // SAFETY: sockaddr_un is plain data, valid when zeroed.
    let addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_path.as_ptr() as usize - (&addr as *const libc::sockaddr_un as usize)
}

pub(crate) fn bind_unix(fd: &OwnedFd, addr: &UnixAddr) -> io::Result<()> {
    // SAFETY: `addr` holds a valid address of `addr.len` bytes.
    unsafe { syscall!(bind(fd.as_raw_fd(), addr.as_ptr(), addr.len)) }?;
    Ok(())
}

/// Starts a connect; `Ok(false)` means it is in progress (`EINPROGRESS`).
/// A listener whose backlog is full makes it fail with `WouldBlock`.
pub(crate) fn connect_unix(fd: RawFd, addr: &UnixAddr) -> io::Result<bool> {
    // SAFETY: `addr` holds a valid address of `addr.len` bytes.
    match unsafe { syscall!(connect(fd, addr.as_ptr(), addr.len)) } {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `sendto` a Unix-domain address, without `SIGPIPE`.
pub(crate) fn send_to_unix(fd: RawFd, buf: &[u8], addr: &UnixAddr) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live slice `buf`, and
    // `addr` holds a valid address of `addr.len` bytes.
    unsafe {
        syscall!(sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            addr.as_ptr(),
            addr.len
        ))
    }
    .map(|n| n as usize)
}

/// Reads back a Unix-domain address the kernel filled in. std has no
/// constructor from the raw form, so this goes through its public ones.
fn from_sockaddr_un(
    addr: &libc::sockaddr_un,
    len: libc::socklen_t,
) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::SocketAddr;

    let path_len = (len as usize)
        .saturating_sub(sun_path_offset())
        .min(addr.sun_path.len());
    // SAFETY: c_char and u8 have the same size and alignment, and the
    // slice lies within `addr.sun_path`.
    let bytes: &[u8] =
        unsafe { std::slice::from_raw_parts(addr.sun_path.as_ptr().cast(), path_len) };
    match bytes.split_first() {
        // An unnamed socket (the usual client): std reads an empty path so.
        None => SocketAddr::from_pathname(""),
        Some((0, name)) => abstract_addr(name),
        Some(_) => {
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(&bytes[..end]))
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;

    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract Unix socket names exist only on Linux",
    ))
}

/// `recv` with `MSG_PEEK`: reads without removing the data from the queue.
pub(crate) fn peek(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live slice `buf`.
    unsafe { syscall!(recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK)) }
        .map(|n| n as usize)
}

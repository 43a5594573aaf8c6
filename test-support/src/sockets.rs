//! Plain (std and libc) sockets and pipes for tests to drive tarn's with:
//! connected pairs, a full send buffer, a reset instead of a close,
//! temporary socket paths.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A connected pair of blocking Unix stream sockets.
pub fn unix_pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().expect("socketpair")
}

/// A connected pair of non-blocking Unix stream sockets.
pub fn nonblocking_unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = unix_pair();
    a.set_nonblocking(true).expect("set_nonblocking");
    b.set_nonblocking(true).expect("set_nonblocking");
    (a, b)
}

/// A connected pair of blocking TCP sockets on the loopback interface:
/// (client, server).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

/// A TCP client of `addr` whose reads and writes fail after `patience`
/// (instead of hanging the test), without Nagle's delay.
pub fn connect_with_timeouts(addr: SocketAddr, patience: Duration) -> io::Result<TcpStream> {
    let conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(patience))?;
    conn.set_write_timeout(Some(patience))?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// Makes `socket` non-blocking and writes to it until a write would
/// block: its send buffer (and the peer's receive buffer) is full. Returns
/// how many bytes it wrote.
pub fn fill_send_buffer(socket: &UnixStream) -> usize {
    socket.set_nonblocking(true).expect("set_nonblocking");
    let chunk = [0xa5u8; 64 * 1024];
    let mut total = 0;
    loop {
        match (&mut &*socket).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("fill_send_buffer: {e}"),
        }
    }
}

/// Makes closing `socket` send a RST instead of a FIN (`SO_LINGER` of 0).
pub fn reset_on_close(socket: &impl AsRawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the option value points to a live `linger` of the size given.
    let res = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(res, 0, "SO_LINGER: {}", io::Error::last_os_error());
}

/// A blocking pipe, close-on-exec: (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    pipe2(libc::O_CLOEXEC)
}

/// A non-blocking pipe, close-on-exec: (read end, write end).
pub fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
    pipe2(libc::O_CLOEXEC | libc::O_NONBLOCK)
}

fn pipe2(flags: libc::c_int) -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let res = unsafe { libc::pipe2(fds.as_mut_ptr(), flags) };
    assert_eq!(res, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 just returned these fds, owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A path in the temp directory for a Unix socket named after `name`,
/// unique to this process and call; nothing is there when it is returned,
/// and whatever is there then is removed when the guard drops.
pub fn temp_path(name: &str) -> TempPath {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tarn-{}-{n}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    TempPath(path)
}

/// A path removed when dropped (see [`temp_path`]); derefs to the path.
#[derive(Debug)]
pub struct TempPath(PathBuf);

impl std::ops::Deref for TempPath {
    type Target = PathBuf;

    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

//! tarn's sockets: TCP, UDP and Unix-domain sockets on tarn's reactor.
//!
//! Each type is a thin shell over a std socket registered with the reactor
//! through [`tarn_reactor::Async`]: every read, write, accept or send tries
//! the syscall first and waits for readiness only when it returns
//! `WouldBlock`. Stream writes use `MSG_NOSIGNAL`, so a closed peer is an
//! error (`BrokenPipe`), never a `SIGPIPE`. The types work under any
//! executor; with tarn's own, nothing but the syscalls themselves runs on
//! the hot path.
//!
//! ```
//! use futures::io::{AsyncReadExt, AsyncWriteExt};
//! use tarn_net::{TcpListener, TcpStream};
//!
//! tarn_executor::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     // An echo server for one connection.
//!     tarn_executor::spawn(async move {
//!         let (mut conn, _) = listener.accept().await?;
//!         let mut buf = [0; 1024];
//!         loop {
//!             let n = conn.read(&mut buf).await?;
//!             if n == 0 {
//!                 return std::io::Result::Ok(());
//!             }
//!             conn.write_all(&buf[..n]).await?;
//!         }
//!     })
//!     .detach();
//!
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut reply = [0; 5];
//!     client.read_exact(&mut reply).await?;
//!     assert_eq!(&reply, b"hello");
//!     std::io::Result::Ok(())
//! })?;
//! # std::io::Result::Ok(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

/// `AsRawFd` and `AsFd` for a socket type that holds `io: Async<_>`.
macro_rules! fd_traits {
    ($ty: ty) => {
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.io)
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.io)
            }
        }
    };
}

#[macro_use]
mod stream;
#[macro_use]
mod accept;
mod addr;
mod socket;
mod sys;
mod tcp;
mod udp;
mod unix;

pub use accept::{Incoming, Listener};
pub use addr::ToSocketAddrs;
pub use socket::{reuseport_listeners, TcpSocket, DEFAULT_BACKLOG};
pub use stream::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, StreamSocket, WriteHalf};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

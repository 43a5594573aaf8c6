//! Readiness selection over epoll, poll and select: the lowest layer of tarn.
//!
//! This crate owns one thing: asking the kernel which file descriptors are
//! ready. It is the Rust counterpart of Python's `selectors` module and of
//! mio's `Poll`: register an fd with a [`Token`], an [`Interest`] and a
//! [`Mode`], call [`Selector::select`] with a reusable [`Events`] buffer, and
//! get back one [`Event`] per ready registration. It knows nothing of futures
//! or tasks, and `select` does not allocate.
//!
//! The loop below is the one a user of Python's `selectors` writes: an echo
//! server. The listening socket is registered; each wakeup either accepts
//! new connections and registers them, or reads from a ready connection and
//! echoes what came, deregistering it (before closing it) once the peer has
//! gone. A real server loops forever; this one stops after its one client.
//!
//! ```
//! use std::collections::HashMap;
//! use std::io::{self, BufRead, BufReader, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::os::fd::AsRawFd;
//! use std::time::Duration;
//! use tarn_selector::{Events, Interest, Mode, Selector, Token};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! listener.set_nonblocking(true)?;
//! let addr = listener.local_addr()?;
//!
//! // The client, on its own thread: send a line, read the echo, hang up.
//! let client = std::thread::spawn(move || -> io::Result<String> {
//!     let mut stream = TcpStream::connect(addr)?;
//!     stream.write_all(b"hello\n")?;
//!     let mut echo = String::new();
//!     BufReader::new(stream).read_line(&mut echo)?;
//!     Ok(echo)
//! });
//!
//! const LISTENER: Token = Token(0);
//! let selector = Selector::new()?;
//! selector.register(listener.as_raw_fd(), LISTENER, Interest::READABLE, Mode::Level)?;
//! let mut connections: HashMap<Token, TcpStream> = HashMap::new();
//! let mut next_token = 1;
//! let mut events = Events::with_capacity(64);
//! let mut closed = 0;
//!
//! // At most 100 wakeups, so that the example ends even if something fails.
//! for _ in 0..100 {
//!     if closed == 1 {
//!         break;
//!     }
//!     selector.select(&mut events, Some(Duration::from_secs(5)))?;
//!     for event in &events {
//!         if event.token() == LISTENER {
//!             // Accept every connection waiting: the listener does not block.
//!             loop {
//!                 match listener.accept() {
//!                     Ok((stream, _)) => {
//!                         stream.set_nonblocking(true)?;
//!                         let token = Token(next_token);
//!                         next_token += 1;
//!                         let fd = stream.as_raw_fd();
//!                         selector.register(fd, token, Interest::READABLE, Mode::Level)?;
//!                         connections.insert(token, stream);
//!                     }
//!                     Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
//!                     Err(e) => return Err(e),
//!                 }
//!             }
//!         } else if let Some(stream) = connections.get_mut(&event.token()) {
//!             let mut buf = [0; 1024];
//!             match stream.read(&mut buf) {
//!                 // The peer hung up: deregister, then close (by dropping).
//!                 Ok(0) => {
//!                     selector.deregister(stream.as_raw_fd())?;
//!                     connections.remove(&event.token());
//!                     closed += 1;
//!                 }
//!                 // A short echo fits the socket's send buffer; a real server
//!                 // would keep what does not and wait for WRITABLE.
//!                 Ok(n) => stream.write_all(&buf[..n])?,
//!                 Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
//!                 Err(e) => return Err(e),
//!             }
//!         }
//!     }
//! }
//!
//! assert_eq!(client.join().unwrap()?, "hello\n");
//! assert!(connections.is_empty());
//! # Ok::<(), io::Error>(())
//! ```
//!
//! # Backends
//!
//! [`Selector::new`] picks epoll on Linux; the environment variable
//! `TARN_SELECTOR=epoll|poll|select` overrides that choice, and
//! [`Selector::with_backend`] picks in code. All backends accept the same
//! calls and give the same error kinds; they differ in cost and in what the
//! kernel can tell:
//!
//! | | epoll | poll | select |
//! |---|---|---|---|
//! | cost of a wait | O(ready) | O(registered) | O(highest fd) |
//! | fd limit | none | none | below `FD_SETSIZE` (1024) |
//! | modes | Level, Oneshot, Edge | Level, Oneshot | Level, Oneshot |
//! | `readable` | `EPOLLIN` | `POLLIN` | in the read set |
//! | `writable` | `EPOLLOUT` | `POLLOUT` | in the write set |
//! | `priority` | `EPOLLPRI` | `POLLPRI` | in the except set |
//! | `error` | `EPOLLERR` | `POLLERR`, `POLLNVAL` | fd found closed after `EBADF` |
//! | `read_closed` | `EPOLLRDHUP`, `EPOLLHUP` | `POLLRDHUP`, `POLLHUP` | never (shows as readable) |
//! | `write_closed` | `EPOLLHUP` | `POLLHUP` | never (shows as writable) |
//!
//! The kernel reports errors and hangups even for directions not asked for,
//! so a registration for `READABLE` alone can see `write_closed`.
//!
//! # Threads
//!
//! A [`Selector`] is `Send + Sync` and every method takes `&self`. A
//! registration made on one thread while another is blocked in `select`
//! takes effect for that very wait: epoll does this in the kernel, and the
//! poll and select backends wake their waiter to rebuild their fd sets.
//! A [`Notifier`] wakes a blocked `select` from any thread.
//!
//! # Timeouts
//!
//! `None` waits forever and `Some(Duration::ZERO)` only looks. Other
//! timeouts have nanosecond resolution (`epoll_pwait2`, `ppoll`, `pselect`;
//! on kernels without `epoll_pwait2` they round up to the next millisecond),
//! `EINTR` is retried with the time left (PEP 475), and `select` never
//! returns before its timeout unless something happened.

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod sync;
mod event;
mod interest;
mod registry;
mod selector;
mod sys;

pub use event::{Event, Events, Token};
pub use interest::{Interest, Mode};
/// The libc that [`syscall!`] calls into, so that tarn's other crates can use
/// the macro whatever they name libc. Internal, like the macro.
#[doc(hidden)]
pub use libc as __libc;
pub use selector::{Backend, Notifier, Registration, Selector, BACKEND_ENV};

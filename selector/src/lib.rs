//! Readiness selection over epoll, poll and select: the lowest layer of tarn.
//!
//! This crate owns one thing: asking the kernel which file descriptors are
//! ready. It is the Rust counterpart of Python's `selectors` module and of
//! mio's `Poll`: register an fd with a [`Token`], an [`Interest`] and a
//! [`Mode`], call [`Selector::select`] with a reusable [`Events`] buffer, and
//! get back one [`Event`] per ready registration. It knows nothing of futures
//! or tasks, and `select` does not allocate.
//!
//! ```
//! use std::io::Write;
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use tarn_selector::{Events, Interest, Mode, Selector, Token};
//!
//! let selector = Selector::new()?;
//! let (mut a, b) = UnixStream::pair()?;
//! selector.register(b.as_raw_fd(), Token(7), Interest::READABLE, Mode::Level)?;
//!
//! let mut events = Events::with_capacity(64);
//! // Nothing to read yet: a zero timeout returns at once, empty-handed.
//! assert_eq!(selector.select(&mut events, Some(Duration::ZERO))?, 0);
//!
//! a.write_all(b"ping")?;
//! selector.select(&mut events, Some(Duration::from_secs(5)))?;
//! let event = events.iter().next().expect("b is readable");
//! assert_eq!(event.token(), Token(7));
//! assert!(event.readable());
//!
//! selector.deregister(b.as_raw_fd())?;
//! # Ok::<(), std::io::Error>(())
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
mod sys;
mod event;
mod interest;
mod registry;
mod selector;

pub use event::{Event, Events, Token};
/// The libc that [`syscall!`] calls into, so that tarn's other crates can use
/// the macro whatever they name libc. Internal, like the macro.
#[doc(hidden)]
pub use libc as __libc;
pub use interest::{Interest, Mode};
pub use selector::{Backend, Notifier, Registration, Selector, BACKEND_ENV};

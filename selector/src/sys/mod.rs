//! The operating-system side of the selector: one file per backend, plus the
//! eventfd that wakes a blocked `select` (`wakefd.rs`) and the table-and-wakeup
//! protocol that the poll and select backends share (`watch.rs`).
//!
//! Every backend is a `Selector` struct with the same inner interface, so a
//! reader who knows one knows them all:
//!
//! - `new() -> io::Result<Self>`
//! - `register(fd, token, interest, mode)`, `modify(..)`, `deregister(fd)`:
//!   `&self`, thread-safe, taking effect promptly even while another thread is
//!   blocked in `wait`; errors use the kinds the crate documents.
//! - `wait(&mut Events, Option<Duration>) -> io::Result<bool>`: one blocking
//!   call. Clears `events`, fills it, and returns `true` if the caller should
//!   return (events arrived or a [`Notifier`](crate::Notifier) fired), `false`
//!   on a timeout or an internal wakeup. `EINTR` is returned as
//!   `ErrorKind::Interrupted`; the portable layer retries it and enforces the
//!   deadline, so a backend may wake early without harm.
//! - `signal()`, the shared wakeup, and `registrations()`.
//!
//! Adding a backend (kqueue, event ports) means adding a file here and a
//! variant to `Backend`; nothing else changes.
//!
//! All `unsafe` of the crate lives in these files, and every libc call goes
//! through [`syscall!`](crate::syscall), which turns `-1` into
//! `io::Error::last_os_error()`.

/// Calls a libc function and turns a `-1` return into the `errno` error.
///
/// Internal to tarn's crates, which use it for every libc call that reports
/// failure with `-1`: not part of tarn-selector's API, and it may change in
/// any release. It names libc through `$crate::__libc`, so a caller needs no
/// `libc` of its own under that name, and works for `c_int` and `ssize_t`
/// returns alike (`Ok` holds the value as returned). `EINTR` comes back as
/// an `Interrupted` error; retrying is the caller's business.
///
/// The macro holds no `unsafe` of its own: the call is as unsafe as the
/// libc function, so a caller writes `unsafe { syscall!(..) }` and says why
/// it is sound in a `// SAFETY:` comment above it. (Were the `unsafe`
/// inside, the exported macro would let safe code call any libc function.)
///
/// ```compile_fail
/// // Outside `unsafe`, the call does not compile (E0133).
/// let _ = tarn_selector::syscall!(close(0));
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)? )) => {{
        let res = $crate::__libc::$fn($($arg, )*);
        if res == -1 {
            ::std::result::Result::Err(::std::io::Error::last_os_error())
        } else {
            ::std::result::Result::Ok(res)
        }
    }};
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod epoll;
pub(crate) mod poll;
pub(crate) mod select;
pub(crate) mod wakefd;
pub(crate) mod watch;

use std::io;
use std::os::fd::RawFd;

/// Fails with `EBADF` if `fd` is not open.
///
/// The userspace backends check at registration time what epoll checks for
/// them, so that every backend gives the same error for a bad fd.
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD only reads the descriptor flags; any integer is a valid
    // argument and a closed or negative fd yields EBADF.
    unsafe { syscall!(fcntl(fd, libc::F_GETFD)) }.map(drop)
}

/// Converts a timeout to the `timespec` the kernel wants (saturating).
pub(crate) fn timespec(timeout: std::time::Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    }
}

/// Locks a mutex, ignoring poisoning: every critical section in this crate
/// leaves its data consistent before it can panic.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

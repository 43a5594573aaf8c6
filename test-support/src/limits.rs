//! Resource limits (`getrlimit`/`setrlimit`): the fd limit a test lowers to
//! make `accept` fail with `EMFILE` or raises for a thousand connections,
//! and the address-space limit that keeps any new thread from starting.
//!
//! Limits are process-wide: a test that lowers one runs in a process of
//! its own ([`isolated`](crate::isolated)) or in a binary of its own.

use std::io;

use libc::{rlim_t, rlimit};

/// A resource `getrlimit` knows (`libc::RLIMIT_NOFILE`, `libc::RLIMIT_AS`, ...).
pub type Resource = libc::__rlimit_resource_t;

/// The soft and hard limit of `resource`.
pub fn limit(resource: Resource) -> rlimit {
    let mut limit = rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given.
    let res = unsafe { libc::getrlimit(resource, &mut limit) };
    assert_eq!(res, 0, "getrlimit: {}", io::Error::last_os_error());
    limit
}

/// Sets the soft and hard limit of `resource`.
pub fn set_limit(resource: Resource, limit: rlimit) {
    // SAFETY: setrlimit reads the struct it is given.
    let res = unsafe { libc::setrlimit(resource, &limit) };
    assert_eq!(
        res,
        0,
        "setrlimit({}, {}): {}",
        limit.rlim_cur,
        limit.rlim_max,
        io::Error::last_os_error()
    );
}

/// Runs `f` with the soft limit of `resource` at `soft` (the hard one
/// stays), then restores the limit it found.
pub fn with_soft_limit<R>(resource: Resource, soft: rlim_t, f: impl FnOnce() -> R) -> R {
    let before = limit(resource);
    set_limit(
        resource,
        rlimit {
            rlim_cur: soft,
            rlim_max: before.rlim_max,
        },
    );
    let out = f();
    set_limit(resource, before);
    out
}

/// Runs `f` while no new thread can start: the address space
/// (`RLIMIT_AS`) has 1 MiB of room, less than a thread's stack.
pub fn without_new_threads<R>(f: impl FnOnce() -> R) -> R {
    with_soft_limit(libc::RLIMIT_AS, crate::virtual_size() + (1 << 20), f)
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> (rlim_t, rlim_t) {
    let limit = limit(libc::RLIMIT_NOFILE);
    (limit.rlim_cur, limit.rlim_max)
}

/// Sets the soft `RLIMIT_NOFILE` (the hard one stays).
pub fn set_nofile_soft(soft: rlim_t) {
    let (_, hard) = nofile_limit();
    set_limit(
        libc::RLIMIT_NOFILE,
        rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        },
    );
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new limit.
pub fn raise_nofile_limit() -> rlim_t {
    let (soft, hard) = nofile_limit();
    if soft < hard {
        set_nofile_soft(hard);
    }
    hard
}

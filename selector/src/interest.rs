//! What a registration asks to hear about ([`Interest`]) and how often ([`Mode`]).

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// The readiness directions a registration is interested in.
///
/// Combine them with `|`: `Interest::READABLE | Interest::WRITABLE`. An empty
/// interest ([`Interest::NONE`]) is representable, so that code computing an
/// interest can end up with nothing, but registering it is an
/// [`InvalidInput`](std::io::ErrorKind::InvalidInput) error: a registration
/// that can never fire is always a bug.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interest(u8);

const READABLE: u8 = 0b001;
const WRITABLE: u8 = 0b010;
const PRIORITY: u8 = 0b100;

impl Interest {
    /// No direction at all. Registering it is an error.
    pub const NONE: Interest = Interest(0);
    /// Data (or end of stream) can be read without blocking.
    pub const READABLE: Interest = Interest(READABLE);
    /// Data can be written without blocking.
    pub const WRITABLE: Interest = Interest(WRITABLE);
    /// Priority data is waiting: TCP urgent (out-of-band) data, or the
    /// exceptional conditions `poll` reports as `POLLPRI`.
    pub const PRIORITY: Interest = Interest(PRIORITY);

    /// Whether `READABLE` is part of this interest.
    pub const fn is_readable(self) -> bool {
        self.0 & READABLE != 0
    }

    /// Whether `WRITABLE` is part of this interest.
    pub const fn is_writable(self) -> bool {
        self.0 & WRITABLE != 0
    }

    /// Whether `PRIORITY` is part of this interest.
    pub const fn is_priority(self) -> bool {
        self.0 & PRIORITY != 0
    }

    /// Whether no direction is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// This interest plus `other`.
    #[must_use]
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// This interest without the directions in `other`.
    #[must_use]
    pub const fn remove(self, other: Interest) -> Interest {
        Interest(self.0 & !other.0)
    }
}

impl BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Interest) {
        *self = self.add(other);
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.is_readable(), "READABLE"),
            (self.is_writable(), "WRITABLE"),
            (self.is_priority(), "PRIORITY"),
        ];
        write_flags(f, &names, "NONE")
    }
}

/// Writes the names whose flag is set, joined by ` | `, or `empty` if none is.
pub(crate) fn write_flags(
    f: &mut fmt::Formatter<'_>,
    names: &[(bool, &str)],
    empty: &str,
) -> fmt::Result {
    let mut first = true;
    for (set, name) in names {
        if *set {
            if !first {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    if first {
        f.write_str(empty)?;
    }
    Ok(())
}

/// How a registration reports readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Report the fd on every `select` while it is ready (the `poll(2)` model).
    #[default]
    Level,
    /// Report the fd once, then stay silent until [`Selector::modify`] re-arms it.
    /// Available on every backend (epoll's `EPOLLONESHOT`; emulated elsewhere).
    ///
    /// [`Selector::modify`]: crate::Selector::modify
    Oneshot,
    /// Report only when readiness changes: new data arriving, buffer space
    /// freeing up, or the registration being made or modified while the fd is
    /// ready. Epoll only (`EPOLLET`); other backends return
    /// [`Unsupported`](std::io::ErrorKind::Unsupported).
    ///
    /// Each report carries the fd's whole current readiness for the
    /// registration's interest, not just the direction that changed. The
    /// kernel wakes a registration only for a change in a direction it asks
    /// for: a `WRITABLE`-only registration is not told that data arrived.
    Edge,
}

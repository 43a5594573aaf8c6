//! The shared reactor watching the reactors of threads that stopped
//! driving them.
//!
//! A thread's reactor is driven by that thread while it runs a tarn
//! executor. When it stops (its `block_on` returns, or the thread ends)
//! while wakers wait there that its own executor will not poll (a task of
//! another thread using a socket that settled here, or another executor's
//! future that waited inside `block_on`), somebody else must drive it. An
//! epoll fd is itself pollable: the shared reactor registers the orphan's
//! epoll fd (level-triggered, so nothing is left behind by a partial
//! drain), bounds its own wait by the orphan's next timer, and reacts on
//! the orphan whenever its fd is readable or a timer of it is due. When
//! the thread drives again, it takes its reactor back (the watch ends).
//!
//! Only epoll has reactors per thread, so only epoll watches: on poll and
//! select there is one reactor, and nothing to watch.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};

use slab::Slab;
use tarn_selector::{Interest, Mode, Token};

use crate::reactor::{lock, Reactor};

/// A watch token has this bit set (source tokens are 32-bit slab keys).
const WATCH_BIT: usize = 1 << (usize::BITS - 2);

/// Watching, from either side.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// On a thread's reactor: its key on the shared reactor's list while
    /// watched. The lock also orders `watch` and `unwatch` of one reactor
    /// (a loom mutex under `cfg(loom)`: loom operations happen while it is
    /// held).
    key: crate::sync::Mutex<Option<usize>>,
    /// On the shared reactor: the reactors it watches.
    list: Mutex<Slab<Weak<Reactor>>>,
    /// `list.len()`, read without the lock on every `react`.
    count: AtomicUsize,
}

impl Watch {
    /// On the shared reactor: the reactors it watches now (none, without a
    /// lock or an allocation, in the usual case).
    pub(crate) fn watched(&self) -> Vec<Arc<Reactor>> {
        if self.count.load(SeqCst) == 0 {
            return Vec::new();
        }
        lock(&self.list)
            .iter()
            .filter_map(|(_, r)| r.upgrade())
            .collect()
    }

    /// On a thread's reactor: its key on the watch list, if watched.
    pub(crate) fn key(&self) -> Option<usize> {
        *crate::sync::lock(&self.key)
    }

    /// Whether the shared reactor watches this one.
    pub(crate) fn is_watched(&self) -> bool {
        self.key().is_some()
    }
}

/// The watch-list key an event's token names, if it is a watch's.
pub(crate) fn watched_key(token: Token) -> Option<usize> {
    (token.0 & WATCH_BIT != 0 && token.0 != usize::MAX).then_some(token.0 & !WATCH_BIT)
}

/// Makes the shared reactor watch `orphan` (a thread's reactor that lost
/// its driver); a no-op if it does already. The caller then makes sure
/// the fallback thread runs.
pub(crate) fn watch(orphan: &Arc<Reactor>) -> io::Result<()> {
    let shared = Reactor::shared()?;
    let Some(fd) = orphan.selector.pollable_fd() else {
        // Not reached: only epoll makes reactors per thread.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "tarn: a thread's reactor on a backend without a pollable fd",
        ));
    };
    let mut key = crate::sync::lock(&orphan.watch.key);
    if key.is_some() {
        return Ok(());
    }
    // Its thread may drive it again (since the caller looked): then no
    // watch, but that thread must look for a driver when it stops. Flag
    // first, then look at the count, both read-modify-writes, as
    // `ensure_driven_for_others` does: either the last driver's decrement
    // comes after our look and its swap of the flag sees ours, or our look
    // sees it gone and we watch. (Looking first and flagging after let the
    // driver stop in between, seeing no flag: nobody watched, nobody drove.)
    // A guard that starts meanwhile counted itself before it looked for a
    // watch to end, and that look waits for this lock. A flag left set
    // when we do watch costs its thread's next stop one look for a driver.
    orphan.unserved.swap(true, SeqCst);
    if orphan.drivers.fetch_add(0, SeqCst) > 0 {
        return Ok(());
    }
    let mut list = lock(&shared.watch.list);
    let entry = list.vacant_entry();
    let token = Token(WATCH_BIT | entry.key());
    shared
        .selector
        .register(fd.as_raw_fd(), token, Interest::READABLE, Mode::Level)?;
    *key = Some(entry.key());
    entry.insert(Arc::downgrade(orphan));
    shared.watch.count.store(list.len(), SeqCst);
    drop((list, key));
    // Its timers now bound the shared reactor's wait: let it look again.
    shared.notify();
    Ok(())
}

/// Ends the watch of `reactor`, if any (its thread drives it again, or it
/// is going away).
pub(crate) fn unwatch(reactor: &Reactor) {
    let mut key = crate::sync::lock(&reactor.watch.key);
    let Some(at) = key.take() else {
        return;
    };
    let Ok(shared) = Reactor::shared() else {
        return;
    };
    if let Some(fd) = reactor.selector.pollable_fd() {
        let _ = shared.selector.deregister(fd.as_raw_fd());
    }
    let mut list = lock(&shared.watch.list);
    list.try_remove(at);
    shared.watch.count.store(list.len(), SeqCst);
}

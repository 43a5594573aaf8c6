//! A registered fd's readiness and the wakers waiting on it.
//!
//! Readiness is kept per direction as a *tick*: a counter the reactor bumps
//! for every event that concerns the direction. An I/O operation reads the
//! tick before its syscall; if the syscall says `WouldBlock`, the waker is
//! stored only if the tick is unchanged. An event that lands between the
//! syscall and the storing of the waker has bumped the tick, so the
//! operation retries instead of sleeping: no wakeup is lost.
//!
//! A direction is *ready* unless an operation found it empty (`WouldBlock`,
//! or a short read) at the current tick. New sources start ready: the first
//! operation always tries the syscall.
//!
//! A source lives on one reactor, its *home*: the one whose selector has
//! its fd and whose driver dispatches its events. It is registered with the
//! reactor of the thread that creates it, and moves once, at its first wait,
//! to the reactor of the thread that waits (see [`Source::poll_blocked`]):
//! a socket made in `main` and served inside `block_on`, or made in one
//! executor and handed to another before it waited, ends up where it is
//! used. After that it stays: a task on another thread that waits on it is
//! woken from its home reactor's thread.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use slab::Slab;
use tarn_selector::{Event, Interest, Mode, Token};

use crate::reactor::Reactor;
use crate::sync::{AtomicU64, Mutex, MutexGuard};

/// Read or write: the two directions a source tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

impl Dir {
    /// The direction's bit in `State::armed`.
    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The selector interest of the directions in `bits`.
    fn interest(bits: u8) -> Interest {
        let mut interest = Interest::NONE;
        if bits & Dir::Read.bit() != 0 {
            interest |= Interest::READABLE;
        }
        if bits & Dir::Write.bit() != 0 {
            interest |= Interest::WRITABLE;
        }
        interest
    }
}

/// One fd registered with a reactor.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) fd: RawFd,
    /// Per direction, its readiness word (see [`Word`]). Read without
    /// the lock; its tick moves only under it.
    readiness: [AtomicU64; 2],
    state: Mutex<State>,
}

/// A direction's readiness word, in one `AtomicU64` so that a `Source`
/// stays within one 128-byte allocation:
///
/// ```text
///  63                                  2     1          0
/// +-------------------------------------+----------+---------+
/// | tick: events that concerned it      | NO_DRAIN | BLOCKED |
/// +-------------------------------------+----------+---------+
/// ```
///
/// - `BLOCKED`: an operation found the direction empty at this tick
///   (`WouldBlock`, or a short read); the next event clears it.
/// - `NO_DRAIN`: a short read or write there must never be taken to mean it
///   is drained. Set for good when an event says the direction is closed or
///   failed (read_closed, write_closed, error: end of stream needs no new
///   event), and for reads when urgent data arrives (`priority`): a TCP
///   read stops short at the urgent mark with data still queued behind it.
///   Set only together with a tick.
struct Word;

impl Word {
    const BLOCKED: u64 = 1;
    const NO_DRAIN: u64 = 2;
    /// One event: the tick's unit.
    const TICK: u64 = 4;
    /// A new source: tick 1, ready.
    const NEW: u64 = Word::TICK;

    fn tick(word: u64) -> u64 {
        word / Word::TICK
    }

    /// Stores a direction's word, under the source lock (the tick moves
    /// only there). The one write that races it is `drained`'s
    /// compare-and-swap, outside the lock, which only adds `BLOCKED` at an
    /// unchanged tick: if it comes first, this store (computed from a load
    /// that may have missed it) clears or sets `BLOCKED` as it means to
    /// anyway; if it comes second, it finds the word changed and fails. So
    /// the store behaves as a swap in every execution, and a plain store
    /// spares a locked instruction per event. Under loom it is a swap:
    /// loom mis-orders a plain store against another thread's
    /// read-modify-write (tokio-rs/loom#389) and reported lost wakeups
    /// that no execution of the plain store has. The models then check the
    /// argument above: the word the swap replaces is `from` (what the store
    /// was computed from), or `from` with `BLOCKED` added at its tick.
    #[inline]
    fn store(word: &AtomicU64, from: u64, value: u64) {
        #[cfg(not(loom))]
        {
            let _ = from;
            word.store(value, Ordering::Release);
        }
        #[cfg(loom)]
        {
            let previous = word.swap(value, Ordering::AcqRel);
            assert!(
                previous == from || previous == from | Word::BLOCKED,
                "a readiness word changed under its store: {from:#x} became {previous:#x}"
            );
        }
    }
}

/// What the source's lock guards.
#[derive(Debug)]
struct State {
    /// The wakers of each direction.
    waiters: [Waiters; 2],
    /// The reactor the fd is registered with.
    home: Arc<Reactor>,
    /// The key in the home reactor's slab, also the selector token (32
    /// bits keep a `Source` within its memory budget; see
    /// `Reactor::insert_io`).
    key: u32,
    /// Oneshot backends (poll, select): the directions (`Dir::bit`) the
    /// registration is armed for. Firing disarms all; a waiter re-arms its
    /// direction.
    armed: u8,
    /// Whether the source has chosen its home for good (at its first wait).
    settled: bool,
}

/// The wakers waiting on one direction. Kept small, since every idle
/// connection has two: the usual case (one task reading) needs no
/// allocation.
#[derive(Debug, Default)]
struct Waiters {
    /// The first waker stored by a `poll_*` call (`AsyncRead`, `read_with`, ...).
    waker: Option<Waker>,
    /// Allocated on first need: further wakers, and waiter slots.
    extra: Option<Box<Extra>>,
}

/// The most wakers a direction's shared list keeps (see [`Waiters::store`]).
pub(crate) const SHARED_WAKERS: usize = 8;

#[derive(Debug, Default)]
struct Extra {
    /// More wakers stored by `poll_*` calls, deduplicated with `waker`;
    /// all are woken by the next event.
    wakers: Vec<Waker>,
    /// How many shared wakers fit before a flush (see [`Waiters::store`]);
    /// 0 stands for [`SHARED_WAKERS`].
    cap: usize,
    /// The wakers of the last flushes (at most four lists' worth), kept so
    /// that a waker stored again can be recognised, and so that their
    /// tasks' memory is not reused by new tasks, which would pass for them.
    flushed: VecDeque<Waker>,
    /// Wakers stored since the last flush, and how many of them were in
    /// `flushed`.
    stored: usize,
    returned: usize,
    /// Wakers of `Readable`/`Writable` futures, which remove their slot when
    /// dropped. `None` once woken.
    waiters: Slab<Option<Waker>>,
}

impl Waiters {
    /// Calls `f` with every waker stored (for a task dump).
    fn each(&self, f: &mut impl FnMut(&Waker)) {
        self.waker.iter().for_each(&mut *f);
        if let Some(extra) = self.extra.as_deref() {
            extra.wakers.iter().for_each(&mut *f);
            extra
                .waiters
                .iter()
                .filter_map(|(_, w)| w.as_ref())
                .for_each(&mut *f);
        }
    }

    fn waiting(&self) -> usize {
        let extra = self.extra.as_deref().map_or(0, |extra| {
            extra.wakers.len() + extra.waiters.iter().filter(|(_, w)| w.is_some()).count()
        });
        usize::from(self.waker.is_some()) + extra
    }

    /// Stores the waker of `cx`, seen at `tick`: in the future's `slot`, or
    /// (deduplicated) among the shared wakers when there is no slot.
    ///
    /// The shared list is bounded: its callers (the `poll_*` API,
    /// `AsyncRead` and `AsyncWrite`) have no drop to hook, so the wakers of
    /// operations cancelled on an idle socket (a `timeout` around a read)
    /// would otherwise pile up, each keeping its whole task alive. When a
    /// new waker finds the list full, every waker in it is returned to be
    /// woken (a flush): a task that still waits polls again and stores its
    /// waker anew, one that has moved on or finished drops it. If most of
    /// the last flush came back so, the waiters are live, not left behind,
    /// and the list doubles instead of flushing them over and over; it
    /// starts at [`SHARED_WAKERS`] and halves at each event and each flush.
    /// So what cancelled operations leave behind is bounded by how many
    /// tasks waited at once, not by how many operations were cancelled.
    fn store(&mut self, tick: u64, slot: Option<&mut WaiterSlot>, cx: &Context<'_>) -> Vec<Waker> {
        let waker = cx.waker();
        let Some(slot) = slot else {
            return self.store_shared(waker);
        };
        let waiters = &mut self.extra.get_or_insert_with(Box::default).waiters;
        match slot.0 {
            Some((key, _)) => {
                let entry = &mut waiters[key];
                match entry {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *entry = Some(waker.clone()),
                }
                slot.0 = Some((key, tick));
            }
            None => slot.0 = Some((waiters.insert(Some(waker.clone())), tick)),
        }
        Vec::new()
    }

    /// Adds `waker` to the shared list unless it is there; returns the
    /// wakers of a flush (see [`store`](Self::store)), usually none.
    fn store_shared(&mut self, waker: &Waker) -> Vec<Waker> {
        let Some(first) = &self.waker else {
            self.waker = Some(waker.clone());
            return Vec::new();
        };
        if first.will_wake(waker) {
            return Vec::new();
        }
        let extra = self.extra.get_or_insert_with(Box::default);
        if extra.wakers.iter().any(|w| w.will_wake(waker)) {
            return Vec::new();
        }
        extra.stored += 1;
        if extra.flushed.iter().any(|w| w.will_wake(waker)) {
            extra.returned += 1;
        }
        let cap = extra.cap.max(SHARED_WAKERS);
        let mut flushed = Vec::new();
        if 1 + extra.wakers.len() >= cap {
            if extra.returned > 0 && 2 * extra.returned >= extra.stored {
                // Most wakers stored since the last flush are ones a flush
                // woke: their tasks still wait. Make room for them.
                extra.cap = cap.saturating_mul(2);
            } else {
                flushed.extend(self.waker.take());
                flushed.append(&mut extra.wakers);
                extra.flushed.extend(flushed.iter().cloned());
                let keep = 4 * cap;
                if extra.flushed.len() > keep {
                    extra.flushed.drain(..extra.flushed.len() - keep);
                }
                extra.cap = (cap / 2).max(SHARED_WAKERS);
            }
            extra.stored = 0;
            extra.returned = 0;
        }
        match self.waker {
            None => self.waker = Some(waker.clone()),
            Some(_) => extra.wakers.push(waker.clone()),
        }
        flushed
    }

    /// Moves every stored waker into `wakers` (an event arrived).
    fn take_wakers(&mut self, wakers: &mut Vec<Waker>) {
        wakers.extend(self.waker.take());
        if let Some(extra) = self.extra.as_deref_mut() {
            wakers.append(&mut extra.wakers);
            extra.cap /= 2;
            extra.flushed.clear();
            extra.stored = 0;
            extra.returned = 0;
            for (_, waiter) in extra.waiters.iter_mut() {
                wakers.extend(waiter.take());
            }
        }
    }
}

/// Wakes every waker of `wakers`, out of the source's lock; one that
/// panics (a foreign executor's bug) is reported by the hook and skipped.
#[cold]
fn wake_all(wakers: Vec<Waker>) {
    let mut wakers = wakers.into_iter();
    while std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wakers.by_ref().for_each(Waker::wake)
    }))
    .is_err()
    {}
}

/// How many tasks wait on a source, per direction (for introspection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Waiting {
    pub(crate) readers: usize,
    pub(crate) writers: usize,
}

impl Source {
    pub(crate) fn new(fd: RawFd, home: Arc<Reactor>, key: u32) -> Source {
        Source {
            fd,
            readiness: [AtomicU64::new(Word::NEW), AtomicU64::new(Word::NEW)],
            state: Mutex::new(State {
                waiters: Default::default(),
                home,
                key,
                armed: 0,
                settled: false,
            }),
        }
    }

    /// Keeps the source on its reactor for good (a loom model's: there is
    /// no other, and the thread-locals that name the current reactor
    /// outlive a model's execution).
    #[cfg(all(test, loom))]
    pub(crate) fn stay_home(&self) {
        self.state().settled = true;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reactor the source is registered with, and its key there.
    pub(crate) fn home(&self) -> (Arc<Reactor>, u32) {
        let state = self.state();
        (Arc::clone(&state.home), state.key)
    }

    /// Deregisters the fd from its home reactor; must happen before it is
    /// closed.
    pub(crate) fn deregister(&self) -> io::Result<()> {
        let (home, key) = self.home();
        home.release(self.fd, key)
    }

    /// The direction's tick, to read before trying a syscall.
    pub(crate) fn tick(&self, dir: Dir) -> u64 {
        Word::tick(self.readiness[dir as usize].load(Ordering::Acquire))
    }

    /// After a syscall that saw `tick` returned `WouldBlock`: `Ready` if an
    /// event arrived meanwhile (try again), else stores the waker (in `slot`
    /// for a future that removes it when done, or in the shared list), arms
    /// the registration if the backend needs it, makes sure some thread
    /// drives the home reactor, and returns `Pending`.
    ///
    /// The first time, the source first settles where it is waited on (see
    /// [`settle`](Self::settle)).
    pub(crate) fn poll_blocked(
        self: &Arc<Self>,
        dir: Dir,
        tick: u64,
        slot: Option<&mut WaiterSlot>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.state();
        if !state.settled {
            state.settled = true;
            drop(state);
            self.settle();
            state = self.state();
        }
        let readiness = &self.readiness[dir as usize];
        let word = readiness.load(Ordering::Acquire);
        if Word::tick(word) != tick {
            return Poll::Ready(Ok(()));
        }
        // The tick moves only under the lock; `drained` may set the same
        // bit meanwhile, which this store keeps.
        Word::store(readiness, word, word | Word::BLOCKED);
        let flushed = state.waiters[dir as usize].store(tick, slot, cx);
        let armed = self.arm(&mut state, dir);
        let driven = match armed {
            Ok(()) => state.home.ensure_driven(cx.waker()),
            Err(_) => Ok(()),
        };
        drop(state);
        if !flushed.is_empty() {
            wake_all(flushed);
        }
        armed?;
        driven?;
        Poll::Pending
    }

    /// At the first wait: if the reactor of the waiting thread (its own
    /// while it runs a tarn executor, else the shared one) is not the
    /// source's home, the source moves there, so that its events are
    /// dispatched on the thread that waits for them. Registered with the
    /// new reactor before it leaves the old one, so no event is missed
    /// (an epoll registration reports the readiness the fd already has).
    /// Only between edge-triggered reactors (epoll, the only backend with
    /// a reactor per thread); if the new registration fails, it stays.
    fn settle(self: &Arc<Self>) {
        let Ok(here) = Reactor::current() else {
            return;
        };
        let (from, from_key) = self.home();
        if Arc::ptr_eq(&from, &here) || from.mode() != Mode::Edge || here.mode() != Mode::Edge {
            return;
        }
        let Ok(key) = here.adopt(self) else {
            return;
        };
        let others_wait = {
            let mut state = self.state();
            state.home = Arc::clone(&here);
            state.key = key;
            // Waiters that came meanwhile (another thread's, the other
            // direction's) made sure the old home is driven, not the new.
            state.waiters.iter().any(|w| w.waiting() > 0)
        };
        // The fd is open (its `Async` is being polled), so this succeeds.
        let _ = from.release(self.fd, from_key);
        if others_wait {
            // As for a timer: nothing to report an error to; the next
            // waiter tries again.
            let _ = crate::driver::ensure_driven_for_others(&here);
        }
    }

    /// `Ready` once a read (or write) would not block, as far as the kernel
    /// says now; else stores the waker in `slot` (a waiter of a future, or
    /// the shared list when `slot` is `None`) and returns `Pending`.
    ///
    /// A direction believed ready is checked with a zero-timeout `poll(2)`,
    /// so that a caller looping on `readable()` and a read of its own never
    /// spins on stale readiness.
    pub(crate) fn poll_ready(
        self: &Arc<Self>,
        dir: Dir,
        slot: Option<&mut WaiterSlot>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut slot = slot;
        if let Some((_, seen)) = slot.as_ref().and_then(|slot| slot.0) {
            // A waiting future is ready once an event has arrived since.
            if self.tick(dir) != seen {
                return Poll::Ready(Ok(()));
            }
        }
        loop {
            let tick = self.tick(dir);
            let believed_ready = !self.known_blocked(dir, tick);
            if believed_ready && crate::sys::ready_now(self.fd, dir == Dir::Write)? {
                return Poll::Ready(Ok(()));
            }
            // Not ready: wait, unless an event landed meanwhile.
            match self.poll_blocked(dir, tick, slot.as_deref_mut(), cx) {
                Poll::Ready(Ok(())) => continue,
                other => return other,
            }
        }
    }

    /// Whether the last operation that saw `tick` found the direction
    /// empty (`WouldBlock`, or a short read): no event has arrived since.
    pub(crate) fn known_blocked(&self, dir: Dir, tick: u64) -> bool {
        let word = self.readiness[dir as usize].load(Ordering::Acquire);
        word & !Word::NO_DRAIN == tick * Word::TICK + Word::BLOCKED
    }

    /// A read that saw `tick` returned less than it asked for: the socket
    /// is drained, and the next read may wait for an event instead of
    /// trying a syscall that would say `WouldBlock`. No effect if an event
    /// arrived since `tick`, or for a direction that is `NO_DRAIN` (closed,
    /// or a read that may have stopped at an urgent mark).
    pub(crate) fn drained(&self, dir: Dir, tick: u64) {
        // Without the lock, so by compare-and-swap: an event that lands
        // meanwhile has moved the tick, and the swap fails.
        let readiness = &self.readiness[dir as usize];
        let word = readiness.load(Ordering::Acquire);
        let flags = Word::BLOCKED | Word::NO_DRAIN;
        if Word::tick(word) == tick && word & flags == 0 {
            let _ = readiness.compare_exchange(
                word,
                word | Word::BLOCKED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// Forgets a future's waiter slot.
    pub(crate) fn remove_waiter(&self, dir: Dir, slot: &mut WaiterSlot) {
        if let Some((key, _)) = slot.0.take() {
            if let Some(extra) = self.state().waiters[dir as usize].extra.as_deref_mut() {
                extra.waiters.try_remove(key);
            }
        }
    }

    /// On oneshot backends, makes sure the registration is armed for `dir`.
    fn arm(&self, state: &mut State, dir: Dir) -> io::Result<()> {
        if state.home.mode() != Mode::Oneshot || state.armed & dir.bit() != 0 {
            return Ok(());
        }
        let bits = state.armed | dir.bit();
        let token = Token(state.key as usize);
        state
            .home
            .selector()
            .modify(self.fd, token, Dir::interest(bits), Mode::Oneshot)?;
        state.armed = bits;
        Ok(())
    }

    /// Records an event and moves the wakers it concerns into `wakers`.
    pub(crate) fn on_event(&self, reactor: &Reactor, event: &Event, wakers: &mut Vec<Waker>) {
        let read = event.readable() || event.read_closed() || event.error() || event.priority();
        let write = event.writable() || event.write_closed() || event.error();
        let mut state = self.state();
        if read {
            let no_drain = event.read_closed() || event.error() || event.priority();
            self.bump(Dir::Read, no_drain);
            state.waiters[Dir::Read as usize].take_wakers(wakers);
        }
        if write {
            self.bump(Dir::Write, event.write_closed() || event.error());
            state.waiters[Dir::Write as usize].take_wakers(wakers);
        }
        if reactor.mode() == Mode::Oneshot {
            // The event disarmed the registration; re-arm for whoever is
            // still waiting on a direction that did not fire.
            state.armed = 0;
            let mut again = 0;
            for dir in [Dir::Read, Dir::Write] {
                if state.waiters[dir as usize].waiting() > 0 {
                    again |= dir.bit();
                }
            }
            let token = Token(state.key as usize);
            if again != 0
                && reactor
                    .selector()
                    .modify(self.fd, token, Dir::interest(again), Mode::Oneshot)
                    .is_ok()
            {
                state.armed = again;
            }
        }
    }

    /// An event concerns `dir`: its tick moves on, and it is no longer
    /// known blocked. Under the lock, so load + store is an increment; a
    /// `drained` swap in between is meant to be undone.
    #[inline]
    fn bump(&self, dir: Dir, no_drain: bool) {
        let readiness = &self.readiness[dir as usize];
        let word = readiness.load(Ordering::Relaxed);
        let next = ((word | Word::BLOCKED) ^ Word::BLOCKED).wrapping_add(Word::TICK)
            | (u64::from(no_drain) * Word::NO_DRAIN);
        Word::store(readiness, word, next);
    }

    /// How many wakers wait on each direction.
    /// Calls `f` with every waker stored, and whether it waits to write.
    pub(crate) fn each_waker(&self, mut f: impl FnMut(&Waker, bool)) {
        let state = self.state();
        state.waiters[0].each(&mut |w| f(w, false));
        state.waiters[1].each(&mut |w| f(w, true));
    }

    pub(crate) fn waiting(&self) -> Waiting {
        let state = self.state();
        Waiting {
            readers: state.waiters[0].waiting(),
            writers: state.waiters[1].waiting(),
        }
    }
}

/// A future's place among a direction's waiters: the slab key and the tick
/// seen when it was stored.
#[derive(Debug, Default)]
pub(crate) struct WaiterSlot(Option<(usize, u64)>);

#[cfg(test)]
mod tests {
    /// Every connection holds a `Source` (in an `Arc`), so its size is part
    /// of the idle-connection memory budget (issue 5: 256 B beside the read
    /// buffer). On 64-bit targets it fits in one 128-byte malloc chunk with
    /// the `Arc` counts.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_source_stays_within_its_memory_budget() {
        let size = std::mem::size_of::<super::Source>();
        // The Arc's two counts and malloc's 8-byte header.
        assert!(size + 16 + 8 <= 128, "Source grew to {size} bytes");
    }
}

/// loom models of the readiness protocol: `bash .ci/loom.sh`. They run the
/// real read path (`poll_io`) and the real driver (`react` over epoll) on a
/// real socket pair; loom's atomics and mutex stand in for the source's, so
/// loom chooses every interleaving of the two threads at them.
#[cfg(all(test, loom))]
mod model {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use super::{Dir, Source};
    use crate::reactor::Reactor;

    /// One model's world: a reactor (real epoll) with the read end of a
    /// socket pair registered, and a second thread that writes `sent` to
    /// the other end and then drives the reactor once, which delivers the
    /// event.
    ///
    /// `wire` is the socket as loom sees it: a real syscall is no loom
    /// operation, so loom would never switch threads between one and the
    /// next atomic. Each read and write touches it right after its
    /// syscall, which gives loom a point to switch there (without it, the
    /// interleaving that a planted bug in `drained` needs was never tried).
    struct World {
        reactor: Arc<Reactor>,
        source: Arc<Source>,
        reader: UnixStream,
        wire: Arc<loom::sync::atomic::AtomicUsize>,
        driver: Option<loom::thread::JoinHandle<UnixStream>>,
    }

    impl World {
        /// `queued` is in the socket before the source is registered.
        fn new(queued: &'static [u8], sent: &'static [u8]) -> World {
            let reactor = Reactor::for_this_thread().expect("an epoll reactor");
            // The second thread is this reactor's driver: counted as one,
            // a waiter does not start the fallback thread.
            reactor.drivers.fetch_add(1, SeqCst);
            let (reader, writer) = UnixStream::pair().unwrap();
            reader.set_nonblocking(true).unwrap();
            (&writer).write_all(queued).unwrap();
            let source = reactor.insert_io(reader.as_raw_fd()).unwrap();
            // It stays where it is (no other reactor in the model).
            source.state().settled = true;
            let wire = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            let driver = {
                let (reactor, wire) = (Arc::clone(&reactor), Arc::clone(&wire));
                loom::thread::spawn(move || {
                    (&writer).write_all(sent).unwrap();
                    wire.fetch_add(1, SeqCst);
                    let mut driving = reactor.try_lock().expect("the only driver");
                    driving.react(Some(Duration::ZERO)).unwrap();
                    drop(driving);
                    writer
                })
            };
            World {
                reactor,
                source,
                reader,
                wire,
                driver: Some(driver),
            }
        }

        /// The task's read syscall, then the loom point after it.
        fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            let read = (&self.reader).read(buf);
            self.wire.load(SeqCst);
            read
        }

        /// Joins the driver; checks that no waker was left behind.
        fn end(mut self) {
            drop(self.driver.take().unwrap().join().unwrap());
            assert_eq!(self.source.waiting().readers, 0, "a waker was left behind");
            let (home, key) = self.source.home();
            home.release(self.reader.as_raw_fd(), key).unwrap();
            self.reactor.drivers.fetch_sub(1, SeqCst);
        }
    }

    /// A task reads (the tick, then the syscall, then storing its waker if
    /// it said `WouldBlock`) while another thread writes and then drives
    /// the reactor, which delivers the event: the task is always woken or
    /// retries (a lost wakeup leaves it blocked: loom reports a deadlock),
    /// reads the byte, and leaves no waker behind.
    #[test]
    fn a_read_racing_an_event_is_woken_or_retries() {
        loom::model(|| {
            let world = World::new(b"", b"x");
            let mut buf = [0; 8];
            let n = loom::future::block_on(std::future::poll_fn(|cx| {
                crate::async_fd::poll_io(&world.source, Dir::Read, cx, || world.read(&mut buf))
            }))
            .unwrap();
            assert_eq!(n, 1);
            world.end();
        });
    }

    /// `Async::poll_read_stream`, as it is: a short read marks the
    /// direction drained at the tick read before its syscall.
    fn read_stream(
        source: &Arc<Source>,
        cx: &mut Context<'_>,
        mut read: impl FnMut() -> std::io::Result<usize>,
        len: usize,
    ) -> Poll<std::io::Result<usize>> {
        let mut tick = 0;
        let res = crate::async_fd::poll_io(source, Dir::Read, cx, || {
            tick = source.tick(Dir::Read);
            read()
        });
        if matches!(res, Poll::Ready(Ok(n)) if n > 0 && n < len) {
            source.drained(Dir::Read, tick);
        }
        res
    }

    /// The drained shortcut: a short read marks the socket drained, so the
    /// next read waits for an event without a syscall. Meanwhile another
    /// thread writes a second byte and drives the reactor. An event that
    /// lands between the short read and the mark must cancel the mark, or
    /// the next read waits for an event that has come and gone.
    #[test]
    fn a_short_read_racing_an_event_does_not_hide_it() {
        loom::model(|| {
            let world = World::new(b"1", b"2");
            let mut got = Vec::new();
            while got.len() < 2 {
                let mut buf = [0; 8];
                let n = loom::future::block_on(std::future::poll_fn(|cx| {
                    read_stream(&world.source, cx, || world.read(&mut buf), 8)
                }))
                .unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"12");
            world.end();
        });
    }
}

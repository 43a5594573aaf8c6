//! The reactor's pending timers: deadlines sorted lazily in buckets of
//! about a millisecond, each entry holding its timer's waker.
//!
//! Buckets due within about a quarter of a second sit in a ring indexed by
//! their deadline (later ones in an ordered map, moved into the ring as it
//! comes near them), so inserting a timer is an index and a push; a bucket
//! keeps its entries in insertion order until it reaches the front, is then
//! sorted once by deadline, and fires entry by entry, so timers fire in
//! deadline order (equal deadlines in insertion order) and never early.
//! Either order lets a timer be found by binary search: cancelling one
//! takes its waker out of its entry and leaves the entry stale. Stale
//! entries are dropped as they reach the front, and all at once whenever
//! they outnumber the live timers, so memory stays within a constant factor
//! of the pending timers even when most are cancelled (as timeouts around
//! I/O that completes in time are). Nothing here is shared between timers
//! but their bucket: a timer fired in deadline order touches no memory of
//! the timers inserted before or after it.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::task::Waker;

/// A bucket spans 2^20 ns (about 1 ms) of deadlines.
const BUCKET_SHIFT: u32 = 20;

/// Stale entries tolerated before a sweep, beyond the live count.
const SWEEP_SLACK: usize = 1024;

/// Buckets at least this full are radix sorted; smaller ones by comparison.
const RADIX_MIN: usize = 256;

/// The radix sort's digit: two passes of 10 bits cover a bucket's 20.
const DIGIT_BITS: u32 = 10;

/// Ring slots: buckets due within about a quarter of a second of the
/// earliest one are found by index; later ones in an ordered map.
const RING: usize = 256;

/// How late a timer may fire so that its wakeup also fires the ones due
/// just after it (see [`TimerQueue::wake_for`]): a dense run of timers
/// then costs one wakeup per 50 µs rather than one per timer or two.
pub(crate) const COALESCE_NS: u64 = 50_000;

/// Entries a ring bucket's vector may keep for reuse once emptied.
const KEEP: usize = 4096;

/// A pending timer's handle, with its deadline: its unique sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    seq: u64,
}

impl TimerId {
    /// Names no timer (for one that fired as it was inserted).
    pub(crate) const NONE: TimerId = TimerId { seq: u64::MAX };
}

/// A timer in its bucket.
#[derive(Debug, Default)]
struct Entry {
    /// The deadline, in ns from the reactor's epoch.
    when: u64,
    seq: u64,
    /// `None` once the timer was removed (the entry is stale).
    waker: Option<Waker>,
}

/// A bucket's entries are in one of two orders: by `seq` (the order they
/// were inserted in, unsorted as to deadlines), or, once it is the front
/// bucket, by deadline (`sorted`). Either way a timer is found by binary
/// search, so removing one costs O(log n) and touches only its bucket.
#[derive(Debug, Default)]
struct Bucket {
    entries: Vec<Entry>,
    /// Sorted latest first by (deadline, seq) (so the next due is last),
    /// kept sorted on insert; otherwise in `seq` order.
    sorted: bool,
}

impl Bucket {
    /// The entry of timer `seq` due at `when`, if it is here.
    fn find(&mut self, when: u64, seq: u64) -> Option<&mut Entry> {
        let at = if self.sorted {
            self.entries
                .binary_search_by(|e| (when, seq).cmp(&(e.when, e.seq)))
        } else {
            self.entries.binary_search_by_key(&seq, |e| e.seq)
        };
        self.entries.get_mut(at.ok()?)
    }

    /// Adds entries from another bucket (a far one moving into the ring):
    /// sorted by deadline, which is an order `find` knows.
    fn merge(&mut self, other: Bucket, scratch: &mut Vec<Entry>) {
        if self.entries.is_empty() {
            *self = other;
            return;
        }
        self.entries.extend(other.entries);
        sort_latest_first(&mut self.entries, scratch);
        self.sorted = true;
    }
}

/// Pending timers; deadlines are nanoseconds from the reactor's epoch.
///
/// Each timer is an entry in the bucket of its deadline, holding its waker:
/// inserting one is a push, firing one a pop, and neither touches memory
/// of other timers'.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    /// Buckets with index (deadline >> `BUCKET_SHIFT`) in
    /// `base..base + RING`, each at slot `index % RING`; allocated at the
    /// first insert.
    ring: Vec<Bucket>,
    /// Bit `i` set: ring slot `i` holds entries.
    occupied: [u64; RING / 64],
    /// The lowest bucket index the ring holds; it only grows, and never
    /// past a bucket that holds entries.
    base: u64,
    /// Buckets past the ring, by index.
    far: BTreeMap<u64, Bucket>,
    /// Pending timers.
    live: usize,
    next_seq: u64,
    /// Entries whose timer was removed.
    stale: usize,
    /// The radix sort's second buffer, kept between sorts.
    scratch: Vec<Entry>,
}

/// Where a bucket is.
#[derive(Clone, Copy)]
enum Place {
    Ring(usize),
    Far(u64),
}

impl TimerQueue {
    /// Calls `f` with every pending timer's deadline (ns from the
    /// reactor's epoch) and waker, in no particular order (for a task dump).
    pub(crate) fn each(&self, mut f: impl FnMut(u64, &Waker)) {
        for bucket in self.ring.iter().chain(self.far.values()) {
            for entry in &bucket.entries {
                if let Some(waker) = &entry.waker {
                    f(entry.when, waker);
                }
            }
        }
    }

    /// How many timers are pending.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Adds a timer due at `when`.
    pub(crate) fn insert(&mut self, when: u64, waker: Waker) -> TimerId {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.live += 1;
        let entry = Entry {
            when,
            seq,
            waker: Some(waker),
        };
        let index = self.index_of(when);
        let bucket = if index < self.base + RING as u64 {
            self.pull_far();
            self.ring_bucket(index, true)
        } else {
            self.far.entry(index).or_default()
        };
        if bucket.sorted {
            // The front bucket, partly fired: keep it sorted (latest first).
            let at = bucket
                .entries
                .partition_point(|e| (e.when, e.seq) > (when, seq));
            bucket.entries.insert(at, entry);
        } else {
            bucket.entries.push(entry);
        }
        TimerId { seq }
    }

    /// The index of the bucket a timer due at `when` goes in: that of its
    /// deadline, or if that is behind the ring's window, the window's first
    /// (which fires next, and which the window does not pass while it
    /// holds entries).
    fn index_of(&self, when: u64) -> u64 {
        (when >> BUCKET_SHIFT).max(self.base)
    }

    /// The bucket a timer due at `when` is in, if it is anywhere.
    fn bucket_of(&mut self, when: u64) -> Option<&mut Bucket> {
        let index = self.index_of(when);
        if index < self.base + RING as u64 {
            self.pull_far();
            Some(self.ring_bucket(index, false))
        } else {
            self.far.get_mut(&index)
        }
    }

    /// The ring bucket of `index` (in the ring's window), marked occupied
    /// if `occupy`.
    fn ring_bucket(&mut self, index: u64, occupy: bool) -> &mut Bucket {
        if self.ring.is_empty() {
            self.ring.resize_with(RING, Bucket::default);
        }
        let slot = (index % RING as u64) as usize;
        if occupy {
            self.occupied[slot / 64] |= 1 << (slot % 64);
        }
        &mut self.ring[slot]
    }

    /// Moves the far buckets that the ring's window now covers into it.
    fn pull_far(&mut self) {
        while let Some(first) = self.far.first_entry() {
            let index = *first.key();
            if index >= self.base + RING as u64 {
                return;
            }
            let far = first.remove();
            // Behind the window (the clock jumped): due, with the first.
            let mut scratch = std::mem::take(&mut self.scratch);
            self.ring_bucket(index.max(self.base), true)
                .merge(far, &mut scratch);
            self.scratch = scratch;
        }
    }

    /// The earliest occupied ring slot, as its distance from `base`.
    fn first_in_ring(&self) -> Option<usize> {
        let mut slot = (self.base % RING as u64) as usize;
        let mut scanned = 0;
        while scanned < RING {
            let bits = self.occupied[slot / 64] >> (slot % 64);
            if bits != 0 {
                let distance = scanned + bits.trailing_zeros() as usize;
                return (distance < RING).then_some(distance);
            }
            let step = 64 - slot % 64;
            scanned += step;
            slot = (slot + step) % RING;
        }
        None
    }

    /// The earliest bucket that holds entries (stale ones maybe), sorted:
    /// its index and place.
    fn front(&mut self) -> Option<(u64, Place)> {
        self.pull_far();
        let (index, place) = match self.first_in_ring() {
            Some(distance) => {
                let index = self.base + distance as u64;
                (index, Place::Ring((index % RING as u64) as usize))
            }
            None => {
                let index = *self.far.first_key_value()?.0;
                (index, Place::Far(index))
            }
        };
        let scratch = &mut self.scratch;
        let bucket = match place {
            Place::Ring(slot) => &mut self.ring[slot],
            Place::Far(index) => self.far.get_mut(&index).expect("the first far bucket"),
        };
        if !bucket.sorted {
            sort_latest_first(&mut bucket.entries, scratch);
            bucket.sorted = true;
        }
        Some((index, place))
    }

    fn at(&mut self, place: Place) -> &mut Bucket {
        match place {
            Place::Ring(slot) => &mut self.ring[slot],
            Place::Far(index) => self.far.get_mut(&index).expect("a far bucket"),
        }
    }

    /// Empties the front bucket (all of it fired or stale).
    fn drop_front(&mut self, place: Place) {
        match place {
            Place::Ring(slot) => {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
                let bucket = &mut self.ring[slot];
                bucket.sorted = false;
                if bucket.entries.capacity() > KEEP {
                    bucket.entries = Vec::new();
                }
            }
            Place::Far(index) => {
                self.far.remove(&index);
            }
        }
    }

    /// The waker of a pending timer due at `when`; `None` if it fired or
    /// was removed.
    pub(crate) fn waker_mut(&mut self, when: u64, id: TimerId) -> Option<&mut Waker> {
        self.bucket_of(when)?.find(when, id.seq)?.waker.as_mut()
    }

    /// Removes a pending timer due at `when` (a no-op if it fired or was
    /// removed). Its entry stays, stale, until its bucket fires or a sweep.
    pub(crate) fn remove(&mut self, when: u64, id: TimerId) {
        let Some(entry) = self.bucket_of(when).and_then(|b| b.find(when, id.seq)) else {
            return;
        };
        if entry.waker.take().is_none() {
            return;
        }
        self.live -= 1;
        self.stale += 1;
        if self.stale > self.live + SWEEP_SLACK {
            self.sweep();
        }
    }

    /// Drops every stale entry: O(entries), once per as many removals.
    fn sweep(&mut self) {
        let live = |e: &Entry| e.waker.is_some();
        for (slot, bucket) in self.ring.iter_mut().enumerate() {
            bucket.entries.retain(live);
            if bucket.entries.is_empty() {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
                bucket.sorted = false;
            }
        }
        self.far.retain(|_, bucket| {
            bucket.entries.retain(live);
            !bucket.entries.is_empty()
        });
        self.stale = 0;
    }

    /// The deadline of the next pending timer, if any (dropping the stale
    /// entries in front of it).
    pub(crate) fn next_due(&mut self) -> Option<u64> {
        while let Some((_, place)) = self.front() {
            let bucket = match place {
                Place::Ring(slot) => &mut self.ring[slot],
                Place::Far(index) => self.far.get_mut(&index).expect("the front bucket"),
            };
            while let Some(entry) = bucket.entries.last() {
                if entry.waker.is_some() {
                    return Some(entry.when);
                }
                bucket.entries.pop();
                self.stale -= 1;
            }
            self.drop_front(place);
        }
        None
    }

    /// Moves the wakers of timers due at or before `now` into `wakers`, in
    /// deadline order; returns the nanoseconds until the next deadline.
    pub(crate) fn fire(&mut self, now: u64, wakers: &mut Vec<Waker>) -> Option<u64> {
        let now_index = now >> BUCKET_SHIFT;
        while let Some((index, place)) = self.front() {
            let bucket = match place {
                Place::Ring(slot) => &mut self.ring[slot],
                Place::Far(index) => self.far.get_mut(&index).expect("the front bucket"),
            };
            while let Some(entry) = bucket.entries.last_mut() {
                if entry.waker.is_some() && entry.when > now {
                    let until = entry.when - now;
                    self.base = self.base.max(index.min(now_index));
                    return Some(until);
                }
                match bucket.entries.pop().and_then(|e| e.waker) {
                    Some(waker) => {
                        wakers.push(waker);
                        self.live -= 1;
                    }
                    None => self.stale -= 1,
                }
            }
            self.drop_front(place);
        }
        // Nothing pending: the window may start anywhere up to now.
        self.base = self.base.max(now_index);
        None
    }

    /// When the driver should wake for the timer due at `due` (the next
    /// one, from [`fire`](Self::fire)): at `due`, or, if more timers fall
    /// due within [`COALESCE_NS`] after it, at the last of those, so that
    /// one wakeup fires them all. A lone timer is not delayed; dense ones
    /// (a burst of timeouts) are at most `COALESCE_NS` late, and cost a
    /// wakeup per window instead of one every few microseconds.
    pub(crate) fn wake_for(&mut self, due: u64) -> u64 {
        let Some((_, place)) = self.front() else {
            return due;
        };
        // Latest first: the ones after `due` are towards the start. A stale
        // entry among them only moves the wakeup within the window.
        let limit = due.saturating_add(COALESCE_NS);
        self.at(place)
            .entries
            .iter()
            .rev()
            .map(|e| e.when)
            .take_while(|&when| when <= limit)
            .last()
            .map_or(due, |when| when.max(due))
    }

    /// How many buckets hold entries (for the tests).
    #[cfg(test)]
    fn buckets(&self) -> usize {
        self.occupied
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>()
            + self.far.len()
    }

    /// How many entries the buckets hold, stale ones included (for the tests).
    #[cfg(test)]
    fn entries(&self) -> usize {
        let ring: usize = self.ring.iter().map(|b| b.entries.len()).sum();
        ring + self.far.values().map(|b| b.entries.len()).sum::<usize>()
    }
}

/// Sorts a bucket's entries latest first, equal deadlines in reverse
/// insertion order (so that popping from the end fires by deadline, then
/// insertion). An unsorted bucket holds its entries in insertion order,
/// which is `seq` order.
///
/// Large buckets (a burst of timers set within a millisecond's span) are
/// sorted by an LSD radix sort on the deadline bits below the bucket's,
/// which is stable and so keeps insertion order among equal deadlines, then
/// reversed: a few passes over the entries instead of a comparison sort's
/// ~log2(n) (about a quarter of the cost of a timer in the 100k-timer
/// benchmark before).
fn sort_latest_first(entries: &mut Vec<Entry>, scratch: &mut Vec<Entry>) {
    // Unsorted buckets are in `seq` order (a merge sorts what it merges),
    // which the stable radix sort turns into insertion order among ties.
    debug_assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
    if entries.len() < RADIX_MIN {
        entries.sort_unstable_by_key(|e| Reverse((e.when, e.seq)));
        return;
    }
    const RADIX: usize = 1 << DIGIT_BITS;
    const PASSES: u32 = BUCKET_SHIFT.div_ceil(DIGIT_BITS);
    // An even number of passes leaves the result back in `entries`.
    const _: () = assert!(PASSES % 2 == 0);
    scratch.clear();
    scratch.resize_with(entries.len(), Entry::default);
    for pass in 0..PASSES {
        let (from, to) = if pass % 2 == 0 {
            (&mut *entries, &mut *scratch)
        } else {
            (&mut *scratch, &mut *entries)
        };
        let shift = pass * DIGIT_BITS;
        let digit = |when: u64| (when >> shift) as usize & (RADIX - 1);
        let mut starts = [0usize; RADIX];
        for entry in from.iter() {
            starts[digit(entry.when)] += 1;
        }
        let mut sum = 0;
        for start in &mut starts {
            let count = *start;
            *start = sum;
            sum += count;
        }
        for entry in from.iter_mut() {
            let at = &mut starts[digit(entry.when)];
            to[*at] = std::mem::take(entry);
            *at += 1;
        }
    }
    entries.reverse();
    // Keep the buffer for the next sort, unless a rare burst made it large.
    if scratch.capacity() > 1 << 16 {
        *scratch = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    /// A waker that logs its number when woken.
    struct Tag(u64, Arc<Mutex<Vec<u64>>>);

    impl Wake for Tag {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    fn fire_all(queue: &mut TimerQueue, now: u64) -> Option<u64> {
        let mut wakers = Vec::new();
        let next = queue.fire(now, &mut wakers);
        wakers.into_iter().for_each(Waker::wake);
        next
    }

    #[test]
    fn fires_in_deadline_then_insertion_order_never_early_and_skips_removed() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queue = TimerQueue::default();
        let ms = |n: u64| n * 1_000_000;
        let mut ids = Vec::new();
        let mut whens = Vec::new();
        // Deadlines across buckets and within one, some equal.
        for (n, at) in [
            (0, ms(30)),
            (1, ms(10)),
            (2, ms(20)),
            (3, ms(10)),
            (4, ms(5)),
            (5, 7),
        ] {
            ids.push(queue.insert(at, Waker::from(Arc::new(Tag(n, log.clone())))));
            whens.push(at);
        }
        queue.remove(whens[2], ids[2]);
        queue.remove(whens[2], ids[2]); // twice: a no-op
        assert_eq!(queue.len(), 5);
        assert_eq!(fire_all(&mut queue, 6), Some(1), "nothing due before 7 ns");
        assert_eq!(fire_all(&mut queue, ms(10)), Some(ms(20)));
        assert_eq!(*log.lock().unwrap(), [5, 4, 1, 3]);
        // Inserted into the front bucket after it was sorted: still in order.
        queue.insert(ms(10) + 1, Waker::from(Arc::new(Tag(6, log.clone()))));
        queue.insert(ms(10) + 1, Waker::from(Arc::new(Tag(7, log.clone()))));
        assert!(
            queue.waker_mut(whens[1], ids[1]).is_none(),
            "a fired timer is gone"
        );
        assert!(queue.waker_mut(whens[0], ids[0]).is_some());
        assert!(
            queue.waker_mut(whens[1], ids[0]).is_none(),
            "not at that deadline"
        );
        assert_eq!(fire_all(&mut queue, u64::MAX), None);
        assert_eq!(*log.lock().unwrap(), [5, 4, 1, 3, 6, 7, 0]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_crowded_bucket_fires_by_deadline_then_insertion() {
        // Thousands of timers in one bucket (the radix-sorted case), many
        // with equal deadlines, and a few removed.
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queue = TimerQueue::default();
        let base = 7 << BUCKET_SHIFT;
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut expected = Vec::new();
        for n in 0..3_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Few distinct deadlines, so ties are common, spread over all
            // the bucket's low bits.
            let when = base + (rng % 97) * ((1 << BUCKET_SHIFT) / 97);
            let id = queue.insert(when, Waker::from(Arc::new(Tag(n, log.clone()))));
            if n % 10 == 3 {
                queue.remove(when, id);
            } else {
                expected.push((when, n));
            }
        }
        assert!(queue.buckets() == 1 && expected.len() >= RADIX_MIN);
        expected.sort();
        assert_eq!(fire_all(&mut queue, u64::MAX), None);
        let fired = std::mem::take(&mut *log.lock().unwrap());
        assert_eq!(fired, expected.iter().map(|&(_, n)| n).collect::<Vec<_>>());
    }

    #[test]
    fn a_wakeup_fires_the_timers_due_within_the_window_after_the_next() {
        let waker = futures::task::noop_waker();
        let mut queue = TimerQueue::default();
        let us = |n: u64| n * 1_000;
        let lone = 3 << BUCKET_SHIFT;
        queue.insert(lone, waker.clone());
        // Alone: woken for at its deadline.
        assert_eq!(queue.fire(0, &mut Vec::new()), Some(lone));
        assert_eq!(queue.wake_for(lone), lone);
        // Three more within the window after it, one past it: woken for
        // at the last within the window, which fires all four.
        for at in [us(10), us(30), COALESCE_NS, COALESCE_NS + 1] {
            queue.insert(lone + at, waker.clone());
        }
        assert_eq!(queue.wake_for(lone), lone + COALESCE_NS);
        let mut wakers = Vec::new();
        assert_eq!(queue.fire(lone + COALESCE_NS, &mut wakers), Some(1));
        assert_eq!(wakers.len(), 4, "one wakeup for the four");
        assert_eq!(
            queue.wake_for(lone + COALESCE_NS + 1),
            lone + COALESCE_NS + 1
        );
    }

    #[test]
    fn a_removed_timer_does_not_answer_for_a_new_one_at_its_deadline() {
        let waker = futures::task::noop_waker();
        let mut queue = TimerQueue::default();
        let old = queue.insert(5, waker.clone());
        queue.remove(5, old);
        let new = queue.insert(5, waker);
        assert_ne!(old, new);
        assert!(queue.waker_mut(5, old).is_none());
        queue.remove(5, old);
        assert_eq!(queue.len(), 1, "removing the old id left the new timer");
        assert!(queue.waker_mut(5, new).is_some());
        assert!(queue.waker_mut(5, TimerId::NONE).is_none());
    }

    #[test]
    fn stale_entries_stay_bounded_when_most_timers_are_cancelled() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queue = TimerQueue::default();
        let far = 60_000_000_000; // 60 s
        for n in 0..10 {
            queue.insert(far + n, Waker::from(Arc::new(Tag(n, log.clone()))));
        }
        let waker = futures::task::noop_waker();
        for i in 0..100_000u64 {
            let id = queue.insert(far + i * 1_000, waker.clone());
            queue.remove(far + i * 1_000, id);
            let entries = queue.entries();
            assert!(
                entries <= 2 * queue.len() + SWEEP_SLACK + 1,
                "{entries} entries"
            );
        }
        assert_eq!(fire_all(&mut queue, u64::MAX), None);
        assert_eq!(*log.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn matches_a_sorted_model_under_random_inserts_removes_and_fires() {
        // Deadlines within the ring's window, the clock in small steps.
        walk_against_a_model(5_000_000, 1_000_000, 0x2545_f491_4f6c_dd1d);
    }

    #[test]
    fn matches_a_sorted_model_with_deadlines_past_the_ring_and_clock_jumps() {
        // Deadlines up to 2 s away (the ring covers ~268 ms), the clock
        // jumping up to 600 ms: buckets move from the map into the ring,
        // and some are overdue when they do.
        walk_against_a_model(2_000_000_000, 600_000_000, 0x9e37_79b9_7f4a_7c15);
    }

    /// A deterministic random walk of inserts, removes and fires against a
    /// BTreeMap model: deadlines up to `spread` ns ahead, the clock moving
    /// by up to `step` ns at a time.
    fn walk_against_a_model(spread: u64, step: u64, seed: u64) {
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queue = TimerQueue::default();
        let mut model: BTreeMap<(u64, u64), TimerId> = BTreeMap::new();
        // Now and then, a timer that was removed is removed again.
        let mut removed: Vec<(u64, TimerId)> = Vec::new();
        let mut now = 0u64;
        let mut tag = 0u64;
        for _ in 0..20_000 {
            match next() % 4 {
                0 | 1 => {
                    let when = now + next() % spread;
                    let id = queue.insert(when, Waker::from(Arc::new(Tag(tag, log.clone()))));
                    model.insert((when, tag), id);
                    tag += 1;
                }
                2 if !model.is_empty() => {
                    let nth = (next() % model.len() as u64) as usize;
                    let (&k, &id) = model.iter().nth(nth).unwrap();
                    queue.remove(k.0, id);
                    model.remove(&k);
                    removed.push((k.0, id));
                    if next() % 8 == 0 {
                        let (when, id) = removed[(next() % removed.len() as u64) as usize];
                        queue.remove(when, id);
                    }
                }
                _ => {
                    now += next() % step;
                    let next_due = fire_all(&mut queue, now);
                    let due: Vec<u64> = model.range(..(now + 1, 0)).map(|(&(_, t), _)| t).collect();
                    model.retain(|&(w, _), _| w > now);
                    assert_eq!(*log.lock().unwrap(), due, "fired at {now}");
                    log.lock().unwrap().clear();
                    assert_eq!(next_due, model.keys().next().map(|&(w, _)| w - now));
                }
            }
            assert_eq!(queue.len(), model.len());
            assert_eq!(queue.next_due(), model.keys().next().map(|&(w, _)| w));
        }
    }
}

//! The reactor's pending timers: deadlines sorted lazily in buckets of
//! about a millisecond, beside a slab of wakers.
//!
//! Inserting a timer is a slab insert and a push onto its bucket (found in
//! a small ordered map of buckets); cancelling frees its slab slot and
//! leaves the bucket entry stale. A bucket is sorted once, when it reaches
//! the front, and then fires entry by entry, so timers fire in deadline
//! order (equal deadlines in insertion order) and never early. Stale
//! entries are dropped as they reach the front, and all at once whenever
//! they outnumber the live timers, so memory stays within a constant factor
//! of the pending timers even when most are cancelled (as timeouts around
//! I/O that completes in time are).

use std::collections::BTreeMap;
use std::task::Waker;

use slab::Slab;

/// A bucket spans 2^20 ns (about 1 ms) of deadlines.
const BUCKET_SHIFT: u32 = 20;

/// Stale entries tolerated before a sweep, beyond the live count.
const SWEEP_SLACK: usize = 1024;

/// Buckets at least this full are radix sorted; smaller ones by comparison.
const RADIX_MIN: usize = 256;

/// The radix sort's digit: two passes of 10 bits cover a bucket's 20.
const DIGIT_BITS: u32 = 10;

/// A pending timer's handle: its slab key and its unique sequence number,
/// which tells it apart from a later timer in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    key: u32,
    seq: u64,
}

impl TimerId {
    /// Names no timer (for one that fired as it was inserted).
    pub(crate) const NONE: TimerId = TimerId {
        key: u32::MAX,
        seq: u64::MAX,
    };
}

#[derive(Debug)]
struct Slot {
    seq: u64,
    waker: Waker,
}

/// (deadline in ns, seq, slab key)
type Entry = (u64, u64, u32);

#[derive(Debug, Default)]
struct Bucket {
    entries: Vec<Entry>,
    /// Sorted latest first (so the next due is last), kept sorted on insert.
    sorted: bool,
}

/// Pending timers; deadlines are nanoseconds from the reactor's epoch.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    buckets: BTreeMap<u64, Bucket>,
    slots: Slab<Slot>,
    next_seq: u64,
    /// Bucket entries whose timer was removed.
    stale: usize,
    /// The radix sort's second buffer, kept between sorts.
    scratch: Vec<Entry>,
}

impl TimerQueue {
    /// How many timers are pending.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Adds a timer due at `when`.
    pub(crate) fn insert(&mut self, when: u64, waker: Waker) -> TimerId {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.slots.insert(Slot { seq, waker });
        let key = u32::try_from(key).expect("tarn: more than 2^32 pending timers");
        let bucket = self.buckets.entry(when >> BUCKET_SHIFT).or_default();
        if bucket.sorted {
            // The front bucket, partly fired: keep it sorted (latest first).
            let at = bucket
                .entries
                .partition_point(|&(w, s, _)| (w, s) > (when, seq));
            bucket.entries.insert(at, (when, seq, key));
        } else {
            bucket.entries.push((when, seq, key));
        }
        TimerId { key, seq }
    }

    /// The waker of a pending timer; `None` if it fired or was removed.
    pub(crate) fn waker_mut(&mut self, id: TimerId) -> Option<&mut Waker> {
        match self.slots.get_mut(id.key as usize) {
            Some(slot) if slot.seq == id.seq => Some(&mut slot.waker),
            _ => None,
        }
    }

    /// Removes a pending timer (a no-op if it fired or was removed).
    pub(crate) fn remove(&mut self, id: TimerId) {
        if self.waker_mut(id).is_none() {
            return;
        }
        self.slots.remove(id.key as usize);
        self.stale += 1;
        if self.stale > self.slots.len() + SWEEP_SLACK {
            self.sweep();
        }
    }

    /// Drops every stale entry: O(entries), once per as many removals.
    fn sweep(&mut self) {
        let slots = &self.slots;
        self.buckets.retain(|_, bucket| {
            bucket
                .entries
                .retain(|&(_, seq, key)| slots.get(key as usize).is_some_and(|s| s.seq == seq));
            !bucket.entries.is_empty()
        });
        self.stale = 0;
    }

    /// The deadline of the next pending timer, if any (dropping the stale
    /// entries in front of it).
    pub(crate) fn next_due(&mut self) -> Option<u64> {
        let TimerQueue {
            buckets,
            slots,
            stale,
            scratch,
            ..
        } = self;
        while let Some(mut front) = buckets.first_entry() {
            let bucket = front.get_mut();
            if !bucket.sorted {
                sort_latest_first(&mut bucket.entries, scratch);
                bucket.sorted = true;
            }
            while let Some(&(when, seq, key)) = bucket.entries.last() {
                if slots.get(key as usize).is_some_and(|s| s.seq == seq) {
                    return Some(when);
                }
                bucket.entries.pop();
                *stale -= 1;
            }
            front.remove();
        }
        None
    }

    /// Moves the wakers of timers due at or before `now` into `wakers`, in
    /// deadline order; returns the nanoseconds until the next deadline.
    pub(crate) fn fire(&mut self, now: u64, wakers: &mut Vec<Waker>) -> Option<u64> {
        let TimerQueue {
            buckets,
            slots,
            stale,
            scratch,
            ..
        } = self;
        while let Some(mut front) = buckets.first_entry() {
            let bucket = front.get_mut();
            if !bucket.sorted {
                sort_latest_first(&mut bucket.entries, scratch);
                bucket.sorted = true;
            }
            while let Some(&(when, seq, key)) = bucket.entries.last() {
                let live = slots.get(key as usize).is_some_and(|s| s.seq == seq);
                if live && when > now {
                    return Some(when - now);
                }
                bucket.entries.pop();
                if live {
                    wakers.push(slots.remove(key as usize).waker);
                } else {
                    *stale -= 1;
                }
            }
            front.remove();
        }
        None
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
    if entries.len() < RADIX_MIN {
        entries.sort_unstable_by_key(|&(when, seq, _)| std::cmp::Reverse((when, seq)));
        return;
    }
    const RADIX: usize = 1 << DIGIT_BITS;
    const PASSES: u32 = BUCKET_SHIFT.div_ceil(DIGIT_BITS);
    // An even number of passes leaves the result back in `entries`.
    const _: () = assert!(PASSES % 2 == 0);
    scratch.clear();
    scratch.resize(entries.len(), (0, 0, 0));
    for pass in 0..PASSES {
        let (from, to) = if pass % 2 == 0 {
            (&*entries, &mut *scratch)
        } else {
            (&*scratch, &mut *entries)
        };
        let shift = pass * DIGIT_BITS;
        let digit = |when: u64| (when >> shift) as usize & (RADIX - 1);
        let mut starts = [0usize; RADIX];
        for &(when, _, _) in from.iter() {
            starts[digit(when)] += 1;
        }
        let mut sum = 0;
        for start in &mut starts {
            let count = *start;
            *start = sum;
            sum += count;
        }
        for &entry in from.iter() {
            let at = &mut starts[digit(entry.0)];
            to[*at] = entry;
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
        }
        queue.remove(ids[2]);
        queue.remove(ids[2]); // twice: a no-op
        assert_eq!(queue.len(), 5);
        assert_eq!(fire_all(&mut queue, 6), Some(1), "nothing due before 7 ns");
        assert_eq!(fire_all(&mut queue, ms(10)), Some(ms(20)));
        assert_eq!(*log.lock().unwrap(), [5, 4, 1, 3]);
        // Inserted into the front bucket after it was sorted: still in order.
        queue.insert(ms(10) + 1, Waker::from(Arc::new(Tag(6, log.clone()))));
        queue.insert(ms(10) + 1, Waker::from(Arc::new(Tag(7, log.clone()))));
        assert!(queue.waker_mut(ids[1]).is_none(), "a fired timer is gone");
        assert!(queue.waker_mut(ids[0]).is_some());
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
                queue.remove(id);
            } else {
                expected.push((when, n));
            }
        }
        assert!(queue.buckets.len() == 1 && expected.len() >= RADIX_MIN);
        expected.sort();
        assert_eq!(fire_all(&mut queue, u64::MAX), None);
        let fired = std::mem::take(&mut *log.lock().unwrap());
        assert_eq!(fired, expected.iter().map(|&(_, n)| n).collect::<Vec<_>>());
    }

    #[test]
    fn a_reused_slot_does_not_answer_for_the_old_timer() {
        let waker = futures::task::noop_waker();
        let mut queue = TimerQueue::default();
        let old = queue.insert(5, waker.clone());
        queue.remove(old);
        let new = queue.insert(5, waker);
        assert_eq!(old.key, new.key);
        assert!(queue.waker_mut(old).is_none());
        queue.remove(old);
        assert_eq!(queue.len(), 1, "removing the old id left the new timer");
        assert!(queue.waker_mut(TimerId::NONE).is_none());
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
            queue.remove(id);
            let entries: usize = queue.buckets.values().map(|b| b.entries.len()).sum();
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
        // A small deterministic random walk against a BTreeMap model.
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queue = TimerQueue::default();
        let mut model: BTreeMap<(u64, u64), TimerId> = BTreeMap::new();
        let mut now = 0u64;
        let mut tag = 0u64;
        for _ in 0..20_000 {
            match next() % 4 {
                0 | 1 => {
                    let when = now + next() % 5_000_000;
                    let id = queue.insert(when, Waker::from(Arc::new(Tag(tag, log.clone()))));
                    model.insert((when, tag), id);
                    tag += 1;
                }
                2 if !model.is_empty() => {
                    let nth = (next() % model.len() as u64) as usize;
                    let (&k, &id) = model.iter().nth(nth).unwrap();
                    queue.remove(id);
                    model.remove(&k);
                }
                _ => {
                    now += next() % 1_000_000;
                    let next_due = fire_all(&mut queue, now);
                    let due: Vec<u64> = model.range(..(now + 1, 0)).map(|(&(_, t), _)| t).collect();
                    model.retain(|&(w, _), _| w > now);
                    assert_eq!(*log.lock().unwrap(), due, "fired at {now}");
                    log.lock().unwrap().clear();
                    assert_eq!(next_due, model.keys().next().map(|&(w, _)| w - now));
                }
            }
            assert_eq!(queue.len(), model.len());
        }
    }
}

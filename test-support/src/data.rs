//! Deterministic test data: pseudo-random numbers, sizes and bytes from a
//! seed, and a checksum to compare what was sent with what arrived.

/// The FNV-1a offset basis: where a checksum starts.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `data`, continuing from `hash` (start with [`FNV_START`]),
/// so that a stream can be summed piece by piece.
///
/// ```
/// use tarn_test_support::{fnv1a, FNV_START};
///
/// let whole = fnv1a(FNV_START, b"hello world");
/// assert_eq!(fnv1a(fnv1a(FNV_START, b"hello "), b"world"), whole);
/// ```
pub fn fnv1a(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The largest size [`Rng::io_size`] returns.
pub const MAX_IO: usize = 256 * 1024;

/// A small pseudo-random generator: the same seed gives the same stream.
///
/// Two streams exist, because the suites chose their seeds and sizes with
/// them and each keeps its own: [`Rng::xorshift`] (the reactor's suites
/// and [`random_bytes`]) and [`Rng::xorshift_star`] (the facade's
/// reliability suite). Both seed the same way; every method works on both.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    step: Step,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// xorshift64 (13, 7, 17); the state is the output.
    Xorshift,
    /// xorshift64* (12, 25, 27), output multiplied by a constant.
    XorshiftStar,
}

impl Rng {
    /// A xorshift64 generator seeded with `seed` (any value).
    pub fn xorshift(seed: u64) -> Rng {
        Rng::seeded(seed, Step::Xorshift)
    }

    /// A xorshift64* generator seeded with `seed` (any value).
    pub fn xorshift_star(seed: u64) -> Rng {
        Rng::seeded(seed, Step::XorshiftStar)
    }

    fn seeded(seed: u64, step: Step) -> Rng {
        Rng {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            step,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let x = &mut self.state;
        match self.step {
            Step::Xorshift => {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                *x
            }
            Step::XorshiftStar => {
                *x ^= *x >> 12;
                *x ^= *x << 25;
                *x ^= *x >> 27;
                x.wrapping_mul(0x2545_f491_4f6c_dd1d)
            }
        }
    }

    /// A number in `0..n` (`n > 0`; uniform enough for tests).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// A size for one read or write: mostly up to 64 KiB, one in eight
    /// tiny (1 to 16 bytes), one in sixteen large (up to [`MAX_IO`]).
    pub fn io_size(&mut self) -> usize {
        match self.next_u64() % 16 {
            0 | 1 => self.between(1, 16),
            2 => self.between(64 * 1024, MAX_IO),
            _ => self.between(1, 64 * 1024),
        }
    }

    /// Fills `buf` with random bytes, eight (little-endian) per step.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}

/// `len` deterministic pseudo-random bytes: [`Rng::xorshift`]`(seed)`'s
/// [`fill`](Rng::fill).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0; len];
    Rng::xorshift(seed).fill(&mut data);
    data
}

/// `len` random bytes handed out in chunks of the sizes the caller asks
/// for, with the checksum ([`fnv1a`]) of what has been handed out: the
/// sending side of a stream whose receiver compares length and checksum.
///
/// ```
/// use tarn_test_support::{fnv1a, RandomChunks, Rng, FNV_START};
///
/// let mut chunks = RandomChunks::new(Rng::xorshift_star(1), 1000);
/// let mut sent = Vec::new();
/// while let Some(chunk) = chunks.next_chunk(300) {
///     sent.extend_from_slice(chunk);
/// }
/// assert_eq!(sent.len(), 1000);
/// assert_eq!(chunks.checksum(), fnv1a(FNV_START, &sent));
/// ```
#[derive(Debug)]
pub struct RandomChunks {
    data: Rng,
    buf: Vec<u8>,
    left: usize,
    hash: u64,
}

impl RandomChunks {
    /// `len` bytes from `data`.
    pub fn new(data: Rng, len: usize) -> RandomChunks {
        RandomChunks {
            data,
            buf: Vec::new(),
            left: len,
            hash: FNV_START,
        }
    }

    /// The next `size` bytes (fewer at the end), or `None` once all `len`
    /// have been handed out.
    pub fn next_chunk(&mut self, size: usize) -> Option<&[u8]> {
        if self.left == 0 {
            return None;
        }
        let n = size.min(self.left);
        self.buf.resize(n, 0);
        self.data.fill(&mut self.buf);
        self.hash = fnv1a(self.hash, &self.buf);
        self.left -= n;
        Some(&self.buf)
    }

    /// The checksum of every byte handed out so far.
    pub fn checksum(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streams the suites were written against, as they first were.
    #[test]
    fn the_streams_are_the_ones_the_suites_chose_their_seeds_with() {
        let mut plain = 7u64.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut star = plain;
        let (mut a, mut b) = (Rng::xorshift(7), Rng::xorshift_star(7));
        for _ in 0..1000 {
            plain ^= plain << 13;
            plain ^= plain >> 7;
            plain ^= plain << 17;
            assert_eq!(a.next_u64(), plain);

            star ^= star >> 12;
            star ^= star << 25;
            star ^= star >> 27;
            assert_eq!(b.next_u64(), star.wrapping_mul(0x2545_f491_4f6c_dd1d));
        }
    }

    #[test]
    fn random_bytes_are_the_xorshift_stream_eight_bytes_a_step() {
        let data = random_bytes(20, 3);
        let mut rng = Rng::xorshift(3);
        let words: Vec<u8> = (0..3).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
        assert_eq!(data, words[..20]);
    }

    #[test]
    fn io_sizes_stay_in_range() {
        let mut rng = Rng::xorshift_star(1);
        for _ in 0..10_000 {
            assert!((1..=MAX_IO).contains(&rng.io_size()));
        }
    }
}

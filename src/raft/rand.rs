//! A tiny seeded pseudo-random generator (splitmix64) owned by the core.
//!
//! The core must be deterministic: the same inputs produce the same outputs. The only
//! randomness Raft needs is the election timeout jitter (Raft §5.2: "election timeouts are
//! chosen randomly from a fixed interval"), so a 64-bit splitmix generator seeded from
//! `Config::seed` and the node id is plenty. No crate, no global state.

/// splitmix64: a full-period 64-bit generator with a good output mix.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[low, high)`; returns `low` when the range is empty.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        // Modulo bias is irrelevant for timeout jitter over tiny ranges.
        low + self.next_u64() % (high - low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_range_is_respected() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            let x = a.range(10, 20);
            assert_eq!(x, b.range(10, 20));
            assert!((10..20).contains(&x));
        }
        let mut c = SplitMix64::new(8);
        let differs = (0..10).any(|_| a.next_u64() != c.next_u64());
        assert!(differs);
        assert_eq!(a.range(5, 5), 5);
    }

    #[test]
    fn range_covers_all_values() {
        let mut r = SplitMix64::new(1);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[r.range(0, 10) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}

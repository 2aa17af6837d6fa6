//! The memo of search configurations already explored: (linearized set, register state).
//!
//! Wing & Gong's search revisits the same configuration through many orders of commuting
//! operations; Lowe's memoization (as in Porcupine) prunes every revisit. Entries are exact
//! (the whole bitset is stored), so a hash collision can never prune an unexplored branch.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::model::StateId;

/// A multiply-rotate hash (the FxHash recipe): the keys are machine words, not attacker
/// controlled, so SipHash's cost buys nothing here.
#[derive(Default)]
struct WordHasher {
    hash: u64,
}

impl WordHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_u32(&mut self, word: u32) {
        self.add(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }
}

/// The set of explored configurations, grouped by state so that a lookup borrows the key and
/// allocates only when the configuration is new.
///
/// Linearized sets are stored compacted (`compact`): operations are numbered in invocation
/// order, so a set is nearly always "everything below k, then a few bits": storing k and the
/// few bits, instead of a bit per operation of the key, is what keeps ten million
/// configurations of a long history within a few hundred megabytes.
#[derive(Default)]
pub(crate) struct Visited {
    by_state: HashMap<StateId, HashSet<Box<[u64]>, WordHash>, WordHash>,
    configurations: usize,
    /// Reused buffer for the compacted key of each lookup.
    scratch: Vec<u64>,
}

type WordHash = BuildHasherDefault<WordHasher>;

impl Visited {
    /// Records a configuration; false when it was already explored.
    pub(crate) fn insert(&mut self, linearized: &[u64], state: StateId) -> bool {
        compact(linearized, &mut self.scratch);
        let sets = self.by_state.entry(state).or_default();
        if sets.contains(self.scratch.as_slice()) {
            return false;
        }
        sets.insert(self.scratch.as_slice().into());
        self.configurations += 1;
        true
    }

    /// Number of configurations recorded.
    pub(crate) fn len(&self) -> usize {
        self.configurations
    }
}

/// Writes a canonical, usually much shorter, encoding of the bitset `bits` to `out`: the index
/// k of its first clear bit, then its bits from k to its last set bit, shifted down to start
/// at bit 0 (nothing when no bit above k is set). Two bitsets of one length are equal iff
/// their encodings are.
fn compact(bits: &[u64], out: &mut Vec<u64>) {
    out.clear();
    let first_clear = bits
        .iter()
        .position(|&word| word != u64::MAX)
        .map_or(bits.len() * 64, |word| {
            word * 64 + bits[word].trailing_ones() as usize
        });
    out.push(first_clear as u64);
    let last_set = bits
        .iter()
        .rposition(|&word| word != 0)
        .map(|word| word * 64 + 63 - bits[word].leading_zeros() as usize);
    let Some(last_set) = last_set.filter(|&last_set| last_set > first_clear) else {
        return;
    };
    let (first_word, shift) = (first_clear / 64, first_clear % 64);
    let window_words = (last_set - first_clear) / 64 + 1;
    for i in 0..window_words {
        let low = bits[first_word + i] >> shift;
        let high = match bits.get(first_word + i + 1) {
            Some(&next) if shift > 0 => next << (64 - shift),
            _ => 0,
        };
        out.push(low | high);
    }
    debug_assert!(
        out.last().is_some_and(|&word| word != 0),
        "encoding not canonical"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `compact`'s output back to a bitset of `words` words.
    fn expand(encoded: &[u64], words: usize) -> Vec<u64> {
        let mut bits = vec![0u64; words];
        let first_clear = encoded[0] as usize;
        for bit in 0..first_clear {
            bits[bit / 64] |= 1 << (bit % 64);
        }
        for (i, &word) in encoded[1..].iter().enumerate() {
            for offset in 0..64 {
                if word & (1 << offset) != 0 {
                    let bit = first_clear + i * 64 + offset;
                    bits[bit / 64] |= 1 << (bit % 64);
                }
            }
        }
        bits
    }

    proptest::proptest! {
        #[test]
        fn compact_round_trips(bits in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::Just(0u64),
                proptest::prelude::Just(u64::MAX),
                proptest::prelude::any::<u64>(),
            ],
            1..5,
        )) {
            let mut encoded = Vec::new();
            compact(&bits, &mut encoded);
            proptest::prop_assert_eq!(expand(&encoded, bits.len()), bits);
        }
    }

    #[test]
    fn compact_is_short_for_a_dense_prefix() {
        // 130 operations linearized, then one more at 140: prefix length and one word.
        let mut bits = vec![u64::MAX, u64::MAX, 0b11, 0];
        bits[2] |= 1 << 12;
        let mut encoded = Vec::new();
        compact(&bits, &mut encoded);
        assert_eq!(encoded, vec![130, 1 << 10]);
        compact(&[u64::MAX, 0], &mut encoded);
        assert_eq!(encoded, vec![64]);
        compact(&[u64::MAX], &mut encoded);
        assert_eq!(encoded, vec![64]);
    }

    #[test]
    fn distinguishes_sets_and_states() {
        let mut visited = Visited::default();
        assert!(visited.insert(&[0b01], StateId::ABSENT));
        assert!(!visited.insert(&[0b01], StateId::ABSENT));
        assert!(visited.insert(&[0b10], StateId::ABSENT));
        assert!(visited.insert(&[0b01, 1], StateId::ABSENT));
        assert_eq!(visited.len(), 3);
    }
}

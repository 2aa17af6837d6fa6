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

/// The set of explored configurations, grouped by state so that a lookup borrows the bitset
/// and allocates only when the configuration is new.
#[derive(Default)]
pub(crate) struct Visited {
    by_state: HashMap<StateId, HashSet<Box<[u64]>, WordHash>, WordHash>,
    configurations: usize,
}

type WordHash = BuildHasherDefault<WordHasher>;

impl Visited {
    /// Records a configuration; false when it was already explored.
    pub(crate) fn insert(&mut self, linearized: &[u64], state: StateId) -> bool {
        let sets = self.by_state.entry(state).or_default();
        if sets.contains(linearized) {
            return false;
        }
        sets.insert(linearized.into());
        self.configurations += 1;
        true
    }

    /// Number of configurations recorded.
    pub(crate) fn len(&self) -> usize {
        self.configurations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

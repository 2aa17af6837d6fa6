//! [`SlotRanges`]: the 16,384 hash slots split into equal ranges, one per shard.

use crate::kv::cluster::SLOT_COUNT;

/// Most shards: one slot each at most.
pub const SHARDS_MAX: u16 = 1024;

/// `shards` contiguous, ascending slot ranges that cover every slot: range `i` starts at
/// `i * 16384 / shards`, so the ranges differ in size by at most one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRanges {
    shards: u16,
}

impl SlotRanges {
    /// The split into `shards` ranges.
    ///
    /// # Errors
    ///
    /// If `shards` is 0 or above [`SHARDS_MAX`].
    pub fn new(shards: u16) -> Result<SlotRanges, String> {
        if shards == 0 || shards > SHARDS_MAX {
            return Err(format!(
                "the number of shards must be between 1 and {SHARDS_MAX}, got {shards}"
            ));
        }
        Ok(SlotRanges { shards })
    }

    /// How many ranges.
    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// Range `shard`'s first and last slot (inclusive).
    pub fn range(&self, shard: u16) -> (u16, u16) {
        assert!(shard < self.shards, "shard {shard} of {}", self.shards);
        let start = |i: u32| (i * u32::from(SLOT_COUNT) / u32::from(self.shards)) as u16;
        let first = start(u32::from(shard));
        let next = start(u32::from(shard) + 1);
        (first, next - 1)
    }

    /// The range holding `slot`.
    pub fn shard_of(&self, slot: u16) -> u16 {
        assert!(slot < SLOT_COUNT, "slot {slot} out of range");
        // The largest i with i * 16384 / n <= slot: (slot * n + n - 1) / 16384 overshoots
        // by at most one, so step back when it does.
        let n = u32::from(self.shards);
        let mut shard = (u32::from(slot) * n + n - 1) / u32::from(SLOT_COUNT);
        if shard >= n || self.range(shard as u16).0 > slot {
            shard -= 1;
        }
        shard as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_slot_once_in_order() {
        for shards in [1, 2, 3, 7, 16, 100, 1000, SHARDS_MAX] {
            let ranges = SlotRanges::new(shards).unwrap();
            let mut next = 0u32;
            for shard in 0..shards {
                let (first, last) = ranges.range(shard);
                assert_eq!(u32::from(first), next, "{shards} shards, shard {shard}");
                assert!(first <= last);
                let size = u32::from(last - first) + 1;
                let even = u32::from(SLOT_COUNT) / u32::from(shards);
                assert!(size == even || size == even + 1);
                next = u32::from(last) + 1;
            }
            assert_eq!(next, u32::from(SLOT_COUNT));
            for slot in 0..SLOT_COUNT {
                let shard = ranges.shard_of(slot);
                let (first, last) = ranges.range(shard);
                assert!(
                    (first..=last).contains(&slot),
                    "{shards} shards, slot {slot}"
                );
            }
        }
    }

    #[test]
    fn sixteen_shards_are_redis_cluster_sized() {
        let ranges = SlotRanges::new(16).unwrap();
        assert_eq!(ranges.range(0), (0, 1023));
        assert_eq!(ranges.range(15), (15360, 16383));
        assert_eq!(ranges.shard_of(12182), 11); // CLUSTER KEYSLOT foo
    }

    #[test]
    fn bad_counts_are_refused() {
        assert!(SlotRanges::new(0).is_err());
        assert!(SlotRanges::new(SHARDS_MAX + 1)
            .unwrap_err()
            .contains("between 1 and 1024"));
    }
}

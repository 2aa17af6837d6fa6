//! The segments of a log in memory, oldest first, and the index over them: which segment holds
//! which live entry at which offset.
//!
//! The write path and recovery change the index through the same three operations (push,
//! truncate, compact), so a log rebuilt from its records at open is the log that wrote them.

use std::collections::VecDeque;

use crate::segment::Segment;

/// All segment files of a log and the range of live entries they hold.
#[derive(Debug)]
pub(crate) struct Chain {
    /// Oldest first; the last is active.
    pub segments: VecDeque<Segment>,
    /// Index of the first live entry; `last_index + 1` if there is none.
    pub first_index: u64,
    /// Index of the last live entry.
    pub last_index: u64,
}

impl Chain {
    /// A chain of no segments, before the first entry of a log.
    pub fn new() -> Chain {
        Chain {
            segments: VecDeque::new(),
            first_index: 1,
            last_index: 0,
        }
    }

    pub fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("a log always has an active segment")
    }

    pub fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("a log always has an active segment")
    }

    /// The segment holding live entry `index`, which must be in `first_index..=last_index`.
    pub fn holding(&self, index: u64) -> &Segment {
        debug_assert!(index >= self.first_index && index <= self.last_index);
        let candidates = self
            .segments
            .partition_point(|segment| segment.own_first <= index);
        for position in (0..candidates).rev() {
            let segment = &self.segments[position];
            if !segment.is_empty() && segment.own_last() >= index {
                assert!(segment.own_first <= index);
                return segment;
            }
        }
        panic!(
            "log index is inconsistent: no segment holds entry {index} of {}..={}",
            self.first_index, self.last_index
        );
    }

    /// Drops entries at or above `from`.
    pub fn truncate(&mut self, from: u64) {
        if from > self.last_index {
            return;
        }
        for segment in self.segments.iter_mut().rev() {
            if !segment.is_empty() && segment.own_last() < from {
                break;
            }
            segment.truncate_from(from);
        }
        let active = self.active_mut();
        active.prior_keep_below = active.prior_keep_below.min(from);
        self.last_index = from - 1;
    }

    /// Moves the first index up to `first`.
    pub fn compact(&mut self, first: u64) {
        if first <= self.first_index {
            return;
        }
        self.first_index = first;
        if first > self.last_index + 1 {
            self.last_index = first - 1;
            for segment in self.segments.iter_mut() {
                segment.offsets.clear();
                segment.own_first = first;
            }
        }
    }

    /// Records entry `index` at `offset` of the active segment.
    pub fn push(&mut self, index: u64, offset: u64) {
        assert_eq!(index, self.last_index + 1, "entries must stay contiguous");
        let active = self.active_mut();
        if active.offsets.is_empty() {
            active.prior_keep_below = active.prior_keep_below.min(index);
        }
        active.push_entry(index, offset);
        self.last_index = index;
    }
}

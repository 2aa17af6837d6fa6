//! The in-memory index of one group: where its live entries are.
//!
//! A group's live entries `first..=last` are stored as ordered *chunks*, one per run of
//! contiguous entries written into one segment: `{seq, first_index, offsets}`. Appends extend
//! the last chunk while they go to the same segment; garbage collection replaces a chunk by one
//! in the segment it copied the entries to. The cost is 4 bytes per live entry (its frame
//! offset), plus one chunk per (group, segment) run, plus a fixed cost per group (see the
//! figures in [`crate::store`]).
//!
//! Write path and recovery change the index through the same operations, so an index rebuilt
//! from records at open is the index that wrote them. Every removal of locations is reported to
//! a [`LiveCounter`], which keeps the per-segment live counts that garbage collection reads.

use std::collections::VecDeque;

use crate::entry::HardState;

/// Learns which entry frames become live and dead, per segment.
pub(crate) trait LiveCounter {
    /// The frame at `offset` of segment `seq` became live; `bytes` is its size, when known
    /// (always, for the active segment).
    fn added(&mut self, seq: u64, offset: u32, bytes: Option<u64>);
    /// `entries` frames of segment `seq`, `bytes` in all, became live.
    fn added_known(&mut self, seq: u64, entries: u64, bytes: u64);
    /// The frames at `offsets` of segment `seq` are no longer live.
    fn removed(&mut self, seq: u64, offsets: &[u32]);
    /// A new chunk in segment `seq` began (it costs a run in that segment's footer).
    fn run_started(&mut self, seq: u64);
}

/// The sizes of a run of frames being placed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RunBytes<'a> {
    /// Their total, from a sealed segment's footer (a single frame's size is read from the
    /// segment's map when needed).
    Total(u64),
    /// Each frame's size, in the order of the offsets.
    Each(&'a [u32]),
}

/// A run of a group's entries stored contiguously by index in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The segment holding them.
    pub seq: u64,
    /// Index of the first.
    pub first_index: u64,
    /// Frame offset of each, in index order.
    pub offsets: Vec<u32>,
}

impl Chunk {
    /// One past the index of its last entry.
    pub fn end(&self) -> u64 {
        self.first_index + self.offsets.len() as u64
    }
}

/// One group's range, hard state and entry locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupIndex {
    /// First live index; `last + 1` when the group holds no entry.
    pub first: u64,
    /// Last live index.
    pub last: u64,
    pub hard_state: HardState,
    /// Ordered by index, not overlapping, all within `first..=last`. Between operations of the
    /// write path they cover `first..=last` without a gap; during recovery a gap may exist until
    /// a later record fills or drops it.
    pub chunks: VecDeque<Chunk>,
}

impl Default for GroupIndex {
    fn default() -> Self {
        GroupIndex {
            first: 1,
            last: 0,
            hard_state: HardState::default(),
            chunks: VecDeque::new(),
        }
    }
}

impl GroupIndex {
    /// True if the group holds no entry.
    pub fn is_empty(&self) -> bool {
        self.last < self.first
    }

    /// Records entry `index` at `offset` of segment `seq`, the way an append does: an index at
    /// or below `last` replaces the entries from there on; an empty group starts at `index`.
    /// The caller has checked that `index` is allowed (at least `first`, at most `last + 1`
    /// unless the group is empty).
    pub fn push(
        &mut self,
        seq: u64,
        index: u64,
        offset: u32,
        bytes: u64,
        live: &mut dyn LiveCounter,
    ) {
        if self.is_empty() {
            self.first = index;
        } else if index <= self.last {
            self.remove_range(index, u64::MAX, live);
        }
        debug_assert!(index >= self.first);
        self.last = index;
        live.added(seq, offset, Some(bytes));
        match self.chunks.back_mut() {
            Some(chunk) if chunk.seq == seq && chunk.end() == index => {
                debug_assert!(chunk.offsets.last().is_some_and(|last| *last < offset));
                chunk.offsets.push(offset);
            }
            _ => {
                live.run_started(seq);
                self.chunks.push_back(Chunk {
                    seq,
                    first_index: index,
                    offsets: vec![offset],
                })
            }
        }
    }

    /// Drops entries at or above `from`.
    pub fn truncate(&mut self, from: u64, live: &mut dyn LiveCounter) {
        if from > self.last {
            return;
        }
        self.remove_range(from, u64::MAX, live);
        self.last = from.max(self.first) - 1;
    }

    /// Moves the first index up to `first`; past `last + 1` the group becomes empty there.
    pub fn compact(&mut self, first: u64, live: &mut dyn LiveCounter) {
        if first <= self.first {
            return;
        }
        self.remove_range(0, first, live);
        self.first = first;
        if first > self.last + 1 {
            self.last = first - 1;
        }
    }

    /// Drops every location (the group is being removed).
    pub fn clear(&mut self, live: &mut dyn LiveCounter) {
        self.remove_range(0, u64::MAX, live);
    }

    /// Sets the range and hard state to what a checkpoint or footer says, dropping locations
    /// outside the range.
    pub fn reset(
        &mut self,
        first: u64,
        last: u64,
        hard_state: HardState,
        live: &mut dyn LiveCounter,
    ) {
        self.remove_range(0, first, live);
        self.remove_range(last.saturating_add(1), u64::MAX, live);
        self.first = first;
        self.last = last;
        self.hard_state = hard_state;
    }

    /// Places entries `first_index ..` at `offsets` of segment `seq` (garbage collection moved
    /// them there, or a footer says they live there). Indices outside `first..=last` are
    /// ignored: they were dropped after the move.
    pub fn relocate(
        &mut self,
        seq: u64,
        first_index: u64,
        offsets: &[u32],
        bytes: RunBytes<'_>,
        live: &mut dyn LiveCounter,
    ) {
        let end = first_index + offsets.len() as u64;
        let lo = first_index.max(self.first);
        let hi = end.min(self.last + 1);
        if lo >= hi {
            return;
        }
        let kept = &offsets[(lo - first_index) as usize..(hi - first_index) as usize];
        self.remove_range(lo, hi, live);
        match bytes {
            RunBytes::Total(bytes) if kept.len() == offsets.len() => {
                live.added_known(seq, kept.len() as u64, bytes)
            }
            RunBytes::Total(_) => {
                for offset in kept {
                    live.added(seq, *offset, None);
                }
            }
            RunBytes::Each(sizes) => {
                let sizes = &sizes[(lo - first_index) as usize..(hi - first_index) as usize];
                for (offset, size) in kept.iter().zip(sizes) {
                    live.added(seq, *offset, Some(*size as u64));
                }
            }
        }
        let position = self.chunks.partition_point(|chunk| chunk.first_index < lo);
        live.run_started(seq);
        self.chunks.insert(
            position,
            Chunk {
                seq,
                first_index: lo,
                offsets: kept.to_vec(),
            },
        );
    }

    /// Drops the locations of entries in `lo..hi`.
    fn remove_range(&mut self, lo: u64, hi: u64, live: &mut dyn LiveCounter) {
        if lo >= hi {
            return;
        }
        self.remove_locations(lo, hi, live);
        // An idle group keeps no chunk buffer: its cost is the fixed part alone.
        if self.chunks.is_empty() {
            self.chunks = VecDeque::new();
        } else if self.chunks.capacity() > 2 * self.chunks.len() + 4 {
            self.chunks.shrink_to_fit();
        }
    }

    fn remove_locations(&mut self, lo: u64, hi: u64, live: &mut dyn LiveCounter) {
        let mut position = self.chunks.partition_point(|chunk| chunk.end() <= lo);
        // Bounded: each step removes a chunk or ends the loop.
        while position < self.chunks.len() {
            let chunk = &mut self.chunks[position];
            if chunk.first_index >= hi {
                break;
            }
            let cut_lo = lo.max(chunk.first_index);
            let cut_hi = hi.min(chunk.end());
            let from = (cut_lo - chunk.first_index) as usize;
            let to = (cut_hi - chunk.first_index) as usize;
            live.removed(chunk.seq, &chunk.offsets[from..to]);
            if from == 0 && to == chunk.offsets.len() {
                self.chunks.remove(position);
                continue;
            }
            if from == 0 {
                chunk.offsets.drain(..to);
                chunk.first_index = cut_hi;
                shrink(&mut chunk.offsets);
                break;
            }
            if to == chunk.offsets.len() {
                chunk.offsets.truncate(from);
                shrink(&mut chunk.offsets);
                position += 1;
                continue;
            }
            let tail = chunk.offsets.split_off(to);
            chunk.offsets.truncate(from);
            shrink(&mut chunk.offsets);
            live.run_started(chunk.seq);
            let split = Chunk {
                seq: chunk.seq,
                first_index: cut_hi,
                offsets: tail,
            };
            self.chunks.insert(position + 1, split);
            break;
        }
    }

    /// Where live entry `index` is: `(segment seq, frame offset)`; `None` outside
    /// `first..=last`.
    pub fn location(&self, index: u64) -> Option<(u64, u32)> {
        if index < self.first || index > self.last {
            return None;
        }
        let position = self.chunks.partition_point(|chunk| chunk.end() <= index);
        let chunk = self.chunks.get(position)?;
        let slot = index.checked_sub(chunk.first_index)?;
        Some((chunk.seq, chunk.offsets[slot as usize]))
    }

    /// The first index range inside `first..=last` that no chunk covers, if any.
    pub fn gap(&self) -> Option<(u64, u64)> {
        let mut next = self.first;
        for chunk in &self.chunks {
            if chunk.first_index != next {
                return Some((next, chunk.first_index.min(self.last + 1) - 1));
            }
            next = chunk.end();
        }
        (next != self.last + 1).then_some((next, self.last))
    }

    /// Heap and inline bytes this index takes (allocations counted at capacity).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self
                .chunks
                .iter()
                .map(|chunk| chunk.offsets.capacity() * 4)
                .sum::<usize>()
    }

    /// The chunk pieces covering `lo..hi`, each as `(chunk, first slot, end slot)`. The range
    /// must be inside `first..=last`.
    pub fn pieces(&self, lo: u64, hi: u64) -> Vec<(&Chunk, usize, usize)> {
        let mut out = Vec::new();
        let mut position = self.chunks.partition_point(|chunk| chunk.end() <= lo);
        let mut next = lo;
        while next < hi && position < self.chunks.len() {
            let chunk = &self.chunks[position];
            assert!(
                chunk.first_index <= next,
                "group index has a gap at {next}: chunks must cover first..=last"
            );
            let end = hi.min(chunk.end());
            out.push((
                chunk,
                (next - chunk.first_index) as usize,
                (end - chunk.first_index) as usize,
            ));
            next = end;
            position += 1;
        }
        assert_eq!(next, hi.max(lo), "group index does not reach {hi}");
        out
    }
}

/// Gives back the memory of a run that lost most of its entries, so that an index's memory
/// follows its live entries.
fn shrink(offsets: &mut Vec<u32>) {
    if offsets.capacity() > 2 * offsets.len() + 16 {
        offsets.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Count {
        live: i64,
    }

    impl LiveCounter for Count {
        fn added(&mut self, _: u64, _: u32, _: Option<u64>) {
            self.live += 1;
        }
        fn added_known(&mut self, _: u64, entries: u64, _: u64) {
            self.live += entries as i64;
        }
        fn removed(&mut self, _: u64, offsets: &[u32]) {
            self.live -= offsets.len() as i64;
        }
        fn run_started(&mut self, _: u64) {}
    }

    #[test]
    fn conflicting_appends_truncation_and_compaction_keep_chunks_covering_the_range() {
        let mut live = Count::default();
        let mut group = GroupIndex::default();
        for index in 5..15u64 {
            group.push(1, index, 100 + index as u32 * 10, 10, &mut live);
        }
        for index in 15..20u64 {
            group.push(2, index, 100 + index as u32 * 10, 10, &mut live);
        }
        assert_eq!((group.first, group.last, group.chunks.len()), (5, 19, 2));
        group.push(3, 12, 500, 10, &mut live); // conflict: replaces 12..
        assert_eq!((group.last, group.chunks.len()), (12, 2));
        assert_eq!(live.live, 8);
        group.compact(8, &mut live);
        assert_eq!(group.first, 8);
        assert_eq!(group.gap(), None);
        group.relocate(4, 9, &[128, 140], RunBytes::Each(&[10, 10]), &mut live);
        assert_eq!(
            group.chunks.len(),
            4,
            "the moved run splits the first chunk"
        );
        assert_eq!(group.gap(), None);
        assert_eq!(live.live, 5);
        let pieces = group.pieces(8, 13);
        assert_eq!(pieces.len(), 4);
        group.truncate(10, &mut live);
        assert_eq!((group.first, group.last), (8, 9));
        assert_eq!(live.live, 2);
        group.compact(20, &mut live);
        assert!(group.is_empty());
        assert_eq!((group.first, group.last, live.live), (20, 19, 0));
        assert!(group.chunks.is_empty());
    }

    #[test]
    fn memory_follows_live_entries_and_an_idle_group_costs_its_fixed_part() {
        let mut live = Count::default();
        let mut group = GroupIndex::default();
        let idle = group.memory_bytes();
        assert_eq!(idle, std::mem::size_of::<GroupIndex>());
        assert!(idle <= 80, "an idle group costs {idle} bytes");
        for index in 1..=1000u64 {
            group.push(1, index, 128 + index as u32 * 40, 10, &mut live);
        }
        let full = group.memory_bytes() - idle;
        assert!(full >= 4000, "4 bytes per live entry at least: {full}");
        assert!(
            full <= 2 * 4000 + 4 * std::mem::size_of::<Chunk>(),
            "{full}"
        );
        group.compact(990, &mut live);
        let after = group.memory_bytes() - idle;
        assert!(after <= 256, "compaction gives the memory back: {after}");
        group.compact(2000, &mut live);
        assert_eq!(group.memory_bytes(), idle, "no chunk left, no buffer kept");
    }

    #[test]
    fn a_gap_is_reported() {
        let mut live = Count::default();
        let mut group = GroupIndex::default();
        group.reset(1, 10, HardState::default(), &mut live);
        group.relocate(1, 4, &[200, 210], RunBytes::Each(&[10, 10]), &mut live);
        assert_eq!(group.gap(), Some((1, 3)));
        group.relocate(
            1,
            1,
            &[128, 140, 150],
            RunBytes::Each(&[10, 10, 10]),
            &mut live,
        );
        assert_eq!(group.gap(), Some((6, 10)));
    }
}

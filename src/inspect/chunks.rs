//! Reading a range of the log in bounded chunks, so that no command holds the whole log in
//! memory.
//!
//! Reads go through [`Wal::for_each_entry`], which verifies each entry without copying it; a
//! command still reads a range a chunk at a time, so that progress advances and a failure is
//! narrowed to a small range. Entry sizes are not known before reading, so each chunk's length is estimated from the
//! segment that holds it: its used bytes divided by its live entries. A chunk never crosses a
//! segment boundary, which also lets progress count each segment's bytes exactly once.

use std::ops::Range;

use ketch_storage::{SegmentInfo, Wal};

/// Default estimated size of one chunk.
pub const CHUNK_BUDGET_BYTES: u64 = 4 << 20;
/// Most entries in one chunk, whatever their size: bounds the per-entry `Vec` overhead when
/// entries are tiny.
pub const CHUNK_ENTRIES_MAX: u64 = 4096;

/// One chunk to read: entries `range`, all in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Entries to read, end exclusive.
    pub range: Range<u64>,
    /// Estimated bytes of the segment these entries occupy (for progress).
    pub estimated_bytes: u64,
}

/// Plans the chunks covering `lo..hi` (end exclusive) over `segments`, each estimated at about
/// `budget_bytes`. Indices no segment holds as live are skipped.
pub fn plan(segments: &[SegmentInfo], lo: u64, hi: u64, budget_bytes: u64) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for segment in segments {
        let Some((live_first, live_last)) = segment.live_range else {
            continue;
        };
        let start = lo.max(live_first);
        let end = hi.min(live_last.saturating_add(1));
        if start >= end {
            continue;
        }
        let live_count = live_last - live_first + 1;
        let record_bytes = segment
            .used_bytes
            .saturating_sub(ketch_storage::segment::HEADER_BYTES);
        let per_entry_bytes = (record_bytes / live_count).max(1);
        let entries_per_chunk = (budget_bytes / per_entry_bytes).clamp(1, CHUNK_ENTRIES_MAX);
        let mut next = start;
        while next < end {
            let chunk_end = end.min(next.saturating_add(entries_per_chunk));
            chunks.push(Chunk {
                range: next..chunk_end,
                estimated_bytes: (chunk_end - next).saturating_mul(per_entry_bytes),
            });
            next = chunk_end;
        }
    }
    debug_assert!(chunks
        .windows(2)
        .all(|w| w[0].range.end <= w[1].range.start));
    chunks
}

/// Calls `visit(index, term, data)` for each entry of `chunk` in order, each after verifying its
/// checksum, without copying payloads out of mapped segments. Stops at the first entry that
/// cannot be read and returns its error: the entries before it were visited.
pub fn visit(
    wal: &Wal,
    chunk: &Chunk,
    visit: impl FnMut(u64, u64, &[u8]),
) -> ketch_storage::Result<()> {
    wal.for_each_entry(chunk.range.clone(), visit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketch_storage::segment::SegmentHeader;
    use std::path::PathBuf;

    fn segment(live_range: Option<(u64, u64)>, used_bytes: u64) -> SegmentInfo {
        SegmentInfo {
            path: PathBuf::from("s.wal"),
            header: SegmentHeader {
                log_id: 1,
                seq: 1,
                prev_seq: 0,
                first_index: 1,
                log_first_index: 1,
                hard_state: Default::default(),
            },
            sealed: true,
            file_len: used_bytes,
            used_bytes,
            live_range,
        }
    }

    #[test]
    fn chunks_cover_the_range_exactly_within_segments() {
        let header = ketch_storage::segment::HEADER_BYTES;
        let segments = [
            segment(Some((1, 100)), header + 100 * 1000),
            segment(None, header),
            segment(Some((101, 150)), header + 50 * 10),
        ];
        let chunks = plan(&segments, 5, 140, 10_000);
        let covered: Vec<u64> = chunks.iter().flat_map(|c| c.range.clone()).collect();
        assert_eq!(covered, (5..140).collect::<Vec<_>>());
        // 1000-byte entries: 10 per chunk; the chunk at the segment boundary stops there.
        assert_eq!(chunks[0].range, 5..15);
        assert!(chunks.iter().any(|c| c.range == (95..101)));
        assert!(chunks
            .iter()
            .all(|c| c.range.end <= 101 || c.range.start >= 101));
        // 10-byte entries fit 1000 to a chunk: the rest of the second segment is one chunk.
        assert_eq!(chunks.last().unwrap().range, 101..140);
    }

    #[test]
    fn huge_entries_get_one_per_chunk_and_tiny_ones_are_capped() {
        let header = ketch_storage::segment::HEADER_BYTES;
        let huge = [segment(Some((1, 3)), header + 3 * (64 << 20))];
        assert_eq!(plan(&huge, 1, 4, CHUNK_BUDGET_BYTES).len(), 3);
        let tiny = [segment(Some((1, 10_000)), header + 10_000)];
        let chunks = plan(&tiny, 1, 10_001, CHUNK_BUDGET_BYTES);
        assert!(chunks
            .iter()
            .all(|c| c.range.end - c.range.start <= CHUNK_ENTRIES_MAX));
        assert!(plan(&tiny, 50, 50, CHUNK_BUDGET_BYTES).is_empty());
    }
}

//! Reads: a group's entries by range, each frame's checksum verified, without copying for
//! [`LogStore::for_each_entry`].
//!
//! The store's lock is held only to find where the entries are (and to take a reference to the
//! maps of their segments); checksums are verified and the caller's closure runs outside it.

use std::ops::Range;
use std::path::PathBuf;

use std::os::unix::fs::FileExt;

use super::segment::{committed_bytes, SegmentSource};
use super::LogStore;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::record::{self, RecordKind};

/// Where a run of entries is: what a read needs once the lock is released.
struct Piece {
    seq: u64,
    path: PathBuf,
    source: SegmentSource,
    /// End of the complete batches in the segment when the read began.
    committed_end: u64,
    first_index: u64,
    offsets: Vec<u32>,
}

impl LogStore {
    /// Reads `group`'s entries `range.start .. range.end`, verifying each one's checksum.
    /// [`Error::OutOfRange`] if the range is not inside the group's entries.
    pub fn entries(&self, group: u64, range: Range<u64>) -> Result<Vec<Entry>> {
        let mut out =
            Vec::with_capacity(range.end.saturating_sub(range.start).min(1 << 16) as usize);
        self.for_each_entry(group, range, |index, term, data| {
            out.push(Entry::new(index, term, data.to_vec()))
        })?;
        Ok(out)
    }

    /// Calls `visit(index, term, data)` for `group`'s entries `range.start .. range.end` in
    /// order, each after verifying its checksum. `data` is a slice of the segment's map: no
    /// copy.
    pub fn for_each_entry(
        &self,
        group: u64,
        range: Range<u64>,
        mut visit: impl FnMut(u64, u64, &[u8]),
    ) -> Result<()> {
        let pieces = self.locate(group, range)?;
        for piece in &pieces {
            piece.source.visit_frames(
                &piece.path,
                &piece.offsets,
                piece.committed_end,
                &mut |slot, bytes| {
                    let index = piece.first_index + slot as u64;
                    let (term, data) = read_entry(piece, group, index, piece.offsets[slot], bytes)?;
                    visit(index, term, data);
                    Ok(())
                },
            )?;
        }
        Ok(())
    }

    fn locate(&self, group: u64, range: Range<u64>) -> Result<Vec<Piece>> {
        let state = self.lock();
        state.check_readable()?;
        let (lo, hi) = (range.start, range.end);
        let (first, last) = state
            .groups
            .get(&group)
            .map_or((1, 0), |index| (index.first, index.last));
        if lo > hi || lo < first || hi > last + 1 {
            return Err(Error::OutOfRange {
                lo,
                hi,
                first_index: first,
                last_index: last,
            });
        }
        if lo == hi {
            return Ok(Vec::new());
        }
        let index = &state.groups[&group];
        Ok(index
            .pieces(lo, hi)
            .into_iter()
            .map(|(chunk, from, to)| {
                let segment = &state.segments[&chunk.seq];
                Piece {
                    seq: chunk.seq,
                    path: segment.path.clone(),
                    source: segment.source(),
                    committed_end: segment.write_offset,
                    first_index: chunk.first_index + from as u64,
                    offsets: chunk.offsets[from..to].to_vec(),
                }
            })
            .collect())
    }
}

/// Verifies and parses `group`'s entry `index` at `offset` of a piece's segment, whose bytes from
/// there on are `bytes`.
fn read_entry<'a>(
    piece: &Piece,
    group: u64,
    index: u64,
    offset: u32,
    bytes: &'a [u8],
) -> Result<(u64, &'a [u8])> {
    let located = |reason: String| {
        Error::group_corruption(
            group,
            &piece.path,
            offset as u64,
            Some((index, index)),
            reason,
        )
    };
    if offset as u64 >= piece.committed_end {
        return Err(located(format!(
            "the index places the entry at offset {offset}, past the segment's records"
        )));
    }
    let frame = record::decode_frame(piece.seq, bytes).map_err(|e| located(e.to_string()))?;
    if !matches!(
        frame.kind,
        RecordKind::GroupEntry | RecordKind::RewrittenEntry
    ) {
        return Err(located(format!(
            "expected a group entry record, found {:?}",
            frame.kind
        )));
    }
    let (stored_group, stored_index, term, data) = record::parse_group_entry(frame.payload)
        .ok_or_else(|| located("group entry record too short".into()))?;
    if stored_group != group || stored_index != index {
        return Err(located(format!(
            "record holds entry {stored_index} of group {stored_group}, expected entry {index} \
             of group {group}"
        )));
    }
    Ok((term, data))
}

impl LogStore {
    /// Reads every record of every segment and checks every checksum, then reads every live
    /// entry of every group. Damage in a live entry is [`Error::GroupCorruption`] naming the
    /// group, index and file; damage elsewhere is [`Error::Corruption`] naming the file and
    /// offset. Returns the number of record bytes checked.
    pub fn verify(&self) -> Result<u64> {
        let segments: Vec<(u64, PathBuf, SegmentSource, u64, u64, bool)> = {
            let state = self.lock();
            state.check_readable()?;
            state
                .segments
                .values()
                .map(|segment| {
                    (
                        segment.seq,
                        segment.path.clone(),
                        segment.source(),
                        segment.file_len,
                        segment.write_offset,
                        segment.sealed,
                    )
                })
                .collect()
        };
        let mut checked = 0u64;
        let mut copy = Vec::new();
        for (seq, path, source, file_len, write_offset, sealed) in &segments {
            let limit = if *sealed {
                file_len - crate::segment::TRAILER_BYTES
            } else {
                *write_offset
            };
            let bytes = match source {
                SegmentSource::Mapped(map) => committed_bytes(map, 0, limit),
                SegmentSource::File(file) => {
                    // The active segment, unmapped: read what it holds so far.
                    copy.resize(limit as usize, 0);
                    file.read_exact_at(&mut copy, 0)
                        .map_err(|e| Error::io("read", path, e))?;
                    &copy[..]
                }
            };
            let scan = crate::recovery::scan_records(
                *seq,
                bytes,
                bytes.len(),
                &mut super::format::StoreRecords { path },
                |_, _| Ok(()),
            )?;
            let damage_at = match &scan.end {
                crate::recovery::ScanEnd::Damaged(damage) => Some(damage.bad_offset),
                crate::recovery::ScanEnd::Sealed(_) if !sealed => Some(scan.valid_end),
                crate::recovery::ScanEnd::Clean if *sealed => Some(scan.valid_end),
                _ if scan.valid_end != *write_offset => Some(scan.valid_end),
                _ => None,
            };
            if let Some(offset) = damage_at {
                return Err(self.locate_damage(*seq, path, offset));
            }
            checked += scan.valid_end;
        }
        for group in self.groups() {
            let (first, last) = (self.first_index(group), self.last_index(group));
            self.for_each_entry(group, first..last + 1, |_, _, _| {})?;
        }
        Ok(checked)
    }

    /// The error for damage at `offset` of segment `seq`: naming the group whose live entry is
    /// there, if one is.
    fn locate_damage(&self, seq: u64, path: &std::path::Path, offset: u64) -> Error {
        let state = self.lock();
        for (group, index) in &state.groups {
            for chunk in index.chunks.iter().filter(|chunk| chunk.seq == seq) {
                // The damaged frame is the last live entry starting at or before `offset`.
                let slot = chunk.offsets.partition_point(|o| (*o as u64) <= offset);
                if slot == 0 {
                    continue;
                }
                let start = chunk.offsets[slot - 1] as u64;
                let segment = &state.segments[&seq];
                if offset < start + segment.frame_bytes_at(chunk.offsets[slot - 1]) {
                    let entry = chunk.first_index + slot as u64 - 1;
                    return Error::group_corruption(
                        *group,
                        path,
                        offset,
                        Some((entry, entry)),
                        "record damaged (found by verify)",
                    );
                }
            }
        }
        Error::corruption(path, offset, None, "record damaged (found by verify)")
    }
}

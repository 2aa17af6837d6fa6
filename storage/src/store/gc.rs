//! Garbage collection: freeing segments without live entries, copying the few live entries of
//! mostly-dead segments forward, and telling callers which groups pin old segments.

use std::sync::Arc;

use super::segment::committed_bytes;
use super::segment::StoreSegment;
use super::write::EntryPlace;
use super::{Candidates, LogStore, State};
use crate::error::{Error, Result};
use crate::files::fsync_dir;
use crate::record;

/// A group whose oldest live entries keep an old, mostly dead segment on disk: compacting it
/// (after a snapshot) frees the segment without a rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionHint {
    /// The group.
    pub group: u64,
    /// Its first index.
    pub first_index: u64,
    /// Sequence number of the segment its first entry is in.
    pub segment_seq: u64,
    /// That segment's live bytes over its size.
    pub segment_live_fraction_permille: u32,
}

/// What one [`LogStore::gc`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Live entry bytes copied forward.
    pub rewritten_bytes: u64,
    /// Segment files freed.
    pub segments_freed: u64,
}

/// Below this live fraction a segment is "mostly dead" for [`LogStore::compaction_hints`].
const HINT_LIVE_FRACTION: f64 = 0.5;

impl LogStore {
    /// Frees sealed segments without live entries whose last live entry died in a durable
    /// write: recycled as spares (up to `spare_segments_max`, when no reader holds their map) or
    /// deleted, then the directory is synced.
    pub(super) fn free_dead_segments(&self, state: &mut State) -> Result<()> {
        if !state.book.dying {
            return Ok(());
        }
        let synced = state.synced_through;
        // Those not yet durably dead keep the flag up for the next pass.
        state.book.dying = state.segments.values().any(|segment| {
            segment.sealed
                && segment.live_entries == 0
                && segment.dead_since.is_some_and(|write| write > synced)
        });
        let dead: Vec<u64> = state
            .segments
            .values()
            .filter(|segment| {
                segment.sealed
                    && segment.live_entries == 0
                    && segment.dead_since.is_some_and(|write| write <= synced)
            })
            .map(|segment| segment.seq)
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        for seq in dead {
            let segment = state.segments.remove(&seq).expect("listed above");
            debug_assert_eq!(segment.live_bytes, 0);
            let reusable = segment.file_len == self.options.segment_size_bytes
                && state.spares.len()
                    < self.options.spare_segments_max.min(super::STORE_SPARES_MAX)
                && segment.unshared();
            let path = segment.path.clone();
            drop(segment);
            let result = if reusable {
                let spare = self.dir.join(format!(
                    "spare-{seq:020}{}",
                    super::format::STORE_SPARE_SUFFIX
                ));
                std::fs::rename(&path, &spare)
                    .map(|()| state.spares.push(spare))
                    .map_err(|e| Error::io("rename", &path, e))
            } else {
                std::fs::remove_file(&path).map_err(|e| Error::io("delete segment", &path, e))
            };
            result.map_err(|e| state.poison(e))?;
            state.counters.segments_freed += 1;
        }
        let State { segments, book, .. } = &mut *state;
        book.recount(segments);
        fsync_dir(&self.dir).map_err(|e| state.poison(e))
    }

    /// The sealed segment to rewrite next, if the policy asks for one: the one with the fewest
    /// live bytes, among those below `rewrite_live_fraction_max`, or among all sealed ones when
    /// the store's files take more than `rewrite_trigger_ratio` times the live bytes plus one
    /// segment.
    fn rewrite_victim(&self, state: &mut State) -> Option<u64> {
        // The active segment counts with what is written: its zero-filled rest is room, not
        // garbage.
        let live = state.book.live_bytes;
        let disk = state.book.sealed_file_bytes + state.active().write_offset;
        // Over the ratio by more than a segment: only then can copying free a whole file. (With
        // segments not much smaller than the live data, the plain ratio would have the store
        // copy nearly live segments forever.)
        let store_over = disk as f64
            > self.store_options.rewrite_trigger_ratio * live as f64
                + self.options.segment_size_bytes as f64;
        let candidates = match state.book.candidates {
            Some(candidates) => candidates,
            None => {
                let candidates = self.choose_candidates(state);
                state.book.candidates = Some(candidates);
                candidates
            }
        };
        if store_over {
            candidates.emptiest
        } else {
            candidates.emptiest_sparse
        }
    }

    /// A pass over the sealed segments, made again only after their live bytes change.
    fn choose_candidates(&self, state: &State) -> Candidates {
        let sealed = || {
            state
                .segments
                .values()
                .filter(|segment| segment.sealed && segment.live_entries > 0)
        };
        let emptiest = |segments: &mut dyn Iterator<Item = &StoreSegment>| {
            segments
                .min_by_key(|segment| (segment.live_bytes, segment.seq))
                .map(|segment| segment.seq)
        };
        let fraction = self.store_options.rewrite_live_fraction_max;
        Candidates {
            emptiest: emptiest(&mut sealed()),
            emptiest_sparse: emptiest(&mut sealed().filter(|segment| {
                (segment.live_bytes as f64) < fraction * segment.file_len as f64
            })),
        }
    }

    /// Copies up to `budget_bytes` of the live entries of the rewrite victim (if any) forward
    /// into the active segment, as one batch of rewritten-entry records. Returns the bytes
    /// copied. Damage found in the victim's entries is an error naming the group and file.
    pub(super) fn rewrite_round(&self, state: &mut State, budget_bytes: u64) -> Result<u64> {
        let Some(victim) = self.rewrite_victim(state) else {
            return Ok(0);
        };
        // A round's copies must fit a segment with room to spare, or the active segment would
        // grow past its preallocated size (and could no longer be recycled).
        let budget_bytes = budget_bytes.min(self.options.segment_size_bytes / 4);
        // Collect the runs to move, within the budget (at least one entry, so a round always
        // makes progress).
        let mut moves: Vec<(u64, u64, Vec<u32>)> = Vec::new();
        let mut bytes = 0u64;
        let segment = &state.segments[&victim];
        'groups: for (group, index) in &state.groups {
            for chunk in index.chunks.iter().filter(|chunk| chunk.seq == victim) {
                let mut taken = Vec::new();
                for offset in &chunk.offsets {
                    if bytes >= budget_bytes && !(moves.is_empty() && taken.is_empty()) {
                        break;
                    }
                    bytes += segment.frame_bytes_at(*offset);
                    taken.push(*offset);
                }
                if !taken.is_empty() {
                    moves.push((*group, chunk.first_index, taken));
                }
                if bytes >= budget_bytes {
                    break 'groups;
                }
            }
        }
        if moves.is_empty() {
            return Ok(0);
        }
        let entries: u64 = moves
            .iter()
            .map(|(_, _, offsets)| offsets.len() as u64)
            .sum();
        // Rewritten frames are the same size: the CRC changes (it covers the segment's sequence
        // number), nothing else.
        self.make_room(state, bytes, entries)?;
        let seq = state.active().seq;
        let base = state.active().write_offset;
        let source = &state.segments[&victim];
        let map = Arc::clone(source.map.as_ref().expect("a sealed segment is mapped"));
        let path = source.path.clone();
        let committed_end = source.write_offset;
        let mut scratch = std::mem::take(&mut state.scratch);
        scratch.clear();
        let mut applied = Vec::with_capacity(entries as usize);
        for (group, first_index, offsets) in &moves {
            for (slot, offset) in offsets.iter().enumerate() {
                let index = first_index + slot as u64;
                let damaged = |reason: String| {
                    Error::group_corruption(
                        *group,
                        &path,
                        *offset as u64,
                        Some((index, index)),
                        reason,
                    )
                };
                let bytes = committed_bytes(&map, *offset as u64, committed_end);
                let frame = record::decode_frame(victim, bytes)
                    .map_err(|e| damaged(format!("while rewriting: {e}")))?;
                let parsed = record::parse_group_entry(frame.payload)
                    .filter(|(g, i, _, _)| g == group && *i == index);
                let Some((_, _, term, data)) = parsed else {
                    return Err(damaged("while rewriting: not the expected entry".into()));
                };
                let place = EntryPlace {
                    seq,
                    base,
                    moved: true,
                };
                applied.push(place.encode(&mut scratch, *group, index, term, data));
            }
        }
        debug_assert_eq!(scratch.len() as u64, bytes);
        let ticket = self.write_batch_bytes(state, scratch, entries as u32)?;
        self.apply_written(state, &applied, entries, ticket);
        state.counters.rewritten_bytes += bytes;
        Ok(bytes)
    }

    /// Runs garbage collection to completion: rewrites what the policy asks for (bounded by
    /// the number of segments), makes it durable, and frees every dead segment.
    pub fn gc(&self) -> Result<GcReport> {
        let mut state = self.lock();
        self.check_writable(&state)?;
        let freed_before = state.counters.segments_freed;
        let mut report = GcReport::default();
        // Each round copies up to a quarter segment: enough rounds to empty every segment once.
        let rounds_max = state.segments.len() * 8 + 8;
        for _ in 0..rounds_max {
            let budget = self.options.segment_size_bytes / 4;
            let copied = self.rewrite_round(&mut state, budget)?;
            if copied == 0 {
                break;
            }
            report.rewritten_bytes += copied;
        }
        let ticket = state.written;
        self.wait_durable(state, ticket)?;
        let mut state = self.lock();
        self.free_dead_segments(&mut state)?;
        report.segments_freed = state.counters.segments_freed - freed_before;
        Ok(report)
    }

    /// Groups whose first live entry sits in a sealed segment that is mostly dead (under half
    /// its bytes live), oldest segment first, at most `compaction_hints_max` of them.
    /// Compacting them frees those segments without rewriting, as raft-engine's purge suggests.
    pub fn compaction_hints(&self) -> Vec<CompactionHint> {
        let state = self.lock();
        let mut hints: Vec<CompactionHint> = state
            .groups
            .iter()
            .filter_map(|(group, index)| {
                let chunk = index.chunks.front()?;
                let segment = state.segments.get(&chunk.seq)?;
                let fraction = segment.live_bytes as f64 / segment.file_len as f64;
                (segment.sealed && fraction < HINT_LIVE_FRACTION).then_some(CompactionHint {
                    group: *group,
                    first_index: index.first,
                    segment_seq: segment.seq,
                    segment_live_fraction_permille: (fraction * 1000.0) as u32,
                })
            })
            .collect();
        hints.sort_by_key(|hint| (hint.segment_seq, hint.group));
        hints.truncate(self.store_options.compaction_hints_max);
        hints
    }
}

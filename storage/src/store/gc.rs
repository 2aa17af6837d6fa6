//! Garbage collection: freeing segments without live entries, copying the few live entries of
//! mostly-dead segments forward, and telling callers which groups pin old segments.
//!
//! A rewrite round has three phases so that its copy can run without the store's lock: a plan
//! under the lock ([`LogStore::plan_rewrite`]: the victim, its shared map, the entries to move),
//! the copy without it ([`RewritePlan::copy`]: decode, verify, encode), and a commit under the
//! lock ([`LogStore::commit_rewrite`]) that appends only the copies still current. The
//! background collector (`collector` module) runs the phases with the lock released in
//! between; [`LogStore::gc`] and the backstop in callers' writes run all three under it
//! ([`LogStore::rewrite_round`]).

use std::path::PathBuf;
use std::sync::Arc;

use memmap2::Mmap;

use super::format::StoreOp;
use super::segment::committed_bytes;
use super::segment::StoreSegment;
use super::write::EntryPlace;
use super::{Candidates, LogStore, State};
use crate::error::{Error, Result};
use crate::files::fsync_dir;
use crate::record::{self, RecordKind};

/// Segments over the rewrite trigger, beyond the one it allows, at which callers' writes copy
/// a round themselves: the backstop that bounds the disk when the collector falls behind.
pub(super) const BACKSTOP_SEGMENTS: u64 = 1;

/// What [`LogStore::rewrite_need`] found.
#[derive(Debug, Clone, Copy)]
pub(super) struct Need {
    /// The segment to copy from next, if any.
    pub victim: Option<u64>,
    /// The store is more than [`BACKSTOP_SEGMENTS`] over the trigger: writers copy too.
    pub behind: bool,
}

/// Live entries of one group to copy: a run of its chunk in the victim.
#[derive(Debug)]
struct Move {
    group: u64,
    first_index: u64,
    offsets: Vec<u32>,
}

/// A round chosen under the lock, to copy without it: the victim's map is shared, and sealed
/// segments are never written again.
#[derive(Debug)]
pub(super) struct RewritePlan {
    victim: u64,
    map: Arc<Mmap>,
    path: PathBuf,
    /// End of the victim's records.
    committed_end: u64,
    moves: Vec<Move>,
    /// The active segment when the round was planned: the copies are encoded for it.
    target_seq: u64,
}

/// One entry copied by [`RewritePlan::copy`].
#[derive(Debug)]
struct CopiedFrame {
    group: u64,
    index: u64,
    /// Where it is in the victim.
    from_offset: u32,
    /// Where its new frame is in [`RewriteCopy::scratch`], and its size.
    at: usize,
    bytes: u32,
}

/// The copies of a round, encoded as rewritten-entry frames for segment `seq`.
#[derive(Debug)]
pub(super) struct RewriteCopy {
    plan: RewritePlan,
    seq: u64,
    scratch: Vec<u8>,
    frames: Vec<CopiedFrame>,
}

impl RewriteCopy {
    /// Entries copied.
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.frames.len()
    }
}

impl RewritePlan {
    /// The segment it copies from.
    pub fn victim(&self) -> u64 {
        self.victim
    }

    /// Entry `index` of `group` at `offset` of the victim, verified: `(term, data)`. Damage is
    /// an error naming the group, file, offset and index.
    fn read_entry(&self, group: u64, index: u64, offset: u32) -> Result<(u64, &[u8])> {
        let damaged = |reason: String| {
            Error::group_corruption(
                group,
                &self.path,
                offset as u64,
                Some((index, index)),
                reason,
            )
        };
        let bytes = committed_bytes(&self.map, offset as u64, self.committed_end);
        let frame = record::decode_frame(self.victim, bytes)
            .map_err(|e| damaged(format!("while rewriting: {e}")))?;
        let parsed = record::parse_group_entry(frame.payload)
            .filter(|(g, i, _, _)| *g == group && *i == index)
            .filter(|_| {
                matches!(
                    frame.kind,
                    RecordKind::GroupEntry | RecordKind::RewrittenEntry
                )
            });
        let Some((_, _, term, data)) = parsed else {
            return Err(damaged("while rewriting: not the expected entry".into()));
        };
        Ok((term, data))
    }

    /// Decodes and verifies the planned entries and encodes their copies: the part of a round
    /// that needs no lock.
    pub fn copy(self) -> Result<RewriteCopy> {
        let mut scratch = Vec::new();
        let mut frames = Vec::new();
        let place = EntryPlace {
            seq: self.target_seq,
            base: 0,
            moved: true,
        };
        for planned in &self.moves {
            for (slot, offset) in planned.offsets.iter().enumerate() {
                let index = planned.first_index + slot as u64;
                let (term, data) = self.read_entry(planned.group, index, *offset)?;
                let at = scratch.len();
                place.encode(&mut scratch, planned.group, index, term, data);
                frames.push(CopiedFrame {
                    group: planned.group,
                    index,
                    from_offset: *offset,
                    at,
                    bytes: (scratch.len() - at) as u32,
                });
            }
        }
        Ok(RewriteCopy {
            seq: self.target_seq,
            plan: self,
            scratch,
            frames,
        })
    }
}

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

    /// What the policy asks for now: the sealed segment to rewrite next, if any (the one with
    /// the fewest live bytes, among those below `rewrite_live_fraction_max`, or among all
    /// sealed ones when the store's files take more than `rewrite_trigger_ratio` times the live
    /// bytes plus one segment), and whether the store is so far over that callers' writes copy
    /// too (see [`BACKSTOP_SEGMENTS`]).
    pub(super) fn rewrite_need(&self, state: &mut State) -> Need {
        // The active segment counts with what is written: its zero-filled rest is room, not
        // garbage.
        let live = state.book.live_bytes;
        let disk = state.book.sealed_file_bytes + state.active().write_offset;
        let allowed = self.store_options.rewrite_trigger_ratio * live as f64;
        let segment = self.options.segment_size_bytes as f64;
        // Over the ratio by more than a segment: only then can copying free a whole file. (With
        // segments not much smaller than the live data, the plain ratio would have the store
        // copy nearly live segments forever.)
        let store_over = disk as f64 > allowed + segment;
        let behind = disk as f64 > allowed + (1 + BACKSTOP_SEGMENTS) as f64 * segment;
        let candidates = match state.book.candidates {
            Some(candidates) => candidates,
            None => {
                let candidates = self.choose_candidates(state);
                state.book.candidates = Some(candidates);
                candidates
            }
        };
        let victim = if store_over {
            candidates.emptiest
        } else {
            candidates.emptiest_sparse
        };
        Need {
            victim,
            behind: behind && victim.is_some(),
        }
    }

    /// A pass over the sealed segments, made again only after their live bytes change.
    fn choose_candidates(&self, state: &State) -> Candidates {
        let sealed = || {
            state.segments.values().filter(|segment| {
                segment.sealed
                    && segment.live_entries > 0
                    && !state.book.unreadable.contains(&segment.seq)
            })
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

    /// Under the lock: the live entries of the rewrite victim (if the policy asks for one) to
    /// copy forward, up to `budget_bytes` (at least one entry, so that a round always makes
    /// progress).
    pub(super) fn plan_rewrite(&self, state: &mut State, budget_bytes: u64) -> Option<RewritePlan> {
        let victim = self.rewrite_need(state).victim?;
        // A round's copies must fit a segment with room to spare, or the active segment would
        // grow past its preallocated size (and could no longer be recycled).
        let budget_bytes = budget_bytes.min(self.options.segment_size_bytes / 4);
        let mut moves: Vec<Move> = Vec::new();
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
                    moves.push(Move {
                        group: *group,
                        first_index: chunk.first_index,
                        offsets: taken,
                    });
                }
                if bytes >= budget_bytes {
                    break 'groups;
                }
            }
        }
        if moves.is_empty() {
            return None;
        }
        Some(RewritePlan {
            victim,
            map: Arc::clone(segment.map.as_ref().expect("a sealed segment is mapped")),
            path: segment.path.clone(),
            committed_end: segment.write_offset,
            moves,
            target_seq: state.active().seq,
        })
    }

    /// Under the lock: appends the copies whose entries are still where they were copied from,
    /// as one batch of rewritten-entry records, and moves those entries in the index. A group
    /// that compacted, truncated or was removed since the plan, or an entry another round moved
    /// meanwhile, drops its copies: their record would otherwise place an old entry over a newer
    /// one at recovery. Returns the batch's number and the bytes copied, or `None` when every
    /// copy was stale.
    pub(super) fn commit_rewrite(
        &self,
        state: &mut State,
        copy: RewriteCopy,
    ) -> Result<Option<(u64, u64)>> {
        let plan = &copy.plan;
        let kept: Vec<&CopiedFrame> = copy
            .frames
            .iter()
            .filter(|frame| {
                state
                    .groups
                    .get(&frame.group)
                    .and_then(|g| g.location(frame.index))
                    == Some((plan.victim, frame.from_offset))
            })
            .collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let bytes: u64 = kept.iter().map(|frame| frame.bytes as u64).sum();
        let entries = kept.len() as u64;
        self.make_room(state, bytes, entries)?;
        let seq = state.active().seq;
        let base = state.active().write_offset;
        let mut scratch = std::mem::take(&mut state.scratch);
        scratch.clear();
        let mut applied = Vec::with_capacity(kept.len());
        let place = EntryPlace {
            seq,
            base,
            moved: true,
        };
        for frame in &kept {
            if seq == copy.seq {
                // Frames do not depend on their offset: the copy is the record.
                let start = scratch.len();
                let end = frame.at + frame.bytes as usize;
                scratch.extend_from_slice(&copy.scratch[frame.at..end]);
                applied.push(StoreOp::Entry {
                    group: frame.group,
                    index: frame.index,
                    offset: (base + start as u64) as u32,
                    bytes: frame.bytes,
                    moved: true,
                });
            } else {
                // A roll since the copy: the CRC covers the segment, so encode again (once per
                // segment at most).
                let (term, data) = plan.read_entry(frame.group, frame.index, frame.from_offset)?;
                applied.push(place.encode(&mut scratch, frame.group, frame.index, term, data));
            }
        }
        debug_assert_eq!(scratch.len() as u64, bytes);
        let ticket = self.write_batch_bytes(state, scratch, entries as u32)?;
        self.apply_written(state, &applied, entries, ticket);
        state.counters.rewritten_bytes += bytes;
        Ok(Some((ticket, bytes)))
    }

    /// One whole round under the lock (plan, copy, commit), as [`LogStore::gc`] and the
    /// backstop in callers' writes run it. Returns the bytes copied.
    pub(super) fn rewrite_round(&self, state: &mut State, budget_bytes: u64) -> Result<u64> {
        let Some(plan) = self.plan_rewrite(state, budget_bytes) else {
            return Ok(0);
        };
        let victim = plan.victim;
        let copied = plan
            .copy()
            .and_then(|copy| self.commit_rewrite(state, copy));
        match copied {
            Ok(done) => {
                let bytes = done.map_or(0, |(_, bytes)| bytes);
                state.counters.rewritten_inline_bytes += bytes;
                Ok(bytes)
            }
            Err(error) => {
                self.note_unreadable(state, victim, &error);
                Err(error)
            }
        }
    }

    /// A round failed on `error`: unless it poisoned the store (a failed write), the victim's
    /// frames are damaged, and the policy skips the segment from now on.
    pub(super) fn note_unreadable(&self, state: &mut State, victim: u64, error: &Error) {
        if state.poisoned.is_none() {
            log::warn!("garbage collection skips segment {victim}: {error}");
            state.book.unreadable.insert(victim);
            state.book.candidates = None;
        }
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

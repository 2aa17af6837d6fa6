//! The write path: validating a batch, encoding it into the active segment, rolling segments,
//! and the group commit that lets concurrent writers share one fdatasync.
//!
//! A writer validates, encodes and writes its batch under the store's lock and gets the batch's
//! number. A synced write then waits until every batch up to its number is durable. If no sync
//! is running, the waiter becomes the sync leader: it notes the number of batches written so far,
//! releases the lock, runs one fdatasync of the active segment, and raises the synced watermark
//! to that number, covering every batch written before the sync began, including those of
//! writers that arrived while the previous sync ran. The others wait on a condvar. A new leader
//! first gathers its group, as [`crate::GroupCommit`] does (see `gather`). Only the
//! active segment can hold unsynced batches: rolling to a new segment fdatasyncs the old one
//! before anything is written into the new one.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::apply::apply_batch;
use super::batch::{Appended, BatchOp, StoreBatch};
use super::format::{self, GroupState, StoreFooter, StoreHeader, StoreOp, GROUP_STATE_BYTES};
use super::segment::{ActiveFrames, StoreSegment};
use super::{LogStore, State};
use crate::entry::MAX_INDEX;
use crate::error::{Error, Result};
use crate::fault;
use crate::files::{fsync_dir, TempFile};
use crate::record::{
    self, RecordKind, COMMIT_FRAME_BYTES, FRAME_HEADER_BYTES, GROUP_ENTRY_FIXED_BYTES,
};
use crate::segment::{self as wal_segment, HEADER_BYTES, TRAILER_BYTES};

/// Longest a sync leader waits for its group to gather; a stalled disk makes the last sync's
/// duration huge, and this keeps the wait short anyway.
const GATHER_MAX: Duration = Duration::from_millis(1);

/// A group's range as validation sees it, op by op.
#[derive(Debug, Clone, Copy)]
struct Shadow {
    first: u64,
    last: u64,
    exists: bool,
}

/// Checks a whole batch against the groups before anything is written. Returns, per op, whether
/// it changes anything (a truncation above the end, a compaction below the start need no record).
fn validate(state: &State, ops: &[BatchOp<'_>]) -> Result<Vec<bool>> {
    let mut shadows: HashMap<u64, Shadow> = HashMap::new();
    let mut needed = Vec::with_capacity(ops.len());
    for op in ops {
        let group = match op {
            BatchOp::Append { group, .. }
            | BatchOp::Truncate { group, .. }
            | BatchOp::HardState { group, .. }
            | BatchOp::Compact { group, .. }
            | BatchOp::Remove { group } => *group,
        };
        let shadow = shadows
            .entry(group)
            .or_insert_with(|| match state.groups.get(&group) {
                Some(index) => Shadow {
                    first: index.first,
                    last: index.last,
                    exists: true,
                },
                None => Shadow {
                    first: 1,
                    last: 0,
                    exists: false,
                },
            });
        let empty = shadow.last < shadow.first;
        needed.push(match op {
            BatchOp::Append { entries, .. } => {
                let start = entries.get(0).0;
                if let Appended::Owned(list) = entries {
                    for (position, entry) in list.iter().enumerate() {
                        if entry.index != start + position as u64 {
                            return Err(Error::misuse(format!(
                                "non-contiguous append to group {group}: entry {position} of \
                                 the append has index {}, expected {}",
                                entry.index,
                                start + position as u64
                            )));
                        }
                    }
                }
                let end = start + entries.len() as u64 - 1;
                if start == 0 || end > MAX_INDEX {
                    return Err(Error::misuse(format!(
                        "append to group {group} of indices {start}..={end}: indices must be \
                         between 1 and {MAX_INDEX}"
                    )));
                }
                if start < shadow.first {
                    return Err(Error::misuse(format!(
                        "append to group {group} at index {start}: entries below the group's \
                         first index {} are compacted",
                        shadow.first
                    )));
                }
                if !empty && start > shadow.last + 1 {
                    return Err(Error::misuse(format!(
                        "append to group {group} at index {start} leaves a gap: the group's \
                         last index is {}",
                        shadow.last
                    )));
                }
                if empty {
                    shadow.first = start;
                }
                shadow.last = end;
                shadow.exists = true;
                true
            }
            BatchOp::Truncate { from, .. } => {
                if !shadow.exists || *from > shadow.last {
                    false
                } else if *from < shadow.first {
                    return Err(Error::misuse(format!(
                        "truncation of group {group} from index {from}: entries below the \
                         group's first index {} are compacted",
                        shadow.first
                    )));
                } else {
                    shadow.last = from - 1;
                    true
                }
            }
            BatchOp::HardState { .. } => {
                shadow.exists = true;
                true
            }
            BatchOp::Compact { first, .. } => {
                if *first > MAX_INDEX {
                    return Err(Error::misuse(format!(
                        "compaction of group {group} to index {first}: indices above \
                         {MAX_INDEX} are not supported"
                    )));
                }
                if *first <= shadow.first {
                    false
                } else {
                    shadow.first = *first;
                    shadow.last = shadow.last.max(first - 1);
                    shadow.exists = true;
                    true
                }
            }
            BatchOp::Remove { .. } => {
                let needed = shadow.exists;
                *shadow = Shadow {
                    first: 1,
                    last: 0,
                    exists: false,
                };
                needed
            }
        });
    }
    Ok(needed)
}

/// Where entry frames being encoded go: segment `seq`, whose write position is `base` when
/// the scratch buffer is empty.
pub(super) struct EntryPlace {
    pub seq: u64,
    pub base: u64,
    /// Rewritten entries (garbage collection's copies) rather than appended ones.
    pub moved: bool,
}

impl EntryPlace {
    /// Encodes one entry frame at the end of `scratch`; the index change that places it.
    pub fn encode(
        &self,
        scratch: &mut Vec<u8>,
        group: u64,
        index: u64,
        term: u64,
        data: &[u8],
    ) -> StoreOp {
        let kind = if self.moved {
            RecordKind::RewrittenEntry
        } else {
            RecordKind::GroupEntry
        };
        let start = scratch.len();
        record::encode_group_entry(scratch, self.seq, kind, group, index, term, data);
        StoreOp::Entry {
            group,
            index,
            offset: (self.base + start as u64) as u32,
            bytes: (scratch.len() - start) as u32,
            moved: self.moved,
        }
    }
}

/// Bytes the records of `ops` take.
fn encoded_bytes(ops: &[BatchOp<'_>], needed: &[bool]) -> (u64, u64) {
    let mut bytes = 0u64;
    let mut entries = 0u64;
    for (op, needed) in ops.iter().zip(needed) {
        if !needed {
            continue;
        }
        bytes += match op {
            BatchOp::Append { entries: list, .. } => {
                entries += list.len() as u64;
                (0..list.len())
                    .map(|position| {
                        (FRAME_HEADER_BYTES + GROUP_ENTRY_FIXED_BYTES + list.get(position).2.len())
                            as u64
                    })
                    .sum()
            }
            BatchOp::Truncate { .. } | BatchOp::Compact { .. } => FRAME_HEADER_BYTES as u64 + 16,
            BatchOp::HardState { .. } => FRAME_HEADER_BYTES as u64 + 32,
            BatchOp::Remove { .. } => FRAME_HEADER_BYTES as u64 + 8,
        };
    }
    (bytes, entries)
}

impl LogStore {
    /// Writes `batch` atomically: after a crash it is there whole or not at all. The whole batch
    /// is checked first; a gap or an append below a group's first index is [`Error::Misuse`]
    /// and nothing is written.
    ///
    /// With `sync`, returns once the batch and every write before it are durable (one shared
    /// fdatasync); without, once it is written and visible to reads. A later [`LogStore::sync`]
    /// or synced write makes it durable.
    pub fn write(&self, batch: StoreBatch, sync: bool) -> Result<()> {
        self.write_ops(&batch.ops, sync)
    }

    /// Appends `entries` to `group` at indices `first_index, first_index + 1, ...`, all of
    /// `term`, as one atomic write, as [`LogStore::write`] of a batch holding that one append
    /// would; the data is borrowed, not copied into [`Entry`] values first. With `sync`, durable
    /// on return. Nothing to do for no entries.
    ///
    /// [`Entry`]: crate::Entry
    pub fn write_entries(
        &self,
        group: u64,
        first_index: u64,
        term: u64,
        entries: &[&[u8]],
        sync: bool,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let append = BatchOp::Append {
            group,
            entries: Appended::Borrowed {
                first: first_index,
                term,
                data: entries,
            },
        };
        self.write_ops(std::slice::from_ref(&append), sync)
    }

    fn write_ops(&self, ops: &[BatchOp<'_>], sync: bool) -> Result<()> {
        let mut state = self.lock();
        let ticket = self.write_locked(&mut state, ops)?;
        if self.store_options.rewrite_bytes_per_round > 0 {
            // Rewriting is the collector's work (see the `collector` module); a write only wakes
            // it, unless the store is so far over that the collector is behind.
            let need = self.rewrite_need(&mut state);
            if need.behind {
                let budget = self.store_options.rewrite_bytes_per_round;
                if self.rewrite_round(&mut state, budget).is_err() {
                    // The caller's batch is written; damage in an old segment is not its
                    // failure (reads of the damaged entries report it; the round logged it). A
                    // failed write poisoned the store.
                    state.check_readable()?;
                }
            } else if need.victim.is_some() && state.collector.idle {
                state.collector.idle = false;
                self.collector_wake.notify_one();
            }
        }
        if let Some(preparer) = &state.preparer {
            let active = state.active();
            preparer.pace_to_fill(
                !state.spares.is_empty(),
                active.write_offset,
                active.file_len,
                self.options.segment_size_bytes,
            );
        }
        if sync {
            self.wait_durable(state, ticket)
        } else {
            Ok(())
        }
    }

    /// Makes every write so far durable.
    pub fn sync(&self) -> Result<()> {
        let state = self.lock();
        self.check_writable(&state)?;
        let ticket = state.written;
        self.wait_durable(state, ticket)
    }

    /// Makes `index` the first index of `group`: right after the call `first_index(group)` is
    /// `index` and reads below it are [`Error::OutOfRange`]. Past the group's last index + 1
    /// the group becomes empty and continues at `index` (a snapshot was installed). The record
    /// is written at once, unsynced: durable once a later synced write (or [`LogStore::sync`])
    /// returns. After a crash before that, the first index may be lower, but entries never come
    /// back with other contents.
    pub fn compact_prefix(&self, group: u64, index: u64) -> Result<()> {
        let mut batch = StoreBatch::new();
        batch.compact_prefix(group, index);
        self.write(batch, false)
    }

    /// Removes `group` and everything it holds. Durable once a later synced write returns.
    pub fn remove_group(&self, group: u64) -> Result<()> {
        let mut batch = StoreBatch::new();
        batch.remove_group(group);
        self.write(batch, false)
    }

    /// Brings `group` in line with a snapshot of its state up to `index` (whose entry had
    /// `term`), which the caller has already made durable (for example with
    /// [`crate::snapshot::SnapshotStore`]): if the group holds entry `index` with that term, the
    /// entries after it stay; if the group already starts at `index + 1` (compacted to this
    /// snapshot earlier), nothing changes; otherwise the group is emptied and continues at
    /// `index + 1`. A snapshot older than the group's first index is refused
    /// ([`Error::Misuse`]), as by [`crate::Wal::apply_snapshot`]. Synced before it returns.
    pub fn apply_snapshot(&self, group: u64, index: u64, term: u64) -> Result<()> {
        if index >= MAX_INDEX {
            return Err(Error::misuse(format!(
                "snapshot of group {group} at index {index}: indices above {MAX_INDEX} are not \
                 supported"
            )));
        }
        let first = self.first_index(group);
        // Already in line: the log was compacted to this snapshot (a restart after the
        // compaction). Its entries continue the snapshot and must stay.
        if index + 1 == first {
            return Ok(());
        }
        if index + 1 < first {
            return Err(Error::misuse(format!(
                "snapshot of group {group} at index {index} is older than the group's first \
                 index {first}"
            )));
        }
        let keep = index >= first
            && index <= self.last_index(group)
            && self.entries(group, index..index + 1)?[0].term == term;
        let mut batch = StoreBatch::new();
        if !keep && first <= self.last_index(group) {
            batch.truncate_suffix(group, first);
        }
        batch.compact_prefix(group, index + 1);
        self.write(batch, true)
    }

    pub(super) fn check_writable(&self, state: &State) -> Result<()> {
        state.check_readable()?;
        if self.options.read_only {
            return Err(Error::misuse("the store was opened read-only"));
        }
        Ok(())
    }

    /// Validates, encodes and writes one batch of `ops`, then applies it to the index. Returns
    /// the batch's number.
    pub(super) fn write_locked(&self, state: &mut State, ops: &[BatchOp<'_>]) -> Result<u64> {
        self.check_writable(state)?;
        let needed = validate(state, ops)?;
        if !needed.iter().any(|needed| *needed) {
            // Nothing to record; durable as soon as everything before it is.
            return Ok(state.written);
        }
        let (bytes, entries) = encoded_bytes(ops, &needed);
        self.make_room(state, bytes, entries)?;
        let seq = state.active().seq;
        let base = state.active().write_offset;
        let mut scratch = std::mem::take(&mut state.scratch);
        scratch.clear();
        let mut applied = Vec::with_capacity(ops.len());
        let mut frames = 0u32;
        for (op, needed) in ops.iter().zip(&needed) {
            if !needed {
                continue;
            }
            match op {
                BatchOp::Append { group, entries } => {
                    for position in 0..entries.len() {
                        let (index, term, data) = entries.get(position);
                        let place = EntryPlace {
                            seq,
                            base,
                            moved: false,
                        };
                        applied.push(place.encode(&mut scratch, *group, index, term, data));
                        frames += 1;
                    }
                }
                BatchOp::Truncate { group, from } => {
                    record::encode_u64s(
                        &mut scratch,
                        seq,
                        RecordKind::GroupTruncate,
                        &[*group, *from],
                    );
                    applied.push(StoreOp::Truncate {
                        group: *group,
                        from: *from,
                    });
                    frames += 1;
                }
                BatchOp::HardState { group, hard_state } => {
                    record::encode_u64s(
                        &mut scratch,
                        seq,
                        RecordKind::GroupHardState,
                        &[*group, hard_state.term, hard_state.vote, hard_state.commit],
                    );
                    applied.push(StoreOp::HardState {
                        group: *group,
                        hard_state: *hard_state,
                    });
                    frames += 1;
                }
                BatchOp::Compact { group, first } => {
                    record::encode_u64s(
                        &mut scratch,
                        seq,
                        RecordKind::GroupCompact,
                        &[*group, *first],
                    );
                    applied.push(StoreOp::Compact {
                        group: *group,
                        first: *first,
                    });
                    frames += 1;
                }
                BatchOp::Remove { group } => {
                    record::encode_u64s(&mut scratch, seq, RecordKind::RemoveGroup, &[*group]);
                    applied.push(StoreOp::Remove { group: *group });
                    frames += 1;
                }
            }
        }
        debug_assert_eq!(scratch.len() as u64, bytes);
        let written = self.write_batch_bytes(state, scratch, frames);
        let ticket = written?;
        state.counters.entries_appended += entries;
        self.apply_written(state, &applied, entries, ticket);
        Ok(ticket)
    }

    /// Applies a written batch to the index.
    pub(super) fn apply_written(
        &self,
        state: &mut State,
        applied: &[StoreOp],
        entries: u64,
        ticket: u64,
    ) {
        let seq = state.active().seq;
        let (groups, mut live) = state.groups_and_live(ticket);
        if let Err(problem) = apply_batch(groups, seq, applied, &mut live) {
            panic!("a validated batch does not apply: {problem:?}");
        }
        state.active_mut().entries_written += entries;
    }

    /// Writes the encoded frames in `scratch` (`frames` of them) as one batch at the active
    /// segment's write position, with their commit record and the end marker. Returns the batch's
    /// number.
    pub(super) fn write_batch_bytes(
        &self,
        state: &mut State,
        mut scratch: Vec<u8>,
        frames: u32,
    ) -> Result<u64> {
        let seq = state.active().seq;
        let offset = state.active().write_offset;
        let batch_bytes = scratch.len() as u64;
        record::encode_commit(&mut scratch, seq, frames, batch_bytes);
        let batch_end = offset + scratch.len() as u64;
        // The end marker: a zeroed frame header after the batch, overwritten by the next one.
        scratch.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
        let result = self.write_at_active(state, &scratch, offset);
        state.scratch = scratch;
        result?;
        state.active_mut().write_offset = batch_end;
        state.written += 1;
        state.counters.batches += 1;
        // Wake a gathering leader only once its group is complete: waking it at every arrival
        // costs a context switch per writer for a check that fails.
        if state.leader_gathering && state.written - state.synced_through >= state.last_group {
            self.appended.notify_one();
        }
        Ok(state.written)
    }

    fn write_at_active(&self, state: &mut State, bytes: &[u8], offset: u64) -> Result<()> {
        let active = state.active();
        assert!(
            offset + bytes.len() as u64 <= active.file_len,
            "a write past the end of segment {}",
            active.path.display()
        );
        let result = fault::write(self.options.fault_injector.as_deref(), bytes, |bytes| {
            active.file.write_all_at(bytes, offset)
        });
        let path = active.path.clone();
        match result {
            Ok(()) => {
                state.counters.bytes_written += bytes.len() as u64;
                Ok(())
            }
            Err(e) => Err(state.poison(Error::io("write", path, e))),
        }
    }

    /// Bytes the footer of the active segment may take, with `new_entries` more entries in it.
    fn footer_bound(state: &State, new_entries: u64) -> u64 {
        let active = state.active();
        let groups = state.groups.len() as u64 + new_entries;
        FRAME_HEADER_BYTES as u64
            + 16
            + groups * GROUP_STATE_BYTES as u64
            + (active.runs_started + new_entries) * format::RUN_FIXED_BYTES as u64
            + (active.entries_written + new_entries) * 4
    }

    /// Ensures the active segment has room for `bytes` more record bytes and its footer, rolling
    /// to a new segment (or growing a fresh one) if not.
    pub(super) fn make_room(&self, state: &mut State, bytes: u64, new_entries: u64) -> Result<()> {
        let needed = |state: &State| {
            state.active().write_offset
                + bytes
                + (COMMIT_FRAME_BYTES + FRAME_HEADER_BYTES) as u64
                + Self::footer_bound(state, new_entries)
                + TRAILER_BYTES
        };
        if needed(state) <= state.active().file_len {
            return Ok(());
        }
        if state.active().write_offset > state.active().checkpoint_end {
            self.roll(state)?;
        }
        let needed = needed(state);
        if needed > state.active().file_len {
            // A batch larger than a segment: grow this fresh segment to hold it.
            self.grow_active(state, needed)?;
        }
        Ok(())
    }

    fn grow_active(&self, state: &mut State, len: u64) -> Result<()> {
        let active = state.active();
        let path = active.path.clone();
        let result = active.file.set_len(len);
        result.map_err(|e| state.poison(Error::io("grow segment", &path, e)))?;
        state.active_mut().file_len = len;
        Ok(())
    }

    /// Every live group's state, sorted by group.
    fn group_states(state: &State) -> Vec<GroupState> {
        state
            .groups
            .iter()
            .map(|(group, index)| GroupState {
                group: *group,
                first: index.first,
                last: index.last,
                hard_state: index.hard_state,
            })
            .collect()
    }

    /// Seals the active segment (footer, trailer, fdatasync) and starts the next one.
    pub(super) fn roll(&self, state: &mut State) -> Result<()> {
        let seq = state.active().seq;
        let active = state.active();
        let footer = StoreFooter {
            states: Self::group_states(state),
            runs: state
                .groups
                .iter()
                .flat_map(|(group, index)| {
                    index
                        .chunks
                        .iter()
                        .filter(|chunk| chunk.seq == seq)
                        .map(|chunk| format::FooterRun {
                            group: *group,
                            first_index: chunk.first_index,
                            bytes: chunk
                                .offsets
                                .iter()
                                .map(|offset| active.frame_bytes_at(*offset))
                                .sum(),
                            offsets: chunk.offsets.clone(),
                        })
                })
                .collect(),
        };
        let mut bytes = Vec::new();
        record::encode_frame(
            &mut bytes,
            seq,
            RecordKind::Seal,
            &[&footer.encode_payload()],
        );
        let footer_offset = state.active().write_offset;
        let footer_end = footer_offset + bytes.len() as u64;
        if footer_end + TRAILER_BYTES > state.active().file_len {
            self.grow_active(state, footer_end + TRAILER_BYTES)?;
        }
        self.write_at_active(state, &bytes, footer_offset)?;
        let file_len = state.active().file_len;
        let trailer = wal_segment::encode_trailer(seq, footer_offset);
        self.write_at_active(state, &trailer, file_len - TRAILER_BYTES)?;
        self.sync_sealing(state)?;
        let through = state.written;
        state.synced_through = state.synced_through.max(through);
        let active = state.active_mut();
        active.sealed = true;
        if active.live_entries == 0 {
            active.dead_since = Some(through);
            state.book.dying = true;
        }
        // Mapped only now that nothing writes it again (see the `segment` module).
        let mapped = state.active_mut().map_sealed();
        mapped.map_err(|e| state.poison(e))?;
        let State { segments, book, .. } = &mut *state;
        book.recount(segments);
        self.create_segment(state, seq + 1)?;
        self.free_dead_segments(state)
    }

    fn sync_sealing(&self, state: &mut State) -> Result<()> {
        let faults = self.options.fault_injector.as_ref();
        let active = state.active();
        let result = match faults.and_then(|faults| faults.before_sync()) {
            Some(error) => Err(error),
            None => active.file.sync_data(),
        };
        let path = active.path.clone();
        state.counters.syncs += 1;
        result.map_err(|e| state.poison(Error::io("seal segment", path, e)))
    }

    /// Creates segment `seq` as the new active segment, starting with a checkpoint of every
    /// live group, synced and renamed into place before anything else is written to it.
    pub(super) fn create_segment(&self, state: &mut State, seq: u64) -> Result<()> {
        let header = StoreHeader {
            store_id: state.store_id,
            seq,
        };
        let (temp, file) = self.take_prepared_file(state)?;
        let path = self.dir.join(format::store_segment_file_name(seq));
        let mut start = header.encode().to_vec();
        let checkpoint = format::encode_checkpoint(&Self::group_states(state));
        record::encode_frame(&mut start, seq, RecordKind::Checkpoint, &[&checkpoint]);
        let batch_bytes = start.len() as u64 - HEADER_BYTES;
        record::encode_commit(&mut start, seq, 1, batch_bytes);
        let checkpoint_end = start.len() as u64;
        start.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
        let mut file_len = match file.metadata() {
            Ok(metadata) => metadata.len(),
            Err(e) => return Err(state.poison(Error::io("stat", temp.path(), e))),
        };
        let room = start.len() as u64 + TRAILER_BYTES + checkpoint.len() as u64;
        let result = (|| {
            if room > file_len {
                // More groups than a segment's worth of checkpoint: this segment is larger.
                file.set_len(room + self.options.segment_size_bytes)?;
                file_len = room + self.options.segment_size_bytes;
            }
            fault::write(self.options.fault_injector.as_deref(), &start, |bytes| {
                file.write_all_at(bytes, 0)
            })?;
            file.sync_data()?;
            std::fs::rename(temp.path(), &path)
        })();
        if let Err(e) = result {
            drop(temp);
            return Err(state.poison(Error::io("create segment", &path, e)));
        }
        temp.disarm();
        fsync_dir(&self.dir).map_err(|e| state.poison(e))?;
        state.counters.bytes_written += start.len() as u64;
        state.segments.insert(
            seq,
            StoreSegment {
                seq,
                path,
                file: Arc::new(file),
                map: None,
                frames: ActiveFrames::default(),
                file_len,
                write_offset: checkpoint_end,
                checkpoint_end,
                sealed: false,
                live_entries: 0,
                live_bytes: 0,
                entries_written: 0,
                runs_started: 0,
                dead_since: None,
            },
        );
        Ok(())
    }

    /// A file of the segment size for the next segment, under a name that is not a segment's.
    fn take_prepared_file(&self, state: &mut State) -> Result<(TempFile, File)> {
        while let Some(spare) = state.spares.pop() {
            match wal_segment::open_read_write(&spare) {
                Ok(file) => return Ok((TempFile::adopt(spare), file)),
                Err(e) => log::warn!("cannot reuse spare segment, deleting it: {e}"),
            }
            let _ = std::fs::remove_file(&spare);
        }
        if let Some(preparer) = &state.preparer {
            match preparer.take() {
                Some(Ok(prepared)) => return Ok(prepared),
                Some(Err(e)) => {
                    log::warn!("background segment preparation failed, preparing inline: {e}")
                }
                None => log::warn!("segment preparer stopped, preparing inline"),
            }
        }
        state.prepared_files += 1;
        let path = self.dir.join(format!(
            "inline-{}{}",
            state.prepared_files,
            format::STORE_PREPARING_SUFFIX
        ));
        let _ = std::fs::remove_file(&path);
        wal_segment::prepare_zero_filled(
            path,
            self.options.segment_size_bytes,
            &|| false,
            self.options.fault_injector.as_deref(),
        )
        .map_err(|e| state.poison(e))
    }

    /// Called by a new sync leader: waits until as many batches are pending as the last sync
    /// covered, for at most half that sync's duration (and at most [`GATHER_MAX`]), as
    /// [`crate::GroupCommit`] does. Without it, a closed loop of writers settles into
    /// alternating groups of one and all the rest: the first writer released by a sync writes
    /// and, finding no sync running, syncs its batch alone while the others are still waking
    /// up. A lone writer never waits (its last group was one).
    fn gather<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if state.last_group <= 1 {
            return state;
        }
        let deadline = Instant::now() + (state.last_sync / 2).min(GATHER_MAX);
        // Bounded by the deadline.
        while state.written - state.synced_through < state.last_group {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state.leader_gathering = true;
            state = self
                .appended
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            state.leader_gathering = false;
        }
        state
    }

    /// Waits until batch `ticket` is durable, leading a shared fdatasync if none is running.
    pub(super) fn wait_durable<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        ticket: u64,
    ) -> Result<()> {
        // Bounded: each pass either returns, or waits for a running sync that ends (its leader
        // always clears `sync_in_progress` and notifies), or leads one sync and returns.
        loop {
            state.check_readable()?;
            if state.synced_through >= ticket {
                return Ok(());
            }
            if state.sync_in_progress {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.sync_in_progress = true;
            state = self.gather(state);
            let sync_through = state.written;
            let active = state.active();
            let file = Arc::clone(&active.file);
            let path = active.path.clone();
            drop(state);
            let faults = self.options.fault_injector.as_ref();
            let started = Instant::now();
            // An injected stall waits here, unlocked, like a slow fdatasync.
            let result = match faults.and_then(|faults| faults.before_sync()) {
                Some(error) => Err(error),
                None => file.sync_data(),
            };
            let took = started.elapsed();
            state = self.lock();
            state.sync_in_progress = false;
            state.last_sync = took;
            state.counters.syncs += 1;
            let outcome = match result {
                Ok(()) => {
                    debug_assert!(sync_through >= ticket, "the leader's own batch is covered");
                    state.last_group = sync_through.saturating_sub(state.synced_through);
                    state.synced_through = state.synced_through.max(sync_through);
                    self.free_dead_segments(&mut state)
                }
                Err(e) => {
                    state.poison(Error::io("fdatasync", path, e));
                    let cause = state.poisoned.clone().expect("just poisoned");
                    Err(Error::Poisoned { cause })
                }
            };
            drop(state);
            self.synced.notify_all();
            return outcome;
        }
    }
}

//! The log: append / read / truncate / compact and hard state over the chain of segments that
//! recovery rebuilt at open.
//!
//! # How the pieces fit
//!
//! The log is a chain of segment files (see [`crate::segment`]); the last one is *active* and
//! receives appends, the others are *sealed* and end with a footer that indexes their entries.
//! Every change is a batch of records (see [`crate::record`]) appended to the active segment:
//! entries, a suffix truncation, a prefix compaction, the hard state. Nothing is ever overwritten in
//! place, so a crash leaves some prefix of the batches written, and recovery replays exactly that.
//!
//! The in-memory index maps an index to (segment, byte offset). Each segment keeps the offsets of
//! its *live* entries (`own_first .. own_first + offsets.len()`); a suffix truncation drops offsets
//! from the back of the chain, a compaction moves `first_index` up. Reads locate the segment by
//! binary search and verify each returned entry's CRC.
//!
//! # Durability
//!
//! [`Wal::append`], [`Wal::truncate_suffix`], [`Wal::set_hard_state`] and [`Wal::write`] write to the
//! operating system; [`Wal::sync`] makes everything written so far durable with one fdatasync. A
//! failed write or fsync poisons the `Wal`: every later call returns [`Error::Poisoned`], because
//! after a failed fsync the kernel may have dropped the dirty pages and a retry could report data as
//! durable that is not. Reopen to recover. [`crate::GroupCommit`] lets many threads share syncs.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chain::Chain;
use crate::entry::{Entry, HardState, MAX_INDEX};
use crate::error::{Error, Result};
use crate::fault::{self, FaultInjector};
use crate::files::{fsync_dir, TempFile};
use crate::options::Options;
use crate::prepare::Preparer;
use crate::record::{self, RecordKind, COMMIT_FRAME_BYTES, ENTRY_FIXED_BYTES, FRAME_HEADER_BYTES};
use crate::recovery::{self, Recovered, RecoveryReport};
use crate::segment::{
    self, Footer, Segment, SegmentHeader, HEADER_BYTES, PREPARING_SUFFIX, SPARE_SUFFIX,
    TRAILER_BYTES,
};

/// An atomic group of changes: after a crash either all of them are recovered or none.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteBatch<'a> {
    /// Drop entries at or above this index first (Raft: a conflicting suffix).
    pub truncate_from: Option<u64>,
    /// Entries to append; the first must be `last_index + 1` (after the truncation).
    pub entries: &'a [Entry],
    /// New hard state.
    pub hard_state: Option<HardState>,
}

/// Counters of what a `Wal` has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Batches written.
    pub batches_written: u64,
    /// Entries appended.
    pub entries_appended: u64,
    /// Bytes written to segment files (frames, footers).
    pub bytes_written: u64,
    /// fdatasync calls on segment files.
    pub syncs: u64,
    /// Segments created.
    pub segments_created: u64,
    /// Segments deleted by compaction.
    pub segments_deleted: u64,
}

/// A summary of one segment, for inspection tools.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// Its path.
    pub path: PathBuf,
    /// Its header.
    pub header: SegmentHeader,
    /// True for sealed segments, false for the active one.
    pub sealed: bool,
    /// File length in bytes.
    pub file_len: u64,
    /// Bytes of records (the write position for the active segment, the footer offset for a
    /// sealed one).
    pub used_bytes: u64,
    /// Live entries stored in it, `(first, last)` inclusive, if any (compacted ones excluded).
    pub live_range: Option<(u64, u64)>,
}

/// The durable log. See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: Options,
    log_id: u64,
    pub(crate) chain: Chain,
    hard_state: HardState,
    pub(crate) poisoned: Option<String>,
    report: RecoveryReport,
    pub(crate) stats: WalStats,
    preparer: Option<Preparer>,
    /// Compacted segment files kept for reuse.
    spares: Vec<PathBuf>,
    scratch: Vec<u8>,
    prepared_files: u64,
}

impl Wal {
    /// Opens the log in `dir`, creating the directory and an empty log if missing, and recovers
    /// it (see [`crate::RecoveryMode`]).
    ///
    /// Creating a new log writes its first segment in full (zeros, `segment_size_bytes` of them)
    /// and syncs it before returning, so that the first appends overwrite allocated blocks: with
    /// the default 64 MiB segments that takes about 0.2-0.5 s on the project's machine.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Wal> {
        options.validate()?;
        let dir = dir.as_ref();
        let Recovered {
            log_id,
            chain,
            hard_state,
            spares,
            report,
            new_segment,
        } = recovery::open(dir, &options)?;
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            options,
            log_id,
            chain,
            hard_state,
            poisoned: None,
            report,
            stats: WalStats::default(),
            preparer: None,
            spares,
            scratch: Vec::new(),
            prepared_files: 0,
        };
        if let Some((seq, prev_seq)) = new_segment {
            wal.create_segment(seq, prev_seq)?;
        }
        if !wal.options.read_only && wal.options.prepare_segments_ahead {
            wal.preparer = Some(Preparer::start_paced(
                wal.dir.clone(),
                wal.options.segment_size_bytes,
                PREPARING_SUFFIX,
                "ketch-wal-prepare",
            ));
        }
        Ok(wal)
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the first entry in the log. For an empty log, `last_index() + 1`.
    pub fn first_index(&self) -> u64 {
        self.chain.first_index
    }

    /// Index of the last entry in the log (`first_index() - 1` if empty).
    pub fn last_index(&self) -> u64 {
        self.chain.last_index
    }

    /// The last hard state written (not necessarily synced).
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// What recovery found and did when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// Summaries of every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let active_seq = self.chain.active().seq();
        self.chain
            .segments
            .iter()
            .map(|segment| {
                let live_range = if segment.is_empty() {
                    None
                } else {
                    let first = segment.own_first.max(self.chain.first_index);
                    let last = segment.own_last();
                    (first <= last).then_some((first, last))
                };
                SegmentInfo {
                    path: segment.path.clone(),
                    header: segment.header,
                    sealed: segment.seq() != active_seq,
                    file_len: segment.file_len,
                    used_bytes: segment.write_offset,
                    live_range,
                }
            })
            .collect()
    }

    /// Appends entries; `entries[0].index` must be `last_index() + 1` and the rest contiguous.
    /// Durable after the next [`Wal::sync`].
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.write(&WriteBatch {
            entries,
            ..WriteBatch::default()
        })
    }

    /// Drops entries at or above `index`. The truncation is a record in the log: once synced, a
    /// truncated entry never comes back, and entries appended after it win.
    pub fn truncate_suffix(&mut self, index: u64) -> Result<()> {
        if index > self.chain.last_index {
            return Ok(());
        }
        self.write(&WriteBatch {
            truncate_from: Some(index),
            ..WriteBatch::default()
        })
    }

    /// Records a new hard state. Durable after the next [`Wal::sync`], together with the entries
    /// written around it.
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<()> {
        self.write(&WriteBatch {
            hard_state: Some(hard_state),
            ..WriteBatch::default()
        })
    }

    /// Writes a batch atomically (one commit record). Durable after the next [`Wal::sync`].
    pub fn write(&mut self, batch: &WriteBatch<'_>) -> Result<()> {
        self.check_writable()?;
        let mut next_index = self.chain.last_index + 1;
        // A truncation above the last index drops nothing: no record needed.
        let batch = &WriteBatch {
            truncate_from: batch
                .truncate_from
                .filter(|from| *from <= self.chain.last_index),
            ..*batch
        };
        if let Some(from) = batch.truncate_from {
            if from < self.chain.first_index {
                return Err(Error::misuse(format!(
                    "cannot truncate from index {from}: entries below the first index {} are \
                     compacted",
                    self.chain.first_index
                )));
            }
            next_index = next_index.min(from);
        }
        if next_index + batch.entries.len() as u64 > MAX_INDEX {
            return Err(Error::misuse(format!(
                "indices above {MAX_INDEX} are not supported"
            )));
        }
        for (position, entry) in batch.entries.iter().enumerate() {
            let expected = next_index + position as u64;
            if entry.index != expected {
                return Err(Error::misuse(format!(
                    "non-contiguous append: entry {position} of the batch has index {}, the log \
                     expects {expected}",
                    entry.index
                )));
            }
        }
        let truncate_bytes = batch.truncate_from.map_or(0, |_| FRAME_HEADER_BYTES + 8);
        let hard_state_bytes = batch.hard_state.map_or(0, |_| FRAME_HEADER_BYTES + 24);
        let entry_bytes: usize = batch
            .entries
            .iter()
            .map(|entry| FRAME_HEADER_BYTES + ENTRY_FIXED_BYTES + entry.data.len())
            .sum();
        let batch_bytes = (truncate_bytes + entry_bytes + hard_state_bytes) as u64;
        self.make_room(
            batch_bytes + (COMMIT_FRAME_BYTES + FRAME_HEADER_BYTES) as u64,
            batch.entries.len(),
        )?;

        let (base_offset, batch_end) = self.write_batch(|scratch, seq| {
            let mut frames = 0u32;
            if let Some(from) = batch.truncate_from {
                record::encode_u64s(scratch, seq, RecordKind::Truncate, &[from]);
                frames += 1;
            }
            debug_assert_eq!(scratch.len(), truncate_bytes, "the entries start here");
            for entry in batch.entries {
                record::encode_entry(scratch, seq, entry.index, entry.term, &entry.data);
            }
            frames += batch.entries.len() as u32;
            if let Some(hard_state) = batch.hard_state {
                record::encode_u64s(
                    scratch,
                    seq,
                    RecordKind::HardState,
                    &[hard_state.term, hard_state.vote, hard_state.commit],
                );
                frames += 1;
            }
            debug_assert_eq!(scratch.len() as u64, batch_bytes);
            frames
        })?;

        // The bytes are in the file: now the index may change.
        if let Some(from) = batch.truncate_from {
            self.chain.truncate(from);
        }
        let mut offset = base_offset + truncate_bytes as u64;
        for entry in batch.entries {
            self.chain.push(entry.index, offset);
            offset += (FRAME_HEADER_BYTES + ENTRY_FIXED_BYTES + entry.data.len()) as u64;
        }
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = hard_state;
        }
        self.chain.active_mut().write_offset = batch_end;
        self.stats.batches_written += 1;
        self.stats.entries_appended += batch.entries.len() as u64;
        self.pace_preparer();
        Ok(())
    }

    /// Makes everything written so far durable (one fdatasync of the active segment; sealed
    /// segments were synced when they were sealed).
    pub fn sync(&mut self) -> Result<()> {
        self.check_writable()?;
        let active = self.chain.active();
        let result = match self.injected_sync_failure() {
            Some(error) => Err(error),
            None => active.file.sync_data(),
        };
        let path = active.path.clone();
        self.stats.syncs += 1;
        result.map_err(|e| self.poison(Error::io("fdatasync", path, e)))
    }

    /// Drops whole segments holding only entries below `index`, and makes `index` the first
    /// index. Entries at or above it stay readable. If `index > last_index() + 1` the log becomes
    /// empty and continues at `index` (used when a snapshot beyond the log is installed). The
    /// compaction is made durable (this call syncs) before any file is deleted.
    pub fn compact_prefix(&mut self, index: u64) -> Result<()> {
        self.check_writable()?;
        if index <= self.chain.first_index {
            return Ok(());
        }
        self.write_control(None, index)
    }

    /// Brings the log in line with a snapshot of the state up to `index` (whose entry had
    /// `term`), which the caller has already made durable. If the log holds entry `index` with
    /// that term, the entries after it are kept and those up to it compacted away; otherwise the
    /// log is emptied and continues at `index + 1`. Either way it is one atomic, synced record,
    /// then whole segments below are deleted. Calling it again for the same snapshot (after a
    /// crash, say) changes nothing.
    pub fn apply_snapshot(&mut self, index: u64, term: u64) -> Result<()> {
        self.check_writable()?;
        if index + 1 == self.chain.first_index {
            return Ok(());
        }
        if index + 1 < self.chain.first_index {
            return Err(Error::misuse(format!(
                "snapshot at index {index} is older than the log's first index {}",
                self.chain.first_index
            )));
        }
        let matches = index <= self.chain.last_index && self.entry(index)?.term == term;
        if matches {
            return self.write_control(None, index + 1);
        }
        let truncate_from =
            (self.chain.last_index >= self.chain.first_index).then_some(self.chain.first_index);
        self.write_control(truncate_from, index + 1)
    }

    /// Writes one synced batch of a truncation and a compaction, then deletes the segments the
    /// compaction made obsolete.
    fn write_control(&mut self, truncate_from: Option<u64>, compact_to: u64) -> Result<()> {
        if compact_to > MAX_INDEX {
            return Err(Error::misuse(format!(
                "indices above {MAX_INDEX} are not supported"
            )));
        }
        self.make_room((3 * COMMIT_FRAME_BYTES + FRAME_HEADER_BYTES) as u64, 0)?;
        let (_, batch_end) = self.write_batch(|scratch, seq| {
            let mut frames = 1;
            if let Some(from) = truncate_from {
                record::encode_u64s(scratch, seq, RecordKind::Truncate, &[from]);
                frames += 1;
            }
            record::encode_u64s(scratch, seq, RecordKind::Compact, &[compact_to]);
            frames
        })?;
        if let Some(from) = truncate_from {
            self.chain.truncate(from);
        }
        self.chain.compact(compact_to);
        self.chain.active_mut().write_offset = batch_end;
        self.stats.batches_written += 1;
        self.sync()?;
        let deleted = self.delete_compacted_segments();
        self.pace_preparer();
        deleted
    }

    /// Reads entries `range.start .. range.end`, verifying each one's checksum.
    pub fn entries(&self, range: Range<u64>) -> Result<Vec<Entry>> {
        let mut out =
            Vec::with_capacity(range.end.saturating_sub(range.start).min(1 << 16) as usize);
        self.for_each_entry(range, |index, term, data| {
            out.push(Entry {
                index,
                term,
                data: data.to_vec(),
            })
        })?;
        Ok(out)
    }

    /// Calls `visit(index, term, data)` for entries `range.start .. range.end` in order, each after
    /// verifying its checksum, without copying the data of sealed segments (it is a slice of the
    /// segment's map). The fastest way to read a range.
    pub fn for_each_entry(
        &self,
        range: Range<u64>,
        mut visit: impl FnMut(u64, u64, &[u8]),
    ) -> Result<()> {
        self.check_readable()?;
        let (lo, hi) = (range.start, range.end);
        if lo > hi || lo < self.chain.first_index || hi > self.chain.last_index + 1 {
            return Err(Error::OutOfRange {
                lo,
                hi,
                first_index: self.chain.first_index,
                last_index: self.chain.last_index,
            });
        }
        let mut next = lo;
        while next < hi {
            let segment = self.chain.holding(next);
            let end = hi.min(segment.own_last() + 1);
            segment.visit_entries(next, end, &mut visit)?;
            next = end;
        }
        Ok(())
    }

    /// Reads one entry.
    pub fn entry(&self, index: u64) -> Result<Entry> {
        let mut entries = self.entries(index..index + 1)?;
        Ok(entries.pop().expect("one entry was read"))
    }

    /// Reads every record of every segment and checks every checksum, the segment chain and that
    /// each sealed segment's footer matches its records. Returns the number of bytes checked.
    pub fn verify(&self) -> Result<u64> {
        self.check_readable()?;
        recovery::verify(&self.chain)
    }

    // ---- internals -------------------------------------------------------------------------

    fn check_readable(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_writable(&self) -> Result<()> {
        self.check_readable()?;
        if self.options.read_only {
            return Err(Error::misuse("the log was opened read-only"));
        }
        Ok(())
    }

    /// Marks the log poisoned by `error` and returns the error.
    pub(crate) fn poison(&mut self, error: Error) -> Error {
        log::error!(
            "write-ahead log in {} poisoned: {error}",
            self.dir.display()
        );
        self.poisoned = Some(error.to_string());
        error
    }

    /// True if an earlier failure poisoned the log.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// An injected fsync failure, if a test armed one.
    fn injected_sync_failure(&self) -> Option<std::io::Error> {
        self.options.fault_injector.as_ref()?.before_sync()
    }

    /// The test hooks, for a caller that syncs the active file itself (`GroupCommit`, outside
    /// its mutex, where an injected stall must wait as a slow fdatasync would).
    pub(crate) fn fault_injector(&self) -> Option<Arc<FaultInjector>> {
        self.options.fault_injector.clone()
    }

    /// Writes one batch at the active segment's write position: the records `encode` appends
    /// for the segment's sequence number (it returns how many), their commit record, and the
    /// end marker. Returns where the batch starts and where it ends (before the end marker).
    /// The index is the caller's to change, once the bytes are written.
    fn write_batch(&mut self, encode: impl FnOnce(&mut Vec<u8>, u64) -> u32) -> Result<(u64, u64)> {
        let seq = self.chain.active().seq();
        let offset = self.chain.active().write_offset;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let frames = encode(&mut scratch, seq);
        let batch_bytes = scratch.len() as u64;
        record::encode_commit(&mut scratch, seq, frames, batch_bytes);
        let batch_end = offset + scratch.len() as u64;
        // The end marker: a zeroed frame header after the batch, overwritten by the next one.
        scratch.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
        let written = self.write_at_active(&scratch, offset);
        self.scratch = scratch;
        written.map(|()| (offset, batch_end))
    }

    fn write_at_active(&mut self, bytes: &[u8], offset: u64) -> Result<()> {
        let active = self.chain.active();
        debug_assert!(offset + bytes.len() as u64 <= active.file_len - TRAILER_BYTES);
        let result = fault::write(self.options.fault_injector.as_deref(), bytes, |bytes| {
            active.file.write_all_at(bytes, offset)
        });
        let path = active.path.clone();
        match result {
            Ok(()) => {
                self.stats.bytes_written += bytes.len() as u64;
                Ok(())
            }
            Err(e) => Err(self.poison(Error::io("write", path, e))),
        }
    }

    /// Ensures the active segment has room for `bytes` more record bytes plus a footer covering
    /// `new_entries` more entries, rolling to a new segment (or growing an empty one) if not.
    fn make_room(&mut self, bytes: u64, new_entries: usize) -> Result<()> {
        let needed = |segment: &Segment| {
            segment.write_offset
                + bytes
                + Footer::frame_bytes(segment.offsets.len() + new_entries)
                + TRAILER_BYTES
        };
        if needed(self.chain.active()) <= self.chain.active().file_len {
            return Ok(());
        }
        if self.chain.active().write_offset > HEADER_BYTES {
            self.roll()?;
        }
        let needed = needed(self.chain.active());
        if needed > self.chain.active().file_len {
            // A batch larger than a segment: grow this (fresh) segment to hold it.
            let active = self.chain.active();
            let result = active.file.set_len(needed);
            let path = active.path.clone();
            result.map_err(|e| self.poison(Error::io("grow segment", path, e)))?;
            self.chain.active_mut().file_len = needed;
        }
        Ok(())
    }

    /// Seals the active segment and starts the next one.
    fn roll(&mut self) -> Result<()> {
        let footer = {
            let active = self.chain.active();
            Footer {
                log_first_index: self.chain.first_index,
                log_last_index: self.chain.last_index,
                prior_keep_below: active.prior_keep_below,
                own_first: active.own_first,
                hard_state: self.hard_state,
                offsets: active.offsets.clone(),
            }
        };
        let (seq, footer_offset, file_len) = {
            let active = self.chain.active();
            (active.seq(), active.write_offset, active.file_len)
        };
        let mut bytes = Vec::with_capacity(Footer::frame_bytes(footer.offsets.len()) as usize);
        footer.encode(&mut bytes, seq);
        self.write_at_active(&bytes, footer_offset)?;
        let trailer = segment::encode_trailer(seq, footer_offset);
        let active = self.chain.active();
        let result = active
            .file
            .write_all_at(&trailer, file_len - TRAILER_BYTES)
            .and_then(|()| active.file.sync_data());
        let path = active.path.clone();
        self.stats.syncs += 1;
        result.map_err(|e| self.poison(Error::io("seal segment", path, e)))?;
        self.chain.active_mut().map_for_reads()?;
        self.create_segment(seq + 1, seq)
    }

    /// Creates segment `seq` as the new active segment.
    fn create_segment(&mut self, seq: u64, prev_seq: u64) -> Result<()> {
        let header = SegmentHeader {
            log_id: self.log_id,
            seq,
            prev_seq,
            first_index: self.chain.last_index + 1,
            log_first_index: self.chain.first_index,
            hard_state: self.hard_state,
        };
        let (temp, file) = self.take_prepared_file()?;
        let path = self.dir.join(header.file_name());
        let mut start = header.encode().to_vec();
        start.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]); // the end marker of an empty segment
        let result = file
            .write_all_at(&start, 0)
            .and_then(|()| file.sync_data())
            .and_then(|()| std::fs::rename(temp.path(), &path));
        if let Err(e) = result {
            drop(temp);
            return Err(self.poison(Error::io("create segment", &path, e)));
        }
        temp.disarm();
        fsync_dir(&self.dir).map_err(|e| self.poison(e))?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        self.chain.segments.push_back(Segment {
            header,
            path,
            file: Arc::new(file),
            file_len,
            map: None,
            own_first: self.chain.last_index + 1,
            offsets: Vec::new(),
            prior_keep_below: u64::MAX,
            write_offset: HEADER_BYTES,
        });
        self.stats.segments_created += 1;
        Ok(())
    }

    /// Tells the preparer how much of the next segment's file to have ready (see
    /// [`Preparer::pace_to_fill`]).
    fn pace_preparer(&self) {
        let Some(preparer) = &self.preparer else {
            return;
        };
        let active = self.chain.active();
        preparer.pace_to_fill(
            !self.spares.is_empty(),
            active.write_offset,
            active.file_len,
            self.options.segment_size_bytes,
        );
    }

    /// A file of the segment size for the next segment, under a name that is not a segment's.
    fn take_prepared_file(&mut self) -> Result<(TempFile, File)> {
        while let Some(spare) = self.spares.pop() {
            match segment::open_read_write(&spare) {
                Ok(file) => return Ok((TempFile::adopt(spare), file)),
                Err(e) => log::warn!("cannot reuse spare segment, deleting it: {e}"),
            }
            let _ = std::fs::remove_file(&spare);
        }
        if let Some(preparer) = &self.preparer {
            match preparer.take() {
                Some(Ok(prepared)) => return Ok(prepared),
                Some(Err(e)) => {
                    log::warn!("background segment preparation failed, preparing inline: {e}")
                }
                None => log::warn!("segment preparer stopped, preparing inline"),
            }
        }
        self.prepared_files += 1;
        let path = self
            .dir
            .join(format!("inline-{}{PREPARING_SUFFIX}", self.prepared_files));
        let _ = std::fs::remove_file(&path);
        segment::prepare_zero_filled(
            path,
            self.options.segment_size_bytes,
            &|| false,
            self.options.fault_injector.as_deref(),
        )
        .map_err(|e| self.poison(e))
    }

    fn delete_compacted_segments(&mut self) -> Result<()> {
        let mut deleted = false;
        while self.chain.segments.len() > 1 {
            let front = &self.chain.segments[0];
            let obsolete = front.is_empty() || front.own_last() < self.chain.first_index;
            if !obsolete {
                break;
            }
            let segment = self.chain.segments.pop_front().expect("checked non-empty");
            let path = segment.path.clone();
            let reusable = segment.file_len == self.options.segment_size_bytes
                && self.spares.len() < self.options.spare_segments_max;
            let seq = segment.seq();
            drop(segment);
            if reusable {
                let spare = self.dir.join(format!("spare-{seq:020}{SPARE_SUFFIX}"));
                std::fs::rename(&path, &spare).map_err(|e| Error::io("rename", &path, e))?;
                self.spares.push(spare);
            } else {
                std::fs::remove_file(&path).map_err(|e| Error::io("delete segment", &path, e))?;
            }
            self.stats.segments_deleted += 1;
            deleted = true;
        }
        if deleted {
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Unmap before the files close; the preparer stops and removes its half-made file.
        self.preparer.take();
    }
}

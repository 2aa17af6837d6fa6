//! Many Raft groups' logs in one write-ahead stream: [`LogStore`], the storage of a multi-Raft
//! host.
//!
//! Every group (a `u64`) has its own contiguous index range, suffix truncation, prefix
//! compaction and hard state, but all groups append to one shared stream of segment files, so a
//! round of writes from many groups and many threads costs one fdatasync. Each group keeps an
//! in-memory index of where its live entries are; segments that no live entry needs any more
//! are freed, and the few live entries of a mostly-dead segment are copied forward, so one slow
//! group cannot pin the disk.
//!
//! ```
//! use ketch_storage::{Entry, HardState, LogStore, Options, StoreBatch};
//! # fn main() -> ketch_storage::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = LogStore::open(dir.path(), Options::default())?; // Send + Sync: share with Arc
//! let mut batch = StoreBatch::new();
//! batch.append(1, vec![Entry::new(1, 1, b"one".to_vec()), Entry::new(2, 1, b"two".to_vec())]);
//! batch.append(2, vec![Entry::new(10, 3, b"ten".to_vec())]); // a group restored from a snapshot
//! batch.set_hard_state(1, HardState { term: 1, vote: 2, commit: 1 });
//! store.write(batch, true)?; // atomic across groups; durable on return (one shared fdatasync)
//! assert_eq!((store.first_index(2), store.last_index(2)), (10, 10));
//! assert_eq!(store.entries(1, 1..3)?[1].data, b"two");
//!
//! let mut batch = StoreBatch::new();
//! batch.append(1, vec![Entry::new(2, 2, b"two'".to_vec())]); // a Raft conflict: replaces 2..
//! batch.truncate_suffix(2, 10); // group 2 holds nothing now
//! store.write(batch, false)?; // visible at once, durable after the next sync
//! store.compact_prefix(1, 2)?; // entries below 2 may go
//! store.remove_group(3)?; // unknown: nothing to do
//! store.sync()?;
//! assert_eq!(store.groups(), vec![1, 2]);
//! assert_eq!(store.first_index(99), 1); // unknown groups: first 1, last 0
//! assert_eq!(store.last_index(99), 0);
//! store.for_each_entry(1, 2..3, |index, term, data| {
//!     assert_eq!((index, term, data), (2, 2, &b"two'"[..])); // no copy: a slice of the map
//! })?;
//! # Ok(()) }
//! ```
//!
//! # What else there is
//!
//! - [`LogStore::write_entries`]: one group's append from borrowed slices (the data is encoded
//!   straight from them, as [`crate::GroupCommit::append`] does), for callers that do not hold
//!   [`crate::Entry`] values;
//! - [`LogStore::for_each_entry`]: zero-copy, checksum-verified iteration over a group's range;
//!   [`LogStore::verify`]: every record of every segment and every live entry, with damage
//!   named by group and file.
//! - [`LogStore::stats`] ([`StoreStats`]): batches, fdatasyncs, live entries and bytes, disk
//!   bytes, segments, index memory, bytes rewritten.
//! - Garbage collection runs in a background thread (see below); [`LogStore::gc`] runs it to
//!   completion; [`LogStore::compaction_hints`] lists groups whose compaction would free old
//!   segments.
//! - Snapshots per group: keep one [`crate::snapshot::SnapshotStore`] directory per group
//!   (next to the store directory, not inside it), and once a snapshot is durable call
//!   [`LogStore::apply_snapshot`]`(group, index, term)`, which keeps the entries after a
//!   matching `index`, leaves a group already starting at `index + 1` as it is (so calling it
//!   again at every start is safe), or resets the group to continue at `index + 1`, in one
//!   synced batch.
//! - [`StoreBatch::compact_prefix`] and [`StoreBatch::remove_group`] put those changes into an
//!   atomic batch with others.
//!
//! # Why not a `Wal` per group, and why `Wal` stays
//!
//! A `Wal` per group pays one fdatasync per group per round: a thousand groups, a thousand
//! flushes, and the disk's flush rate caps the host. The store shares one. [`crate::Wal`] stays
//! a separate type with its own format: for one log, its single-stream footer and segment chain
//! (each segment names its predecessor and its first index) is simpler and faster, and needs no
//! per-group index, checkpoints or garbage collection. Both share the frame format and the batch
//! framing ([`crate::record`]), the scanner that finds complete batches and classifies torn
//! tails ([`crate::recovery`]), zero-filled preallocation, the background preparer, directory
//! syncs and the fault injector.
//!
//! # Files
//!
//! The store directory holds `{seq:020}.kst` segment files (`seq` 1, 2, 3, ...; gaps are normal:
//! any segment without live entries is freed, oldest or not), `*.kst.tmp` files being prepared
//! (deleted at open), `*.kst.spare` freed files kept for reuse, and `*.kst.salvaged` files that
//! [`crate::RecoveryMode::Salvage`] moved aside. A directory holding `.wal` files is refused,
//! and [`crate::Wal::open`] refuses a directory holding `.kst` files. Segments are preallocated
//! with zeros (fast fdatasync: no metadata to flush), so a segment is `segment_size_bytes` long,
//! or longer if one batch, checkpoint or footer needed more. All integers little-endian.
//!
//! ```text
//! header, 128 bytes at offset 0 (format version 1)
//! 0    8  magic              b"KETCHSTO"
//! 8    4  format version     1
//! 12   4  checksum algorithm 1 = CRC-32/ISO-HDLC (crc32fast)
//! 16   8  store id           random, the same in every segment: foreign files are refused
//! 24   8  seq                this segment's sequence number (its file name says the same)
//! 32  92  reserved           zero
//! 124  4  crc32 of bytes 0..124
//!
//! 128  the checkpoint batch: one checkpoint frame (kind 12) listing every live group's
//!      (group, first, last, hard state term, vote, commit), and its commit frame
//!      ...  batches of frames (kinds 7-11, 13; see crate::record), each closed by a commit
//!      frame and followed by the end marker (a zeroed frame header the next batch overwrites)
//!
//! once sealed:
//! F        seal frame (kind 6), the footer: payload =
//!          group_count u64, group_count x (group, first, last, term, vote, commit) (6 x u64):
//!            every live group's state when the segment was sealed, sorted by group;
//!          run_count u64, run_count x (group u64, first_index u64, bytes u64 (of the run's
//!            frames), count u32, count x u32 frame offsets): the live entries this segment
//!            holds
//! len-24   trailer, 24 bytes: magic b"KETCHEND", footer offset u64,
//!          crc32 of (seq as 8 bytes, trailer bytes 0..16) u32, reserved u32 zero
//! ```
//!
//! Frames are those of a `Wal` (the CRC covers the segment's sequence number, so bytes of a
//! recycled or copied file never parse as this segment's records). A batch is atomic across a
//! crash: recovery applies it only when its commit frame is valid and counts it.
//!
//! # Recovery
//!
//! Open lists the segments in sequence order and rebuilds the groups as if replaying every
//! record, but reads only what it must:
//!
//! - A sealed segment (valid trailer) is loaded from its footer alone: the groups are reset to
//!   the footer's states (a group it does not list is gone), then the footer's runs become the
//!   locations of those entries. That equals replaying the segment's records: at sealing, every
//!   live entry is either in this segment (a run) or where it was when the segment began, and
//!   the footer's ranges drop whatever its records truncated, compacted or removed.
//! - The active (last, unsealed) segment is scanned record by record. Its first batch must be a
//!   checkpoint, which resets the groups the same way. Damage after the last complete batch is a
//!   torn tail or corruption, as for a `Wal` (see [`crate::recovery`] and
//!   [`crate::RecoveryMode`]); a torn tail is zeroed and synced.
//! - Because each segment starts from a checkpoint, the segments before it matter only for the
//!   entries they hold. So any segment without live entries can be deleted, in any order, and a
//!   removed group (absent from the next checkpoint) never comes back. At the end, every
//!   group's live range must be covered by entries in existing segments; a hole is
//!   [`Error::GroupCorruption`] naming the group and range.
//! - Open then makes everything it recovered durable (one fdatasync) before it frees anything.
//!
//! Opening therefore costs the footers (about 48 bytes per live group plus 4 per live entry per
//! sealed segment) plus a scan of the active segment, never a replay of the whole store:
//! 10,000 groups with 416 entries each (1.46 GB in 87 segments of 16 MiB, 4.16 M live entries)
//! open in 0.36 s, warm (`cargo bench --bench store -- store_open`; see `benches/README.md`).
//!
//! # Writes and durability
//!
//! [`LogStore::write`] checks the whole batch against the groups first (a gap, an append or a
//! truncation below a group's first index is [`Error::Misuse`] naming group and indices; nothing
//! is written), then encodes and writes it under the store's lock, applies it to the index and
//! gets the batch's number. With `sync`, it waits for a shared fdatasync (group commit: see the
//! `write` module's notes; the first waiter that finds no sync running leads one, covering
//! every batch written before it began). A failed write or fdatasync poisons the store: every
//! later call returns [`Error::Poisoned`]; nothing is retried. Rolling to a new segment writes
//! the old one's footer and fdatasyncs it before anything is written into the new one, and the
//! new one (header and checkpoint) is synced and renamed into place, then the directory synced,
//! so what survives a crash is always a prefix of the write order.
//!
//! [`LogStore::compact_prefix`] and [`LogStore::remove_group`] change the index at once and
//! write their record at once, unsynced: durable with the next synced write or
//! [`LogStore::sync`].
//!
//! # Index memory
//!
//! A group's index is a list of chunks, one per run of its entries in one segment
//! (`{seq, first_index, offsets: Vec<u32>}`). Its cost, measured (`index` module tests and
//! `cargo bench --bench store`, which prints [`StoreStats::index_bytes`]):
//!
//! - **per live entry:** 4 bytes (its frame offset), up to 8 while a run's vector has just
//!   doubled; 4.6 bytes per entry for one group holding 500;
//! - **per chunk:** 40 bytes, plus its slot in the group's chunk list;
//! - **per idle group** (no live entry): 72 bytes (range, hard state, an empty chunk list that
//!   holds no buffer) plus its slot in the group map, about 80 bytes in all;
//! - **per entry frame written to the active segment:** 8 bytes more (its offset and size, so
//!   that the write path never reads the unmapped file back; see the `segment` module), freed
//!   when the segment is sealed: at most 8 bytes per 36 bytes of segment, 1.8 MiB for a 64 MiB
//!   segment of 256-byte entries.
//!
//! In the write benchmark, 100 groups of about 384 live entries each took 7.8 bytes per live
//! entry all told, and 10,000 groups of about 11 live entries each 300 bytes per group.
//! Compaction, truncation and rewrite give the memory back (a run's vector shrinks when it is
//! less than half used, an emptied chunk list frees its buffer), so memory follows the live
//! entries, not every entry ever written.
//!
//! # Garbage collection
//!
//! - **Freeing.** A sealed segment with no live entry is freed once the write that left it
//!   without one is durable: recycled as a spare (up to [`crate::Options::spare_segments_max`],
//!   but never more than one, and only when no reader holds its map) or deleted, then the
//!   directory is synced. One spare, not a `Wal`'s default two: a store's disk bound counts
//!   every file, and the background preparer makes the next file anyway. Freeing
//!   runs after every shared sync and every roll.
//! - **Rewrite.** A segment whose live bytes are below
//!   [`StoreOptions::rewrite_live_fraction_max`] of its size, or any sealed segment once the
//!   store's files take more than [`StoreOptions::rewrite_trigger_ratio`] times the live bytes
//!   plus one segment (the active segment counted as far as it is written; the extra segment
//!   because only then can copying free a whole file), gets its live entries copied
//!   forward: the one with the fewest live bytes first (the cheapest to free). The copies are
//!   rewritten-entry records (kind 13) that move an entry and never change a group's range, so
//!   a rewrite interrupted by a crash leaves either the old or the new location, both valid.
//!   Choosing the emptiest segment when the store is over the ratio bounds write
//!   amplification: a segment with live fraction `f` costs `f / (1 - f)` bytes copied per byte
//!   freed, and over the ratio the emptiest one has `f < 1 / ratio` (at the default 1.25: at
//!   most 4 bytes copied per byte freed; segments pinned by a few lagging groups, the common
//!   case, cost far less: at a live fraction of 0.1, 0.11 bytes).
//! - **Who copies.** A background thread, the collector (see the `collector` module), not the
//!   callers: inside a caller's write, under the lock, the copy delayed that caller and every
//!   writer queued behind it (on W5 the p99 batch latency followed the bytes per round). It
//!   plans a round of at most [`StoreOptions::rewrite_bytes_per_round`] under the lock,
//!   decodes and encodes the frames without it (the sealed victim's map is shared), and takes
//!   the lock again to append only the copies whose entry is still where it was copied from: a
//!   group that compacted, truncated or was removed in between drops them. It runs one round
//!   per shared fdatasync (its bytes join the callers' group commit; it syncs itself only when
//!   no caller does), and sleeps until a write finds work. The backstop: once the files exceed
//!   the trigger by one more segment (the collector is behind), callers' writes copy a round
//!   each again, inline, so the disk stays bounded whatever the collector's pace.
//!   [`LogStore::gc`] runs the policy to completion, synchronously, under the lock.
//!   [`StoreStats::rewritten_inline_bytes`] tells what callers and `gc` copied.
//! - **Hints.** [`LogStore::compaction_hints`] lists groups whose first live entry sits in a
//!   mostly dead sealed segment: compacting them (after a snapshot) frees it without copying,
//!   as raft-engine's purge suggests.
//!
//! Steady state under a many-group workload where most groups compact: disk use is at most
//! about `rewrite_trigger_ratio` times the live bytes, plus one segment of slack (two while the
//! collector is behind and the backstop copies), the active segment and the spares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

mod apply;
mod batch;
mod collector;
pub mod format;
mod gc;
mod index;
mod open;
mod options;
mod read;
mod segment;
mod write;

pub use batch::StoreBatch;
pub use format::{
    StoreHeader, STORE_PREPARING_SUFFIX, STORE_SALVAGED_SUFFIX, STORE_SEGMENT_SUFFIX,
    STORE_SPARE_SUFFIX,
};
pub use gc::{CompactionHint, GcReport};
pub use options::StoreOptions;

use crate::entry::HardState;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::prepare::Preparer;
use crate::recovery::RecoveryReport;
use collector::{Collector, CollectorState};
use index::{GroupIndex, LiveCounter};
use segment::StoreSegment;

/// Counters and sizes of a [`LogStore`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches written since open (callers' writes, and garbage collection's rewrites).
    pub batches: u64,
    /// fdatasync calls since open (shared syncs, and those that seal a segment).
    pub syncs: u64,
    /// Groups holding entries or state.
    pub groups: u64,
    /// Live entries over all groups.
    pub live_entries: u64,
    /// Bytes of the live entries' frames.
    pub live_bytes: u64,
    /// Bytes of the store's files on disk: segments and spare files.
    pub disk_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Memory of the groups' indices, and of the table of the active segment's entry frames.
    pub index_bytes: u64,
    /// Bytes of live entries garbage collection copied forward since open.
    pub rewritten_bytes: u64,
    /// Of those, the bytes copied inside callers' writes (the backstop for a collector that
    /// fell behind) and by [`LogStore::gc`]; the rest the background collector copied.
    pub rewritten_inline_bytes: u64,
    /// Segment files freed (recycled or deleted) since open.
    pub segments_freed: u64,
    /// Entries appended since open.
    pub entries_appended: u64,
    /// Bytes written to segment files since open.
    pub bytes_written: u64,
}

/// Counters kept under the lock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    batches: u64,
    syncs: u64,
    rewritten_bytes: u64,
    rewritten_inline_bytes: u64,
    segments_freed: u64,
    entries_appended: u64,
    bytes_written: u64,
}

/// Everything the store's lock guards.
#[derive(Debug)]
pub(crate) struct State {
    store_id: u64,
    /// By sequence number; the last is active.
    segments: BTreeMap<u64, StoreSegment>,
    groups: BTreeMap<u64, GroupIndex>,
    poisoned: Option<String>,
    /// Batches written (their numbers are 1, 2, ...).
    written: u64,
    /// Every batch up to this number is durable.
    synced_through: u64,
    sync_in_progress: bool,
    /// Batches the last sync made durable: the group the next sync leader gathers.
    last_group: u64,
    /// How long the last fdatasync took: bounds how long a leader gathers.
    last_sync: std::time::Duration,
    /// A sync leader is waiting on `appended` for its group to fill.
    leader_gathering: bool,
    counters: Counters,
    /// Freed segment files kept for reuse.
    spares: Vec<PathBuf>,
    preparer: Option<Preparer>,
    scratch: Vec<u8>,
    prepared_files: u64,
    report: RecoveryReport,
    book: GcBook,
    collector: CollectorState,
}

impl State {
    fn active(&self) -> &StoreSegment {
        self.segments
            .values()
            .next_back()
            .expect("a writable store always has an active segment")
    }

    fn active_mut(&mut self) -> &mut StoreSegment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a writable store always has an active segment")
    }

    /// The groups, and the live counter that keeps the segments' counts as they change in
    /// the course of batch number `write` (0 during recovery).
    fn groups_and_live(&mut self, write: u64) -> (&mut BTreeMap<u64, GroupIndex>, Live<'_>) {
        let State {
            groups,
            segments,
            book,
            ..
        } = self;
        (
            groups,
            Live {
                segments,
                book,
                write,
            },
        )
    }

    fn check_readable(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Marks the store poisoned by `error` and returns the error.
    fn poison(&mut self, error: Error) -> Error {
        log::error!("log store poisoned: {error}");
        if self.poisoned.is_none() {
            self.poisoned = Some(error.to_string());
        }
        error
    }
}

/// What garbage collection keeps up to date as the index changes, so that its checks after every
/// write cost a few comparisons, not a pass over every segment.
#[derive(Debug, Default)]
pub(crate) struct GcBook {
    /// Live entry bytes over all segments.
    live_bytes: u64,
    /// Bytes of the sealed segments' files.
    sealed_file_bytes: u64,
    /// The rewrite candidates, chosen from the sealed segments' live bytes: `None` once those
    /// changed (a sealed segment lost entries, or one was sealed or freed).
    candidates: Option<Candidates>,
    /// A sealed segment lost its last live entry: freeing may have work.
    dying: bool,
    /// Sealed segments whose entries could not be copied (damage, logged): the policy skips
    /// them, so that a damaged frame does not make every round fail again. Reads of the damaged
    /// entries report the damage. At most one per segment; dropped as the segments go.
    unreadable: std::collections::BTreeSet<u64>,
}

/// The sealed segments garbage collection would rewrite next.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Candidates {
    /// The one with the fewest live bytes (and some live entry).
    emptiest: Option<u64>,
    /// The one with the fewest live bytes among those below the live fraction that makes a
    /// segment worth rewriting on its own.
    emptiest_sparse: Option<u64>,
}

impl GcBook {
    /// Counts the totals again from the segments, after open, a roll or freeing (rare, so a pass
    /// over the segments is fine there).
    fn recount(&mut self, segments: &BTreeMap<u64, StoreSegment>) {
        self.live_bytes = segments.values().map(|segment| segment.live_bytes).sum();
        self.sealed_file_bytes = segments
            .values()
            .filter(|segment| segment.sealed)
            .map(|segment| segment.file_len)
            .sum();
        self.candidates = None;
        self.unreadable.retain(|seq| segments.contains_key(seq));
    }
}

/// Keeps the per-segment live counts, and garbage collection's totals, as the index changes.
/// `write` is the number of the batch being applied: a sealed segment left without live entries
/// may go once it is durable.
struct Live<'a> {
    segments: &'a mut BTreeMap<u64, StoreSegment>,
    book: &'a mut GcBook,
    write: u64,
}

impl LiveCounter for Live<'_> {
    fn added(&mut self, seq: u64, offset: u32, bytes: Option<u64>) {
        let segment = self
            .segments
            .get_mut(&seq)
            .expect("live entries are in existing segments");
        let bytes = match bytes {
            Some(bytes) => {
                if segment.map.is_none() {
                    segment.frames.note(offset, bytes);
                }
                bytes
            }
            None => segment.frame_bytes_at(offset),
        };
        segment.live_entries += 1;
        segment.live_bytes += bytes;
        segment.dead_since = None;
        self.book.live_bytes += bytes;
        if segment.sealed {
            self.book.candidates = None;
        }
    }

    fn added_known(&mut self, seq: u64, entries: u64, bytes: u64) {
        let segment = self
            .segments
            .get_mut(&seq)
            .expect("live entries are in existing segments");
        segment.live_entries += entries;
        segment.live_bytes += bytes;
        segment.dead_since = None;
        self.book.live_bytes += bytes;
        if segment.sealed {
            self.book.candidates = None;
        }
    }

    fn removed(&mut self, seq: u64, offsets: &[u32]) {
        let Some(segment) = self.segments.get_mut(&seq) else {
            // Recovery: the segment was freed; its entries are being dropped from the index.
            return;
        };
        assert!(
            segment.live_entries >= offsets.len() as u64,
            "segment {} loses more live entries than it has",
            segment.path.display()
        );
        segment.live_entries -= offsets.len() as u64;
        let bytes: u64 = offsets
            .iter()
            .map(|offset| segment.frame_bytes_at(*offset))
            .sum();
        // Saturating: a footer's byte count is checked for plausibility, not exactness.
        let bytes = bytes.min(segment.live_bytes);
        segment.live_bytes -= bytes;
        self.book.live_bytes = self.book.live_bytes.saturating_sub(bytes);
        if segment.sealed {
            self.book.candidates = None;
        }
        if segment.live_entries == 0 && segment.sealed && segment.dead_since.is_none() {
            segment.dead_since = Some(self.write);
            self.book.dying = true;
        }
    }

    fn run_started(&mut self, seq: u64) {
        if let Some(segment) = self.segments.get_mut(&seq) {
            segment.runs_started += 1;
        }
    }
}

/// Many Raft groups' logs in one write-ahead stream. See the [module documentation](self).
///
/// `Send + Sync`: share it between threads with an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    options: Options,
    store_options: StoreOptions,
    /// Shared with the background collector's handle (see [`Role`]).
    state: Arc<Mutex<State>>,
    /// Signalled when a sync finishes.
    synced: Arc<Condvar>,
    /// Signalled when a gathering sync leader's group is complete.
    appended: Arc<Condvar>,
    /// Signalled when the idle collector has work, and when it must stop.
    collector_wake: Arc<Condvar>,
    role: Role,
}

/// What a [`LogStore`] value is: the store its caller opened, or the collector thread's handle
/// on the same state (the same methods, none of the ownership).
#[derive(Debug)]
enum Role {
    /// Owns the background threads: dropping it stops and joins the collector, then the
    /// preparer.
    Owner { collector: Option<Collector> },
    /// The collector's own handle: dropping it stops nothing.
    CollectorHandle,
}

impl LogStore {
    /// Opens the store in `dir` with default [`StoreOptions`], creating the directory and an
    /// empty store if missing, and recovers it (see [`crate::RecoveryMode`]).
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<LogStore> {
        LogStore::open_with(dir, options, StoreOptions::default())
    }

    /// Opens the store in `dir` with the given garbage-collection knobs.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: Options,
        store_options: StoreOptions,
    ) -> Result<LogStore> {
        options.validate()?;
        store_options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let state = open::recover(&dir, &options)?;
        let mut store = LogStore {
            dir,
            options,
            store_options,
            state: Arc::new(Mutex::new(state)),
            synced: Arc::new(Condvar::new()),
            appended: Arc::new(Condvar::new()),
            collector_wake: Arc::new(Condvar::new()),
            role: Role::Owner { collector: None },
        };
        store.finish_open()?;
        if !store.options.read_only && store.store_options.rewrite_bytes_per_round > 0 {
            let handle = LogStore {
                dir: store.dir.clone(),
                options: store.options.clone(),
                store_options: store.store_options.clone(),
                state: Arc::clone(&store.state),
                synced: Arc::clone(&store.synced),
                appended: Arc::clone(&store.appended),
                collector_wake: Arc::clone(&store.collector_wake),
                role: Role::CollectorHandle,
            };
            store.role = Role::Owner {
                collector: Some(Collector::start(handle)?),
            };
        }
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// First index of `group`: 1 for an unknown group; `last_index + 1` when it holds no entry.
    pub fn first_index(&self, group: u64) -> u64 {
        self.lock()
            .groups
            .get(&group)
            .map_or(1, |state| state.first)
    }

    /// Last index of `group`: 0 for an unknown group.
    pub fn last_index(&self, group: u64) -> u64 {
        self.lock().groups.get(&group).map_or(0, |state| state.last)
    }

    /// The hard state last written for `group` (not necessarily durable);
    /// `HardState::default()` for an unknown group.
    pub fn hard_state(&self, group: u64) -> HardState {
        self.lock()
            .groups
            .get(&group)
            .map_or(HardState::default(), |state| state.hard_state)
    }

    /// The groups holding entries or state, ascending.
    pub fn groups(&self) -> Vec<u64> {
        self.lock().groups.keys().copied().collect()
    }

    /// `(first_index, last_index, hard_state)` of every group, ascending: what inspection tools
    /// print.
    pub fn group_ranges(&self) -> Vec<(u64, u64, u64, HardState)> {
        self.lock()
            .groups
            .iter()
            .map(|(group, state)| (*group, state.first, state.last, state.hard_state))
            .collect()
    }

    /// What recovery found and did when the store was opened.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.lock().report.clone()
    }

    /// True if an earlier failure poisoned the store.
    pub fn is_poisoned(&self) -> bool {
        self.lock().poisoned.is_some()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> StoreStats {
        let state = self.lock();
        let mut stats = StoreStats {
            batches: state.counters.batches,
            syncs: state.counters.syncs,
            groups: state.groups.len() as u64,
            rewritten_bytes: state.counters.rewritten_bytes,
            rewritten_inline_bytes: state.counters.rewritten_inline_bytes,
            segments_freed: state.counters.segments_freed,
            entries_appended: state.counters.entries_appended,
            bytes_written: state.counters.bytes_written,
            segments: state.segments.len() as u64,
            ..StoreStats::default()
        };
        for segment in state.segments.values() {
            stats.live_entries += segment.live_entries;
            stats.live_bytes += segment.live_bytes;
            stats.disk_bytes += segment.file_len;
        }
        stats.disk_bytes += state.spares.len() as u64 * self.options.segment_size_bytes;
        stats.index_bytes = state
            .groups
            .values()
            .map(|group| group.memory_bytes() as u64 + GROUP_MAP_SLOT_BYTES)
            .sum::<u64>()
            + state
                .segments
                .values()
                .map(|segment| segment.frames.memory_bytes() as u64)
                .sum::<u64>();
        stats
    }

    /// Runs `f` while nothing changes the store's files: the store's lock is held, so no write,
    /// rewrite, roll or freeing runs meanwhile (a sync in flight may still flush what is
    /// written). For tests that copy a live store's directory as a crash image while the
    /// background collector runs; `f` must not call the store.
    #[doc(hidden)]
    pub fn with_files_still<R>(&self, f: impl FnOnce() -> R) -> R {
        let _still = self.lock();
        f()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock happens only on a broken invariant (an assertion); the index
        // changes only after its records are written, so the state is still the written one.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Spare files a store keeps at most, whatever [`Options::spare_segments_max`] says (see the
/// module documentation).
pub(crate) const STORE_SPARES_MAX: usize = 1;

/// What one group's slot in the group map costs beyond its [`GroupIndex`]: a B-tree node entry
/// (key and value share nodes of up to 11; counted at a node's full share).
const GROUP_MAP_SLOT_BYTES: u64 = 8;

impl Drop for LogStore {
    fn drop(&mut self) {
        let Role::Owner { collector } = &mut self.role else {
            return;
        };
        // The collector first: it may still roll a segment, which takes the preparer's file.
        if let Some(collector) = collector.take() {
            collector.stop(&self.state, &self.collector_wake, &self.synced);
        }
        // Then the preparer: it removes its half-made file.
        let mut state = self.lock();
        state.preparer.take();
    }
}

//! Opening a log: scanning, torn-tail repair, corruption reports, and full verification.
//!
//! # What open does
//!
//! 1. Lists `*.wal` files, deletes leftover `*.wal.tmp` files, and checks the chain: every header
//!    is valid, names this log (same log id), has the sequence number its file name says, and points
//!    at the previous existing segment. A missing, reordered or foreign segment is an error.
//! 2. Loads each sealed segment from its footer alone (no record is read), so opening costs time
//!    in proportion to the active segment, not the whole log.
//! 3. Scans the active (last) segment record by record, applying each batch whose commit record is
//!    valid. Every batch is written followed by a zeroed frame header, the *end marker*, which the
//!    next batch overwrites. Where the valid records end, recovery classifies what follows, after
//!    searching the rest of the segment for valid commit records of this segment (a SIMD search
//!    for the commit record's fixed header bytes, then a CRC check of each candidate):
//!    - the end marker and no later commit record: a clean end;
//!    - no end marker (a torn write, or stale bytes of a reused file), and no later commit record
//!      other than the torn batch's own: a torn tail, what a crash during a write leaves. It is
//!      cut off (the end marker and any commit record of this segment beyond it are overwritten
//!      with zeros and synced) unless the mode is [`RecoveryMode::Strict`];
//!    - a complete batch after the damage: corruption in the middle of the segment, an error
//!      naming the file, the offset and the index range, unless the mode is
//!      [`RecoveryMode::Salvage`].
//!
//!    Bytes of a torn batch beyond the zeroed range can never replay: scanning stops at the end
//!    marker, and no commit record of this segment survives beyond it.
//! 4. Checks that entries before the first existing segment were compacted, never lost.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::Mmap;

use crate::chain::Chain;
use crate::entry::{HardState, MAX_INDEX};
use crate::error::{Error, Result};
use crate::files::{ensure_dir, fsync_dir};
use crate::options::{Options, RecoveryMode};
use crate::record::{self, FrameError, RecordKind, FRAME_HEADER_BYTES};
use crate::segment::{
    self, Footer, Segment, SegmentHeader, HEADER_BYTES, PREPARING_SUFFIX, SEGMENT_SUFFIX,
    SPARE_SUFFIX, TRAILER_BYTES,
};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files found.
    pub segments: usize,
    /// Bytes of the active segment scanned record by record.
    pub tail_bytes_scanned: u64,
    /// A torn tail that was cut off (or, read-only, ignored).
    pub torn_tail: Option<TornTail>,
    /// Damage that [`RecoveryMode::Salvage`] dropped.
    pub salvaged: Vec<Salvaged>,
}

/// A torn tail cut off at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub path: PathBuf,
    /// Where the last complete batch ends.
    pub offset: u64,
    /// How many bytes after it were overwritten with zeros: the end marker and any record of
    /// this segment beyond it that could otherwise be mistaken for data later.
    pub bytes: u64,
    /// Why the bytes at `offset` are not a complete batch.
    pub reason: String,
}

/// Damage dropped in salvage mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvaged {
    /// The damaged segment.
    pub path: PathBuf,
    /// Where the damage starts.
    pub offset: u64,
    /// Entries dropped with it, when known.
    pub index_range: Option<(u64, u64)>,
    /// What was wrong.
    pub reason: String,
}

/// What open found on disk: everything [`Wal::open`](crate::Wal::open) builds the log from.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Identifies the log; a new one if the directory held none.
    pub log_id: u64,
    pub chain: Chain,
    /// The hard state last recorded.
    pub hard_state: HardState,
    /// Compacted segment files kept for reuse.
    pub spares: Vec<PathBuf>,
    pub report: RecoveryReport,
    /// `(seq, prev_seq)` of the segment to create before the log takes writes, because none
    /// exists yet or the last one is sealed. Never set read-only.
    pub new_segment: Option<(u64, u64)>,
}

/// One change recorded in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Entry { index: u64, offset: u64 },
    HardState(HardState),
    Truncate(u64),
    Compact(u64),
}

/// How a scan of a segment's records ended.
#[derive(Debug)]
pub(crate) enum ScanEnd<F> {
    /// Only zeros after the last batch.
    Clean,
    /// A valid seal frame follows the last batch.
    Sealed(F),
    /// Something else follows.
    Damaged(Damage),
}

#[derive(Debug)]
pub(crate) struct Damage {
    /// Offset of the first frame that failed.
    pub bad_offset: u64,
    pub reason: String,
    /// Offset of a complete batch after the damage, if any: then it is not a torn tail.
    pub later_batch_offset: Option<u64>,
    /// Highest entry index seen in valid frames after the damage.
    pub later_max_index: Option<u64>,
    /// End of the range to zero: the end marker and any valid commit record beyond it.
    pub dirty_end: u64,
}

#[derive(Debug)]
pub(crate) struct Scan<F> {
    /// Offset just after the last complete batch.
    pub valid_end: u64,
    pub end: ScanEnd<F>,
}

/// How the records of one kind of log file are read: what each record kind means, and the
/// footer that ends a sealed file. The batch framing (commit records, end marker, torn tails) is
/// the scanner's and is the same for every kind of file.
pub(crate) trait RecordParser {
    /// One change recorded in a batch.
    type Op;
    /// A sealed file's footer.
    type Footer;
    /// Parses a frame of a kind other than commit and seal. `Ok(Err(what))`: the frame is
    /// malformed (damage the scanner classifies); `Err`: the file must not hold this frame at
    /// all, whatever follows.
    fn parse(
        &mut self,
        kind: RecordKind,
        payload: &[u8],
        offset: u64,
    ) -> Result<Result<Self::Op, &'static str>>;
    /// Decodes a seal frame's payload.
    fn footer(&mut self, payload: &[u8]) -> Option<Self::Footer>;
}

/// A `Wal`'s records.
pub(crate) struct WalRecords<'a> {
    /// The file, for errors.
    pub path: &'a Path,
}

impl RecordParser for WalRecords<'_> {
    type Op = Op;
    type Footer = Footer;

    fn parse(
        &mut self,
        kind: RecordKind,
        payload: &[u8],
        offset: u64,
    ) -> Result<Result<Op, &'static str>> {
        let u64_field = |slot| record::payload_u64(payload, slot);
        Ok(match kind {
            RecordKind::Entry => match record::parse_entry(payload) {
                Some((index, _, _)) => Ok(Op::Entry { index, offset }),
                None => Err("entry record"),
            },
            RecordKind::HardState => match (u64_field(0), u64_field(1), u64_field(2)) {
                (Some(term), Some(vote), Some(commit)) if payload.len() == 24 => {
                    Ok(Op::HardState(HardState { term, vote, commit }))
                }
                _ => Err("hard state record"),
            },
            RecordKind::Truncate => match u64_field(0) {
                Some(from) if payload.len() == 8 => Ok(Op::Truncate(from)),
                _ => Err("truncate record"),
            },
            RecordKind::Compact => match u64_field(0) {
                Some(first) if payload.len() == 8 => Ok(Op::Compact(first)),
                _ => Err("compact record"),
            },
            RecordKind::Commit | RecordKind::Seal => unreachable!("framing is the scanner's"),
            RecordKind::GroupEntry
            | RecordKind::GroupHardState
            | RecordKind::GroupTruncate
            | RecordKind::GroupCompact
            | RecordKind::RemoveGroup
            | RecordKind::Checkpoint
            | RecordKind::RewrittenEntry => {
                return Err(Error::corruption(
                    self.path,
                    offset,
                    None,
                    format!(
                        "a {kind:?} record of a multi-group store in a write-ahead log segment: \
                         the file does not belong to this log"
                    ),
                ))
            }
        })
    }

    fn footer(&mut self, payload: &[u8]) -> Option<Footer> {
        Footer::decode(payload)
    }
}

/// Scans the records of segment `seq` in `bytes[HEADER_BYTES..limit]`, calling `on_batch` for every
/// complete batch in order.
pub(crate) fn scan_records<P: RecordParser>(
    seq: u64,
    bytes: &[u8],
    limit: usize,
    parser: &mut P,
    mut on_batch: impl FnMut(&[P::Op], u64) -> Result<()>,
) -> Result<Scan<P::Footer>> {
    let limit = limit.min(bytes.len());
    let mut position = HEADER_BYTES as usize;
    let mut batch_start = position;
    let mut pending: Vec<P::Op> = Vec::new();
    let failure = loop {
        if position >= limit {
            break (position, FrameError::Truncated);
        }
        let frame = match record::decode_frame(seq, &bytes[position..limit]) {
            Ok(frame) => frame,
            Err(error) => break (position, error),
        };
        let payload = frame.payload;
        match frame.kind {
            RecordKind::Commit => {
                let Some((frame_count, batch_bytes)) = record::parse_commit(payload) else {
                    break (
                        position,
                        FrameError::BadHeader("malformed commit record".into()),
                    );
                };
                if frame_count as usize != pending.len()
                    || batch_bytes != (position - batch_start) as u64
                {
                    break (
                        position,
                        FrameError::BadHeader(format!(
                            "commit record counts {frame_count} records in {batch_bytes} bytes, \
                             the batch holds {} records in {} bytes",
                            pending.len(),
                            position - batch_start
                        )),
                    );
                }
                on_batch(&pending, batch_start as u64)?;
                pending.clear();
                position += frame.total_bytes;
                batch_start = position;
                continue;
            }
            RecordKind::Seal => {
                if !pending.is_empty() {
                    break (
                        position,
                        FrameError::BadHeader("seal record inside an unfinished batch".into()),
                    );
                }
                match parser.footer(payload) {
                    Some(footer) => {
                        return Ok(Scan {
                            valid_end: batch_start as u64,
                            end: ScanEnd::Sealed(footer),
                        })
                    }
                    None => {
                        break (
                            position,
                            FrameError::BadHeader("malformed segment footer".into()),
                        )
                    }
                }
            }
            kind => match parser.parse(kind, payload, position as u64)? {
                Ok(op) => pending.push(op),
                Err(what) => break (position, FrameError::BadHeader(format!("malformed {what}"))),
            },
        }
        position += frame.total_bytes;
    };
    let valid_end = batch_start;
    let (bad_offset, error) = failure;
    // Every batch is written followed by a zeroed frame header (the end marker): a clean end is
    // that marker. Anything else there is a torn write, or stale bytes of a recycled segment
    // whose marker write never happened: both are cut.
    let marker_end = (valid_end + FRAME_HEADER_BYTES).min(limit);
    let marker_intact = bytes[valid_end..marker_end].iter().all(|byte| *byte == 0);
    let later = find_later_commits(seq, bytes, bad_offset, limit);
    if marker_intact && later.is_empty() {
        return Ok(Scan {
            valid_end: valid_end as u64,
            end: ScanEnd::Clean,
        });
    }
    let later_batch_offset = later
        .iter()
        .find(|commit| commit.batch_start != valid_end)
        .map(|commit| commit.position as u64);
    let later_max_index = later
        .iter()
        .filter_map(|commit| max_entry_index(seq, bytes, commit))
        .max();
    let dirty_end = later
        .iter()
        .map(|commit| commit.end)
        .max()
        .unwrap_or(0)
        .max(valid_end + FRAME_HEADER_BYTES)
        .min(limit);
    Ok(Scan {
        valid_end: valid_end as u64,
        end: ScanEnd::Damaged(Damage {
            bad_offset: bad_offset as u64,
            reason: error.to_string(),
            later_batch_offset,
            later_max_index,
            dirty_end: dirty_end as u64,
        }),
    })
}

/// A valid commit record of this segment found after the damage.
#[derive(Debug)]
struct LaterCommit {
    position: usize,
    batch_start: usize,
    end: usize,
}

/// Finds every valid commit record of segment `seq` at or after `from`. A commit record's header
/// after its CRC is always `16u32, 4u8, 0, 0, 0`, so a SIMD substring search finds the candidates
/// and only those pay for a CRC check: a 64 MiB segment takes milliseconds.
fn find_later_commits(seq: u64, bytes: &[u8], from: usize, limit: usize) -> Vec<LaterCommit> {
    const NEEDLE: [u8; 8] = [16, 0, 0, 0, RecordKind::Commit as u8, 0, 0, 0];
    let mut found = Vec::new();
    let search_from = from + 4;
    if search_from >= limit {
        return found;
    }
    for hit in memchr::memmem::find_iter(&bytes[search_from..limit], &NEEDLE) {
        let position = search_from + hit - 4;
        let Ok(frame) = record::decode_frame(seq, &bytes[position..limit]) else {
            continue;
        };
        let Some((_, batch_bytes)) = record::parse_commit(frame.payload) else {
            continue;
        };
        let Some(batch_start) = (position as u64)
            .checked_sub(batch_bytes)
            .filter(|start| *start >= HEADER_BYTES)
        else {
            continue;
        };
        found.push(LaterCommit {
            position,
            batch_start: batch_start as usize,
            end: position + frame.total_bytes,
        });
    }
    found
}

/// The highest entry index in the batch a later commit closes, if its frames parse.
fn max_entry_index(seq: u64, bytes: &[u8], commit: &LaterCommit) -> Option<u64> {
    let mut position = commit.batch_start;
    let mut max_index = None;
    while position < commit.position {
        let frame = record::decode_frame(seq, &bytes[position..commit.position]).ok()?;
        if frame.kind == RecordKind::Entry {
            let (index, _, _) = record::parse_entry(frame.payload)?;
            max_index = Some(max_index.map_or(index, |m: u64| m.max(index)));
        }
        position += frame.total_bytes;
    }
    max_index
}

/// Maps a whole file read-only, for scanning.
pub(crate) fn map_file(path: &Path, file: &File) -> Result<Mmap> {
    // SAFETY: a read-only map used only during open or verify, while this process owns the log
    // directory and writes nothing to the file; every byte read through it is checksummed before
    // it is trusted.
    unsafe { Mmap::map(file) }.map_err(|e| Error::io("mmap", path, e))
}

pub(crate) fn new_log_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // splitmix64 of time and pid: distinct across logs created by different processes or times.
    let mut z = nanos ^ ((std::process::id() as u64) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1)
}

/// A segment file found in the directory.
struct Found {
    path: PathBuf,
    seq: u64,
    first_index: u64,
}

fn list_segments(dir: &Path, read_only: bool, spares: &mut Vec<PathBuf>) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut removed_temp = false;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name.ends_with(SPARE_SUFFIX) {
            spares.push(path);
            continue;
        }
        if name.ends_with(crate::store::STORE_SEGMENT_SUFFIX) {
            return Err(Error::misuse(format!(
                "{} is a segment of a multi-group store (LogStore), not of a write-ahead log; \
                 open the directory with LogStore::open",
                path.display()
            )));
        }
        if name.ends_with(PREPARING_SUFFIX) {
            if !read_only {
                std::fs::remove_file(&path).map_err(|e| Error::io("delete", &path, e))?;
                removed_temp = true;
            }
            continue;
        }
        if !name.ends_with(SEGMENT_SUFFIX) {
            continue;
        }
        match segment::parse_segment_file_name(name) {
            Some((seq, first_index)) => found.push(Found {
                path,
                seq,
                first_index,
            }),
            None => {
                return Err(Error::corruption(
                    &path,
                    0,
                    None,
                    "file name does not follow the segment pattern SEQ-FIRSTINDEX.wal; move it \
                     out of the log directory",
                ))
            }
        }
    }
    if removed_temp {
        fsync_dir(dir)?;
    }
    found.sort_by_key(|f| f.seq);
    for pair in found.windows(2) {
        if pair[0].seq == pair[1].seq {
            return Err(Error::corruption(
                &pair[1].path,
                0,
                None,
                format!("two segments carry sequence number {}", pair[1].seq),
            ));
        }
    }
    Ok(found)
}

/// Recovers the log in `dir`, creating the directory if missing.
pub(crate) fn open(dir: &Path, options: &Options) -> Result<Recovered> {
    ensure_dir(dir, options.read_only)?;
    let mut spares = Vec::new();
    let found = list_segments(dir, options.read_only, &mut spares)?;
    let mut recovered = Recovered {
        log_id: 0,
        chain: Chain::new(),
        hard_state: HardState::default(),
        spares: Vec::new(),
        report: RecoveryReport::default(),
        new_segment: None,
    };
    if !options.read_only {
        spares.sort();
        for extra in spares.split_off(spares.len().min(options.spare_segments_max)) {
            std::fs::remove_file(&extra).map_err(|e| Error::io("delete", &extra, e))?;
        }
        recovered.spares = spares;
    }
    recovered.report.segments = found.len();
    if found.is_empty() {
        if options.read_only {
            return Err(Error::misuse(format!(
                "{} holds no log segments",
                dir.display()
            )));
        }
        recovered.log_id = new_log_id();
        recovered.new_segment = Some((1, 0));
        return Ok(recovered);
    }
    let mut phantom_end = 0u64;
    let count = found.len();
    let mut salvage_from: Option<usize> = None;
    for (position, entry) in found.iter().enumerate() {
        let is_last = position + 1 == count;
        let file = segment::open_read_write(&entry.path).or_else(|e| {
            if options.read_only {
                File::open(&entry.path).map_err(|e| Error::io("open", &entry.path, e))
            } else {
                Err(e)
            }
        })?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("stat", &entry.path, e))?
            .len();
        let loaded = load_segment(
            &mut recovered,
            options,
            entry,
            file,
            file_len,
            position,
            &mut phantom_end,
        );
        match loaded {
            Ok(true) if is_last => {}
            Ok(true) => {
                let error = Error::corruption(
                    &entry.path,
                    0,
                    None,
                    "segment is not sealed but later segments follow it",
                );
                if options.recovery_mode != RecoveryMode::Salvage {
                    return Err(error);
                }
                salvage_from = Some(position + 1);
                recovered.report.salvaged.push(Salvaged {
                    path: found[position + 1].path.clone(),
                    offset: 0,
                    index_range: None,
                    reason: error.to_string(),
                });
                break;
            }
            Ok(false) => {}
            Err(error) => {
                if options.recovery_mode != RecoveryMode::Salvage || !error.is_corruption() {
                    return Err(error);
                }
                salvage_from = Some(position);
                recovered.report.salvaged.push(Salvaged {
                    path: entry.path.clone(),
                    offset: 0,
                    index_range: None,
                    reason: error.to_string(),
                });
                break;
            }
        }
    }
    if let Some(from) = salvage_from {
        for entry in &found[from..] {
            let target = entry.path.with_extension("wal.salvaged");
            if !options.read_only {
                std::fs::rename(&entry.path, &target)
                    .map_err(|e| Error::io("rename", &entry.path, e))?;
                log::warn!(
                    "salvage: moved {} aside to {}",
                    entry.path.display(),
                    target.display()
                );
            }
        }
        if !options.read_only {
            fsync_dir(dir)?;
        }
    }
    if phantom_end.min(recovered.chain.last_index + 1) > recovered.chain.first_index {
        let first = &found[0];
        return Err(Error::corruption(
            &first.path,
            0,
            Some((
                recovered.chain.first_index,
                phantom_end.min(recovered.chain.last_index + 1) - 1,
            )),
            "segments before this one are missing, and the entries they held were never \
             compacted",
        ));
    }
    let need_new_segment = match recovered.chain.segments.back() {
        None => true,
        Some(last) => last.map.is_some(),
    };
    if need_new_segment && !options.read_only {
        let (seq, prev) = match recovered.chain.segments.back() {
            Some(last) => (last.seq() + 1, last.seq()),
            None => (1, 0),
        };
        if recovered.log_id == 0 {
            recovered.log_id = new_log_id();
        }
        recovered.new_segment = Some((seq, prev));
    }
    if recovered.chain.segments.is_empty() && recovered.new_segment.is_none() {
        return Err(Error::misuse(format!(
            "{} holds no usable log segment (opened read-only, nothing was changed)",
            dir.display()
        )));
    }
    Ok(recovered)
}

/// Loads one segment into `recovered`. Returns true if it was left as the active (unsealed) segment.
fn load_segment(
    recovered: &mut Recovered,
    options: &Options,
    entry: &Found,
    file: File,
    file_len: u64,
    position: usize,
    phantom_end: &mut u64,
) -> Result<bool> {
    let path = &entry.path;
    let mut header_bytes = [0u8; HEADER_BYTES as usize];
    let read = file
        .read_at(&mut header_bytes, 0)
        .map_err(|e| Error::io("read", path, e))?;
    let header = SegmentHeader::decode(path, &header_bytes[..read])?;
    let chain_error = |reason: String| Error::corruption(path, 0, None, reason);
    if header.first_index == 0
        || header.log_first_index == 0
        || header.log_first_index > header.first_index
        || header.first_index > MAX_INDEX
    {
        return Err(chain_error(format!(
            "header holds impossible indices: log first index {}, first index {}",
            header.log_first_index, header.first_index
        )));
    }
    if header.seq != entry.seq || header.first_index != entry.first_index {
        return Err(chain_error(format!(
            "header says segment {} starting at index {}, the file name says segment {} at {}",
            header.seq, header.first_index, entry.seq, entry.first_index
        )));
    }
    if position == 0 {
        recovered.log_id = header.log_id;
        recovered.chain.first_index = header.log_first_index;
        recovered.chain.last_index = header.first_index - 1;
        recovered.hard_state = header.hard_state;
        *phantom_end = if header.prev_seq == 0 {
            header.log_first_index
        } else {
            header.first_index
        };
    } else {
        let previous = recovered
            .chain
            .segments
            .back()
            .expect("a segment was loaded before");
        if header.log_id != recovered.log_id {
            return Err(chain_error(format!(
                "segment belongs to another log (log id {:016x}, this log is {:016x})",
                header.log_id, recovered.log_id
            )));
        }
        if header.prev_seq != previous.seq() {
            return Err(chain_error(format!(
                "segment says its predecessor is segment {}, but the previous file is segment {}: \
                 a segment is missing or out of order",
                header.prev_seq,
                previous.seq()
            )));
        }
        if header.first_index != recovered.chain.last_index + 1
            || header.log_first_index != recovered.chain.first_index
        {
            return Err(chain_error(format!(
                "segment was created when the log held {}..={}, but the segments before it \
                 hold {}..={}",
                header.log_first_index,
                header.first_index - 1,
                recovered.chain.first_index,
                recovered.chain.last_index
            )));
        }
    }
    let mut segment = Segment {
        header,
        path: path.clone(),
        file: Arc::new(file),
        file_len,
        map: None,
        own_first: recovered.chain.last_index + 1,
        offsets: Vec::new(),
        prior_keep_below: u64::MAX,
        write_offset: HEADER_BYTES,
    };
    if let Some((footer_offset, footer)) = read_footer(&segment)? {
        segment.write_offset = footer_offset;
        segment.map_for_reads()?;
        recovered.chain.segments.push_back(segment);
        apply_footer(recovered, &footer, footer_offset, phantom_end)?;
        return Ok(false);
    }
    // Unsealed: the active segment. Scan its records.
    let map = map_file(path, &segment.file)?;
    recovered.chain.segments.push_back(segment);
    // Scan the whole file: a copy or a filesystem without preallocation may have shortened it.
    let limit = file_len as usize;
    let scan = scan_records(
        header.seq,
        &map,
        limit,
        &mut WalRecords { path },
        |ops, batch_offset| apply_ops(recovered, ops, path, batch_offset, phantom_end),
    )?;
    recovered.report.tail_bytes_scanned = scan.valid_end;
    let valid_end = scan.valid_end;
    match scan.end {
        ScanEnd::Clean => {}
        ScanEnd::Sealed(footer) => {
            // The footer was written but its trailer was not: the seal did not finish. The footer
            // must agree with the records; the segment stays active and the footer is overwritten
            // by the next append.
            let active = recovered.chain.active();
            if footer.offsets != active.offsets
                || footer.log_last_index != recovered.chain.last_index
            {
                return Err(Error::corruption(
                    path,
                    valid_end,
                    None,
                    "segment footer disagrees with the segment's records",
                ));
            }
        }
        ScanEnd::Damaged(damage) => {
            handle_tail_damage(recovered, options, path, valid_end, damage)?;
        }
    }
    drop(map);
    recovered.chain.active_mut().write_offset = valid_end;
    let wanted_len = options.segment_size_bytes;
    if file_len < wanted_len && !options.read_only {
        // A shortened active segment gets its full size back, so the footer and trailer always
        // fit after the records.
        let active = recovered.chain.active_mut();
        active
            .file
            .set_len(wanted_len)
            .and_then(|()| active.file.sync_all())
            .map_err(|e| Error::io("extend segment", path, e))?;
        active.file_len = wanted_len;
    }
    Ok(true)
}

fn handle_tail_damage(
    recovered: &mut Recovered,
    options: &Options,
    path: &Path,
    valid_end: u64,
    damage: Damage,
) -> Result<()> {
    let later_range = damage
        .later_max_index
        .filter(|max| *max > recovered.chain.last_index)
        .map(|max| (recovered.chain.last_index + 1, max));
    judge_tail_damage(
        options,
        &mut recovered.report,
        path,
        valid_end,
        &damage,
        later_range,
    )?;
    if options.read_only {
        return Ok(());
    }
    zero_tail(
        &recovered.chain.active().file,
        path,
        valid_end,
        damage.dirty_end,
    )
}

/// Decides what damage after the last complete batch of the last segment means under the
/// recovery mode: an error, a salvage or a torn tail, recorded in `report`. `later_range` is
/// what the damage affects, for errors.
pub(crate) fn judge_tail_damage(
    options: &Options,
    report: &mut RecoveryReport,
    path: &Path,
    valid_end: u64,
    damage: &Damage,
    later_range: Option<(u64, u64)>,
) -> Result<()> {
    let mode = options.recovery_mode;
    if let Some(later_offset) = damage.later_batch_offset {
        let reason = format!(
            "{} at offset {}, but a complete batch follows at offset {later_offset}: this is not \
             a torn write; the records in between are damaged",
            damage.reason, damage.bad_offset
        );
        if mode != RecoveryMode::Salvage {
            return Err(Error::corruption(
                path,
                damage.bad_offset,
                later_range,
                reason,
            ));
        }
        report.salvaged.push(Salvaged {
            path: path.to_path_buf(),
            offset: damage.bad_offset,
            index_range: later_range,
            reason,
        });
    } else {
        if mode == RecoveryMode::Strict {
            return Err(Error::corruption(
                path,
                valid_end,
                later_range,
                format!(
                    "torn tail: the bytes after the last complete batch are not a clean end ({}); \
                     strict recovery refuses to cut it",
                    damage.reason
                ),
            ));
        }
        log::warn!(
            "{}: cutting a torn tail at offset {valid_end} ({})",
            path.display(),
            damage.reason
        );
        report.torn_tail = Some(TornTail {
            path: path.to_path_buf(),
            offset: valid_end,
            bytes: damage.dirty_end - valid_end,
            reason: damage.reason.clone(),
        });
    }
    Ok(())
}

/// Zeroes `from..to` of a segment and syncs it, so that no part of dropped bytes can ever parse as
/// records after new appends overwrite only their beginning.
pub(crate) fn zero_tail(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    let zeros = vec![0u8; (to - from) as usize];
    file.write_all_at(&zeros, from)
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io("repair torn tail", path, e))
}

fn read_footer(segment: &Segment) -> Result<Option<(u64, Footer)>> {
    let path = &segment.path;
    if segment.file_len < HEADER_BYTES + TRAILER_BYTES {
        return Ok(None);
    }
    let mut trailer = [0u8; TRAILER_BYTES as usize];
    segment
        .file
        .read_exact_at(&mut trailer, segment.file_len - TRAILER_BYTES)
        .map_err(|e| Error::io("read", path, e))?;
    let Some(footer_offset) = segment::decode_trailer(segment.seq(), &trailer) else {
        return Ok(None);
    };
    let footer_end = segment.file_len - TRAILER_BYTES;
    if footer_offset < HEADER_BYTES || footer_offset >= footer_end {
        return Err(Error::corruption(
            path,
            segment.file_len - TRAILER_BYTES,
            None,
            format!("segment trailer points at footer offset {footer_offset}, outside the file"),
        ));
    }
    let mut bytes = vec![0u8; (footer_end - footer_offset) as usize];
    segment
        .file
        .read_exact_at(&mut bytes, footer_offset)
        .map_err(|e| Error::io("read", path, e))?;
    let bad = |reason: String| Error::corruption(path, footer_offset, None, reason);
    let frame = record::decode_frame(segment.seq(), &bytes)
        .map_err(|e| bad(format!("segment footer unreadable: {e}")))?;
    if frame.kind != RecordKind::Seal {
        return Err(bad(format!(
            "segment trailer points at a {:?} record, not a footer",
            frame.kind
        )));
    }
    let footer = Footer::decode(frame.payload).ok_or_else(|| bad("malformed footer".into()))?;
    Ok(Some((footer_offset, footer)))
}

/// Applies a sealed segment's footer (the segment is already the chain's last segment).
fn apply_footer(
    recovered: &mut Recovered,
    footer: &Footer,
    footer_offset: u64,
    phantom_end: &mut u64,
) -> Result<()> {
    let path = recovered.chain.active().path.clone();
    let bad = |reason: String| Error::corruption(&path, footer_offset, None, reason);
    let own_end = footer.own_first.checked_add(footer.offsets.len() as u64);
    if footer.log_first_index > MAX_INDEX
        || footer.log_last_index > MAX_INDEX
        || own_end.is_none_or(|end| end > MAX_INDEX)
    {
        return Err(bad("footer holds impossible indices".into()));
    }
    if footer.prior_keep_below != u64::MAX {
        recovered.chain.truncate(footer.prior_keep_below);
        *phantom_end = (*phantom_end).min(footer.prior_keep_below);
    }
    if let Some(last_offset) = footer.offsets.last() {
        if footer.own_first > recovered.chain.last_index + 1
            && footer.log_first_index >= footer.own_first
        {
            // The log was reset past its end (a snapshot beyond it) before these entries came.
            recovered.chain.compact(footer.own_first);
        }
        if footer.own_first != recovered.chain.last_index + 1 {
            return Err(bad(format!(
                "footer lists entries from index {}, but the log before it ends at {}",
                footer.own_first, recovered.chain.last_index
            )));
        }
        if u64::from(*last_offset) >= footer_offset
            || footer.offsets.windows(2).any(|pair| pair[0] >= pair[1])
            || u64::from(footer.offsets[0]) < HEADER_BYTES
        {
            return Err(bad(
                "footer entry offsets are not increasing within the segment".into(),
            ));
        }
        let active = recovered.chain.active_mut();
        active.own_first = footer.own_first;
        active.offsets = footer.offsets.clone();
        active.prior_keep_below = footer.prior_keep_below;
        recovered.chain.last_index = footer.own_first + footer.offsets.len() as u64 - 1;
    }
    recovered.chain.compact(footer.log_first_index);
    if recovered.chain.last_index != footer.log_last_index
        || recovered.chain.first_index != footer.log_first_index
    {
        return Err(bad(format!(
            "footer says the log held {}..={} when sealed, the segments give {}..={}",
            footer.log_first_index,
            footer.log_last_index,
            recovered.chain.first_index,
            recovered.chain.last_index
        )));
    }
    recovered.hard_state = footer.hard_state;
    Ok(())
}

/// Applies one complete batch found by a scan.
fn apply_ops(
    recovered: &mut Recovered,
    ops: &[Op],
    path: &Path,
    batch_offset: u64,
    phantom_end: &mut u64,
) -> Result<()> {
    for op in ops {
        let index = match *op {
            Op::Entry { index, .. } | Op::Truncate(index) | Op::Compact(index) => index,
            Op::HardState(_) => 0,
        };
        if index > MAX_INDEX {
            return Err(Error::corruption(
                path,
                batch_offset,
                None,
                format!("record holds impossible index {index}"),
            ));
        }
        match *op {
            Op::Entry { index, offset } => {
                if index != recovered.chain.last_index + 1 {
                    return Err(Error::corruption(
                        path,
                        offset,
                        Some((index, index)),
                        format!(
                            "entry {index} does not follow the log's last index {}",
                            recovered.chain.last_index
                        ),
                    ));
                }
                recovered.chain.push(index, offset);
            }
            Op::HardState(hard_state) => recovered.hard_state = hard_state,
            Op::Truncate(from) => {
                if from < recovered.chain.first_index {
                    return Err(Error::corruption(
                        path,
                        batch_offset,
                        None,
                        format!(
                            "truncation from {from} reaches below the first index {}",
                            recovered.chain.first_index
                        ),
                    ));
                }
                recovered.chain.truncate(from);
                *phantom_end = (*phantom_end).min(from);
            }
            Op::Compact(first) => recovered.chain.compact(first),
        }
    }
    Ok(())
}

/// Full verification: every record of every segment, the chain, and the footers.
pub(crate) fn verify(chain: &Chain) -> Result<u64> {
    let mut checked = 0u64;
    let active_seq = chain.active().seq();
    for segment in &chain.segments {
        let map = map_file(&segment.path, &segment.file)?;
        let sealed = segment.seq() != active_seq;
        // A sealed segment's scan stops at its seal record.
        let limit = if sealed {
            (segment.file_len - TRAILER_BYTES) as usize
        } else {
            segment.write_offset as usize
        };
        let mut entries_seen = 0u64;
        let mut parser = WalRecords {
            path: &segment.path,
        };
        let scan = scan_records(segment.seq(), &map, limit, &mut parser, |ops, _| {
            entries_seen += ops
                .iter()
                .filter(|op| matches!(op, Op::Entry { .. }))
                .count() as u64;
            Ok(())
        })?;
        let problem =
            |offset: u64, reason: String| Error::corruption(&segment.path, offset, None, reason);
        if scan.valid_end != segment.write_offset {
            let reason = match &scan.end {
                ScanEnd::Damaged(damage) => damage.reason.clone(),
                _ => "records end early".to_string(),
            };
            let offset = match &scan.end {
                ScanEnd::Damaged(damage) => damage.bad_offset,
                _ => scan.valid_end,
            };
            return Err(problem(offset, format!("record damaged: {reason}")));
        }
        if sealed && !matches!(scan.end, ScanEnd::Sealed(_)) {
            return Err(problem(segment.write_offset, "footer damaged".into()));
        }
        // Every live entry must parse with its checksum; reading them verifies each one.
        if !segment.is_empty() {
            let lo = segment.own_first.max(chain.first_index);
            let hi = segment.own_last() + 1;
            if lo < hi {
                segment.visit_entries(lo, hi, &mut |_, _, _| {})?;
            }
        }
        debug_assert!(entries_seen >= segment.offsets.len() as u64);
        checked += scan.valid_end;
    }
    Ok(checked)
}

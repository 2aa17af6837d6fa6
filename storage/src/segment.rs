//! One segment file: its header, its footer, appends, positioned and mapped reads, sealing.
//!
//! # Segment file format (version 1)
//!
//! A segment is named `{seq:020}-{first_index:020}.wal`, where `seq` is its sequence number
//! (1, 2, 3, ... with no gaps while the segments exist) and `first_index` is the index the first
//! entry written into it would get. Segments are preallocated by writing zeros (not `fallocate`:
//! on ext4 an fdatasync into unwritten extents still flushes metadata), so that appends overwrite
//! blocks that already exist and fdatasync flushes only data. All integers little-endian.
//!
//! ```text
//! header, 128 bytes at offset 0
//! 0    8  magic              b"KETCHWAL"
//! 8    4  format version     1
//! 12   4  checksum algorithm 1 = CRC-32/ISO-HDLC (crc32fast)
//! 16   8  log id             random, the same in every segment of one log: foreign files are refused
//! 24   8  seq                this segment's sequence number
//! 32   8  prev seq           the previous segment's sequence number (0: none ever existed)
//! 40   8  first index        last index of the log when this segment was created, plus one
//! 48   8  log first index    the log's first index when this segment was created
//! 56  24  hard state         term, vote, commit when this segment was created
//! 80  44  reserved           zero
//! 124  4  crc32 of bytes 0..124
//!
//! 128  ... frames (see crate::record), then zeros
//!
//! once sealed:
//! F        seal frame (kind 6), the footer: payload =
//!          log first index u64, log last index u64 (the log's range at sealing),
//!          prior keep below u64 (entries of earlier segments at or above it were dropped while
//!          this segment was active; u64::MAX if none), own first u64, own count u64 (the live
//!          entries stored in this segment), hard state term, vote, commit (3 x u64),
//!          then own count x u32: the byte offset of each live entry's frame
//! len-24  trailer, 24 bytes: magic b"KETCHEND", footer offset u64,
//!         crc32 of (seq as 8 bytes, trailer bytes 0..16) u32, reserved u32 zero
//! ```
//!
//! The footer lets `open` learn a sealed segment's entries without reading them, so opening costs
//! time in proportion to the active (last) segment, not the whole log. Damage inside a sealed
//! segment's records is found when they are read (every read verifies the entry's CRC) or by
//! [`crate::Wal::verify`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use byteorder::{ByteOrder, LittleEndian};
use memmap2::Mmap;

use crate::entry::HardState;
use crate::error::{Error, Result};
use crate::fault::{self, FaultInjector};
use crate::files::TempFile;
use crate::record::{self, RecordKind, FRAME_HEADER_BYTES};

/// Size of the segment header.
pub const HEADER_BYTES: u64 = 128;
/// Size of the trailer that ends a sealed segment.
pub const TRAILER_BYTES: u64 = 24;
/// Fixed part of a seal frame's payload.
pub const FOOTER_FIXED_BYTES: u64 = 64;
/// Segment format version written by this code.
pub const FORMAT_VERSION: u32 = 1;
/// Checksum algorithm identifier: CRC-32/ISO-HDLC as computed by crc32fast.
pub const CHECKSUM_CRC32: u32 = 1;

const HEADER_MAGIC: &[u8; 8] = b"KETCHWAL";
const TRAILER_MAGIC: &[u8; 8] = b"KETCHEND";
/// Suffix of every segment file.
pub const SEGMENT_SUFFIX: &str = ".wal";
/// Suffix of segment files still being prepared; deleted at open.
pub const PREPARING_SUFFIX: &str = ".wal.tmp";
/// Suffix of compacted segment files kept for reuse. Their stale records belong to another
/// sequence number, so they never parse as records of the segment that reuses the file.
pub const SPARE_SUFFIX: &str = ".wal.spare";

/// The fixed header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Identifies the log; equal in all its segments.
    pub log_id: u64,
    /// This segment's sequence number.
    pub seq: u64,
    /// The previous segment's sequence number, 0 for the first segment of a log.
    pub prev_seq: u64,
    /// The log's last index + 1 when the segment was created.
    pub first_index: u64,
    /// The log's first index when the segment was created.
    pub log_first_index: u64,
    /// The hard state when the segment was created.
    pub hard_state: HardState,
}

impl SegmentHeader {
    /// Encodes the header into its 128 bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES as usize] {
        let mut bytes = [0u8; HEADER_BYTES as usize];
        bytes[0..8].copy_from_slice(HEADER_MAGIC);
        LittleEndian::write_u32(&mut bytes[8..12], FORMAT_VERSION);
        LittleEndian::write_u32(&mut bytes[12..16], CHECKSUM_CRC32);
        LittleEndian::write_u64(&mut bytes[16..24], self.log_id);
        LittleEndian::write_u64(&mut bytes[24..32], self.seq);
        LittleEndian::write_u64(&mut bytes[32..40], self.prev_seq);
        LittleEndian::write_u64(&mut bytes[40..48], self.first_index);
        LittleEndian::write_u64(&mut bytes[48..56], self.log_first_index);
        LittleEndian::write_u64(&mut bytes[56..64], self.hard_state.term);
        LittleEndian::write_u64(&mut bytes[64..72], self.hard_state.vote);
        LittleEndian::write_u64(&mut bytes[72..80], self.hard_state.commit);
        let crc = crc32fast::hash(&bytes[0..124]);
        LittleEndian::write_u32(&mut bytes[124..128], crc);
        bytes
    }

    /// Decodes and verifies a header. `path` is used in errors.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::corruption(path, 0, None, reason);
        if bytes.len() < HEADER_BYTES as usize {
            return Err(bad(format!(
                "segment header truncated: file holds {} bytes, the header needs {HEADER_BYTES}",
                bytes.len()
            )));
        }
        if &bytes[0..8] != HEADER_MAGIC {
            return Err(bad("not a Ketch segment: bad magic".into()));
        }
        let stored_crc = LittleEndian::read_u32(&bytes[124..128]);
        if crc32fast::hash(&bytes[0..124]) != stored_crc {
            return Err(bad("segment header checksum mismatch".into()));
        }
        let version = LittleEndian::read_u32(&bytes[8..12]);
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "segment format version {version} is not supported (this build reads {FORMAT_VERSION})"
            )));
        }
        let algorithm = LittleEndian::read_u32(&bytes[12..16]);
        if algorithm != CHECKSUM_CRC32 {
            return Err(bad(format!("unknown checksum algorithm {algorithm}")));
        }
        Ok(SegmentHeader {
            log_id: LittleEndian::read_u64(&bytes[16..24]),
            seq: LittleEndian::read_u64(&bytes[24..32]),
            prev_seq: LittleEndian::read_u64(&bytes[32..40]),
            first_index: LittleEndian::read_u64(&bytes[40..48]),
            log_first_index: LittleEndian::read_u64(&bytes[48..56]),
            hard_state: HardState {
                term: LittleEndian::read_u64(&bytes[56..64]),
                vote: LittleEndian::read_u64(&bytes[64..72]),
                commit: LittleEndian::read_u64(&bytes[72..80]),
            },
        })
    }

    /// The file name a segment with this header has.
    pub fn file_name(&self) -> String {
        segment_file_name(self.seq, self.first_index)
    }
}

/// The file name of segment `seq` whose first entry would be `first_index`.
pub fn segment_file_name(seq: u64, first_index: u64) -> String {
    format!("{seq:020}-{first_index:020}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name into `(seq, first_index)`.
pub fn parse_segment_file_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    let (seq, first) = stem.split_once('-')?;
    if seq.len() != 20 || first.len() != 20 {
        return None;
    }
    Some((seq.parse().ok()?, first.parse().ok()?))
}

/// A sealed segment's footer: what `open` needs to know without reading the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// The log's first index when the segment was sealed.
    pub log_first_index: u64,
    /// The log's last index when the segment was sealed.
    pub log_last_index: u64,
    /// Entries of earlier segments at or above this index were dropped (u64::MAX: none).
    pub prior_keep_below: u64,
    /// Index of the first live entry stored in this segment.
    pub own_first: u64,
    /// The hard state when the segment was sealed.
    pub hard_state: HardState,
    /// Frame offsets of the live entries `own_first..own_first + offsets.len()`.
    pub offsets: Vec<u32>,
}

impl Footer {
    /// Bytes the seal frame of a footer with `own_count` entries occupies.
    pub fn frame_bytes(own_count: usize) -> u64 {
        FRAME_HEADER_BYTES as u64 + FOOTER_FIXED_BYTES + 4 * own_count as u64
    }

    /// Appends the seal frame for this footer to `out`.
    pub fn encode(&self, out: &mut Vec<u8>, seq: u64) {
        let mut payload = Vec::with_capacity(FOOTER_FIXED_BYTES as usize + 4 * self.offsets.len());
        for value in [
            self.log_first_index,
            self.log_last_index,
            self.prior_keep_below,
            self.own_first,
            self.offsets.len() as u64,
            self.hard_state.term,
            self.hard_state.vote,
            self.hard_state.commit,
        ] {
            payload.extend_from_slice(&value.to_le_bytes());
        }
        for offset in &self.offsets {
            payload.extend_from_slice(&offset.to_le_bytes());
        }
        record::encode_frame(out, seq, RecordKind::Seal, &[&payload]);
    }

    /// Decodes a seal frame's payload.
    pub fn decode(payload: &[u8]) -> Option<Footer> {
        if payload.len() < FOOTER_FIXED_BYTES as usize {
            return None;
        }
        let field = |slot| record::payload_u64(payload, slot);
        let own_count = field(4)?;
        let offsets_bytes = &payload[FOOTER_FIXED_BYTES as usize..];
        if offsets_bytes.len() as u64 != own_count.checked_mul(4)? {
            return None;
        }
        let mut offsets = vec![0u32; own_count as usize];
        LittleEndian::read_u32_into(offsets_bytes, &mut offsets);
        Some(Footer {
            log_first_index: field(0)?,
            log_last_index: field(1)?,
            prior_keep_below: field(2)?,
            own_first: field(3)?,
            hard_state: HardState {
                term: field(5)?,
                vote: field(6)?,
                commit: field(7)?,
            },
            offsets,
        })
    }
}

/// Encodes the trailer that points at a footer.
pub fn encode_trailer(seq: u64, footer_offset: u64) -> [u8; TRAILER_BYTES as usize] {
    let mut bytes = [0u8; TRAILER_BYTES as usize];
    bytes[0..8].copy_from_slice(TRAILER_MAGIC);
    LittleEndian::write_u64(&mut bytes[8..16], footer_offset);
    let crc = record::frame_crc(seq, &bytes[0..16]);
    LittleEndian::write_u32(&mut bytes[16..20], crc);
    bytes
}

/// Decodes a trailer; `None` if it is not a valid trailer of segment `seq`.
pub fn decode_trailer(seq: u64, bytes: &[u8]) -> Option<u64> {
    if bytes.len() != TRAILER_BYTES as usize || &bytes[0..8] != TRAILER_MAGIC {
        return None;
    }
    if record::frame_crc(seq, &bytes[0..16]) != LittleEndian::read_u32(&bytes[16..20]) {
        return None;
    }
    Some(LittleEndian::read_u64(&bytes[8..16]))
}

/// A segment file and the index of its live entries.
#[derive(Debug)]
pub struct Segment {
    /// Its header.
    pub header: SegmentHeader,
    /// Its path.
    pub path: PathBuf,
    /// The open file (shared with group-commit syncers).
    pub file: Arc<File>,
    /// Its length in bytes.
    pub file_len: u64,
    /// The read-only map of a sealed segment.
    pub map: Option<Mmap>,
    /// Index of the first live entry stored here (meaningful when `offsets` is non-empty; kept
    /// non-decreasing across segments so a binary search by index finds the right segment).
    pub own_first: u64,
    /// Frame offsets of the live entries stored here.
    pub offsets: Vec<u32>,
    /// Lowest index at which entries of earlier segments were dropped while this segment was
    /// active, u64::MAX if none: recorded in the footer.
    pub prior_keep_below: u64,
    /// Where the next frame goes (active segment), or the footer's offset (sealed).
    pub write_offset: u64,
}

impl Segment {
    /// The segment's sequence number.
    pub fn seq(&self) -> u64 {
        self.header.seq
    }

    /// True if it holds no live entries.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Index of the last live entry stored here; only meaningful if not empty.
    pub fn own_last(&self) -> u64 {
        debug_assert!(!self.offsets.is_empty());
        self.own_first + self.offsets.len() as u64 - 1
    }

    /// Records that entry `index` was written at `offset`.
    pub fn push_entry(&mut self, index: u64, offset: u64) {
        if self.offsets.is_empty() {
            self.own_first = index;
        }
        assert_eq!(
            index,
            self.own_first + self.offsets.len() as u64,
            "segment {} index must stay contiguous",
            self.path.display()
        );
        assert!(
            offset < u32::MAX as u64,
            "segment offsets are 32-bit; segment too large"
        );
        self.offsets.push(offset as u32);
    }

    /// Drops live entries at or above `index`.
    pub fn truncate_from(&mut self, index: u64) {
        if self.offsets.is_empty() {
            self.own_first = self.own_first.min(index);
            return;
        }
        if index <= self.own_first {
            self.offsets.clear();
            self.own_first = index;
        } else {
            let keep = (index - self.own_first).min(self.offsets.len() as u64);
            self.offsets.truncate(keep as usize);
        }
    }

    /// Calls `visit(index, term, data)` for the live entries `lo..hi`, which must all be stored
    /// here, each after verifying its checksum. Sealed segments hand out slices of the map (no
    /// copy); the active one reads the span with one positioned read.
    pub fn visit_entries(
        &self,
        lo: u64,
        hi: u64,
        visit: &mut dyn FnMut(u64, u64, &[u8]),
    ) -> Result<()> {
        assert!(lo >= self.own_first && lo < hi);
        assert!(hi - self.own_first <= self.offsets.len() as u64);
        let first_slot = (lo - self.own_first) as usize;
        let end_slot = (hi - self.own_first) as usize;
        let span;
        let (bytes, base): (&[u8], u64) = match &self.map {
            Some(map) => (map, 0),
            None => {
                let span_start = self.offsets[first_slot] as u64;
                let span_end = match self.offsets.get(end_slot) {
                    Some(next) => *next as u64,
                    None => self.write_offset,
                };
                let mut buffer = vec![0u8; (span_end - span_start) as usize];
                self.file
                    .read_exact_at(&mut buffer, span_start)
                    .map_err(|e| Error::io("read", &self.path, e))?;
                span = buffer;
                (&span, span_start)
            }
        };
        for slot in first_slot..end_slot {
            let offset = self.offsets[slot] as u64;
            let index = lo + (slot - first_slot) as u64;
            let frame_bytes = bytes.get((offset - base) as usize..).unwrap_or(&[]);
            let (term, data) = self.parse_entry(frame_bytes, offset, index)?;
            visit(index, term, data);
        }
        Ok(())
    }

    fn parse_entry<'a>(&self, bytes: &'a [u8], offset: u64, index: u64) -> Result<(u64, &'a [u8])> {
        let located =
            |reason: String| Error::corruption(&self.path, offset, Some((index, index)), reason);
        let frame = record::decode_frame(self.seq(), bytes).map_err(|e| located(e.to_string()))?;
        if frame.kind != RecordKind::Entry {
            return Err(located(format!(
                "expected an entry record, found {:?}",
                frame.kind
            )));
        }
        let (stored_index, term, data) = record::parse_entry(frame.payload)
            .ok_or_else(|| located("entry record too short".into()))?;
        if stored_index != index {
            return Err(located(format!(
                "entry record holds index {stored_index}, the index expected {index}"
            )));
        }
        Ok((term, data))
    }

    /// Maps the (sealed) file for reads.
    pub fn map_for_reads(&mut self) -> Result<()> {
        // SAFETY: the map is read-only and the file is sealed: Ketch never writes to a sealed
        // segment again, and deletes it only after dropping this map. Another process modifying
        // the file underneath would be outside Ketch's contract (the data directory is owned by
        // one Wal); every read through the map still verifies checksums.
        let map =
            unsafe { Mmap::map(&*self.file) }.map_err(|e| Error::io("mmap", &self.path, e))?;
        self.map = Some(map);
        Ok(())
    }
}

/// Opens a file for reading and writing.
pub fn open_read_write(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

/// Bytes of zeros [`prepare_zero_filled`] writes between two fdatasyncs, and between two calls of
/// its `stop` callback; the smallest step of [`prepare_zero_filled_in_steps`].
///
/// Why in steps: on a disk with a write-back cache a flush persists everything written before it,
/// whichever file it belongs to, so an append's fdatasync that runs while a prepared file's
/// zeros are being written back waits for them. Written in one go and synced by one `sync_all`,
/// the 64 MiB of a default segment took 31-40 ms to write back on the project's machine (on a
/// fast day), and the append fdatasyncs that ran meanwhile took 15-33 ms instead of about
/// 0.2 ms: one such stall per new segment, longer on slower days. Synced step by step, an
/// append's flush queues behind at most one step. Steps of 1 MiB still made the appends that
/// met one take 0.6-0.9 ms (wal-bench W3); 256 KiB is about 0.15 ms of write-back at the disk's
/// fast-day speed. Smaller steps cost a flush each for less and less.
pub const ZERO_FILL_STEP_BYTES: u64 = 256 << 10;

/// The largest step of [`prepare_zero_filled_in_steps`]: about 2-10 ms of write-back on the
/// project's disk, still a small fraction of a segment.
pub const ZERO_FILL_STEP_MAX_BYTES: u64 = 4 << 20;

/// Creates `path` (which must not exist) filled with `size_bytes` zeros, and syncs it, so that later
/// appends overwrite allocated blocks. Returns the open file. If it fails, or `stop` cancels it,
/// the file is deleted again.
pub fn write_zero_filled(path: &Path, size_bytes: u64, stop: &dyn Fn() -> bool) -> Result<File> {
    let (temp, file) = prepare_zero_filled(path.to_path_buf(), size_bytes, stop, None)?;
    temp.disarm();
    Ok(file)
}

/// [`write_zero_filled`] for a segment to be: the file stays a [`TempFile`], deleted unless it is
/// renamed into place, and its writes meet the faults a test armed.
///
/// The zeros go out in steps of [`ZERO_FILL_STEP_BYTES`], each made durable (fdatasync) before
/// the next is written. `stop` is called before every step: it cancels by returning true.
pub(crate) fn prepare_zero_filled(
    path: PathBuf,
    size_bytes: u64,
    stop: &dyn Fn() -> bool,
    faults: Option<&FaultInjector>,
) -> Result<(TempFile, File)> {
    let next_step = |_written_bytes| (!stop()).then_some(ZERO_FILL_STEP_BYTES);
    prepare_zero_filled_in_steps(path, size_bytes, &next_step, faults)
}

/// [`prepare_zero_filled`] with steps of the caller's choosing: before every step,
/// `next_step(bytes written so far)` returns the step's size (kept between
/// [`ZERO_FILL_STEP_BYTES`] and [`ZERO_FILL_STEP_MAX_BYTES`]), or `None` to cancel. It may block
/// to pace the preparation (see [`crate::prepare`]).
pub(crate) fn prepare_zero_filled_in_steps(
    path: PathBuf,
    size_bytes: u64,
    next_step: &dyn Fn(u64) -> Option<u64>,
    faults: Option<&FaultInjector>,
) -> Result<(TempFile, File)> {
    // No directory fsync after this create: the file counts only once renamed into place, and
    // the rename is followed by one.
    let (temp, mut file) = TempFile::create(path)?;
    // Small writes, on purpose. The page cache sizes the folios it allocates by the write that
    // creates them, and Linux 6.x ext4 keeps large folios: a file filled by 1 MiB writes keeps
    // (up to) 1 MiB folios, and every later small append into one pays for the whole folio's
    // buffers on the write and on the writeback. Measured on this project's machine (a 324 B
    // write + fdatasync, 4000 per run, medians of 5 alternating runs), after pre-writing in
    // 1 MiB writes: p50 193 us, 53.8 us of system time per append; 16 KiB writes: 161 us,
    // 40.1 us; 4 KiB writes: 152 us, 39.5 us. 16 KiB, not 4 KiB: batches of 16 x 4 KiB
    // (wal-bench W3) ran about 15 % slower on 4 KiB folios than on 1 MiB ones, and 10 % faster
    // on 16 KiB ones than on 4 KiB ones (three alternating runs each).
    const WRITE_BYTES: u64 = 16 << 10;
    const _: () = assert!(ZERO_FILL_STEP_BYTES % WRITE_BYTES == 0);
    const _: () = assert!(ZERO_FILL_STEP_MAX_BYTES % WRITE_BYTES == 0);
    let zeros = vec![0u8; WRITE_BYTES as usize];
    let mut written = 0;
    while written < size_bytes {
        let Some(step_bytes) = next_step(written) else {
            return Err(Error::misuse("segment preparation cancelled"));
        };
        // Whole writes, so that every write stays aligned to its size (see above).
        let step_bytes = step_bytes
            .clamp(ZERO_FILL_STEP_BYTES, ZERO_FILL_STEP_MAX_BYTES)
            .next_multiple_of(WRITE_BYTES);
        let step_end = size_bytes.min(written + step_bytes);
        while written < step_end {
            let len = WRITE_BYTES.min(step_end - written);
            fault::write(faults, &zeros[..len as usize], |bytes| {
                file.write_all(bytes)
            })
            .map_err(|e| Error::io("write", temp.path(), e))?;
            written += len;
        }
        if written < size_bytes {
            file.sync_data()
                .map_err(|e| Error::io("fdatasync", temp.path(), e))?;
        }
    }
    // The last step, and the file's size and blocks, in one.
    file.sync_all()
        .map_err(|e| Error::io("fsync", temp.path(), e))?;
    debug_assert_eq!(written, size_bytes);
    Ok((temp, file))
}

pub use crate::files::fsync_dir;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_filled_files_have_the_exact_size_and_only_zeros_and_stop_cancels() {
        let dir = tempfile::tempdir().unwrap();
        // Not a multiple of the write size or of the step: the last write and step are short.
        let size = 3 * ZERO_FILL_STEP_BYTES + 1000;
        let path = dir.path().join("zeros");
        let file = write_zero_filled(&path, size, &|| false).unwrap();
        assert_eq!(file.metadata().unwrap().len(), size);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(bytes.iter().all(|b| *b == 0));
        assert!(
            write_zero_filled(&path, 4096, &|| false).is_err(),
            "an existing file is never overwritten"
        );
        let cancelled = dir.path().join("cancelled");
        let checks = std::cell::Cell::new(0);
        let result = write_zero_filled(&cancelled, size, &|| {
            checks.set(checks.get() + 1);
            checks.get() > 1
        });
        assert!(result.is_err(), "a stop request cancels the preparation");
        assert_eq!(checks.get(), 2, "stop is polled once per step");
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let header = SegmentHeader {
            log_id: 99,
            seq: 3,
            prev_seq: 2,
            first_index: 1000,
            log_first_index: 10,
            hard_state: HardState {
                term: 4,
                vote: 2,
                commit: 900,
            },
        };
        let bytes = header.encode();
        assert_eq!(
            SegmentHeader::decode(Path::new("x"), &bytes).unwrap(),
            header
        );
        for byte in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[byte] ^= 0x10;
            assert!(SegmentHeader::decode(Path::new("x"), &damaged).is_err());
        }
    }

    #[test]
    fn footer_and_trailer_round_trip() {
        let footer = Footer {
            log_first_index: 1,
            log_last_index: 12,
            prior_keep_below: u64::MAX,
            own_first: 10,
            hard_state: HardState::default(),
            offsets: vec![128, 200, 300],
        };
        let mut out = Vec::new();
        footer.encode(&mut out, 5);
        assert_eq!(out.len() as u64, Footer::frame_bytes(3));
        let frame = record::decode_frame(5, &out).unwrap();
        assert_eq!(Footer::decode(frame.payload).unwrap(), footer);
        let trailer = encode_trailer(5, 4242);
        assert_eq!(decode_trailer(5, &trailer), Some(4242));
        assert_eq!(decode_trailer(6, &trailer), None);
    }

    #[test]
    fn file_names_round_trip() {
        let name = segment_file_name(12, 345);
        assert_eq!(parse_segment_file_name(&name), Some((12, 345)));
        assert_eq!(parse_segment_file_name("junk.wal"), None);
    }
}

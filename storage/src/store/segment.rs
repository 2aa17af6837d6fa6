//! One store segment file in memory: its file, how readers get at its bytes, where the next batch
//! goes, and how many live entries it still holds (what garbage collection reads).
//!
//! The active segment is not mapped. Pages of a file that are mapped into a process make every
//! writeback of them walk the reverse map (`folio_mkclean`), so each `fdatasync` of the active
//! segment would pay for every page a reader or the write path had touched through a map; a
//! profile of one group appending through the store put that at 1.6 % of its time, growing with
//! the segment. So the active segment is read with `pread`, and mapped once it is sealed and no
//! longer written, as [`crate::Wal`] does. The write path never reads the file back: the sizes of
//! the entry frames written to the active segment are kept in memory ([`ActiveFrames`]) until it
//! is sealed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use byteorder::{ByteOrder, LittleEndian};
use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::record::FRAME_HEADER_BYTES;

/// A store segment file.
#[derive(Debug)]
pub(crate) struct StoreSegment {
    pub seq: u64,
    pub path: PathBuf,
    /// Shared with a sync leader, which syncs it outside the store's lock, and with readers of
    /// the active segment.
    pub file: Arc<File>,
    /// The whole file, mapped once it is sealed (see the module docs). Shared with readers,
    /// which read outside the store's lock.
    pub map: Option<Arc<Mmap>>,
    /// The active segment's entry frames: where each is and how large.
    pub frames: ActiveFrames,
    pub file_len: u64,
    /// Where the next batch goes (active), or the footer's offset (sealed).
    pub write_offset: u64,
    /// End of the checkpoint batch every segment starts with.
    pub checkpoint_end: u64,
    pub sealed: bool,
    /// Live entry frames stored here, and their bytes.
    pub live_entries: u64,
    pub live_bytes: u64,
    /// Entry frames ever written here (bounds the footer).
    pub entries_written: u64,
    /// Chunks ever started here (bounds the footer's runs).
    pub runs_started: u64,
    /// The write (its number) whose record left this sealed segment without live entries: once
    /// that write is durable, the file can go.
    pub dead_since: Option<u64>,
}

impl StoreSegment {
    /// Size of the entry frame at `offset`: from the in-memory table while the segment is active,
    /// else from the frame's header in the map (the frame was verified when written or
    /// recovered).
    pub fn frame_bytes_at(&self, offset: u32) -> u64 {
        match &self.map {
            Some(map) => {
                let start = offset as u64;
                let header = committed_bytes(map, start, start + FRAME_HEADER_BYTES as u64);
                FRAME_HEADER_BYTES as u64 + LittleEndian::read_u32(&header[4..8]) as u64
            }
            None => self.frames.bytes_at(offset).unwrap_or_else(|| {
                panic!(
                    "no entry frame at offset {offset} of the active segment {}",
                    self.path.display()
                )
            }),
        }
    }

    /// How a reader gets at this segment's bytes.
    pub fn source(&self) -> SegmentSource {
        match &self.map {
            Some(map) => SegmentSource::Mapped(Arc::clone(map)),
            None => SegmentSource::File(Arc::clone(&self.file)),
        }
    }

    /// True when nothing but the store refers to the file: it may be recycled (a reader that
    /// still held it would read another segment's bytes).
    pub fn unshared(&self) -> bool {
        Arc::strong_count(&self.file) == 1
            && self
                .map
                .as_ref()
                .is_none_or(|map| Arc::strong_count(map) == 1)
    }

    /// Maps the segment for reads, once it is sealed (or at open, for a sealed one), and drops
    /// the active-frame table, which the map replaces.
    pub fn map_sealed(&mut self) -> Result<()> {
        self.map = Some(Arc::new(map_segment(&self.file, &self.path)?));
        self.frames = ActiveFrames::default();
        Ok(())
    }
}

/// Where the entry frames written to the active segment are, and their sizes, in offset order:
/// 8 bytes per frame, freed when the segment is sealed. What lets the write path, truncation and
/// the footer know a frame's size without reading the unmapped file back.
#[derive(Debug, Default)]
pub(crate) struct ActiveFrames {
    offsets: Vec<u32>,
    bytes: Vec<u32>,
}

impl ActiveFrames {
    /// Notes the frame at `offset` of `bytes` bytes. Frames are written in offset order; one
    /// already noted is not noted again.
    pub fn note(&mut self, offset: u32, bytes: u64) {
        let bytes = u32::try_from(bytes).expect("a frame inside a segment is under 4 GiB");
        match self.offsets.last() {
            Some(last) if *last >= offset => {
                let slot = self.offsets.partition_point(|o| *o < offset);
                if self.offsets.get(slot) != Some(&offset) {
                    self.offsets.insert(slot, offset);
                    self.bytes.insert(slot, bytes);
                }
            }
            _ => {
                self.offsets.push(offset);
                self.bytes.push(bytes);
            }
        }
    }

    /// Size of the frame noted at `offset`.
    pub fn bytes_at(&self, offset: u32) -> Option<u64> {
        let slot = self.offsets.binary_search(&offset).ok()?;
        Some(self.bytes[slot] as u64)
    }

    /// Memory the table holds.
    pub fn memory_bytes(&self) -> usize {
        (self.offsets.capacity() + self.bytes.capacity()) * 4
    }
}

/// A segment's bytes as a reader holds them outside the store's lock.
#[derive(Debug, Clone)]
pub(crate) enum SegmentSource {
    /// A sealed segment's map: reads borrow from it.
    Mapped(Arc<Mmap>),
    /// The active segment's file: reads copy with `pread`.
    File(Arc<File>),
}

/// Bytes a read of the active segment asks for past the last frame's header, so that most
/// frames come in one `pread`.
const READ_AHEAD_BYTES: u64 = 4096;

/// Largest span of the active segment one `pread` covers: a group's frames interleaved with many
/// others' are read in several windows rather than as one huge copy.
const READ_WINDOW_BYTES: u64 = 1 << 20;

impl SegmentSource {
    /// Calls `visit(slot, bytes)` for each offset in `offsets` (increasing), with the segment's
    /// bytes from that offset on: at least the whole frame there, if it lies before
    /// `committed_end`.
    pub fn visit_frames(
        &self,
        path: &Path,
        offsets: &[u32],
        committed_end: u64,
        visit: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        match self {
            SegmentSource::Mapped(map) => {
                for (slot, offset) in offsets.iter().enumerate() {
                    // Past the records (a broken index): nothing, which the caller reports.
                    let from = (*offset as u64).min(committed_end);
                    visit(slot, committed_bytes(map, from, committed_end))?;
                }
                Ok(())
            }
            SegmentSource::File(file) => {
                let mut buffer = Vec::new();
                let mut first = 0;
                // Bounded: each window takes at least one offset.
                while first < offsets.len() {
                    let start = offsets[first] as u64;
                    let mut end_slot = first + 1;
                    while end_slot < offsets.len()
                        && (offsets[end_slot] as u64) < start + READ_WINDOW_BYTES
                    {
                        end_slot += 1;
                    }
                    let last = offsets[end_slot - 1] as u64;
                    read_window(file, path, start, last, committed_end, &mut buffer)?;
                    for (slot, offset) in offsets.iter().enumerate().take(end_slot).skip(first) {
                        let at = (*offset as u64 - start) as usize;
                        visit(slot, buffer.get(at..).unwrap_or(&[]))?;
                    }
                    first = end_slot;
                }
                Ok(())
            }
        }
    }
}

/// Reads bytes `start..` of the file into `buffer`, through the whole frame at `last` (as far as
/// `committed_end`): every frame from `start` to `last` is then in the buffer.
fn read_window(
    file: &File,
    path: &Path,
    start: u64,
    last: u64,
    committed_end: u64,
    buffer: &mut Vec<u8>,
) -> Result<()> {
    let read = |buffer: &mut Vec<u8>, from: u64, to: u64| {
        let old = buffer.len();
        buffer.resize(old + (to - from) as usize, 0);
        file.read_exact_at(&mut buffer[old..], from)
            .map_err(|e| Error::io("read", path, e))
    };
    buffer.clear();
    let guess_end = (last + FRAME_HEADER_BYTES as u64 + READ_AHEAD_BYTES).min(committed_end);
    if guess_end <= start {
        return Ok(());
    }
    read(buffer, start, guess_end)?;
    let header_at = (last - start) as usize;
    if let Some(header) = buffer.get(header_at..header_at + FRAME_HEADER_BYTES) {
        let frame_end =
            last + FRAME_HEADER_BYTES as u64 + LittleEndian::read_u32(&header[4..8]) as u64;
        let frame_end = frame_end.min(committed_end);
        if frame_end > guess_end {
            read(buffer, guess_end, frame_end)?;
        }
    }
    Ok(())
}

/// Maps a segment file read-only.
pub(crate) fn map_segment(file: &File, path: &Path) -> Result<Mmap> {
    // SAFETY: the map is read-only, and only sealed segments are mapped: the store never writes
    // a sealed segment again, and recycles its file only when no reader holds its map or file
    // (`StoreSegment::unshared`). At open, the active segment is mapped for the scan alone and
    // unmapped before anything is written. Another process modifying the file is outside the
    // contract (the directory is owned by one store), and every read still verifies checksums.
    unsafe { Mmap::map(file) }.map_err(|e| Error::io("mmap", path, e))
}

/// Bytes `from..to` of a segment map. The store hands out only bytes of complete batches, which
/// are never written again while the file is a segment.
pub(crate) fn committed_bytes(map: &Mmap, from: u64, to: u64) -> &[u8] {
    assert!(from <= to, "byte range {from}..{to} is reversed");
    assert!(
        to <= map.len() as u64,
        "byte range {from}..{to} runs past the map's {} bytes",
        map.len()
    );
    &map[from as usize..to as usize]
}

//! One store segment file in memory: its file, its read-only map, where the next batch goes, and
//! how many live entries it still holds (what garbage collection reads).

use std::fs::File;
use std::path::PathBuf;
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
    /// Shared with a sync leader, which syncs it outside the store's lock.
    pub file: Arc<File>,
    /// The whole file, mapped once. Shared with readers, which read outside the store's lock.
    pub map: Arc<Mmap>,
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
    /// Size of the entry frame at `offset` (read from its header; the frame was verified when
    /// written or recovered).
    pub fn frame_bytes_at(&self, offset: u32) -> u64 {
        let start = offset as u64;
        let header = committed_bytes(&self.map, start, start + FRAME_HEADER_BYTES as u64);
        FRAME_HEADER_BYTES as u64 + LittleEndian::read_u32(&header[4..8]) as u64
    }
}

/// Maps a segment file read-only.
pub(crate) fn map_segment(file: &File, path: &std::path::Path) -> Result<Mmap> {
    // SAFETY: the map is read-only. The store writes the file only through the file descriptor
    // (pwrite), and only beyond the bytes any reader is handed (see `committed_bytes`); Linux
    // keeps the page cache coherent between the two. A freed file is recycled only when no
    // reader holds its map. Another process modifying the file is outside the contract (the
    // directory is owned by one store), and every read still verifies checksums.
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
    // SAFETY: in bounds (checked above) of a live map; the bytes are those of complete batches,
    // written before the store's lock was released to the caller and never rewritten while this
    // map is alive (see `map_segment`). Only this range is borrowed, not the whole map, whose
    // later bytes the writer may be filling meanwhile.
    unsafe { std::slice::from_raw_parts(map.as_ptr().add(from as usize), (to - from) as usize) }
}

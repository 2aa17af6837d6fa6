//! Moving a snapshot's on-disk bytes between nodes unchanged (Raft InstallSnapshot in chunks).
//!
//! The sender never decompresses; the receiver checks everything before the file gets a
//! snapshot name, so a transfer cut short or damaged on the way never becomes visible.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::catalog::Shared;
use super::reader::{self, SnapshotReader};
use super::SnapshotMeta;
use crate::error::{Error, Result};
use crate::files::TempFile;

/// A finished snapshot's on-disk bytes, for sending in chunks at any offset.
#[derive(Debug)]
pub struct RawSnapshotFile {
    file: File,
    meta: SnapshotMeta,
    len_bytes: u64,
}

impl RawSnapshotFile {
    pub(super) fn open(meta: &SnapshotMeta) -> Result<RawSnapshotFile> {
        let path = &meta.path;
        // The header check also pins the length: the receiver will insist on the same.
        let (file, header) = reader::open_file(path)?;
        let len_bytes = header.len_bytes() + header.compressed_bytes;
        if (header.index, header.term, header.checksum) != (meta.index, meta.term, meta.checksum) {
            return Err(Error::corruption(
                path,
                16,
                None,
                format!(
                    "expected the snapshot at index {} term {}, the file holds index {} term {}",
                    meta.index, meta.term, header.index, header.term
                ),
            ));
        }
        Ok(RawSnapshotFile {
            file,
            meta: SnapshotMeta::from_header(header, path.clone()),
            len_bytes,
        })
    }

    /// Total bytes to send.
    pub fn len(&self) -> u64 {
        self.len_bytes
    }

    /// True if there is nothing to send (never, for a valid snapshot: the header alone is 64
    /// bytes).
    pub fn is_empty(&self) -> bool {
        self.len_bytes == 0
    }

    /// The snapshot being sent.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Copies bytes starting at `offset` into `buf`; returns how many, filling `buf` unless the
    /// end of the file comes first (0 at or past the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= self.len_bytes {
            return Ok(0);
        }
        let available = self.len_bytes - offset;
        let want = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let mut filled = 0usize;
        // Bounded: each pass either advances or stops.
        while filled < want {
            match self
                .file
                .read_at(&mut buf[filled..want], offset + filled as u64)
            {
                Ok(0) => {
                    return Err(Error::corruption(
                        &self.meta.path,
                        offset + filled as u64,
                        None,
                        format!(
                            "file ends before its declared length of {} bytes: it was truncated \
                             while being sent",
                            self.len_bytes
                        ),
                    ));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read snapshot", &self.meta.path, e)),
            }
        }
        Ok(filled)
    }
}

/// A snapshot arriving from a peer, written to a temp file until [`finish`](Self::finish)
/// verifies and installs it. Dropping it unfinished deletes the temp file.
///
/// Writes may repeat bytes already received (retransmitted chunks) but may not leave a gap:
/// an offset past [`received_bytes`](Self::received_bytes) is refused, so holes never read as
/// zeros.
#[derive(Debug)]
pub struct RawSnapshotReceiver {
    shared: Arc<Shared>,
    temp: TempFile,
    file: File,
    expected_len_bytes: Option<u64>,
    received_bytes: u64,
}

impl RawSnapshotReceiver {
    pub(super) fn new(
        shared: Arc<Shared>,
        temp: TempFile,
        file: File,
        expected_len_bytes: Option<u64>,
    ) -> RawSnapshotReceiver {
        RawSnapshotReceiver {
            shared,
            temp,
            file,
            expected_len_bytes,
            received_bytes: 0,
        }
    }

    /// Bytes received so far, counted from the start without gaps: the offset of the next
    /// chunk to ask for.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes
    }

    /// Writes `bytes` at `offset`, which must not be past [`received_bytes`](Self::received_bytes)
    /// nor, with an expected length, run past it.
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        if offset > self.received_bytes {
            return Err(Error::misuse(format!(
                "snapshot chunk at offset {offset} leaves a gap: only {} bytes were received",
                self.received_bytes
            )));
        }
        let end = offset.checked_add(bytes.len() as u64).ok_or_else(|| {
            Error::misuse(format!("snapshot chunk at offset {offset} overflows u64"))
        })?;
        if let Some(expected) = self.expected_len_bytes {
            if end > expected {
                return Err(Error::misuse(format!(
                    "snapshot chunk ending at {end} runs past the expected length of {expected} bytes"
                )));
            }
        }
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| Error::io("write received snapshot", self.temp.path(), e))?;
        self.received_bytes = self.received_bytes.max(end);
        Ok(())
    }

    /// Writes `bytes` right after everything received so far.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_at(self.received_bytes, bytes)
    }

    /// Checks the received file completely (header, length, a full decompression pass against
    /// the content checksum), `fdatasync`s it, renames it to its snapshot name, `fsync`s the
    /// directory and applies retention. On any failure the temp file is deleted; corruption is
    /// reported against the temp file's path.
    pub fn finish(self) -> Result<SnapshotMeta> {
        if let Some(expected) = self.expected_len_bytes {
            if self.received_bytes != expected {
                return Err(Error::misuse(format!(
                    "snapshot transfer incomplete: {} of {expected} bytes received",
                    self.received_bytes
                )));
            }
        }
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync received snapshot", self.temp.path(), e))?;
        drop(self.file);
        let mut reader = SnapshotReader::open(self.temp.path())?;
        reader.verify_rest()?;
        let meta = reader.meta().clone();
        drop(reader);
        self.shared.install(self.temp, meta)
    }
}

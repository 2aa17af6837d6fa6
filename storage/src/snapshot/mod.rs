//! zstd-compressed snapshot files, installed atomically, with retention and raw transfer.
//!
//! A snapshot is the state machine's state up to and including a log index. Storage treats its
//! content as an opaque byte stream: the state machine writes it through a [`SnapshotWriter`]
//! (an [`std::io::Write`]) and reads it back through a [`SnapshotReader`] (an [`std::io::Read`]).
//! Nothing is ever held whole in memory: writing, reading, verifying and receiving all stream.
//!
//! ```
//! use std::io::{Read, Write};
//! use ketch_storage::snapshot::{SnapshotOptions, SnapshotStore};
//! # fn main() -> ketch_storage::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = SnapshotStore::open(dir.path(), SnapshotOptions::default())?;
//! let mut writer = store.begin(100, 3, b"voters=1,2,3")?;
//! writer.write_all(b"user:000001=alice\n").unwrap();
//! let meta = writer.finish()?; // durable and visible now
//! let mut content = Vec::new();
//! store.open_reader(&meta)?.read_to_end(&mut content).unwrap(); // verified at end of stream
//! assert_eq!(content, b"user:000001=alice\n");
//! assert_eq!(store.latest().unwrap().index, 100);
//! # Ok(()) }
//! ```
//!
//! # Files in the data directory
//!
//! The snapshot store shares its directory with the write-ahead log. It only ever touches:
//! - `snap-{index:020}-{term:020}.snap`: a finished snapshot whose last included entry is
//!   `index` at `term`. Zero padding makes names sort like `(index, term)`.
//! - `snap-*.snap.tmp`: a snapshot being written or received. It becomes a `.snap` only by an
//!   atomic rename after its content and final header are durable, so a finished name is never
//!   half-written. [`SnapshotStore::open`] deletes leftover temp files. One store per directory:
//!   a second store opened on the same directory would delete the first one's temp files.
//!
//! # File format, version 1
//!
//! All integers are little-endian. `M` is the membership length.
//!
//! | offset   | size | field                                                                |
//! |----------|------|----------------------------------------------------------------------|
//! | 0        | 8    | magic, ASCII `KETCHSNP`                                              |
//! | 8        | 4    | format version, u32 = 1                                              |
//! | 12       | 4    | compression algorithm, u32: 1 = zstd (the only one defined)          |
//! | 16       | 8    | last included log index, u64                                         |
//! | 24       | 8    | term of that entry, u64                                              |
//! | 32       | 4    | membership length `M`, u32, at most 64 MiB                           |
//! | 36       | M    | membership: the cluster configuration, opaque to storage             |
//! | 36+M     | 8    | uncompressed content size in bytes, u64                              |
//! | 44+M     | 8    | compressed size in bytes, u64: the length of the zstd stream         |
//! | 52+M     | 4    | crc32 (crc32fast, IEEE) of the uncompressed content                  |
//! | 56+M     | 4    | crc32 of the compressed stream (the `C` bytes from `64+M`)           |
//! | 60+M     | 4    | crc32 of header bytes `[0, 60+M)`                                    |
//! | 64+M     | C    | the zstd stream (one or more frames), exactly `C` = compressed size  |
//!
//! The file is exactly `64 + M + C` bytes long; anything else is corruption (truncated or
//! extended). The content crc is what proves the state is intact; the stream crc makes every
//! damaged byte of the file detectable, including bytes zstd would decode identically anyway
//! (a frame's window descriptor, for instance), so a raw copy is checked byte for byte.
//!
//! Sizes and checksums are known only at the end, so the writer first writes the header as
//! zeros (whose header crc cannot match), streams the compressed content after it, and then
//! rewrites the header in place. The order of durable steps is: zero header, content, final
//! header, `fdatasync`, rename to the final name, `fsync` of the directory, then retention
//! (delete, `fsync` of the directory). A crash before the rename leaves only a temp file; after
//! the directory `fsync`, the snapshot survives.
//!
//! # Verification
//!
//! - The header is checked field by field (magic, version, algorithm, membership cap, header
//!   crc, file length) whenever a file is listed, opened or verified.
//! - The content is checked while it streams: a [`SnapshotReader`] counts and checksums the
//!   decompressed and the compressed bytes and, at end of stream, compares them with the
//!   header. A mismatch, a zstd decoding error or more content than declared is an
//!   [`io::Error`] of kind `InvalidData` that wraps an [`Error::Corruption`] naming the file and
//!   an offset; [`storage_error`] takes the typed error back out. A caller that stops reading
//!   before the end has not had the content verified: [`SnapshotReader::finish`] reads the rest
//!   and verifies.
//! - [`verify_file`] and [`SnapshotStore::open_latest_valid`] run a whole decompression pass
//!   (so `open_latest_valid` reads a snapshot twice: once to verify, once for the caller).
//!
//! # Raw transfer (Raft InstallSnapshot)
//!
//! A leader sends the on-disk bytes as they are ([`SnapshotStore::open_raw`], then
//! [`RawSnapshotFile::read_at`] in chunks); a follower writes them to a temp file
//! ([`SnapshotStore::begin_receive`], [`RawSnapshotReceiver::write_at`]), and
//! [`RawSnapshotReceiver::finish`] checks the header, runs a full decompression pass to verify
//! the content checksum, and installs the file exactly like a locally written snapshot.
//!
//! # Retention
//!
//! At open and after each install, the newest [`SnapshotOptions::retain`] snapshots (by `(index, term)`,
//! among those whose header is valid) are kept; every snapshot file older than the oldest kept
//! one is deleted, including files with damaged headers. Damaged files newer than that are left
//! for an operator to look at. A snapshot whose install would make it older than all retained
//! ones is discarded and its install reports [`Error::Misuse`].

mod catalog;
mod format;
mod reader;
mod store;
mod transfer;
mod writer;

use std::io;
use std::path::{Path, PathBuf};

pub use format::{FORMAT_VERSION, MEMBERSHIP_MAX_BYTES};
pub use reader::SnapshotReader;
pub use store::SnapshotStore;
pub use transfer::{RawSnapshotFile, RawSnapshotReceiver};
pub use writer::SnapshotWriter;

use crate::error::{Error, Result};

/// What a finished snapshot file says about itself, from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Last log index included in the snapshot.
    pub index: u64,
    /// Term of the entry at `index`.
    pub term: u64,
    /// Cluster membership as of `index`, opaque to storage.
    pub membership: Vec<u8>,
    /// Size of the content before compression.
    pub uncompressed_bytes: u64,
    /// Size of the zstd stream on disk (the file is this plus the header).
    pub compressed_bytes: u64,
    /// crc32 of the uncompressed content.
    pub checksum: u32,
    /// crc32 of the compressed stream as stored on disk.
    pub stream_checksum: u32,
    /// Where the file is.
    pub path: PathBuf,
}

impl SnapshotMeta {
    fn from_header(header: format::Header, path: PathBuf) -> SnapshotMeta {
        SnapshotMeta {
            index: header.index,
            term: header.term,
            membership: header.membership,
            uncompressed_bytes: header.uncompressed_bytes,
            compressed_bytes: header.compressed_bytes,
            checksum: header.checksum,
            stream_checksum: header.stream_checksum,
            path,
        }
    }

    /// Length of the file on disk: header plus compressed stream.
    pub fn file_len_bytes(&self) -> u64 {
        format::header_len_bytes(self.membership.len()) + self.compressed_bytes
    }

    /// Ratio of uncompressed to compressed size (1.0 for an empty stream).
    pub fn compression_ratio(&self) -> f64 {
        if self.compressed_bytes == 0 {
            return 1.0;
        }
        self.uncompressed_bytes as f64 / self.compressed_bytes as f64
    }
}

/// How snapshots are written and how many are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// zstd compression level (1 = fastest; level 3 compressed key-value data no better on the
    /// measured machine, and more slowly).
    pub compression_level: i32,
    /// How many snapshots to keep, newest first; at least 1.
    pub retain: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            compression_level: 1,
            retain: 2,
        }
    }
}

impl SnapshotOptions {
    fn validate(&self) -> Result<()> {
        if self.retain == 0 {
            return Err(Error::misuse(
                "SnapshotOptions::retain must be at least 1: keeping no snapshot would delete \
                 each one as it is installed",
            ));
        }
        let levels = zstd::compression_level_range();
        if !levels.contains(&self.compression_level) {
            return Err(Error::misuse(format!(
                "zstd compression level {} is outside {}..={}",
                self.compression_level,
                levels.start(),
                levels.end()
            )));
        }
        Ok(())
    }
}

/// Reads and checks a snapshot file completely: header, length, a full decompression pass, the
/// content size and checksum, and, when the file has a snapshot name, that the name matches the
/// header. Memory use is bounded whatever the file's size.
pub fn verify_file(path: impl AsRef<Path>) -> Result<SnapshotMeta> {
    let path = path.as_ref();
    let mut reader = SnapshotReader::open(path)?;
    if let Some((index, term)) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(format::parse_file_name)
    {
        let meta = reader.meta();
        if (meta.index, meta.term) != (index, term) {
            return Err(Error::corruption(
                path,
                16,
                None,
                format!(
                    "file name says index {index} term {term} but the header says index {} term {}",
                    meta.index, meta.term
                ),
            ));
        }
    }
    reader.verify_rest()?;
    Ok(reader.meta().clone())
}

/// Takes the typed error back out of an [`io::Error`] returned by a [`SnapshotReader`] or
/// [`SnapshotWriter`]; any other I/O error becomes [`Error::Io`] with `op` and `path`.
pub fn storage_error(err: io::Error, op: &'static str, path: &Path) -> Error {
    if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        let inner = err
            .into_inner()
            .expect("checked above that it wraps an error");
        return *inner
            .downcast::<Error>()
            .expect("checked above that it is a storage error");
    }
    Error::io(op, path, err)
}

/// Wraps a storage error so it can travel through [`io::Read`] and [`io::Write`].
fn into_io_error(err: Error) -> io::Error {
    let kind = match &err {
        Error::Corruption { .. } => io::ErrorKind::InvalidData,
        Error::Io { source, .. } => source.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_error_round_trips_through_io_error() {
        let original = Error::corruption("a.snap", 9, None, "bad");
        let io_err = into_io_error(original);
        assert_eq!(io_err.kind(), io::ErrorKind::InvalidData);
        let back = storage_error(io_err, "read", Path::new("b"));
        assert!(
            matches!(back, Error::Corruption { offset: 9, ref path, .. } if path == Path::new("a.snap"))
        );
        let plain = io::Error::new(io::ErrorKind::PermissionDenied, "no");
        assert!(matches!(
            storage_error(plain, "read", Path::new("b")),
            Error::Io { op: "read", .. }
        ));
    }

    #[test]
    fn handles_can_move_between_threads() {
        fn sendable<T: Send>() {}
        fn shareable<T: Send + Sync>() {}
        shareable::<SnapshotStore>();
        sendable::<SnapshotWriter>();
        sendable::<SnapshotReader>();
        shareable::<RawSnapshotFile>();
        sendable::<RawSnapshotReceiver>();
    }

    #[test]
    fn options_are_validated() {
        assert!(SnapshotOptions::default().validate().is_ok());
        let no_retain = SnapshotOptions {
            retain: 0,
            ..SnapshotOptions::default()
        };
        assert!(matches!(no_retain.validate(), Err(Error::Misuse { .. })));
        let bad_level = SnapshotOptions {
            compression_level: 1000,
            ..SnapshotOptions::default()
        };
        assert!(matches!(bad_level.validate(), Err(Error::Misuse { .. })));
    }
}

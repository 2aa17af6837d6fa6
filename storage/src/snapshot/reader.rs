//! Streaming a snapshot back: decompress, count, checksum, and verify at end of stream.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::format::Header;
use super::{into_io_error, storage_error, SnapshotMeta};
use crate::error::{Error, Result};

/// Compressed bytes pulled from the file per read: large enough for sequential throughput,
/// small enough to keep a reader's memory to a few hundred KiB plus zstd's window.
const COMPRESSED_BUFFER_BYTES: usize = 128 << 10;

/// Decompressed bytes per step when verifying without a caller's buffer.
const VERIFY_BUFFER_BYTES: usize = 128 << 10;

/// The decompressed content of a snapshot, as an [`std::io::Read`].
///
/// Checks as it goes that the content is no longer than the header declares, and at end of
/// stream that its size and crc32 match the header. A failed check is an `InvalidData`
/// [`io::Error`] wrapping [`Error::Corruption`] (see [`storage_error`]); every read after a
/// failure fails the same way. Memory: a 128 KiB input buffer plus zstd's decoder state, whose
/// window is capped by zstd's default limit (128 MiB; snapshots written at levels 1-3 use 1 MiB
/// or less).
pub struct SnapshotReader {
    meta: SnapshotMeta,
    header_len_bytes: u64,
    decoder: zstd::stream::read::Decoder<'static, BufReader<CompressedSource>>,
    hasher: crc32fast::Hasher,
    produced_bytes: u64,
    state: ReadState,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("meta", &self.meta)
            .field("produced_bytes", &self.produced_bytes)
            .field("state", &self.state)
            .finish()
    }
}

#[derive(Debug)]
enum ReadState {
    Streaming,
    /// End of stream reached and every check passed.
    Verified,
    Failed(Failure),
}

/// A failure remembered so later reads report it again (`io::Error` is not `Clone`).
#[derive(Debug, Clone)]
enum Failure {
    Corruption {
        offset: u64,
        reason: String,
    },
    Io {
        kind: io::ErrorKind,
        message: String,
    },
}

impl Failure {
    fn to_error(&self, path: &Path) -> Error {
        match self {
            Failure::Corruption { offset, reason } => {
                Error::corruption(path, *offset, None, reason.clone())
            }
            Failure::Io { kind, message } => Error::io(
                "read snapshot",
                path,
                io::Error::new(*kind, message.clone()),
            ),
        }
    }
}

/// The file's zstd stream, limited to the compressed length the header declares, remembering
/// whether a failure came from the disk (I/O) rather than from zstd (corruption).
struct CompressedSource {
    file: File,
    remaining_bytes: u64,
    pulled_bytes: u64,
    hasher: crc32fast::Hasher,
    io_failed: bool,
}

impl Read for CompressedSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining_bytes == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining_bytes).unwrap_or(usize::MAX));
        match self.file.read(&mut buf[..want]) {
            Ok(n) => {
                debug_assert!(n <= want);
                self.remaining_bytes -= n as u64;
                self.pulled_bytes += n as u64;
                self.hasher.update(&buf[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.io_failed = true;
                Err(e)
            }
        }
    }
}

/// Opens a snapshot file and reads its header; the file is left positioned at the zstd stream.
pub(super) fn open_file(path: &Path) -> Result<(File, Header)> {
    let mut file = File::open(path).map_err(|e| Error::io("open snapshot", path, e))?;
    let metadata = file
        .metadata()
        .map_err(|e| Error::io("stat snapshot", path, e))?;
    if !metadata.is_file() {
        return Err(Error::io(
            "open snapshot",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let header = Header::decode(&mut file, metadata.len(), path)?;
    Ok((file, header))
}

impl SnapshotReader {
    /// Opens the snapshot file at `path` and checks its header and length.
    pub fn open(path: impl AsRef<Path>) -> Result<SnapshotReader> {
        let path = path.as_ref();
        let (file, header) = open_file(path)?;
        let header_len_bytes = header.len_bytes();
        let source = CompressedSource {
            file,
            remaining_bytes: header.compressed_bytes,
            pulled_bytes: 0,
            hasher: crc32fast::Hasher::new(),
            io_failed: false,
        };
        let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
            COMPRESSED_BUFFER_BYTES,
            source,
        ))
        .map_err(|e| Error::io("start zstd decoder", path, e))?;
        Ok(SnapshotReader {
            meta: SnapshotMeta::from_header(header, path.to_path_buf()),
            header_len_bytes,
            decoder,
            hasher: crc32fast::Hasher::new(),
            produced_bytes: 0,
            state: ReadState::Streaming,
        })
    }

    /// The snapshot's header fields and path.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Content bytes returned so far.
    pub fn produced_bytes(&self) -> u64 {
        self.produced_bytes
    }

    /// Reads and discards whatever content is left, then verifies the whole content's size and
    /// checksum. Call it after restoring from a prefix of the stream, or to check a snapshot.
    pub fn finish(mut self) -> Result<SnapshotMeta> {
        self.verify_rest()?;
        Ok(self.meta)
    }

    pub(super) fn verify_rest(&mut self) -> Result<()> {
        let mut sink = vec![0u8; VERIFY_BUFFER_BYTES];
        loop {
            match self.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(storage_error(e, "read snapshot", &self.meta.path)),
            }
        }
    }

    fn path(&self) -> PathBuf {
        self.meta.path.clone()
    }

    /// Byte offset in the file up to which compressed input has been consumed (an upper bound:
    /// zstd reads ahead).
    fn compressed_offset(&self) -> u64 {
        self.header_len_bytes + self.decoder.get_ref().get_ref().pulled_bytes
    }

    fn fail(&mut self, failure: Failure) -> io::Error {
        let err = into_io_error(failure.to_error(&self.meta.path));
        self.state = ReadState::Failed(failure);
        err
    }

    /// All content is out: it must be exactly what the header declared.
    fn check_end(&mut self) -> io::Result<()> {
        let source = self.decoder.get_ref();
        let unread_bytes = source.get_ref().remaining_bytes + source.buffer().len() as u64;
        if unread_bytes != 0 {
            let offset = self.compressed_offset();
            return Err(self.fail(Failure::Corruption {
                offset,
                reason: format!(
                    "the zstd stream ends {unread_bytes} bytes before the end of the file"
                ),
            }));
        }
        let stream_checksum = source.get_ref().hasher.clone().finalize();
        if stream_checksum != self.meta.stream_checksum {
            let offset = self.header_len_bytes;
            return Err(self.fail(Failure::Corruption {
                offset,
                reason: format!(
                    "compressed stream checksum mismatch (header {:#010x}, stream \
                     {stream_checksum:#010x}): bytes after the header are damaged",
                    self.meta.stream_checksum
                ),
            }));
        }
        if self.produced_bytes != self.meta.uncompressed_bytes {
            let offset = self.header_len_bytes;
            return Err(self.fail(Failure::Corruption {
                offset,
                reason: format!(
                    "content is {} bytes but the header declares {}: the stream is damaged",
                    self.produced_bytes, self.meta.uncompressed_bytes
                ),
            }));
        }
        let computed = self.hasher.clone().finalize();
        if computed != self.meta.checksum {
            let offset = self.header_len_bytes;
            return Err(self.fail(Failure::Corruption {
                offset,
                reason: format!(
                    "content checksum mismatch (header {:#010x}, content {computed:#010x}): the \
                     compressed stream is damaged",
                    self.meta.checksum
                ),
            }));
        }
        self.state = ReadState::Verified;
        Ok(())
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.state {
            ReadState::Streaming => {}
            ReadState::Verified => return Ok(0),
            ReadState::Failed(failure) => {
                return Err(into_io_error(failure.to_error(&self.path())));
            }
        }
        if buf.is_empty() {
            return Ok(0);
        }
        match self.decoder.read(buf) {
            Ok(0) => {
                self.check_end()?;
                Ok(0)
            }
            Ok(n) => {
                self.produced_bytes += n as u64;
                if self.produced_bytes > self.meta.uncompressed_bytes {
                    let offset = self.compressed_offset();
                    let declared = self.meta.uncompressed_bytes;
                    return Err(self.fail(Failure::Corruption {
                        offset,
                        reason: format!(
                            "content runs past the {declared} bytes the header declares: the \
                             stream or the header is damaged"
                        ),
                    }));
                }
                self.hasher.update(&buf[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let failure = if self.decoder.get_ref().get_ref().io_failed {
                    Failure::Io {
                        kind: e.kind(),
                        message: e.to_string(),
                    }
                } else {
                    Failure::Corruption {
                        offset: self.compressed_offset(),
                        reason: format!("the zstd stream cannot be decoded: {e}"),
                    }
                };
                Err(self.fail(failure))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::snapshot::{SnapshotOptions, SnapshotStore};

    /// A valid snapshot of `content`, then its header rewritten by `edit` with a correct header
    /// crc, so only the end-of-stream checks can notice the lie.
    fn snapshot_with_header(
        content: &[u8],
        edit: impl FnOnce(&mut Header),
    ) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
        let mut writer = store.begin(3, 1, b"m").unwrap();
        writer.write_all(content).unwrap();
        let meta = writer.finish().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&meta.path)
            .unwrap();
        let len = file.metadata().unwrap().len();
        let mut header = Header::decode(&mut &file, len, &meta.path).unwrap();
        edit(&mut header);
        file.write_all_at(&header.encode(), 0).unwrap();
        (dir, meta.path)
    }

    fn read_failure(path: &Path) -> (u64, String) {
        let mut content = Vec::new();
        let mut reader = SnapshotReader::open(path).unwrap();
        let err = reader.read_to_end(&mut content).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Later reads report the same failure instead of pretending the stream ended.
        let again = reader.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(again.to_string(), err.to_string());
        match storage_error(err, "read", Path::new("?")) {
            Error::Corruption {
                path: p,
                offset,
                reason,
                ..
            } => {
                assert_eq!(p, path);
                (offset, reason)
            }
            other => panic!("expected corruption, got {other}"),
        }
    }

    const CONTENT: &[u8] = b"user:000001\t{\"name\":\"alice\"}\nuser:000002\t{\"name\":\"bob\"}\n";

    #[test]
    fn content_longer_than_declared_is_caught_while_streaming() {
        let (_dir, path) = snapshot_with_header(CONTENT, |h| h.uncompressed_bytes -= 1);
        let (_, reason) = read_failure(&path);
        assert!(reason.contains("runs past"), "{reason}");
    }

    #[test]
    fn content_shorter_than_declared_is_caught_at_the_end() {
        let (_dir, path) = snapshot_with_header(CONTENT, |h| h.uncompressed_bytes += 1);
        let (offset, reason) = read_failure(&path);
        assert!(reason.contains("header declares"), "{reason}");
        assert_eq!(offset, 64 + 1, "the start of the stream");
    }

    #[test]
    fn content_checksum_mismatch_is_caught_at_the_end() {
        let (_dir, path) = snapshot_with_header(CONTENT, |h| h.checksum ^= 1);
        let (_, reason) = read_failure(&path);
        assert!(reason.contains("content checksum"), "{reason}");
    }

    #[test]
    fn stream_checksum_mismatch_is_caught_at_the_end() {
        let (_dir, path) = snapshot_with_header(CONTENT, |h| h.stream_checksum ^= 1);
        let (_, reason) = read_failure(&path);
        assert!(reason.contains("compressed stream checksum"), "{reason}");
    }

    #[test]
    fn an_untouched_snapshot_reads_back_and_stays_at_end() {
        let (_dir, path) = snapshot_with_header(CONTENT, |_| {});
        let mut reader = SnapshotReader::open(&path).unwrap();
        let mut content = Vec::new();
        reader.read_to_end(&mut content).unwrap();
        assert_eq!(content, CONTENT);
        assert_eq!(reader.read(&mut [0u8; 8]).unwrap(), 0);
        assert_eq!(
            reader.finish().unwrap().uncompressed_bytes,
            CONTENT.len() as u64
        );
    }
}

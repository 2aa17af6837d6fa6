//! Streaming a new snapshot to disk: compress, count, checksum, then install atomically.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::catalog::Shared;
use super::format::{self, Header};
use super::{into_io_error, SnapshotMeta};
use crate::error::{Error, Result};
use crate::files::TempFile;

/// A snapshot being written. Write the content with [`std::io::Write`], then call
/// [`finish`](Self::finish). Memory use is bounded by zstd's buffers whatever the content's size.
/// Dropping the writer without finishing deletes its temp file; nothing becomes visible.
pub struct SnapshotWriter {
    shared: Arc<Shared>,
    /// `None` only after [`finish`](Self::finish) took it.
    encoder: Option<zstd::stream::write::Encoder<'static, StreamSink>>,
    temp: Option<TempFile>,
    index: u64,
    term: u64,
    membership: Vec<u8>,
    hasher: crc32fast::Hasher,
    uncompressed_bytes: u64,
    /// A write failed part way: what reached the file is unknown, so the snapshot is unusable.
    failed: bool,
}

impl std::fmt::Debug for SnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("index", &self.index)
            .field("term", &self.term)
            .field("uncompressed_bytes", &self.uncompressed_bytes)
            .field("temp", &self.temp)
            .field("failed", &self.failed)
            .finish()
    }
}

impl SnapshotWriter {
    /// `file` already holds the zeroed header; the zstd stream starts at its current position.
    pub(super) fn new(
        shared: Arc<Shared>,
        temp: TempFile,
        file: File,
        index: u64,
        term: u64,
        membership: Vec<u8>,
    ) -> Result<SnapshotWriter> {
        let level = shared.compression_level();
        let sink = StreamSink {
            file,
            hasher: crc32fast::Hasher::new(),
            written_bytes: 0,
        };
        let encoder = zstd::stream::write::Encoder::new(sink, level)
            .map_err(|e| Error::io("start zstd encoder", temp.path(), e))?;
        Ok(SnapshotWriter {
            shared,
            encoder: Some(encoder),
            temp: Some(temp),
            index,
            term,
            membership,
            hasher: crc32fast::Hasher::new(),
            uncompressed_bytes: 0,
            failed: false,
        })
    }

    /// Last log index the snapshot includes.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Term of the entry at [`index`](Self::index).
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Content bytes written so far, before compression.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed_bytes
    }

    /// Completes the snapshot: flushes zstd, writes the final header over the zeroed one,
    /// `fdatasync`s, renames the file to its final name, `fsync`s the directory and applies
    /// retention. When this returns `Ok`, the snapshot is durable and listed.
    pub fn finish(mut self) -> Result<SnapshotMeta> {
        let temp = self
            .temp
            .take()
            .expect("finish consumes the writer, so temp is still there");
        if self.failed {
            return Err(Error::misuse(format!(
                "an earlier write to snapshot {} failed; the snapshot is abandoned",
                temp.path().display()
            )));
        }
        let encoder = self.encoder.take().expect("finish consumes the writer");
        let sink = encoder
            .finish()
            .map_err(|e| Error::io("finish zstd stream", temp.path(), e))?;
        let file = sink.file;
        let header_len = format::header_len_bytes(self.membership.len());
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("stat snapshot", temp.path(), e))?
            .len();
        if file_len != header_len + sink.written_bytes {
            return Err(Error::corruption(
                temp.path(),
                file_len.min(header_len + sink.written_bytes),
                None,
                format!(
                    "temp file is {file_len} bytes, expected {header_len} header bytes plus {} \
                     compressed: something else changed it while it was written",
                    sink.written_bytes
                ),
            ));
        }
        let header = Header {
            index: self.index,
            term: self.term,
            membership: std::mem::take(&mut self.membership),
            uncompressed_bytes: self.uncompressed_bytes,
            compressed_bytes: sink.written_bytes,
            checksum: self.hasher.clone().finalize(),
            stream_checksum: sink.hasher.finalize(),
        };
        let header_bytes = header.encode();
        assert_eq!(header_bytes.len() as u64, header_len);
        file.write_all_at(&header_bytes, 0)
            .map_err(|e| Error::io("write snapshot header", temp.path(), e))?;
        file.sync_data()
            .map_err(|e| Error::io("fdatasync snapshot", temp.path(), e))?;
        drop(file);
        let meta = SnapshotMeta::from_header(header, temp.path().to_path_buf());
        self.shared.install(temp, meta)
    }
}

/// The temp file behind the encoder, counting and checksumming the compressed stream.
struct StreamSink {
    file: File,
    hasher: crc32fast::Hasher,
    written_bytes: u64,
}

impl Write for StreamSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.written_bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let path = self
            .temp
            .as_ref()
            .map(|t| t.path().to_path_buf())
            .unwrap_or_default();
        if self.failed {
            return Err(into_io_error(Error::misuse(format!(
                "an earlier write to snapshot {} failed; the snapshot is abandoned",
                path.display()
            ))));
        }
        let encoder = self
            .encoder
            .as_mut()
            .expect("only finish takes the encoder");
        match encoder.write(buf) {
            Ok(accepted) => {
                debug_assert!(accepted <= buf.len());
                self.hasher.update(&buf[..accepted]);
                self.uncompressed_bytes += accepted as u64;
                Ok(accepted)
            }
            // Even EINTR: zstd may have written part of a block, so the stream's state is unknown.
            Err(e) => {
                self.failed = true;
                Err(into_io_error(Error::io("write snapshot", path, e)))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing is durable before finish; flushing zstd early would only cost ratio.
        Ok(())
    }
}

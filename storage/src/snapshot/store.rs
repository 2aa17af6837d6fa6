//! The snapshot store: begin a snapshot or a transfer, list, open, and find the newest valid one.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::catalog::Shared;
use super::format::{self, MEMBERSHIP_MAX_BYTES};
use super::reader::SnapshotReader;
use super::transfer::{RawSnapshotFile, RawSnapshotReceiver};
use super::writer::SnapshotWriter;
use super::{verify_file, SnapshotMeta, SnapshotOptions};
use crate::error::{Error, Result};
use crate::files::TempFile;

/// Distinguishes temp files of concurrent writers and receivers in one process. Temp files of
/// earlier processes are gone: [`SnapshotStore::open`] deletes them.
static TEMP_FILE_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The snapshots in one directory. Cheap to clone; clones share one catalog, so the apply
/// thread can write snapshots while another thread lists and sends them.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    shared: Arc<Shared>,
}

impl SnapshotStore {
    /// Opens the snapshot store in `dir`: creates the directory if needed, deletes leftover
    /// `snap-*.snap.tmp` files (then `fsync`s the directory), reads the header of every
    /// `snap-*.snap` file and applies retention. Files with a damaged header are logged and left
    /// out of [`list`](Self::list).
    pub fn open(dir: impl AsRef<Path>, options: SnapshotOptions) -> Result<SnapshotStore> {
        options.validate()?;
        let shared = Shared::open(dir.as_ref().to_path_buf(), options)?;
        Ok(SnapshotStore {
            shared: Arc::new(shared),
        })
    }

    /// The directory this store manages.
    pub fn dir(&self) -> &Path {
        self.shared.dir()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SnapshotOptions {
        self.shared.options()
    }

    /// Starts writing the snapshot that includes the log up to `index` (at `term`), with the
    /// cluster `membership` as of that index. Write the content through the returned writer,
    /// then call [`SnapshotWriter::finish`]; dropping it unfinished deletes its temp file.
    pub fn begin(&self, index: u64, term: u64, membership: &[u8]) -> Result<SnapshotWriter> {
        if membership.len() > MEMBERSHIP_MAX_BYTES as usize {
            return Err(Error::misuse(format!(
                "membership is {} bytes; snapshots accept at most {MEMBERSHIP_MAX_BYTES}",
                membership.len()
            )));
        }
        let name = format!(
            "snap-{index:020}-{term:020}-w{}.snap.tmp",
            TEMP_FILE_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let (temp, mut file) = TempFile::create(self.shared.dir().join(name))?;
        // Zeros until finish: their header crc cannot match, so the header reads as unfinished.
        let placeholder = vec![0u8; format::header_len_bytes(membership.len()) as usize];
        file.write_all(&placeholder)
            .map_err(|e| Error::io("write snapshot header", temp.path(), e))?;
        SnapshotWriter::new(
            Arc::clone(&self.shared),
            temp,
            file,
            index,
            term,
            membership.to_vec(),
        )
    }

    /// The newest snapshot with a valid header, if any.
    pub fn latest(&self) -> Option<SnapshotMeta> {
        self.shared.latest()
    }

    /// All snapshots with a valid header, oldest first.
    pub fn list(&self) -> Vec<SnapshotMeta> {
        self.shared.list()
    }

    /// Opens a snapshot for reading its decompressed content, verified at end of stream.
    pub fn open_reader(&self, meta: &SnapshotMeta) -> Result<SnapshotReader> {
        let reader = SnapshotReader::open(&meta.path)?;
        check_same_snapshot(meta, reader.meta())?;
        Ok(reader)
    }

    /// Opens the newest snapshot whose content verifies. Each candidate is checked with a full
    /// decompression pass first, so a damaged newer snapshot is skipped (logged, and dropped
    /// from [`list`](Self::list)) and the one before it is used. `None` if no snapshot verifies.
    pub fn open_latest_valid(&self) -> Result<Option<SnapshotReader>> {
        // Each restart follows a concurrent install whose retention deleted the candidate being
        // checked; snapshots are taken minutes apart, so a few restarts are plenty.
        const RESTARTS_MAX: usize = 8;
        for _ in 0..RESTARTS_MAX {
            if let Search::Done(found) = self.search_latest_valid()? {
                return Ok(found.map(|reader| *reader));
            }
        }
        Err(Error::io(
            "open latest snapshot",
            self.shared.dir(),
            io::Error::other(format!(
                "snapshots were deleted by concurrent installs {RESTARTS_MAX} times in a row"
            )),
        ))
    }

    fn search_latest_valid(&self) -> Result<Search> {
        for meta in self.list().into_iter().rev() {
            let verified = verify_file(&meta.path).and_then(|on_disk| {
                check_same_snapshot(&meta, &on_disk)?;
                SnapshotReader::open(&meta.path)
            });
            match verified {
                Ok(reader) => return Ok(Search::Done(Some(Box::new(reader)))),
                Err(err) if err.is_corruption() => {
                    log::warn!(
                        "skipping damaged snapshot {} (index {} term {}), falling back to an \
                         older one: {err}",
                        meta.path.display(),
                        meta.index,
                        meta.term
                    );
                    self.shared.mark_damaged(&meta);
                }
                // Retention of a concurrent install removed it, so a newer snapshot exists:
                // older candidates are not the latest valid one any more.
                Err(Error::Io { ref source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    return Ok(Search::Raced);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(Search::Done(None))
    }

    /// Opens the on-disk bytes of a snapshot for sending them as they are (Raft
    /// InstallSnapshot chunks).
    pub fn open_raw(&self, meta: &SnapshotMeta) -> Result<RawSnapshotFile> {
        RawSnapshotFile::open(meta)
    }

    /// Starts receiving the on-disk bytes of a snapshot from a peer. `expected_len_bytes`, when
    /// given, bounds every write and must be reached exactly by [`RawSnapshotReceiver::finish`].
    pub fn begin_receive(&self, expected_len_bytes: Option<u64>) -> Result<RawSnapshotReceiver> {
        if let Some(len) = expected_len_bytes {
            if len < format::header_len_bytes(0) {
                return Err(Error::misuse(format!(
                    "expected snapshot length {len} is shorter than the smallest snapshot header"
                )));
            }
        }
        let name = format!(
            "snap-recv-{}.snap.tmp",
            TEMP_FILE_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let (temp, file) = TempFile::create(self.shared.dir().join(name))?;
        Ok(RawSnapshotReceiver::new(
            Arc::clone(&self.shared),
            temp,
            file,
            expected_len_bytes,
        ))
    }
}

enum Search {
    Done(Option<Box<SnapshotReader>>),
    Raced,
}

/// The file at `expected.path` must still be the snapshot the caller asked for.
fn check_same_snapshot(expected: &SnapshotMeta, on_disk: &SnapshotMeta) -> Result<()> {
    if (expected.index, expected.term) != (on_disk.index, on_disk.term) {
        return Err(Error::corruption(
            &expected.path,
            16,
            None,
            format!(
                "expected the snapshot at index {} term {}, the file holds index {} term {}",
                expected.index, expected.term, on_disk.index, on_disk.term
            ),
        ));
    }
    Ok(())
}

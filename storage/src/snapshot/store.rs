//! The snapshot directory: listing, atomic install, retention, temp-file hygiene.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::format::{self, Header, MEMBERSHIP_MAX_BYTES};
use super::reader::{self, SnapshotReader};
use super::transfer::{RawSnapshotFile, RawSnapshotReceiver};
use super::writer::SnapshotWriter;
use super::{sync_dir, verify_file, SnapshotMeta, SnapshotOptions};
use crate::error::{Error, Result};

/// Distinguishes temp files of concurrent writers and receivers in one process. Temp files of
/// earlier processes are gone: [`SnapshotStore::open`] deletes them.
static TEMP_FILE_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The snapshots in one directory. Cheap to clone; clones share one catalog, so the apply
/// thread can write snapshots while another thread lists and sends them.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub(super) struct Shared {
    dir: PathBuf,
    options: SnapshotOptions,
    /// Held for the whole of an install, so the rename, the catalog update and retention of one
    /// install never interleave with another's.
    catalog: Mutex<Catalog>,
}

/// What is on disk, as far as this store knows.
#[derive(Debug, Default)]
struct Catalog {
    /// Snapshots with a valid header, oldest first by `(index, term)`.
    valid: Vec<SnapshotMeta>,
    /// Snapshot files whose header or content failed a check, kept for retention to delete once
    /// they are older than every retained snapshot.
    damaged: Vec<DamagedFile>,
}

#[derive(Debug)]
struct DamagedFile {
    index: u64,
    term: u64,
    path: PathBuf,
}

impl SnapshotStore {
    /// Opens the snapshot store in `dir`: creates the directory if needed, deletes leftover
    /// `snap-*.snap.tmp` files (then `fsync`s the directory), reads the header of every
    /// `snap-*.snap` file and applies retention. Files with a damaged header are logged and left
    /// out of [`list`](Self::list).
    pub fn open(dir: impl AsRef<Path>, options: SnapshotOptions) -> Result<SnapshotStore> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            create_dir_durably(&dir)?;
        }
        let mut catalog = Catalog::default();
        let mut removed_temp_files = 0usize;
        let entries =
            fs::read_dir(&dir).map_err(|e| Error::io("list snapshot directory", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list snapshot directory", &dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let path = entry.path();
            if format::is_temp_file_name(&name) {
                fs::remove_file(&path)
                    .map_err(|e| Error::io("remove snapshot temp file", &path, e))?;
                removed_temp_files += 1;
                continue;
            }
            let Some((index, term)) = format::parse_file_name(&name) else {
                continue;
            };
            match read_header(&path) {
                Ok(header) if (header.index, header.term) == (index, term) => {
                    catalog.valid.push(SnapshotMeta::from_header(header, path));
                }
                Ok(header) => {
                    log::warn!(
                        "snapshot {} has a header for index {} term {}, not the ones in its \
                         name; ignoring it",
                        path.display(),
                        header.index,
                        header.term
                    );
                    catalog.damaged.push(DamagedFile { index, term, path });
                }
                Err(err) if err.is_corruption() => {
                    log::warn!("ignoring damaged snapshot: {err}");
                    catalog.damaged.push(DamagedFile { index, term, path });
                }
                Err(err) => return Err(err),
            }
        }
        if removed_temp_files > 0 {
            log::info!(
                "removed {removed_temp_files} unfinished snapshot temp file(s) from {}",
                dir.display()
            );
            sync_dir(&dir)?;
        }
        catalog.valid.sort_by_key(|m| (m.index, m.term));
        let shared = Arc::new(Shared {
            dir,
            options,
            catalog: Mutex::new(catalog),
        });
        let mut catalog = shared.lock_catalog();
        shared.apply_retention(&mut catalog)?;
        drop(catalog);
        Ok(SnapshotStore { shared })
    }

    /// The directory this store manages.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SnapshotOptions {
        &self.shared.options
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
        let (temp, mut file) = TempFile::create(self.shared.dir.join(name))?;
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
        self.shared.lock_catalog().valid.last().cloned()
    }

    /// All snapshots with a valid header, oldest first.
    pub fn list(&self) -> Vec<SnapshotMeta> {
        self.shared.lock_catalog().valid.clone()
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
            &self.shared.dir,
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
        let (temp, file) = TempFile::create(self.shared.dir.join(name))?;
        Ok(RawSnapshotReceiver::new(
            Arc::clone(&self.shared),
            temp,
            file,
            expected_len_bytes,
        ))
    }
}

/// `mkdir -p`, then an `fsync` of the parent of every directory it created, so none of them
/// vanishes in a crash.
fn create_dir_durably(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| !a.exists())
        .collect();
    fs::create_dir_all(dir).map_err(|e| Error::io("create snapshot directory", dir, e))?;
    for created in missing {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

enum Search {
    Done(Option<Box<SnapshotReader>>),
    Raced,
}

fn read_header(path: &Path) -> Result<Header> {
    reader::open_file(path).map(|(_, header)| header)
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

impl Shared {
    fn lock_catalog(&self) -> MutexGuard<'_, Catalog> {
        // The catalog is plain data updated after each durable step, so a thread that panicked
        // while holding it left it describing files that exist: safe to keep using.
        self.catalog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn compression_level(&self) -> i32 {
        self.options.compression_level
    }

    /// Installs a complete, durable temp file as the snapshot `meta` describes: rename to its
    /// final name, `fsync` the directory, record it, apply retention.
    pub(super) fn install(&self, temp: TempFile, mut meta: SnapshotMeta) -> Result<SnapshotMeta> {
        let mut catalog = self.lock_catalog();
        if catalog.valid.len() >= self.options.retain
            && catalog
                .valid
                .first()
                .is_some_and(|oldest| (meta.index, meta.term) < (oldest.index, oldest.term))
        {
            // `temp` is dropped here, which deletes it.
            return Err(Error::misuse(format!(
                "snapshot at index {} term {} is older than all {} retained snapshots; it was \
                 discarded",
                meta.index, meta.term, self.options.retain
            )));
        }
        let final_path = format::file_path(&self.dir, meta.index, meta.term);
        fs::rename(temp.path(), &final_path)
            .map_err(|e| Error::io("rename snapshot into place", temp.path(), e))?;
        temp.disarm();
        sync_dir(&self.dir)?;
        meta.path = final_path;
        catalog
            .valid
            .retain(|m| (m.index, m.term) != (meta.index, meta.term));
        catalog
            .damaged
            .retain(|d| (d.index, d.term) != (meta.index, meta.term));
        let position = catalog
            .valid
            .partition_point(|m| (m.index, m.term) < (meta.index, meta.term));
        catalog.valid.insert(position, meta.clone());
        self.apply_retention(&mut catalog)?;
        Ok(meta)
    }

    /// Deletes every snapshot older than the newest `retain` valid ones, damaged files included.
    fn apply_retention(&self, catalog: &mut Catalog) -> Result<()> {
        let retain = self.options.retain;
        assert!(retain >= 1, "options were validated at open");
        let mut doomed: Vec<PathBuf> = Vec::new();
        if catalog.valid.len() > retain {
            let excess = catalog.valid.len() - retain;
            doomed.extend(catalog.valid.drain(..excess).map(|m| m.path));
        }
        if let Some(oldest_kept) = catalog.valid.first() {
            let floor = (oldest_kept.index, oldest_kept.term);
            let (older, newer): (Vec<_>, Vec<_>) = catalog
                .damaged
                .drain(..)
                .partition(|d| (d.index, d.term) < floor);
            catalog.damaged = newer;
            doomed.extend(older.into_iter().map(|d| d.path));
        }
        if doomed.is_empty() {
            return Ok(());
        }
        for path in doomed {
            match fs::remove_file(&path) {
                Ok(()) => log::debug!("retention removed snapshot {}", path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // The new snapshot is installed whatever happens here; remember the file
                    // so the next retention pass tries again.
                    log::warn!(
                        "retention could not remove snapshot {}: {e}",
                        path.display()
                    );
                    if let Some((index, term)) = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(format::parse_file_name)
                    {
                        catalog.damaged.push(DamagedFile { index, term, path });
                    }
                }
            }
        }
        sync_dir(&self.dir)
    }

    fn mark_damaged(&self, meta: &SnapshotMeta) {
        let mut catalog = self.lock_catalog();
        let before = catalog.valid.len();
        catalog.valid.retain(|m| m.path != meta.path);
        if catalog.valid.len() < before {
            catalog.damaged.push(DamagedFile {
                index: meta.index,
                term: meta.term,
                path: meta.path.clone(),
            });
        }
    }
}

/// A file that is deleted when dropped unless [`disarm`](Self::disarm)ed: snapshots being
/// written or received, so an abandoned one leaves nothing behind.
#[derive(Debug)]
pub(super) struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn create(path: PathBuf) -> Result<(TempFile, File)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create snapshot temp file", &path, e))?;
        Ok((TempFile { path, armed: true }, file))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed into place: nothing to delete.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // The next open deletes it; nothing better to do in a destructor.
            Err(e) => log::warn!(
                "could not remove snapshot temp file {}: {e}",
                self.path.display()
            ),
        }
    }
}

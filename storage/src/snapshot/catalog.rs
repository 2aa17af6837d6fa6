//! What a snapshot directory holds, as the store's clones, its writers and its receivers share
//! it: the catalog of snapshot files, the atomic install into it, and retention.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::format::{self, Header};
use super::reader;
use super::{SnapshotMeta, SnapshotOptions};
use crate::error::{Error, Result};
use crate::files::{fsync_dir, TempFile};

/// One snapshot directory and its catalog, shared by a store's clones, writers and receivers.
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

impl Shared {
    /// Opens the catalog of `dir`: creates the directory if needed, deletes leftover temp files
    /// (then `fsync`s the directory), reads the header of every snapshot file and applies
    /// retention.
    pub(super) fn open(dir: PathBuf, options: SnapshotOptions) -> Result<Shared> {
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
            fsync_dir(&dir)?;
        }
        catalog.valid.sort_by_key(|m| (m.index, m.term));
        let shared = Shared {
            dir,
            options,
            catalog: Mutex::new(catalog),
        };
        let mut catalog = shared.lock_catalog();
        shared.apply_retention(&mut catalog)?;
        drop(catalog);
        Ok(shared)
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn options(&self) -> &SnapshotOptions {
        &self.options
    }

    /// The newest snapshot with a valid header, if any.
    pub(super) fn latest(&self) -> Option<SnapshotMeta> {
        self.lock_catalog().valid.last().cloned()
    }

    /// All snapshots with a valid header, oldest first.
    pub(super) fn list(&self) -> Vec<SnapshotMeta> {
        self.lock_catalog().valid.clone()
    }

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
        fsync_dir(&self.dir)?;
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
        fsync_dir(&self.dir)
    }

    pub(super) fn mark_damaged(&self, meta: &SnapshotMeta) {
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
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

fn read_header(path: &Path) -> Result<Header> {
    reader::open_file(path).map(|(_, header)| header)
}

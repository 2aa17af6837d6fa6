//! File steps that the log, the store and the snapshots share: making a directory and its
//! entries durable, and temp files that leave nothing behind unless they are installed.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Fsyncs a directory so that creates, renames and deletes in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Makes sure `dir` exists before a log or store opens in it: a missing directory is created,
/// and its parent fsynced so the new entry survives a crash; read-only, a missing directory is
/// an error.
pub(crate) fn ensure_dir(dir: &Path, read_only: bool) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    if read_only {
        return Err(Error::io(
            "open",
            dir,
            io::Error::new(io::ErrorKind::NotFound, "no such directory"),
        ));
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// A file that is deleted when dropped unless [`disarm`](Self::disarm)ed: a snapshot being
/// written or received, a segment being prepared, so that one abandoned or failed part way
/// leaves nothing behind (on a full disk, its bytes may be the last free ones).
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    pub(crate) fn create(path: PathBuf) -> Result<(TempFile, File)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create temp file", &path, e))?;
        Ok((TempFile { path, armed: true }, file))
    }

    /// Takes charge of an existing file, such as a spare segment about to be reused.
    pub(crate) fn adopt(path: PathBuf) -> TempFile {
        TempFile { path, armed: true }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed into place: nothing to delete.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match fs::remove_file(&self.path) {
            // Every delete is made durable, like every create and rename: otherwise a crash
            // could bring the file back, holding its space until the next open deletes it.
            Ok(()) => {
                let dir = match self.path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                if let Err(e) = fsync_dir(dir) {
                    log::warn!("after removing temp file {}: {e}", self.path.display());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // The next open deletes it; nothing better to do in a destructor.
            Err(e) => log::warn!("could not remove temp file {}: {e}", self.path.display()),
        }
    }
}

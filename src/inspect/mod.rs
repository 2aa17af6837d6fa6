//! Read-only inspection of a Ketch data directory: the library behind `ketch wal stat`,
//! `ketch wal verify` and `ketch wal dump`. A directory of a multi-group `LogStore` (`*.kst`
//! segments) is read by [`store`].
//!
//! Every command opens the log with [`Options::read_only`] set, so nothing in the directory is
//! created, repaired, renamed or deleted, whatever state it is in; snapshots are read file by
//! file, never through a `SnapshotStore` (whose open deletes temporary files and applies
//! retention). Output goes to a caller-supplied writer, so the commands can be tested without a
//! process.
//!
//! # Exit codes
//!
//! A command returns a [`Verdict`] or an [`InspectError`]; [`exit_code`] maps them:
//!
//! | code | meaning                                                                        |
//! |------|--------------------------------------------------------------------------------|
//! | 0    | healthy (or the reader of the output went away, as with `\| head`)             |
//! | 1    | damage found: a checksum, chain, footer or snapshot problem, or a torn tail    |
//! | 2    | usage error, or an I/O error (missing directory, permission, failed write)     |

pub mod chunks;
pub mod data_dir;
pub mod dump;
pub mod json;
pub mod progress;
pub mod stat;
pub mod store;
pub mod verify;

use std::fmt;
use std::io;
use std::path::Path;

use ketch_storage::{Options, RecoveryMode, Wal};

/// What a command found, when it ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong was found.
    Healthy,
    /// Damage was found and reported in the output.
    Damaged,
}

/// Why a command stopped early.
#[derive(Debug)]
pub enum InspectError {
    /// The log or a snapshot is damaged where the command needed to read it.
    Damaged(ketch_storage::Error),
    /// Storage could not be read for another reason: no such directory, no segments, permission,
    /// an I/O error.
    Storage(ketch_storage::Error),
    /// Writing the command's output failed.
    Output(io::Error),
    /// The reader of the output closed it (`ketch wal dump DIR | head`): not a failure.
    OutputClosed,
    /// The arguments make no sense together.
    Usage(String),
}

impl From<ketch_storage::Error> for InspectError {
    fn from(error: ketch_storage::Error) -> Self {
        if error.is_corruption() {
            InspectError::Damaged(error)
        } else {
            InspectError::Storage(error)
        }
    }
}

/// An `io::Error` reaching a command is always from writing its output: storage reports its own
/// I/O failures as [`ketch_storage::Error::Io`], which names the file.
impl From<io::Error> for InspectError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            InspectError::OutputClosed
        } else {
            InspectError::Output(error)
        }
    }
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::Damaged(error) => write!(f, "damage: {error}"),
            InspectError::Storage(error) => write!(f, "{error}"),
            InspectError::Output(error) => write!(f, "cannot write output: {error}"),
            InspectError::OutputClosed => write!(f, "output closed by its reader"),
            InspectError::Usage(reason) => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for InspectError {}

/// The process exit code for a command's result (see the module documentation).
pub fn exit_code(result: &Result<Verdict, InspectError>) -> u8 {
    match result {
        Ok(Verdict::Healthy) | Err(InspectError::OutputClosed) => 0,
        Ok(Verdict::Damaged) | Err(InspectError::Damaged(_)) => 1,
        Err(_) => 2,
    }
}

/// Opens the log in `dir` without writing anything, recovering in `mode`.
pub fn open_read_only(dir: &Path, mode: RecoveryMode) -> ketch_storage::Result<Wal> {
    let metadata = std::fs::metadata(dir).map_err(|e| ketch_storage::Error::io("stat", dir, e))?;
    if !metadata.is_dir() {
        return Err(ketch_storage::Error::io(
            "open",
            dir,
            io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
        ));
    }
    Wal::open(
        dir,
        Options {
            read_only: true,
            recovery_mode: mode,
            // Read-only opens never create segments; no thread to prepare them.
            prepare_segments_ahead: false,
            ..Options::default()
        },
    )
}

/// The name `ketch` uses for a recovery mode in its output.
pub fn mode_name(mode: RecoveryMode) -> &'static str {
    match mode {
        RecoveryMode::Strict => "strict",
        RecoveryMode::TolerateTornTail => "tolerate-torn-tail",
        RecoveryMode::Salvage => "salvage",
    }
}

/// The last component of `path`, for compact tables; the whole path if it has none.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_table() {
        assert_eq!(exit_code(&Ok(Verdict::Healthy)), 0);
        assert_eq!(exit_code(&Err(InspectError::OutputClosed)), 0);
        assert_eq!(exit_code(&Ok(Verdict::Damaged)), 1);
        let damage = ketch_storage::Error::corruption("x.wal", 7, None, "bad crc");
        assert_eq!(exit_code(&Err(damage.into())), 1);
        let missing =
            ketch_storage::Error::io("open", "d", io::Error::new(io::ErrorKind::NotFound, "gone"));
        assert_eq!(exit_code(&Err(missing.into())), 2);
        assert_eq!(exit_code(&Err(InspectError::Usage("no".into()))), 2);
        let pipe: InspectError = io::Error::new(io::ErrorKind::BrokenPipe, "closed").into();
        assert_eq!(exit_code(&Err(pipe)), 0);
    }

    #[test]
    fn opening_a_missing_or_plain_file_path_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = open_read_only(&dir.path().join("nope"), RecoveryMode::Strict).unwrap_err();
        assert!(
            matches!(missing, ketch_storage::Error::Io { .. }),
            "{missing}"
        );
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let plain = open_read_only(&file, RecoveryMode::Strict).unwrap_err();
        assert!(plain.to_string().contains("not a directory"), "{plain}");
        // An empty directory is not a log, and stays empty.
        let empty = open_read_only(dir.path(), RecoveryMode::Strict).unwrap_err();
        assert!(!empty.is_corruption(), "{empty}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

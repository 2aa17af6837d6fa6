//! The one error type of `ketch-storage`.
//!
//! Every failure a caller can act on is a variant it can match: corruption (with the file, the byte
//! offset and, where known, the index range it affects), I/O (with the operation and the path), a
//! poisoned log (an earlier fsync or write failed, so nothing written since can be trusted), an
//! index out of range, and misuse of the API (for example a non-contiguous append).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias used throughout `ketch-storage`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the durable log or the snapshot store.
#[derive(Debug)]
pub enum Error {
    /// Bytes on disk are not what was written: a checksum mismatch, a bad header, a gap in the
    /// segment chain. Nothing past this point was trusted.
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset in `path` where the damage was found.
        offset: u64,
        /// Log indices `(first, last)` (inclusive) that the damage affects, when known.
        index_range: Option<(u64, u64)>,
        /// What was wrong, in words an operator can act on.
        reason: String,
    },
    /// Bytes of a [`crate::LogStore`] file are not what was written, and the damage lies in what
    /// one group holds: its entries, or the index that locates them.
    GroupCorruption {
        /// The group affected.
        group: u64,
        /// The damaged file.
        path: PathBuf,
        /// Byte offset in `path` where the damage was found.
        offset: u64,
        /// The group's log indices `(first, last)` (inclusive) that the damage affects, when known.
        index_range: Option<(u64, u64)>,
        /// What was wrong, in words an operator can act on.
        reason: String,
    },
    /// An operating-system call failed.
    Io {
        /// The operation that failed, for example `"fdatasync"` or `"open"`.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An earlier write or fsync failed. The log refuses all further work, because after a failed
    /// fsync the kernel may have dropped dirty pages: retrying could report data as durable that
    /// is not. Reopen the log (recovery then decides what is really on disk).
    Poisoned {
        /// The failure that poisoned the log.
        cause: String,
    },
    /// The requested indices are not in the log: below its first index (compacted) or above its
    /// last index.
    OutOfRange {
        /// First requested index.
        lo: u64,
        /// One past the last requested index.
        hi: u64,
        /// The log's first index at the time of the call.
        first_index: u64,
        /// The log's last index at the time of the call.
        last_index: u64,
    },
    /// The caller broke the API's contract, for example a non-contiguous append. Nothing was
    /// written.
    Misuse {
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Builds an [`Error::Io`] from an operation name, a path and the source error.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corruption`].
    pub fn corruption(
        path: impl Into<PathBuf>,
        offset: u64,
        index_range: Option<(u64, u64)>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            path: path.into(),
            offset,
            index_range,
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Misuse`].
    pub fn misuse(reason: impl Into<String>) -> Self {
        Error::Misuse {
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::GroupCorruption`].
    pub fn group_corruption(
        group: u64,
        path: impl Into<PathBuf>,
        offset: u64,
        index_range: Option<(u64, u64)>,
        reason: impl Into<String>,
    ) -> Self {
        Error::GroupCorruption {
            group,
            path: path.into(),
            offset,
            index_range,
            reason: reason.into(),
        }
    }

    /// True if this error means the bytes on disk are damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corruption { .. } | Error::GroupCorruption { .. }
        )
    }
}

/// The text of both corruption errors: file and offset, then the group if one is named, the
/// indices and the reason.
fn write_corruption(
    f: &mut fmt::Formatter<'_>,
    path: &std::path::Path,
    offset: u64,
    group: Option<u64>,
    index_range: Option<(u64, u64)>,
    reason: &str,
) -> fmt::Result {
    write!(
        f,
        "corruption in {} at byte offset {offset}",
        path.display()
    )?;
    if let Some(group) = group {
        write!(f, ", group {group}")?;
    }
    if let Some((first, last)) = index_range {
        write!(f, " (log indices {first}..={last})")?;
    }
    write!(f, ": {reason}")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corruption {
                path,
                offset,
                index_range,
                reason,
            } => write_corruption(f, path, *offset, None, *index_range, reason),
            Error::GroupCorruption {
                group,
                path,
                offset,
                index_range,
                reason,
            } => write_corruption(f, path, *offset, Some(*group), *index_range, reason),
            Error::Io { op, path, source } => {
                write!(f, "{op} failed on {}: {source}", path.display())
            }
            Error::Poisoned { cause } => write!(
                f,
                "the log is poisoned by an earlier failure and refuses further work; \
                 reopen it to recover: {cause}"
            ),
            Error::OutOfRange {
                lo,
                hi,
                first_index,
                last_index,
            } => write!(
                f,
                "indices {lo}..{hi} are out of range: the log holds {first_index}..={last_index}"
            ),
            Error::Misuse { reason } => write!(f, "invalid use of the log: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

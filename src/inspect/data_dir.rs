//! What a data directory holds besides the log's own view of it: snapshot files, and the
//! leftovers the log and the snapshot store may leave (files being prepared, spares, salvaged
//! segments, temporary snapshots), classified by name only. Nothing here writes.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ketch_storage::segment::{decode_trailer, TRAILER_BYTES};
use ketch_storage::snapshot::{SnapshotMeta, SnapshotReader};
use ketch_storage::{Error, Result, SegmentInfo};

/// The kinds of file a data directory may hold, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `*.wal`: a log segment (the log itself reports on these).
    Segment,
    /// `snap-{index:020}-{term:020}.snap`: a finished snapshot.
    Snapshot,
    /// `*.wal.tmp`: a segment file being prepared; the next writable open deletes it.
    SegmentPreparing,
    /// `*.wal.spare`: a compacted segment kept for reuse.
    SegmentSpare,
    /// `*.wal.salvaged`: a segment moved aside by a salvage-mode open.
    SegmentSalvaged,
    /// `snap-*.snap.tmp`: a snapshot being written or received; the next store open deletes it.
    SnapshotTemp,
    /// Anything else.
    Other,
}

impl FileKind {
    /// Classifies a file by its name.
    pub fn of(name: &str) -> FileKind {
        if parse_snapshot_name(name).is_some() {
            FileKind::Snapshot
        } else if name.starts_with("snap-") && name.ends_with(".snap.tmp") {
            FileKind::SnapshotTemp
        } else if name.ends_with(".wal") {
            FileKind::Segment
        } else if name.ends_with(".wal.tmp") {
            FileKind::SegmentPreparing
        } else if name.ends_with(".wal.spare") {
            FileKind::SegmentSpare
        } else if name.ends_with(".wal.salvaged") {
            FileKind::SegmentSalvaged
        } else {
            FileKind::Other
        }
    }

    /// A short description for listings.
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::Segment => "log segment",
            FileKind::Snapshot => "snapshot",
            FileKind::SegmentPreparing => "segment being prepared (deleted by the next open)",
            FileKind::SegmentSpare => "spare segment kept for reuse",
            FileKind::SegmentSalvaged => "segment moved aside by a salvage open",
            FileKind::SnapshotTemp => "unfinished snapshot (deleted by the next store open)",
            FileKind::Other => "not a Ketch file",
        }
    }
}

/// A file in the directory that is neither a segment nor a finished snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherFile {
    /// Its path.
    pub path: PathBuf,
    /// What its name says it is.
    pub kind: FileKind,
    /// Its length.
    pub len_bytes: u64,
}

/// The snapshots and leftovers of a data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Finished snapshot files, oldest `(index, term)` first.
    pub snapshots: Vec<PathBuf>,
    /// Everything else except segments, sorted by name.
    pub others: Vec<OtherFile>,
}

/// Lists `dir`.
pub fn list(dir: &Path) -> Result<Listing> {
    let mut listing = Listing::default();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        match FileKind::of(&name) {
            FileKind::Segment => {}
            FileKind::Snapshot => listing.snapshots.push(path),
            kind => {
                let len_bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
                listing.others.push(OtherFile {
                    path,
                    kind,
                    len_bytes,
                });
            }
        }
    }
    // Zero-padded names sort like (index, term).
    listing.snapshots.sort();
    listing.others.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
}

/// True if `segment`'s file ends with a valid trailer, that is, it was sealed.
///
/// [`ketch_storage::Wal::segments`] calls the newest segment active even when it is sealed,
/// which a read-only open leaves as is (a writable open would start the next segment). That
/// happens after a crash between sealing a segment and creating the next, or when newer
/// segments were deleted: worth telling an operator.
pub fn sealed_on_disk(segment: &SegmentInfo) -> Result<bool> {
    if segment.file_len < TRAILER_BYTES {
        return Ok(false);
    }
    let file =
        std::fs::File::open(&segment.path).map_err(|e| Error::io("open", &segment.path, e))?;
    let mut trailer = [0u8; TRAILER_BYTES as usize];
    file.read_exact_at(&mut trailer, segment.file_len - TRAILER_BYTES)
        .map_err(|e| Error::io("read", &segment.path, e))?;
    Ok(decode_trailer(segment.header.seq, &trailer).is_some())
}

/// `(index, term)` from a finished snapshot's name `snap-{index:020}-{term:020}.snap`.
pub fn parse_snapshot_name(name: &str) -> Option<(u64, u64)> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (index, term) = digits.split_once('-')?;
    let twenty_digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !twenty_digits(index) || !twenty_digits(term) {
        return None;
    }
    Some((index.parse().ok()?, term.parse().ok()?))
}

/// Opens the snapshot at `path` and checks its header, its length, and that its name agrees
/// with the header. The content is not read.
pub fn open_snapshot(path: &Path) -> Result<SnapshotReader> {
    let reader = SnapshotReader::open(path)?;
    let named = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(parse_snapshot_name);
    if let Some((index, term)) = named {
        let meta = reader.meta();
        if (meta.index, meta.term) != (index, term) {
            return Err(Error::corruption(
                path,
                16,
                None,
                format!(
                    "file name says index {index} term {term} but the header says index {} \
                     term {}",
                    meta.index, meta.term
                ),
            ));
        }
    }
    Ok(reader)
}

/// The header of the snapshot at `path` (see [`open_snapshot`]).
pub fn snapshot_meta(path: &Path) -> Result<SnapshotMeta> {
    open_snapshot(path).map(|reader| reader.meta().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified() {
        let snap = "snap-00000000000000000005-00000000000000000002.snap";
        assert_eq!(parse_snapshot_name(snap), Some((5, 2)));
        assert_eq!(FileKind::of(snap), FileKind::Snapshot);
        assert_eq!(FileKind::of(&format!("{snap}.tmp")), FileKind::SnapshotTemp);
        assert_eq!(FileKind::of("snap-5-2.snap"), FileKind::Other);
        assert_eq!(
            FileKind::of("00000000000000000001-00000000000000000001.wal"),
            FileKind::Segment
        );
        assert_eq!(FileKind::of("next-1.wal.tmp"), FileKind::SegmentPreparing);
        assert_eq!(FileKind::of("spare-1.wal.spare"), FileKind::SegmentSpare);
        assert_eq!(FileKind::of("x.wal.salvaged"), FileKind::SegmentSalvaged);
        assert_eq!(FileKind::of("notes.txt"), FileKind::Other);
    }

    #[test]
    fn listing_sorts_snapshots_and_skips_segments() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "snap-00000000000000000010-00000000000000000002.snap",
            "snap-00000000000000000005-00000000000000000002.snap",
            "00000000000000000001-00000000000000000001.wal",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let listing = list(dir.path()).unwrap();
        let names: Vec<_> = listing
            .snapshots
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "snap-00000000000000000005-00000000000000000002.snap",
                "snap-00000000000000000010-00000000000000000002.snap"
            ]
        );
        assert_eq!(listing.others.len(), 1);
        assert_eq!(listing.others[0].kind, FileKind::Other);
        // A file with a snapshot name but no valid header is a corruption error naming it.
        let error = snapshot_meta(&listing.snapshots[0]).unwrap_err();
        assert!(
            error.to_string().contains("snap-0000000000000000000"),
            "{error}"
        );
    }
}

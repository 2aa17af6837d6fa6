//! `ketch wal verify DIR`: checks every byte the log and its snapshots depend on.
//!
//! 1. Opens the log read-only in [`RecoveryMode::Strict`], so a torn tail counts as damage. If
//!    the strict open fails on damage, the log is opened again in the default mode (still
//!    read-only); if that succeeds because the damage is a torn tail, the report says what a
//!    normal open would cut, and the rest of the log is still checked.
//! 2. Runs [`Wal::verify`]: every record of every segment, the segment chain, and that each
//!    sealed segment's footer matches its records. It stops at the first damage and cannot
//!    report progress; the progress line names the phase meanwhile.
//! 3. Reads every live entry in bounded chunks (see [`super::chunks`]), which verifies each
//!    entry's checksum and index, with progress. A damaged chunk is re-read entry by entry, so
//!    every damaged entry is named with its index, up to [`PROBLEMS_SHOWN_MAX`]; an entry
//!    report replaces the records check's report of the same frame.
//! 4. Reads every snapshot file to the end: header, file length, name, a full decompression
//!    pass, content size and both checksums.
//!
//! Damage anywhere makes the verdict [`Verdict::Damaged`] (exit code 1); an I/O error with no
//! damage is returned as [`InspectError::Storage`] (exit code 2) after the report is written.

use std::io::{Read, Write};
use std::path::Path;

use ketch_storage::snapshot::storage_error;
use ketch_storage::{Error, RecoveryMode, SegmentInfo, Wal};

use super::chunks::{self, CHUNK_BUDGET_BYTES};
use super::data_dir::{self, FileKind};
use super::json::Json;
use super::progress::{human_bytes, Progress};
use super::stat::NEWEST_SEALED_NOTE;
use super::{file_name, open_read_only, InspectError, Verdict};

/// Damaged entries listed one by one; past this many, only counted.
pub const PROBLEMS_SHOWN_MAX: usize = 100;

/// Bytes of snapshot content decompressed per read.
const SNAPSHOT_READ_BYTES: usize = 128 << 10;

/// One thing found wrong.
#[derive(Debug)]
pub struct Problem {
    /// The error, with its location.
    pub error: Error,
    /// What else helps locate it, for example the entries the damaged segment holds.
    pub context: Option<String>,
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Damage and I/O errors, in the order found (at most [`PROBLEMS_SHOWN_MAX`] entry problems).
    pub problems: Vec<Problem>,
    /// Damaged entries found in total, including those not listed.
    pub damaged_entries: u64,
    /// Damaged entries listed in `problems`.
    pub listed_damaged_entries: u64,
    /// Remarks that are not damage.
    pub notes: Vec<String>,
    /// Summary lines of what was checked.
    pub checked: Vec<String>,
}

impl VerifyReport {
    /// True if any problem is damage (not only I/O errors).
    pub fn has_damage(&self) -> bool {
        self.damaged_entries > 0 || self.problems.iter().any(|p| p.error.is_corruption())
    }

    fn push(&mut self, error: Error, context: Option<String>) {
        self.problems.push(Problem { error, context });
    }

    /// Records a damaged entry. The records check may have reported the same frame without
    /// its index: the entry's report replaces it.
    fn push_entry_damage(&mut self, error: Error) {
        self.damaged_entries += 1;
        if let Error::Corruption { path, offset, .. } = &error {
            let same_frame = self.problems.iter().position(|problem| {
                matches!(&problem.error, Error::Corruption { path: p, offset: o, index_range: None, .. }
                    if p == path && o == offset)
            });
            if let Some(position) = same_frame {
                self.listed_damaged_entries += 1;
                self.problems[position] = Problem {
                    error,
                    context: None,
                };
                return;
            }
        }
        if self.listed_damaged_entries < PROBLEMS_SHOWN_MAX as u64 {
            self.listed_damaged_entries += 1;
            self.push(error, None);
        }
    }

    /// The report as one JSON object: `healthy`, `checked` and `notes` (lines of text),
    /// `damaged_entries`, and `problems`, each with its `kind` (`damage` or `io`), `message`,
    /// and for damage the `file`, `offset`, `first_index` and `last_index` (or null) and
    /// `reason`.
    pub fn to_json(&self) -> Json {
        let lines = |lines: &[String]| Json::Array(lines.iter().cloned().map(Json::Str).collect());
        let problems = self
            .problems
            .iter()
            .map(|problem| {
                let mut fields = vec![
                    (
                        "kind",
                        Json::str(if problem.error.is_corruption() {
                            "damage"
                        } else {
                            "io"
                        }),
                    ),
                    ("message", Json::str(problem.error.to_string())),
                ];
                if let Error::Corruption {
                    path,
                    offset,
                    index_range,
                    reason,
                } = &problem.error
                {
                    fields.push(("file", Json::str(path.display().to_string())));
                    fields.push(("offset", Json::U64(*offset)));
                    fields.push(("first_index", Json::opt_u64(index_range.map(|r| r.0))));
                    fields.push(("last_index", Json::opt_u64(index_range.map(|r| r.1))));
                    fields.push(("reason", Json::str(reason.clone())));
                }
                fields.push((
                    "context",
                    problem.context.clone().map_or(Json::Null, Json::Str),
                ));
                Json::Object(fields)
            })
            .collect();
        Json::Object(vec![
            (
                "healthy",
                Json::Bool(self.problems.is_empty() && self.damaged_entries == 0),
            ),
            ("checked", lines(&self.checked)),
            ("problems", Json::Array(problems)),
            ("damaged_entries", Json::U64(self.damaged_entries)),
            ("notes", lines(&self.notes)),
        ])
    }

    /// The report as text, one finding per line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.checked {
            out.push_str(&format!("ok       {line}\n"));
        }
        for problem in &self.problems {
            let label = if problem.error.is_corruption() {
                "DAMAGE  "
            } else {
                "ERROR   "
            };
            out.push_str(&format!("{label} {}\n", problem.error));
            if let Some(context) = &problem.context {
                out.push_str(&format!("         {context}\n"));
            }
        }
        let unlisted = self.damaged_entries - self.listed_damaged_entries;
        if unlisted > 0 {
            out.push_str(&format!(
                "DAMAGE   {unlisted} more damaged entries not listed\n"
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("note     {note}\n"));
        }
        if self.problems.is_empty() && self.damaged_entries == 0 {
            out.push_str("result   healthy\n");
        } else {
            out.push_str(&format!(
                "result   {} ({} {})\n",
                if self.has_damage() {
                    "DAMAGED"
                } else {
                    "INCOMPLETE: I/O errors"
                },
                self.problems.len() as u64 + unlisted,
                if self.problems.len() as u64 + unlisted == 1 {
                    "problem"
                } else {
                    "problems"
                }
            ));
        }
        out
    }
}

/// Runs `ketch wal verify`: checks everything and writes the report to `out`, as text or as one
/// JSON object. Progress goes to stderr when `progress_wanted` and stderr is a terminal.
pub fn run(
    dir: &Path,
    json: bool,
    out: &mut dyn Write,
    progress_wanted: bool,
) -> Result<Verdict, InspectError> {
    if super::store::is_store_dir(dir) {
        let verdict = super::store::verify(dir, json, out)?;
        out.flush()?;
        return Ok(verdict);
    }
    let report = check(dir, progress_wanted)?;
    if json {
        writeln!(out, "{}", report.to_json().to_line())?;
    } else {
        out.write_all(report.to_text().as_bytes())?;
    }
    out.flush()?;
    if report.has_damage() {
        return Ok(Verdict::Damaged);
    }
    match report.problems.into_iter().next() {
        Some(problem) => Err(InspectError::Storage(problem.error)),
        None => Ok(Verdict::Healthy),
    }
}

/// Checks the directory and returns what was found. Errors only when the log cannot be opened
/// at all for a reason other than damage (no such directory, no segments, permissions).
pub fn check(dir: &Path, progress_wanted: bool) -> Result<VerifyReport, InspectError> {
    let mut report = VerifyReport::default();
    let wal = open_for_verify(dir, &mut report)?;
    let listing = data_dir::list(dir)?;
    let snapshot_metas: Vec<_> = listing
        .snapshots
        .iter()
        .map(|path| data_dir::snapshot_meta(path).ok())
        .collect();
    let log_bytes: u64 = wal
        .as_ref()
        .map_or(0, |wal| wal.segments().iter().map(|s| s.used_bytes).sum());
    let snapshot_bytes: u64 = snapshot_metas
        .iter()
        .flatten()
        .map(|meta| meta.file_len_bytes())
        .sum();
    let mut progress = Progress::on_stderr("verified", log_bytes + snapshot_bytes, progress_wanted);

    if let Some(wal) = &wal {
        // The log's own check has no progress of its own: say what is happening meanwhile.
        progress.show_phase(&format!(
            "checking records, segment chain and footers of {}",
            human_bytes(log_bytes)
        ));
        check_records(wal, &mut report);
        check_entries(wal, &mut report, &mut progress);
    }
    let mut newest_valid_snapshot = None;
    for path in &listing.snapshots {
        if let Some(index) = check_snapshot(path, &mut report, &mut progress) {
            newest_valid_snapshot = newest_valid_snapshot.max(Some(index));
        }
    }
    progress.finish();

    if let Some(wal) = &wal {
        if let Some(newest) = wal.segments().last() {
            match data_dir::sealed_on_disk(newest) {
                Ok(true) => report.notes.push(NEWEST_SEALED_NOTE.to_string()),
                Ok(false) => {}
                Err(error) => report.push(error, None),
            }
        }
        let hard_state = wal.hard_state();
        if hard_state.commit > wal.last_index() {
            report.notes.push(format!(
                "the hard state's commit index {} is above the last index {}: entries known \
                 committed are not in this log",
                hard_state.commit,
                wal.last_index()
            ));
        }
        let first_index = wal.first_index();
        if first_index > 1 && newest_valid_snapshot.is_none_or(|index| index + 1 < first_index) {
            report.notes.push(format!(
                "entries below {first_index} were compacted and no valid snapshot in this \
                 directory covers them (fine if snapshots are kept elsewhere)"
            ));
        }
    }
    for other in &listing.others {
        // Spares are normal after compaction and unknown files are not Ketch's: note only the
        // leftovers of interrupted work.
        if !matches!(other.kind, FileKind::Other | FileKind::SegmentSpare) {
            report.notes.push(format!(
                "{}: {}",
                file_name(&other.path),
                other.kind.describe()
            ));
        }
    }
    Ok(report)
}

/// Opens the log strictly; on damage, falls back to the default mode to check what a normal
/// open would see. `None` if no mode opens it.
fn open_for_verify(dir: &Path, report: &mut VerifyReport) -> Result<Option<Wal>, InspectError> {
    let strict_error = match open_read_only(dir, RecoveryMode::Strict) {
        Ok(wal) => return Ok(Some(wal)),
        Err(error) if error.is_corruption() => error,
        Err(error) => return Err(error.into()),
    };
    report.push(strict_error, None);
    match open_read_only(dir, RecoveryMode::TolerateTornTail) {
        Ok(wal) => {
            if let Some(torn) = &wal.recovery_report().torn_tail {
                report.notes.push(format!(
                    "this is a torn tail (what a crash during a write leaves): a normal open \
                     would cut {} bytes at byte offset {} of {}, dropping only the unfinished \
                     last batch; the rest of the log was checked as that open would see it",
                    torn.bytes,
                    torn.offset,
                    torn.path.display()
                ));
            }
            Ok(Some(wal))
        }
        Err(_) => {
            report.notes.push(
                "a normal open fails on this damage too; `ketch wal stat` shows the valid \
                 prefix a salvage open would keep"
                    .into(),
            );
            Ok(None)
        }
    }
}

/// Reads every live entry, chunk by chunk.
fn check_entries(wal: &Wal, report: &mut VerifyReport, progress: &mut Progress) {
    let segments = wal.segments();
    let lo = wal.first_index();
    let hi = wal.last_index() + 1;
    let mut entries_read = 0u64;
    let mut payload_bytes = 0u64;
    for chunk in chunks::plan(&segments, lo, hi, CHUNK_BUDGET_BYTES) {
        let mut chunk_entries = 0u64;
        let mut chunk_payload_bytes = 0u64;
        let visited = chunks::visit(wal, &chunk, |_, _, data| {
            chunk_entries += 1;
            chunk_payload_bytes += data.len() as u64;
        });
        match visited {
            Ok(()) => {
                entries_read += chunk_entries;
                payload_bytes += chunk_payload_bytes;
            }
            Err(_) => {
                // Find each damaged entry of the chunk; the good ones still count as read.
                for index in chunk.range.clone() {
                    match wal.entry(index) {
                        Ok(entry) => {
                            entries_read += 1;
                            payload_bytes += entry.data.len() as u64;
                        }
                        Err(error) if error.is_corruption() => {
                            report.push_entry_damage(error);
                        }
                        Err(error) => report.push(error, None),
                    }
                }
            }
        }
        progress.advance(chunk.estimated_bytes);
    }
    let expected = hi - lo;
    let range = if expected == 0 {
        "the log holds no entries".to_string()
    } else {
        format!("{lo}..={}", hi - 1)
    };
    report.checked.push(format!(
        "entries  {entries_read} of {expected} read and checksummed ({range}; {} of payload)",
        human_bytes(payload_bytes)
    ));
    let hard_state = wal.hard_state();
    let vote = match hard_state.vote {
        0 => "none".to_string(),
        vote => vote.to_string(),
    };
    report.checked.push(format!(
        "state    hard state term {}, vote {vote}, commit {}",
        hard_state.term, hard_state.commit
    ));
}

/// Runs the log's own full check: records, chain, footers.
fn check_records(wal: &Wal, report: &mut VerifyReport) {
    let segments = wal.segments();
    match wal.verify() {
        Ok(checked_bytes) => report.checked.push(format!(
            "records  {} segments, {} of records: checksums, segment chain and footers",
            segments.len(),
            human_bytes(checked_bytes)
        )),
        Err(error) => {
            let context = segment_context(&segments, &error);
            report.push(error, context);
        }
    }
}

/// For damage that names a segment but no entries: which entries that segment holds.
fn segment_context(segments: &[SegmentInfo], error: &Error) -> Option<String> {
    let Error::Corruption {
        path,
        index_range: None,
        ..
    } = error
    else {
        return None;
    };
    let segment = segments.iter().find(|s| &s.path == path)?;
    let state = if segment.sealed { "sealed" } else { "active" };
    Some(match segment.live_range {
        Some((first, last)) => format!(
            "{} is segment {} ({state}), holding log indices {first}..={last}",
            file_name(path),
            segment.header.seq
        ),
        None => format!(
            "{} is segment {} ({state}), holding no live entries",
            file_name(path),
            segment.header.seq
        ),
    })
}

/// Reads a snapshot to the end; returns its index if it is intact.
fn check_snapshot(path: &Path, report: &mut VerifyReport, progress: &mut Progress) -> Option<u64> {
    let mut reader = match data_dir::open_snapshot(path) {
        Ok(reader) => reader,
        Err(error) => {
            report.push(error, None);
            return None;
        }
    };
    let meta = reader.meta().clone();
    let mut buffer = vec![0u8; SNAPSHOT_READ_BYTES];
    let mut credited_bytes = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => {
                // Progress counts file bytes; scale the content read to them.
                let fraction =
                    reader.produced_bytes() as f64 / meta.uncompressed_bytes.max(1) as f64;
                let target = (fraction.min(1.0) * meta.file_len_bytes() as f64) as u64;
                progress.advance(target.saturating_sub(credited_bytes));
                credited_bytes = credited_bytes.max(target);
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                report.push(storage_error(error, "read snapshot", path), None);
                return None;
            }
        }
    }
    progress.advance(meta.file_len_bytes().saturating_sub(credited_bytes));
    match reader.finish() {
        Ok(meta) => {
            report.checked.push(format!(
                "snapshot {}: index {}, term {}, {} of content, checksums match",
                file_name(path),
                meta.index,
                meta.term,
                human_bytes(meta.uncompressed_bytes)
            ));
            Some(meta.index)
        }
        Err(error) => {
            report.push(error, None);
            None
        }
    }
}

//! `ketch wal stat DIR`: what the log and its snapshots hold, as a normal open would see them.
//!
//! The log is opened read-only in the default recovery mode ([`RecoveryMode::TolerateTornTail`]),
//! so a torn tail is shown as a finding (what the next writable open would cut) rather than an
//! error. If that open fails on damage, the log is opened again in salvage mode, still
//! read-only, to show the valid prefix, and the command reports damage (exit code 1). Sealed
//! segments are described from their footers: stat reads no entry, so it is fast on any size of
//! log and does not detect damage inside sealed records; `ketch wal verify` does.

use std::io::Write;
use std::path::Path;

use ketch_storage::recovery::RecoveryReport;
use ketch_storage::snapshot::SnapshotMeta;
use ketch_storage::{HardState, RecoveryMode, SegmentInfo};

use super::data_dir::{self, OtherFile};
use super::json::Json;
use super::progress::human_bytes;
use super::{file_name, mode_name, open_read_only, InspectError, Verdict};

/// Shown when the newest segment is sealed and no active segment follows it.
pub const NEWEST_SEALED_NOTE: &str =
    "the newest segment is sealed and no active segment follows it: a crash between sealing \
     and starting the next segment leaves this, and so does deleting the newest segments; if \
     the log should hold later entries, they are gone";

/// Everything `stat` reports, gathered before anything is printed.
#[derive(Debug)]
pub struct Stat {
    /// The directory.
    pub dir: String,
    /// The recovery mode the shown view was opened with.
    pub mode: RecoveryMode,
    /// Why the default open failed, if it did (the view is then a salvage view).
    pub open_error: Option<String>,
    /// The log id from the segment headers.
    pub log_id: u64,
    /// First index of the log.
    pub first_index: u64,
    /// Last index of the log.
    pub last_index: u64,
    /// Last hard state written.
    pub hard_state: HardState,
    /// Every segment, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// What recovery found.
    pub report: RecoveryReport,
    /// Each snapshot file's header, or why it could not be read.
    pub snapshots: Vec<(String, Result<SnapshotMeta, String>)>,
    /// Files that are neither segments nor snapshots.
    pub others: Vec<OtherFile>,
    /// The newest segment is sealed: no active segment follows it.
    pub newest_sealed: bool,
}

impl Stat {
    /// Reads the directory (without writing to it).
    pub fn gather(dir: &Path) -> Result<Stat, InspectError> {
        let (wal, mode, open_error) = match open_read_only(dir, RecoveryMode::TolerateTornTail) {
            Ok(wal) => (wal, RecoveryMode::TolerateTornTail, None),
            Err(error) if error.is_corruption() => match open_read_only(dir, RecoveryMode::Salvage)
            {
                Ok(wal) => (wal, RecoveryMode::Salvage, Some(error.to_string())),
                Err(_) => return Err(error.into()),
            },
            Err(error) => return Err(error.into()),
        };
        let listing = data_dir::list(dir)?;
        let snapshots = listing
            .snapshots
            .iter()
            .map(|path| {
                let meta = data_dir::snapshot_meta(path).map_err(|e| e.to_string());
                (file_name(path), meta)
            })
            .collect();
        let mut segments = wal.segments();
        let mut newest_sealed = false;
        if let Some(newest) = segments.last_mut() {
            if !newest.sealed && data_dir::sealed_on_disk(newest)? {
                newest.sealed = true;
                newest_sealed = true;
            }
        }
        Ok(Stat {
            newest_sealed,
            dir: dir.display().to_string(),
            mode,
            open_error,
            log_id: segments.first().map_or(0, |s| s.header.log_id),
            first_index: wal.first_index(),
            last_index: wal.last_index(),
            hard_state: wal.hard_state(),
            segments,
            report: wal.recovery_report().clone(),
            snapshots,
            others: listing.others,
        })
    }

    /// Healthy unless the default open failed or a snapshot header is unreadable.
    pub fn verdict(&self) -> Verdict {
        let bad_snapshot = self.snapshots.iter().any(|(_, meta)| meta.is_err());
        if self.open_error.is_some() || bad_snapshot {
            Verdict::Damaged
        } else {
            Verdict::Healthy
        }
    }

    fn entry_count(&self) -> u64 {
        (self.last_index + 1).saturating_sub(self.first_index)
    }

    fn total_file_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.file_len).sum()
    }

    fn total_used_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.used_bytes).sum()
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line(format!("directory    {}", self.dir));
        line(format!("log id       {:016x}", self.log_id));
        if self.entry_count() == 0 {
            line(format!(
                "entries      none (next index {})",
                self.last_index + 1
            ));
        } else {
            line(format!(
                "entries      {}..={} ({} entries)",
                self.first_index,
                self.last_index,
                self.entry_count()
            ));
        }
        let HardState { term, vote, commit } = self.hard_state;
        let vote = if vote == 0 {
            "none".to_string()
        } else {
            vote.to_string()
        };
        line(format!(
            "hard state   term {term}, vote {vote}, commit {commit}"
        ));
        line(format!(
            "size         {} segments, {} used of {} on disk",
            self.segments.len(),
            human_bytes(self.total_used_bytes()),
            human_bytes(self.total_file_bytes())
        ));
        if let Some(error) = &self.open_error {
            line(format!("DAMAGE       a normal open fails: {error}"));
            line(
                "             shown below: the valid prefix, as a salvage open would keep it"
                    .into(),
            );
        }
        match &self.report.torn_tail {
            None if self.report.salvaged.is_empty() => line("recovery     clean".into()),
            None => {}
            Some(torn) => line(format!(
                "recovery     torn tail in {} at byte offset {}: {} bytes after the last complete \
                 batch would be cut by the next writable open ({})",
                file_name(&torn.path),
                torn.offset,
                torn.bytes,
                torn.reason
            )),
        }
        if self.newest_sealed {
            line(format!("note         {NEWEST_SEALED_NOTE}"));
        }
        for salvaged in &self.report.salvaged {
            let range = salvaged
                .index_range
                .map_or(String::new(), |(a, b)| format!(" (log indices {a}..={b})"));
            line(format!(
                "salvage      would drop {} from byte offset {}{range}: {}",
                file_name(&salvaged.path),
                salvaged.offset,
                salvaged.reason
            ));
        }
        line(String::new());
        line(format!(
            "{:>6}  {:<46}  {:>12}  {:<24}  {:>23}  state",
            "seq", "file", "first index", "live entries", "used / file bytes"
        ));
        for segment in &self.segments {
            let live = segment
                .live_range
                .map_or("none".to_string(), |(a, b)| format!("{a}..={b}"));
            line(format!(
                "{:>6}  {:<46}  {:>12}  {:<24}  {:>23}  {}",
                segment.header.seq,
                file_name(&segment.path),
                segment.header.first_index,
                live,
                format!("{} / {}", segment.used_bytes, segment.file_len),
                if segment.sealed { "sealed" } else { "active" }
            ));
        }
        line(String::new());
        if self.snapshots.is_empty() {
            line("snapshots    none".into());
        }
        for (name, meta) in &self.snapshots {
            match meta {
                Ok(meta) => line(format!(
                    "snapshot     {name}: index {}, term {}, content {} ({} B), compressed {} \
                     ({} B), ratio {:.2}, file {} B, membership {} B",
                    meta.index,
                    meta.term,
                    human_bytes(meta.uncompressed_bytes),
                    meta.uncompressed_bytes,
                    human_bytes(meta.compressed_bytes),
                    meta.compressed_bytes,
                    meta.compression_ratio(),
                    meta.file_len_bytes(),
                    meta.membership.len()
                )),
                Err(error) => line(format!("snapshot     {name}: DAMAGED: {error}")),
            }
        }
        for other in &self.others {
            line(format!(
                "other file   {} ({} B): {}",
                file_name(&other.path),
                other.len_bytes,
                other.kind.describe()
            ));
        }
        out
    }

    /// The machine-readable report: one JSON object.
    pub fn to_json(&self) -> Json {
        let segments = self
            .segments
            .iter()
            .map(|segment| {
                Json::Object(vec![
                    ("seq", Json::U64(segment.header.seq)),
                    ("prev_seq", Json::U64(segment.header.prev_seq)),
                    ("file", Json::str(file_name(&segment.path))),
                    ("first_index", Json::U64(segment.header.first_index)),
                    ("live_first", Json::opt_u64(segment.live_range.map(|r| r.0))),
                    ("live_last", Json::opt_u64(segment.live_range.map(|r| r.1))),
                    ("used_bytes", Json::U64(segment.used_bytes)),
                    ("file_bytes", Json::U64(segment.file_len)),
                    ("sealed", Json::Bool(segment.sealed)),
                ])
            })
            .collect();
        let torn_tail = self.report.torn_tail.as_ref().map_or(Json::Null, |torn| {
            Json::Object(vec![
                ("file", Json::str(file_name(&torn.path))),
                ("offset", Json::U64(torn.offset)),
                ("bytes", Json::U64(torn.bytes)),
                ("reason", Json::str(torn.reason.clone())),
            ])
        });
        let salvaged = self
            .report
            .salvaged
            .iter()
            .map(|salvaged| {
                Json::Object(vec![
                    ("file", Json::str(file_name(&salvaged.path))),
                    ("offset", Json::U64(salvaged.offset)),
                    (
                        "first_index",
                        Json::opt_u64(salvaged.index_range.map(|r| r.0)),
                    ),
                    (
                        "last_index",
                        Json::opt_u64(salvaged.index_range.map(|r| r.1)),
                    ),
                    ("reason", Json::str(salvaged.reason.clone())),
                ])
            })
            .collect();
        let snapshots = self
            .snapshots
            .iter()
            .map(|(name, meta)| match meta {
                Ok(meta) => Json::Object(vec![
                    ("file", Json::str(name.clone())),
                    ("index", Json::U64(meta.index)),
                    ("term", Json::U64(meta.term)),
                    ("uncompressed_bytes", Json::U64(meta.uncompressed_bytes)),
                    ("compressed_bytes", Json::U64(meta.compressed_bytes)),
                    ("file_bytes", Json::U64(meta.file_len_bytes())),
                    ("membership_bytes", Json::U64(meta.membership.len() as u64)),
                    ("compression_ratio", Json::F64(meta.compression_ratio())),
                ]),
                Err(error) => Json::Object(vec![
                    ("file", Json::str(name.clone())),
                    ("error", Json::str(error.clone())),
                ]),
            })
            .collect();
        let others = self
            .others
            .iter()
            .map(|other| {
                Json::Object(vec![
                    ("file", Json::str(file_name(&other.path))),
                    ("bytes", Json::U64(other.len_bytes)),
                    ("kind", Json::str(other.kind.describe())),
                ])
            })
            .collect();
        Json::Object(vec![
            ("dir", Json::str(self.dir.clone())),
            ("log_id", Json::str(format!("{:016x}", self.log_id))),
            ("first_index", Json::U64(self.first_index)),
            ("last_index", Json::U64(self.last_index)),
            ("entries", Json::U64(self.entry_count())),
            (
                "hard_state",
                Json::Object(vec![
                    ("term", Json::U64(self.hard_state.term)),
                    ("vote", Json::U64(self.hard_state.vote)),
                    ("commit", Json::U64(self.hard_state.commit)),
                ]),
            ),
            ("used_bytes", Json::U64(self.total_used_bytes())),
            ("file_bytes", Json::U64(self.total_file_bytes())),
            ("segments", Json::Array(segments)),
            (
                "recovery",
                Json::Object(vec![
                    ("mode", Json::str(mode_name(self.mode))),
                    (
                        "open_error",
                        self.open_error.clone().map_or(Json::Null, Json::Str),
                    ),
                    ("torn_tail", torn_tail),
                    ("newest_segment_sealed", Json::Bool(self.newest_sealed)),
                    ("salvaged", Json::Array(salvaged)),
                ]),
            ),
            ("snapshots", Json::Array(snapshots)),
            ("other_files", Json::Array(others)),
        ])
    }
}

/// Runs `ketch wal stat`: writes the report to `out`.
pub fn run(dir: &Path, json: bool, out: &mut dyn Write) -> Result<Verdict, InspectError> {
    if super::store::is_store_dir(dir) {
        let verdict = super::store::stat(dir, json, out)?;
        out.flush()?;
        return Ok(verdict);
    }
    let stat = Stat::gather(dir)?;
    if json {
        writeln!(out, "{}", stat.to_json().to_line())?;
    } else {
        out.write_all(stat.to_text().as_bytes())?;
    }
    out.flush()?;
    Ok(stat.verdict())
}

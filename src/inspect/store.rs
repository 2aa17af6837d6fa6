//! `ketch wal stat | verify | dump` on a [`LogStore`] directory: many groups' logs in one
//! write-ahead log (`*.kst` segments). The commands recognise such a directory by its files and
//! come here; a `Wal` directory keeps the single-log views of [`super::stat`],
//! [`super::verify`] and [`super::dump`].
//!
//! As for a `Wal`, the store is opened with [`Options::read_only`], so nothing in the directory
//! is created, repaired, renamed or deleted:
//! - `stat` opens in the default recovery mode, falling back to a salvage view (exit code 1)
//!   when that fails on damage, and lists every group's range and hard state;
//! - `verify` opens in strict mode and checks every record of every segment, then every live
//!   entry of every group; damage is reported with the file, the offset and, for a live entry,
//!   the group and index range it affects;
//! - `dump` needs `--group G` and prints that group's entries in the `Wal` dump's line formats.

use std::io::Write;
use std::path::Path;

use ketch_storage::{HardState, LogStore, Options, RecoveryMode};

use super::dump::{DumpOptions, EntryLines};
use super::json::Json;
use super::progress::human_bytes;
use super::{file_name, mode_name, InspectError, Verdict};

/// Entries read per call while dumping: bounds memory whatever the group's size.
const DUMP_CHUNK_ENTRIES: u64 = 4096;

/// True when `dir` holds store segment files (`*.kst`, or their `.tmp` / `.salvaged` forms).
pub fn is_store_dir(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.ends_with(".kst") || name.ends_with(".kst.tmp") || name.ends_with(".kst.salvaged")
    })
}

/// Opens the store in `dir` without writing anything, recovering in `mode`.
pub fn open_read_only(dir: &Path, mode: RecoveryMode) -> ketch_storage::Result<LogStore> {
    LogStore::open(
        dir,
        Options {
            read_only: true,
            recovery_mode: mode,
            prepare_segments_ahead: false,
            ..Options::default()
        },
    )
}

/// One group as `stat` shows it.
struct GroupRow {
    group: u64,
    first: u64,
    last: u64,
    hard_state: HardState,
}

impl GroupRow {
    fn entries(&self) -> u64 {
        (self.last + 1).saturating_sub(self.first)
    }
}

/// Runs `ketch wal stat` on a store directory.
pub fn stat(dir: &Path, json: bool, out: &mut dyn Write) -> Result<Verdict, InspectError> {
    let (store, mode, open_error) = match open_read_only(dir, RecoveryMode::TolerateTornTail) {
        Ok(store) => (store, RecoveryMode::TolerateTornTail, None),
        Err(error) if error.is_corruption() => {
            let store = open_read_only(dir, RecoveryMode::Salvage)?;
            (store, RecoveryMode::Salvage, Some(error.to_string()))
        }
        Err(error) => return Err(error.into()),
    };
    let stats = store.stats();
    let report = store.recovery_report();
    let groups: Vec<GroupRow> = store
        .group_ranges()
        .into_iter()
        .map(|(group, first, last, hard_state)| GroupRow {
            group,
            first,
            last,
            hard_state,
        })
        .collect();
    let verdict = if open_error.is_some() {
        Verdict::Damaged
    } else {
        Verdict::Healthy
    };
    if json {
        let rows = groups
            .iter()
            .map(|row| {
                Json::Object(vec![
                    ("group", Json::U64(row.group)),
                    ("first_index", Json::U64(row.first)),
                    ("last_index", Json::U64(row.last)),
                    ("entries", Json::U64(row.entries())),
                    ("term", Json::U64(row.hard_state.term)),
                    ("vote", Json::U64(row.hard_state.vote)),
                    ("commit", Json::U64(row.hard_state.commit)),
                ])
            })
            .collect();
        let object = Json::Object(vec![
            ("dir", Json::Str(dir.display().to_string())),
            ("kind", Json::Str("store".to_string())),
            ("recovery_mode", Json::Str(mode_name(mode).to_string())),
            (
                "open_error",
                open_error.clone().map_or(Json::Null, Json::Str),
            ),
            ("segments", Json::U64(stats.segments)),
            ("disk_bytes", Json::U64(stats.disk_bytes)),
            ("live_bytes", Json::U64(stats.live_bytes)),
            ("live_entries", Json::U64(stats.live_entries)),
            ("index_bytes", Json::U64(stats.index_bytes)),
            (
                "torn_tail",
                report.torn_tail.as_ref().map_or(Json::Null, |torn| {
                    Json::Object(vec![
                        ("file", Json::Str(file_name(&torn.path))),
                        ("offset", Json::U64(torn.offset)),
                        ("bytes", Json::U64(torn.bytes)),
                    ])
                }),
            ),
            ("groups", Json::Array(rows)),
        ]);
        writeln!(out, "{}", object.to_line())?;
        return Ok(verdict);
    }
    writeln!(out, "store      {}", dir.display())?;
    writeln!(out, "recovery   {}", mode_name(mode))?;
    if let Some(error) = &open_error {
        writeln!(
            out,
            "damage     a normal open fails: {error}; showing the salvage view"
        )?;
    }
    writeln!(
        out,
        "segments   {} ({} on disk, {} live in {} entries, {:.2}x)",
        stats.segments,
        human_bytes(stats.disk_bytes),
        human_bytes(stats.live_bytes),
        stats.live_entries,
        stats.disk_bytes as f64 / stats.live_bytes.max(1) as f64
    )?;
    writeln!(
        out,
        "index      {} in memory",
        human_bytes(stats.index_bytes)
    )?;
    if let Some(torn) = &report.torn_tail {
        writeln!(
            out,
            "torn tail  {} at byte offset {} ({} bytes): the next writable open cuts it",
            file_name(&torn.path),
            torn.offset,
            torn.bytes
        )?;
    }
    writeln!(out, "groups     {}", groups.len())?;
    if !groups.is_empty() {
        writeln!(
            out,
            "{:>20}  {:>20}  {:>20}  {:>10}  {:>10}  {:>10}  {:>10}",
            "group", "first", "last", "entries", "term", "vote", "commit"
        )?;
    }
    for row in &groups {
        writeln!(
            out,
            "{:>20}  {:>20}  {:>20}  {:>10}  {:>10}  {:>10}  {:>10}",
            row.group,
            row.first,
            row.last,
            row.entries(),
            row.hard_state.term,
            row.hard_state.vote,
            row.hard_state.commit
        )?;
    }
    Ok(verdict)
}

/// Runs `ketch wal verify` on a store directory.
pub fn verify(dir: &Path, json: bool, out: &mut dyn Write) -> Result<Verdict, InspectError> {
    let opened = open_read_only(dir, RecoveryMode::Strict);
    let checked = opened.and_then(|store| {
        let bytes = store.verify()?;
        Ok((bytes, store.stats()))
    });
    let (verdict, summary) = match checked {
        Ok((bytes, stats)) => (
            Verdict::Healthy,
            format!(
                "healthy: {} of records checked in {} segments; {} groups, {} live entries",
                human_bytes(bytes),
                stats.segments,
                stats.groups,
                stats.live_entries
            ),
        ),
        Err(error) if error.is_corruption() => (Verdict::Damaged, format!("damaged: {error}")),
        Err(error) => return Err(error.into()),
    };
    if json {
        let object = Json::Object(vec![
            ("dir", Json::Str(dir.display().to_string())),
            ("kind", Json::Str("store".to_string())),
            ("healthy", Json::Bool(verdict == Verdict::Healthy)),
            ("summary", Json::Str(summary)),
        ]);
        writeln!(out, "{}", object.to_line())?;
    } else {
        writeln!(out, "{summary}")?;
    }
    Ok(verdict)
}

/// Runs `ketch wal dump --group G` on a store directory.
pub fn dump(
    dir: &Path,
    group: Option<u64>,
    options: &DumpOptions,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<Verdict, InspectError> {
    let store = open_read_only(dir, RecoveryMode::TolerateTornTail)?;
    let Some(group) = group else {
        let groups = store.groups();
        let shown: Vec<String> = groups.iter().take(10).map(u64::to_string).collect();
        return Err(InspectError::Usage(format!(
            "{} is a store of {} groups: pass --group G (groups: {}{})",
            dir.display(),
            groups.len(),
            shown.join(", "),
            if groups.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )));
    };
    if let (Some(from), Some(to)) = (options.from, options.to) {
        if from > to {
            return Err(InspectError::Usage(format!(
                "--from {from} is above --to {to}: nothing to dump"
            )));
        }
    }
    let (first, last) = (store.first_index(group), store.last_index(group));
    let lo = options.from.unwrap_or(first).max(first);
    let hi = options.to.map_or(last, |to| to.min(last)).saturating_add(1);
    if lo >= hi {
        let _ = writeln!(
            notes,
            "note: no entries to dump: group {group} holds {}",
            if first > last {
                "no entries".to_string()
            } else {
                format!("{first}..={last}")
            }
        );
        return Ok(Verdict::Healthy);
    }
    let mut lines = EntryLines::new(out, options);
    let mut at = lo;
    while at < hi {
        let end = hi.min(at.saturating_add(DUMP_CHUNK_ENTRIES));
        let visited = store.for_each_entry(group, at..end, |index, term, data| {
            lines.entry(index, term, data)
        });
        lines.check()?;
        visited?;
        at = end;
    }
    out.flush()?;
    Ok(Verdict::Healthy)
}

#[cfg(test)]
mod tests {
    use ketch_storage::{Entry, StoreBatch};

    use super::*;

    /// Group 9 holds 5..=6 in the first segment, which group 7's 100 KiB of later entries
    /// seal.
    fn store_with_two_groups(dir: &Path) {
        let options = Options {
            segment_size_bytes: 64 << 10,
            ..Options::default()
        };
        let store = LogStore::open(dir, options).unwrap();
        let mut batch = StoreBatch::new();
        batch.append(7, vec![Entry::new(1, 2, b"seven".to_vec())]);
        batch.append(
            9,
            vec![
                Entry::new(5, 3, b"nine-5".to_vec()),
                Entry::new(6, 3, b"nine-6".to_vec()),
            ],
        );
        batch.set_hard_state(
            9,
            HardState {
                term: 3,
                vote: 1,
                commit: 6,
            },
        );
        store.write(batch, true).unwrap();
        for index in 2..=101 {
            let mut batch = StoreBatch::new();
            batch.append(7, vec![Entry::new(index, 2, vec![b'x'; 1024])]);
            store.write(batch, false).unwrap();
        }
        store.sync().unwrap();
        assert!(store.stats().segments >= 2, "{:?}", store.stats());
    }

    #[test]
    fn a_store_directory_is_recognised_and_listed_by_group() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_store_dir(dir.path()));
        store_with_two_groups(dir.path());
        assert!(is_store_dir(dir.path()));
        let mut out = Vec::new();
        assert_eq!(stat(dir.path(), false, &mut out).unwrap(), Verdict::Healthy);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("groups     2"), "{text}");
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("9 "))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["9", "5", "6", "2", "3", "1", "6"], "{text}");
        let mut out = Vec::new();
        stat(dir.path(), true, &mut out).unwrap();
        let json = String::from_utf8(out).unwrap();
        assert!(
            json.contains("\"group\":7,\"first_index\":1,\"last_index\":101"),
            "{json}"
        );
    }

    #[test]
    fn dump_needs_a_group_and_prints_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        store_with_two_groups(dir.path());
        let options = DumpOptions::default();
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let refused = dump(dir.path(), None, &options, &mut out, &mut notes).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("pass --group G (groups: 7, 9)"),
            "{refused}"
        );
        dump(dir.path(), Some(9), &options, &mut out, &mut notes).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "index=5 term=3 bytes=6 data=\"nine-5\"\nindex=6 term=3 bytes=6 data=\"nine-6\"\n"
        );
    }

    #[test]
    fn verify_names_the_damaged_group() {
        let dir = tempfile::tempdir().unwrap();
        store_with_two_groups(dir.path());
        let mut out = Vec::new();
        assert_eq!(
            verify(dir.path(), false, &mut out).unwrap(),
            Verdict::Healthy
        );
        // Flip a byte inside group 9's first payload, in the oldest (sealed) segment.
        let mut segments: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "kst"))
            .collect();
        segments.sort();
        let segment = &segments[0];
        let mut bytes = std::fs::read(segment).unwrap();
        let at = bytes
            .windows(6)
            .position(|w| w == b"nine-5")
            .expect("payload in the segment");
        bytes[at] ^= 0x20;
        std::fs::write(segment, &bytes).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            verify(dir.path(), false, &mut out).unwrap(),
            Verdict::Damaged
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("group 9"), "{text}");
        assert!(text.contains(&file_name(segment)), "{text}");
    }
}

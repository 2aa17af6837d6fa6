//! `ketch wal stat | verify | dump` on a [`LogStore`] directory (many groups in one stream, its
//! segments named `*.kst`): per-group ranges and hard states, a full verify that names the
//! damaged group, and a dump of one group (`--group G`).
//!
//! As for a `Wal`, the store is opened read-only: nothing in the directory is created, repaired
//! or deleted. `stat` opens in the default recovery mode (a torn tail is a finding) and falls
//! back to salvage to show what is valid; `verify` opens strict.

use std::io::Write;
use std::path::Path;

use ketch_storage::{LogStore, Options, RecoveryMode};

use super::dump::{self, DumpOptions};
use super::json::Json;
use super::{mode_name, InspectError, Verdict};

/// True if `dir` holds store segments (`*.kst`), not `Wal` segments.
pub fn is_store_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|entry| entry.ok()).any(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.ends_with(ketch_storage::store::STORE_SEGMENT_SUFFIX))
        })
    })
}

fn open(dir: &Path, mode: RecoveryMode) -> ketch_storage::Result<LogStore> {
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

/// `ketch wal stat DIR` on a store: one line per group, then the store's totals.
pub fn stat(dir: &Path, json: bool, out: &mut dyn Write) -> Result<Verdict, InspectError> {
    let (store, mode, open_error) = match open(dir, RecoveryMode::TolerateTornTail) {
        Ok(store) => (store, RecoveryMode::TolerateTornTail, None),
        Err(error) if error.is_corruption() => match open(dir, RecoveryMode::Salvage) {
            Ok(store) => (store, RecoveryMode::Salvage, Some(error.to_string())),
            Err(_) => return Err(error.into()),
        },
        Err(error) => return Err(error.into()),
    };
    let stats = store.stats();
    let report = store.recovery_report();
    let ranges = store.group_ranges();
    if json {
        let groups = ranges
            .iter()
            .map(|(group, first, last, hard_state)| {
                Json::Object(vec![
                    ("group", Json::U64(*group)),
                    ("first_index", Json::U64(*first)),
                    ("last_index", Json::U64(*last)),
                    ("term", Json::U64(hard_state.term)),
                    ("vote", Json::U64(hard_state.vote)),
                    ("commit", Json::U64(hard_state.commit)),
                ])
            })
            .collect();
        let object = Json::Object(vec![
            ("dir", Json::str(dir.display().to_string())),
            ("kind", Json::str("store")),
            ("mode", Json::str(mode_name(mode))),
            (
                "open_error",
                open_error.clone().map_or(Json::Null, Json::Str),
            ),
            ("segments", Json::U64(stats.segments)),
            ("live_entries", Json::U64(stats.live_entries)),
            ("live_bytes", Json::U64(stats.live_bytes)),
            ("disk_bytes", Json::U64(stats.disk_bytes)),
            ("index_bytes", Json::U64(stats.index_bytes)),
            ("torn_tail", Json::Bool(report.torn_tail.is_some())),
            ("groups", Json::Array(groups)),
        ]);
        writeln!(out, "{}", object.to_line())?;
    } else {
        writeln!(
            out,
            "store {} ({} recovery)",
            dir.display(),
            mode_name(mode)
        )?;
        if let Some(error) = &open_error {
            writeln!(out, "damage: a normal open fails: {error}")?;
        }
        writeln!(
            out,
            "{} groups, {} segments, {} live entries ({} bytes), {} bytes on disk, index {} bytes",
            ranges.len(),
            stats.segments,
            stats.live_entries,
            stats.live_bytes,
            stats.disk_bytes,
            stats.index_bytes
        )?;
        if let Some(torn) = &report.torn_tail {
            writeln!(
                out,
                "torn tail in {} at offset {} ({}): a writable open cuts it",
                torn.path.display(),
                torn.offset,
                torn.reason
            )?;
        }
        for (group, first, last, hard_state) in &ranges {
            writeln!(
                out,
                "group {group}: entries {first}..={last} ({} live), term {} vote {} commit {}",
                (last + 1).saturating_sub(*first),
                hard_state.term,
                hard_state.vote,
                hard_state.commit
            )?;
        }
    }
    Ok(if open_error.is_some() || report.torn_tail.is_some() {
        Verdict::Damaged
    } else {
        Verdict::Healthy
    })
}

/// `ketch wal verify DIR` on a store: strict open, then every record and live entry.
pub fn verify(dir: &Path, json: bool, out: &mut dyn Write) -> Result<Verdict, InspectError> {
    let outcome = open(dir, RecoveryMode::Strict).and_then(|store| store.verify());
    let (verdict, problem) = match outcome {
        Ok(_) => (Verdict::Healthy, None),
        Err(error) if error.is_corruption() => (Verdict::Damaged, Some(error.to_string())),
        Err(error) => return Err(error.into()),
    };
    if json {
        let object = Json::Object(vec![
            ("dir", Json::str(dir.display().to_string())),
            ("kind", Json::str("store")),
            ("healthy", Json::Bool(verdict == Verdict::Healthy)),
            ("damage", problem.clone().map_or(Json::Null, Json::Str)),
        ]);
        writeln!(out, "{}", object.to_line())?;
    } else {
        match &problem {
            None => writeln!(
                out,
                "store {}: every record and live entry is intact",
                dir.display()
            )?,
            Some(problem) => writeln!(out, "damage: {problem}")?,
        }
    }
    Ok(verdict)
}

/// `ketch wal dump DIR --group G` on a store: group G's entries, one line each.
pub fn dump(
    dir: &Path,
    group: Option<u64>,
    options: &DumpOptions,
    out: &mut dyn Write,
) -> Result<Verdict, InspectError> {
    let Some(group) = group else {
        return Err(InspectError::Usage(
            "the directory holds a multi-group store: choose a group with --group G (ketch wal \
             stat lists them)"
                .into(),
        ));
    };
    let store = open(dir, RecoveryMode::TolerateTornTail)?;
    let (first, last) = (store.first_index(group), store.last_index(group));
    let from = options.from.unwrap_or(first).max(first);
    let to = options.to.unwrap_or(last).min(last);
    let mut line = String::new();
    // Bounded chunks, so a group of any size is dumped in bounded memory.
    const CHUNK_ENTRIES: u64 = 4096;
    let mut next = from;
    while next <= to {
        let end = to.min(next + CHUNK_ENTRIES - 1);
        let mut written = Ok(());
        store.for_each_entry(group, next..end + 1, |index, term, data| {
            if written.is_ok() {
                dump::write_line(&mut line, index, term, data, options);
                written = out.write_all(line.as_bytes());
            }
        })?;
        written?;
        next = end + 1;
    }
    out.flush()?;
    Ok(Verdict::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketch_storage::{Entry, StoreBatch};

    fn dump_options() -> DumpOptions {
        DumpOptions {
            from: None,
            to: None,
            format: dump::Format::Text,
            max_bytes: 64,
            progress: false,
        }
    }

    #[test]
    fn stat_verify_and_dump_read_a_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(
                dir.path(),
                Options {
                    segment_size_bytes: 64 << 10,
                    ..Options::default()
                },
            )
            .unwrap();
            let mut batch = StoreBatch::new();
            batch.append(
                3,
                vec![
                    Entry::new(1, 1, b"one".to_vec()),
                    Entry::new(2, 1, b"two".to_vec()),
                ],
            );
            batch.append(8, vec![Entry::new(5, 2, b"five".to_vec())]);
            store.write(batch, true).unwrap();
        }
        assert!(is_store_dir(dir.path()));
        let mut out = Vec::new();
        assert_eq!(stat(dir.path(), false, &mut out).unwrap(), Verdict::Healthy);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("group 3: entries 1..=2"), "{text}");
        assert!(text.contains("group 8: entries 5..=5"), "{text}");
        let mut out = Vec::new();
        assert_eq!(
            verify(dir.path(), true, &mut out).unwrap(),
            Verdict::Healthy
        );
        let mut out = Vec::new();
        dump(dir.path(), Some(3), &dump_options(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("two"), "{text}");
        assert!(matches!(
            dump(dir.path(), None, &dump_options(), &mut Vec::new()),
            Err(InspectError::Usage(_))
        ));
    }
}

//! Installing snapshots with crashes at any point: a child process appends entries, writes
//! snapshots (some matching its log, some "from a leader" whose term differs or whose index lies
//! beyond the log) and applies them to the log; the parent SIGKILLs it at random moments, then
//! reopens the directory as a restarting node would and checks it is consistent.
//!
//! `KETCH_INSTALL_ROUNDS` sets the number of kill rounds (default 20); `KETCH_INSTALL_SEED` replays.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use ketch_storage::snapshot::{SnapshotOptions, SnapshotStore};
use ketch_storage::{Entry, Options, Wal};

mod support;

use support::Rng;

const CHILD_DIR_VAR: &str = "KETCH_INSTALL_CHILD_DIR";
const CHILD_SEED_VAR: &str = "KETCH_INSTALL_CHILD_SEED";

fn wal_options() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        ..Options::default()
    }
}

fn data_for(index: u64, term: u64) -> Vec<u8> {
    format!("entry {index} of term {term} ")
        .repeat(1 + (index % 7) as usize)
        .into_bytes()
}

/// A snapshot's content: the (index, term) of every entry it covers, as a state machine would
/// fold them. Large enough to take several zstd blocks.
fn snapshot_content(index: u64, term: u64) -> Vec<u8> {
    let mut content = Vec::new();
    for i in 0..2000u64 {
        content.extend_from_slice(format!("key{i:05}={index}:{term};").as_bytes());
    }
    content
}

/// What a node does when it starts: the newest valid snapshot wins, and the log is brought in line
/// with it.
fn restart(dir: &Path) -> (Wal, Option<(u64, u64)>) {
    let store = SnapshotStore::open(dir, SnapshotOptions::default()).unwrap();
    let mut wal = Wal::open(dir, wal_options()).unwrap();
    let latest = match store.open_latest_valid().unwrap() {
        Some(mut reader) => {
            let meta = reader.meta().clone();
            let mut content = Vec::new();
            reader.read_to_end(&mut content).unwrap();
            assert_eq!(
                content,
                snapshot_content(meta.index, meta.term),
                "snapshot {}",
                meta.index
            );
            // The log is never compacted past the newest durable snapshot.
            assert!(
                wal.first_index() <= meta.index + 1,
                "log starts at {} but the newest snapshot ends at {}",
                wal.first_index(),
                meta.index
            );
            wal.apply_snapshot(meta.index, meta.term).unwrap();
            Some((meta.index, meta.term))
        }
        None => None,
    };
    (wal, latest)
}

#[test]
fn install_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_VAR).unwrap().parse().unwrap();
    let mut rng = Rng::new(seed);
    let dir = Path::new(&dir);
    let (mut wal, latest) = restart(dir);
    let store = SnapshotStore::open(dir, SnapshotOptions::default()).unwrap();
    let mut term = latest.map_or(1, |(_, t)| t) + 1;
    if wal.last_index() >= wal.first_index() {
        term = term.max(wal.entry(wal.last_index()).unwrap().term + 1);
    }
    println!("KETCH OPEN");
    loop {
        match rng.below(10) {
            0..=6 => {
                let lo = wal.last_index() + 1;
                let batch: Vec<Entry> = (lo..lo + 1 + rng.below(40))
                    .map(|i| Entry::new(i, term, data_for(i, term)))
                    .collect();
                wal.append(&batch).unwrap();
                wal.sync().unwrap();
                println!("KETCH D {}", wal.last_index());
            }
            7..=8 if wal.last_index() >= wal.first_index() => {
                // A local snapshot of applied entries: it matches the log.
                let index = wal.last_index() - rng.below(wal.last_index() - wal.first_index() + 1);
                let entry_term = wal.entry(index).unwrap().term;
                let mut writer = store.begin(index, entry_term, b"voters=1,2,3").unwrap();
                writer
                    .write_all(&snapshot_content(index, entry_term))
                    .unwrap();
                writer.finish().unwrap();
                wal.apply_snapshot(index, entry_term).unwrap();
                println!("KETCH M {index}");
            }
            _ => {
                // A snapshot from a new leader: a new term, at or beyond the end of the log.
                term += 1;
                let index = wal.last_index() + rng.below(30);
                let mut writer = store.begin(index, term, b"voters=1,2,3").unwrap();
                writer.write_all(&snapshot_content(index, term)).unwrap();
                writer.finish().unwrap();
                println!("KETCH L {index}");
                wal.apply_snapshot(index, term).unwrap();
                println!("KETCH R {index}");
            }
        }
    }
}

#[test]
fn sigkill_during_snapshot_install_leaves_a_consistent_directory() {
    let rounds: u64 = std::env::var("KETCH_INSTALL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = support::seed_from_env("KETCH_INSTALL_SEED");
    eprintln!("seed {seed} (replay: KETCH_INSTALL_SEED={seed} cargo test -p ketch-storage --test snapshot_install)");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut installs = 0;
    for round in 0..rounds {
        let child_seed = rng.next().to_string();
        let kill_after = Duration::from_millis(30 + rng.below(250));
        let lines = support::run_child_and_kill(
            "install_child",
            &[
                (CHILD_DIR_VAR, dir.path().display().to_string()),
                (CHILD_SEED_VAR, child_seed),
            ],
            kill_after,
        );
        installs += lines
            .iter()
            .filter(|l| l.starts_with('M') || l.starts_with('R'))
            .count();
        // Every index reported durable after the last leader snapshot began must be there.
        let mut must_hold = 0u64;
        for line in &lines {
            let mut parts = line.split(' ');
            match (
                parts.next(),
                parts.next().and_then(|n| n.parse::<u64>().ok()),
            ) {
                (Some("D"), Some(index)) => must_hold = must_hold.max(index),
                (Some("L"), Some(_)) => must_hold = 0,
                _ => {}
            }
        }
        let store_files_before: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let (wal, latest) = restart(dir.path());
        assert!(
            wal.last_index() >= must_hold,
            "seed {seed} round {round}: entries up to {must_hold} were durable, the log ends at {}",
            wal.last_index()
        );
        if let Some((index, term)) = latest {
            assert_eq!(
                wal.first_index(),
                index + 1,
                "seed {seed} round {round}: log must start after the snapshot"
            );
            let _ = term;
        }
        for entry in wal
            .entries(wal.first_index()..wal.last_index() + 1)
            .unwrap()
        {
            assert_eq!(
                entry.data,
                data_for(entry.index, entry.term),
                "seed {seed} round {round}"
            );
        }
        drop(wal);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "seed {seed} round {round}: temp files left after open: {leftovers:?} (before: {store_files_before:?})");
    }
    assert!(
        installs > 0,
        "no snapshot was installed: the test checked nothing"
    );
}

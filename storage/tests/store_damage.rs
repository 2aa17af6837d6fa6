//! Damaged store directories: a real store written through the API over several groups, then
//! bytes flipped at random places of its files (or whole files of random bytes). Open must
//! return Ok or a located error in every recovery mode, never panic; when it opens, every entry
//! it claims reads back or fails with a located corruption error, and `verify` never panics.
//! Undamaged stores reopen with every synced entry. The fuzz target `store_recovery` runs the
//! same checks on fuzzer-chosen inputs.
//!
//! `KETCH_DAMAGE_CASES` sets the number of cases (default 150); `KETCH_DAMAGE_SEED` replays one.

use std::path::Path;

use ketch_storage::{Entry, Error, LogStore, Options, RecoveryMode, StoreBatch};

mod support;

use support::Rng;

fn options(mode: u64, read_only: bool) -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        recovery_mode: match mode % 3 {
            0 => RecoveryMode::Strict,
            1 => RecoveryMode::TolerateTornTail,
            _ => RecoveryMode::Salvage,
        },
        prepare_segments_ahead: false,
        read_only,
        ..Options::default()
    }
}

/// Writes a store; returns each group's synced `(first, last)`.
fn write_store(dir: &Path, rng: &mut Rng) -> Vec<(u64, u64, u64)> {
    let store = LogStore::open(dir, options(1, false)).unwrap();
    for _ in 0..rng.below(120) {
        let group = rng.below(5);
        let (first, last) = (store.first_index(group), store.last_index(group));
        let mut batch = StoreBatch::new();
        match rng.below(8) {
            0..=4 => {
                let start = if last >= first && rng.below(4) == 0 {
                    first + rng.below(last - first + 1)
                } else {
                    last + 1
                };
                let len = (rng.below(3000)) as usize;
                batch.append(
                    group,
                    (start..start + 1 + rng.below(6))
                        .map(|i| Entry::new(i, 1 + rng.below(3), vec![i as u8; len]))
                        .collect(),
                );
            }
            5 => {
                batch.truncate_suffix(group, first + rng.below(last + 2 - first));
            }
            6 => {
                batch.compact_prefix(group, first + rng.below(40));
            }
            _ => {
                batch.remove_group(group);
            }
        }
        store.write(batch, rng.below(2) == 0).unwrap();
        if rng.below(20) == 0 {
            store.gc().unwrap();
        }
    }
    store.sync().unwrap();
    store
        .groups()
        .into_iter()
        .map(|g| (g, store.first_index(g), store.last_index(g)))
        .collect()
}

fn check_opens_cleanly(dir: &Path, options: Options, context: &str) {
    let store = match LogStore::open(dir, options) {
        Ok(store) => store,
        Err(Error::Corruption { .. } | Error::GroupCorruption { .. } | Error::Misuse { .. }) => {
            return
        }
        Err(other) => panic!("{context}: unexpected error kind: {other}"),
    };
    for group in store.groups() {
        let (first, last) = (store.first_index(group), store.last_index(group));
        match store.entries(group, first..last + 1) {
            Ok(entries) => assert_eq!(entries.len() as u64, last + 1 - first, "{context}"),
            Err(Error::GroupCorruption { group: named, .. }) => assert_eq!(named, group),
            Err(other) => panic!("{context}: reading group {group}: {other}"),
        }
    }
    let _ = store.verify();
}

#[test]
fn damaged_stores_open_or_fail_cleanly() {
    let cases: u64 = std::env::var("KETCH_DAMAGE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let seed = support::seed_from_env("KETCH_DAMAGE_SEED");
    eprintln!("damage seed {seed} (replay: KETCH_DAMAGE_SEED={seed} cargo test -p ketch-storage --test store_damage)");
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let dir = tempfile::tempdir().unwrap();
        let synced = write_store(dir.path(), &mut rng);
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".kst"))
            .collect();
        files.sort();
        let context = format!("seed {seed} case {case}");
        if case % 10 == 0 {
            // Undamaged: every synced entry is there.
            let store = LogStore::open(dir.path(), options(1, false)).unwrap();
            for (group, first, last) in &synced {
                assert_eq!(
                    (store.first_index(*group), store.last_index(*group)),
                    (*first, *last),
                    "{context}"
                );
                store.entries(*group, *first..*last + 1).unwrap();
            }
            store.verify().unwrap();
            continue;
        }
        let damages = 1 + rng.below(4);
        for _ in 0..damages {
            let file = &files[rng.below(files.len() as u64) as usize];
            let mut bytes = std::fs::read(file).unwrap();
            if rng.below(30) == 0 {
                let len = rng.below(bytes.len() as u64) as usize;
                bytes.truncate(len);
            } else if !bytes.is_empty() {
                // Mostly where records are: the first few KiB, and the footer at the end.
                let at = if rng.below(2) == 0 {
                    rng.below(8192.min(bytes.len() as u64))
                } else {
                    bytes.len() as u64 - 1 - rng.below(4096.min(bytes.len() as u64))
                } as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            std::fs::write(file, &bytes).unwrap();
        }
        let mode = rng.below(3);
        check_opens_cleanly(dir.path(), options(mode, true), &context);
        check_opens_cleanly(dir.path(), options(mode, false), &context);
        check_opens_cleanly(dir.path(), options(1, false), &context);
    }
}

#[test]
fn random_files_open_or_fail_cleanly() {
    let mut rng = Rng::new(support::seed_from_env("KETCH_DAMAGE_SEED"));
    for _ in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        for seq in 1..=1 + rng.below(3) {
            let len = rng.below(70_000) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if rng.below(2) == 0 && bytes.len() >= 128 {
                // A valid-looking header start, so parsing gets past the magic.
                bytes[..8].copy_from_slice(b"KETCHSTO");
            }
            std::fs::write(dir.path().join(format!("{seq:020}.kst")), &bytes).unwrap();
        }
        check_opens_cleanly(dir.path(), options(rng.below(3), false), "random files");
    }
}

//! `LogStore` scenarios: many groups in one store, reopen, torn tails, damage, misuse, garbage
//! collection.

use std::path::Path;

use ketch_storage::{
    Entry, Error, HardState, LogStore, Options, RecoveryMode, StoreBatch, StoreOptions,
};

fn small() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        prepare_segments_ahead: false,
        ..Options::default()
    }
}

fn entry(index: u64, term: u64, group: u64) -> Entry {
    Entry::new(
        index,
        term,
        format!("g{group}-i{index}-t{term}").into_bytes(),
    )
}

fn entries(group: u64, range: std::ops::Range<u64>, term: u64) -> Vec<Entry> {
    range.map(|index| entry(index, term, group)).collect()
}

#[test]
fn many_groups_write_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), small()).unwrap();
        for round in 0..50u64 {
            let mut batch = StoreBatch::new();
            for group in 1..=20u64 {
                batch.append(group, entries(group, round * 3 + 1..round * 3 + 4, 1));
                batch.set_hard_state(
                    group,
                    HardState {
                        term: 1,
                        vote: group,
                        commit: round * 3,
                    },
                );
            }
            store.write(batch, round % 5 == 4).unwrap();
        }
        assert_eq!(store.groups(), (1..=20).collect::<Vec<_>>());
        assert_eq!(store.last_index(7), 150);
        assert_eq!(store.entries(7, 10..12).unwrap(), entries(7, 10..12, 1));
        let stats = store.stats();
        assert!(
            stats.segments > 1,
            "the test must cross segments: {stats:?}"
        );
    }
    let store = LogStore::open(dir.path(), small()).unwrap();
    for group in 1..=20u64 {
        assert_eq!(store.first_index(group), 1);
        assert_eq!(store.last_index(group), 150);
        assert_eq!(
            store.entries(group, 1..151).unwrap(),
            entries(group, 1..151, 1)
        );
        assert_eq!(store.hard_state(group).vote, group);
    }
    assert_eq!(store.first_index(99), 1);
    assert_eq!(store.last_index(99), 0);
    assert_eq!(store.hard_state(99), HardState::default());
}

#[test]
fn conflicting_appends_truncation_compaction_and_removal_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), small()).unwrap();
        let mut batch = StoreBatch::new();
        batch.append(1, entries(1, 1..11, 1));
        batch.append(2, entries(2, 5..9, 1));
        batch.append(3, entries(3, 1..4, 1));
        store.write(batch, true).unwrap();
        let mut batch = StoreBatch::new();
        batch.append(1, entries(1, 6..8, 2)); // conflict: replaces 6..=10
        batch.truncate_suffix(2, 7);
        store.write(batch, false).unwrap();
        store.compact_prefix(1, 3).unwrap();
        store.remove_group(3).unwrap();
        assert_eq!(store.first_index(1), 3);
        assert!(matches!(
            store.entries(1, 2..4),
            Err(Error::OutOfRange { .. })
        ));
        store.sync().unwrap();
    }
    let store = LogStore::open(dir.path(), small()).unwrap();
    assert_eq!(store.groups(), vec![1, 2]);
    assert_eq!((store.first_index(1), store.last_index(1)), (3, 7));
    let mut expected = entries(1, 3..6, 1);
    expected.extend(entries(1, 6..8, 2));
    assert_eq!(store.entries(1, 3..8).unwrap(), expected);
    assert_eq!((store.first_index(2), store.last_index(2)), (5, 6));
    assert_eq!((store.first_index(3), store.last_index(3)), (1, 0));
}

#[test]
fn a_gap_is_misuse_and_nothing_of_the_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    let mut batch = StoreBatch::new();
    batch.append(1, entries(1, 1..4, 1));
    store.write(batch, true).unwrap();
    let written = store.stats().bytes_written;
    let mut batch = StoreBatch::new();
    batch.append(2, entries(2, 1..3, 1));
    batch.append(1, entries(1, 5..6, 1));
    let error = store.write(batch, true).unwrap_err();
    match &error {
        Error::Misuse { reason } => {
            assert!(reason.contains("group 1"), "{reason}");
            assert!(reason.contains('5'), "{reason}");
        }
        other => panic!("expected misuse, got {other}"),
    }
    assert_eq!(store.stats().bytes_written, written);
    assert_eq!(store.last_index(2), 0);
}

#[test]
fn segments_without_live_entries_are_freed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(
        dir.path(),
        small(),
        StoreOptions {
            rewrite_bytes_per_round: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let data = vec![7u8; 1000];
    for index in 1..=400u64 {
        let mut batch = StoreBatch::new();
        batch.append(1, vec![Entry::new(index, 1, data.clone())]);
        store.write(batch, false).unwrap();
    }
    let before = store.stats();
    assert!(before.segments >= 6, "{before:?}");
    store.compact_prefix(1, 390).unwrap();
    store.sync().unwrap();
    let after = store.stats();
    assert!(after.segments <= 2, "{after:?}");
    assert!(after.segments_freed >= before.segments - 2);
    drop(store);
    let store = LogStore::open(dir.path(), small()).unwrap();
    assert_eq!(store.first_index(1), 390);
    assert_eq!(store.entries(1, 390..401).unwrap().len(), 11);
}

#[test]
fn a_lagging_group_is_rewritten_forward_and_its_segment_freed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    let data = vec![1u8; 500];
    let mut lagging_last = 0;
    for round in 1..=600u64 {
        let mut batch = StoreBatch::new();
        batch.append(1, vec![Entry::new(round, 1, data.clone())]);
        if round % 50 == 1 {
            lagging_last += 1;
            batch.append(2, vec![Entry::new(lagging_last, 1, b"lag".to_vec())]);
        }
        store.write(batch, false).unwrap();
        if round > 20 {
            store.compact_prefix(1, round - 20).unwrap();
        }
    }
    store.gc().unwrap();
    let stats = store.stats();
    assert!(stats.rewritten_bytes > 0, "{stats:?}");
    assert!(
        stats.disk_bytes <= 4 * (64 << 10),
        "lagging group pins segments: {stats:?}"
    );
    assert_eq!(
        store.entries(2, 1..lagging_last + 1).unwrap().len() as u64,
        lagging_last
    );
    drop(store);
    let store = LogStore::open(dir.path(), small()).unwrap();
    assert_eq!(store.last_index(2), lagging_last);
    assert_eq!(
        store.entries(2, 1..lagging_last + 1).unwrap()[0].data,
        b"lag"
    );
    assert_eq!(store.entries(1, 580..601).unwrap().len(), 21);
}

fn active_segment(dir: &Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kst"))
        .collect();
    segments.sort();
    segments.pop().unwrap()
}

#[test]
fn a_wal_directory_and_a_store_directory_refuse_each_other() {
    let dir = tempfile::tempdir().unwrap();
    drop(LogStore::open(dir.path(), small()).unwrap());
    let error = ketch_storage::Wal::open(dir.path(), small()).unwrap_err();
    assert!(error.to_string().contains(".kst"), "{error}");
    let wal_dir = tempfile::tempdir().unwrap();
    drop(ketch_storage::Wal::open(wal_dir.path(), small()).unwrap());
    let error = LogStore::open(wal_dir.path(), small()).unwrap_err();
    assert!(error.to_string().contains(".wal"), "{error}");
}

#[test]
fn torn_tail_at_every_offset_of_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (tail_start, tail_end) = {
        let store = LogStore::open(dir.path(), small()).unwrap();
        let mut batch = StoreBatch::new();
        batch.append(1, entries(1, 1..4, 1));
        store.write(batch, true).unwrap();
        let before = std::fs::read(active_segment(dir.path())).unwrap();
        let mut batch = StoreBatch::new();
        batch.append(1, entries(1, 4..6, 1));
        batch.append(2, entries(2, 1..3, 1));
        batch.set_hard_state(
            2,
            HardState {
                term: 1,
                vote: 1,
                commit: 1,
            },
        );
        store.write(batch, true).unwrap();
        let after = std::fs::read(active_segment(dir.path())).unwrap();
        let start = before.iter().zip(&after).position(|(a, b)| a != b).unwrap();
        let end = after.len()
            - after
                .iter()
                .rev()
                .zip(before.iter().rev())
                .position(|(a, b)| a != b)
                .unwrap();
        (start, end)
    };
    let path = active_segment(dir.path());
    let full = std::fs::read(&path).unwrap();
    let mut original = full.clone();
    // The bytes before the batch as they were: zeros where the batch went.
    for byte in &mut original[tail_start..tail_end] {
        *byte = 0;
    }
    for cut in tail_start..=tail_end {
        let copy = tempfile::tempdir().unwrap();
        let mut bytes = original.clone();
        bytes[tail_start..cut].copy_from_slice(&full[tail_start..cut]);
        std::fs::write(copy.path().join(path.file_name().unwrap()), &bytes).unwrap();
        let whole = cut == tail_end;
        let strict = LogStore::open(
            copy.path(),
            Options {
                recovery_mode: RecoveryMode::Strict,
                read_only: true,
                ..small()
            },
        );
        if !whole && cut > tail_start {
            assert!(strict.is_err(), "strict open accepted a tail torn at {cut}");
        }
        let store = LogStore::open(copy.path(), small())
            .unwrap_or_else(|e| panic!("open after a tear at {cut}: {e}"));
        if whole {
            assert_eq!(store.last_index(1), 5, "cut at {cut}");
            assert_eq!(store.entries(2, 1..3).unwrap(), entries(2, 1..3, 1));
            assert_eq!(store.hard_state(2).vote, 1);
        } else {
            assert_eq!(store.last_index(1), 3, "cut at {cut}");
            assert_eq!(store.last_index(2), 0, "cut at {cut}");
            assert_eq!(store.hard_state(2), HardState::default());
        }
        assert_eq!(store.entries(1, 1..4).unwrap(), entries(1, 1..4, 1));
    }
}

#[test]
fn a_bit_flip_in_a_sealed_segment_names_the_group_and_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), small()).unwrap();
        for index in 1..=200u64 {
            let mut batch = StoreBatch::new();
            batch.append(5, vec![Entry::new(index, 1, vec![index as u8; 700])]);
            store.write(batch, false).unwrap();
        }
        store.sync().unwrap();
    }
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kst"))
        .collect();
    segments.sort();
    let sealed = &segments[0];
    let mut bytes = std::fs::read(sealed).unwrap();
    // An entry's data byte, well after the checkpoint.
    bytes[1000] ^= 0x20;
    std::fs::write(sealed, &bytes).unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    let mut ranges = Vec::new();
    for error in [
        store.entries(5, 1..201).unwrap_err(),
        store.verify().unwrap_err(),
    ] {
        match &error {
            Error::GroupCorruption {
                group,
                path,
                index_range,
                ..
            } => {
                assert_eq!(*group, 5);
                assert_eq!(path, sealed);
                assert!(index_range.is_some(), "{error}");
                ranges.push(*index_range);
            }
            other => panic!("expected group corruption, got {other}"),
        }
    }
    assert_eq!(ranges[0], ranges[1], "read and verify name the same entry");
}

#[test]
fn concurrent_synced_writers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(LogStore::open(dir.path(), small()).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 1..=100u64 {
                    let mut batch = StoreBatch::new();
                    for group in thread * 10..thread * 10 + 10 {
                        batch.append(group, vec![entry(round, 1, group)]);
                    }
                    store.write(batch, true).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = store.stats();
    assert!(stats.batches >= 400, "{stats:?}");
    assert!(stats.syncs < stats.batches, "{stats:?}");
    for group in 0..40 {
        assert_eq!(store.last_index(group), 100);
    }
}

type Contents = Vec<(u64, u64, u64, HardState, Vec<Entry>)>;

fn contents(store: &LogStore) -> Contents {
    store
        .groups()
        .into_iter()
        .map(|group| {
            let (first, last) = (store.first_index(group), store.last_index(group));
            let read = store.entries(group, first..last + 1).unwrap();
            (group, first, last, store.hard_state(group), read)
        })
        .collect()
}

fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A store where one group lags (pins old segments) while another compacts: gc rewrites.
fn lagging_store(dir: &Path) {
    let store = LogStore::open_with(
        dir,
        small(),
        StoreOptions {
            rewrite_bytes_per_round: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut lagging = 0;
    for round in 1..=400u64 {
        let mut batch = StoreBatch::new();
        batch.append(1, vec![Entry::new(round, 1, vec![round as u8; 600])]);
        if round % 40 == 1 {
            lagging += 1;
            batch.append(2, vec![entry(lagging, 1, 2)]);
            batch.set_hard_state(
                2,
                HardState {
                    term: 1,
                    vote: 2,
                    commit: lagging,
                },
            );
        }
        store.write(batch, false).unwrap();
        if round > 10 {
            store.compact_prefix(1, round - 10).unwrap();
        }
    }
    store.sync().unwrap();
}

#[test]
fn a_rewrite_interrupted_at_every_write_and_sync_recovers_the_same_content() {
    let base = tempfile::tempdir().unwrap();
    lagging_store(base.path());
    let expected = contents(&LogStore::open(base.path(), small()).unwrap());
    assert!(expected.len() == 2 && expected[1].4.len() == 10);
    for fail_syncs in [false, true] {
        let mut step = 0;
        loop {
            let dir = tempfile::tempdir().unwrap();
            copy_files(base.path(), dir.path());
            let faults = std::sync::Arc::new(ketch_storage::FaultInjector::default());
            let options = Options {
                fault_injector: Some(std::sync::Arc::clone(&faults)),
                ..small()
            };
            let store = LogStore::open(dir.path(), options).unwrap();
            if fail_syncs {
                faults.fail_sync_after(step);
            } else {
                faults.fail_write_after(step, 9, false);
            }
            let outcome = store.gc();
            faults.clear();
            if outcome.is_err() {
                assert!(store.is_poisoned(), "a failed gc poisons the store");
            }
            drop(store);
            let store = LogStore::open(dir.path(), small()).unwrap();
            assert_eq!(
                contents(&store),
                expected,
                "after gc failed at {} {step}",
                if fail_syncs { "sync" } else { "write" }
            );
            store.verify().unwrap();
            let report = store.gc().unwrap();
            if let Ok(done) = &outcome {
                assert!(
                    done.rewritten_bytes > 0 && done.segments_freed > 0,
                    "{done:?}"
                );
                assert!(step > 0, "the first gc step must be able to fail");
                assert_eq!(report.rewritten_bytes, 0, "gc had finished");
                break;
            }
            step += 1;
            assert!(step < 10_000, "gc never finishes");
        }
    }
}

#[test]
fn a_failed_write_or_sync_poisons_the_store() {
    for fail_sync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let faults = std::sync::Arc::new(ketch_storage::FaultInjector::default());
        let options = Options {
            fault_injector: Some(std::sync::Arc::clone(&faults)),
            ..small()
        };
        let store = LogStore::open(dir.path(), options).unwrap();
        if fail_sync {
            faults.fail_sync_after(0);
        } else {
            faults.fail_write_after(0, 5, true);
        }
        let mut batch = StoreBatch::new();
        batch.append(1, entries(1, 1..3, 1));
        assert!(store.write(batch, true).is_err());
        let mut batch = StoreBatch::new();
        batch.append(2, entries(2, 1..3, 1));
        assert!(matches!(
            store.write(batch, true),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(store.sync(), Err(Error::Poisoned { .. })));
        assert!(matches!(
            store.entries(1, 1..2),
            Err(Error::Poisoned { .. })
        ));
    }
}

#[test]
fn compaction_hints_name_the_group_that_pins_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(
        dir.path(),
        small(),
        StoreOptions {
            rewrite_bytes_per_round: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let data = vec![3u8; 500];
    for round in 1..=400u64 {
        let mut batch = StoreBatch::new();
        batch.append(1, vec![Entry::new(round, 1, data.clone())]);
        if round == 1 {
            batch.append(2, vec![entry(1, 1, 2)]);
        }
        store.write(batch, false).unwrap();
        if round > 10 {
            store.compact_prefix(1, round - 10).unwrap();
        }
    }
    store.sync().unwrap();
    let hints = store.compaction_hints();
    assert_eq!(hints.len(), 1, "{hints:?}");
    assert_eq!((hints[0].group, hints[0].first_index), (2, 1));
    assert!(hints[0].segment_live_fraction_permille < 100);
    let before = store.stats().segments;
    store.compact_prefix(2, 2).unwrap();
    store.sync().unwrap();
    assert!(
        store.stats().segments < before,
        "compacting the hinted group frees its segment"
    );
    assert!(store.compaction_hints().is_empty());
}

#[test]
fn apply_snapshot_keeps_a_matching_suffix_or_resets_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    let mut batch = StoreBatch::new();
    batch.append(1, entries(1, 1..11, 2));
    batch.append(2, entries(2, 1..11, 2));
    store.write(batch, true).unwrap();
    store.apply_snapshot(1, 6, 2).unwrap(); // entry 6 has term 2: keep 7..=10
    assert_eq!((store.first_index(1), store.last_index(1)), (7, 10));
    store.apply_snapshot(2, 20, 5).unwrap(); // beyond the log: reset, continue at 21
    assert_eq!((store.first_index(2), store.last_index(2)), (21, 20));
    drop(store);
    let store = LogStore::open(dir.path(), small()).unwrap();
    assert_eq!((store.first_index(1), store.last_index(1)), (7, 10));
    assert_eq!(store.entries(1, 7..11).unwrap(), entries(1, 7..11, 2));
    assert_eq!((store.first_index(2), store.last_index(2)), (21, 20));
    let mut batch = StoreBatch::new();
    batch.append(2, entries(2, 21..23, 6));
    store.write(batch, true).unwrap();
    assert_eq!(store.last_index(2), 22);
    // Applied again after the log was compacted to it (a restart): the entries after stay.
    store.apply_snapshot(1, 6, 2).unwrap();
    assert_eq!((store.first_index(1), store.last_index(1)), (7, 10));
    assert_eq!(store.entries(1, 7..11).unwrap(), entries(1, 7..11, 2));
    // Older than the log: refused, nothing lost.
    assert!(matches!(
        store.apply_snapshot(1, 3, 2),
        Err(ketch_storage::Error::Misuse { .. })
    ));
    assert_eq!((store.first_index(1), store.last_index(1)), (7, 10));
}

/// Reads of the active (unmapped) segment copy its frames in windows: frames larger than the
/// read-ahead, and one group's entries spread over more than a window by another's, come back
/// whole and verified, before and after the segment is sealed.
#[test]
fn reads_of_the_active_segment_return_large_and_scattered_entries_whole() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        segment_size_bytes: 8 << 20,
        prepare_segments_ahead: false,
        ..Options::default()
    };
    let data = |group: u64, index: u64| -> Vec<u8> {
        let len = if index % 7 == 0 {
            9000
        } else {
            40 + index as usize % 300
        };
        (0..len)
            .map(|at| (at as u64 * 31 + index * 7 + group) as u8)
            .collect()
    };
    let store = LogStore::open(dir.path(), options.clone()).unwrap();
    for index in 1..=400u64 {
        let mut batch = StoreBatch::new();
        batch.append(1, vec![Entry::new(index, 1, data(1, index))]);
        // Group 2 puts 16 KiB between each of group 1's entries: 400 of them span 6 MiB.
        batch.append(2, vec![Entry::new(index, 1, vec![index as u8; 16 << 10])]);
        store.write(batch, index % 50 == 0).unwrap();
    }
    let check = |store: &LogStore| {
        for (lo, hi) in [(1, 401), (7, 8), (200, 260), (399, 401)] {
            let got = store.entries(1, lo..hi).unwrap();
            assert_eq!(got.len() as u64, hi - lo);
            for entry in got {
                assert_eq!(entry.data, data(1, entry.index), "entry {}", entry.index);
            }
        }
        let mut seen = 0;
        store
            .for_each_entry(2, 1..401, |index, _, bytes| {
                assert_eq!(bytes, &vec![index as u8; 16 << 10][..]);
                seen += 1;
            })
            .unwrap();
        assert_eq!(seen, 400);
    };
    check(&store);
    assert!(store.verify().unwrap() > 6 << 20);
    drop(store);
    let store = LogStore::open(dir.path(), options).unwrap();
    check(&store);
    // Fill past the segment so the entries above are in a sealed, mapped segment.
    let mut next = 401;
    while store.stats().segments < 2 {
        let mut batch = StoreBatch::new();
        batch.append(2, vec![Entry::new(next, 1, vec![next as u8; 16 << 10])]);
        store.write(batch, false).unwrap();
        next += 1;
    }
    check(&store);
}

/// The borrowing write is the same write as a batch of one append: same checks, same result.
#[test]
fn write_entries_borrows_and_checks_like_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    store
        .write_entries(5, 10, 2, &[b"ten", b"eleven"], true)
        .unwrap();
    store.write_entries(5, 12, 3, &[], true).unwrap(); // nothing to do
    assert_eq!((store.first_index(5), store.last_index(5)), (10, 11));
    let got = store.entries(5, 10..12).unwrap();
    assert_eq!(got[1], Entry::new(11, 2, b"eleven".to_vec()));
    // A conflict replaces the suffix, as an append in a batch does.
    store
        .write_entries(5, 11, 4, &[b"eleven'", b"twelve"], false)
        .unwrap();
    assert_eq!(store.entries(5, 11..13).unwrap()[0].data, b"eleven'");
    let gap = store.write_entries(5, 20, 4, &[b"x"], true).unwrap_err();
    assert!(matches!(gap, Error::Misuse { .. }), "{gap}");
    assert!(store.write_entries(6, 0, 1, &[b"x"], true).is_err());
    assert_eq!(store.last_index(5), 12);
    drop(store);
    let store = LogStore::open(dir.path(), small()).unwrap();
    assert_eq!(store.entries(5, 10..13).unwrap()[2].data, b"twelve");
    assert_eq!(store.groups(), vec![5]);
}

//! Behaviour of the write-ahead log through its public API: appends, reads, truncation,
//! compaction, hard state, reopen, recovery from torn tails and corruption.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ketch_storage::{Entry, Error, HardState, Options, RecoveryMode, Wal, WriteBatch};

const SMALL_SEGMENT_BYTES: u64 = 64 << 10;

fn small_options() -> Options {
    Options {
        segment_size_bytes: SMALL_SEGMENT_BYTES,
        ..Options::default()
    }
}

fn payload(index: u64, term: u64) -> Vec<u8> {
    let len = (index * 37 % 300) as usize;
    (0..len)
        .map(|i| (index as usize * 31 + i + term as usize) as u8)
        .collect()
}

fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..hi)
        .map(|i| Entry::new(i, term, payload(i, term)))
        .collect()
}

/// Appends `lo..hi` in batches of 10 entries, so that segments roll between batches.
fn append_in_batches(wal: &mut Wal, lo: u64, hi: u64, term: u64) {
    let mut next = lo;
    while next < hi {
        let end = (next + 10).min(hi);
        wal.append(&entries(next, end, term)).unwrap();
        next = end;
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

fn check_entries(wal: &Wal, lo: u64, hi: u64, term_of: impl Fn(u64) -> u64) {
    let read = wal.entries(lo..hi).unwrap();
    assert_eq!(read.len() as u64, hi - lo);
    for entry in read {
        let term = term_of(entry.index);
        assert_eq!(entry.term, term, "term of entry {}", entry.index);
        assert_eq!(
            entry.data,
            payload(entry.index, term),
            "data of entry {}",
            entry.index
        );
    }
}

#[test]
fn empty_log_has_first_index_one_past_last() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path().join("log"), Options::default()).unwrap();
    assert_eq!(wal.first_index(), 1);
    assert_eq!(wal.last_index(), 0);
    assert_eq!(wal.hard_state(), HardState::default());
    assert!(matches!(wal.entries(1..2), Err(Error::OutOfRange { .. })));
    assert!(wal.entries(1..1).unwrap().is_empty());
}

#[test]
fn appends_survive_reopen_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = Wal::open(dir.path(), small_options()).unwrap();
        append_in_batches(&mut wal, 1, 2000, 3);
        wal.sync().unwrap();
        assert!(
            segment_files(dir.path()).len() > 5,
            "the test must span several segments"
        );
        check_entries(&wal, 1, 2000, |_| 3);
    }
    let wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!(wal.last_index(), 1999);
    check_entries(&wal, 1, 2000, |_| 3);
    // Sealed segments were loaded from footers; only the tail was scanned.
    let report = wal.recovery_report();
    assert!(report.tail_bytes_scanned < SMALL_SEGMENT_BYTES);
    assert!(report.torn_tail.is_none());
    wal.verify().unwrap();
}

#[test]
fn non_contiguous_append_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(&entries(1, 4, 1)).unwrap();
    let gap = wal.append(&[Entry::new(5, 1, b"x".to_vec())]);
    assert!(matches!(gap, Err(Error::Misuse { .. })), "{gap:?}");
    let overlap = wal.append(&[Entry::new(3, 1, b"x".to_vec())]);
    assert!(matches!(overlap, Err(Error::Misuse { .. })));
    let inner_gap = wal.append(&[Entry::new(4, 1, vec![]), Entry::new(6, 1, vec![])]);
    assert!(matches!(inner_gap, Err(Error::Misuse { .. })));
    assert_eq!(wal.last_index(), 3);
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(
        Wal::open(dir.path(), Options::default())
            .unwrap()
            .last_index(),
        3
    );
}

#[test]
fn truncated_entries_never_come_back_and_new_ones_win() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = Wal::open(dir.path(), small_options()).unwrap();
        append_in_batches(&mut wal, 1, 1500, 1);
        // Truncate into an earlier, sealed segment, then write a different suffix.
        wal.truncate_suffix(700).unwrap();
        assert_eq!(wal.last_index(), 699);
        append_in_batches(&mut wal, 700, 800, 2);
        wal.sync().unwrap();
    }
    let term_of = |i: u64| if i < 700 { 1 } else { 2 };
    let mut wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!(wal.last_index(), 799);
    check_entries(&wal, 1, 800, term_of);
    // Once more, after the truncating segment itself was sealed.
    append_in_batches(&mut wal, 800, 2500, 2);
    wal.truncate_suffix(750).unwrap();
    wal.append(&entries(750, 760, 3)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!(wal.last_index(), 759);
    check_entries(&wal, 1, 760, |i| {
        if i < 700 {
            1
        } else if i < 750 {
            2
        } else {
            3
        }
    });
    wal.verify().unwrap();
}

#[test]
fn compaction_deletes_whole_segments_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small_options()).unwrap();
    append_in_batches(&mut wal, 1, 3000, 1);
    wal.set_hard_state(HardState {
        term: 1,
        vote: 2,
        commit: 2999,
    })
    .unwrap();
    wal.sync().unwrap();
    let before = segment_files(dir.path()).len();
    wal.compact_prefix(2000).unwrap();
    assert_eq!(wal.first_index(), 2000);
    let after = segment_files(dir.path()).len();
    assert!(
        after < before,
        "compaction must delete segments ({before} -> {after})"
    );
    assert!(matches!(
        wal.entries(1999..2001),
        Err(Error::OutOfRange { .. })
    ));
    check_entries(&wal, 2000, 3000, |_| 1);
    drop(wal);
    let wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!(wal.first_index(), 2000);
    assert_eq!(wal.last_index(), 2999);
    assert_eq!(
        wal.hard_state(),
        HardState {
            term: 1,
            vote: 2,
            commit: 2999
        }
    );
    check_entries(&wal, 2000, 3000, |_| 1);
}

#[test]
fn compaction_beyond_the_end_restarts_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small_options()).unwrap();
    append_in_batches(&mut wal, 1, 500, 1);
    wal.compact_prefix(10_001).unwrap();
    assert_eq!(wal.first_index(), 10_001);
    assert_eq!(wal.last_index(), 10_000);
    append_in_batches(&mut wal, 10_001, 10_100, 4);
    wal.sync().unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (10_001, 10_099));
    check_entries(&wal, 10_001, 10_100, |_| 4);
}

#[test]
fn hard_state_survives_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small_options()).unwrap();
    let hs = HardState {
        term: 7,
        vote: 3,
        commit: 10,
    };
    wal.write(&WriteBatch {
        entries: &entries(1, 11, 7),
        hard_state: Some(hs),
        ..WriteBatch::default()
    })
    .unwrap();
    // Many more segments after the hard state record, then compact them all away.
    append_in_batches(&mut wal, 11, 4000, 7);
    wal.compact_prefix(3990).unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!(wal.hard_state(), hs);
    assert_eq!(wal.first_index(), 3990);
}

#[test]
fn unsynced_writes_may_be_lost_but_synced_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(&entries(1, 51, 1)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.last_index(), 50);
}

fn write_sample(dir: &Path, batches: u64) -> (PathBuf, Vec<u64>) {
    let mut wal = Wal::open(dir, small_options()).unwrap();
    let mut batch_ends = Vec::new();
    for batch in 0..batches {
        let lo = batch * 5 + 1;
        wal.append(&entries(lo, lo + 5, 1)).unwrap();
        batch_ends.push(wal.active_write_offset_for_tests());
    }
    wal.sync().unwrap();
    let path = segment_files(dir).pop().unwrap();
    (path, batch_ends)
}

trait WriteOffset {
    fn active_write_offset_for_tests(&self) -> u64;
}

impl WriteOffset for Wal {
    fn active_write_offset_for_tests(&self) -> u64 {
        self.segments().last().unwrap().used_bytes
    }
}

#[test]
fn torn_final_batch_is_cut_at_every_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = write_sample(dir.path(), 4);
    let final_start = ends[2];
    let final_end = ends[3];
    let pristine = std::fs::read(&path).unwrap();
    for cut in final_start..final_end {
        // A write that stopped at `cut`: the rest of the batch never reached the disk.
        let mut damaged = pristine.clone();
        damaged[cut as usize..final_end as usize].fill(0);
        std::fs::write(&path, &damaged).unwrap();
        let mut wal = Wal::open(dir.path(), small_options()).unwrap();
        if damaged == pristine {
            // The cut fell in bytes that were zero anyway (the commit record's reserved field):
            // the batch is whole.
            assert_eq!(wal.last_index(), 20, "cut at {cut}");
            wal.truncate_suffix(16).unwrap();
        } else {
            assert_eq!(wal.last_index(), 15, "cut at {cut}");
            let torn = wal.recovery_report().torn_tail.clone();
            let nonzero_left = damaged[final_start as usize..cut as usize]
                .iter()
                .any(|b| *b != 0);
            assert_eq!(torn.is_some(), nonzero_left, "cut at {cut}: {torn:?}");
        }
        check_entries(&wal, 1, 16, |_| 1);
        // Appending after the repair must not resurrect any part of the torn batch.
        wal.append(&entries(16, 17, 9)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), small_options()).unwrap();
        assert_eq!(wal.last_index(), 16, "cut at {cut}");
        assert_eq!(wal.entry(16).unwrap().term, 9);
        assert!(wal.recovery_report().torn_tail.is_none());
        drop(wal);
        std::fs::write(&path, &pristine).unwrap();
    }
}

#[test]
fn torn_tail_with_garbage_instead_of_zeros_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = write_sample(dir.path(), 3);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    // The last batch half-written, followed by garbage the size of a page.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    file.write_all_at(&garbage, (ends[1] + ends[2]) / 2)
        .unwrap();
    drop(file);
    let wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!(wal.last_index(), 10);
    let torn = wal
        .recovery_report()
        .torn_tail
        .clone()
        .expect("a torn tail is reported");
    assert_eq!(torn.offset, ends[1]);
}

#[test]
fn strict_mode_refuses_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = write_sample(dir.path(), 3);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0u8; 8], ends[1] + 20).unwrap();
    drop(file);
    let strict = Options {
        recovery_mode: RecoveryMode::Strict,
        ..small_options()
    };
    match Wal::open(dir.path(), strict) {
        Err(Error::Corruption {
            path: p, offset, ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(offset, ends[1]);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // The default mode cuts it.
    assert_eq!(
        Wal::open(dir.path(), small_options()).unwrap().last_index(),
        10
    );
}

#[test]
fn damage_before_a_complete_batch_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = write_sample(dir.path(), 6);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let flip_at = ends[1] + 40; // inside batch 3; batches 4..6 are intact after it
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, flip_at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x04], flip_at).unwrap();
    drop(file);
    let error = Wal::open(dir.path(), small_options()).unwrap_err();
    match &error {
        Error::Corruption {
            path: p,
            offset,
            index_range,
            ..
        } => {
            assert_eq!(p, &path);
            assert!(*offset >= ends[1] && *offset <= flip_at, "offset {offset}");
            assert_eq!(*index_range, Some((11, 30)));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    // Salvage keeps the valid prefix and says what it dropped.
    let salvage = Options {
        recovery_mode: RecoveryMode::Salvage,
        ..small_options()
    };
    let wal = Wal::open(dir.path(), salvage).unwrap();
    assert_eq!(wal.last_index(), 10);
    assert_eq!(wal.recovery_report().salvaged.len(), 1);
    assert_eq!(
        wal.recovery_report().salvaged[0].index_range,
        Some((11, 30))
    );
}

#[test]
fn bit_flips_in_sealed_segments_are_found_by_reads_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = Wal::open(dir.path(), small_options()).unwrap();
        append_in_batches(&mut wal, 1, 1200, 1);
        wal.sync().unwrap();
    }
    let sealed = segment_files(dir.path())[1].clone();
    let len = std::fs::metadata(&sealed).unwrap().len();
    let pristine = std::fs::read(&sealed).unwrap();
    let mut detected = 0;
    let mut rng = 0x1234_5678_9abc_def0u64;
    for _ in 0..40 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Flip a bit somewhere in the records region of the sealed segment.
        let used = pristine.iter().rposition(|b| *b != 0).unwrap() as u64;
        let offset = 128 + rng % (used.min(len) - 128 - 64);
        let mut damaged = pristine.clone();
        damaged[offset as usize] ^= 1 << (rng % 8);
        std::fs::write(&sealed, &damaged).unwrap();
        let wal = match Wal::open(dir.path(), small_options()) {
            Ok(wal) => wal,
            Err(Error::Corruption { path, .. }) => {
                assert_eq!(path, sealed);
                detected += 1;
                std::fs::write(&sealed, &pristine).unwrap();
                continue;
            }
            Err(other) => panic!("unexpected error {other}"),
        };
        let verified = wal.verify();
        let read_all = wal.entries(wal.first_index()..wal.last_index() + 1);
        match (&verified, &read_all) {
            (Err(Error::Corruption { path: p1, .. }), _) => {
                assert_eq!(p1, &sealed);
                detected += 1;
                if let Err(Error::Corruption {
                    path: p2, offset, ..
                }) = &read_all
                {
                    assert_eq!(p2, &sealed);
                    assert!(*offset <= offset_region_end(&pristine));
                }
            }
            (Ok(_), Ok(_)) => {
                // The flip landed in a dead frame (commit padding never read back): must not be
                // in any live entry, so data compares equal.
                check_entries(&wal, 1, 1200, |_| 1);
            }
            other => panic!("verify and reads disagree: {other:?}"),
        }
        drop(wal);
        std::fs::write(&sealed, &pristine).unwrap();
    }
    assert!(detected >= 35, "only {detected} of 40 flips detected");
}

fn offset_region_end(bytes: &[u8]) -> u64 {
    bytes.len() as u64
}

#[test]
fn missing_middle_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = Wal::open(dir.path(), small_options()).unwrap();
        append_in_batches(&mut wal, 1, 2000, 1);
        wal.sync().unwrap();
    }
    let files = segment_files(dir.path());
    std::fs::remove_file(&files[2]).unwrap();
    let error = Wal::open(dir.path(), small_options()).unwrap_err();
    match &error {
        Error::Corruption { path, reason, .. } => {
            assert_eq!(path, &files[3]);
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn missing_first_segment_that_was_never_compacted_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = Wal::open(dir.path(), small_options()).unwrap();
        append_in_batches(&mut wal, 1, 2000, 1);
        wal.sync().unwrap();
    }
    let files = segment_files(dir.path());
    std::fs::remove_file(&files[0]).unwrap();
    match Wal::open(dir.path(), small_options()).unwrap_err() {
        Error::Corruption {
            index_range: Some((first, _)),
            ..
        } => assert_eq!(first, 1),
        other => panic!("expected corruption with an index range, got {other:?}"),
    }
}

#[test]
fn foreign_segment_is_refused() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    for dir in [one.path(), two.path()] {
        let mut wal = Wal::open(dir, small_options()).unwrap();
        append_in_batches(&mut wal, 1, 2000, 1);
        wal.sync().unwrap();
    }
    let ours = segment_files(one.path());
    let theirs = segment_files(two.path());
    std::fs::copy(&theirs[2], &ours[2]).unwrap();
    let error = Wal::open(one.path(), small_options()).unwrap_err();
    assert!(error.to_string().contains("another log"), "{error}");
}

#[test]
fn read_only_open_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = write_sample(dir.path(), 3);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xAB; 7], ends[2] + 3).unwrap();
    drop(file);
    let before = std::fs::read(&path).unwrap();
    let read_only = Options {
        read_only: true,
        ..small_options()
    };
    let mut wal = Wal::open(dir.path(), read_only).unwrap();
    assert_eq!(wal.last_index(), 15);
    assert!(wal.recovery_report().torn_tail.is_some());
    assert!(matches!(
        wal.append(&entries(16, 17, 1)),
        Err(Error::Misuse { .. })
    ));
    drop(wal);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn huge_batch_larger_than_a_segment_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small_options()).unwrap();
    wal.append(&entries(1, 3, 1)).unwrap();
    let big = Entry::new(3, 1, vec![7u8; 200_000]);
    wal.append(std::slice::from_ref(&big)).unwrap();
    wal.append(&entries(4, 6, 1)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!(wal.entry(3).unwrap(), big);
    assert_eq!(wal.last_index(), 5);
}

/// The key-value service's largest entry: a 64 MiB value plus its key and encoding, above the
/// default 64 MiB segment.
#[test]
fn an_entry_of_64_mib_and_more_round_trips_with_default_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(&entries(1, 3, 1)).unwrap();
    let data: Vec<u8> = (0..(64 << 20) + 4096).map(|i| (i % 251) as u8).collect();
    let big = Entry::new(3, 1, data);
    wal.append(std::slice::from_ref(&big)).unwrap();
    wal.append(&entries(4, 6, 1)).unwrap();
    wal.sync().unwrap();
    assert_eq!(wal.entry(3).unwrap(), big);
    drop(wal);
    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.entry(3).unwrap(), big);
    assert_eq!(wal.entry(4).unwrap(), entries(4, 5, 1)[0]);
    assert_eq!(wal.last_index(), 5);
}

#[test]
fn compacted_segments_are_reused_and_their_stale_records_never_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small_options()).unwrap();
    append_in_batches(&mut wal, 1, 2000, 1);
    wal.compact_prefix(1500).unwrap();
    let spares = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".wal.spare")
            })
            .count()
    };
    assert_eq!(
        spares(dir.path()),
        2,
        "compaction keeps two files for reuse"
    );
    // New segments reuse the spares: the stale records in them belong to other sequence numbers.
    append_in_batches(&mut wal, 2000, 3000, 2);
    wal.sync().unwrap();
    assert!(spares(dir.path()) < 2, "rolling must consume spares");
    drop(wal);
    let wal = Wal::open(dir.path(), small_options()).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (1500, 2999));
    assert!(
        wal.recovery_report().torn_tail.is_none(),
        "a reused file must end cleanly"
    );
    check_entries(&wal, 1500, 3000, |i| if i < 2000 { 1 } else { 2 });
    wal.verify().unwrap();
}

#[test]
fn wal_and_group_commit_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    assert_send::<Wal>();
    assert_send::<ketch_storage::GroupCommit>();
    assert_sync::<ketch_storage::GroupCommit>();
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small_options()).unwrap();
    wal.append(&entries(1, 3, 1)).unwrap();
    let wal = std::thread::spawn(move || {
        wal.sync().unwrap();
        wal
    })
    .join()
    .unwrap();
    assert_eq!(wal.last_index(), 2);
}

#[test]
fn for_each_entry_visits_what_entries_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small_options()).unwrap();
    append_in_batches(&mut wal, 1, 1500, 5);
    wal.truncate_suffix(1400).unwrap();
    append_in_batches(&mut wal, 1400, 1450, 6);
    let mut visited = Vec::new();
    wal.for_each_entry(3..1450, |index, term, data| {
        visited.push(Entry::new(index, term, data.to_vec()))
    })
    .unwrap();
    assert_eq!(visited, wal.entries(3..1450).unwrap());
    assert!(matches!(
        wal.for_each_entry(0..5, |_, _, _| {}),
        Err(Error::OutOfRange { .. })
    ));
}

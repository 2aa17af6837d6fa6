//! Disk faults injected through `FaultInjector`: each fault reaches the caller as an error, a
//! failed fsync or write poisons the log (every later call fails, nothing is retried), and
//! reopening afterwards recovers every entry that was reported durable and nothing torn. A
//! stalled disk only delays: syncs return late but succeed, `clear` releases them, and nothing
//! is lost.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ketch_storage::{Entry, Error, FaultInjector, GroupCommit, Options, Wal};

fn entries(lo: u64, hi: u64) -> Vec<Entry> {
    (lo..hi)
        .map(|i| Entry::new(i, 1, format!("entry {i}").into_bytes()))
        .collect()
}

fn open_with_faults(dir: &std::path::Path) -> (Wal, Arc<FaultInjector>) {
    let faults = Arc::new(FaultInjector::default());
    let options = Options {
        segment_size_bytes: 64 << 10,
        fault_injector: Some(Arc::clone(&faults)),
        ..Options::default()
    };
    (Wal::open(dir, options).unwrap(), faults)
}

/// One appender thread: appends `payload` through `log` and returns what `append` returned.
fn spawn_append(
    log: &Arc<GroupCommit>,
    payload: &'static [u8],
) -> JoinHandle<ketch_storage::Result<RangeInclusive<u64>>> {
    let log = Arc::clone(log);
    std::thread::spawn(move || log.append(1, &[payload]))
}

fn assert_poisoned(wal: &mut Wal) {
    assert!(wal.is_poisoned());
    let next = wal.last_index() + 1;
    assert!(matches!(
        wal.append(&entries(next, next + 1)),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(wal.sync(), Err(Error::Poisoned { .. })));
    assert!(matches!(
        wal.truncate_suffix(1),
        Err(Error::Poisoned { .. }) | Ok(())
    ));
    assert!(matches!(wal.compact_prefix(2), Err(Error::Poisoned { .. })));
    assert!(matches!(wal.entries(1..2), Err(Error::Poisoned { .. })));
}

#[test]
fn failed_fsync_poisons_and_is_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_with_faults(dir.path());
    wal.append(&entries(1, 11)).unwrap();
    wal.sync().unwrap();
    wal.append(&entries(11, 21)).unwrap();
    faults.fail_sync_after(0);
    match wal.sync() {
        Err(Error::Io { op, path, .. }) => {
            assert_eq!(op, "fdatasync");
            assert!(path.to_string_lossy().ends_with(".wal"), "{path:?}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_poisoned(&mut wal);
    drop(wal);
    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert!(wal.last_index() >= 10, "synced entries lost");
    for entry in wal.entries(1..wal.last_index() + 1).unwrap() {
        assert_eq!(entry.data, format!("entry {}", entry.index).into_bytes());
    }
}

#[test]
fn torn_write_error_poisons_and_reopen_cuts_the_torn_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_with_faults(dir.path());
    wal.append(&entries(1, 11)).unwrap();
    wal.sync().unwrap();
    faults.fail_write_after(0, 37, false);
    let torn = wal.append(&entries(11, 21));
    assert!(
        matches!(torn, Err(Error::Io { op: "write", .. })),
        "{torn:?}"
    );
    assert_eq!(
        wal.last_index(),
        10,
        "a failed write must not change the index"
    );
    assert_poisoned(&mut wal);
    drop(wal);
    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.last_index(), 10);
    let torn_tail = wal
        .recovery_report()
        .torn_tail
        .clone()
        .expect("the 37 torn bytes are cut");
    assert!(torn_tail.bytes >= 12, "{torn_tail:?}");
}

#[test]
fn disk_full_is_reported_with_the_path_and_loses_nothing_synced() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_with_faults(dir.path());
    wal.append(&entries(1, 6)).unwrap();
    wal.sync().unwrap();
    faults.fail_write_after(0, 0, true);
    let error = wal.append(&entries(6, 7)).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("No space left") || message.contains("os error 28"),
        "{message}"
    );
    assert!(message.contains(".wal"), "{message}");
    assert_poisoned(&mut wal);
    drop(wal);
    // After space is freed, a reopen resumes.
    let mut wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.last_index(), 5);
    wal.append(&entries(6, 8)).unwrap();
    wal.sync().unwrap();
}

#[test]
fn group_commit_fsync_failure_fails_every_waiter_and_every_later_append() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_with_faults(dir.path());
    let log = Arc::new(GroupCommit::new(wal));
    log.append(1, &[b"before"]).unwrap();
    faults.fail_sync_after(0);
    let results: Vec<_> = (0..4)
        .map(|_| spawn_append(&log, b"during"))
        .map(|t| t.join().unwrap())
        .collect();
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    assert!(matches!(
        log.append(1, &[b"after"]),
        Err(Error::Poisoned { .. })
    ));
}

#[test]
fn a_failed_group_sync_fails_the_appenders_waiting_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_with_faults(dir.path());
    let log = Arc::new(GroupCommit::new(wal));
    log.append(1, &[b"before"]).unwrap();
    // The first sync is slow and then fails: the appenders that arrive meanwhile wait on it
    // (or on the sync after it), and every one of them must get an error, none a success.
    faults.stall_syncs(Duration::from_millis(300));
    faults.fail_sync_after(0);
    let leader = spawn_append(&log, b"leader");
    std::thread::sleep(Duration::from_millis(50));
    let waiters: Vec<_> = (0..4).map(|_| spawn_append(&log, b"waiter")).collect();
    let results: Vec<_> = std::iter::once(leader)
        .chain(waiters)
        .map(|t| t.join().unwrap())
        .collect();
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    faults.clear();
    assert!(matches!(
        log.append(1, &[b"after"]),
        Err(Error::Poisoned { .. })
    ));
}

#[test]
fn appenders_keep_appending_while_a_group_sync_is_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_with_faults(dir.path());
    let log = Arc::new(GroupCommit::new(wal));
    log.append(1, &[b"before"]).unwrap();
    // Far longer than the checks below: they must not wait for it.
    faults.stall_syncs(Duration::from_secs(30));
    let appenders: Vec<_> = (0..4).map(|_| spawn_append(&log, b"during")).collect();
    // The stalled fdatasync runs without the mutex, as a real slow one does: every appender
    // gets its batch written, and the log stays readable, long before the stall ends.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    while log.with_wal(|wal| wal.last_index()) < 5 {
        assert!(
            Instant::now() < deadline,
            "appends blocked behind a stalled sync"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        appenders.iter().all(|a| !a.is_finished()),
        "an append became durable through a stalled sync"
    );
    faults.clear();
    for appender in appenders {
        appender.join().unwrap().expect("released appends succeed");
    }
    assert_eq!(log.with_wal(|wal| wal.last_index()), 5);
}

#[test]
fn a_stalled_sync_delays_durability_but_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_with_faults(dir.path());
    wal.append(&entries(1, 11)).unwrap();
    wal.sync().unwrap();
    let stall = Duration::from_millis(200);
    faults.stall_syncs(stall);
    assert!(faults.syncs_stalled());
    for round in 0..3u64 {
        let lo = 11 + round * 10;
        wal.append(&entries(lo, lo + 10)).unwrap();
        let started = Instant::now();
        wal.sync().expect("a stalled sync still succeeds");
        let took = started.elapsed();
        assert!(took >= stall, "sync {round} took {took:?}, under the stall");
    }
    assert!(!wal.is_poisoned());
    faults.clear();
    assert!(!faults.syncs_stalled());
    wal.append(&entries(41, 51)).unwrap();
    let started = Instant::now();
    wal.sync().unwrap();
    // Generous: a loaded machine's fdatasync can be slow, but not 60 s (the stall's bound).
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(wal);
    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.last_index(), 50);
    for entry in wal.entries(1..51).unwrap() {
        assert_eq!(entry.data, format!("entry {}", entry.index).into_bytes());
    }
}

#[test]
fn clear_releases_group_commit_appenders_stuck_in_a_stalled_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_with_faults(dir.path());
    let log = Arc::new(GroupCommit::new(wal));
    log.append(1, &[b"before"]).unwrap();
    // Far longer than the test may take: only `clear` can end these waits in time.
    faults.stall_syncs(Duration::from_secs(600));
    let started = Instant::now();
    let appenders: Vec<_> = (0..4).map(|_| spawn_append(&log, b"during")).collect();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        appenders.iter().all(|a| !a.is_finished()),
        "an append became durable through a stalled sync"
    );
    faults.clear();
    let ranges: Vec<_> = appenders
        .into_iter()
        .map(|a| a.join().unwrap().expect("released appends succeed"))
        .collect();
    // The requested 600 s stall is cut to `SYNC_STALL_MAX` (60 s); clear ends it long before.
    assert!(
        started.elapsed() < FaultInjector::SYNC_STALL_MAX / 2,
        "clear did not release the stalled sync: {:?}",
        started.elapsed()
    );
    let mut indexes: Vec<u64> = ranges.iter().map(|r| *r.start()).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, vec![2, 3, 4, 5]);
    let wal = Arc::try_unwrap(log)
        .unwrap_or_else(|_| panic!("appenders are done"))
        .into_inner();
    drop(wal);
    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.last_index(), 5);
    for entry in wal.entries(2..6).unwrap() {
        assert_eq!(entry.data, b"during".to_vec());
    }
}

/// The segment temp files (`*.wal.tmp`) in `dir`.
fn temp_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".wal.tmp"))
        .collect()
}

/// Asserts that `error` is a disk-full write to a segment temp file that no longer exists.
fn assert_disk_full_on_removed_temp_file(error: &Error) {
    match error {
        Error::Io { op, path, source } => {
            assert_eq!(*op, "write", "{error}");
            assert_eq!(source.raw_os_error(), Some(28), "ENOSPC expected: {error}");
            assert!(path.to_string_lossy().ends_with(".wal.tmp"), "{error}");
            assert!(
                error.to_string().contains(&*path.to_string_lossy()),
                "{error}"
            );
            assert!(!path.exists(), "the temp file is left behind: {error}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn a_segment_prepared_on_a_full_disk_leaves_no_temp_file_and_the_error_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FaultInjector::default());
    // Inline preparation, on the caller's thread: its zero-fill writes meet the armed fault.
    let options = || Options {
        segment_size_bytes: 64 << 10,
        prepare_segments_ahead: false,
        fault_injector: Some(Arc::clone(&faults)),
        ..Options::default()
    };
    let big = vec![7u8; 40 << 10];
    let mut wal = Wal::open(dir.path(), options()).unwrap();
    wal.append(&[Entry::new(1, 1, big.clone())]).unwrap();
    wal.sync().unwrap();
    // Entry 2 does not fit: the footer is written (the one successful write), the segment is
    // sealed, and the next segment's first zero-fill write runs out of space 100 bytes in.
    faults.fail_write_after(1, 100, true);
    let error = wal.append(&[Entry::new(2, 1, big.clone())]).unwrap_err();
    assert_disk_full_on_removed_temp_file(&error);
    assert_eq!(temp_files(dir.path()), Vec::<std::path::PathBuf>::new());
    assert_poisoned(&mut wal);
    drop(wal);

    // A restart on the still-full disk: the last segment is sealed, so open prepares the next
    // one, fails, and again leaves nothing behind.
    faults.fail_write_after(0, 0, true);
    let error = Wal::open(dir.path(), options()).unwrap_err();
    assert_disk_full_on_removed_temp_file(&error);
    assert_eq!(temp_files(dir.path()), Vec::<std::path::PathBuf>::new());

    // Space freed: the restart recovers everything synced and takes appends again. A temp file
    // that a crash left behind (here: of a background preparation) is deleted at open.
    faults.clear();
    let stale = dir.path().join("next-1.wal.tmp");
    std::fs::write(&stale, vec![0u8; 4096]).unwrap();
    let mut wal = Wal::open(dir.path(), options()).unwrap();
    assert!(!stale.exists(), "open keeps a stale temp file");
    assert_eq!(temp_files(dir.path()), Vec::<std::path::PathBuf>::new());
    assert_eq!(wal.last_index(), 1);
    assert_eq!(wal.entry(1).unwrap().data, big);
    wal.append(&[Entry::new(2, 1, big.clone())]).unwrap();
    wal.sync().unwrap();
}

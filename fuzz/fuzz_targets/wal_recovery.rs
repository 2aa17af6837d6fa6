//! Feeds arbitrary bytes as the segment files of a log directory to recovery, in every recovery
//! mode. Open must return Ok or a clean error, never panic or hang; when it opens, every entry it
//! claims must read back (or fail with a located corruption error), and a full verify must not
//! panic.
//!
//! Input: byte 0 picks the mode; then up to 3 files, each a u16 little-endian length and bytes.
//! Files get valid segment names (sequence 1, 2, 3) so recovery reads them.
#![no_main]

use ketch_storage::{Options, RecoveryMode, Wal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    // On tmpfs when there is one: fsync is free there, and the fuzzer runs hundreds of times
    // faster; the recovery logic under test is the same.
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let mut files = 0u64;
    while rest.len() >= 2 && files < 3 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let len = len.min(rest.len() - 2);
        files += 1;
        // The first index in the name is not trusted by recovery beyond a consistency check.
        let first_index = if files == 1 { 1 } else { files * 10 };
        let name = format!("{files:020}-{first_index:020}.wal");
        std::fs::write(dir.path().join(name), &rest[2..2 + len]).unwrap();
        rest = &rest[2 + len..];
    }
    let recovery_mode = match selector % 3 {
        0 => RecoveryMode::Strict,
        1 => RecoveryMode::TolerateTornTail,
        _ => RecoveryMode::Salvage,
    };
    let options = Options {
        segment_size_bytes: 64 << 10,
        recovery_mode,
        prepare_segments_ahead: false,
        read_only: selector & 0x80 != 0,
        ..Options::default()
    };
    if let Ok(wal) = Wal::open(dir.path(), options) {
        assert!(wal.first_index() <= wal.last_index() + 1);
        let last = wal
            .last_index()
            .min(wal.first_index().saturating_add(10_000));
        let _ = wal.entries(wal.first_index()..last + 1);
        let _ = wal.verify();
    }
});

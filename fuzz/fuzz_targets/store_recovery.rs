//! Recovery of damaged `LogStore` directories. Open must return Ok or a clean error, never panic
//! or hang; when it opens, every entry it claims must read back (or fail with a located
//! corruption error naming its group), and a full verify must not panic.
//!
//! Byte 0 picks the recovery mode (bits 0-1), read-only (bit 7) and the input shape (bit 6):
//! - raw (bit 6 clear): up to 3 files, each a u32 little-endian length and bytes, named as
//!   store segments 1, 2, 3;
//! - structured (bit 6 set): a real store is written through the `LogStore` API from the next
//!   bytes (appends with Raft conflicts, truncations, compactions, removals over 4 groups,
//!   rolling across small segments), then damaged by (file, offset, xor) triples from the rest.
//!   Undamaged stores must reopen with every synced group range.
#![no_main]

use std::path::Path;

use ketch_storage::{Entry, Error, LogStore, Options, RecoveryMode, StoreBatch};
use libfuzzer_sys::fuzz_target;

fn options(selector: u8) -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        recovery_mode: match selector % 3 {
            0 => RecoveryMode::Strict,
            1 => RecoveryMode::TolerateTornTail,
            _ => RecoveryMode::Salvage,
        },
        prepare_segments_ahead: false,
        read_only: selector & 0x80 != 0,
        ..Options::default()
    }
}

fn write_raw(dir: &Path, mut rest: &[u8]) {
    let mut files = 0u64;
    while rest.len() >= 4 && files < 3 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let len = len.min(rest.len() - 4);
        files += 1;
        std::fs::write(dir.join(format!("{files:020}.kst")), &rest[4..4 + len]).unwrap();
        rest = &rest[4 + len..];
    }
}

/// Writes a real store from `script`; returns the bytes left for damage and the synced ranges.
fn write_structured<'a>(dir: &Path, script: &'a [u8]) -> (&'a [u8], Vec<(u64, u64, u64)>) {
    let store = LogStore::open(dir, options(1)).unwrap();
    let steps = script.first().copied().unwrap_or(0) as usize % 48;
    let mut rest = script.get(1..).unwrap_or(&[]);
    for _ in 0..steps {
        let Some((&op, tail)) = rest.split_first() else {
            break;
        };
        rest = tail;
        let group = (op >> 5) as u64 % 4;
        let (first, last) = (store.first_index(group), store.last_index(group));
        let mut batch = StoreBatch::new();
        match op % 8 {
            0..=4 => {
                let start = if op % 5 == 0 && last >= first { first } else { last + 1 };
                let len = (op as usize * 97) % 3000;
                let count = 1 + (op as u64 >> 3) % 8;
                batch.append(
                    group,
                    (start..start + count)
                        .map(|i| Entry::new(i, 1 + op as u64 % 3, vec![i as u8; len]))
                        .collect(),
                );
            }
            5 => {
                batch.truncate_suffix(group, last.saturating_sub(op as u64 % 8).max(first));
            }
            6 => {
                batch.compact_prefix(group, first + op as u64 % 16);
            }
            _ => {
                batch.remove_group(group);
            }
        }
        store.write(batch, op & 1 == 0).unwrap();
    }
    store.sync().unwrap();
    let synced = store
        .groups()
        .into_iter()
        .map(|g| (g, store.first_index(g), store.last_index(g)))
        .collect();
    (rest, synced)
}

fn damage(dir: &Path, mut rest: &[u8]) -> bool {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".kst"))
        .collect();
    files.sort();
    let mut damaged = false;
    while rest.len() >= 4 && !files.is_empty() {
        let file = &files[rest[0] as usize % files.len()];
        let mut bytes = std::fs::read(file).unwrap();
        if !bytes.is_empty() {
            let at = u16::from_le_bytes([rest[1], rest[2]]) as usize % bytes.len();
            bytes[at] ^= rest[3] | 1;
            std::fs::write(file, &bytes).unwrap();
            damaged = true;
        }
        rest = &rest[4..];
    }
    damaged
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut synced = None;
    if selector & 0x40 == 0 {
        write_raw(dir.path(), rest);
    } else {
        let (left, ranges) = write_structured(dir.path(), rest);
        if !damage(dir.path(), left) {
            synced = Some(ranges);
        }
    }
    let store = match LogStore::open(dir.path(), options(selector)) {
        Ok(store) => store,
        Err(e) => {
            assert!(synced.is_none(), "an undamaged store failed to open: {e}");
            return;
        }
    };
    if let Some(ranges) = synced {
        for (group, first, last) in ranges {
            assert_eq!(
                (store.first_index(group), store.last_index(group)),
                (first, last)
            );
        }
    }
    for group in store.groups() {
        let (first, last) = (store.first_index(group), store.last_index(group));
        match store.entries(group, first..last + 1) {
            Ok(entries) => assert_eq!(entries.len() as u64, last + 1 - first),
            Err(Error::GroupCorruption { group: named, .. }) => assert_eq!(named, group),
            Err(e) => panic!("reading group {group}: {e}"),
        }
    }
    let _ = store.verify();
});

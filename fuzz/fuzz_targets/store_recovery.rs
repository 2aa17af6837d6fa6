//! Recovery of damaged `LogStore` directories. Open must return Ok or a clean error, never panic
//! or hang; when it opens, every entry it claims for any group must read back (or fail with a
//! located corruption error), and a full verify must not panic.
//!
//! Byte 0 picks the recovery mode (bits 0-1), read-only (bit 7) and the input shape (bit 6):
//! - raw (bit 6 clear): up to 3 files, each a u32 little-endian length and bytes, named as
//!   store segments 1, 2, 3;
//! - structured (bit 6 set): a real store is written through the `LogStore` API from the next
//!   bytes (appends to up to 8 groups, conflicts, truncations, hard states, compactions,
//!   removals, rolling across small segments), then damaged by (file, offset, xor) triples from
//!   the rest. An undamaged store must reopen with every group as it was; a damaged one must
//!   not panic.
#![no_main]

use std::path::Path;

use ketch_storage::{Entry, HardState, LogStore, Options, RecoveryMode, StoreBatch};
use libfuzzer_sys::fuzz_target;

#[path = "file_damage.rs"]
mod file_damage;
use file_damage::{damage_files, scratch_dir};

const GROUPS: u64 = 8;

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

/// Each group's (first, last, hard state) as the store reports it.
type Shape = Vec<(u64, u64, HardState)>;

fn shape(store: &LogStore) -> Shape {
    (1..=GROUPS)
        .map(|g| {
            (
                store.first_index(g),
                store.last_index(g),
                store.hard_state(g),
            )
        })
        .collect()
}

/// Writes a real store from `script`; returns the bytes left for damage and the synced shape.
fn write_structured<'a>(dir: &Path, script: &'a [u8]) -> (&'a [u8], Shape) {
    let options = Options {
        segment_size_bytes: 64 << 10,
        prepare_segments_ahead: false,
        ..Options::default()
    };
    let store = LogStore::open(dir, options).unwrap();
    let steps = script.first().copied().unwrap_or(0) as usize % 64;
    let mut rest = script.get(1..).unwrap_or(&[]);
    for _ in 0..steps {
        let Some((&op, tail)) = rest.split_first() else {
            break;
        };
        rest = tail;
        let group = 1 + (op as u64 >> 4) % GROUPS;
        let (first, last) = (store.first_index(group), store.last_index(group));
        match op % 8 {
            0..=3 => {
                // At the end, or from op's low bits below it: a conflict.
                let back = if op % 4 == 3 { op as u64 % 7 } else { 0 };
                let lo = (last + 1).saturating_sub(back).max(first);
                let count = 1 + (op as u64 >> 2) % 24;
                let len = (op as usize * 97) % 2500;
                let term = 1 + op as u64 % 3;
                let mut batch = StoreBatch::new();
                batch.append(
                    group,
                    (lo..lo + count)
                        .map(|i| Entry::new(i, term, vec![i as u8 ^ group as u8; len]))
                        .collect(),
                );
                batch.set_hard_state(
                    group,
                    HardState {
                        term,
                        vote: group,
                        commit: lo - 1,
                    },
                );
                store.write(batch, op & 0x08 != 0).unwrap();
            }
            4 => {
                let mut batch = StoreBatch::new();
                batch.truncate_suffix(group, last.saturating_sub(op as u64 % 30).max(first));
                store.write(batch, false).unwrap();
            }
            5 => store
                .compact_prefix(group, first + (op as u64 % 40).min(last + 1 - first))
                .unwrap(),
            6 => store.remove_group(group).unwrap(),
            _ => store.sync().unwrap(),
        }
    }
    store.sync().unwrap();
    (rest, shape(&store))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let dir = scratch_dir();
    let mut synced = None;
    if selector & 0x40 == 0 {
        write_raw(dir.path(), rest);
    } else {
        let (damage_bytes, shape) = write_structured(dir.path(), rest);
        if !damage_files(dir.path(), "kst", damage_bytes) {
            synced = Some(shape);
        }
    }
    match LogStore::open(dir.path(), options(selector)) {
        Ok(store) => {
            if let Some(shape_before) = &synced {
                assert_eq!(&shape(&store), shape_before, "an undamaged store changed");
            }
            for group in store.groups() {
                let (first, last) = (store.first_index(group), store.last_index(group));
                assert!(
                    first <= last + 1,
                    "group {group}: first {first} last {last}"
                );
                let read = store.entries(group, first..last.min(first + 10_000) + 1);
                if synced.is_some() {
                    read.unwrap();
                }
            }
            let verified = store.verify();
            if synced.is_some() {
                verified.unwrap();
            }
        }
        Err(error) => assert!(
            synced.is_none(),
            "an undamaged store failed to open: {error}"
        ),
    }
});

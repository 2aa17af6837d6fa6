//! Recovery of damaged log directories. Open must return Ok or a clean error, never panic or
//! hang; when it opens, every entry it claims must read back (or fail with a located corruption
//! error), and a full verify must not panic.
//!
//! Byte 0 picks the recovery mode (bits 0-1), read-only (bit 7) and the input shape (bit 6):
//! - raw (bit 6 clear): up to 3 files, each a u32 little-endian length and bytes, named as
//!   segments 1, 2, 3;
//! - structured (bit 6 set): a real log is written through the `Wal` API from the next bytes
//!   (batch sizes, payload sizes, truncations, compactions, rolling across small segments), then
//!   damaged by (file, offset, xor) triples from the rest. Undamaged logs must reopen with every
//!   synced entry; damaged ones must not panic. This reaches the deep recovery paths that random
//!   bytes never get past a header CRC to.
#![no_main]

use std::path::Path;

use ketch_storage::{Entry, Options, RecoveryMode, Wal};
use libfuzzer_sys::fuzz_target;

#[path = "file_damage.rs"]
mod file_damage;
use file_damage::{damage_files, scratch_dir};

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
        let first_index = if files == 1 { 1 } else { files * 10 };
        let name = format!("{files:020}-{first_index:020}.wal");
        std::fs::write(dir.join(name), &rest[4..4 + len]).unwrap();
        rest = &rest[4 + len..];
    }
}

/// Writes a real log from `script`; returns the bytes left for damage and the last synced index.
fn write_structured<'a>(dir: &Path, script: &'a [u8]) -> (&'a [u8], u64) {
    let options = Options {
        segment_size_bytes: 64 << 10,
        prepare_segments_ahead: false,
        ..Options::default()
    };
    let mut wal = Wal::open(dir, options).unwrap();
    let steps = script.first().copied().unwrap_or(0) as usize % 48;
    let mut rest = script.get(1..).unwrap_or(&[]);
    for _ in 0..steps {
        let Some((&op, tail)) = rest.split_first() else {
            break;
        };
        rest = tail;
        let last = wal.last_index();
        match op % 8 {
            0..=4 => {
                let count = 1 + (op as u64 >> 3) % 32;
                let len = (op as usize * 97) % 3000;
                let batch: Vec<Entry> = (last + 1..=last + count)
                    .map(|i| Entry::new(i, 1 + op as u64 % 3, vec![i as u8; len]))
                    .collect();
                wal.append(&batch).unwrap();
            }
            5 => {
                let from = last.saturating_sub(op as u64 % 40).max(wal.first_index());
                wal.truncate_suffix(from).unwrap();
            }
            6 => wal
                .compact_prefix(wal.first_index() + op as u64 % 64)
                .unwrap(),
            _ => wal.sync().unwrap(),
        }
    }
    wal.sync().unwrap();
    (rest, wal.last_index())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let dir = scratch_dir();
    let mut synced_last = None;
    if selector & 0x40 == 0 {
        write_raw(dir.path(), rest);
    } else {
        let (damage_bytes, last) = write_structured(dir.path(), rest);
        if !damage_files(dir.path(), "wal", damage_bytes) {
            synced_last = Some(last);
        }
    }
    match Wal::open(dir.path(), options(selector)) {
        Ok(wal) => {
            assert!(wal.first_index() <= wal.last_index() + 1);
            if let Some(last) = synced_last {
                assert_eq!(
                    wal.last_index(),
                    last,
                    "an undamaged log lost synced entries"
                );
            }
            let last = wal
                .last_index()
                .min(wal.first_index().saturating_add(10_000));
            let read = wal.entries(wal.first_index()..last + 1);
            if synced_last.is_some() {
                read.unwrap();
                wal.verify().unwrap();
            } else {
                let _ = wal.verify();
            }
        }
        Err(error) => assert!(
            synced_last.is_none(),
            "an undamaged log failed to open: {error}"
        ),
    }
});

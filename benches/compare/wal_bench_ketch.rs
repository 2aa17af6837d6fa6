//! `ketch-storage` as a `wal-bench` engine (the harness `wal_bench.sh` builds), through `GroupCommit`, so W4
//! measures the crate's own group commit. `wal_bench.sh` copies this file over the harness's
//! `src/engines/ketch.rs`; it is not compiled as part of this workspace.
//!
//! One log holds every stream. Stream 1 of the single-writer workloads maps 1:1 onto log
//! indices; other streams (W4) keep the log index of each of their entries in a dense vector.
//! Reads go through `Wal::for_each_entry`.
//!
//! `KETCH_CHECKPOINT=1` compacts as okaywal's no-op checkpoint lets okaywal recycle its files:
//! after each segment roll the log is compacted up to the first index of the last sealed
//! segment (that segment and the active one are kept), so later rolls reuse the compacted
//! files instead of zero-filling new ones. Without it Ketch keeps every entry (its fresh-log
//! regime).
//!
//! `KETCH_SEGMENT_MIB` sets the segment size (default: `Options::default()`'s).
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ketch_storage::{GroupCommit, Options, Wal as KWal};

use super::{OpenOpts, Result, Visit, Wal};

pub struct Ketch {
    log: GroupCommit,
    /// stream -> (first stream index, log index of each entry).
    map: Mutex<HashMap<u64, (u64, Vec<u64>)>>,
    last: Mutex<HashMap<u64, u64>>,
    checkpoint: bool,
    /// `segments_created` when the log was last compacted (checkpoint mode).
    segments_seen: AtomicU64,
}

impl Ketch {
    fn checkpoint(&self) -> Result<()> {
        self.log.with_wal(|w| -> Result<()> {
            let created = w.stats().segments_created;
            if created == self.segments_seen.swap(created, Ordering::Relaxed) {
                return Ok(());
            }
            let segments = w.segments();
            if segments.len() > 2 {
                w.compact_prefix(segments[segments.len() - 2].header.first_index)?;
            }
            Ok(())
        })
    }

    fn one_stream(&self, stream: u64) -> bool {
        stream == 1 && self.map.lock().unwrap().len() <= 1
    }
}

impl Wal for Ketch {
    fn open(dir: &Path, _opts: OpenOpts) -> Result<Self> {
        let mut options = Options::default();
        if let Some(mib) = std::env::var_os("KETCH_SEGMENT_MIB") {
            let mib: u64 = mib.to_str().ok_or("KETCH_SEGMENT_MIB is not UTF-8")?.parse()?;
            options.segment_size_bytes = mib << 20;
        }
        let wal = KWal::open(dir, options)?;
        let mut last = HashMap::new();
        if wal.last_index() >= wal.first_index() {
            last.insert(1, wal.last_index());
        }
        Ok(Ketch {
            log: GroupCommit::new(wal),
            map: Mutex::new(HashMap::new()),
            last: Mutex::new(last),
            checkpoint: std::env::var_os("KETCH_CHECKPOINT").is_some(),
            segments_seen: AtomicU64::new(0),
        })
    }

    fn append(&self, stream: u64, first_index: u64, entries: &[&[u8]]) -> Result<()> {
        let got: RangeInclusive<u64> = self.log.append(1, entries)?;
        if self.checkpoint {
            self.checkpoint()?;
        }
        {
            let mut map = self.map.lock().unwrap();
            let (first, indices) = map.entry(stream).or_insert((first_index, Vec::new()));
            assert_eq!(*first + indices.len() as u64, first_index);
            indices.extend(got);
        }
        self.last
            .lock()
            .unwrap()
            .insert(stream, first_index + entries.len() as u64 - 1);
        Ok(())
    }

    fn read_range(&self, stream: u64, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<()> {
        if self.one_stream(stream) {
            // One stream (or reopened): stream index = log index.
            return Ok(self
                .log
                .with_wal(|w| w.for_each_entry(from..to, |i, _term, data| visit(i, data)))?);
        }
        let map = self.map.lock().unwrap();
        let (first, indices) = map.get(&stream).ok_or("unknown stream")?;
        for i in from..to {
            let at = indices[(i - first) as usize];
            self.log
                .with_wal(|w| w.for_each_entry(at..at + 1, |_, _, data| visit(i, data)))?;
        }
        Ok(())
    }

    fn first_index(&self, stream: u64) -> Option<u64> {
        if self.one_stream(stream) {
            self.log
                .with_wal(|w| (w.last_index() >= w.first_index()).then_some(w.first_index()))
        } else {
            self.map
                .lock()
                .unwrap()
                .get(&stream)
                .map(|(first, _)| *first)
        }
    }

    fn last_index(&self, stream: u64) -> Option<u64> {
        self.last.lock().unwrap().get(&stream).copied()
    }

    fn close(self) -> Result<()> {
        self.log.with_wal(|w| w.sync())?;
        Ok(())
    }
}

//! `ketch-storage`'s `LogStore` as a `wal-bench` engine: each harness stream is a group of the
//! store, so W5's per-stream compaction is the store's `compact_prefix` and concurrent writers
//! share fdatasyncs inside the store. `wal_bench.sh` copies this file over the harness's
//! `src/engines/ketch.rs` when `KETCH_ENGINE=store`; it is not compiled as part of this
//! workspace. Segments are 16 MiB (`KETCH_SEGMENT_MIB` changes it), as W5's disk bar asks.
use std::path::Path;

use ketch_storage::{Entry, LogStore, Options, StoreBatch};

use super::{OpenOpts, Result, Visit, Wal};

/// Raft term given to every entry (the harness has no terms).
const TERM: u64 = 1;

pub struct Ketch {
    store: LogStore,
}

impl Wal for Ketch {
    fn open(dir: &Path, _opts: OpenOpts) -> Result<Self> {
        let mib: u64 = std::env::var("KETCH_SEGMENT_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(16);
        let options = Options { segment_size_bytes: mib << 20, ..Options::default() };
        Ok(Ketch { store: LogStore::open(dir, options)? })
    }

    fn append(&self, stream: u64, first_index: u64, entries: &[&[u8]]) -> Result<()> {
        let entries = entries
            .iter()
            .enumerate()
            .map(|(i, data)| Entry::new(first_index + i as u64, TERM, data.to_vec()))
            .collect();
        let mut batch = StoreBatch::new();
        batch.append(stream, entries);
        Ok(self.store.write(batch, true)?)
    }

    fn read_range(&self, stream: u64, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<()> {
        Ok(self.store.for_each_entry(stream, from..to, |i, _term, data| visit(i, data))?)
    }

    fn first_index(&self, stream: u64) -> Option<u64> {
        let (first, last) = (self.store.first_index(stream), self.store.last_index(stream));
        (last >= first).then_some(first)
    }

    fn last_index(&self, stream: u64) -> Option<u64> {
        Some(self.store.last_index(stream)).filter(|&last| last > 0)
    }

    fn compact(&self, stream: u64, before_index: u64) -> Result<()> {
        Ok(self.store.compact_prefix(stream, before_index)?)
    }

    fn close(self) -> Result<()> {
        self.store.sync()?;
        let stats = self.store.stats();
        eprintln!(
            "# ketch store: {} batches, {} syncs, live {} B, disk {} B, rewritten {} B, index {} B, {} segments",
            stats.batches,
            stats.syncs,
            stats.live_bytes,
            stats.disk_bytes,
            stats.rewritten_bytes,
            stats.index_bytes,
            stats.segments
        );
        Ok(())
    }
}

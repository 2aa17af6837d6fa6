//! `ketch-storage`'s `LogStore` as a `wal-bench` engine, `ketch-store` (the harness that
//! `wal_bench.sh` builds). `wal_bench.sh` copies this file to the harness's
//! `src/engines/ketch_store.rs` and registers the engine; it is not compiled as part of this
//! workspace.
//!
//! Each harness stream is one group of the store, with stream index = group index, so the
//! adapter keeps no state of its own: every append is one `write_entries(.., true)` (concurrent
//! writers share fdatasyncs inside the store), every read is `for_each_entry`, and W5's
//! compaction is `compact_prefix`. Freeing files and rewriting a lagging group's entries
//! forward is the store's own garbage collection: its background collector, one round per
//! shared fdatasync.
//!
//! `KETCH_SEGMENT_MIB` sets the segment size (default: `Options::default()`'s),
//! `KETCH_REWRITE_KIB` the collector's round (`StoreOptions::rewrite_bytes_per_round`; default
//! `StoreOptions::default()`'s).
use std::path::Path;

use ketch_storage::{LogStore, Options, StoreOptions};

use super::{OpenOpts, Result, Visit, Wal};

/// Raft term given to every entry (the harness has no terms).
const TERM: u64 = 1;

pub struct KetchStore {
    store: LogStore,
}

impl Wal for KetchStore {
    fn open(dir: &Path, _opts: OpenOpts) -> Result<Self> {
        let mut options = Options::default();
        if let Some(mib) = std::env::var_os("KETCH_SEGMENT_MIB") {
            let mib: u64 = mib.to_str().ok_or("KETCH_SEGMENT_MIB is not UTF-8")?.parse()?;
            options.segment_size_bytes = mib << 20;
        }
        let mut store_options = StoreOptions::default();
        if let Some(kib) = std::env::var_os("KETCH_REWRITE_KIB") {
            let kib: u64 = kib.to_str().ok_or("KETCH_REWRITE_KIB is not UTF-8")?.parse()?;
            store_options.rewrite_bytes_per_round = kib << 10;
        }
        Ok(KetchStore {
            store: LogStore::open_with(dir, options, store_options)?,
        })
    }

    fn append(&self, stream: u64, first_index: u64, entries: &[&[u8]]) -> Result<()> {
        // The borrowing write: the harness hands out slices, as `Wal`'s engine is given them.
        self.store
            .write_entries(stream, first_index, TERM, entries, true)?;
        Ok(())
    }

    fn read_range(&self, stream: u64, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<()> {
        Ok(self
            .store
            .for_each_entry(stream, from..to, |index, _term, data| visit(index, data))?)
    }

    fn first_index(&self, stream: u64) -> Option<u64> {
        let (first, last) = (self.store.first_index(stream), self.store.last_index(stream));
        (last >= first).then_some(first)
    }

    fn last_index(&self, stream: u64) -> Option<u64> {
        let (first, last) = (self.store.first_index(stream), self.store.last_index(stream));
        (last >= first).then_some(last)
    }

    fn compact(&self, stream: u64, before_index: u64) -> Result<()> {
        Ok(self.store.compact_prefix(stream, before_index)?)
    }

    fn close(self) -> Result<()> {
        self.store.sync()?;
        Ok(())
    }
}

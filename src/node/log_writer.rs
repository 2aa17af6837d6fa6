//! The log-writer thread: owns the `Wal` and the incoming snapshot, turns the loop's
//! persistence work into batches with one `fdatasync` each, and reports what is durable.
//!
//! The loop numbers every work item (1, 2, ...) and sends it on a bounded channel
//! (`sync_channel`, [`WRITER_QUEUE_ITEMS`] items; the loop never sends more than that many
//! unfinished items, so its `try_send` never fails). One round of this thread takes every
//! pending item, up to [`ROUND_ITEMS_MAX`] items or [`ROUND_BYTES_MAX`] bytes, writes each as
//! one atomic `WriteBatch` (truncation, entries, hard state), writes snapshot chunks, issues
//! ONE `sync()`, and publishes "durable through item N" in [`WriterShared`], then wakes the
//! loop. Batches form naturally: while one sync runs, the next items queue up; there is no
//! timer.
//!
//! Publishing a counter instead of sending a message keeps the reverse direction bounded
//! (and free of the deadlock two full channels pointing at each other could make).
//!
//! A snapshot install (`snapshot_to_install`) syncs what came before, finishes the receiver
//! (which verifies, syncs and renames the file), then `Wal::apply_snapshot`. Restoring the
//! state machine is routed by the loop to the apply thread, in order with committed entries.
//!
//! A hard state that changes only the commit index is written but does not by itself force a
//! sync: it becomes durable with the next one. Raft needs the term and vote durable before
//! speaking, never the commit index (a node that restarts with an older commit index learns
//! the newer one from the leader; committed entries are never lost with it, they are in the
//! log). This halves the fsyncs of a lone proposer: otherwise every commit costs one more.
//!
//! Any write, sync or install error is fatal: it is recorded in [`WriterShared`], logged, and
//! the thread stops taking work; the loop then stops participating (no votes, no
//! acknowledgements). Nothing after the error is reported durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ketch_storage::snapshot::{RawSnapshotReceiver, SnapshotStore};
use ketch_storage::{Wal, WriteBatch};

use super::durable_state::{to_storage_entry, to_storage_hard_state};
use crate::raft::{Entry, HardState, SnapshotChunk, SnapshotMeta};

/// Bound of the loop-to-writer channel, in work items.
pub const WRITER_QUEUE_ITEMS: usize = 4096;
/// Most work items written under one sync.
pub const ROUND_ITEMS_MAX: usize = 4096;
/// Most entry and chunk bytes written under one sync (64 MiB).
pub const ROUND_BYTES_MAX: u64 = 64 << 20;
/// Buckets of the batch-size histogram: bucket `b` counts rounds of `[2^b, 2^(b+1))` items.
pub const HISTOGRAM_BUCKETS: usize = 16;

/// One unit of persistence work from one `Ready`.
#[derive(Debug, Default)]
pub struct PersistWork {
    /// The loop's sequence number of this item (1, 2, ... without gaps).
    pub seq: u64,
    /// Drop durable entries at or above this first.
    pub truncate_from: Option<u64>,
    /// Entries to append.
    pub entries: Vec<Entry>,
    /// Hard state to record.
    pub hard_state: Option<HardState>,
    /// Incoming snapshot chunks to write.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// A received snapshot to install after the chunks.
    pub snapshot_to_install: Option<SnapshotMeta>,
    /// Compact the log below this index (a snapshot covering it is durable).
    pub compact_to: Option<u64>,
}

impl PersistWork {
    fn size_bytes(&self) -> u64 {
        let entries: u64 = self.entries.iter().map(Entry::size_bytes).sum();
        let chunks: u64 = self
            .snapshot_chunks
            .iter()
            .map(|c| c.data.len() as u64)
            .sum();
        entries + chunks
    }
}

/// Statistics of the writer, for `NodeStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// `fdatasync` calls made by rounds (the WAL's own compaction syncs not included).
    pub fsyncs: u64,
    /// Entries made durable.
    pub entries_written: u64,
    /// Work items made durable.
    pub items_written: u64,
    /// Histogram of work items per sync: bucket `b` counts rounds of `[2^b, 2^(b+1))` items.
    pub batch_items_histogram: [u64; HISTOGRAM_BUCKETS],
}

/// What the writer publishes to the loop.
#[derive(Debug, Default)]
pub struct WriterShared {
    /// Every item with `seq <=` this is durable.
    pub durable_through_seq: AtomicU64,
    /// The fatal error, once one happened.
    pub error: Mutex<Option<String>>,
    /// Counters.
    pub stats: Mutex<WriterStats>,
}

/// The writer thread's state.
pub struct LogWriter {
    wal: Wal,
    snapshots: SnapshotStore,
    receiving: Option<(SnapshotMeta, RawSnapshotReceiver)>,
    /// Term and vote of the latest hard state written: a change of either needs a sync.
    last_term_vote: (u64, u64),
    shared: Arc<WriterShared>,
    waker: Arc<mio::Waker>,
}

impl LogWriter {
    /// A writer over an opened log and snapshot store.
    pub fn new(
        wal: Wal,
        snapshots: SnapshotStore,
        shared: Arc<WriterShared>,
        waker: Arc<mio::Waker>,
    ) -> Self {
        let written = wal.hard_state();
        LogWriter {
            last_term_vote: (written.term, written.vote),
            wal,
            snapshots,
            receiving: None,
            shared,
            waker,
        }
    }

    /// Runs until the loop drops its sender (then everything received is written and synced)
    /// or an error happens. Returns the error, if any, after recording it in the shared state.
    pub fn run(mut self, work: Receiver<PersistWork>) -> Result<(), String> {
        let mut round = Vec::with_capacity(64);
        // Bounded: each pass consumes at least one item or ends the thread.
        while let Ok(first) = work.recv() {
            round.clear();
            let mut round_bytes = first.size_bytes();
            round.push(first);
            while round.len() < ROUND_ITEMS_MAX && round_bytes < ROUND_BYTES_MAX {
                match work.try_recv() {
                    Ok(item) => {
                        round_bytes += item.size_bytes();
                        round.push(item);
                    }
                    Err(_) => break,
                }
            }
            if let Err(error) = self.write_round(&round) {
                log::error!("log writer stopped: {error}; this node stops participating");
                *self.shared.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
                let _ = self.waker.wake();
                return Err(error);
            }
            crate::metrics::wal_round_written(round_bytes);
            let last_seq = round.last().map_or(0, |w| w.seq);
            let previous = self.shared.durable_through_seq.load(Ordering::Acquire);
            assert!(last_seq > previous, "work items must arrive in order");
            self.shared
                .durable_through_seq
                .store(last_seq, Ordering::Release);
            // A failed wake only means the loop is gone (shutting down).
            let _ = self.waker.wake();
        }
        Ok(())
    }

    fn write_round(&mut self, round: &[PersistWork]) -> Result<(), String> {
        let mut needs_sync = false;
        let mut entries_written = 0u64;
        for item in round {
            if item.truncate_from.is_some() || !item.entries.is_empty() || item.hard_state.is_some()
            {
                let term_vote_changed = item
                    .hard_state
                    .is_some_and(|hs| (hs.term, hs.vote.unwrap_or(0)) != self.last_term_vote);
                let entries: Vec<_> = item.entries.iter().map(to_storage_entry).collect();
                let hard_state = item.hard_state.as_ref().map(to_storage_hard_state);
                self.wal
                    .write(&WriteBatch {
                        truncate_from: item.truncate_from,
                        entries: &entries,
                        hard_state,
                    })
                    .map_err(|e| format!("writing the log (item {}): {e}", item.seq))?;
                if let Some(hs) = &hard_state {
                    self.last_term_vote = (hs.term, hs.vote);
                }
                // A commit-index-only change rides on the next sync (see the module docs).
                needs_sync |=
                    item.truncate_from.is_some() || !entries.is_empty() || term_vote_changed;
                entries_written += entries.len() as u64;
            }
            for chunk in &item.snapshot_chunks {
                self.write_chunk(chunk)?;
            }
            if let Some(meta) = &item.snapshot_to_install {
                if needs_sync {
                    self.sync()?;
                    needs_sync = false;
                }
                self.install(meta)?;
            }
            if let Some(index) = item.compact_to {
                if needs_sync {
                    self.sync()?;
                    needs_sync = false;
                }
                // compact_prefix syncs on its own.
                self.wal
                    .compact_prefix(index)
                    .map_err(|e| format!("compacting the log below {index}: {e}"))?;
            }
        }
        if needs_sync {
            self.sync()?;
        }
        let mut stats = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.entries_written += entries_written;
        stats.items_written += round.len() as u64;
        let bucket = (usize::BITS - 1 - round.len().leading_zeros()) as usize;
        stats.batch_items_histogram[bucket.min(HISTOGRAM_BUCKETS - 1)] += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), String> {
        let started = Instant::now();
        self.wal
            .sync()
            .map_err(|e| format!("syncing the log: {e}"))?;
        // Counted with `fsyncs` below, so the histogram's count is the same number.
        crate::metrics::wal_fsync_done(started.elapsed());
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fsyncs += 1;
        Ok(())
    }

    fn write_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), String> {
        if chunk.offset == 0 {
            // A chunk at offset 0 starts a new incoming snapshot (dropping a partial one
            // deletes its temp file).
            let receiver = self
                .snapshots
                .begin_receive(Some(chunk.meta.size_bytes))
                .map_err(|e| format!("starting to receive snapshot {}: {e}", chunk.meta.index))?;
            self.receiving = Some((chunk.meta.clone(), receiver));
        }
        let Some((meta, receiver)) = self.receiving.as_mut() else {
            return Err(format!(
                "snapshot chunk at offset {} of snapshot {} without its start",
                chunk.offset, chunk.meta.index
            ));
        };
        if *meta != chunk.meta {
            return Err(format!(
                "snapshot chunk of snapshot {} while receiving snapshot {}",
                chunk.meta.index, meta.index
            ));
        }
        // Chunks are not synced one by one: an unfinished receive is deleted at restart and
        // the core restarts the transfer, so a partial file is never relied on after a crash.
        receiver
            .write_at(chunk.offset, &chunk.data)
            .map_err(|e| format!("writing a chunk of snapshot {}: {e}", chunk.meta.index))
    }

    fn install(&mut self, meta: &SnapshotMeta) -> Result<(), String> {
        let Some((receiving_meta, receiver)) = self.receiving.take() else {
            return Err(format!("install of snapshot {} never received", meta.index));
        };
        if receiving_meta != *meta {
            return Err(format!(
                "install of snapshot {} while snapshot {} was received",
                meta.index, receiving_meta.index
            ));
        }
        let started = Instant::now();
        let file_meta = receiver
            .finish()
            .map_err(|e| format!("installing snapshot {}: {e}", meta.index))?;
        assert_eq!(
            file_meta.index, meta.index,
            "installed a different snapshot"
        );
        self.wal
            .apply_snapshot(meta.index, meta.term)
            .map_err(|e| format!("compacting the log to snapshot {}: {e}", meta.index))?;
        crate::metrics::snapshot_installed(started.elapsed());
        log::info!(
            "installed snapshot at index {} term {} ({} bytes)",
            meta.index,
            meta.term,
            meta.size_bytes
        );
        Ok(())
    }
}

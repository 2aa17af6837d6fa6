//! The host's log writer thread: owns the shared `LogStore` and every group's incoming
//! snapshots. It takes every pending work item of every group, writes them as one store batch,
//! and makes the round durable with ONE `fdatasync` (`LogStore::write` with `sync`), then
//! publishes "durable through item N" and wakes the loop. A thousand groups writing in the same
//! round cost one flush, not a thousand: the reason the host has one log.
//!
//! Work items are numbered by the loop in the order it sends them, over all groups; the writer
//! carries them out in that order, so each group's writes stay in its core's order (the
//! contract of `crate::raft`, step 2).
//!
//! A failed write or fsync poisons the store (`ketch_storage`): the writer records the error
//! and exits, and the loop stops every group on the host, answering their waiting clients as
//! the node module's table says (a write that may have left answers "may have been applied").

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ketch_storage::snapshot::RawSnapshotReceiver;
use ketch_storage::{LogStore, StoreBatch};

use super::snapshots::GroupSnapshots;
use crate::node::durable_state::{to_storage_entry, to_storage_hard_state};
use crate::raft::{Entry, GroupId, HardState, SnapshotChunk, SnapshotMeta};

/// Work items the loop may have sent and the writer not yet made durable.
pub const WRITER_QUEUE_ITEMS: usize = 16_384;
/// Most items one round takes.
const ROUND_ITEMS_MAX: usize = 8192;
/// Most entry bytes one round takes.
const ROUND_BYTES_MAX: u64 = 64 << 20;

/// One group's persistence work from one `Ready` (or a compaction or removal).
#[derive(Debug, Default)]
pub struct PersistWork {
    /// Position in the loop's order, from 1.
    pub seq: u64,
    /// The group.
    pub group: GroupId,
    /// Drop the group's entries at or above this first.
    pub truncate_from: Option<u64>,
    /// Entries to append.
    pub entries: Vec<Entry>,
    /// Hard state to record.
    pub hard_state: Option<HardState>,
    /// Incoming snapshot chunks to write.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// A received snapshot to install.
    pub snapshot_to_install: Option<SnapshotMeta>,
    /// Compact the group's log below this index (a snapshot covers it).
    pub compact_to: Option<u64>,
    /// Remove the group and its snapshots.
    pub remove: bool,
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

/// The writer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostWriterStats {
    /// Rounds written, each with one fdatasync.
    pub fsyncs: u64,
    /// Entries written.
    pub entries_written: u64,
    /// Work items written.
    pub items_written: u64,
    /// Distinct groups written per round, summed over rounds (divide by `fsyncs` for the
    /// groups one flush covered on average).
    pub groups_per_round_sum: u64,
}

/// What the writer publishes for the loop.
#[derive(Debug, Default)]
pub struct WriterShared {
    /// Every item with a `seq` at or below this is durable.
    pub durable_through_seq: AtomicU64,
    /// The error that stopped the writer.
    pub error: Mutex<Option<String>>,
    /// Counters.
    pub stats: Mutex<HostWriterStats>,
}

/// The writer thread's state.
pub struct HostLogWriter {
    store: Arc<LogStore>,
    snapshots: GroupSnapshots,
    receiving: HashMap<GroupId, (SnapshotMeta, RawSnapshotReceiver)>,
    shared: Arc<WriterShared>,
    waker: Arc<mio::Waker>,
}

impl HostLogWriter {
    /// A writer over `store`.
    pub fn new(
        store: Arc<LogStore>,
        snapshots: GroupSnapshots,
        shared: Arc<WriterShared>,
        waker: Arc<mio::Waker>,
    ) -> Self {
        HostLogWriter {
            store,
            snapshots,
            receiving: HashMap::new(),
            shared,
            waker,
        }
    }

    /// Runs until the loop drops its sender; `Err` after a failed write (the store is then
    /// poisoned).
    pub fn run(mut self, work: Receiver<Vec<PersistWork>>) -> Result<(), String> {
        let mut round = Vec::with_capacity(256);
        while let Ok(first) = work.recv() {
            round.clear();
            let mut round_bytes: u64 = first.iter().map(PersistWork::size_bytes).sum();
            round.extend(first);
            // A round may pass its limits by one message (one loop pass's work).
            while round.len() < ROUND_ITEMS_MAX && round_bytes < ROUND_BYTES_MAX {
                match work.try_recv() {
                    Ok(items) => {
                        round_bytes += items.iter().map(PersistWork::size_bytes).sum::<u64>();
                        round.extend(items);
                    }
                    Err(_) => break,
                }
            }
            if let Err(error) = self.write_round(&round) {
                log::error!("host log writer stopped: {error}; every group on this host stops");
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
            let _ = self.waker.wake();
        }
        Ok(())
    }

    fn write_round(&mut self, round: &[PersistWork]) -> Result<(), String> {
        let mut batch = StoreBatch::new();
        let mut entries_written = 0u64;
        let mut groups: Vec<GroupId> = Vec::new();
        let mut removed: Vec<GroupId> = Vec::new();
        for item in round {
            groups.push(item.group);
            if let Some(from) = item.truncate_from {
                batch.truncate_suffix(item.group, from);
            }
            if !item.entries.is_empty() {
                entries_written += item.entries.len() as u64;
                batch.append(
                    item.group,
                    item.entries.iter().map(to_storage_entry).collect(),
                );
            }
            if let Some(hs) = &item.hard_state {
                batch.set_hard_state(item.group, to_storage_hard_state(hs));
            }
            for chunk in &item.snapshot_chunks {
                self.write_chunk(item.group, chunk)?;
            }
            if let Some(meta) = &item.snapshot_to_install {
                // The log writes before the install go first, in order.
                self.write_batch(&mut batch, item.seq)?;
                self.install(item.group, meta)?;
            }
            if let Some(first) = item.compact_to {
                batch.compact_prefix(item.group, first);
            }
            if item.remove {
                batch.remove_group(item.group);
                self.receiving.remove(&item.group);
                removed.push(item.group);
            }
        }
        // One flush for the whole round, every group's entries and hard states in it.
        let started = Instant::now();
        if batch.is_empty() {
            self.store
                .sync()
                .map_err(|e| format!("syncing the log: {e}"))?;
        } else {
            self.store.write(batch, true).map_err(|e| {
                format!(
                    "writing the log (items {}..={}): {e}",
                    round[0].seq,
                    round[round.len() - 1].seq
                )
            })?;
        }
        // Counted with `fsyncs` below, so the histogram's count is the same number.
        crate::metrics::wal_fsync_done(started.elapsed());
        // Snapshots of removed groups go once their removal is durable: a crash before leaves
        // the group whole (its tombstone in the catalog removes it at the next start).
        for group in removed {
            self.snapshots.remove(group)?;
        }
        groups.sort_unstable();
        groups.dedup();
        let mut stats = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.fsyncs += 1;
        stats.entries_written += entries_written;
        stats.items_written += round.len() as u64;
        stats.groups_per_round_sum += groups.len() as u64;
        Ok(())
    }

    /// Writes (synced) what `batch` holds so far and empties it.
    fn write_batch(&mut self, batch: &mut StoreBatch, seq: u64) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(batch);
        self.store
            .write(full, true)
            .map_err(|e| format!("writing the log (item {seq}): {e}"))
    }

    fn write_chunk(&mut self, group: GroupId, chunk: &SnapshotChunk) -> Result<(), String> {
        if chunk.offset == 0 {
            let store = self.snapshots.store(group)?;
            let receiver = store
                .begin_receive(Some(chunk.meta.size_bytes))
                .map_err(|e| {
                    format!(
                        "group {group}: starting to receive snapshot {}: {e}",
                        chunk.meta.index
                    )
                })?;
            self.receiving.insert(group, (chunk.meta.clone(), receiver));
        }
        let Some((meta, receiver)) = self.receiving.get_mut(&group) else {
            return Err(format!(
                "group {group}: snapshot chunk at offset {} of snapshot {} without its start",
                chunk.offset, chunk.meta.index
            ));
        };
        if *meta != chunk.meta {
            return Err(format!(
                "group {group}: snapshot chunk of snapshot {} while receiving snapshot {}",
                chunk.meta.index, meta.index
            ));
        }
        // Not synced chunk by chunk: an unfinished receive is deleted at restart and the
        // leader starts over.
        receiver.write_at(chunk.offset, &chunk.data).map_err(|e| {
            format!(
                "group {group}: writing a chunk of snapshot {}: {e}",
                chunk.meta.index
            )
        })
    }

    fn install(&mut self, group: GroupId, meta: &SnapshotMeta) -> Result<(), String> {
        let Some((received, receiver)) = self.receiving.remove(&group) else {
            return Err(format!(
                "group {group}: install of snapshot {} never received",
                meta.index
            ));
        };
        if received != *meta {
            return Err(format!(
                "group {group}: install of snapshot {} while snapshot {} was received",
                meta.index, received.index
            ));
        }
        let file_meta = receiver
            .finish()
            .map_err(|e| format!("group {group}: installing snapshot {}: {e}", meta.index))?;
        assert_eq!(
            file_meta.index, meta.index,
            "installed a different snapshot"
        );
        self.store
            .apply_snapshot(group, meta.index, meta.term)
            .map_err(|e| {
                format!(
                    "group {group}: compacting the log to snapshot {}: {e}",
                    meta.index
                )
            })?;
        log::info!(
            "group {group}: installed snapshot at index {} term {} ({} bytes)",
            meta.index,
            meta.term,
            meta.size_bytes
        );
        Ok(())
    }
}

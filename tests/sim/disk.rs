//! The simulated disk of one node: durable state plus a queue of writes in progress.
//!
//! A `Ready`'s writes complete after a random delay, in order. Only completed writes are
//! durable: a crash drops every pending write, except that the oldest one may be torn (its
//! truncation and a prefix of its entries survive; its hard state, which is written last,
//! does not).

use std::collections::VecDeque;

use ketch::raft::{
    DurableState, Entry, HardState, Message, SnapshotChunk, SnapshotMeta, SplitMix64,
};

/// What survives a crash.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    /// Term, vote, commit.
    pub hard_state: HardState,
    /// The latest snapshot's metadata.
    pub snapshot: SnapshotMeta,
    /// The latest snapshot's bytes.
    pub snapshot_data: Vec<u8>,
    /// Entries after the snapshot.
    pub entries: Vec<Entry>,
    /// A snapshot being received: its metadata and the bytes so far.
    pub incoming: Option<(SnapshotMeta, Vec<u8>)>,
    /// Older snapshots kept for transfers in progress (at most `RETAINED_SNAPSHOTS`).
    pub retained: VecDeque<(SnapshotMeta, Vec<u8>)>,
}

/// Older snapshot files a node keeps, as a real node keeps the last few.
const RETAINED_SNAPSHOTS: usize = 3;

impl Durable {
    /// What the core is rebuilt from.
    pub fn to_state(&self) -> DurableState {
        DurableState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }

    fn retain(&mut self, meta: SnapshotMeta, data: Vec<u8>) {
        self.retained.push_back((meta, data));
        while self.retained.len() > RETAINED_SNAPSHOTS {
            self.retained.pop_front();
        }
    }

    /// The bytes of the snapshot named by `meta`, if still kept.
    pub fn snapshot_bytes(&self, meta: &SnapshotMeta) -> Option<&[u8]> {
        if self.snapshot == *meta {
            return Some(&self.snapshot_data);
        }
        self.retained
            .iter()
            .find(|(m, _)| m == meta)
            .map(|(_, data)| data.as_slice())
    }

    fn truncate_from(&mut self, index: u64) {
        self.entries.retain(|e| e.index < index);
    }

    fn append(&mut self, entries: &[Entry]) {
        for entry in entries {
            let expected = self
                .entries
                .last()
                .map_or(self.snapshot.index + 1, |e| e.index + 1);
            assert_eq!(
                entry.index, expected,
                "SIM VIOLATION: the core asked to append a non-contiguous entry"
            );
            self.entries.push(entry.clone());
        }
    }
}

/// One `Ready`'s worth of writes.
#[derive(Debug, Clone, Default)]
pub struct PendingWrite {
    /// Step at which it becomes durable.
    pub complete_at: u64,
    /// Hard state to write.
    pub hard_state: Option<HardState>,
    /// Suffix truncation.
    pub truncate_from: Option<u64>,
    /// Entries to append.
    pub entries: Vec<Entry>,
    /// Snapshot chunks to write.
    pub chunks: Vec<SnapshotChunk>,
    /// Snapshot to install after the chunks.
    pub install: Option<SnapshotMeta>,
    /// Messages to send once durable.
    pub after_messages: Vec<Message>,
}

/// A node's disk.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// The durable state.
    pub durable: Durable,
    /// Writes in progress, oldest first.
    pub pending: VecDeque<PendingWrite>,
    /// Writes completed.
    pub writes_completed: u64,
    /// A stalled disk: while set, no write completes (nor tells the core it is durable).
    pub held: bool,
}

impl Disk {
    /// Queues a write that completes no earlier than `complete_at` and after earlier ones.
    pub fn submit(&mut self, mut write: PendingWrite) {
        if let Some(last) = self.pending.back() {
            write.complete_at = write.complete_at.max(last.complete_at);
        }
        self.pending.push_back(write);
    }

    /// Completes the oldest write if due; returns it.
    pub fn complete_next(&mut self, now: u64) -> Option<PendingWrite> {
        if self.held || self.pending.front()?.complete_at > now {
            return None;
        }
        let write = self.pending.pop_front()?;
        let d = &mut self.durable;
        if let Some(index) = write.truncate_from {
            d.truncate_from(index);
        }
        d.append(&write.entries);
        if let Some(hs) = write.hard_state {
            d.hard_state = hs;
        }
        for chunk in &write.chunks {
            if chunk.offset == 0 {
                d.incoming = Some((chunk.meta.clone(), Vec::new()));
            }
            let (meta, bytes) = d
                .incoming
                .as_mut()
                .expect("SIM VIOLATION: snapshot chunk without a start");
            assert_eq!(
                *meta, chunk.meta,
                "SIM VIOLATION: chunk of another snapshot"
            );
            assert_eq!(
                bytes.len() as u64,
                chunk.offset,
                "SIM VIOLATION: chunk at the wrong offset"
            );
            bytes.extend_from_slice(&chunk.data);
        }
        if let Some(meta) = &write.install {
            let (incoming_meta, bytes) = d
                .incoming
                .take()
                .expect("SIM VIOLATION: install without chunks");
            assert_eq!(
                incoming_meta, *meta,
                "SIM VIOLATION: installing another snapshot"
            );
            assert_eq!(
                bytes.len() as u64,
                meta.size_bytes,
                "SIM VIOLATION: incomplete snapshot installed"
            );
            let old_snapshot = std::mem::take(&mut d.snapshot);
            let old_data = std::mem::take(&mut d.snapshot_data);
            d.retain(old_snapshot, old_data);
            d.snapshot = meta.clone();
            d.snapshot_data = bytes;
            d.entries.clear();
            d.hard_state.commit = d.hard_state.commit.max(meta.index);
        }
        self.writes_completed += 1;
        Some(write)
    }

    /// A crash: pending writes are lost, the oldest possibly torn. Returns whether a write
    /// was torn (part of it survived).
    pub fn crash(&mut self, rng: &mut SplitMix64) -> bool {
        let mut torn = false;
        if let Some(first) = self.pending.pop_front() {
            if rng.range(0, 2) == 0 {
                if let Some(index) = first.truncate_from {
                    self.durable.truncate_from(index);
                }
                let kept = rng.range(0, first.entries.len() as u64 + 1) as usize;
                self.durable.append(&first.entries[..kept]);
                torn = kept > 0 || first.truncate_from.is_some();
            }
        }
        self.pending.clear();
        torn
    }

    /// Stores a locally built snapshot (written to a temporary file and renamed: atomic).
    pub fn store_snapshot(&mut self, meta: SnapshotMeta, data: Vec<u8>) {
        self.durable.entries.retain(|e| e.index > meta.index);
        let old_snapshot = std::mem::take(&mut self.durable.snapshot);
        let old_data = std::mem::take(&mut self.durable.snapshot_data);
        self.durable.retain(old_snapshot, old_data);
        self.durable.snapshot = meta;
        self.durable.snapshot_data = data;
    }
}

//! The simulated disk of one node: durable state plus a queue of writes in progress.
//!
//! A `Ready`'s writes complete after a random delay, in order. Only completed writes are
//! durable: a crash drops every pending write, except that the oldest one may be torn (its
//! truncation and a prefix of its entries survive; its hard state, which is written last,
//! does not).
//!
//! The disks of one host's groups can share one log (`SharedLog`, as a `Host`'s groups share
//! one `LogStore`): their writes then become durable in the order they were submitted across
//! all of them, and a host crash (`crash_shared_log`) tears that one stream, so a prefix of it
//! survives, the write at the cut may be torn, and everything after it is lost, whichever
//! group it belonged to.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

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
    /// Position in its host's shared log (0 for a disk of its own).
    pub log_seq: u64,
}

/// The tail of one host's shared log: what orders its groups' writes.
#[derive(Debug, Default)]
pub struct SharedLog {
    /// The step at which the latest submitted write completes: a later one cannot complete
    /// before it (one log, synced in order).
    pub last_complete_at: u64,
    /// Writes submitted so far (the next write's `log_seq` is one more).
    pub writes_submitted: u64,
}

/// A host's shared log, held by each of its groups' disks.
pub type SharedLogRef = Rc<RefCell<SharedLog>>;

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
    /// The host log this disk's writes go to, if shared with other groups.
    pub shared: Option<SharedLogRef>,
}

impl Disk {
    /// Queues a write that completes no earlier than `complete_at` and after earlier ones.
    pub fn submit(&mut self, mut write: PendingWrite) {
        if let Some(last) = self.pending.back() {
            write.complete_at = write.complete_at.max(last.complete_at);
        }
        if let Some(shared) = &self.shared {
            let mut log = shared.borrow_mut();
            write.complete_at = write.complete_at.max(log.last_complete_at);
            log.last_complete_at = write.complete_at;
            log.writes_submitted += 1;
            write.log_seq = log.writes_submitted;
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
        let torn = !self.pending.is_empty() && rng.range(0, 2) == 0 && self.tear_oldest(rng);
        self.pending.clear();
        torn
    }

    /// Drops the oldest pending write, keeping its truncation and a random prefix of its
    /// entries (not its hard state, written last). Returns whether any of it survived.
    fn tear_oldest(&mut self, rng: &mut SplitMix64) -> bool {
        let Some(first) = self.pending.pop_front() else {
            return false;
        };
        if let Some(index) = first.truncate_from {
            self.durable.truncate_from(index);
        }
        let kept = rng.range(0, first.entries.len() as u64 + 1) as usize;
        self.durable.append(&first.entries[..kept]);
        kept > 0 || first.truncate_from.is_some()
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

/// What a host crash did to its shared log.
#[derive(Debug, Default, Clone, Copy)]
pub struct SharedLogCrash {
    /// Pending writes that reached the disk whole before the crash.
    pub writes_survived: u64,
    /// Whether the write at the cut was torn (part of it survived).
    pub torn: bool,
    /// Pending writes lost, the one at the cut included.
    pub writes_lost: u64,
    /// Groups that lost at least one pending write.
    pub groups_losing_writes: u64,
}

/// A host crash over the disks of all its groups, which share one log: the pending writes of
/// all of them form one stream in submission order (`log_seq`); a random prefix of it reached
/// the disk whole, the write at the cut may be torn (as `Disk::crash` tears the oldest), and
/// every later write is lost, in whichever group. Leaves no disk with a pending write.
pub fn crash_shared_log(disks: &mut [&mut Disk], rng: &mut SplitMix64) -> SharedLogCrash {
    let mut stream: Vec<(u64, usize)> = Vec::new();
    for (d, disk) in disks.iter().enumerate() {
        assert!(
            disk.shared.is_some(),
            "crash_shared_log needs disks on a shared log"
        );
        stream.extend(disk.pending.iter().map(|w| (w.log_seq, d)));
    }
    stream.sort_unstable();
    let mut outcome = SharedLogCrash::default();
    let cut = rng.range(0, stream.len() as u64 + 1) as usize;
    for &(_, d) in &stream[..cut] {
        // A stalled disk wrote nothing: the stream stops at its first write.
        if disks[d].complete_next(u64::MAX).is_none() {
            break;
        }
        outcome.writes_survived += 1;
    }
    outcome.writes_lost = stream.len() as u64 - outcome.writes_survived;
    outcome.groups_losing_writes = disks.iter().filter(|d| !d.pending.is_empty()).count() as u64;
    if let Some(&(_, d)) = stream.get(outcome.writes_survived as usize) {
        if rng.range(0, 2) == 0 && !disks[d].held {
            outcome.torn = disks[d].tear_oldest(rng);
        }
    }
    for disk in disks.iter_mut() {
        disk.pending.clear();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketch::raft::EntryKind;

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            kind: EntryKind::Normal,
            data: Default::default(),
        }
    }

    /// Three groups' disks on one shared log, each with writes of one entry pending, crashed:
    /// what survives is a prefix of the shared stream (plus a torn write at the cut), never a
    /// later write without an earlier one, and every crash leaves no write pending.
    #[test]
    fn a_shared_log_crash_keeps_a_prefix_of_the_stream() {
        let mut torn_crashes = 0;
        let mut partial_crashes = 0;
        for seed in 0..200 {
            let mut rng = SplitMix64::new(seed);
            let log = SharedLogRef::default();
            let mut disks: Vec<Disk> = (0..3)
                .map(|_| Disk {
                    shared: Some(log.clone()),
                    ..Disk::default()
                })
                .collect();
            let mut next_index = [1u64; 3];
            // log_seq -> (disk, entry index), in submission order across the disks.
            let mut submitted = Vec::new();
            for _ in 0..12 {
                let d = rng.range(0, 3) as usize;
                let index = next_index[d];
                next_index[d] += 1;
                disks[d].submit(PendingWrite {
                    complete_at: 1,
                    entries: vec![entry(index)],
                    ..PendingWrite::default()
                });
                submitted.push((d, index));
            }
            let crash = {
                let mut refs: Vec<&mut Disk> = disks.iter_mut().collect();
                crash_shared_log(&mut refs, &mut rng)
            };
            assert!(disks.iter().all(|d| d.pending.is_empty()));
            assert_eq!(crash.writes_survived + crash.writes_lost, 12);
            let durable =
                |d: usize, index: u64| disks[d].durable.entries.iter().any(|e| e.index == index);
            let survived: Vec<bool> = submitted.iter().map(|(d, i)| durable(*d, *i)).collect();
            let kept = survived.iter().take_while(|s| **s).count();
            // Whole writes survive up to the cut; the write at the cut may be torn (here: its
            // one entry kept); nothing after it survives.
            assert!(kept as u64 >= crash.writes_survived);
            assert!(kept as u64 <= crash.writes_survived + 1);
            assert!(
                survived[kept..].iter().all(|s| !s),
                "seed {seed}: a later write survived an earlier one lost"
            );
            torn_crashes += u64::from(crash.torn);
            partial_crashes += u64::from(crash.writes_survived > 0 && crash.writes_lost > 0);
        }
        assert!(
            torn_crashes > 10,
            "torn writes at the cut happen ({torn_crashes})"
        );
        assert!(
            partial_crashes > 100,
            "most crashes keep some writes and lose others ({partial_crashes})"
        );
    }
}

//! The apply thread: applies committed entries to the [`StateMachine`] in order, resolves the
//! proposals waiting on them, answers reads once their index is applied, builds snapshots and
//! restores received ones.
//!
//! Input: a bounded channel from the loop ([`APPLY_QUEUE_ITEMS`] items; the loop never has more
//! than that many unprocessed items outstanding, so its `try_send` never fails, and it stops
//! taking `Ready`s from the core when the bound is reached: that is the backpressure a slow
//! state machine applies). The loop sends work in the order the core produced it, so a restore
//! is always followed, never preceded, by the entries after it.
//!
//! Output, through [`ApplyShared`] and the loop's waker: the applied index, built snapshots, and
//! a fatal error. The proposals waiting on the entries arrive with them
//! ([`ApplyWork::Entries`]): the loop owns them until their entry commits and then hands them
//! over, so no map of waiters is shared between the threads, and each proposer is answered
//! here, with its result, the moment its entry is applied. (Handing results back to the loop
//! instead would put one more thread hop and wake-up on every commit.)
//!
//! Snapshots are built as of the thread's applied index when the request is processed, which
//! may be past the index the core asked for (entries sent before the request may still be in
//! the queue): the core is told the actual index and term, both of a committed, applied entry,
//! after being told the applied index, so its bookkeeping holds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ketch_storage::snapshot::SnapshotStore;

use super::addresses::is_address_entry;
use super::completion::{ProposeCompletion, ReadCompletion};
use super::durable_state::{membership_bytes, raft_snapshot_meta};
use super::errors::{ProposeError, ReadError};
use super::state_machine::StateMachine;
use crate::raft::{Entry, EntryKind, NodeId, SnapshotMeta, SnapshotRequest};

/// A confirmed read waiting for its index to apply.
struct WaitingRead {
    query: Vec<u8>,
    done: ReadCompletion,
    deadline: Instant,
}

/// The apply thread wakes the loop at least once per this many processed items.
const WAKE_EVERY_ITEMS: u64 = 64;

/// Bound of the loop-to-apply channel, in work items.
pub const APPLY_QUEUE_ITEMS: usize = 1024;

/// A proposer waiting for its entry to apply.
#[derive(Debug)]
pub struct Waiter {
    /// The term the entry was proposed in: an entry at the same index with another term means
    /// the proposal was overwritten.
    pub term: u64,
    /// Where the result goes.
    pub done: ProposeCompletion,
    /// When the loop answers `Timeout` if the entry has not applied.
    pub deadline: Instant,
}

/// Work for the apply thread.
#[derive(Debug)]
pub enum ApplyWork {
    /// Committed entries, in order, with the proposals accepted on this node that wait on
    /// them, by index (the loop hands them over with their entries, and no longer holds them).
    Entries {
        /// The entries.
        entries: Vec<Entry>,
        /// The waiting proposals at these entries' indexes.
        waiters: BTreeMap<u64, Waiter>,
    },
    /// A confirmed read: answer once `index` is applied.
    Read {
        /// The read index.
        index: u64,
        /// The query for the state machine.
        query: Vec<u8>,
        /// Where the answer goes.
        done: ReadCompletion,
        /// When to answer `Timeout` if `index` is not applied by then (a follower may learn
        /// a read index it then never reaches, e.g. when partitioned right after).
        deadline: Instant,
    },
    /// Build a snapshot.
    BuildSnapshot {
        /// What the core asked for.
        request: SnapshotRequest,
        /// The loop's peer address book, carried in the snapshot (see `durable_state`) so that a
        /// node receiving it learns every member's address.
        addresses: BTreeMap<NodeId, SocketAddr>,
    },
    /// Replace the state by this durable, received snapshot.
    Restore(SnapshotMeta),
}

/// What the apply thread publishes.
#[derive(Debug, Default)]
pub struct ApplyShared {
    /// Highest index applied.
    pub applied_index: AtomicU64,
    /// Work items fully processed (the loop compares with what it sent).
    pub processed_items: AtomicU64,
    /// Snapshots built, not yet reported to the core.
    pub built: Mutex<Vec<SnapshotMeta>>,
    /// The fatal error, once one happened.
    pub error: Mutex<Option<String>>,
}

/// The apply thread's state.
pub struct Applier<S: StateMachine> {
    state_machine: S,
    snapshots: SnapshotStore,
    shared: Arc<ApplyShared>,
    waker: Arc<mio::Waker>,
    applied_index: u64,
    applied_term: u64,
    /// Reads waiting for their index, by index. Bounded by the core's `max_pending_reads`
    /// times the number of read indexes in flight; the loop bounds the reads it accepts.
    reads: BTreeMap<u64, Vec<WaitingRead>>,
    /// No waiting read has a deadline before this.
    reads_expire_from: Option<Instant>,
}

impl<S: StateMachine> Applier<S> {
    /// An applier whose state machine already holds the state up to `applied_index`.
    pub fn new(
        state_machine: S,
        snapshots: SnapshotStore,
        shared: Arc<ApplyShared>,
        waker: Arc<mio::Waker>,
        applied_index: u64,
        applied_term: u64,
    ) -> Self {
        shared.applied_index.store(applied_index, Ordering::Release);
        Applier {
            state_machine,
            snapshots,
            shared,
            waker,
            applied_index,
            applied_term,
            reads: BTreeMap::new(),
            reads_expire_from: None,
        }
    }

    /// Runs until the loop drops its sender, or a fatal error (recorded and returned).
    pub fn run(mut self, work: Receiver<ApplyWork>) -> Result<(), String> {
        loop {
            // Waiting reads time out even when no work arrives.
            let received = match self.reads_expire_from {
                Some(at) => work.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => work.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let item = match received {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout) => {
                    self.expire_reads();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let is_snapshot = matches!(item, ApplyWork::BuildSnapshot { .. });
            let result = match item {
                ApplyWork::Entries { entries, waiters } => {
                    self.apply_entries(entries, waiters);
                    Ok(())
                }
                ApplyWork::Read {
                    index,
                    query,
                    done,
                    deadline,
                } => {
                    self.reads.entry(index).or_default().push(WaitingRead {
                        query,
                        done,
                        deadline,
                    });
                    self.reads_expire_from = Some(
                        self.reads_expire_from
                            .map_or(deadline, |at| at.min(deadline)),
                    );
                    Ok(())
                }
                ApplyWork::BuildSnapshot { request, addresses } => {
                    let started = Instant::now();
                    let built = self.build_snapshot(request, &addresses);
                    crate::metrics::snapshot_built(started.elapsed());
                    built
                }
                ApplyWork::Restore(meta) => self.restore(meta),
            };
            if let Err(error) = result {
                log::error!("apply thread stopped: {error}");
                *self.shared.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
                let _ = self.waker.wake();
                return Err(error);
            }
            self.answer_reads();
            self.expire_reads();
            self.shared
                .applied_index
                .store(self.applied_index, Ordering::Release);
            let processed = self.shared.processed_items.fetch_add(1, Ordering::Release) + 1;
            // The loop needs the applied index only for log compaction and its queue
            // accounting: waking it per item costs a syscall and a loop pass per commit batch.
            // It is woken for snapshots (below), errors, every WAKE_EVERY_ITEMS items (so a loop
            // that stopped on a full queue resumes long before the queue drains); otherwise it
            // reads the index on its next pass (within a tick).
            if is_snapshot || processed % WAKE_EVERY_ITEMS == 0 {
                let _ = self.waker.wake();
            }
        }
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>, mut waiters: BTreeMap<u64, Waiter>) {
        for entry in entries {
            if entry.index <= self.applied_index {
                // Handed out again after a restart below a snapshot already restored.
                continue;
            }
            assert_eq!(
                entry.index,
                self.applied_index + 1,
                "committed entries must apply in order without gaps"
            );
            let result = match entry.kind {
                // Address entries are the runtime's (see `addresses`).
                EntryKind::Normal if is_address_entry(&entry.data) => None,
                EntryKind::Normal => Some(self.state_machine.apply(entry.index, &entry.data)),
                // Configuration entries are the core's business (it applied them when
                // appended); the state machine sees only application data.
                EntryKind::Noop | EntryKind::ConfChange => None,
            };
            self.applied_index = entry.index;
            self.applied_term = entry.term;
            if let Some(waiter) = waiters.remove(&entry.index) {
                let answer = match result {
                    Some(bytes) if waiter.term == entry.term => Ok(bytes),
                    // Another leader's entry took the index: ours was dropped.
                    _ => Err(ProposeError::LeaderLost),
                };
                waiter.done.complete(answer);
            }
        }
        // Entries handed out again below a restored snapshot were skipped: whether a
        // proposal's entry is the one the snapshot holds is unknown.
        for (_, waiter) in waiters {
            waiter.done.complete(Err(ProposeError::LeaderLost));
        }
    }

    fn answer_reads(&mut self) {
        while let Some(entry) = self.reads.first_entry() {
            if *entry.key() > self.applied_index {
                break;
            }
            for read in entry.remove() {
                let answer = self.state_machine.query(&read.query);
                read.done.complete(Ok(answer));
            }
        }
        if self.reads.is_empty() {
            self.reads_expire_from = None;
        }
    }

    /// Answers `Timeout` to waiting reads past their deadline; runs only once the earliest
    /// deadline may have passed, and visits every waiting read then.
    fn expire_reads(&mut self) {
        let now = Instant::now();
        if self.reads_expire_from.is_none_or(|at| at > now) {
            return;
        }
        let mut expired = Vec::new();
        for reads in self.reads.values_mut() {
            let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(reads)
                .into_iter()
                .partition(|r| r.deadline <= now);
            *reads = waiting;
            expired.extend(late);
        }
        self.reads.retain(|_, reads| !reads.is_empty());
        self.reads_expire_from = self.reads.values().flatten().map(|r| r.deadline).min();
        for read in expired {
            read.done.complete(Err(ReadError::Timeout));
        }
    }

    fn build_snapshot(
        &mut self,
        request: SnapshotRequest,
        addresses: &BTreeMap<NodeId, SocketAddr>,
    ) -> Result<(), String> {
        assert!(
            self.applied_index >= request.index,
            "snapshot requested beyond the applied index"
        );
        if self.applied_index == 0 {
            return Ok(());
        }
        let (index, term) = (self.applied_index, self.applied_term);
        let mut writer = self
            .snapshots
            .begin(
                index,
                term,
                &membership_bytes(&request.membership, addresses),
            )
            .map_err(|e| format!("starting snapshot {index}: {e}"))?;
        self.state_machine
            .snapshot(&mut writer)
            .map_err(|e| format!("state machine snapshot at {index}: {e}"))?;
        let file_meta = writer
            .finish()
            .map_err(|e| format!("finishing snapshot {index}: {e}"))?;
        let meta = raft_snapshot_meta(&file_meta).map_err(|e| e.to_string())?;
        log::info!(
            "built snapshot at index {index} term {term} ({} bytes)",
            meta.size_bytes
        );
        // Applied is published before the snapshot so the core never sees one beyond it.
        self.shared.applied_index.store(index, Ordering::Release);
        self.shared
            .built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(meta);
        Ok(())
    }

    fn restore(&mut self, meta: SnapshotMeta) -> Result<(), String> {
        let file_meta = self
            .snapshots
            .list()
            .into_iter()
            .find(|m| (m.index, m.term) == (meta.index, meta.term))
            .ok_or_else(|| format!("installed snapshot {} is not in the store", meta.index))?;
        let mut reader = self
            .snapshots
            .open_reader(&file_meta)
            .map_err(|e| format!("opening snapshot {}: {e}", meta.index))?;
        self.state_machine
            .restore(&mut reader)
            .map_err(|e| format!("restoring snapshot {}: {e}", meta.index))?;
        reader
            .finish()
            .map_err(|e| format!("verifying snapshot {}: {e}", meta.index))?;
        self.applied_index = meta.index;
        self.applied_term = meta.term;
        log::info!(
            "restored state machine from snapshot at index {}",
            meta.index
        );
        Ok(())
    }
}

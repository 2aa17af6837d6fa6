//! The host's apply workers: a fixed pool (`HostConfig::apply_workers`) that applies every
//! group's committed entries to its `StateMachine`, answers its proposals and reads, and builds
//! and restores its snapshots. A group always goes to the same worker (its id modulo the pool
//! size), so its commands apply in log order; groups on different workers apply in parallel.
//!
//! Each worker owns its groups' state machines outright: no lock is taken to apply. It
//! publishes, per group, the applied index and any snapshot it built, in one list the loop
//! drains (`ApplyShared::reports`), and wakes the loop when it adds to it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::snapshots::GroupSnapshots;
use crate::node::apply::Waiter;
use crate::node::completion::ReadCompletion;
use crate::node::durable_state::{membership_bytes, raft_snapshot_meta};
use crate::node::errors::{ProposeError, ReadError};
use crate::node::StateMachine;
use crate::raft::{Entry, EntryKind, GroupId, SnapshotMeta, SnapshotRequest};

/// Items one worker's queue holds.
pub const APPLY_QUEUE_ITEMS: usize = 4096;
/// Messages (a loop pass's work each) taken before the worker reports.
const BURST_MESSAGES_MAX: usize = 4;

/// Work for an apply worker.
pub enum ApplyWork {
    /// A group now lives on this worker, with its state machine restored to `applied`.
    Add {
        /// The group.
        group: GroupId,
        /// Its state machine.
        state_machine: Box<dyn StateMachine>,
        /// Applied index and term of its restored state.
        applied: (u64, u64),
    },
    /// Committed entries of `group`, in order, with the proposals waiting on them.
    Entries {
        /// The group.
        group: GroupId,
        /// The entries.
        entries: Vec<Entry>,
        /// Proposals accepted on this host at these entries' indexes.
        waiters: BTreeMap<u64, Waiter>,
    },
    /// A confirmed read: answer once `index` is applied.
    Read {
        /// The group.
        group: GroupId,
        /// The read index.
        index: u64,
        /// The query.
        query: Vec<u8>,
        /// Where the answer goes.
        done: ReadCompletion,
        /// When to answer `Timeout`.
        deadline: Instant,
    },
    /// Build a snapshot of `group`.
    BuildSnapshot {
        /// The group.
        group: GroupId,
        /// What its core asked for.
        request: SnapshotRequest,
    },
    /// Replace `group`'s state by this durable, received snapshot.
    Restore {
        /// The group.
        group: GroupId,
        /// The snapshot.
        meta: SnapshotMeta,
    },
    /// `group` left this host: drop its state machine, answer its waiting reads.
    Remove {
        /// The group.
        group: GroupId,
    },
}

/// What a worker reports about one group.
#[derive(Debug)]
pub enum ApplyReport {
    /// The group's applied index advanced to this.
    Applied(GroupId, u64),
    /// The group's snapshot at this meta is durable.
    Built(GroupId, SnapshotMeta),
}

/// What the workers publish for the loop.
#[derive(Debug, Default)]
pub struct ApplyShared {
    /// Reports not yet taken by the loop, in the order made (an `Applied` before a `Built` at
    /// its index).
    pub reports: Mutex<Vec<ApplyReport>>,
    /// Items fully processed, per worker (the loop compares with what it sent).
    pub processed: Vec<AtomicU64>,
    /// The first error of any worker.
    pub error: Mutex<Option<String>>,
}

impl ApplyShared {
    /// Shared state for `workers` workers.
    pub fn new(workers: usize) -> ApplyShared {
        ApplyShared {
            reports: Mutex::new(Vec::new()),
            processed: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            error: Mutex::new(None),
        }
    }
}

struct WaitingRead {
    query: Vec<u8>,
    done: ReadCompletion,
    deadline: Instant,
}

struct Applied {
    state_machine: Box<dyn StateMachine>,
    index: u64,
    term: u64,
    reads: BTreeMap<u64, Vec<WaitingRead>>,
}

/// One apply worker.
pub struct ApplyWorker {
    worker: usize,
    groups: HashMap<GroupId, Applied>,
    snapshots: GroupSnapshots,
    shared: Arc<ApplyShared>,
    waker: Arc<mio::Waker>,
    reads_expire_from: Option<Instant>,
}

impl ApplyWorker {
    /// Worker number `worker` of the pool.
    pub fn new(
        worker: usize,
        snapshots: GroupSnapshots,
        shared: Arc<ApplyShared>,
        waker: Arc<mio::Waker>,
    ) -> Self {
        ApplyWorker {
            worker,
            groups: HashMap::new(),
            snapshots,
            shared,
            waker,
            reads_expire_from: None,
        }
    }

    /// Runs until the loop drops its sender.
    pub fn run(mut self, work: Receiver<Vec<ApplyWork>>) -> Result<(), String> {
        loop {
            let received = match self.reads_expire_from {
                Some(at) => work.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => work.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let mut reports = Vec::new();
            let items = match received {
                Ok(items) => items,
                Err(RecvTimeoutError::Timeout) => {
                    self.expire_reads();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // More work already queued is taken before reporting: one report and one wake-up
            // per burst rather than per message.
            let mut processed = 0u64;
            let mut messages = 0;
            let mut next = Some(items);
            while let Some(items) = next.take() {
                for item in items {
                    if let Err(error) = self.handle(item, &mut reports) {
                        return Err(self.stopped(error));
                    }
                    processed += 1;
                }
                messages += 1;
                if messages < BURST_MESSAGES_MAX {
                    next = work.try_recv().ok();
                }
            }
            self.expire_reads();
            if !reports.is_empty() {
                self.shared
                    .reports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .append(&mut reports);
            }
            self.shared.processed[self.worker].fetch_add(processed, Ordering::Release);
            let _ = self.waker.wake();
        }
        Ok(())
    }

    /// Publishes the error that stops this worker (the first of any worker wins) and wakes
    /// the loop, which stops every group.
    fn stopped(&self, error: String) -> String {
        log::error!("apply worker {} stopped: {error}", self.worker);
        self.shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(error.clone());
        let _ = self.waker.wake();
        error
    }

    fn handle(&mut self, item: ApplyWork, reports: &mut Vec<ApplyReport>) -> Result<(), String> {
        match item {
            ApplyWork::Add {
                group,
                state_machine,
                applied,
            } => {
                self.groups.insert(
                    group,
                    Applied {
                        state_machine,
                        index: applied.0,
                        term: applied.1,
                        reads: BTreeMap::new(),
                    },
                );
            }
            ApplyWork::Entries {
                group,
                entries,
                waiters,
            } => {
                let Some(applied) = self.groups.get_mut(&group) else {
                    // Removed meanwhile: its waiters answer as dropped (`ShuttingDown`).
                    return Ok(());
                };
                let before = applied.index;
                apply_entries(applied, entries, waiters);
                answer_reads(applied);
                if applied.index > before {
                    reports.push(ApplyReport::Applied(group, applied.index));
                }
            }
            ApplyWork::Read {
                group,
                index,
                query,
                done,
                deadline,
            } => {
                let Some(applied) = self.groups.get_mut(&group) else {
                    done.complete(Err(ReadError::ShuttingDown));
                    return Ok(());
                };
                applied.reads.entry(index).or_default().push(WaitingRead {
                    query,
                    done,
                    deadline,
                });
                answer_reads(applied);
                if !applied.reads.is_empty() {
                    self.reads_expire_from = Some(
                        self.reads_expire_from
                            .map_or(deadline, |at| at.min(deadline)),
                    );
                }
            }
            ApplyWork::BuildSnapshot { group, request } => {
                if let Some(meta) = self.build_snapshot(group, request)? {
                    reports.push(ApplyReport::Built(group, meta));
                }
            }
            ApplyWork::Restore { group, meta } => {
                self.restore(group, &meta)?;
                if let Some(applied) = self.groups.get_mut(&group) {
                    answer_reads(applied);
                }
                reports.push(ApplyReport::Applied(group, meta.index));
            }
            ApplyWork::Remove { group } => {
                if let Some(applied) = self.groups.remove(&group) {
                    for read in applied.reads.into_values().flatten() {
                        read.done.complete(Err(ReadError::ShuttingDown));
                    }
                }
            }
        }
        Ok(())
    }

    fn build_snapshot(
        &mut self,
        group: GroupId,
        request: SnapshotRequest,
    ) -> Result<Option<SnapshotMeta>, String> {
        let Some(applied) = self.groups.get_mut(&group) else {
            return Ok(None);
        };
        assert!(
            applied.index >= request.index,
            "snapshot requested beyond the applied index"
        );
        if applied.index == 0 {
            return Ok(None);
        }
        let (index, term) = (applied.index, applied.term);
        let store = self.snapshots.store(group)?;
        let mut writer = store
            .begin(
                index,
                term,
                &membership_bytes(&request.membership, &BTreeMap::new()),
            )
            .map_err(|e| format!("group {group}: starting snapshot {index}: {e}"))?;
        applied
            .state_machine
            .snapshot(&mut writer)
            .map_err(|e| format!("group {group}: state machine snapshot at {index}: {e}"))?;
        let file_meta = writer
            .finish()
            .map_err(|e| format!("group {group}: finishing snapshot {index}: {e}"))?;
        let meta = raft_snapshot_meta(&file_meta).map_err(|e| e.to_string())?;
        log::debug!(
            "group {group}: built snapshot at index {index} term {term} ({} bytes)",
            meta.size_bytes
        );
        Ok(Some(meta))
    }

    fn restore(&mut self, group: GroupId, meta: &SnapshotMeta) -> Result<(), String> {
        let Some(applied) = self.groups.get_mut(&group) else {
            return Ok(());
        };
        let store = self.snapshots.store(group)?;
        let file_meta = store
            .list()
            .into_iter()
            .find(|m| (m.index, m.term) == (meta.index, meta.term))
            .ok_or_else(|| {
                format!(
                    "group {group}: installed snapshot {} is not in the store",
                    meta.index
                )
            })?;
        let mut reader = store
            .open_reader(&file_meta)
            .map_err(|e| format!("group {group}: opening snapshot {}: {e}", meta.index))?;
        applied
            .state_machine
            .restore(&mut reader)
            .map_err(|e| format!("group {group}: restoring snapshot {}: {e}", meta.index))?;
        reader
            .finish()
            .map_err(|e| format!("group {group}: verifying snapshot {}: {e}", meta.index))?;
        applied.index = meta.index;
        applied.term = meta.term;
        Ok(())
    }

    fn expire_reads(&mut self) {
        let now = Instant::now();
        if self.reads_expire_from.is_none_or(|at| at > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        for applied in self.groups.values_mut() {
            if applied.reads.is_empty() {
                continue;
            }
            for reads in applied.reads.values_mut() {
                let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(reads)
                    .into_iter()
                    .partition(|r| r.deadline <= now);
                *reads = waiting;
                for read in late {
                    read.done.complete(Err(ReadError::Timeout));
                }
                for read in reads.iter() {
                    next = Some(next.map_or(read.deadline, |at| at.min(read.deadline)));
                }
            }
            applied.reads.retain(|_, reads| !reads.is_empty());
        }
        self.reads_expire_from = next;
    }
}

fn apply_entries(applied: &mut Applied, entries: Vec<Entry>, mut waiters: BTreeMap<u64, Waiter>) {
    for entry in entries {
        if entry.index <= applied.index {
            continue;
        }
        assert_eq!(
            entry.index,
            applied.index + 1,
            "committed entries must apply in order without gaps"
        );
        let result = match entry.kind {
            EntryKind::Normal => Some(applied.state_machine.apply(entry.index, &entry.data)),
            EntryKind::Noop | EntryKind::ConfChange => None,
        };
        applied.index = entry.index;
        applied.term = entry.term;
        if let Some(waiter) = waiters.remove(&entry.index) {
            let answer = match result {
                Some(bytes) if waiter.term == entry.term => Ok(bytes),
                _ => Err(ProposeError::LeaderLost),
            };
            waiter.done.complete(answer);
        }
    }
    for (_, waiter) in waiters {
        waiter.done.complete(Err(ProposeError::LeaderLost));
    }
}

fn answer_reads(applied: &mut Applied) {
    while let Some(entry) = applied.reads.first_entry() {
        if *entry.key() > applied.index {
            break;
        }
        for read in entry.remove() {
            let answer = applied.state_machine.query(&read.query);
            read.done.complete(Ok(answer));
        }
    }
}

//! Log replication (Raft §5.3): proposals, AppendEntries with probing, pipelining and fast
//! backtracking, heartbeats, and commitment (Raft §5.4.2).

use bytes::Bytes;

use crate::raft::config::Fault;
use crate::raft::error::ProposalRefused;
use crate::raft::log::AppendOutcome;
use crate::raft::membership_log::entry_membership;
use crate::raft::message::{Entry, EntryKind, MessageBody};
use crate::raft::node_id::NodeId;
use crate::raft::progress::ProgressState;
use crate::raft::status::Role;

use super::Core;

/// Heartbeat responses without progress from a replicating follower with messages in flight
/// before the leader assumes they were lost and falls back to probing.
const STALLED_HEARTBEATS_BEFORE_PROBE: u32 = 2;

impl Core {
    /// Proposes `data` as a new entry. Returns the index it will have if committed.
    pub fn propose(&mut self, data: impl Into<Bytes>) -> Result<u64, ProposalRefused> {
        if self.role != Role::Leader {
            return Err(ProposalRefused::NotLeader {
                leader_hint: self.leader,
            });
        }
        if self.transfer.is_some() {
            return Err(ProposalRefused::TransferInProgress);
        }
        let entry = Entry {
            term: self.current_term,
            index: self.log.last_index() + 1,
            kind: EntryKind::Normal,
            data: data.into(),
        };
        let size_bytes = entry.size_bytes();
        // An empty pipeline always admits one entry, so an entry larger than the cap still
        // makes progress.
        if self.uncommitted_bytes > 0
            && self.uncommitted_bytes + size_bytes > self.config.max_uncommitted_bytes
        {
            return Err(ProposalRefused::Backpressure {
                uncommitted_bytes: self.uncommitted_bytes,
                max_uncommitted_bytes: self.config.max_uncommitted_bytes,
            });
        }
        let index = entry.index;
        self.uncommitted_bytes += size_bytes;
        self.log.append(vec![entry]);
        self.broadcast_append(false);
        // A single voter commits as soon as the entry is durable (see on_persisted).
        Ok(index)
    }

    /// The driver made entries up to `index` durable, the entry at `index` having `term`.
    pub fn on_persisted(&mut self, index: u64, term: u64) {
        if self.log.on_persisted(index, term) && self.role == Role::Leader && self.maybe_commit() {
            self.broadcast_append(false);
        }
    }

    pub(super) fn broadcast_append(&mut self, allow_empty: bool) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in peers {
            self.send_append(id, allow_empty);
        }
    }

    /// Sends entries from the follower's `next_index` (or a snapshot chunk when they are
    /// compacted). Returns whether a message was sent.
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.state == ProgressState::Snapshot {
            return self.send_snapshot_chunk(to);
        }
        if pr.is_paused() {
            return false;
        }
        let prev_log_index = pr.next_index - 1;
        let last_index = self.log.last_index();
        let prev_log_term = self.log.term(prev_log_index);
        let entries =
            self.log
                .entries_from(pr.next_index, last_index + 1, self.config.max_message_bytes);
        let (Some(prev_log_term), Some(entries)) = (prev_log_term, entries) else {
            // Raft §7: the entries are compacted; send the snapshot instead.
            let meta = self.log.snapshot().clone();
            self.stats.snapshots_sent += 1;
            if let Some(pr) = self.progress.get_mut(&to) {
                pr.become_snapshot(meta);
            }
            return self.send_snapshot_chunk(to);
        };
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let bytes: u64 = entries.iter().map(Entry::size_bytes).sum();
        let last_sent = entries.last().map_or(prev_log_index, |e| e.index);
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.sent_entries(last_sent, bytes);
        }
        let leader_commit = self.log.commit();
        self.send(
            to,
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            },
        );
        true
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let round = self.reads.next_round(self.now_tick);
        let commit = self.log.commit();
        let targets: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .map(|(id, pr)| (*id, pr.match_index))
            .collect();
        for (id, match_index) in targets {
            self.send(
                id,
                MessageBody::Heartbeat {
                    commit: commit.min(match_index),
                    round,
                },
            );
        }
        // A single voter confirms its own rounds at once.
        self.release_confirmed_reads();
    }

    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: u64,
        reject_hint_index: u64,
        reject_hint_term: u64,
    ) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            self.stats.ignored_messages += 1;
            return;
        };
        pr.recent_active = true;
        if success {
            if index > last_index {
                self.stats.inconsistent_messages += 1;
                return;
            }
            if pr.maybe_update(index) {
                match pr.state {
                    ProgressState::Probe => pr.become_replicate(),
                    ProgressState::Snapshot => {
                        if pr
                            .snapshot
                            .as_ref()
                            .is_some_and(|t| pr.match_index >= t.meta.index)
                        {
                            pr.become_probe();
                        }
                    }
                    ProgressState::Replicate => pr.inflights.free_up_to(index),
                }
                if self.maybe_commit() {
                    self.broadcast_append(false);
                }
                self.maybe_send_timeout_now(from);
            } else if pr.state == ProgressState::Replicate {
                pr.inflights.free_up_to(index);
            }
            // Fill the window again (bounded by the in-flight limits).
            while self.send_append(from, false) {}
            return;
        }
        if reject_hint_index > last_index {
            self.stats.inconsistent_messages += 1;
            return;
        }
        if index == 0 {
            // A bare term notification (stale-leader reply); the term check already ran.
            return;
        }
        // Raft §5.3 optimisation: skip every entry whose term exceeds the follower's hint term.
        let next_probe = if reject_hint_term > 0 {
            self.log
                .find_conflict_by_term(reject_hint_index, reject_hint_term)
                .0
        } else {
            reject_hint_index
        };
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if pr.maybe_decrease_to(index, next_probe) {
            if pr.state == ProgressState::Replicate {
                pr.become_probe();
            }
            self.send_append(from, true);
        }
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            self.stats.ignored_messages += 1;
            return;
        };
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate
            && pr.match_index < last_index
            && !pr.inflights.is_empty()
        {
            // Pipelined messages may all have been lost; nothing else would resume the flow.
            if pr.match_index == pr.match_at_last_heartbeat {
                pr.stalled_heartbeats += 1;
                if pr.stalled_heartbeats >= STALLED_HEARTBEATS_BEFORE_PROBE {
                    pr.become_probe();
                }
            } else {
                pr.stalled_heartbeats = 0;
            }
        } else {
            pr.stalled_heartbeats = 0;
        }
        pr.match_at_last_heartbeat = pr.match_index;
        if pr.match_index < last_index {
            // The peer lags and the leader may have nothing new to send (an idle cluster, a
            // probe lost before the peer was reachable): in Probe, send a probe even when it
            // carries no entries, so that its rejection starts the backtracking. The flow
            // control still holds: a probe only when none is outstanding (`probe_sent` was
            // cleared above, one probe per heartbeat response), entries only within the
            // in-flight window, a snapshot when the entries are compacted.
            let probe = pr.state == ProgressState::Probe;
            self.send_append(from, probe);
        }
        self.reads.ack(from, round);
        self.release_confirmed_reads();
    }

    /// Advances the commit index from the replicas' matches. Returns whether it advanced.
    pub(super) fn maybe_commit(&mut self) -> bool {
        // The leader counts itself only up to its own durable index (etcd issue 14370).
        let durable = self.log.durable_index();
        let progress = &self.progress;
        let self_id = self.id;
        let quorum_index = self.deciding_quorum().committed_index(|id| {
            if id == self_id {
                Some(durable)
            } else {
                progress.get(&id).map(|pr| pr.match_index)
            }
        });
        let old_commit = self.log.commit();
        if quorum_index <= old_commit {
            return false;
        }
        // Raft §5.4.2: only entries of the current term commit by counting replicas.
        let current_term_entry = self.log.term(quorum_index) == Some(self.current_term);
        if !current_term_entry && self.config.unsafe_fault != Some(Fault::CommitOldTermByCount) {
            return false;
        }
        self.log.commit_to(quorum_index);
        self.advance_configuration();
        let mut released = 0u64;
        for index in old_commit + 1..=quorum_index {
            if let Some(entry) = self.log.entry(index) {
                if entry.term == self.current_term && entry.kind == EntryKind::Normal {
                    released += entry.size_bytes();
                }
            }
        }
        self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(released);
        if self.committed_in_current_term() {
            for (ctx, requester) in self.reads.take_waiting_for_commit() {
                self.leader_read(ctx, requester);
            }
        }
        true
    }

    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
    ) {
        if self.installing.is_some() {
            // The log is about to be replaced; the leader retries after the install.
            self.stats.ignored_messages += 1;
            return;
        }
        let mut configurations = Vec::new();
        for entry in &entries {
            match entry_membership(entry) {
                None => {}
                Some(Ok(_)) => configurations.push(entry.clone()),
                Some(Err(reason)) => {
                    log::warn!("node {}: append from {from}: {reason}", self.id);
                    self.stats.inconsistent_messages += 1;
                    return;
                }
            }
        }
        match self
            .log
            .maybe_append(prev_log_index, prev_log_term, leader_commit, entries)
        {
            AppendOutcome::Matched { match_index } => {
                // Thesis §4.1: configurations take effect when appended; a truncation drops
                // the ones it removed, bringing the previous configuration back.
                let log = &self.log;
                let mut changed = self
                    .memberships
                    .retain_held(|index, term| log.match_term(index, term));
                for entry in configurations {
                    if entry.index > self.memberships.latest().index
                        && self.log.match_term(entry.index, entry.term)
                    {
                        changed |= self.memberships.append(&entry).unwrap_or(false);
                    }
                }
                if changed {
                    self.refresh_membership();
                }
                // Persist before you speak: the ack waits for the entries to be durable.
                self.send_after_persist(
                    from,
                    MessageBody::AppendResponse {
                        success: true,
                        index: match_index,
                        reject_hint_index: 0,
                        reject_hint_term: 0,
                    },
                );
            }
            AppendOutcome::Rejected {
                hint_index,
                hint_term,
            } => {
                self.send(
                    from,
                    MessageBody::AppendResponse {
                        success: false,
                        index: prev_log_index,
                        reject_hint_index: hint_index,
                        reject_hint_term: hint_term,
                    },
                );
            }
            AppendOutcome::Inconsistent(reason) => {
                log::warn!(
                    "node {}: inconsistent append from {from}: {reason}",
                    self.id
                );
                self.stats.inconsistent_messages += 1;
            }
        }
    }
}

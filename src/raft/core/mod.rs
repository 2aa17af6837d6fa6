//! `Core`: the Raft state machine of one server. The module documentation of `crate::raft`
//! states its contract with the driver.
//!
//! This file holds the type, its construction and accessors, and the surface every driver
//! loop goes through: `tick`, `step` (the term rules of Raft §5.1, then a handler per message
//! kind), `on_applied`, and `ready`/`has_ready`. The handlers and the other inputs stand by
//! concept, as in etcd's raft, each file adding to the one `impl Core`:
//! - `election`: roles, timers, pre-vote and vote (Raft §5.2, thesis §9.6), check-quorum
//!   (thesis §6.2);
//! - `replication`: `propose`, `on_persisted`, AppendEntries and heartbeats, commitment
//!   (Raft §5.3, §5.4.2);
//! - `snapshot`: `on_snapshot_built`, `on_snapshot_installed`, InstallSnapshot (Raft §7);
//! - `reconfiguration`: `propose_conf_change` (thesis §4), `transfer_leader` (thesis §3.10),
//!   and telling removed nodes of their removal;
//! - `read`: `read_index` (thesis §6.4);
//! - `tests`: one core fed by hand (what takes a cluster is tested in the simulator).
//!
//! The state (`Core` and the types of its fields) is all here, so the concept files import
//! from this one and never from each other. A method one file calls in another is
//! `pub(super)`: private to `Core` all the same.

mod election;
mod read;
mod reconfiguration;
mod replication;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use super::config::{Config, ConfigError};
use super::log::RaftLog;
use super::membership::Membership;
use super::membership_log::MembershipLog;
use super::message::{Entry, HardState, Message, MessageBody, ReadState, SnapshotMeta};
use super::node_id::NodeId;
use super::progress::Progress;
use super::rand::SplitMix64;
use super::read_index::ReadIndexQueue;
use super::ready::{Ready, SnapshotChunk};
use super::status::{PeerProgress, Role, Stats, Status};

/// Removed nodes a leader keeps replicating to at once, so they learn of their removal; a
/// bound because any node id can contact the leader.
pub const MAX_DEPARTED_NODES: usize = 16;

/// What a node recovers from its storage when it starts.
#[derive(Debug, Clone, Default)]
pub struct DurableState {
    /// The durable hard state (term, vote, commit).
    pub hard_state: HardState,
    /// The latest durable snapshot's metadata. A fresh cluster uses index 0, term 0 and the
    /// initial membership.
    pub snapshot: SnapshotMeta,
    /// The durable entries after the snapshot, contiguous from `snapshot.index + 1`.
    pub entries: Vec<Entry>,
}

/// A leadership transfer in progress (thesis §3.10).
#[derive(Debug, Clone, Copy)]
struct Transfer {
    target: NodeId,
    elapsed_ticks: u32,
}

/// A snapshot being received from the leader.
#[derive(Debug, Clone)]
struct IncomingSnapshot {
    meta: SnapshotMeta,
    next_offset: u64,
}

/// The Raft core of one node. Pure and deterministic: no I/O, no clocks, no global state.
#[derive(Debug)]
pub struct Core {
    config: Config,
    id: NodeId,
    rng: SplitMix64,
    current_term: u64,
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    /// The configurations of the log; `membership` caches its latest one.
    memberships: MembershipLog,
    membership: Membership,
    /// A committed configuration has named this node (in this process or in durable state).
    member_committed: bool,
    /// A committed configuration without this node followed one with it.
    removed: bool,
    /// Leader only: removed nodes still replicated to, with the ticks left (counted once the
    /// configuration that removed them is committed). At most `MAX_DEPARTED_NODES`.
    departed: BTreeMap<NodeId, u32>,
    progress: BTreeMap<NodeId, Progress>,
    votes: BTreeMap<NodeId, bool>,
    now_tick: u64,
    election_elapsed_ticks: u32,
    heartbeat_elapsed_ticks: u32,
    randomized_election_timeout_ticks: u32,
    reads: ReadIndexQueue,
    transfer: Option<Transfer>,
    uncommitted_bytes: u64,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    read_states: Vec<ReadState>,
    last_hard_state: HardState,
    snapshot_building: bool,
    incoming_snapshot: Option<IncomingSnapshot>,
    snapshot_chunks: Vec<SnapshotChunk>,
    /// A received snapshot the driver must install; `(meta, emitted in a Ready yet, leader)`.
    installing: Option<(SnapshotMeta, bool, NodeId)>,
    stats: Stats,
}

impl Core {
    /// Builds a core from its configuration and durable state.
    ///
    /// The membership is the latest configuration entry of `durable.entries`, else the one of
    /// `durable.snapshot` (a fresh cluster bootstraps with a snapshot at index 0 naming the
    /// initial members; a node joining a running cluster with the empty membership). The
    /// applied index starts at the snapshot index: committed entries after it are handed out
    /// again for applying.
    pub fn new(config: Config, durable: DurableState) -> Result<Self, ConfigError> {
        config.validate()?;
        if !durable.snapshot.membership.is_unknown() {
            durable
                .snapshot
                .membership
                .validate()
                .map_err(|reason| ConfigError { reason })?;
        }
        let memberships = MembershipLog::new(&durable.snapshot, &durable.entries)
            .map_err(|reason| ConfigError { reason })?;
        let membership = memberships.current().clone();
        let log = RaftLog::new(durable.snapshot, durable.entries, durable.hard_state.commit)
            .map_err(|reason| ConfigError { reason })?;
        let member_committed = memberships
            .all()
            .any(|c| c.index <= log.commit() && c.membership.contains(config.id));
        // A torn write can persist entries of a term whose hard state was lost; never run at
        // a term below our own last entry's.
        let (current_term, voted_for) = if log.last_term() > durable.hard_state.term {
            (log.last_term(), None)
        } else {
            (durable.hard_state.term, durable.hard_state.vote)
        };
        let mut node = Self {
            id: config.id,
            rng: SplitMix64::for_node(config.seed, config.id),
            current_term,
            voted_for,
            role: Role::Follower,
            leader: None,
            memberships,
            membership,
            member_committed,
            removed: false,
            departed: BTreeMap::new(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            now_tick: 0,
            election_elapsed_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            randomized_election_timeout_ticks: config.election_timeout_ticks,
            reads: ReadIndexQueue::new(config.max_pending_reads),
            transfer: None,
            uncommitted_bytes: 0,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            last_hard_state: HardState {
                term: durable.hard_state.term,
                vote: durable.hard_state.vote,
                commit: log.commit(),
            },
            snapshot_building: false,
            incoming_snapshot: None,
            snapshot_chunks: Vec::new(),
            installing: None,
            stats: Stats::default(),
            log,
            config,
        };
        node.reset_election_timer();
        node.refresh_removed();
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Raft §5.1 currentTerm.
    pub fn term(&self) -> u64 {
        self.current_term
    }

    /// The leader known in the current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Read-only access to the log (for drivers and tests).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The membership in force: the latest configuration in the log, committed or not
    /// (thesis §4.1).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The configuration in force at the commit index.
    pub fn committed_membership(&self) -> &Membership {
        self.memberships.at(self.log.commit())
    }

    /// The configurations of the log (the snapshot's and every configuration entry after it).
    pub fn memberships(&self) -> &MembershipLog {
        &self.memberships
    }

    /// Whether this node learned that it was removed from the cluster: a committed
    /// configuration without it followed one with it, and it no longer leads. The runtime may
    /// stop the process. Updated by `ready`.
    pub fn is_removed(&self) -> bool {
        self.removed && self.role != Role::Leader
    }

    /// Event counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Where this node stands.
    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            term: self.current_term,
            leader: self.leader,
            commit: self.log.commit(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            progress: self
                .progress
                .iter()
                .map(|(id, pr)| {
                    (
                        *id,
                        PeerProgress {
                            match_index: pr.match_index,
                            next_index: pr.next_index,
                            state: pr.state,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Each peer's match index as this node last tracked it (meaningful on a leader), without
    /// building a [`Status`]: a host asks every awake leader on every tick.
    pub fn peer_matches(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.progress
            .iter()
            .map(|(id, progress)| (*id, progress.match_index))
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.now_tick += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    /// Leader tick, in order: check-quorum, a transfer's time-out (either may end the tick by
    /// stepping down), the retention of departed nodes, heartbeats, lost snapshot chunks.
    fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks >= self.config.election_timeout_ticks {
            self.election_elapsed_ticks = 0;
            if self.step_down_without_quorum() {
                return;
            }
        }
        if self.tick_transfer() {
            return;
        }
        self.tick_departed();
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            self.broadcast_heartbeat();
        }
        self.resend_stalled_snapshot_chunks();
    }

    /// The driver applied committed entries up to `index`.
    pub fn on_applied(&mut self, index: u64) {
        self.log.applied_to(index);
    }

    /// Takes the core's pending work. Call after any input; see `has_ready`.
    pub fn ready(&mut self) -> Ready {
        self.refresh_removed();
        if self.role == Role::Leader && self.reads.round_requested() {
            self.broadcast_heartbeat();
        }
        let hard_state = HardState {
            term: self.current_term,
            vote: self.voted_for,
            commit: self.log.commit(),
        };
        let hard_state = if hard_state != self.last_hard_state {
            self.last_hard_state = hard_state;
            Some(hard_state)
        } else {
            None
        };
        let (truncate_from, entries) = self.log.take_unstable();
        let committed_entries = self
            .log
            .take_committed(self.config.max_apply_bytes_per_ready);
        let snapshot_request = self.take_snapshot_request();
        let snapshot_to_install = match &mut self.installing {
            Some((meta, emitted, _)) if !*emitted => {
                *emitted = true;
                Some(meta.clone())
            }
            _ => None,
        };
        Ready {
            hard_state,
            truncate_from,
            entries,
            messages: std::mem::take(&mut self.messages),
            persisted_messages: std::mem::take(&mut self.persisted_messages),
            committed_entries,
            read_states: std::mem::take(&mut self.read_states),
            snapshot_request,
            snapshot_chunks: std::mem::take(&mut self.snapshot_chunks),
            snapshot_to_install,
        }
    }

    /// Whether `ready` would return anything.
    pub fn has_ready(&self) -> bool {
        let hard_state = HardState {
            term: self.current_term,
            vote: self.voted_for,
            commit: self.log.commit(),
        };
        hard_state != self.last_hard_state
            || self.log.has_unstable()
            || self.log.has_next_committed()
            || !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || !self.read_states.is_empty()
            || !self.snapshot_chunks.is_empty()
            || self
                .installing
                .as_ref()
                .is_some_and(|(_, emitted, _)| !emitted)
            || (self.role == Role::Leader && self.reads.round_requested())
            || self.snapshot_due()
    }

    /// Processes a message from a peer. Bad input is counted in `stats`, never a panic.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id || m.from == self.id {
            self.stats.ignored_messages += 1;
            return;
        }
        let campaigning = matches!(
            m.body,
            MessageBody::PreVote { .. } | MessageBody::Vote { .. }
        );
        if self.role == Role::Leader
            && campaigning
            && m.from != 0
            && !self.membership.contains(m.from)
        {
            // A removed node that does not know it yet: replicate to it for a while (answers
            // from it do not extend that time, so a removed node that is never stopped is
            // dropped in the end).
            self.keep_departed(m.from);
        }
        if m.term > self.current_term {
            match &m.body {
                MessageBody::PreVote { .. } | MessageBody::Vote { .. } if self.in_lease(&m) => {
                    // Thesis §6.2/§4.2.3: a follower that hears from a leader ignores vote
                    // requests, so a removed or partitioned node cannot disrupt the cluster.
                    self.stats.ignored_messages += 1;
                    return;
                }
                // Pre-votes never change terms (thesis §9.6); a granted pre-vote answer
                // carries the term we proposed.
                MessageBody::PreVote { .. } => {}
                MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(m.term, Some(m.from));
                }
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.current_term {
            self.stats.stale_term_messages += 1;
            match m.body {
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. }
                    if self.config.check_quorum || self.config.pre_vote =>
                {
                    // A stale leader (or one partitioned from a node whose term ran ahead) learns
                    // our term and steps down, letting a fresh election settle the terms.
                    self.send(
                        m.from,
                        MessageBody::AppendResponse {
                            success: false,
                            index: 0,
                            reject_hint_index: 0,
                            reject_hint_term: 0,
                        },
                    );
                }
                MessageBody::PreVote { .. } => {
                    self.send(m.from, MessageBody::PreVoteResponse { granted: false });
                }
                _ => {}
            }
            return;
        }
        self.step_current(m);
    }

    fn step_current(&mut self, m: Message) {
        let from = m.from;
        match m.body {
            MessageBody::PreVote {
                last_log_index,
                last_log_term,
            } => self.handle_vote_request(from, m.term, last_log_index, last_log_term, true),
            MessageBody::Vote {
                last_log_index,
                last_log_term,
                ..
            } => self.handle_vote_request(from, m.term, last_log_index, last_log_term, false),
            MessageBody::PreVoteResponse { granted } => {
                if self.role == Role::PreCandidate
                    && Some(m.term) == self.current_term.checked_add(u64::from(granted))
                {
                    self.handle_vote_response(from, granted, true);
                } else {
                    self.stats.ignored_messages += 1;
                }
            }
            MessageBody::VoteResponse { granted } => {
                if self.role == Role::Candidate {
                    self.handle_vote_response(from, granted, false);
                } else {
                    self.stats.ignored_messages += 1;
                }
            }
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => {
                if entries.iter().any(|e| e.term > m.term) {
                    // Raft §5.3: a leader only sends entries of its term or earlier.
                    self.stats.inconsistent_messages += 1;
                    return;
                }
                if !self.accept_leader_message(from) {
                    return;
                }
                self.handle_append(from, prev_log_index, prev_log_term, entries, leader_commit);
            }
            MessageBody::Heartbeat { commit, round } => {
                if !self.accept_leader_message(from) {
                    return;
                }
                if self.installing.is_none() {
                    self.log.commit_to(commit.min(self.log.last_index()));
                }
                self.send(from, MessageBody::HeartbeatResponse { round });
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                len,
                data,
                done,
            } => {
                if !self.accept_leader_message(from) {
                    return;
                }
                self.handle_snapshot_chunk(from, meta, offset, len, data, done);
            }
            MessageBody::AppendResponse {
                success,
                index,
                reject_hint_index,
                reject_hint_term,
            } => {
                if self.role == Role::Leader {
                    self.handle_append_response(
                        from,
                        success,
                        index,
                        reject_hint_index,
                        reject_hint_term,
                    );
                } else {
                    self.stats.ignored_messages += 1;
                }
            }
            MessageBody::HeartbeatResponse { round } => {
                if self.role == Role::Leader {
                    self.handle_heartbeat_response(from, round);
                } else {
                    self.stats.ignored_messages += 1;
                }
            }
            MessageBody::InstallSnapshotResponse {
                snapshot_index,
                next_offset,
                done,
                rejected,
            } => {
                if self.role == Role::Leader {
                    self.handle_snapshot_response(
                        from,
                        snapshot_index,
                        next_offset,
                        done,
                        rejected,
                    );
                } else {
                    self.stats.ignored_messages += 1;
                }
            }
            MessageBody::TimeoutNow => {
                if self.role != Role::Leader && self.is_promotable() && self.leader == Some(from) {
                    // Thesis §3.10: the target starts an election at once, skipping pre-vote.
                    self.campaign(false, true);
                } else {
                    self.stats.ignored_messages += 1;
                }
            }
            MessageBody::ReadIndex { ctx } => {
                if self.role == Role::Leader
                    && self.reads.has_room()
                    && self.progress.contains_key(&from)
                {
                    self.leader_read(ctx, Some(from));
                } else {
                    self.stats.ignored_messages += 1;
                }
            }
            MessageBody::ReadIndexResponse { ctx, index } => {
                if self.role == Role::Follower && self.leader == Some(from) {
                    self.read_states.push(ReadState { ctx, index });
                } else {
                    self.stats.ignored_messages += 1;
                }
            }
        }
    }

    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.messages.push(Message {
            from: self.id,
            to,
            term: self.current_term,
            body,
        });
    }

    /// Queues a message that vouches for state of this `Ready` (a vote, an acknowledgement):
    /// the driver sends it once that state is durable.
    pub(super) fn send_after_persist(&mut self, to: NodeId, body: MessageBody) {
        self.persisted_messages.push(Message {
            from: self.id,
            to,
            term: self.current_term,
            body,
        });
    }

    pub(super) fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.commit()) == Some(self.current_term)
    }
}

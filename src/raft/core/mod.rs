//! `Core`: the Raft state machine of one server (roles, terms, elections, replication).
//!
//! Inputs: `tick`, `step`, `propose`, `propose_conf_change`, `read_index`, `transfer_leader` and
//! the driver's completions (`on_persisted`, `on_applied`, `on_snapshot_built`,
//! `on_snapshot_installed`).
//! Outputs: `ready`. See the module documentation of `crate::raft` for the contract.

use std::collections::BTreeMap;

use super::conf_change::{next_configuration, ConfChange};
use super::config::{Config, ConfigError, Fault, ReadMode};
use super::error::{ConfChangeError, ProposalRefused, ReadIndexRefused, TransferError};
use super::log::{AppendOutcome, RaftLog};
use super::membership::Membership;
use super::membership_log::{entry_membership, MembershipLog};
use super::message::{Entry, EntryKind, HardState, Message, MessageBody, ReadState, SnapshotMeta};
use super::node_id::NodeId;
use super::progress::{Progress, ProgressState};
use super::quorum::{JointConfig, VoteResult};
use super::rand::SplitMix64;
use super::read_index::ReadIndexQueue;
use super::ready::{Ready, SnapshotChunk, SnapshotRequest};
use super::status::{PeerProgress, Role, Stats, Status};

/// Heartbeat responses without progress from a replicating follower with messages in flight
/// before the leader assumes they were lost and falls back to probing.
const STALLED_HEARTBEATS_BEFORE_PROBE: u32 = 2;

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

    // ----- accessors -----

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

    // ----- inputs -----

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.now_tick += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    /// Proposes `data` as a new entry. Returns the index it will have if committed.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<u64, ProposalRefused> {
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
            data,
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

    /// Proposes a membership change (thesis §4.3, see `crate::raft` docs). Returns the index of
    /// the configuration entry appended: the joint configuration if voters change (the leader
    /// appends the final one once it commits), else the new configuration itself.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<u64, ConfChangeError> {
        if self.role != Role::Leader {
            return Err(ConfChangeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if self.transfer.is_some() {
            return Err(ConfChangeError::TransferInProgress);
        }
        // Until an entry of this term commits, an earlier leader's configuration entry may be
        // committed without this leader knowing (thesis errata on membership changes).
        if !self.committed_in_current_term() {
            return Err(ConfChangeError::LeaderNotReady);
        }
        let latest = self.memberships.latest().index;
        if self.membership.is_joint() || latest > self.log.commit() {
            return Err(ConfChangeError::ChangeInProgress { index: latest });
        }
        let target = change.target(&self.membership)?;
        let last_index = self.log.last_index();
        for id in target.voters.difference(&self.membership.voters) {
            let match_index = self.progress.get(id).map_or(0, |pr| pr.match_index);
            if last_index - match_index.min(last_index) > self.config.promote_max_lag_entries {
                return Err(ConfChangeError::NotCaughtUp {
                    id: *id,
                    match_index,
                    leader_last_index: last_index,
                    max_lag_entries: self.config.promote_max_lag_entries,
                });
            }
        }
        let next = next_configuration(&self.membership, &target);
        assert!(
            next.validate().is_ok(),
            "a change yields a valid configuration"
        );
        let index = self.append_configuration(next);
        self.broadcast_append(false);
        Ok(index)
    }

    /// Requests a linearizable read tagged `ctx` (thesis §6.4). The answer arrives as a
    /// `ReadState` in a later `Ready` (possibly never, if leadership is lost: the caller
    /// times out and retries).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ReadIndexRefused> {
        if self.role == Role::Leader {
            if !self.reads.has_room() {
                return Err(ReadIndexRefused::TooManyPending {
                    max_pending_reads: self.config.max_pending_reads,
                });
            }
            self.leader_read(ctx, None);
            return Ok(());
        }
        match self.leader {
            Some(leader) => {
                self.send(leader, MessageBody::ReadIndex { ctx });
                Ok(())
            }
            None => Err(ReadIndexRefused::NoLeader),
        }
    }

    /// Starts transferring leadership to `target` (thesis §3.10): proposals are refused until
    /// it completes or aborts after an election timeout.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader);
        }
        if let Some(transfer) = self.transfer {
            return Err(TransferError::AlreadyInProgress {
                target: transfer.target,
            });
        }
        if target == self.id
            || !self.membership.voters.contains(&target)
            || !self.progress.contains_key(&target)
        {
            return Err(TransferError::InvalidTarget { target });
        }
        self.transfer = Some(Transfer {
            target,
            elapsed_ticks: 0,
        });
        self.maybe_send_timeout_now(target);
        if self.transfer.is_some() {
            self.send_append(target, true);
        }
        Ok(())
    }

    /// The driver made entries up to `index` durable, the entry at `index` having `term`.
    pub fn on_persisted(&mut self, index: u64, term: u64) {
        if self.log.on_persisted(index, term) && self.role == Role::Leader && self.maybe_commit() {
            self.broadcast_append(false);
        }
    }

    /// The driver applied committed entries up to `index`.
    pub fn on_applied(&mut self, index: u64) {
        self.log.applied_to(index);
    }

    /// The driver built the snapshot requested in a `Ready`; `meta.size_bytes` is its size.
    pub fn on_snapshot_built(&mut self, meta: SnapshotMeta) {
        self.snapshot_building = false;
        if meta.index <= self.log.snapshot().index {
            return;
        }
        // Keep entries that replicating followers still need, within the threshold bound, so
        // a briefly lagging follower does not need a whole snapshot.
        let floor = (meta.index + 1).saturating_sub(self.config.snapshot_threshold_entries);
        let needed = self
            .progress
            .values()
            .filter(|pr| pr.state != ProgressState::Snapshot)
            .map(|pr| pr.match_index + 1)
            .min()
            .unwrap_or(meta.index + 1);
        self.memberships.compact(meta.index, meta.term);
        self.log.compact(meta, needed.max(floor));
    }

    /// The driver installed the snapshot given in `Ready::snapshot_to_install`.
    pub fn on_snapshot_installed(&mut self, meta: SnapshotMeta) {
        let Some((installing, _, leader)) = self.installing.take() else {
            panic!("on_snapshot_installed without a snapshot to install");
        };
        assert_eq!(
            installing, meta,
            "on_snapshot_installed for a different snapshot"
        );
        self.log.restore(meta.clone());
        self.memberships.restore(&meta);
        self.refresh_membership();
        self.stats.snapshots_installed += 1;
        self.send(
            leader,
            MessageBody::InstallSnapshotResponse {
                snapshot_index: meta.index,
                next_offset: meta.size_bytes,
                done: true,
                rejected: false,
            },
        );
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

    // ----- roles -----

    fn is_promotable(&self) -> bool {
        self.membership.is_voter(self.id) && self.installing.is_none()
    }

    fn in_lease(&self, m: &Message) -> bool {
        let forced = matches!(
            m.body,
            MessageBody::Vote {
                leadership_transfer: true,
                ..
            }
        );
        self.config.check_quorum
            && !forced
            && self.leader.is_some()
            && self.election_elapsed_ticks < self.config.election_timeout_ticks
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
        let base = u64::from(self.config.election_timeout_ticks);
        // Raft §5.2: randomized in [timeout, 2 * timeout).
        self.randomized_election_timeout_ticks = self.rng.range(base, 2 * base) as u32;
    }

    fn reset_role_state(&mut self) {
        self.reset_election_timer();
        self.votes.clear();
        self.progress.clear();
        self.reads.reset();
        self.transfer = None;
        self.uncommitted_bytes = 0;
        self.departed.clear();
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        assert!(term >= self.current_term, "term must never go back");
        if term > self.current_term {
            self.current_term = term;
            self.voted_for = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.reset_role_state();
    }

    /// Accepts a message that only a leader of the current term sends.
    fn accept_leader_message(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader => {
                // Raft §5.2 election safety: two leaders in one term is impossible.
                self.stats.inconsistent_messages += 1;
                return false;
            }
            Role::Candidate | Role::PreCandidate => {
                self.become_follower(self.current_term, Some(from))
            }
            Role::Follower => {
                if self.leader.is_some() && self.leader != Some(from) {
                    self.stats.inconsistent_messages += 1;
                    return false;
                }
                self.leader = Some(from);
                self.election_elapsed_ticks = 0;
            }
        }
        true
    }

    fn tick_election(&mut self) {
        self.election_elapsed_ticks = self.election_elapsed_ticks.saturating_add(1);
        if self.election_elapsed_ticks < self.randomized_election_timeout_ticks {
            return;
        }
        if self.is_promotable() {
            self.campaign(self.config.pre_vote, false);
        } else if self.awaits_removal_notice() {
            self.announce_departure();
        }
    }

    /// Whether this node's latest configuration leaves it out while no committed one told it
    /// so yet: it holds the change but not its commit, and a new leader does not replicate
    /// to non-members, so nothing would ever tell it.
    fn awaits_removal_notice(&self) -> bool {
        !self.removed
            && self.member_committed
            && !self.membership.is_unknown()
            && !self.membership.contains(self.id)
    }

    /// Once per election timeout, a removed node sends a pre-vote request to the voters of
    /// its latest configuration: harmless (it never campaigns after it, pre-votes change no
    /// term, and a node that hears a leader ignores it), but the leader answers any
    /// non-member's message by replicating to it for a while (`keep_departed`), so it
    /// learns that its removal committed.
    fn announce_departure(&mut self) {
        self.reset_election_timer();
        let Some(term) = self.current_term.checked_add(1) else {
            return;
        };
        let last_log_index = self.log.last_index();
        let last_log_term = self.log.last_term();
        for voter in self.membership.quorum().voters() {
            self.messages.push(Message {
                from: self.id,
                to: voter,
                term,
                body: MessageBody::PreVote {
                    last_log_index,
                    last_log_term,
                },
            });
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks >= self.config.election_timeout_ticks {
            self.election_elapsed_ticks = 0;
            if self.config.check_quorum {
                // Thesis §6.2: a leader that cannot hear a quorum steps down.
                if !self.quorum_recently_active() {
                    self.stats.check_quorum_step_downs += 1;
                    self.become_follower(self.current_term, None);
                    return;
                }
                for pr in self.progress.values_mut() {
                    pr.recent_active = false;
                }
            }
        }
        if let Some(transfer) = &mut self.transfer {
            transfer.elapsed_ticks += 1;
            if transfer.elapsed_ticks >= self.config.election_timeout_ticks {
                self.transfer = None;
                if self.removed_from_committed_voters() {
                    // The hand-off after this leader's removal failed (target unreachable):
                    // step down and let the voters elect a leader by timeout.
                    self.become_follower(self.current_term, None);
                    return;
                }
            }
        }
        self.tick_departed();
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            self.broadcast_heartbeat();
        }
        // Snapshot chunks may be lost: resend one that has seen no answer for two heartbeats.
        let resend_after_ticks = 2 * self.config.heartbeat_interval_ticks;
        let latest = self.log.snapshot();
        let mut resend = Vec::new();
        for (id, pr) in self.progress.iter_mut() {
            let Some(transfer) = &mut pr.snapshot else {
                continue;
            };
            transfer.idle_ticks += 1;
            if transfer.chunk_in_flight && transfer.idle_ticks >= resend_after_ticks {
                if transfer.meta != *latest {
                    // The driver may have deleted the older snapshot (its chunks are then
                    // dropped): start over with the latest one.
                    pr.become_snapshot(latest.clone());
                    self.stats.snapshots_sent += 1;
                } else {
                    transfer.chunk_in_flight = false;
                }
                resend.push(*id);
            }
        }
        for id in resend {
            self.send_snapshot_chunk(id);
        }
    }

    fn quorum_recently_active(&self) -> bool {
        let mut active: std::collections::BTreeSet<NodeId> = self
            .progress
            .iter()
            .filter(|(_, pr)| pr.recent_active)
            .map(|(id, _)| *id)
            .collect();
        active.insert(self.id);
        self.membership.quorum().is_quorum(&active)
    }

    fn campaign(&mut self, pre_vote: bool, leadership_transfer: bool) {
        if self.current_term == u64::MAX {
            // A peer pushed the term to its limit; a new term cannot be started (and must never
            // be reused), so this node stays a follower.
            self.stats.inconsistent_messages += 1;
            return;
        }
        self.stats.campaigns_started += 1;
        let proposed_term = if pre_vote {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.reset_role_state();
            self.current_term + 1
        } else {
            // Raft §5.2: increment the term, vote for self.
            self.role = Role::Candidate;
            self.current_term += 1;
            self.voted_for = Some(self.id);
            self.leader = None;
            self.reset_role_state();
            self.current_term
        };
        self.votes.insert(self.id, true);
        if self.deciding_quorum().vote_result(&self.votes) == VoteResult::Won {
            if pre_vote {
                self.campaign(false, leadership_transfer);
            } else {
                self.become_leader();
            }
            return;
        }
        let last_log_index = self.log.last_index();
        let last_log_term = self.log.last_term();
        for voter in self.membership.quorum().voters() {
            if voter == self.id {
                continue;
            }
            let message = Message {
                from: self.id,
                to: voter,
                term: proposed_term,
                body: if pre_vote {
                    MessageBody::PreVote {
                        last_log_index,
                        last_log_term,
                    }
                } else {
                    MessageBody::Vote {
                        last_log_index,
                        last_log_term,
                        leadership_transfer,
                    }
                },
            };
            if pre_vote {
                self.messages.push(message);
            } else {
                // The candidate counts its own vote, so that vote must be durable before any
                // other vote can elect it.
                self.persisted_messages.push(message);
            }
        }
    }

    fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
        pre_vote: bool,
    ) {
        // Raft §5.2: one vote per term, first come first served (a repeated request from the
        // same candidate is granted again). Pre-votes for a later term do not bind.
        let can_vote = self.voted_for == Some(from)
            || (self.voted_for.is_none() && self.leader.is_none())
            || (pre_vote && term > self.current_term);
        // Raft §5.4.1: only for candidates whose log is at least as up to date.
        let granted = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        if pre_vote {
            let reply_term = if granted { term } else { self.current_term };
            self.messages.push(Message {
                from: self.id,
                to: from,
                term: reply_term,
                body: MessageBody::PreVoteResponse { granted },
            });
            return;
        }
        if granted {
            self.voted_for = Some(from);
            self.election_elapsed_ticks = 0;
        }
        // Persist before you speak: the vote (and any new term) is durable first.
        self.send_after_persist(from, MessageBody::VoteResponse { granted });
    }

    fn handle_vote_response(&mut self, from: NodeId, granted: bool, pre_vote: bool) {
        self.votes.entry(from).or_insert(granted);
        match self.deciding_quorum().vote_result(&self.votes) {
            VoteResult::Won => {
                if pre_vote {
                    self.campaign(false, false);
                } else {
                    self.become_leader();
                }
            }
            VoteResult::Lost => self.become_follower(self.current_term, None),
            VoteResult::Pending => {}
        }
    }

    fn become_leader(&mut self) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate becomes leader"
        );
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.reset_role_state();
        self.stats.leader_terms += 1;
        let next_index = self.log.last_index() + 1;
        // The no-op below goes to every peer, new or not.
        let _ = self.sync_progress();
        // Raft §8: a new leader commits a no-op to learn which entries are committed.
        if self.config.unsafe_fault != Some(Fault::CommitOldTermByCount) {
            self.log.append(vec![Entry {
                term: self.current_term,
                index: next_index,
                kind: EntryKind::Noop,
                data: Vec::new(),
            }]);
        }
        self.broadcast_append(true);
    }

    // ----- replication (leader) -----

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.messages.push(Message {
            from: self.id,
            to,
            term: self.current_term,
            body,
        });
    }

    fn send_after_persist(&mut self, to: NodeId, body: MessageBody) {
        self.persisted_messages.push(Message {
            from: self.id,
            to,
            term: self.current_term,
            body,
        });
    }

    fn broadcast_append(&mut self, allow_empty: bool) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in peers {
            self.send_append(id, allow_empty);
        }
    }

    /// Sends entries from the follower's `next_index` (or a snapshot chunk when they are
    /// compacted). Returns whether a message was sent.
    fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
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

    fn send_snapshot_chunk(&mut self, to: NodeId) -> bool {
        let chunk_bytes = self.config.snapshot_chunk_bytes;
        let Some(transfer) = self
            .progress
            .get_mut(&to)
            .and_then(|pr| pr.snapshot.as_mut())
        else {
            return false;
        };
        if transfer.chunk_in_flight {
            return false;
        }
        let offset = transfer.acked_offset.min(transfer.meta.size_bytes);
        let len = chunk_bytes.min(transfer.meta.size_bytes - offset);
        let done = offset + len >= transfer.meta.size_bytes;
        transfer.chunk_in_flight = true;
        transfer.idle_ticks = 0;
        let meta = transfer.meta.clone();
        self.send(
            to,
            MessageBody::InstallSnapshot {
                meta,
                offset,
                len,
                data: Vec::new(),
                done,
            },
        );
        true
    }

    fn broadcast_heartbeat(&mut self) {
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

    fn handle_append_response(
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

    fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
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

    fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        snapshot_index: u64,
        next_offset: u64,
        done: bool,
        rejected: bool,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else {
            self.stats.ignored_messages += 1;
            return;
        };
        pr.recent_active = true;
        let Some(transfer) = pr.snapshot.as_mut() else {
            self.stats.ignored_messages += 1;
            return;
        };
        if transfer.meta.index != snapshot_index {
            self.stats.ignored_messages += 1;
            return;
        }
        if done {
            pr.maybe_update(snapshot_index);
            pr.become_probe();
            if self.maybe_commit() {
                self.broadcast_append(false);
            }
            self.send_append(from, true);
            return;
        }
        if rejected {
            transfer.acked_offset = next_offset.min(transfer.meta.size_bytes);
        } else {
            transfer.acked_offset = transfer
                .acked_offset
                .max(next_offset.min(transfer.meta.size_bytes));
        }
        transfer.chunk_in_flight = false;
        transfer.idle_ticks = 0;
        self.send_snapshot_chunk(from);
    }

    fn maybe_send_timeout_now(&mut self, from: NodeId) {
        let Some(transfer) = self.transfer else {
            return;
        };
        let caught_up = self
            .progress
            .get(&from)
            .is_some_and(|pr| pr.match_index == self.log.last_index());
        if transfer.target == from && caught_up {
            self.send(from, MessageBody::TimeoutNow);
        }
    }

    /// Advances the commit index from the replicas' matches. Returns whether it advanced.
    fn maybe_commit(&mut self) -> bool {
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

    // ----- replication (follower) -----

    fn handle_append(
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

    fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        len: u64,
        data: Vec<u8>,
        done: bool,
    ) {
        let respond = |node: &mut Self, next_offset: u64, done: bool, rejected: bool| {
            node.send_after_persist(
                from,
                MessageBody::InstallSnapshotResponse {
                    snapshot_index: meta.index,
                    next_offset,
                    done,
                    rejected,
                },
            );
        };
        if self.installing.is_some() {
            self.stats.ignored_messages += 1;
            return;
        }
        let Some(end) = offset.checked_add(len) else {
            self.stats.inconsistent_messages += 1;
            return;
        };
        if data.len() as u64 != len
            || end > meta.size_bytes
            || (done && end != meta.size_bytes)
            || meta.membership.validate().is_err()
        {
            self.stats.inconsistent_messages += 1;
            return;
        }
        if meta.index <= self.log.commit() {
            // Everything the snapshot holds is committed here already.
            respond(self, meta.size_bytes, true, false);
            return;
        }
        let expected = match &self.incoming_snapshot {
            Some(incoming) if incoming.meta == meta => incoming.next_offset,
            _ => 0,
        };
        if offset != expected {
            respond(self, expected, false, true);
            return;
        }
        if offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta: meta.clone(),
                next_offset: 0,
            });
        }
        self.snapshot_chunks.push(SnapshotChunk {
            meta: meta.clone(),
            offset,
            data,
        });
        let next_offset = offset + len;
        if let Some(incoming) = &mut self.incoming_snapshot {
            incoming.next_offset = next_offset;
        }
        if !done {
            respond(self, next_offset, false, false);
            return;
        }
        self.incoming_snapshot = None;
        if self.log.match_term(meta.index, meta.term) {
            // Raft §7: the log already holds the snapshot's last entry; keep what follows.
            self.log.commit_to(meta.index);
            respond(self, meta.size_bytes, true, false);
            return;
        }
        self.installing = Some((meta, false, from));
    }

    // ----- reads -----

    fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.commit()) == Some(self.current_term)
    }

    fn leader_read(&mut self, ctx: u64, requester: Option<NodeId>) {
        // Thesis §6.4 step 1: the commit index is only known once an entry of this term commits.
        if !self.committed_in_current_term() {
            self.reads.wait_for_commit(ctx, requester);
            return;
        }
        let index = self.log.commit();
        let immediate = self.config.unsafe_fault == Some(Fault::ReadWithoutHeartbeat)
            || (self.config.read_mode == ReadMode::Lease
                && self.transfer.is_none()
                && self.reads.lease_valid(
                    &self.membership.quorum(),
                    self.id,
                    self.now_tick,
                    u64::from(self.config.election_timeout_ticks - self.config.lease_margin_ticks),
                ));
        if immediate {
            self.answer_read(ctx, index, requester);
            return;
        }
        self.reads.add(ctx, index, requester);
    }

    fn release_confirmed_reads(&mut self) {
        let quorum = self.membership.quorum();
        for request in self.reads.take_confirmed(&quorum, self.id) {
            self.answer_read(request.ctx, request.index, request.requester);
        }
    }

    fn answer_read(&mut self, ctx: u64, index: u64, requester: Option<NodeId>) {
        match requester {
            None => self.read_states.push(ReadState { ctx, index }),
            Some(to) => self.send(to, MessageBody::ReadIndexResponse { ctx, index }),
        }
    }

    // ----- snapshots -----

    fn snapshot_due(&self) -> bool {
        !self.snapshot_building
            && self.log.applied()
                >= self.log.snapshot().index + self.config.snapshot_threshold_entries
            // A joining node builds no snapshot before it knows its configuration.
            && !self.memberships.at(self.log.applied()).is_unknown()
    }

    fn take_snapshot_request(&mut self) -> Option<SnapshotRequest> {
        if !self.snapshot_due() {
            return None;
        }
        let index = self.log.applied();
        let term = self.log.term(index)?;
        self.snapshot_building = true;
        Some(SnapshotRequest {
            index,
            term,
            membership: self.memberships.at(index).clone(),
        })
    }

    // ----- membership -----

    /// The quorum rule for elections and commitment: both halves while joint (thesis §4.3).
    fn deciding_quorum(&self) -> JointConfig {
        let mut quorum = self.membership.quorum();
        if self.config.unsafe_fault == Some(Fault::IgnoreOutgoingVoters) {
            quorum.outgoing.clear();
        }
        quorum
    }

    /// Re-reads the latest configuration after the configuration log changed.
    fn refresh_membership(&mut self) {
        self.membership = self.memberships.current().clone();
        if self.role == Role::Leader {
            // A new peer gets an empty probe at once: nothing else would start its
            // replication while no new entry is proposed.
            for id in self.sync_progress() {
                self.send_append(id, true);
            }
        }
    }

    /// Leader: appends a configuration entry (in force at once, thesis §4.1). Returns its index.
    fn append_configuration(&mut self, membership: Membership) -> u64 {
        let entry = Entry {
            term: self.current_term,
            index: self.log.last_index() + 1,
            kind: EntryKind::ConfChange,
            data: membership.encode(),
        };
        let index = entry.index;
        let appended = self.memberships.append(&entry);
        assert_eq!(appended, Ok(true), "a leader's configuration entry decodes");
        self.log.append(vec![entry]);
        self.refresh_membership();
        index
    }

    /// Leader: one progress per member; removed members are kept a while as departed nodes
    /// so that they learn of their removal. Returns the members that got a new progress.
    fn sync_progress(&mut self) -> Vec<NodeId> {
        let next_index = self.log.last_index() + 1;
        let mut added = Vec::new();
        for id in self.membership.all_members() {
            if id == self.id {
                continue;
            }
            self.departed.remove(&id);
            let is_learner = self.membership.is_learner_only(id);
            let pr = self.progress.entry(id).or_insert_with(|| {
                added.push(id);
                Progress::new(
                    next_index,
                    self.config.max_inflight_messages,
                    self.config.max_inflight_bytes,
                    is_learner,
                )
            });
            pr.is_learner = is_learner;
        }
        let gone: Vec<NodeId> = self
            .progress
            .keys()
            .copied()
            .filter(|id| !self.membership.contains(*id) && !self.departed.contains_key(id))
            .collect();
        for id in gone {
            self.keep_departed(id);
        }
        added
    }

    /// Leader: keeps (or starts) replicating to a non-member for a while, so that it sees the
    /// committed configuration without it.
    fn keep_departed(&mut self, id: NodeId) {
        let ticks = 2 * self.config.election_timeout_ticks;
        if let Some(left) = self.departed.get_mut(&id) {
            *left = ticks;
            return;
        }
        if self.departed.len() >= MAX_DEPARTED_NODES {
            self.progress.remove(&id);
            return;
        }
        self.departed.insert(id, ticks);
        if !self.progress.contains_key(&id) {
            let pr = Progress::new(
                self.log.last_index() + 1,
                self.config.max_inflight_messages,
                self.config.max_inflight_bytes,
                true,
            );
            self.progress.insert(id, pr);
            self.send_append(id, true);
        }
    }

    /// Leader tick: departed nodes count down once the configuration without them commits.
    fn tick_departed(&mut self) {
        if self.departed.is_empty() || self.memberships.latest().index > self.log.commit() {
            return;
        }
        let mut expired = Vec::new();
        for (id, left) in self.departed.iter_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                expired.push(*id);
            }
        }
        for id in expired {
            self.departed.remove(&id);
            self.progress.remove(&id);
        }
    }

    /// Whether the committed, latest configuration is simple and leaves this node out of the
    /// voters.
    fn removed_from_committed_voters(&self) -> bool {
        !self.membership.is_joint()
            && self.memberships.latest().index <= self.log.commit()
            && !self.membership.is_voter(self.id)
    }

    /// Leader, after the commit index advanced: leaves a committed joint configuration
    /// (thesis §4.3), and hands leadership over once a committed configuration no longer
    /// counts this node as a voter.
    fn advance_configuration(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if self.membership.is_joint() && self.memberships.latest().index <= self.log.commit() {
            let next = self.membership.leave_joint();
            self.append_configuration(next);
            return;
        }
        if self.removed_from_committed_voters() && self.transfer.is_none() {
            // Thesis §4.2.2: a removed leader steps down once C_new commits; hand over to the
            // most up-to-date voter rather than waiting for an election timeout.
            let target = self
                .membership
                .voters
                .iter()
                .filter_map(|id| self.progress.get(id).map(|pr| (pr.match_index, *id)))
                .max_by_key(|(match_index, id)| (*match_index, std::cmp::Reverse(*id)))
                .map(|(_, id)| id);
            let handed_over = target.is_some_and(|t| self.transfer_leader(t).is_ok());
            if !handed_over {
                self.become_follower(self.current_term, None);
            }
        }
    }

    /// Updates `removed` from the committed configuration.
    fn refresh_removed(&mut self) {
        let committed = self.memberships.at(self.log.commit());
        if committed.contains(self.id) {
            self.member_committed = true;
        } else if self.member_committed && !committed.is_unknown() {
            self.removed = true;
        }
    }
}

/// Tests of one core fed by hand. What takes a cluster is tested by the simulator's scripted
/// scenarios (`tests/sim`, in lockstep), so that one driver serves every cluster test; none of
/// them needs the core's private state.
#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: NodeId) -> Config {
        let mut c = Config::new(id);
        c.seed = 42;
        c.snapshot_threshold_entries = 1_000_000;
        c
    }

    fn conf_entry(index: u64, term: u64, membership: &Membership) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::ConfChange,
            data: membership.encode(),
        }
    }

    #[test]
    fn truncated_configuration_entry_reverts_and_restart_recovers_the_latest() {
        let three = Membership::with_voters([1, 2, 3]);
        let mut four = three.clone();
        four.learners.insert(4);
        let state = DurableState {
            snapshot: SnapshotMeta {
                membership: three.clone(),
                ..SnapshotMeta::default()
            },
            ..DurableState::default()
        };
        let mut node = Core::new(config(2), state.clone()).unwrap();
        let append = |from, term, entries: Vec<Entry>| Message {
            from,
            to: 2,
            term,
            body: MessageBody::Append {
                prev_log_index: 0,
                prev_log_term: 0,
                entries,
                leader_commit: 0,
            },
        };
        node.step(append(1, 1, vec![conf_entry(1, 1, &four)]));
        assert_eq!(node.membership(), &four, "in force once appended");
        assert_eq!(node.committed_membership(), &three);
        let ready = node.ready();
        let mut durable = state.clone();
        durable.entries = ready.entries.clone();
        let restarted = Core::new(config(2), durable).unwrap();
        assert_eq!(restarted.membership(), &four, "recovered from the log");
        // A leader of term 2 overwrites index 1: the configuration before it is back.
        node.step(append(
            3,
            2,
            vec![Entry {
                term: 2,
                index: 1,
                kind: EntryKind::Noop,
                data: Vec::new(),
            }],
        ));
        assert_eq!(node.membership(), &three);
        assert_eq!(node.ready().truncate_from, Some(1));
        // A malformed configuration entry is refused, not applied.
        let mut bad = conf_entry(2, 2, &four);
        bad.data.truncate(3);
        let before = node.stats().inconsistent_messages;
        node.step(Message {
            from: 3,
            to: 2,
            term: 2,
            body: MessageBody::Append {
                prev_log_index: 1,
                prev_log_term: 2,
                entries: vec![bad],
                leader_commit: 0,
            },
        });
        assert_eq!(node.stats().inconsistent_messages, before + 1);
        assert_eq!(node.log().last_index(), 1);
    }

    #[test]
    fn a_snapshot_carries_the_configuration_at_its_index_not_a_later_one() {
        let three = Membership::with_voters([1, 2, 3]);
        let mut four = three.clone();
        four.learners.insert(4);
        let normal = |index| Entry {
            term: 1,
            index,
            kind: EntryKind::Normal,
            data: vec![1],
        };
        let durable = DurableState {
            hard_state: HardState {
                term: 1,
                vote: Some(1),
                commit: 3,
            },
            snapshot: SnapshotMeta {
                membership: three.clone(),
                ..SnapshotMeta::default()
            },
            entries: vec![normal(1), normal(2), normal(3), conf_entry(4, 1, &four)],
        };
        let mut cfg = config(2);
        cfg.snapshot_threshold_entries = 3;
        let mut node = Core::new(cfg, durable).unwrap();
        assert_eq!(node.membership(), &four);
        let ready = node.ready();
        assert_eq!(ready.committed_entries.len(), 3);
        node.on_applied(3);
        let request = node.ready().snapshot_request.expect("threshold reached");
        assert_eq!(request.index, 3);
        assert_eq!(request.membership, three, "the configuration in force at 3");
        node.on_snapshot_built(SnapshotMeta {
            index: request.index,
            term: request.term,
            membership: request.membership,
            size_bytes: 10,
        });
        assert_eq!(
            node.membership(),
            &four,
            "the later entry is still in force"
        );
        assert_eq!(node.committed_membership(), &three);
    }
}

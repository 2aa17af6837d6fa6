//! Membership changes (thesis §4) and leadership transfer (thesis §3.10): proposing a change
//! (joint consensus for voters, thesis §4.3), the quorum rule while joint, following the
//! configurations of the log, leaving the joint configuration, handing over after the
//! leader's own removal, and letting removed nodes learn of their removal.

use crate::raft::conf_change::{next_configuration, ConfChange};
use crate::raft::config::Fault;
use crate::raft::error::{ConfChangeError, TransferError};
use crate::raft::membership::Membership;
use crate::raft::message::{Entry, EntryKind, Message, MessageBody};
use crate::raft::node_id::NodeId;
use crate::raft::progress::Progress;
use crate::raft::quorum::JointConfig;
use crate::raft::status::Role;

use super::{Core, Transfer, MAX_DEPARTED_NODES};

impl Core {
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

    pub(super) fn maybe_send_timeout_now(&mut self, from: NodeId) {
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

    /// Leader tick: a transfer gives up after an election timeout. Returns whether this leader
    /// stepped down, which it does when the transfer was its hand-off after its own removal.
    pub(super) fn tick_transfer(&mut self) -> bool {
        let Some(transfer) = &mut self.transfer else {
            return false;
        };
        transfer.elapsed_ticks += 1;
        if transfer.elapsed_ticks < self.config.election_timeout_ticks {
            return false;
        }
        self.transfer = None;
        if self.removed_from_committed_voters() {
            // The hand-off after this leader's removal failed (target unreachable):
            // step down and let the voters elect a leader by timeout.
            self.become_follower(self.current_term, None);
            return true;
        }
        false
    }

    /// The quorum rule for elections and commitment: both halves while joint (thesis §4.3).
    pub(super) fn deciding_quorum(&self) -> JointConfig {
        let mut quorum = self.membership.quorum();
        if self.config.unsafe_fault == Some(Fault::IgnoreOutgoingVoters) {
            quorum.outgoing.clear();
        }
        quorum
    }

    /// Re-reads the latest configuration after the configuration log changed.
    pub(super) fn refresh_membership(&mut self) {
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
            data: membership.encode().into(),
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
    pub(super) fn sync_progress(&mut self) -> Vec<NodeId> {
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
    pub(super) fn keep_departed(&mut self, id: NodeId) {
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
    pub(super) fn tick_departed(&mut self) {
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
    pub(super) fn advance_configuration(&mut self) {
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
    pub(super) fn refresh_removed(&mut self) {
        let committed = self.memberships.at(self.log.commit());
        if committed.contains(self.id) {
            self.member_committed = true;
        } else if self.member_committed && !committed.is_unknown() {
            self.removed = true;
        }
    }

    /// Whether this node's latest configuration leaves it out while no committed one told it
    /// so yet: it holds the change but not its commit, and a new leader does not replicate
    /// to non-members, so nothing would ever tell it.
    pub(super) fn awaits_removal_notice(&self) -> bool {
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
    pub(super) fn announce_departure(&mut self) {
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
}

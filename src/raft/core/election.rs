//! Roles, terms and elections (Raft §5.2): election timers, pre-vote (thesis §9.6), votes
//! for up-to-date logs only (Raft §5.4.1), and check-quorum with leader stickiness (thesis
//! §6.2).

use crate::raft::config::Fault;
use crate::raft::message::{Entry, EntryKind, Message, MessageBody};
use crate::raft::node_id::NodeId;
use crate::raft::quorum::VoteResult;
use crate::raft::status::Role;

use super::Core;

impl Core {
    pub(super) fn is_promotable(&self) -> bool {
        self.membership.is_voter(self.id) && self.installing.is_none()
    }

    pub(super) fn in_lease(&self, m: &Message) -> bool {
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

    pub(super) fn reset_election_timer(&mut self) {
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

    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
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
    pub(super) fn accept_leader_message(&mut self, from: NodeId) -> bool {
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

    pub(super) fn tick_election(&mut self) {
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

    /// Leader, once per election timeout: with check-quorum, steps down unless a quorum was
    /// heard from since the last time (thesis §6.2). Returns whether it stepped down.
    pub(super) fn step_down_without_quorum(&mut self) -> bool {
        if !self.config.check_quorum {
            return false;
        }
        if !self.quorum_recently_active() {
            self.stats.check_quorum_step_downs += 1;
            self.become_follower(self.current_term, None);
            return true;
        }
        for pr in self.progress.values_mut() {
            pr.recent_active = false;
        }
        false
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

    pub(super) fn campaign(&mut self, pre_vote: bool, leadership_transfer: bool) {
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

    pub(super) fn handle_vote_request(
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

    pub(super) fn handle_vote_response(&mut self, from: NodeId, granted: bool, pre_vote: bool) {
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
                data: bytes::Bytes::new(),
            }]);
        }
        self.broadcast_append(true);
    }
}

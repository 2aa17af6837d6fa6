//! ReadIndex: linearizable reads without writing to the log (Raft thesis §6.4).
//!
//! The leader serves a read as follows:
//! 1. it must have committed an entry of its current term (the no-op appended on election);
//!    until then requests wait in `waiting_for_commit` (thesis §6.4 step 1);
//! 2. it records its commit index as the read index;
//! 3. it confirms it is still leader by a heartbeat round sent *after* recording the index and
//!    acknowledged by a quorum (step 3). Rounds are numbered per term: every heartbeat
//!    broadcast carries a new round number, a follower echoes it, and a request recorded
//!    before round `r` was sent is confirmed once a quorum acknowledged a round `>= r`;
//! 4. it emits `ReadState { ctx, index }` (or answers the follower that forwarded it); the
//!    driver serves the read once its state machine has applied `index`.
//!
//! Lease reads (§6.4.1) skip step 3 while a quorum acknowledged a round sent less than
//! `election_timeout - margin` ticks ago: with check-quorum, no follower that acknowledged it
//! votes for another candidate within an election timeout of hearing from the leader.
//!
//! Every request is dropped when the leader steps down, so a deposed leader never answers.
//! Bounds: at most `max_pending` requests in both queues together; the send-tick history
//! keeps the last `ROUND_HISTORY` rounds.

use std::collections::{BTreeMap, VecDeque};

use super::node_id::NodeId;
use super::quorum::JointConfig;

/// Rounds whose send tick is remembered for lease checks.
const ROUND_HISTORY: usize = 256;

/// A read waiting for leadership confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    /// The requester's context.
    pub ctx: u64,
    /// The commit index recorded for it.
    pub index: u64,
    /// The first heartbeat round that can confirm it.
    pub round: u64,
    /// The follower that forwarded it; `None` for a local request.
    pub requester: Option<NodeId>,
}

/// Leader-side read-index bookkeeping for one term.
#[derive(Debug, Clone)]
pub struct ReadIndexQueue {
    round: u64,
    acked: BTreeMap<NodeId, u64>,
    round_sent_tick: VecDeque<(u64, u64)>,
    pending: VecDeque<ReadRequest>,
    waiting_for_commit: VecDeque<(u64, Option<NodeId>)>,
    round_requested: bool,
    max_pending: usize,
}

impl ReadIndexQueue {
    /// An empty queue holding at most `max_pending` requests.
    pub fn new(max_pending: usize) -> Self {
        Self {
            round: 0,
            acked: BTreeMap::new(),
            round_sent_tick: VecDeque::new(),
            pending: VecDeque::new(),
            waiting_for_commit: VecDeque::new(),
            round_requested: false,
            max_pending,
        }
    }

    /// Forgets everything (new term or role change): no request survives a step-down.
    pub fn reset(&mut self) {
        *self = Self::new(self.max_pending);
    }

    /// Whether a new request can be accepted.
    pub fn has_room(&self) -> bool {
        self.pending.len() + self.waiting_for_commit.len() < self.max_pending
    }

    /// Queues a request until the leader commits an entry of its term.
    pub fn wait_for_commit(&mut self, ctx: u64, requester: Option<NodeId>) {
        assert!(self.has_room(), "read index: queue bound exceeded");
        self.waiting_for_commit.push_back((ctx, requester));
    }

    /// Takes the requests that waited for the leader's first commit.
    pub fn take_waiting_for_commit(&mut self) -> Vec<(u64, Option<NodeId>)> {
        self.waiting_for_commit.drain(..).collect()
    }

    /// Records a request at `index`; it needs the next heartbeat round.
    pub fn add(&mut self, ctx: u64, index: u64, requester: Option<NodeId>) {
        assert!(self.has_room(), "read index: queue bound exceeded");
        self.pending.push_back(ReadRequest {
            ctx,
            index,
            round: self.round + 1,
            requester,
        });
        self.round_requested = true;
    }

    /// Whether a request waits for a round that has not been sent yet.
    pub fn round_requested(&self) -> bool {
        self.round_requested
    }

    /// Starts a new heartbeat round sent at `now_tick`; returns its number.
    pub fn next_round(&mut self, now_tick: u64) -> u64 {
        self.round += 1;
        self.round_requested = false;
        self.round_sent_tick.push_back((self.round, now_tick));
        if self.round_sent_tick.len() > ROUND_HISTORY {
            self.round_sent_tick.pop_front();
        }
        self.round
    }

    /// A follower acknowledged `round`.
    pub fn ack(&mut self, from: NodeId, round: u64) {
        let entry = self.acked.entry(from).or_insert(0);
        *entry = (*entry).max(round.min(self.round));
    }

    /// The highest round a quorum acknowledged (the leader acknowledges its own rounds).
    pub fn confirmed_round(&self, quorum: &JointConfig, self_id: NodeId) -> u64 {
        quorum.committed_index(|id| {
            if id == self_id {
                Some(self.round)
            } else {
                self.acked.get(&id).copied()
            }
        })
    }

    /// Whether any request waits for a heartbeat round's confirmation.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the requests confirmed by a quorum.
    pub fn take_confirmed(&mut self, quorum: &JointConfig, self_id: NodeId) -> Vec<ReadRequest> {
        let confirmed = self.confirmed_round(quorum, self_id);
        let mut out = Vec::new();
        while let Some(request) = self.pending.front() {
            if request.round > confirmed {
                break;
            }
            out.extend(self.pending.pop_front());
        }
        out
    }

    /// Whether the leader holds a lease at `now_tick`: a quorum acknowledged a round sent less
    /// than `lease_ticks` ago.
    pub fn lease_valid(
        &self,
        quorum: &JointConfig,
        self_id: NodeId,
        now_tick: u64,
        lease_ticks: u64,
    ) -> bool {
        let confirmed = self.confirmed_round(quorum, self_id);
        if confirmed == self.round && quorum.voters().len() == 1 {
            return true;
        }
        self.round_sent_tick
            .iter()
            .find(|(round, _)| *round == confirmed)
            .is_some_and(|(_, sent)| now_tick < sent + lease_ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> JointConfig {
        JointConfig {
            incoming: [1, 2, 3].into_iter().collect(),
            outgoing: Default::default(),
        }
    }

    #[test]
    fn a_request_needs_a_quorum_ack_of_a_later_round() {
        let mut q = ReadIndexQueue::new(8);
        let r1 = q.next_round(0);
        q.ack(2, r1);
        q.add(7, 40, None);
        assert!(q.round_requested());
        assert!(
            q.take_confirmed(&three(), 1).is_empty(),
            "round 1 was sent before the request"
        );
        let r2 = q.next_round(1);
        assert!(q.take_confirmed(&three(), 1).is_empty());
        q.ack(3, r2);
        let confirmed = q.take_confirmed(&three(), 1);
        assert_eq!(confirmed.len(), 1);
        assert_eq!(confirmed[0].index, 40);
        assert_eq!(confirmed[0].ctx, 7);
    }

    #[test]
    fn acks_of_unsent_rounds_are_clamped_and_reset_forgets() {
        let mut q = ReadIndexQueue::new(2);
        q.add(1, 5, Some(2));
        q.ack(2, 99);
        q.ack(3, 99);
        assert!(q.take_confirmed(&three(), 1).is_empty());
        q.wait_for_commit(2, None);
        assert!(!q.has_room());
        q.reset();
        assert!(q.has_room());
        assert!(q.take_waiting_for_commit().is_empty());
    }

    #[test]
    fn lease_expires() {
        let mut q = ReadIndexQueue::new(2);
        let r = q.next_round(10);
        assert!(!q.lease_valid(&three(), 1, 10, 8));
        q.ack(2, r);
        assert!(q.lease_valid(&three(), 1, 17, 8));
        assert!(!q.lease_valid(&three(), 1, 18, 8));
    }
}

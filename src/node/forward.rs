//! Proposals made on a follower, forwarded to the leader over the peer connection, and the
//! leader's side of the same exchange. The wire format is in `crate::wire::message`.
//!
//! # Follower side
//!
//! A proposal on a node that knows a leader other than itself becomes a `ForwardPropose`
//! with a fresh `request_id`, and waits in [`ForwardState`] for the `ForwardResult`. What the
//! caller is told, and why:
//!
//! | what happened                                         | caller gets                  | applied?      |
//! |-------------------------------------------------------|------------------------------|---------------|
//! | no leader known                                       | `NotLeader{None}`            | certainly not |
//! | no connection to the leader                           | `NotLeader{Some(leader)}`    | certainly not |
//! | the leader's queue full, or over [`FORWARDS_IN_FLIGHT_MAX`] waiting | `Backpressure` | certainly not |
//! | the leader refused (not leader any more, stopped, load) | `NotLeader` / `Backpressure` | certainly not |
//! | the leader applied it                                 | `Ok(result)`                 | yes, once     |
//! | the leader answered timeout / leader lost / shutdown  | `Timeout` / `LeaderLost`     | maybe         |
//! | sent, then the connection to the leader dropped       | `LeaderLost`                 | maybe         |
//! | sent, then this node saw another leader               | `LeaderLost`                 | maybe         |
//! | sent, no answer by the propose deadline               | `Timeout`                    | maybe         |
//!
//! A spell with no known leader (this node a pre-candidate, the leader still leading) answers
//! nothing by itself: the forward waits for the leader's answer, another leader, a lost
//! connection or its deadline.
//!
//! Nothing is retried here: a retry could apply a command twice; exactly-once belongs to the
//! layer above (sessions in the state machine).
//!
//! Request ids start at a random 64-bit value per node incarnation and count up, so a
//! restarted follower never takes an answer meant for its previous incarnation (and an
//! answer for an id no longer waiting is ignored).
//!
//! # Leader side
//!
//! A `ForwardPropose` is proposed as if local, with a completion that queues the outcome in
//! [`ForwardState::results`] and wakes the loop, which sends it back as a `ForwardResult`.
//! Each peer may have at most [`FORWARDS_ACCEPTED_PER_PEER_MAX`] forwarded proposals pending
//! here; more are answered `Backpressure` at once. That also bounds the results queue (peers
//! times that bound). A result that cannot be sent (connection gone, queue full) is dropped:
//! the follower then answers `LeaderLost` or `Timeout`, both "may have been applied".

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::completion::ProposeCompletion;
use super::errors::ProposeError;
use crate::raft::NodeId;
use crate::wire::message::ForwardOutcome;

/// Most proposals this node has forwarded and not yet seen resolved.
pub const FORWARDS_IN_FLIGHT_MAX: usize = 4096;
/// Most forwarded proposals from one peer pending on this (leader) node.
pub const FORWARDS_ACCEPTED_PER_PEER_MAX: usize = 4096;

/// A result the leader owes a follower: (follower, its request id, the outcome).
pub type OwedResult = (NodeId, u64, Result<Vec<u8>, ProposeError>);

struct PendingForward {
    leader: NodeId,
    /// The transport's connection epoch to `leader` when the request was queued.
    epoch: u64,
    done: ProposeCompletion,
    deadline: Instant,
}

/// Both sides' bookkeeping, owned by the loop thread (except `results`, shared with the
/// completions that fill it).
pub struct ForwardState {
    next_request_id: u64,
    pending: HashMap<u64, PendingForward>,
    /// No pending forward has a deadline before this.
    expire_from: Option<Instant>,
    /// The (leader, connection epoch) the pending forwards were last checked against.
    checked: (Option<NodeId>, u64),
    /// Leader side: forwarded proposals accepted (or refused) per peer and not yet answered.
    accepted: HashMap<NodeId, usize>,
    /// Leader side: outcomes to send back, filled on any node thread.
    pub results: Arc<Mutex<Vec<OwedResult>>>,
}

impl ForwardState {
    /// Empty state whose request ids start at a random point.
    pub fn new() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        ForwardState {
            next_request_id: hasher.finish(),
            pending: HashMap::new(),
            expire_from: None,
            checked: (None, 0),
            accepted: HashMap::new(),
            results: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Forwarded proposals waiting for their result.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Whether another forward may start ([`FORWARDS_IN_FLIGHT_MAX`]).
    pub fn has_room(&self) -> bool {
        self.pending.len() < FORWARDS_IN_FLIGHT_MAX
    }

    /// A fresh request id.
    pub fn next_request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        id
    }

    /// Records a forward queued to `leader` under connection `epoch`.
    pub fn sent(
        &mut self,
        request_id: u64,
        leader: NodeId,
        epoch: u64,
        done: ProposeCompletion,
        deadline: Instant,
    ) {
        debug_assert!(self.pending.len() < FORWARDS_IN_FLIGHT_MAX);
        self.expire_from = Some(self.expire_from.map_or(deadline, |at| at.min(deadline)));
        let old = self.pending.insert(
            request_id,
            PendingForward {
                leader,
                epoch,
                done,
                deadline,
            },
        );
        assert!(
            old.is_none(),
            "request id {request_id} reused while pending"
        );
    }

    /// Resolves a forward with the leader's answer from `from`; answers for unknown ids (timed
    /// out, resolved as lost, or from a previous incarnation) and from another node are
    /// ignored.
    pub fn resolve(&mut self, from: NodeId, request_id: u64, outcome: ForwardOutcome) {
        if self
            .pending
            .get(&request_id)
            .is_none_or(|pending| pending.leader != from)
        {
            return;
        }
        let pending = self.pending.remove(&request_id).expect("checked above");
        let result = match outcome {
            ForwardOutcome::Applied(bytes) => Ok(bytes),
            ForwardOutcome::NotLeader { leader_hint } => {
                Err(ProposeError::NotLeader { leader_hint })
            }
            ForwardOutcome::Backpressure => Err(ProposeError::Backpressure),
            ForwardOutcome::Timeout => Err(ProposeError::Timeout),
            // The leader went away with the command pending: it may still commit.
            ForwardOutcome::LeaderLost | ForwardOutcome::ShuttingDown => {
                Err(ProposeError::LeaderLost)
            }
        };
        pending.done.complete(result);
    }

    /// Answers `LeaderLost` to forwards sent to a leader this node no longer follows, or over a
    /// connection lost since. Scans only when the leader or its connection epoch changed.
    ///
    /// No known leader (`None`) answers nothing: a follower that missed heartbeats turns
    /// pre-candidate while the leader it forwarded to still leads (pre-vote keeps the term),
    /// as happens while a value of tens of MiB is on its way, and the leader's answer still
    /// comes. Whoever leads next is compared with, and the deadline bounds the wait.
    pub fn check_leader(&mut self, leader: Option<NodeId>, epoch: u64) {
        if leader.is_none() {
            return;
        }
        let unchanged = (leader, epoch) == self.checked;
        self.checked = (leader, epoch);
        if unchanged || self.pending.is_empty() {
            return;
        }
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| Some(p.leader) != leader || p.epoch != epoch)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(pending) = self.pending.remove(&id) {
                pending.done.complete(Err(ProposeError::LeaderLost));
            }
        }
    }

    /// Answers `Timeout` to forwards past their deadline; scans only once the earliest
    /// deadline may have passed.
    pub fn expire(&mut self, now: Instant) {
        if self.expire_from.is_none_or(|at| at > now) {
            return;
        }
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(pending) = self.pending.remove(&id) {
                pending.done.complete(Err(ProposeError::Timeout));
            }
        }
        self.expire_from = self.pending.values().map(|p| p.deadline).min();
    }

    /// Leader side: counts a forwarded proposal from `peer` in, or returns false when the
    /// peer is at [`FORWARDS_ACCEPTED_PER_PEER_MAX`].
    pub fn accept(&mut self, peer: NodeId) -> bool {
        let count = self.accepted.entry(peer).or_default();
        if *count >= FORWARDS_ACCEPTED_PER_PEER_MAX {
            return false;
        }
        *count += 1;
        true
    }

    /// Leader side: answers a forwarded proposal from `peer` with `error` without proposing
    /// it. Counted like an accepted one until sent, so the results queue stays bounded.
    pub fn refuse(&mut self, peer: NodeId, request_id: u64, error: ProposeError) {
        *self.accepted.entry(peer).or_default() += 1;
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((peer, request_id, Err(error)));
    }

    /// Leader side: takes the results owed, each counted out of its peer's pending count.
    pub fn take_results(&mut self) -> Vec<OwedResult> {
        let results = std::mem::take(&mut *self.results.lock().unwrap_or_else(|p| p.into_inner()));
        for (peer, _, _) in &results {
            if let Some(count) = self.accepted.get_mut(peer) {
                *count = count.saturating_sub(1);
            }
        }
        results
    }
}

/// The wire outcome of a proposal's result on the leader.
pub fn outcome_of(result: Result<Vec<u8>, ProposeError>) -> ForwardOutcome {
    match result {
        Ok(bytes) => ForwardOutcome::Applied(bytes),
        Err(ProposeError::NotLeader { leader_hint }) => ForwardOutcome::NotLeader { leader_hint },
        Err(ProposeError::Backpressure) => ForwardOutcome::Backpressure,
        Err(ProposeError::Timeout) => ForwardOutcome::Timeout,
        Err(ProposeError::LeaderLost) => ForwardOutcome::LeaderLost,
        // A leader that stopped after accepting may have replicated the entry before its disk
        // failed: another leader can still commit it. (Refusals at arrival are `NotLeader`.)
        Err(ProposeError::ShuttingDown | ProposeError::Stopped { .. }) => {
            ForwardOutcome::ShuttingDown
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    type Seen = Arc<Mutex<Vec<Result<Vec<u8>, ProposeError>>>>;

    fn recorder() -> (Seen, impl Fn() -> ProposeCompletion) {
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let make = move || {
            let sink = Arc::clone(&sink);
            ProposeCompletion::proposal(move |r| sink.lock().unwrap().push(r))
        };
        (seen, make)
    }

    #[test]
    fn answers_from_the_wrong_node_or_for_unknown_ids_are_ignored() {
        let (seen, make) = recorder();
        let mut state = ForwardState::new();
        let id = state.next_request_id();
        let far = Instant::now() + Duration::from_secs(60);
        state.sent(id, 2, 0, make(), far);
        state.resolve(3, id, ForwardOutcome::Applied(b"x".to_vec()));
        state.resolve(
            2,
            id.wrapping_add(1),
            ForwardOutcome::Applied(b"y".to_vec()),
        );
        assert!(seen.lock().unwrap().is_empty());
        state.resolve(2, id, ForwardOutcome::Applied(b"z".to_vec()));
        state.resolve(2, id, ForwardOutcome::Applied(b"again".to_vec()));
        assert_eq!(*seen.lock().unwrap(), vec![Ok(b"z".to_vec())]);
    }

    #[test]
    fn a_leader_change_or_lost_connection_is_leader_lost_and_a_deadline_is_timeout() {
        // (An unknown leader in between is neither.)
        let (seen, make) = recorder();
        let mut state = ForwardState::new();
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        state.check_leader(Some(2), 0);
        let (a, b, c) = (
            state.next_request_id(),
            state.next_request_id(),
            state.next_request_id(),
        );
        state.sent(a, 2, 0, make(), far);
        state.check_leader(Some(2), 0);
        assert!(seen.lock().unwrap().is_empty(), "nothing changed");
        state.check_leader(Some(2), 1);
        assert_eq!(*seen.lock().unwrap(), vec![Err(ProposeError::LeaderLost)]);
        state.sent(b, 2, 1, make(), far);
        state.check_leader(None, 0);
        state.check_leader(Some(2), 1);
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "no known leader for a while, then the same one: still pending"
        );
        state.check_leader(Some(3), 0);
        state.sent(c, 3, 0, make(), now);
        state.expire(now + Duration::from_millis(1));
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                Err(ProposeError::LeaderLost),
                Err(ProposeError::LeaderLost),
                Err(ProposeError::Timeout)
            ]
        );
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn the_leader_side_bounds_each_peer_and_counts_results_out() {
        let mut state = ForwardState::new();
        for _ in 0..FORWARDS_ACCEPTED_PER_PEER_MAX {
            assert!(state.accept(2));
        }
        assert!(!state.accept(2), "over the bound");
        assert!(state.accept(3), "the bound is per peer");
        state.results.lock().unwrap().push((2, 9, Ok(Vec::new())));
        assert_eq!(state.take_results().len(), 1);
        assert!(state.accept(2), "an answered request frees its slot");
    }
}

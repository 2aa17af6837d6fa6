//! Proposals made on a follower, forwarded to the leader over the peer connection, and the
//! leader's side of the same exchange. The wire format is in `crate::wire::message`. One
//! [`ForwardState`] serves a single-group `Node` (every forward names its one group) and a
//! `Host` of many groups (each forward names its group; the bounds are host-wide).
//!
//! # Follower side
//!
//! A proposal on a replica that knows a leader other than itself becomes a `ForwardPropose`
//! for its group with a fresh `request_id`, and waits in [`ForwardState`] for the
//! `ForwardResult`. What the caller is told, and why:
//!
//! | what happened                                         | caller gets                  | applied?      |
//! |-------------------------------------------------------|------------------------------|---------------|
//! | no leader known                                       | `NotLeader{None}`            | certainly not |
//! | no connection to the leader                           | `NotLeader{Some(leader)}`    | certainly not |
//! | the leader's queue full, or over [`FORWARDS_IN_FLIGHT_MAX`] waiting | `Backpressure` | certainly not |
//! | the leader refused (not leader any more, stopped, load, group not held) | `NotLeader` / `Backpressure` | certainly not |
//! | the leader applied it                                 | `Ok(result)`                 | yes, once     |
//! | the leader answered timeout / leader lost / shutdown  | `Timeout` / `LeaderLost`     | maybe         |
//! | sent, then the connection to the leader dropped       | `LeaderLost`                 | maybe         |
//! | sent, then this replica saw another leader            | `LeaderLost`                 | maybe         |
//! | sent, then the group was removed from this host       | `LeaderLost`                 | maybe         |
//! | sent, no answer by the propose deadline               | `Timeout`                    | maybe         |
//! | sent, then this node or host shut down                | `ShuttingDown`               | maybe         |
//!
//! A spell with no known leader (this replica a pre-candidate, the leader still leading)
//! answers nothing by itself: the forward waits for the leader's answer, another leader, a
//! lost connection or its deadline. So does a follower that stopped participating (its log
//! failed): the forward never touched its log, and the leader still answers.
//!
//! Nothing is retried here: a retry could apply a command twice; exactly-once belongs to the
//! layer above (sessions in the state machine).
//!
//! Request ids start at a random 64-bit value per incarnation and count up, so a restarted
//! follower never takes an answer meant for its previous incarnation (and an answer for an id
//! no longer waiting is ignored). They are unique over all groups of a host.
//!
//! # Leader side
//!
//! A `ForwardPropose` is proposed as if local, with a completion that queues the outcome in
//! the results queue and wakes the loop, which sends it back as a `ForwardResult`. Each peer
//! may have at most [`FORWARDS_ACCEPTED_PER_PEER_MAX`] forwarded proposals pending here, over
//! all groups; more are answered `Backpressure` at once. That also bounds the results queue
//! (peers times that bound). A result that cannot be sent (connection gone, queue full) is
//! dropped: the follower then answers `LeaderLost` or `Timeout`, both "may have been applied".
//! A forward is never forwarded again: a second hop could loop between stale views.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::completion::ProposeCompletion;
use super::errors::ProposeError;
use super::transport::ForwardRefused;
use crate::raft::{GroupId, NodeId};
use crate::wire::message::{Forward, ForwardBody, ForwardOutcome};

/// Most proposals this node (or host, over all its groups) has forwarded and not yet seen
/// resolved.
pub const FORWARDS_IN_FLIGHT_MAX: usize = 4096;
/// Most forwarded proposals from one peer pending on this (leader) node or host.
pub const FORWARDS_ACCEPTED_PER_PEER_MAX: usize = 4096;

/// A result the leader owes a follower.
struct OwedResult {
    peer: NodeId,
    group: GroupId,
    request_id: u64,
    result: Result<Vec<u8>, ProposeError>,
}

struct PendingForward {
    leader: NodeId,
    /// The transport's connection epoch to `leader` when the request was queued.
    epoch: u64,
    done: ProposeCompletion,
    deadline: Instant,
}

/// One group's forwards waiting for their result.
struct GroupForwards {
    /// The (leader, connection epoch) they were last checked against.
    checked: (NodeId, u64),
    waiting: HashMap<u64, PendingForward>,
}

impl GroupForwards {
    /// Answers `error` to the forwards `lost` picks; returns how many.
    fn answer_where(
        &mut self,
        lost: impl Fn(&PendingForward) -> bool,
        error: ProposeError,
    ) -> usize {
        let ids: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, p)| lost(p))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(pending) = self.waiting.remove(id) {
                pending.done.complete(Err(error.clone()));
            }
        }
        ids.len()
    }
}

/// Where a follower's forward goes.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// This node (or host).
    pub from: NodeId,
    /// The leader it knows.
    pub to: NodeId,
    /// The group proposed to.
    pub group: GroupId,
}

/// Whether a forwarded proposal may be proposed here, as the loop sees its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leading {
    /// This replica leads the group and takes part.
    Yes,
    /// It does not (or it stopped, or the group is not held here): the follower is told
    /// `NotLeader` with this hint.
    No {
        /// The leader this replica knows, if it may say.
        leader_hint: Option<NodeId>,
    },
}

/// Both sides' bookkeeping, owned by the loop thread (except the results queue, shared with
/// the completions that fill it).
pub struct ForwardState {
    next_request_id: u64,
    /// Follower side: forwards waiting, by group; a group waiting for none has no entry.
    pending: HashMap<GroupId, GroupForwards>,
    /// Forwards waiting, over all groups.
    in_flight: usize,
    /// No pending forward has a deadline before this.
    expire_from: Option<Instant>,
    /// Leader side: forwarded proposals accepted (or refused) per peer and not yet answered.
    accepted: HashMap<NodeId, usize>,
    /// Leader side: outcomes to send back, filled on any thread.
    results: Arc<Mutex<Vec<OwedResult>>>,
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
            in_flight: 0,
            expire_from: None,
            accepted: HashMap::new(),
            results: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Forwarded proposals waiting for their result.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Follower side: sends `data` along `route` through `send`, which queues the frame and
    /// returns the connection epoch it was queued under, and keeps `done` until the answer.
    /// Answered at once, certainly not applied, when nothing was queued (see the table).
    pub fn forward(
        &mut self,
        route: Route,
        data: Vec<u8>,
        done: ProposeCompletion,
        deadline: Instant,
        send: impl FnOnce(&Forward) -> Result<u64, ForwardRefused>,
    ) {
        if self.in_flight >= FORWARDS_IN_FLIGHT_MAX {
            done.complete(Err(ProposeError::Backpressure));
            return;
        }
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let forward = Forward {
            from: route.from,
            to: route.to,
            group: route.group,
            body: ForwardBody::Propose {
                request_id,
                data: data.into(),
            },
        };
        let epoch = match send(&forward) {
            Ok(epoch) => epoch,
            Err(ForwardRefused::NoConnection) => {
                done.complete(Err(ProposeError::NotLeader {
                    leader_hint: Some(route.to),
                }));
                return;
            }
            Err(ForwardRefused::QueueFull) => {
                done.complete(Err(ProposeError::Backpressure));
                return;
            }
            Err(ForwardRefused::TooLarge { bytes, limit }) => {
                // Unreachable while the frame limit is sized from the largest proposal
                // accepted (checked before forwarding).
                log::warn!(
                    "node {}: a proposal of {bytes} bytes for group {} too large to forward \
                     to node {} (frame limit {limit}) was refused",
                    route.from,
                    route.group,
                    route.to
                );
                done.complete(Err(ProposeError::Backpressure));
                return;
            }
        };
        self.expire_from = Some(self.expire_from.map_or(deadline, |at| at.min(deadline)));
        let forwards = self
            .pending
            .entry(route.group)
            .or_insert_with(|| GroupForwards {
                checked: (route.to, epoch),
                waiting: HashMap::new(),
            });
        let old = forwards.waiting.insert(
            request_id,
            PendingForward {
                leader: route.to,
                epoch,
                done,
                deadline,
            },
        );
        assert!(
            old.is_none(),
            "request id {request_id} reused while pending"
        );
        self.in_flight += 1;
    }

    /// Takes a forward from a peer. An answer to one of this node's forwards resolves it
    /// (answers from another node than the one asked, or for ids no longer waiting, are
    /// ignored) and gives `None`. A proposal is refused, certainly not applied, unless
    /// `leading` says yes, it is within `max_proposal_bytes` and its peer within
    /// [`FORWARDS_ACCEPTED_PER_PEER_MAX`]; otherwise it is returned with the completion that
    /// queues its outcome for [`ForwardState::send_results`] and wakes the loop through `waker`,
    /// for the caller to propose here, as leader (never to forward again).
    pub fn take(
        &mut self,
        forward: Forward,
        leading: Leading,
        max_proposal_bytes: u64,
        waker: &Arc<mio::Waker>,
    ) -> Option<(Bytes, ProposeCompletion)> {
        let (peer, group) = (forward.from, forward.group);
        let (request_id, data) = match forward.body {
            ForwardBody::Result {
                request_id,
                outcome,
            } => {
                self.resolve(peer, group, request_id, outcome);
                return None;
            }
            ForwardBody::Propose { request_id, data } => (request_id, data),
        };
        if let Leading::No { leader_hint } = leading {
            self.refuse(
                peer,
                group,
                request_id,
                ProposeError::NotLeader { leader_hint },
            );
            return None;
        }
        if data.len() as u64 > max_proposal_bytes {
            // The follower checks this first; only one configured with a larger limit sends
            // one. Refused as a local proposal is.
            log::warn!(
                "node {}: a proposal of {} bytes for group {group} forwarded by node {peer} \
                 is refused: over max_proposal_bytes ({max_proposal_bytes})",
                forward.to,
                data.len(),
            );
            self.refuse(peer, group, request_id, ProposeError::Backpressure);
            return None;
        }
        let count = self.accepted.entry(peer).or_default();
        if *count >= FORWARDS_ACCEPTED_PER_PEER_MAX {
            self.refuse(peer, group, request_id, ProposeError::Backpressure);
            return None;
        }
        *count += 1;
        let results = Arc::clone(&self.results);
        let waker = Arc::clone(waker);
        let done = ProposeCompletion::proposal(move |result| {
            owe(&results, peer, group, request_id, result);
            let _ = waker.wake();
        });
        Some((data, done))
    }

    fn resolve(&mut self, from: NodeId, group: GroupId, request_id: u64, outcome: ForwardOutcome) {
        let Some(forwards) = self.pending.get_mut(&group) else {
            return;
        };
        if forwards
            .waiting
            .get(&request_id)
            .is_none_or(|pending| pending.leader != from)
        {
            return;
        }
        let pending = forwards.waiting.remove(&request_id).expect("checked above");
        if forwards.waiting.is_empty() {
            self.pending.remove(&group);
        }
        self.in_flight -= 1;
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

    /// Answers `LeaderLost` to forwards sent to a leader their group's replica here no longer
    /// follows (`leader_of`), or over a connection lost since (`epoch_of` the leader). Visits
    /// only the groups with forwards waiting, and scans one only when its leader or that
    /// leader's connection epoch changed since it was last checked.
    ///
    /// No known leader (`None`) answers nothing: a follower that missed heartbeats turns
    /// pre-candidate while the leader it forwarded to still leads (pre-vote keeps the term),
    /// as happens while a value of tens of MiB is on its way, and the leader's answer still
    /// comes. Whoever leads next is compared with, and the deadline bounds the wait.
    pub fn check_leaders(
        &mut self,
        mut leader_of: impl FnMut(GroupId) -> Option<NodeId>,
        mut epoch_of: impl FnMut(NodeId) -> u64,
    ) {
        let mut emptied = false;
        for (group, forwards) in &mut self.pending {
            let Some(leader) = leader_of(*group) else {
                continue;
            };
            let now = (leader, epoch_of(leader));
            if now == forwards.checked {
                continue;
            }
            forwards.checked = now;
            self.in_flight -=
                forwards.answer_where(|p| (p.leader, p.epoch) != now, ProposeError::LeaderLost);
            emptied |= forwards.waiting.is_empty();
        }
        if emptied {
            self.pending
                .retain(|_, forwards| !forwards.waiting.is_empty());
        }
    }

    /// Answers `LeaderLost` to every forward of `group` (its replica here is gone; the leader
    /// may still apply them).
    pub fn lose_group(&mut self, group: GroupId) {
        let Some(forwards) = self.pending.remove(&group) else {
            return;
        };
        self.in_flight -= forwards.waiting.len();
        for (_, pending) in forwards.waiting {
            pending.done.complete(Err(ProposeError::LeaderLost));
        }
    }

    /// Answers `Timeout` to forwards past their deadline; scans only once the earliest
    /// deadline may have passed.
    pub fn expire(&mut self, now: Instant) {
        if self.expire_from.is_none_or(|at| at > now) {
            return;
        }
        for forwards in self.pending.values_mut() {
            self.in_flight -= forwards.answer_where(|p| p.deadline <= now, ProposeError::Timeout);
        }
        self.pending
            .retain(|_, forwards| !forwards.waiting.is_empty());
        self.expire_from = self
            .pending
            .values()
            .flat_map(|forwards| forwards.waiting.values())
            .map(|p| p.deadline)
            .min();
    }

    /// Leader side: answers a forwarded proposal with `error` without proposing it. Counted
    /// like an accepted one until sent, so the results queue stays bounded.
    fn refuse(&mut self, peer: NodeId, group: GroupId, request_id: u64, error: ProposeError) {
        *self.accepted.entry(peer).or_default() += 1;
        owe(&self.results, peer, group, request_id, Err(error));
    }

    /// Leader side: hands every result owed, as a `ForwardResult` from `from`, to `send`
    /// (which may drop it: the follower then answers "may have been applied"), each counted
    /// out of its peer's pending count.
    pub fn send_results(&mut self, from: NodeId, mut send: impl FnMut(&Forward)) {
        let results = std::mem::take(&mut *self.results.lock().unwrap_or_else(|p| p.into_inner()));
        for owed in results {
            if let Some(count) = self.accepted.get_mut(&owed.peer) {
                *count = count.saturating_sub(1);
            }
            send(&Forward {
                from,
                to: owed.peer,
                group: owed.group,
                body: ForwardBody::Result {
                    request_id: owed.request_id,
                    outcome: outcome_of(owed.result),
                },
            });
        }
    }
}

/// Queues the result owed to `peer` for its `request_id` of `group`.
fn owe(
    results: &Mutex<Vec<OwedResult>>,
    peer: NodeId,
    group: GroupId,
    request_id: u64,
    result: Result<Vec<u8>, ProposeError>,
) {
    results
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(OwedResult {
            peer,
            group,
            request_id,
            result,
        });
}

/// The wire outcome of a proposal's result on the leader.
fn outcome_of(result: Result<Vec<u8>, ProposeError>) -> ForwardOutcome {
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

    /// A follower's empty state, a recorder of its callers' answers, and a deadline far off.
    fn follower() -> (ForwardState, Seen, impl Fn() -> ProposeCompletion, Instant) {
        let (seen, make) = recorder();
        let far = Instant::now() + Duration::from_secs(60);
        (ForwardState::new(), seen, make, far)
    }

    /// A waker on a poll of its own (kept alive with it).
    fn waker() -> (mio::Poll, Arc<mio::Waker>) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        (poll, waker)
    }

    /// Forwards a proposal of `group` to `leader`, queued under connection `epoch`; returns
    /// its request id.
    fn sent(
        state: &mut ForwardState,
        group: GroupId,
        leader: NodeId,
        epoch: u64,
        done: ProposeCompletion,
        deadline: Instant,
    ) -> u64 {
        let mut id = None;
        let route = Route {
            from: 1,
            to: leader,
            group,
        };
        state.forward(route, b"cmd".to_vec(), done, deadline, |frame| {
            let ForwardBody::Propose { request_id, .. } = frame.body else {
                panic!("a proposal");
            };
            id = Some(request_id);
            Ok(epoch)
        });
        id.expect("sent")
    }

    fn answer(from: NodeId, group: GroupId, request_id: u64, outcome: ForwardOutcome) -> Forward {
        Forward {
            from,
            to: 1,
            group,
            body: ForwardBody::Result {
                request_id,
                outcome,
            },
        }
    }

    fn proposal(from: NodeId, group: GroupId, request_id: u64, len: usize) -> Forward {
        Forward {
            from,
            to: 1,
            group,
            body: ForwardBody::Propose {
                request_id,
                data: vec![0; len].into(),
            },
        }
    }

    #[test]
    fn answers_from_the_wrong_node_group_or_for_unknown_ids_are_ignored() {
        let (mut state, seen, make, far) = follower();
        let (_poll, waker) = waker();
        let id = sent(&mut state, 7, 2, 0, make(), far);
        let applied = |bytes: &[u8]| ForwardOutcome::Applied(bytes.to_vec());
        for ignored in [
            answer(3, 7, id, applied(b"x")),
            answer(2, 8, id, applied(b"x")),
            answer(2, 7, id.wrapping_add(1), applied(b"y")),
        ] {
            assert!(state.take(ignored, Leading::Yes, 1, &waker).is_none());
        }
        assert!(seen.lock().unwrap().is_empty());
        for outcome in [applied(b"z"), applied(b"again")] {
            state.take(answer(2, 7, id, outcome), Leading::Yes, 1, &waker);
        }
        assert_eq!(*seen.lock().unwrap(), vec![Ok(b"z".to_vec())]);
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn nothing_queued_is_certainly_not_applied_and_the_in_flight_bound_holds() {
        let (mut state, seen, make, far) = follower();
        let route = Route {
            from: 1,
            to: 2,
            group: 7,
        };
        state.forward(route, Vec::new(), make(), far, |_| {
            Err(ForwardRefused::NoConnection)
        });
        state.forward(route, Vec::new(), make(), far, |_| {
            Err(ForwardRefused::QueueFull)
        });
        for n in 0..FORWARDS_IN_FLIGHT_MAX {
            sent(&mut state, n as GroupId, 2, 0, make(), far);
        }
        state.forward(route, Vec::new(), make(), far, |_| {
            panic!("over the bound: nothing is sent")
        });
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                Err(ProposeError::NotLeader {
                    leader_hint: Some(2)
                }),
                Err(ProposeError::Backpressure),
                Err(ProposeError::Backpressure),
            ]
        );
        assert_eq!(state.in_flight(), FORWARDS_IN_FLIGHT_MAX);
    }

    #[test]
    fn a_leader_change_or_lost_connection_is_leader_lost_and_a_deadline_is_timeout() {
        // (An unknown leader in between is neither.)
        let (mut state, seen, make, far) = follower();
        let now = Instant::now();
        let leader = |l: NodeId| move |_: GroupId| Some(l);
        sent(&mut state, 0, 2, 0, make(), far);
        state.check_leaders(leader(2), |_| 0);
        assert!(seen.lock().unwrap().is_empty(), "nothing changed");
        state.check_leaders(leader(2), |_| 1);
        assert_eq!(*seen.lock().unwrap(), vec![Err(ProposeError::LeaderLost)]);
        sent(&mut state, 0, 2, 1, make(), far);
        state.check_leaders(|_| None, |_| 0);
        state.check_leaders(leader(2), |_| 1);
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "no known leader for a while, then the same one: still pending"
        );
        state.check_leaders(leader(3), |_| 0);
        sent(&mut state, 0, 3, 0, make(), now);
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
    fn each_group_is_checked_against_its_own_leader_and_a_removed_group_is_leader_lost() {
        let (mut state, seen, make, far) = follower();
        // Group 1 led from 2, group 2 from 3, group 3 from 2.
        let leaders = Arc::new(Mutex::new(HashMap::from([(1, 2), (2, 3), (3, 2)])));
        for (group, leader) in [(1, 2), (2, 3), (3, 2)] {
            sent(&mut state, group, leader, 0, make(), far);
        }
        let leader_of = |leaders: &Arc<Mutex<HashMap<GroupId, NodeId>>>| {
            let leaders = Arc::clone(leaders);
            move |group: GroupId| leaders.lock().unwrap().get(&group).copied()
        };
        state.check_leaders(leader_of(&leaders), |_| 0);
        assert!(seen.lock().unwrap().is_empty(), "each group's own leader");
        leaders.lock().unwrap().insert(2, 2);
        state.check_leaders(leader_of(&leaders), |_| 0);
        assert_eq!(*seen.lock().unwrap(), vec![Err(ProposeError::LeaderLost)]);
        assert_eq!(state.in_flight(), 2, "the other groups' forwards wait on");
        // A lost connection to host 2 loses both groups led from there.
        state.check_leaders(leader_of(&leaders), |peer| u64::from(peer == 2));
        assert_eq!(seen.lock().unwrap().len(), 3);
        sent(&mut state, 4, 2, 1, make(), far);
        sent(&mut state, 5, 2, 1, make(), far);
        state.lose_group(4);
        assert_eq!(seen.lock().unwrap().len(), 4);
        assert_eq!(
            state.in_flight(),
            1,
            "only the removed group's forward is answered"
        );
    }

    #[test]
    fn the_leader_side_refuses_bounds_each_peer_and_sends_results_with_their_group() {
        let (_poll, waker) = waker();
        let mut state = ForwardState::new();
        let not_leader = Leading::No {
            leader_hint: Some(3),
        };
        assert!(state
            .take(proposal(2, 7, 1, 4), not_leader, 16, &waker)
            .is_none());
        assert!(state
            .take(proposal(2, 7, 2, 17), Leading::Yes, 16, &waker)
            .is_none());
        let mut accepted = Vec::new();
        for n in 0..FORWARDS_ACCEPTED_PER_PEER_MAX - 2 {
            let group = n as GroupId % 3;
            let taken = state.take(
                proposal(2, group, 10 + n as u64, 4),
                Leading::Yes,
                16,
                &waker,
            );
            accepted.push(taken.expect("within the bound").1);
        }
        assert!(
            state
                .take(proposal(2, 9, 5, 4), Leading::Yes, 16, &waker)
                .is_none(),
            "over the bound, over all groups"
        );
        let (data, done) = state
            .take(proposal(3, 9, 6, 4), Leading::Yes, 16, &waker)
            .expect("the bound is per peer");
        assert_eq!(data.len(), 4);
        done.complete(Ok(b"r".to_vec()));
        let mut frames = Vec::new();
        state.send_results(1, |frame| frames.push(frame.clone()));
        let outcomes: Vec<_> = frames
            .iter()
            .map(|f| match &f.body {
                ForwardBody::Result {
                    request_id,
                    outcome,
                } => (f.to, f.group, *request_id, outcome.clone()),
                ForwardBody::Propose { .. } => panic!("a result"),
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![
                (
                    2,
                    7,
                    1,
                    ForwardOutcome::NotLeader {
                        leader_hint: Some(3)
                    }
                ),
                (2, 7, 2, ForwardOutcome::Backpressure),
                (2, 9, 5, ForwardOutcome::Backpressure),
                (3, 9, 6, ForwardOutcome::Applied(b"r".to_vec())),
            ]
        );
        assert!(
            state
                .take(proposal(2, 9, 7, 4), Leading::Yes, 16, &waker)
                .is_some(),
            "an answered request frees its slot"
        );
        drop(accepted);
    }
}

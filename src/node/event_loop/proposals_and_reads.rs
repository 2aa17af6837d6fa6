//! Client proposals and reads at the loop: proposed here as leader, forwarded to the leader
//! from a follower (see `super::super::forward`), timed out; and reads waiting for their
//! ReadIndex round.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{EventLoop, PendingRead, State, NODE_GROUP};
use crate::node::apply::{Waiter, APPLY_QUEUE_ITEMS};
use crate::node::completion::{ProposeCompletion, ReadCompletion};
use crate::node::errors::{ProposeError, ReadError};
use crate::node::forward::{Leading, Route};
use crate::raft::Role;
use crate::wire::message::Forward;

impl EventLoop {
    /// A client's proposal: proposed here on the leader, forwarded to the leader otherwise.
    pub(super) fn propose(
        &mut self,
        state: &mut State,
        data: Vec<u8>,
        done: ProposeCompletion,
        deadline: Instant,
    ) {
        // Refused before it can reach the log or a peer: no frame is ever too large for the
        // peers to take (see `transport`).
        if data.len() as u64 > self.settings.max_proposal_bytes {
            log::warn!(
                "node {}: a proposal of {} bytes is refused: over max_proposal_bytes ({})",
                self.core.id(),
                data.len(),
                self.settings.max_proposal_bytes
            );
            done.complete(Err(ProposeError::Backpressure));
            return;
        }
        match self.core.leader() {
            Some(leader)
                if leader != self.core.id()
                    && self.core.role() != Role::Leader
                    && state.participating =>
            {
                let route = Route {
                    from: self.core.id(),
                    to: leader,
                    group: NODE_GROUP,
                };
                let isolated = state.isolated;
                let (transport, registry) = (&mut self.transport, self.poll.registry());
                state
                    .forwards
                    .forward(route, data, done, deadline, |frame| {
                        // An isolated node's frames vanish as in a partition: the caller waits
                        // and learns "may have been applied", as it would on a real network.
                        if !isolated {
                            transport.send_forward(registry, frame)?;
                        }
                        Ok(transport.connection_epoch(leader))
                    });
            }
            _ => self.propose_here(state, data.into(), done, deadline),
        }
    }

    /// A forward from a peer: a proposal to make here as leader, or the answer to one this
    /// node forwarded.
    pub(super) fn take_forward(&mut self, state: &mut State, forward: Forward) {
        let leading = if self.core.role() == Role::Leader && state.participating {
            Leading::Yes
        } else {
            // A stopped node proposes nothing: also certainly not applied.
            Leading::No {
                leader_hint: self.core.leader().filter(|_| state.participating),
            }
        };
        let max_bytes = self.settings.max_proposal_bytes;
        if let Some((data, done)) = state
            .forwards
            .take(forward, leading, max_bytes, &self.waker)
        {
            let deadline = Instant::now() + self.settings.propose_timeout;
            self.propose_here(state, data, done, deadline);
        }
    }

    /// Sends the results this leader owes followers; one that cannot be sent is dropped (the
    /// follower then answers "may have been applied").
    pub(super) fn send_forward_results(&mut self, state: &mut State) {
        let isolated = state.isolated;
        let (transport, registry) = (&mut self.transport, self.poll.registry());
        state.forwards.send_results(self.core.id(), |frame| {
            if !isolated {
                let _ = transport.send_forward(registry, frame);
            }
        });
    }

    /// Proposes on this node's core (answers `NotLeader` unless it leads).
    pub(super) fn propose_here(
        &mut self,
        state: &mut State,
        data: bytes::Bytes,
        done: ProposeCompletion,
        deadline: Instant,
    ) {
        if !state.participating {
            let reason = state.last_error.clone().unwrap_or_default();
            done.complete(Err(ProposeError::Stopped { reason }));
            return;
        }
        if state.waiters.len() >= self.settings.max_pending_proposals {
            done.complete(Err(ProposeError::Backpressure));
            return;
        }
        let data = match &self.settings.proposal_stamp {
            Some(stamp) if self.core.role() == crate::raft::Role::Leader => stamp.stamp(data),
            _ => data,
        };
        let error = match self.core.propose(data) {
            Ok(index) => {
                let waiter = Waiter {
                    term: self.core.term(),
                    done,
                    deadline,
                };
                let overwritten = state.waiters.insert(index, waiter);
                state.proposals_expire_from = Some(
                    state
                        .proposals_expire_from
                        .map_or(deadline, |at| at.min(deadline)),
                );
                if let Some(old) = overwritten {
                    // An earlier proposal at this index was overwritten by another leader.
                    old.done.complete(Err(ProposeError::LeaderLost));
                }
                return;
            }
            Err(crate::raft::ProposalRefused::NotLeader { leader_hint }) => {
                ProposeError::NotLeader { leader_hint }
            }
            Err(crate::raft::ProposalRefused::TransferInProgress) => {
                ProposeError::NotLeader { leader_hint: None }
            }
            Err(crate::raft::ProposalRefused::Backpressure { .. }) => ProposeError::Backpressure,
        };
        done.complete(Err(error));
    }

    /// Answers `Timeout` to the proposals past their deadline whose entry has not committed
    /// (a committed one is answered by the apply thread with its result). Runs only when the
    /// earliest deadline may have passed; the sweep visits every waiter (at most
    /// `max_pending_proposals`).
    pub(super) fn expire_proposals(&mut self, state: &mut State) {
        let now = Instant::now();
        if state.proposals_expire_from.is_none_or(|at| at > now) {
            return;
        }
        let (expired, waiting): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut state.waiters)
                .into_iter()
                .partition(|(_, w)| w.deadline <= now);
        state.waiters = waiting;
        state.proposals_expire_from = state.waiters.values().map(|w| w.deadline).min();
        for (_, waiter) in expired {
            waiter.done.complete(Err(ProposeError::Timeout));
        }
    }

    pub(super) fn read(
        &mut self,
        state: &mut State,
        query: Vec<u8>,
        done: ReadCompletion,
        deadline: Instant,
    ) {
        if !state.participating {
            let reason = state.last_error.clone().unwrap_or_default();
            done.complete(Err(ReadError::Stopped { reason }));
            return;
        }
        if state.reads.len() >= APPLY_QUEUE_ITEMS {
            done.complete(Err(ReadError::Backpressure));
            return;
        }
        let ctx = state.next_read_ctx;
        state.next_read_ctx += 1;
        match self.core.read_index(ctx) {
            Ok(()) => {
                state.reads.insert(
                    ctx,
                    PendingRead {
                        query,
                        done,
                        deadline,
                    },
                );
            }
            Err(crate::raft::ReadIndexRefused::NoLeader) => {
                done.complete(Err(ReadError::NotLeader { leader_hint: None }));
            }
            Err(crate::raft::ReadIndexRefused::TooManyPending { .. }) => {
                done.complete(Err(ReadError::Backpressure));
            }
        }
    }

    /// Answers `Timeout` to the reads still waiting for their read index past their
    /// deadline (at most `APPLY_QUEUE_ITEMS` are pending).
    pub(super) fn expire_reads(&mut self, state: &mut State) {
        let now = Instant::now();
        let expired: Vec<u64> = state
            .reads
            .iter()
            .filter(|(_, read)| read.deadline <= now)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in expired {
            if let Some(read) = state.reads.remove(&ctx) {
                read.done.complete(Err(ReadError::Timeout));
            }
        }
    }
}

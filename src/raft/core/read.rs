//! Linearizable reads by read index (thesis §6.4): the leader confirms its leadership with a
//! heartbeat round (or a lease, thesis §6.4.1) before answering with its commit index;
//! followers forward their reads to the leader.

use crate::raft::config::{Fault, ReadMode};
use crate::raft::error::ReadIndexRefused;
use crate::raft::message::{MessageBody, ReadState};
use crate::raft::node_id::NodeId;
use crate::raft::status::Role;

use super::Core;

impl Core {
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

    pub(super) fn leader_read(&mut self, ctx: u64, requester: Option<NodeId>) {
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

    pub(super) fn release_confirmed_reads(&mut self) {
        // Every heartbeat and its every response come here: with no read waiting, building
        // the quorum (two sets) was a leader's main cost per heartbeat response.
        if !self.reads.has_pending() {
            return;
        }
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
}

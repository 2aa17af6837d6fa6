//! Membership changes and leadership transfers requested by an operator, the peer addresses
//! learned from the log and snapshots, and the transport matched to the configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::{EventLoop, State, DEPARTED_GRACE, PENDING_CHANGES_MAX, STATUS_PERIOD};
use crate::node::addresses::{dialed_peers, encode_address_entry, ADDRESSES_MAX};
use crate::node::durable_state::snapshot_addresses;
use crate::node::membership_change::{
    Awaited, ChangeCompletion, ChangeError, CoreView, PendingChange,
};
use crate::raft::{NodeId, Role};

impl EventLoop {
    /// An operator's membership change: on the leader, the address entry (when the change
    /// adds a node) then the configuration entry; answered by `check_membership`.
    pub(super) fn change_membership(
        &mut self,
        state: &mut State,
        change: crate::raft::ConfChange,
        peer_addr: Option<SocketAddr>,
        done: ChangeCompletion,
        deadline: Instant,
    ) {
        if let Some(error) = self.admin_refusal(state) {
            done.complete(Err(error));
            return;
        }
        let target = match change.target(self.core.membership()) {
            Ok(target) => target,
            Err(e) => return done.complete(Err(e.into())),
        };
        if let crate::raft::ConfChange::AddLearner(id) = change {
            let Some(addr) = peer_addr else {
                return done.complete(Err(ChangeError::Refused {
                    reason: format!("adding node {id} needs its peer address"),
                }));
            };
            if self.addresses.is_full_without(id) {
                return done.complete(Err(ChangeError::Refused {
                    reason: format!("address book full ({ADDRESSES_MAX})"),
                }));
            }
            // Every known member's address with the new one: a node that joins learns them
            // all from one entry.
            let mut book = dialed_peers(self.core.membership(), self.addresses.addrs());
            book.insert(self.core.id(), self.addresses.addrs()[&self.core.id()]);
            book.insert(id, addr);
            if let Err(e) = self.core.propose(encode_address_entry(&book)) {
                let error = match e {
                    crate::raft::ProposalRefused::NotLeader { leader_hint } => {
                        ChangeError::NotLeader { leader_hint }
                    }
                    other => ChangeError::Refused {
                        reason: format!("the address entry was refused: {other:?}"),
                    },
                };
                return done.complete(Err(error));
            }
        }
        match self.core.propose_conf_change(change) {
            Ok(index) => {
                log::info!(
                    "node {}: membership change proposed at index {index}, towards voters \
                     {:?} learners {:?}",
                    self.core.id(),
                    target.voters,
                    target.learners
                );
                state.changes.push(PendingChange {
                    awaited: Awaited::Change { index, target },
                    term: self.core.term(),
                    deadline,
                    done,
                });
            }
            Err(e) => done.complete(Err(e.into())),
        }
    }

    pub(super) fn transfer_leader(
        &mut self,
        state: &mut State,
        target: NodeId,
        done: ChangeCompletion,
        deadline: Instant,
    ) {
        if let Some(error) = self.admin_refusal(state) {
            return done.complete(Err(error));
        }
        match self.core.transfer_leader(target) {
            Ok(()) => state.changes.push(PendingChange {
                awaited: Awaited::Transfer { target },
                term: self.core.term(),
                deadline,
                done,
            }),
            Err(e) => done.complete(Err(e.into())),
        }
    }

    /// Why an admin request is refused before reaching the core, if it is.
    pub(super) fn admin_refusal(&self, state: &State) -> Option<ChangeError> {
        if !state.participating {
            return Some(ChangeError::Stopped {
                reason: state.last_error.clone().unwrap_or_default(),
            });
        }
        if self.core.role() != Role::Leader {
            return Some(ChangeError::NotLeader {
                leader_hint: self.core.leader(),
            });
        }
        (state.changes.len() >= PENDING_CHANGES_MAX).then(|| ChangeError::Refused {
            reason: format!("{PENDING_CHANGES_MAX} admin requests already pending"),
        })
    }

    /// Learns the address book carried in an installed snapshot (see `storage`): the
    /// address entries it covers never reach this node's log.
    pub(super) fn learn_snapshot_addresses(&mut self, meta: &crate::raft::SnapshotMeta) {
        let Some(file_meta) = self
            .snapshots
            .list()
            .into_iter()
            .find(|m| (m.index, m.term) == (meta.index, meta.term))
        else {
            log::warn!(
                "node {}: installed snapshot {} is not in the store; its addresses are not read",
                self.core.id(),
                meta.index
            );
            return;
        };
        match snapshot_addresses(&file_meta) {
            Ok(addrs) => self.learn_addresses(addrs),
            // Not fatal: the addresses in later entries and the contacts still work.
            Err(e) => log::warn!("node {}: {e}", self.core.id()),
        }
    }

    /// Adds newly learned addresses to the book (and the file), and redials moved peers.
    pub(super) fn learn_addresses(&mut self, learned: BTreeMap<NodeId, SocketAddr>) {
        let mut changed = false;
        for (id, addr) in learned {
            if self.addresses.addrs().get(&id) == Some(&addr) {
                continue;
            }
            if self.addresses.is_full_without(id) {
                log::warn!(
                    "node {}: address book full; node {id} ignored",
                    self.core.id()
                );
                continue;
            }
            log::info!("node {}: node {id} listens on {addr}", self.core.id());
            self.addresses.insert(id, addr);
            changed = true;
            if self.core.membership().contains(id) {
                self.transport.set_peer(self.poll.registry(), id, addr);
            }
        }
        if changed {
            if let Err(e) = self.addresses.save() {
                // Not fatal: the addresses are in the log too until it is compacted.
                log::warn!("node {}: {e}", self.core.id());
            }
        }
    }

    /// Matches the transport to the configuration in force, answers operator requests whose
    /// outcome is known, and stops a node that learned it was removed.
    pub(super) fn check_membership(&mut self, state: &mut State) {
        let (latest, committed) = (self.core.membership(), self.core.committed_membership());
        let changed = state
            .dialed_membership
            .as_ref()
            .is_none_or(|(l, c)| l != latest || c != committed);
        if (changed || !state.departing.is_empty()) && !latest.is_unknown() {
            // Members of the latest and of the committed configuration: a follower still
            // answers a leader that its log already removes (its removal may not commit).
            let mut wanted = dialed_peers(latest, self.addresses.addrs());
            wanted.extend(dialed_peers(committed, self.addresses.addrs()));
            state.dialed_membership = Some((latest.clone(), committed.clone()));
            let now = Instant::now();
            for (id, _) in self.transport.peers() {
                if wanted.contains_key(&id) {
                    continue;
                }
                // Kept a grace period: the leader replicates to a removed node for a while so
                // that it learns its removal committed.
                let forget_at = *state.departing.entry(id).or_insert(now + DEPARTED_GRACE);
                if forget_at <= now {
                    log::info!("node {}: node {id} left the configuration", self.core.id());
                    self.transport.remove_peer(self.poll.registry(), id);
                    state.departing.remove(&id);
                }
            }
            for (id, addr) in wanted {
                state.departing.remove(&id);
                self.transport.set_peer(self.poll.registry(), id, addr);
            }
        }
        if !state.changes.is_empty() {
            let view = CoreView {
                is_leader: self.core.role() == Role::Leader,
                term: self.core.term(),
                leader: self.core.leader(),
                commit: self.core.log().commit(),
                committed_membership: self.core.committed_membership(),
            };
            let now = Instant::now();
            let mut answered = Vec::new();
            let mut i = 0;
            while i < state.changes.len() {
                if let Some(outcome) = state.changes[i].outcome(&view, now) {
                    answered.push((state.changes.swap_remove(i), outcome));
                } else {
                    i += 1;
                }
            }
            if !answered.is_empty() {
                // Published first: a caller told "committed" who then reads the status sees
                // the configuration it was told about.
                self.publish_status(state);
                state.next_status_at = Instant::now() + STATUS_PERIOD;
            }
            for (change, outcome) in answered {
                change.done.complete(outcome);
            }
        }
        if !state.removed && self.core.is_removed() {
            log::warn!(
                "node {}: removed from the cluster (configuration {:?}); stops participating",
                self.core.id(),
                self.core.committed_membership()
            );
            state.removed = true;
            state.participating = false;
            state.last_error = Some("removed from the cluster".to_string());
            for change in state.changes.drain(..) {
                change.done.complete(Err(ChangeError::Stopped {
                    reason: "removed from the cluster".to_string(),
                }));
            }
        }
    }
}

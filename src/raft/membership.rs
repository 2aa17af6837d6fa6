//! Cluster membership: voters, learners, and the outgoing voters of a joint configuration.
//!
//! Raft §6 (and thesis §4.3): during a membership change the cluster runs in *joint
//! consensus*, where decisions need a majority of both the old (outgoing) and the new
//! (incoming) voter sets. `outgoing_voters` non-empty means the configuration is joint.
//! Learners (thesis §4.2.1, "non-voting members") receive the log but never vote and never
//! count toward a quorum.
//!
//! A node may be both a learner and an outgoing voter: it is a voter being demoted. It votes
//! in the outgoing half until the joint phase ends, and is a learner in the configuration that
//! ends it ([`Membership::leave_joint`]), so that configuration follows from the joint one
//! alone (etcd keeps a separate `learners_next` set for the same purpose).
//!
//! A node joining a running cluster starts with the empty membership (no voters): it learns
//! the configuration from the leader's log or snapshot.

use std::collections::BTreeSet;

use super::node_id::NodeId;
use super::quorum::JointConfig;

/// The members of a cluster at some log index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    /// Voters of the incoming (or only) configuration.
    pub voters: BTreeSet<NodeId>,
    /// Non-voting members that receive the log.
    pub learners: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration; non-empty only while joint.
    pub outgoing_voters: BTreeSet<NodeId>,
}

impl Membership {
    /// A simple (non-joint) configuration of `voters` and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Whether the configuration is joint (old and new voters both decide).
    pub fn is_joint(&self) -> bool {
        !self.outgoing_voters.is_empty()
    }

    /// Whether `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing_voters.contains(&id)
    }

    /// Whether `id` is a member at all (voter of either half, or learner).
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Whether `id` is only a learner (it votes in neither half).
    pub fn is_learner_only(&self, id: NodeId) -> bool {
        self.learners.contains(&id) && !self.is_voter(id)
    }

    /// The configuration that ends a joint one (thesis §4.3, C_new): the incoming voters and
    /// the learners; outgoing voters that are also learners stay learners.
    pub fn leave_joint(&self) -> Membership {
        Membership {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            outgoing_voters: Default::default(),
        }
    }

    /// Whether this is the empty membership of a node that has not learned its cluster yet.
    pub fn is_unknown(&self) -> bool {
        *self == Membership::default()
    }

    /// Every member: voters of both halves and learners.
    pub fn all_members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.outgoing_voters.iter().copied());
        all.extend(self.learners.iter().copied());
        all
    }

    /// The quorum rule of this membership.
    pub fn quorum(&self) -> JointConfig {
        JointConfig {
            incoming: self.voters.clone(),
            outgoing: self.outgoing_voters.clone(),
        }
    }

    /// Encodes as three sets (voters, learners, outgoing voters), each a little-endian `u32`
    /// count followed by that many `u64` ids: the payload format intended for snapshot
    /// metadata and for configuration-change entries.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for set in [&self.voters, &self.learners, &self.outgoing_voters] {
            out.extend_from_slice(&(set.len() as u32).to_le_bytes());
            for id in set {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        out
    }

    /// Decodes `encode`'s output; `None` on malformed input.
    pub fn decode(mut data: &[u8]) -> Option<Self> {
        let mut sets: [BTreeSet<NodeId>; 3] = Default::default();
        for set in sets.iter_mut() {
            let count = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
            data = &data[4..];
            if data.len() < count.checked_mul(8)? {
                return None;
            }
            for _ in 0..count {
                set.insert(u64::from_le_bytes(data[..8].try_into().ok()?));
                data = &data[8..];
            }
        }
        if !data.is_empty() {
            return None;
        }
        let [voters, learners, outgoing_voters] = sets;
        let membership = Self {
            voters,
            learners,
            outgoing_voters,
        };
        membership.validate().ok()?;
        Some(membership)
    }

    /// Checks the shape: at least one voter, no node both learner and incoming voter, id 0
    /// nowhere. (A learner may be an outgoing voter: a voter being demoted.)
    pub fn validate(&self) -> Result<(), String> {
        if self.voters.is_empty() {
            return Err("membership has no voters".to_string());
        }
        if let Some(id) = self.learners.iter().find(|id| self.voters.contains(id)) {
            return Err(format!("node {id} is both a learner and a voter"));
        }
        if self.all_members().contains(&0) {
            return Err("node id 0 is reserved".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_validation() {
        let mut m = Membership::with_voters([1, 2, 3]);
        m.learners.insert(4);
        assert!(m.is_voter(1));
        assert!(!m.is_voter(4));
        assert!(!m.is_joint());
        assert_eq!(m.all_members().len(), 4);
        assert!(m.validate().is_ok());
        m.learners.insert(2);
        assert!(m.validate().is_err());
        m.learners.remove(&2);
        m.voters.insert(0);
        assert!(m.validate().is_err(), "id 0 is reserved");
        m.voters.remove(&0);
        m.learners.insert(2);
        assert!(Membership::default().validate().is_err());
        m.learners.remove(&2);
        m.outgoing_voters.insert(5);
        assert!(m.is_joint());
        assert!(m.is_voter(5));
        // A voter being demoted: outgoing voter and learner at once, a learner after.
        m.outgoing_voters.insert(4);
        assert!(m.validate().is_ok());
        assert!(!m.is_learner_only(4));
        let after = m.leave_joint();
        assert!(!after.is_joint());
        assert!(after.is_learner_only(4));
        assert!(!after.contains(5));
        assert!(Membership::default().is_unknown());
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut m = Membership::with_voters([1, 2, 3]);
        m.learners.insert(9);
        m.outgoing_voters.insert(4);
        let bytes = m.encode();
        assert_eq!(Membership::decode(&bytes), Some(m));
        assert_eq!(Membership::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Membership::decode(&[]), None);
        assert_eq!(Membership::decode(&[255, 255, 255, 255]), None);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Membership::decode(&trailing), None);
        assert_eq!(
            Membership::decode(&Membership::default().encode()),
            None,
            "no voters"
        );
    }
}

//! Cluster membership: voters, learners, and the outgoing voters of a joint configuration.
//!
//! Raft §6 (and thesis §4.3): during a membership change the cluster runs in *joint
//! consensus*, where decisions need a majority of both the old (outgoing) and the new
//! (incoming) voter sets. `outgoing_voters` non-empty means the configuration is joint.
//! Learners (thesis §4.2.1, "non-voting members") receive the log but never vote and never
//! count toward a quorum.

use std::collections::BTreeSet;

use super::message::NodeId;
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

    /// Checks the shape: at least one voter, and no node both learner and voter.
    pub fn validate(&self) -> Result<(), String> {
        if self.voters.is_empty() {
            return Err("membership has no voters".to_string());
        }
        if let Some(id) = self.learners.iter().find(|id| self.is_voter(**id)) {
            return Err(format!("node {id} is both a learner and a voter"));
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
        assert!(Membership::default().validate().is_err());
        m.learners.remove(&2);
        m.outgoing_voters.insert(5);
        assert!(m.is_joint());
        assert!(m.is_voter(5));
    }
}

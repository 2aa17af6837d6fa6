//! Membership changes requested by an operator, and the configurations they lead to.
//!
//! Thesis §4.3 (joint consensus): a change of voters from C_old to C_new goes through the joint
//! configuration C_old,new, in which elections and commitment need a majority of C_old *and* a
//! majority of C_new. The leader appends C_old,new; once it commits, the leader appends C_new.
//! Each configuration takes effect on a server as soon as it is in its log. Any set of voters
//! can be added, removed or replaced in one change.
//!
//! A change that touches learners only (adding or removing a learner) does not change any
//! quorum, so it is one entry, with no joint phase.
//!
//! Rules checked before a change is appended (see `Core::propose_conf_change`): a new
//! voter must already be a learner whose match index is within
//! `Config::promote_max_lag_entries` of the leader's last index (thesis §4.2.1: a server with
//! an empty log would otherwise stall commitment while it catches up), at least one voter
//! remains, and only one change is in flight at a time.

use std::collections::BTreeSet;

use super::error::ConfChangeError;
use super::membership::Membership;
use super::node_id::NodeId;

/// A membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfChange {
    /// Adds a new node as a learner: it receives the log but does not vote.
    AddLearner(NodeId),
    /// Makes a learner a voter (through a joint configuration).
    Promote(NodeId),
    /// Makes a voter a learner (through a joint configuration).
    Demote(NodeId),
    /// Removes a voter or a learner from the cluster.
    Remove(NodeId),
    /// Replaces voter `remove` by learner `add` in one change.
    Replace {
        /// A learner to become a voter.
        add: NodeId,
        /// A voter to leave the cluster.
        remove: NodeId,
    },
    /// Any target configuration: these voters and these learners, everyone else removed.
    Set {
        /// The voters of the new configuration.
        voters: BTreeSet<NodeId>,
        /// The learners of the new configuration.
        learners: BTreeSet<NodeId>,
    },
}

impl ConfChange {
    /// The simple (non-joint) configuration this change leads to from `current`.
    pub fn target(&self, current: &Membership) -> Result<Membership, ConfChangeError> {
        let mut target = current.clone();
        let require_voter = |id: NodeId| {
            if current.voters.contains(&id) {
                Ok(())
            } else {
                Err(ConfChangeError::NotAVoter { id })
            }
        };
        let require_learner = |id: NodeId| {
            if current.learners.contains(&id) {
                Ok(())
            } else {
                Err(ConfChangeError::NotALearner { id })
            }
        };
        match self {
            ConfChange::AddLearner(id) => {
                if *id == 0 {
                    return Err(ConfChangeError::Invalid {
                        reason: "node id 0 is reserved".to_string(),
                    });
                }
                if current.contains(*id) {
                    return Err(ConfChangeError::AlreadyMember { id: *id });
                }
                target.learners.insert(*id);
            }
            ConfChange::Promote(id) => {
                require_learner(*id)?;
                target.learners.remove(id);
                target.voters.insert(*id);
            }
            ConfChange::Demote(id) => {
                require_voter(*id)?;
                target.voters.remove(id);
                target.learners.insert(*id);
            }
            ConfChange::Remove(id) => {
                if !current.contains(*id) {
                    return Err(ConfChangeError::NotAMember { id: *id });
                }
                target.voters.remove(id);
                target.learners.remove(id);
            }
            ConfChange::Replace { add, remove } => {
                require_learner(*add)?;
                require_voter(*remove)?;
                target.learners.remove(add);
                target.voters.insert(*add);
                target.voters.remove(remove);
            }
            ConfChange::Set { voters, learners } => {
                if let Some(id) = voters.iter().find(|id| !current.contains(**id)) {
                    // A voter must catch up as a learner first (see the module docs).
                    return Err(ConfChangeError::NotALearner { id: *id });
                }
                target.voters = voters.clone();
                target.learners = learners.clone();
            }
        }
        if target.voters.is_empty() {
            return Err(ConfChangeError::Invalid {
                reason: "the change would leave no voters".to_string(),
            });
        }
        if target == *current {
            return Err(ConfChangeError::Invalid {
                reason: "the change leaves the configuration as it is".to_string(),
            });
        }
        target
            .validate()
            .map_err(|reason| ConfChangeError::Invalid { reason })?;
        Ok(target)
    }
}

/// The entry to append to go from `current` (simple) to `target`: the joint configuration if
/// the voters change, else `target` itself.
pub fn next_configuration(current: &Membership, target: &Membership) -> Membership {
    assert!(
        !current.is_joint(),
        "a change starts from a simple configuration"
    );
    if current.voters == target.voters {
        return target.clone();
    }
    Membership {
        voters: target.voters.clone(),
        learners: target.learners.clone(),
        outgoing_voters: current.voters.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_and_learner() -> Membership {
        let mut m = Membership::with_voters([1, 2, 3]);
        m.learners.insert(4);
        m
    }

    #[test]
    fn targets_follow_the_change_and_bad_changes_are_refused() {
        let m = three_and_learner();
        let t = ConfChange::Promote(4).target(&m).unwrap();
        assert_eq!(t.voters.len(), 4);
        assert!(t.learners.is_empty());
        let joint = next_configuration(&m, &t);
        assert!(joint.is_joint());
        assert_eq!(joint.outgoing_voters, m.voters);
        assert_eq!(joint.leave_joint(), t);
        let t = ConfChange::Demote(2).target(&m).unwrap();
        let joint = next_configuration(&m, &t);
        assert!(
            joint.validate().is_ok(),
            "demoted node votes in the outgoing half"
        );
        assert!(joint.is_voter(2));
        assert!(joint.leave_joint().is_learner_only(2));
        let t = ConfChange::Replace { add: 4, remove: 1 }
            .target(&m)
            .unwrap();
        assert_eq!(t.voters, [2, 3, 4].into_iter().collect());
        // Learner-only changes need no joint phase.
        let t = ConfChange::AddLearner(5).target(&m).unwrap();
        assert_eq!(next_configuration(&m, &t), t);
        assert_eq!(
            ConfChange::Promote(2).target(&m),
            Err(ConfChangeError::NotALearner { id: 2 })
        );
        assert_eq!(
            ConfChange::Demote(4).target(&m),
            Err(ConfChangeError::NotAVoter { id: 4 })
        );
        assert_eq!(
            ConfChange::AddLearner(3).target(&m),
            Err(ConfChangeError::AlreadyMember { id: 3 })
        );
        assert_eq!(
            ConfChange::Remove(9).target(&m),
            Err(ConfChangeError::NotAMember { id: 9 })
        );
        let only = Membership::with_voters([1]);
        assert!(matches!(
            ConfChange::Remove(1).target(&only),
            Err(ConfChangeError::Invalid { .. })
        ));
        assert_eq!(
            ConfChange::Set {
                voters: [1, 9].into_iter().collect(),
                learners: BTreeSet::new()
            }
            .target(&m),
            Err(ConfChangeError::NotALearner { id: 9 })
        );
    }
}

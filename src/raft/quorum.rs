//! Quorums: simple majorities and joint configurations.
//!
//! Raft §5.2/§5.3: a candidate wins with votes from a majority, and an entry is committed once
//! stored on a majority. Raft §6 (joint consensus): while a configuration is joint, both the
//! incoming and the outgoing voter sets must agree, so the committed index is the minimum of
//! the two majorities' indices and an election needs both majorities.

use std::collections::{BTreeMap, BTreeSet};

use super::node_id::NodeId;

/// The outcome of counting votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// Not decided yet: missing votes could still go either way.
    Pending,
    /// Lost: a majority can no longer be reached.
    Lost,
    /// Won: a majority granted.
    Won,
}

/// The index acknowledged by a majority of `voters`, with `acked` giving each voter's index
/// (absent voters count as 0). An empty voter set imposes no constraint (`u64::MAX`), so it is
/// neutral in a joint configuration.
pub fn majority_index(voters: &BTreeSet<NodeId>, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
    if voters.is_empty() {
        return u64::MAX;
    }
    let mut indices: Vec<u64> = voters.iter().map(|id| acked(*id).unwrap_or(0)).collect();
    // Sorted descending, the (n/2+1)-th value is held by at least a majority.
    indices.sort_unstable_by(|a, b| b.cmp(a));
    indices[voters.len() / 2]
}

/// The vote outcome of a simple majority. An empty voter set wins (neutral when joint).
pub fn majority_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut granted, mut missing) = (0usize, 0usize);
    for id in voters {
        match votes.get(id) {
            Some(true) => granted += 1,
            Some(false) => {}
            None => missing += 1,
        }
    }
    let quorum = voters.len() / 2 + 1;
    if granted >= quorum {
        VoteResult::Won
    } else if granted + missing >= quorum {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

/// A possibly joint voter configuration: `outgoing` is empty unless a change is in progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JointConfig {
    /// The new (or only) voters.
    pub incoming: BTreeSet<NodeId>,
    /// The old voters while joint; empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
}

impl JointConfig {
    /// Raft §6: the index committed under both majorities (the minimum of the two).
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
        let incoming = majority_index(&self.incoming, &acked);
        let outgoing = majority_index(&self.outgoing, &acked);
        let index = incoming.min(outgoing);
        // Both halves empty would mean no voters at all: nothing is committed by counting.
        if index == u64::MAX {
            0
        } else {
            index
        }
    }

    /// Raft §6: an election in a joint configuration needs both majorities.
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let incoming = majority_vote(&self.incoming, votes);
        let outgoing = majority_vote(&self.outgoing, votes);
        match (incoming, outgoing) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Whether `ids` (a set of nodes heard from) contains a quorum of both halves.
    pub fn is_quorum(&self, ids: &BTreeSet<NodeId>) -> bool {
        let votes: BTreeMap<NodeId, bool> = ids.iter().map(|id| (*id, true)).collect();
        let voters: BTreeMap<NodeId, bool> = self
            .incoming
            .iter()
            .chain(self.outgoing.iter())
            .map(|id| (*id, votes.contains_key(id)))
            .collect();
        self.vote_result(&voters) == VoteResult::Won
    }

    /// Every voter of either half.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.incoming.union(&self.outgoing).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn majority_index_picks_the_median_held_by_a_majority() {
        let acked: BTreeMap<NodeId, u64> = [(1, 5), (2, 9), (3, 7)].into_iter().collect();
        let voters = set(&[1, 2, 3]);
        assert_eq!(majority_index(&voters, |id| acked.get(&id).copied()), 7);
        let five = set(&[1, 2, 3, 4, 5]);
        // 4 and 5 have acked nothing: only 1, 2, 3 hold index 5.
        assert_eq!(majority_index(&five, |id| acked.get(&id).copied()), 5);
        let four = set(&[1, 2, 3, 4]);
        assert_eq!(majority_index(&four, |id| acked.get(&id).copied()), 5);
        assert_eq!(majority_index(&set(&[1]), |_| Some(3)), 3);
    }

    #[test]
    fn joint_commit_is_the_minimum_of_both_majorities() {
        let acked: BTreeMap<NodeId, u64> = [(1, 10), (2, 10), (3, 10), (4, 2), (5, 2)]
            .into_iter()
            .collect();
        let joint = JointConfig {
            incoming: set(&[1, 2, 3]),
            outgoing: set(&[3, 4, 5]),
        };
        assert_eq!(joint.committed_index(|id| acked.get(&id).copied()), 2);
        let simple = JointConfig {
            incoming: set(&[1, 2, 3]),
            outgoing: BTreeSet::new(),
        };
        assert_eq!(simple.committed_index(|id| acked.get(&id).copied()), 10);
        assert_eq!(JointConfig::default().committed_index(|_| Some(4)), 0);
    }

    #[test]
    fn votes_need_both_majorities_when_joint() {
        let joint = JointConfig {
            incoming: set(&[1, 2, 3]),
            outgoing: set(&[4, 5, 6]),
        };
        let mut votes = BTreeMap::new();
        votes.insert(1, true);
        votes.insert(2, true);
        assert_eq!(joint.vote_result(&votes), VoteResult::Pending);
        votes.insert(4, false);
        votes.insert(5, false);
        assert_eq!(joint.vote_result(&votes), VoteResult::Lost);
        votes.insert(5, true);
        votes.insert(6, true);
        assert_eq!(joint.vote_result(&votes), VoteResult::Won);
        assert!(joint.is_quorum(&set(&[1, 3, 5, 6])));
        assert!(!joint.is_quorum(&set(&[1, 3, 5])));
    }

    #[test]
    fn simple_majority_vote_outcomes() {
        let voters = set(&[1, 2, 3, 4, 5]);
        let mut votes = BTreeMap::new();
        votes.insert(1, true);
        votes.insert(2, false);
        votes.insert(3, false);
        assert_eq!(majority_vote(&voters, &votes), VoteResult::Pending);
        votes.insert(4, false);
        assert_eq!(majority_vote(&voters, &votes), VoteResult::Lost);
    }
}

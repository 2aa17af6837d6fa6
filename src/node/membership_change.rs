//! Membership changes and leadership transfers requested by an operator: the answer each
//! gets, and how the loop decides it while the request waits for its configuration to commit.
//!
//! # Answers
//!
//! A change is answered once, by its completion callback: `Ok` when the configuration it leads
//! to is committed (a joint change: when the final, simple configuration is committed), or a
//! [`ChangeError`] saying whether it certainly did not happen ([`ChangeError::NotLeader`],
//! [`ChangeError::Refused`]) or may have ([`ChangeError::LeaderLost`],
//! [`ChangeError::Timeout`]).
//!
//! A node that learns it was removed stops participating, and answers every pending change
//! `Stopped` ("may have been applied").

use std::fmt;
use std::time::Instant;

use crate::raft::{ConfChangeError, Membership, NodeId, TransferError};

/// Why a membership change or a leadership transfer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// This node is not the leader. Not applied.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// The core refused the change (invalid, not caught up, another change in flight). Not
    /// applied.
    Refused {
        /// The core's reason.
        reason: String,
    },
    /// Leadership changed before the change committed. May have been applied.
    LeaderLost,
    /// Not committed in time. May have been applied (or may still be).
    Timeout,
    /// The node is shutting down or stopped participating. May have been applied.
    Stopped {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::NotLeader { leader_hint } => {
                write!(
                    f,
                    "not the leader (leader hint: {leader_hint:?}); not applied"
                )
            }
            ChangeError::Refused { reason } => write!(f, "refused: {reason}; not applied"),
            ChangeError::LeaderLost => {
                write!(f, "leadership changed; the change may have been applied")
            }
            ChangeError::Timeout => write!(f, "timed out; the change may have been applied"),
            ChangeError::Stopped { reason } => {
                write!(
                    f,
                    "node stopped: {reason}; the change may have been applied"
                )
            }
        }
    }
}

impl std::error::Error for ChangeError {}

impl From<ConfChangeError> for ChangeError {
    fn from(e: ConfChangeError) -> Self {
        match e {
            ConfChangeError::NotLeader { leader_hint } => ChangeError::NotLeader { leader_hint },
            ConfChangeError::TransferInProgress => ChangeError::NotLeader { leader_hint: None },
            other => ChangeError::Refused {
                reason: other.to_string(),
            },
        }
    }
}

impl From<TransferError> for ChangeError {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::NotLeader => ChangeError::NotLeader { leader_hint: None },
            other => ChangeError::Refused {
                reason: other.to_string(),
            },
        }
    }
}

/// Where a change's answer goes: the callback runs exactly once, with `Stopped` if the
/// request is dropped unanswered (the node shut down).
pub struct ChangeCompletion(Option<ChangeCallback>);

/// The caller's callback inside a [`ChangeCompletion`].
type ChangeCallback = Box<dyn FnOnce(Result<(), ChangeError>) + Send>;

impl ChangeCompletion {
    /// Wraps `done`.
    pub fn new(done: impl FnOnce(Result<(), ChangeError>) + Send + 'static) -> Self {
        ChangeCompletion(Some(Box::new(done)))
    }

    /// Answers.
    pub fn complete(mut self, result: Result<(), ChangeError>) {
        if let Some(done) = self.0.take() {
            done(result);
        }
    }
}

impl Drop for ChangeCompletion {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err(ChangeError::Stopped {
                reason: "the node shut down".to_string(),
            }));
        }
    }
}

impl fmt::Debug for ChangeCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChangeCompletion")
    }
}

/// What a pending operator request waits for.
pub enum Awaited {
    /// A configuration change: its entry at `index` and the configuration `target` committed.
    Change {
        /// The index of the change's (first) configuration entry.
        index: u64,
        /// The simple configuration the change leads to.
        target: Membership,
    },
    /// A leadership transfer: `target` leads.
    Transfer {
        /// The node to become leader.
        target: NodeId,
    },
}

/// An operator request accepted by the leader, waiting for its outcome.
pub struct PendingChange {
    /// What it waits for.
    pub awaited: Awaited,
    /// The term it was accepted in (a new term means the leadership was lost).
    pub term: u64,
    /// When it answers `Timeout`.
    pub deadline: Instant,
    /// Where the answer goes.
    pub done: ChangeCompletion,
}

/// What the loop sees of the core when checking a pending request.
pub struct CoreView<'a> {
    /// Whether this node leads.
    pub is_leader: bool,
    /// The current term.
    pub term: u64,
    /// The leader known in this term.
    pub leader: Option<NodeId>,
    /// The commit index.
    pub commit: u64,
    /// The latest committed configuration.
    pub committed_membership: &'a Membership,
}

impl PendingChange {
    /// The answer, once there is one.
    pub fn outcome(&self, core: &CoreView<'_>, now: Instant) -> Option<Result<(), ChangeError>> {
        match &self.awaited {
            Awaited::Change { index, target } => {
                // Checked first: a removed leader steps down right after this commits.
                if core.commit >= *index && core.committed_membership == target {
                    return Some(Ok(()));
                }
                if !core.is_leader || core.term != self.term {
                    return Some(Err(ChangeError::LeaderLost));
                }
            }
            Awaited::Transfer { target } => {
                if core.leader == Some(*target) {
                    return Some(Ok(()));
                }
            }
        }
        (now >= self.deadline).then_some(Err(ChangeError::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_succeeds_only_once_its_target_commits() {
        let target = Membership::with_voters([1, 2, 3, 4]);
        let joint = Membership {
            voters: target.voters.clone(),
            learners: Default::default(),
            outgoing_voters: [1, 2, 3].into_iter().collect(),
        };
        let now = Instant::now();
        let pending = PendingChange {
            awaited: Awaited::Change {
                index: 10,
                target: target.clone(),
            },
            term: 2,
            deadline: now + std::time::Duration::from_secs(1),
            done: ChangeCompletion::new(|_| {}),
        };
        let check = |commit: u64, m: &Membership, is_leader: bool, term: u64| {
            pending.outcome(
                &CoreView {
                    is_leader,
                    term,
                    leader: Some(1),
                    commit,
                    committed_membership: m,
                },
                now,
            )
        };
        // The joint configuration committed: not yet.
        assert_eq!(check(10, &joint, true, 2), None);
        assert_eq!(check(11, &target, true, 2), Some(Ok(())));
        assert_eq!(
            check(10, &joint, false, 2),
            Some(Err(ChangeError::LeaderLost))
        );
        assert_eq!(
            check(10, &joint, true, 3),
            Some(Err(ChangeError::LeaderLost))
        );
        assert_eq!(
            pending.outcome(
                &CoreView {
                    is_leader: true,
                    term: 2,
                    leader: Some(1),
                    commit: 10,
                    committed_membership: &joint,
                },
                now + std::time::Duration::from_secs(2),
            ),
            Some(Err(ChangeError::Timeout))
        );
    }
}

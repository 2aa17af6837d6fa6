//! Errors returned to the caller of the core. Each is a refusal, decided at once: nothing was
//! appended or sent, so a retry is always safe. Hence `ProposalRefused` and `ReadIndexRefused`
//! rather than the runtime's `ProposeError` and `ReadError`, which also report what only
//! happens later (a time-out, a leadership lost while a proposal was pending), when a command
//! may have been applied.

use std::fmt;

use super::node_id::NodeId;

/// Why a proposal was refused. A refused proposal was not appended anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposalRefused {
    /// This node is not the leader; retry at `leader_hint` if known.
    NotLeader {
        /// The leader this node last heard from in its current term.
        leader_hint: Option<NodeId>,
    },
    /// Too many uncommitted bytes; retry after some commit.
    Backpressure {
        /// Bytes proposed and not yet committed.
        uncommitted_bytes: u64,
        /// The configured cap.
        max_uncommitted_bytes: u64,
    },
    /// A leadership transfer is in progress; retry at the new leader.
    TransferInProgress,
}

impl fmt::Display for ProposalRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposalRefused::NotLeader { leader_hint: Some(id) } => {
                write!(f, "not the leader; the leader is probably node {id}")
            }
            ProposalRefused::NotLeader { leader_hint: None } => write!(f, "not the leader; no leader known"),
            ProposalRefused::Backpressure {
                uncommitted_bytes,
                max_uncommitted_bytes,
            } => write!(
                f,
                "too much uncommitted data ({uncommitted_bytes} of {max_uncommitted_bytes} bytes); retry later"
            ),
            ProposalRefused::TransferInProgress => write!(f, "leadership transfer in progress; retry at the new leader"),
        }
    }
}

impl std::error::Error for ProposalRefused {}

/// Why a membership change was refused. A refused change was not appended anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfChangeError {
    /// This node is not the leader; retry at `leader_hint` if known.
    NotLeader {
        /// The leader this node last heard from in its current term.
        leader_hint: Option<NodeId>,
    },
    /// A leadership transfer is in progress (or the leader is handing over after its own
    /// removal); retry at the new leader.
    TransferInProgress,
    /// The leader has not committed an entry of its own term yet, so it cannot know whether
    /// an earlier leader's configuration entry is committed (the single-server-change bug of
    /// the thesis errata); retry shortly.
    LeaderNotReady,
    /// Another change is in flight (joint, or its entry at `index` not committed yet).
    ChangeInProgress {
        /// The index of the configuration entry in flight.
        index: u64,
    },
    /// The node to become a voter lags too far behind the leader.
    NotCaughtUp {
        /// The node.
        id: NodeId,
        /// Its match index as the leader knows it.
        match_index: u64,
        /// The leader's last index.
        leader_last_index: u64,
        /// The configured bound (`Config::promote_max_lag_entries`).
        max_lag_entries: u64,
    },
    /// The node is already a member.
    AlreadyMember {
        /// The node.
        id: NodeId,
    },
    /// The node is not a member.
    NotAMember {
        /// The node.
        id: NodeId,
    },
    /// The node must be a voter for this change.
    NotAVoter {
        /// The node.
        id: NodeId,
    },
    /// The node must be a learner for this change (new voters join as learners first).
    NotALearner {
        /// The node.
        id: NodeId,
    },
    /// The change is malformed (no voters left, no change, id 0).
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for ConfChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfChangeError::NotLeader { leader_hint: Some(id) } => {
                write!(f, "not the leader; the leader is probably node {id}")
            }
            ConfChangeError::NotLeader { leader_hint: None } => {
                write!(f, "not the leader; no leader known")
            }
            ConfChangeError::TransferInProgress => {
                write!(f, "leadership transfer in progress; retry at the new leader")
            }
            ConfChangeError::LeaderNotReady => write!(
                f,
                "the new leader has not committed an entry of its term yet; retry shortly"
            ),
            ConfChangeError::ChangeInProgress { index } => write!(
                f,
                "a membership change is in progress (configuration entry {index}); retry once it commits"
            ),
            ConfChangeError::NotCaughtUp {
                id,
                match_index,
                leader_last_index,
                max_lag_entries,
            } => write!(
                f,
                "node {id} is not caught up: it holds the log up to {match_index}, the leader up to \
                 {leader_last_index}, more than {max_lag_entries} entries apart; retry once it catches up"
            ),
            ConfChangeError::AlreadyMember { id } => write!(f, "node {id} is already a member"),
            ConfChangeError::NotAMember { id } => write!(f, "node {id} is not a member"),
            ConfChangeError::NotAVoter { id } => write!(f, "node {id} is not a voter"),
            ConfChangeError::NotALearner { id } => write!(
                f,
                "node {id} is not a learner; add it as a learner and let it catch up first"
            ),
            ConfChangeError::Invalid { reason } => write!(f, "invalid membership change: {reason}"),
        }
    }
}

impl std::error::Error for ConfChangeError {}

/// Why a read-index request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadIndexRefused {
    /// No leader is known to forward the request to.
    NoLeader,
    /// Too many reads are pending; retry later.
    TooManyPending {
        /// The configured bound.
        max_pending_reads: usize,
    },
}

impl fmt::Display for ReadIndexRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadIndexRefused::NoLeader => write!(f, "no leader known; retry after an election"),
            ReadIndexRefused::TooManyPending { max_pending_reads } => {
                write!(f, "{max_pending_reads} reads already pending; retry later")
            }
        }
    }
}

impl std::error::Error for ReadIndexRefused {}

/// Why a leadership transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// Only the leader transfers leadership.
    NotLeader,
    /// The target is this node, unknown, or not a voter.
    InvalidTarget {
        /// The refused target.
        target: NodeId,
    },
    /// Another transfer is in progress.
    AlreadyInProgress {
        /// Its target.
        target: NodeId,
    },
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NotLeader => write!(f, "only the leader can transfer leadership"),
            TransferError::InvalidTarget { target } => {
                write!(
                    f,
                    "node {target} cannot become leader (self, unknown or not a voter)"
                )
            }
            TransferError::AlreadyInProgress { target } => {
                write!(f, "a transfer to node {target} is already in progress")
            }
        }
    }
}

impl std::error::Error for TransferError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let e = ProposalRefused::NotLeader {
            leader_hint: Some(3),
        };
        assert!(e.to_string().contains("node 3"));
        let e = ProposalRefused::Backpressure {
            uncommitted_bytes: 10,
            max_uncommitted_bytes: 8,
        };
        assert!(e.to_string().contains("retry later"));
        assert!(ReadIndexRefused::NoLeader.to_string().contains("retry"));
        assert!(TransferError::InvalidTarget { target: 9 }
            .to_string()
            .contains('9'));
        let e = ConfChangeError::NotCaughtUp {
            id: 4,
            match_index: 10,
            leader_last_index: 5000,
            max_lag_entries: 100,
        };
        assert!(e.to_string().contains("not caught up"), "{e}");
        assert!(!e.to_string().contains("  "), "{e}");
        assert!(ConfChangeError::ChangeInProgress { index: 7 }
            .to_string()
            .contains("in progress"));
    }
}

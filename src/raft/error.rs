//! Errors returned to the caller of the core.

use std::fmt;

use super::message::NodeId;

/// Why a proposal was refused. A refused proposal was not appended anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
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

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader_hint: Some(id) } => {
                write!(f, "not the leader; the leader is probably node {id}")
            }
            ProposeError::NotLeader { leader_hint: None } => write!(f, "not the leader; no leader known"),
            ProposeError::Backpressure {
                uncommitted_bytes,
                max_uncommitted_bytes,
            } => write!(
                f,
                "too much uncommitted data ({uncommitted_bytes} of {max_uncommitted_bytes} bytes); retry later"
            ),
            ProposeError::TransferInProgress => write!(f, "leadership transfer in progress; retry at the new leader"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// Why a read-index request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// No leader is known to forward the request to.
    NoLeader,
    /// Too many reads are pending; retry later.
    TooManyPending {
        /// The configured bound.
        max_pending_reads: usize,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NoLeader => write!(f, "no leader known; retry after an election"),
            ReadError::TooManyPending { max_pending_reads } => {
                write!(f, "{max_pending_reads} reads already pending; retry later")
            }
        }
    }
}

impl std::error::Error for ReadError {}

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
        let e = ProposeError::NotLeader {
            leader_hint: Some(3),
        };
        assert!(e.to_string().contains("node 3"));
        let e = ProposeError::Backpressure {
            uncommitted_bytes: 10,
            max_uncommitted_bytes: 8,
        };
        assert!(e.to_string().contains("retry later"));
        assert!(ReadError::NoLeader.to_string().contains("retry"));
        assert!(TransferError::InvalidTarget { target: 9 }
            .to_string()
            .contains('9'));
    }
}

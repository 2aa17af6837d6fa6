//! What a caller of [`super::Node`] is told when something fails: [`ProposeError`] (with the
//! rule that says which answers mean "certainly not applied"), [`ReadError`] and
//! [`NodeError`].

use std::fmt;

use super::durable_state::StorageError;
use crate::raft::NodeId;

/// Why a proposal failed.
///
/// `NotLeader`, `Backpressure` and `Stopped` mean it was certainly not applied: each is given
/// only before the command reached the log. `Timeout`, `LeaderLost` and `ShuttingDown` mean it
/// may have been applied (or may still be): once a leader appended a command, it may have sent
/// it to followers before its own write was durable (thesis §10.2.1), and they can commit it
/// under the next leader even if this node's disk fails. The rule for each path is in the
/// module docs of `crate::node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node is not the leader. Not applied.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// Too much pending; retry later. Not applied. Also the answer to a proposal larger than
    /// [`NodeConfig::max_proposal_bytes`](super::NodeConfig::max_proposal_bytes), which is
    /// refused before it reaches the log (and logged): retrying that one cannot help, so
    /// callers keep proposals under the limit. (A variant of its own would change this enum,
    /// which embedders match exhaustively; the key-value service refuses such a value itself,
    /// with a non-retryable error, before proposing it.)
    Backpressure,
    /// No result within the timeout. May have been applied.
    Timeout,
    /// Leadership changed while the proposal was pending. May have been applied.
    LeaderLost,
    /// The node is shutting down. May have been applied.
    ShuttingDown,
    /// The node had stopped participating after a fatal error (a failed log write or fsync)
    /// when the proposal arrived, so it never reached the log. Not applied. A proposal that
    /// was pending when the error happened answers `LeaderLost` instead.
    Stopped {
        /// The error.
        reason: String,
    },
}

/// A leader hint as the error texts print it: `leader hint: node 3` or `no leader known`.
struct LeaderHint(Option<NodeId>);

impl fmt::Display for LeaderHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(leader) => write!(f, "leader hint: node {leader}"),
            None => f.write_str("no leader known"),
        }
    }
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader_hint } => {
                write!(
                    f,
                    "not the leader ({}); not applied",
                    LeaderHint(*leader_hint)
                )
            }
            ProposeError::Backpressure => write!(f, "too many pending proposals; not applied"),
            ProposeError::Timeout => write!(f, "timed out; the command may have been applied"),
            ProposeError::LeaderLost => {
                write!(f, "leadership changed; the command may have been applied")
            }
            ProposeError::ShuttingDown => {
                write!(f, "node shutting down; the command may have been applied")
            }
            ProposeError::Stopped { reason } => {
                write!(f, "node stopped participating: {reason}; not applied")
            }
        }
    }
}

impl std::error::Error for ProposeError {}

/// Why a read failed; reads change nothing, so all of these are safe to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// No leader is known.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// Too many reads pending.
    Backpressure,
    /// No answer within the timeout (leadership may have changed).
    Timeout,
    /// The node is shutting down.
    ShuttingDown,
    /// The node stopped participating after a fatal error.
    Stopped {
        /// The error.
        reason: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotLeader { leader_hint } => {
                write!(
                    f,
                    "no leader to confirm the read ({})",
                    LeaderHint(*leader_hint)
                )
            }
            ReadError::Backpressure => write!(f, "too many pending reads"),
            ReadError::Timeout => write!(f, "read timed out"),
            ReadError::ShuttingDown => write!(f, "node shutting down"),
            ReadError::Stopped { reason } => write!(f, "node stopped participating: {reason}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Why a node could not start or stopped badly.
#[derive(Debug)]
pub enum NodeError {
    /// The data directory could not be opened or loaded.
    Storage(StorageError),
    /// The configuration is invalid.
    Config(String),
    /// A socket or the poller failed at start.
    Io(std::io::Error),
    /// Threads reported errors or panicked; each entry names the thread.
    Threads(Vec<String>),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Storage(e) => write!(f, "{e}"),
            NodeError::Config(e) => write!(f, "invalid node configuration: {e}"),
            NodeError::Io(e) => write!(f, "node I/O: {e}"),
            NodeError::Threads(errors) => write!(f, "node threads failed: {}", errors.join("; ")),
        }
    }
}

impl std::error::Error for NodeError {}

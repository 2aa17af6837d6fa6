//! A snapshot of a core's state for operators and tests.

use std::collections::BTreeMap;

use super::node_id::NodeId;
use super::progress::ProgressState;

/// The role of a node (Raft §5.1, plus thesis §9.6 pre-candidates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes, term not yet incremented.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads the current term.
    Leader,
}

/// A follower's replication progress as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerProgress {
    /// Highest index known replicated.
    pub match_index: u64,
    /// Next index to send.
    pub next_index: u64,
    /// Replication state.
    pub state: ProgressState,
}

/// Where a node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: u64,
    /// The leader it knows of in this term.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: u64,
    /// Applied index reported by the driver.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Per-peer progress; empty unless leader.
    pub progress: BTreeMap<NodeId, PeerProgress>,
}

/// Counters of notable events, for operators and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Peer messages rejected as inconsistent (e.g. a conflict below the commit index).
    pub inconsistent_messages: u64,
    /// Messages ignored because of a stale term.
    pub stale_term_messages: u64,
    /// Messages ignored for other reasons (wrong role, stale answer, from a non-member).
    pub ignored_messages: u64,
    /// Elections (pre-vote or vote campaigns) started by this node.
    pub campaigns_started: u64,
    /// Times this node became leader.
    pub leader_terms: u64,
    /// Times a leader stepped down for lack of a quorum (check-quorum).
    pub check_quorum_step_downs: u64,
    /// Snapshots sent to followers (transfers started).
    pub snapshots_sent: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
}

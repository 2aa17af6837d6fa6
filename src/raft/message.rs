//! Plain Rust types exchanged between cores, and between a core and its driver.
//!
//! These are not a wire format (see `crate::wire` for framing): they are the values the core
//! consumes in `step` and produces in `Ready`. Every message carries the sender's
//! `current_term` (Raft §5.1: "if one server's current term is smaller than the other's, then
//! it updates its current term"), except that pre-vote messages carry the *proposed* term
//! (thesis §9.6) and never change anyone's term.

use bytes::Bytes;

use super::membership::Membership;
use super::node_id::NodeId;

/// What an entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Application data for the state machine.
    Normal,
    /// The empty entry a new leader appends (Raft §8 / thesis §6.4: it commits the entries of
    /// earlier terms and lets the leader learn the commit index).
    Noop,
    /// A configuration change (thesis §4.3): `data` is the configuration it puts in force,
    /// encoded by `Membership::encode`. It takes effect on each server as soon as it is
    /// appended; a joint configuration (non-empty outgoing voters) is followed by the leader's
    /// entry for the final one once it commits.
    ConfChange,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created it.
    pub term: u64,
    /// Its position in the log, starting at 1.
    pub index: u64,
    /// What it carries.
    pub kind: EntryKind,
    /// Application bytes (empty for a no-op). Shared, not owned: the core's log, the `Ready`
    /// handed to the log writer, every peer's Append and the apply thread hold the same
    /// bytes, so an entry of tens of MiB is never copied on the event loop thread.
    pub data: Bytes,
}

impl Entry {
    /// The bytes this entry counts for in message and backpressure limits.
    pub fn size_bytes(&self) -> u64 {
        // A fixed overhead for term, index and kind keeps empty entries from being free.
        self.data.len() as u64 + 24
    }
}

/// The state that must be durable before votes or acknowledgements that depend on it leave
/// the node (Raft Figure 2, "persistent state on all servers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    /// Latest term this node has seen.
    pub term: u64,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// Highest index known committed (persisted to replay committed entries after restart).
    pub commit: u64,
}

/// Metadata of a snapshot: what prefix of the log it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    /// The last index the snapshot covers.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// The membership in force at `index`.
    pub membership: Membership,
    /// The size of the snapshot data in bytes.
    pub size_bytes: u64,
}

/// A message between two cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// The sender's current term (the proposed term for pre-vote requests).
    pub term: u64,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    /// Thesis §9.6: "would you vote for me?", sent before incrementing the term.
    PreVote {
        /// Index of the candidate's last entry.
        last_log_index: u64,
        /// Term of the candidate's last entry.
        last_log_term: u64,
    },
    /// Answer to `PreVote`.
    PreVoteResponse {
        /// Whether the pre-vote is granted.
        granted: bool,
    },
    /// Raft §5.2 RequestVote.
    Vote {
        /// Index of the candidate's last entry.
        last_log_index: u64,
        /// Term of the candidate's last entry.
        last_log_term: u64,
        /// Set when the election follows a `TimeoutNow`: voters skip leader stickiness.
        leadership_transfer: bool,
    },
    /// Answer to `Vote`.
    VoteResponse {
        /// Whether the vote is granted.
        granted: bool,
    },
    /// Raft §5.3 AppendEntries.
    Append {
        /// Index of the entry just before `entries`.
        prev_log_index: u64,
        /// Term of that entry.
        prev_log_term: u64,
        /// Entries to store, contiguous from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: u64,
    },
    /// Answer to `Append`.
    AppendResponse {
        /// Whether the follower's log matched at `prev_log_index`.
        success: bool,
        /// On success: the follower's last index known to match the leader's log.
        /// On rejection: the rejected `prev_log_index`, so stale rejections can be told apart.
        index: u64,
        /// On rejection: the largest index `<= min(prev_log_index, last index)` whose term is
        /// `<= prev_log_term` (etcd's `findConflictByTerm`), a hint for fast backtracking.
        reject_hint_index: u64,
        /// On rejection: the term of the entry at `reject_hint_index`.
        reject_hint_term: u64,
    },
    /// Leader heartbeat; also confirms leadership for read-index rounds (thesis §6.4).
    Heartbeat {
        /// `min(leader commit, follower match)`: never beyond what the follower is known to
        /// hold, so a follower with a divergent tail does not commit it.
        commit: u64,
        /// The leader's heartbeat round, echoed back for read-index confirmation.
        round: u64,
    },
    /// Answer to `Heartbeat`.
    HeartbeatResponse {
        /// The echoed heartbeat round.
        round: u64,
    },
    /// Raft §7 InstallSnapshot, one chunk. The core never holds snapshot bytes: a leader's
    /// core emits chunks with empty `data` and the driver fills `data` with bytes
    /// `[offset, offset + len)` of the snapshot file named by `meta` before sending.
    InstallSnapshot {
        /// The snapshot being sent.
        meta: SnapshotMeta,
        /// Byte offset of this chunk.
        offset: u64,
        /// Length of this chunk in bytes.
        len: u64,
        /// The bytes (filled in by the driver).
        data: Vec<u8>,
        /// Whether this is the last chunk.
        done: bool,
    },
    /// Answer to `InstallSnapshot`.
    InstallSnapshotResponse {
        /// Index of the snapshot the answer is about.
        snapshot_index: u64,
        /// The offset the follower expects next (bytes durably received).
        next_offset: u64,
        /// Whether the snapshot is installed; the follower then matches up to `snapshot_index`.
        done: bool,
        /// Whether the chunk was refused (wrong offset); `next_offset` says where to resume.
        rejected: bool,
    },
    /// Thesis §3.10: start an election now (leadership transfer).
    TimeoutNow,
    /// A follower forwards a read-index request to the leader (thesis §6.4).
    ReadIndex {
        /// The requester's context, echoed back.
        ctx: u64,
    },
    /// The leader's answer to a forwarded `ReadIndex`.
    ReadIndexResponse {
        /// The requester's context.
        ctx: u64,
        /// The index the read must wait to be applied.
        index: u64,
    },
}

impl MessageBody {
    /// A short name for counting and logging.
    pub fn kind_name(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResponse { .. } => "VoteResponse",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResponse { .. } => "AppendResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }
}

/// A confirmed read: once the state machine has applied `index`, a read tagged `ctx` may be
/// served linearizably (thesis §6.4 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    /// The context given to `read_index`.
    pub ctx: u64,
    /// The commit index recorded when the read was requested.
    pub index: u64,
}

//! [`HostStatus`] and [`GroupStatus`]: where a host and one of its groups stand.

use std::net::SocketAddr;

use super::log_writer::HostWriterStats;
use crate::node::TransportStats;
use crate::raft::{GroupId, Membership, NodeId, Role};

/// Where a host stands, published by its loop every few milliseconds.
#[derive(Debug, Clone, Default)]
pub struct HostStatus {
    /// The host.
    pub id: NodeId,
    /// Groups with a replica on this host.
    pub groups: usize,
    /// Groups this host leads.
    pub leaders: usize,
    /// Groups quiesced on this host (idle: no ticks, no heartbeats).
    pub quiesced: usize,
    /// The shared log writer's counters: fsyncs, entries, groups per round.
    pub writer: HostWriterStats,
    /// Transport counters.
    pub transport: TransportStats,
    /// Peer hosts with an established outbound connection.
    pub connected_peers: Vec<NodeId>,
    /// False after a fatal error (a failed log write or fsync): no group on the host votes,
    /// acknowledges or leads any more.
    pub participating: bool,
    /// The fatal error, if any.
    pub last_error: Option<String>,
    /// The bound peer address.
    pub listen_addr: Option<SocketAddr>,
    /// Peer messages for groups this host does not hold (not created yet, or removed).
    pub messages_unrouted: u64,
    /// Proposals waiting for their entry to commit, over all groups.
    pub pending_proposals: usize,
    /// Proposals this host forwarded to their group's leader and still waits on, over all
    /// groups (at most 4,096; more are answered `Backpressure`).
    pub forwards_in_flight: usize,
    /// True while the shared log writer has made no progress past
    /// [`HostConfig::disk_stall_timeout`](super::HostConfig::disk_stall_timeout): the host
    /// sends nothing, so its groups' leaders are replaced elsewhere.
    pub disk_stalled: bool,
    /// Loop passes that ran later than a tick interval behind, whose missed ticks were
    /// dropped rather than caught up: a sign the host is overloaded (its election clocks
    /// then run slow).
    pub ticks_dropped: u64,
    /// InstallSnapshot chunk bytes this host sent, over all groups and peers, since it
    /// started (paced by [`HostConfig::snapshot_bytes_per_sec`](super::HostConfig)).
    pub snapshot_bytes_sent: u64,
    /// Chunks that waited for the snapshot budget before going, since the start (one the
    /// core sent again while its first copy waited is counted once).
    pub snapshot_chunks_delayed: u64,
    /// Chunks waiting for the snapshot budget now (at most one per group and follower).
    pub snapshot_chunks_held: usize,
}

/// Where one group's replica on this host stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// This replica's role; never `Leader` while the host is not participating.
    pub role: Role,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// The configuration in force (the latest in the log).
    pub membership: Membership,
    /// False after a fatal error of the host.
    pub participating: bool,
}

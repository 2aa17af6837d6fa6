//! [`NodeStatus`]: where a node stands, as the loop publishes it for [`super::Node::status`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::log_writer::WriterStats;
use super::transport::TransportStats;
use crate::raft::{Membership, NodeId, PeerProgress, Role, Stats};

/// Where a node stands, published by the loop after every iteration.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The node.
    pub id: NodeId,
    /// Its role. Never `Leader` while `participating` is false: a node that stopped after a
    /// fatal error leads nothing, even though its core was leader when it stopped.
    pub role: Role,
    /// Its term.
    pub term: u64,
    /// The leader it knows of (`None` while `participating` is false).
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: u64,
    /// Applied index (the apply thread's).
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Per-follower progress (leader only).
    pub progress: BTreeMap<NodeId, PeerProgress>,
    /// The log writer's counters: fsyncs, entries, batch-size histogram.
    pub writer: WriterStats,
    /// Transport counters.
    pub transport: TransportStats,
    /// The core's counters.
    pub raft_stats: Stats,
    /// Peers with an established outbound connection.
    pub connected_peers: Vec<NodeId>,
    /// False after a fatal error: the node no longer votes or acknowledges.
    pub participating: bool,
    /// True while this leader's log write is pending past `disk_stall_timeout`.
    pub disk_stalled: bool,
    /// The fatal error, if any.
    pub last_error: Option<String>,
    /// The bound peer address.
    pub listen_addr: SocketAddr,
    /// Every member of the configuration in force (joint: both halves), by id.
    pub members: BTreeMap<NodeId, MemberStatus>,
    /// Proposals this node forwarded to the leader and still waits on.
    pub forwards_in_flight: usize,
    /// Raft messages and forwards received for a group other than this node's (only a
    /// multi-group host sends those), dropped.
    pub other_group_dropped: u64,
    /// The configuration in force (the latest in the log; joint: both halves).
    pub membership: Membership,
    /// The latest committed configuration.
    pub committed_membership: Membership,
    /// True once this node learned it was removed from the cluster: it no longer
    /// participates (`participating` is false).
    pub removed: bool,
}

/// One member of the configuration, as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its peer address, if this node's configuration names one.
    pub peer_addr: Option<SocketAddr>,
    /// Whether it votes (in either half of a joint configuration); false for a learner.
    pub voter: bool,
}

/// The status's member list: every member of `membership` with its configured address.
pub(crate) fn members_of(
    membership: &Membership,
    peer_addrs: &BTreeMap<NodeId, SocketAddr>,
) -> BTreeMap<NodeId, MemberStatus> {
    membership
        .all_members()
        .into_iter()
        .map(|id| {
            let member = MemberStatus {
                peer_addr: peer_addrs.get(&id).copied(),
                voter: membership.voters.contains(&id) || membership.outgoing_voters.contains(&id),
            };
            (id, member)
        })
        .collect()
}

//! [`Backend`]: what the RESP server serves in front of.
//!
//! Either one [`Node`] (one Raft group holding every key: the server has one *lane*), or a
//! host's groups, one per slot range (the sharded service: one lane per group, see
//! [`crate::kv::sharded`]). The server batches the writes and reads of each lane apart: a
//! batch is one log entry or one ReadIndex round of one group, never of several.
//!
//! A request's lane follows from its keys' hash slot (`request_slot`); a request without keys
//! goes to lane 0 unless it is answered over every lane. A route also names the slot range and
//! range epoch it followed ([`RangeCheck`]), which travel with the batch, so that a group whose
//! range is not that one (it changed after the route was taken) refuses it (see
//! `kv::sharded`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::kv::cluster::ClusterView;
use crate::node::{ChangeError, Node, NodeStatus, ProposeError, ReadError};
use crate::raft::{ConfChange, NodeId};

/// Where a write batch's result goes (runs on a node or host thread: cheap, never blocking).
pub type ProposeDone = Box<dyn FnOnce(Result<Vec<u8>, ProposeError>) + Send>;
/// Where a query batch's result goes.
pub type ReadDone = Box<dyn FnOnce(Result<Vec<u8>, ReadError>) + Send>;
/// Where an admin change's result goes.
pub type ChangeDone = Box<dyn FnOnce(Result<(), ChangeError>) + Send>;

/// The slot range a route went to, at its epoch: the lane's group serves the batch only if
/// that is its own range at its own epoch (see `kv::sharded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeCheck {
    /// The range's first slot.
    pub first: u16,
    /// The range's last slot.
    pub last: u16,
    /// The range's epoch (>= 1).
    pub epoch: u64,
}

/// Where the requests for one slot go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneRoute {
    /// The lane.
    pub lane: usize,
    /// What the lane's group checks; `None`: nothing (one group holds every slot, or a
    /// command without keys).
    pub check: Option<RangeCheck>,
}

impl LaneRoute {
    /// Lane `lane`, unchecked.
    pub fn unchecked(lane: usize) -> LaneRoute {
        LaneRoute { lane, check: None }
    }
}

/// One range of the routing table, as `INFO cluster` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteView {
    /// First slot.
    pub first: u16,
    /// Last slot.
    pub last: u16,
    /// The Raft group serving it.
    pub group: u64,
    /// Its range epoch.
    pub epoch: u64,
}

/// The replicas a RESP server serves (module docs). Lanes are numbered from 0.
pub trait Backend: Send + Sync + 'static {
    /// This node's (host's) id.
    fn id(&self) -> NodeId;
    /// The cluster's id (names the nodes in `CLUSTER` replies).
    fn cluster_id(&self) -> u64;
    /// How many lanes (groups) there are: at least 1.
    fn lanes(&self) -> usize;
    /// The lane that holds the keys of hash slot `slot` (below 16,384), with the epoch of
    /// that route.
    fn route_slot(&self, slot: u16) -> LaneRoute;
    /// Proposes a write batch to lane `lane`'s group, whose commands followed a route with
    /// `check` (`None`: unchecked).
    fn submit(&self, lane: usize, check: Option<RangeCheck>, batch: Vec<u8>, done: ProposeDone);
    /// Runs a query batch on lane `lane`'s group, linearizably (`check` as for `submit`).
    fn read(&self, lane: usize, check: Option<RangeCheck>, batch: Vec<u8>, done: ReadDone);
    /// Where this node stands, for `INFO` and `KETCH.MEMBERS`.
    fn status(&self) -> NodeStatus;
    /// True if this node leads at least one group (`INFO`'s and `ROLE`'s master).
    fn is_leader(&self) -> bool;
    /// The slot map as this node sees it, for `CLUSTER` (see [`ClusterView`]).
    fn cluster_view(
        &self,
        client_addrs: &BTreeMap<NodeId, SocketAddr>,
        connection_addr: Option<SocketAddr>,
    ) -> ClusterView;
    /// The leader of lane `lane`'s group as far as this node knows (`None` while this node
    /// does not participate).
    fn lane_leader(&self, lane: usize) -> Option<NodeId>;
    /// A membership change (`KETCH.ADDLEARNER`, `KETCH.PROMOTE`, `KETCH.REMOVE`).
    fn change_membership(&self, change: ConfChange, addr: Option<SocketAddr>, done: ChangeDone);
    /// A leadership transfer (`KETCH.TRANSFER`).
    fn transfer_leadership(&self, target: NodeId, done: ChangeDone);
    /// The routing table this node routes by: its epoch and ranges (none with one group).
    fn routing(&self) -> (u64, Vec<RouteView>) {
        (0, Vec::new())
    }
}

/// One group, one lane: every slot is lane 0's.
impl Backend for Node {
    fn id(&self) -> NodeId {
        Node::id(self)
    }

    fn cluster_id(&self) -> u64 {
        Node::cluster_id(self)
    }

    fn lanes(&self) -> usize {
        1
    }

    fn route_slot(&self, _slot: u16) -> LaneRoute {
        LaneRoute::unchecked(0)
    }

    fn submit(&self, lane: usize, check: Option<RangeCheck>, batch: Vec<u8>, done: ProposeDone) {
        debug_assert_eq!(
            (lane, check),
            (0, None),
            "a node has one lane, never checked"
        );
        self.submit_with(batch, done);
    }

    fn read(&self, lane: usize, check: Option<RangeCheck>, batch: Vec<u8>, done: ReadDone) {
        debug_assert_eq!(
            (lane, check),
            (0, None),
            "a node has one lane, never checked"
        );
        self.read_with(batch, done);
    }

    fn status(&self) -> NodeStatus {
        Node::status(self)
    }

    fn is_leader(&self) -> bool {
        super::info::is_leader(&Node::status(self))
    }

    fn cluster_view(
        &self,
        client_addrs: &BTreeMap<NodeId, SocketAddr>,
        connection_addr: Option<SocketAddr>,
    ) -> ClusterView {
        ClusterView::new(
            &Node::status(self),
            Node::cluster_id(self),
            client_addrs,
            connection_addr,
        )
    }

    fn lane_leader(&self, _lane: usize) -> Option<NodeId> {
        let status = Node::status(self);
        status.leader.filter(|_| status.participating)
    }

    fn change_membership(&self, change: ConfChange, addr: Option<SocketAddr>, done: ChangeDone) {
        Node::change_membership(self, change, addr, done);
    }

    fn transfer_leadership(&self, target: NodeId, done: ChangeDone) {
        Node::transfer_leadership(self, target, done);
    }
}

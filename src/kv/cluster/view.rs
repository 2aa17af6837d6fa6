//! [`ClusterView`]: the shards and the hosts that serve them, as this node sees them when a
//! `CLUSTER` command asks.
//!
//! The 16,384 slots are split into ranges, each a [`ShardView`] served by one Raft group.
//! Every host holds a replica of every group, so the hosts shown are the same for all
//! shards; what differs is which of them leads: a shard's master is its group's leader, its
//! replicas the group's other voters. A host leading several groups is the master of several
//! shards, and one leading none is a master of no slots. The single-group service is the
//! one-shard case, [`ClusterView::new`]: one shard owning every slot, built afresh for each
//! command from the node's [`NodeStatus`], so it follows elections and membership changes as
//! the node learns them. [`ClusterView::sharded`] takes the hosts and shards already built.
//!
//! # Which nodes are shown, at which address
//!
//! A node is shown at its **client (RESP) address**, the one a Redis client dials. Nodes
//! learn each other's peer addresses through the Raft log, but not their client addresses:
//! those come from `ketch serve --cluster-client-addrs` ([`ServerConfig::cluster_client_addrs`],
//! which `ketch cluster` passes to every node it starts). The rule:
//!
//! - a node is shown if it is a voter of the configuration in force (or this node itself)
//!   and its client address is known;
//! - this node's address is its entry in that list, or else the local address of the
//!   connection the command came in on (the address the asking client reached it at);
//! - any other node missing from the list is left out of every reply, rather than shown at
//!   a guessed address. A leader left out this way means its shard has no known master:
//!   see [`ClusterView::master_of`].
//!
//! Learners are left out: they may still be catching up, and a Redis replica that is not in
//! sync is not offered to clients either.
//!
//! [`ServerConfig::cluster_client_addrs`]: crate::kv::ServerConfig::cluster_client_addrs

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::node_name::NodeName;
use super::slot::SLOT_MAX;
use crate::node::NodeStatus;
use crate::raft::{NodeId, Role};

/// One node shown in the replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// Its Raft node id.
    pub id: NodeId,
    /// Its Redis Cluster id.
    pub name: NodeName,
    /// Where clients reach it.
    pub client_addr: SocketAddr,
    /// Its peer (Raft) port, shown where Redis shows the cluster bus port; 0 if unknown.
    pub bus_port: u16,
    /// This node itself, or a peer it holds a connection to. An unreachable node is shown
    /// as Redis shows a node it suspects (`fail?`, `disconnected`, health `failed`), and is
    /// not offered as a replica in `CLUSTER SLOTS`.
    pub reachable: bool,
    /// The highest log index it is known to hold: this node's applied index for itself, the
    /// leader's match index for a follower when this node leads, else 0. Stands where Redis
    /// shows a replication offset.
    pub replication_offset: u64,
}

/// One shard: a slot range served by one Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardView {
    /// Its slot ranges, inclusive, ascending.
    pub slots: Vec<(u16, u16)>,
    /// Its leader, if known (and this node participates).
    pub leader: Option<NodeId>,
    /// The term the leader was elected in (shown as config epoch).
    pub term: u64,
    /// Its voters, by id (each must appear in `ClusterView::nodes` to be shown).
    pub voters: Vec<NodeId>,
}

impl ShardView {
    /// How many slots its ranges hold.
    pub fn slot_count(&self) -> u32 {
        self.slots
            .iter()
            .map(|&(start, end)| u32::from(end) - u32::from(start) + 1)
            .sum()
    }
}

/// The cluster as this node sees it (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's Raft id.
    pub myself: NodeId,
    /// This node's Redis Cluster id (known even when its address is not).
    pub myself_name: NodeName,
    /// Every node shown, by Raft id.
    pub nodes: Vec<ClusterNode>,
    /// The shards, in the order `CLUSTER SHARDS` lists them (`CLUSTER SLOTS` sorts ranges).
    pub shards: Vec<ShardView>,
    /// Raft messages this node queued to peers and received from them.
    pub messages_sent: u64,
    /// See `messages_sent`.
    pub messages_received: u64,
}

impl ClusterView {
    /// The one-shard view from `status` (module docs): `cluster_id` names the nodes,
    /// `client_addrs` are the announced client addresses, `connection_addr` the local address
    /// of the asking connection.
    pub fn new(
        status: &NodeStatus,
        cluster_id: u64,
        client_addrs: &BTreeMap<NodeId, SocketAddr>,
        connection_addr: Option<SocketAddr>,
    ) -> ClusterView {
        let myself = status.id;
        let leader = status.leader.filter(|_| status.participating);
        let leading = leader == Some(myself) && status.role == Role::Leader;
        let mut nodes = Vec::new();
        for (&id, member) in &status.members {
            if !member.voter && id != myself {
                continue;
            }
            let announced = client_addrs.get(&id).copied();
            let Some(client_addr) = announced.or(connection_addr.filter(|_| id == myself)) else {
                continue;
            };
            let reachable = id == myself || status.connected_peers.contains(&id);
            let replication_offset = if id == myself {
                status.applied
            } else if leading {
                status.progress.get(&id).map_or(0, |p| p.match_index)
            } else {
                0
            };
            nodes.push(ClusterNode {
                id,
                name: NodeName::of(cluster_id, id),
                client_addr,
                bus_port: member.peer_addr.map_or(0, |addr| addr.port()),
                reachable,
                replication_offset,
            });
        }
        // A node that joins has no configuration yet, but answers for itself all the same.
        if !status.members.contains_key(&myself) {
            if let Some(client_addr) = client_addrs.get(&myself).copied().or(connection_addr) {
                nodes.push(ClusterNode {
                    id: myself,
                    name: NodeName::of(cluster_id, myself),
                    client_addr,
                    bus_port: status.listen_addr.port(),
                    reachable: true,
                    replication_offset: status.applied,
                });
                nodes.sort_by_key(|node| node.id);
            }
        }
        // Every node shown is a voter of the one group but this node when it is a learner or
        // joining; it counts as one too, so that it is listed in the shard it answers for.
        let shard = ShardView {
            slots: vec![(0, SLOT_MAX)],
            leader,
            term: status.term,
            voters: nodes.iter().map(|node| node.id).collect(),
        };
        ClusterView::sharded(
            myself,
            cluster_id,
            nodes,
            vec![shard],
            status.transport.messages_queued,
            status.transport.messages_received,
        )
    }

    /// A node's view of a sharded cluster: `nodes` are all hosts shown (built as `new` builds
    /// them: client address known, reachable if connected), `shards` the ranges.
    pub fn sharded(
        myself: NodeId,
        cluster_id: u64,
        nodes: Vec<ClusterNode>,
        shards: Vec<ShardView>,
        messages_sent: u64,
        messages_received: u64,
    ) -> ClusterView {
        ClusterView {
            myself,
            myself_name: NodeName::of(cluster_id, myself),
            nodes,
            shards,
            messages_sent,
            messages_received,
        }
    }

    /// The node shown with this Raft id, if any.
    pub fn node(&self, id: NodeId) -> Option<&ClusterNode> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// The shard's master: its leader, if this node knows one and shows it. `None` means the
    /// shard's slots have no owner to name (no leader, or its client address is unknown).
    pub fn master_of(&self, shard: &ShardView) -> Option<&ClusterNode> {
        self.node(shard.leader?)
    }

    /// The shard's voters shown, other than its master, reachable or not, by id: the
    /// replicas `CLUSTER SHARDS` lists.
    pub fn others_of<'a>(&'a self, shard: &'a ShardView) -> impl Iterator<Item = &'a ClusterNode> {
        let master = self.master_of(shard).map(|node| node.id);
        self.nodes
            .iter()
            .filter(move |node| Some(node.id) != master && shard.voters.contains(&node.id))
    }

    /// The shard's replicas as `CLUSTER SLOTS` offers them: its reachable voters shown, other
    /// than its master, by id.
    pub fn replicas_of<'a>(
        &'a self,
        shard: &'a ShardView,
    ) -> impl Iterator<Item = &'a ClusterNode> {
        self.others_of(shard).filter(|node| node.reachable)
    }

    /// The shards whose master is shown, each with it: the ones a client can route to.
    pub fn mastered_shards(&self) -> impl Iterator<Item = (&ShardView, &ClusterNode)> {
        self.shards
            .iter()
            .filter_map(|shard| Some((shard, self.master_of(shard)?)))
    }

    /// The highest term of any shard: Redis' current epoch.
    pub fn current_epoch(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.term)
            .max()
            .unwrap_or(0)
    }

    /// The epoch shown for `id`: the highest term of the shards it is the shown master of,
    /// 0 if none (as a Redis master's config epoch, which a node without slots never bumps).
    pub fn config_epoch(&self, id: NodeId) -> u64 {
        self.mastered_shards()
            .filter(|(_, master)| master.id == id)
            .map(|(shard, _)| shard.term)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: NodeId, reachable: bool) -> ClusterNode {
        ClusterNode {
            id,
            name: NodeName::of(7, id),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 17_378 + id as u16)),
            bus_port: 0,
            reachable,
            replication_offset: 0,
        }
    }

    fn shard(slots: Vec<(u16, u16)>, leader: Option<NodeId>, term: u64) -> ShardView {
        ShardView {
            slots,
            leader,
            term,
            voters: vec![1, 2, 3, 4],
        }
    }

    /// Hosts 1-3 shown (3 cut off), host 4 a voter whose address is unknown; shards led by
    /// hosts 1, 2, 3 and 1, and a fifth by host 4.
    fn view() -> ClusterView {
        ClusterView::sharded(
            2,
            7,
            vec![node(1, true), node(2, true), node(3, false)],
            vec![
                shard(vec![(0, 4095)], Some(1), 3),
                shard(vec![(4096, 8191)], Some(2), 4),
                shard(vec![(8192, 12287)], Some(3), 6),
                shard(vec![(12288, 16000)], Some(1), 5),
                shard(vec![(16001, 16001), (16002, 16383)], Some(4), 9),
            ],
            0,
            0,
        )
    }

    fn ids<'a>(nodes: impl Iterator<Item = &'a ClusterNode>) -> Vec<NodeId> {
        nodes.map(|node| node.id).collect()
    }

    #[test]
    fn each_shard_has_its_own_master_and_replicas() {
        let v = view();
        let masters: Vec<Option<NodeId>> = v
            .shards
            .iter()
            .map(|s| v.master_of(s).map(|n| n.id))
            .collect();
        assert_eq!(masters, [Some(1), Some(2), Some(3), Some(1), None]);
        assert_eq!(ids(v.replicas_of(&v.shards[0])), [2]);
        assert_eq!(ids(v.others_of(&v.shards[0])), [2, 3]);
        assert_eq!(ids(v.replicas_of(&v.shards[2])), [1, 2]);
        // Without a master shown, every voter shown is another.
        assert_eq!(ids(v.others_of(&v.shards[4])), [1, 2, 3]);
        assert_eq!(v.mastered_shards().count(), 4);
    }

    #[test]
    fn replicas_are_only_the_shards_own_voters() {
        let mut v = view();
        v.shards[1].voters = vec![2, 3];
        assert_eq!(ids(v.others_of(&v.shards[1])), [3]);
        assert!(v.replicas_of(&v.shards[1]).next().is_none());
    }

    #[test]
    fn epochs_and_slot_counts() {
        let v = view();
        assert_eq!(v.current_epoch(), 9);
        assert_eq!(
            [1, 2, 3, 4].map(|id| v.config_epoch(id)),
            [5, 4, 6, 0],
            "a master not shown has no epoch"
        );
        assert_eq!(v.shards[4].slot_count(), 383);
        let total: u32 = v.shards.iter().map(ShardView::slot_count).sum();
        assert_eq!(total, 16_384);
    }
}

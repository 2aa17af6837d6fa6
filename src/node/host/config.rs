//! [`HostConfig`]: everything a host is started with, and its defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::node::config::DEFAULT_MAX_PROPOSAL_BYTES;
use crate::node::{PeerSecurity, ProposalStamp};
use crate::raft::NodeId;

/// Configuration of one host: the process that runs many Raft groups.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// This host's id (non-zero, a key of `peers`). A group's replica on this host is the
    /// Raft node with this id.
    pub id: NodeId,
    /// Peers refuse connections from other clusters.
    pub cluster_id: u64,
    /// Every host's peer address, this host included. A group's voters are hosts of this map.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Where to listen for peers (may differ from `peers[id]`, e.g. `0.0.0.0:port`).
    pub listen_addr: SocketAddr,
    /// Duration of one core tick, for every group.
    pub tick_interval: Duration,
    /// Core tuning, the same for every group; its `id` is overwritten with `id` and its seed
    /// is mixed with the group id, so groups do not time out in lockstep.
    pub raft: crate::raft::Config,
    /// How long `propose` waits for the result.
    pub propose_timeout: Duration,
    /// How long `read` waits for the answer.
    pub read_timeout: Duration,
    /// Apply worker threads. Each group is applied by one of them (chosen by its id), so its
    /// commands apply in order; a slow group delays only the groups sharing its worker.
    pub apply_workers: usize,
    /// Most proposals waiting for their result on this host, over all groups.
    pub max_pending_proposals: usize,
    /// Most reads waiting for their answer on this host, over all groups.
    pub max_pending_reads: usize,
    /// Most groups this host holds.
    pub max_groups: usize,
    /// Bytes queued per peer connection before messages are dropped (raised to hold one frame
    /// of the largest entry).
    pub peer_queue_bytes_max: usize,
    /// Largest proposal (log entry data) accepted; must be the same on every host.
    pub max_proposal_bytes: u64,
    /// Options of the shared log's segment files.
    pub log: ketch_storage::Options,
    /// Garbage-collection policy of the shared log.
    pub store: ketch_storage::StoreOptions,
    /// How peer connections are authenticated (see `crate::node::peer_auth`).
    pub peer_security: PeerSecurity,
    /// Idle ticks after which a group's leader quiesces it (0: never; see the host's
    /// quiescence rules).
    pub quiesce_after_ticks: u32,
    /// How long (default 5 s) the shared log writer may complete nothing (plus a second per 16 MiB
    /// pending) while writes wait before the host counts its disk as stalled and sends
    /// nothing, host beats included, until a write completes: the groups it leads then elect
    /// leaders elsewhere instead of hanging on a dead disk (as `NodeConfig`'s).
    pub disk_stall_timeout: Duration,
    /// Host-wide budget (default 64 MiB/s) of InstallSnapshot chunk bytes this host sends,
    /// over all groups and peers, so that followers catching up from snapshots do not take
    /// the network and the peers' disks from everyone else; 0 means unlimited. Chunks over
    /// budget wait in the host's loop (at most one per group and follower) and go in turn;
    /// heartbeats, appends and votes never wait for it. A snapshot of `s` bytes takes at least
    /// about `s / snapshot_bytes_per_sec` to send, more when transfers share the budget.
    pub snapshot_bytes_per_sec: u64,
    /// Called by a group's leader on this host on every proposal it accepts into the group's
    /// log (proposed here or forwarded by a follower), just before appending it, as
    /// [`NodeConfig::proposal_stamp`](crate::node::NodeConfig::proposal_stamp) is on a node;
    /// the same hook serves every group. `None`: proposals are logged as given.
    pub proposal_stamp: Option<ProposalStamp>,
}

impl HostConfig {
    /// A configuration with the same defaults as `NodeConfig::new` (10 ms ticks, election
    /// timeout 30-60 ticks, heartbeats every 5 ticks, 5 s client timeouts), two apply
    /// workers, and host-wide bounds of 65,536 pending proposals and reads.
    pub fn new(
        id: NodeId,
        cluster_id: u64,
        peers: BTreeMap<NodeId, SocketAddr>,
        listen_addr: SocketAddr,
    ) -> Self {
        let mut raft = crate::raft::Config::new(id);
        raft.election_timeout_ticks = 30;
        raft.heartbeat_interval_ticks = 5;
        raft.seed = cluster_id;
        HostConfig {
            id,
            cluster_id,
            peers,
            listen_addr,
            tick_interval: Duration::from_millis(10),
            raft,
            propose_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            apply_workers: 2,
            max_pending_proposals: 65_536,
            max_pending_reads: 65_536,
            max_groups: 100_000,
            peer_queue_bytes_max: 64 << 20,
            max_proposal_bytes: DEFAULT_MAX_PROPOSAL_BYTES,
            log: ketch_storage::Options::default(),
            store: ketch_storage::StoreOptions::default(),
            peer_security: PeerSecurity::default(),
            quiesce_after_ticks: crate::node::quiescence::QUIESCE_AFTER_TICKS,
            // Five seconds: one fdatasync on a busy shared disk, or a segment's preparation
            // behind a 64 MiB entry, can take over a second, and a leader that steps aside
            // for a busy disk costs every client an election. (CockroachDB waits 20 s.)
            disk_stall_timeout: Duration::from_secs(5),
            // About half of a 1 Gbit/s link: a 4 GiB snapshot goes in about a minute, and
            // the rest of the link carries every group's appends.
            snapshot_bytes_per_sec: 64 << 20,
            proposal_stamp: None,
        }
    }

    /// Checks what `Host::start` relies on.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("host id 0 is not valid".into());
        }
        if !self.peers.contains_key(&self.id) {
            return Err(format!("peers must include this host ({})", self.id));
        }
        if self.apply_workers == 0 || self.apply_workers > 64 {
            return Err(format!(
                "apply_workers must be between 1 and 64, got {}",
                self.apply_workers
            ));
        }
        if self.raft.read_mode == crate::raft::ReadMode::Lease {
            return Err(
                "a host serves no lease reads: a quiesced leader's clock stops, so its lease \
                 would outlive real time (every read is a ReadIndex round)"
                    .into(),
            );
        }
        if self.tick_interval.is_zero() {
            return Err("tick_interval must be above zero".into());
        }
        Ok(())
    }
}

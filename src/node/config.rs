//! [`NodeConfig`]: everything a node is started with, and its defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::peer_auth::PeerSecurity;
use crate::raft::NodeId;

/// Default [`NodeConfig::max_proposal_bytes`]: a 64 MiB value with room for its key and
/// encoding (what the key-value service sets by default).
pub const DEFAULT_MAX_PROPOSAL_BYTES: u64 = (64 << 20) + (8 << 20);

/// Configuration of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id (non-zero, a key of `peers`).
    pub id: NodeId,
    /// Peers refuse connections from other clusters.
    pub cluster_id: u64,
    /// Every voter's peer address, this node included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Where to listen for peers (may differ from `peers[id]`, e.g. `0.0.0.0:port`).
    pub listen_addr: SocketAddr,
    /// Duration of one core tick.
    pub tick_interval: Duration,
    /// Core tuning; its `id` is overwritten with `id`.
    pub raft: crate::raft::Config,
    /// How long `propose` waits for the result.
    pub propose_timeout: Duration,
    /// How long `read` waits for the answer.
    pub read_timeout: Duration,
    /// Most proposals waiting for their result on this node.
    pub max_pending_proposals: usize,
    /// Leader disk-stall bound (default 5 s): a leader whose log writer has completed nothing
    /// for this long (plus a second per 16 MiB pending) while writes wait sends nothing (no
    /// heartbeats) until one completes, so followers elect another leader instead of the
    /// cluster hanging on a dead disk while heartbeats flow (see `disk_stall`).
    pub disk_stall_timeout: Duration,
    /// Bytes queued per peer connection (a peer has two, see `transport`) before messages are
    /// dropped (raised to hold one frame of the largest entry, see
    /// [`NodeConfig::max_proposal_bytes`]).
    pub peer_queue_bytes_max: usize,
    /// Largest proposal (log entry data) this node accepts; a larger one is refused with
    /// [`ProposeError::Backpressure`](super::ProposeError::Backpressure) (see there) before it
    /// reaches the log, so
    /// no entry is ever too large for a peer to receive. The peer frame limit, the per-peer
    /// queue bound and the core's uncommitted-bytes bound are sized from it, so it must be the
    /// same on every node.
    pub max_proposal_bytes: u64,
    /// WAL options (segment size, fault injection for tests).
    pub wal: ketch_storage::Options,
    /// Join a running cluster: start with an empty configuration (`peers` then only says
    /// where to reach the current members until the first configuration arrives) and wait to
    /// be added with [`Node::change_membership`](super::Node::change_membership) on the leader. Ignored once the data
    /// directory holds state: a restart recovers the configuration from the log.
    pub join: bool,
    /// Called by the leader on every proposal it accepts into its log (its own or one a
    /// follower forwarded), just before appending it: lets the application stamp what only the
    /// leader may decide, such as the time a key-value write batch is applied at. `None`: the
    /// proposal is logged as given.
    pub proposal_stamp: Option<ProposalStamp>,
    /// How peer connections are authenticated (a shared secret, mutual TLS, both, or neither,
    /// the default, which the node warns about at start); see `super::peer_auth`.
    pub peer_security: PeerSecurity,
}

/// A leader-side hook over a proposal's bytes (see [`NodeConfig::proposal_stamp`]). It runs on
/// the node's event loop, so it must be quick and must not block.
#[derive(Clone)]
pub struct ProposalStamp(pub Arc<StampFn>);

/// What a [`ProposalStamp`] calls: it may rewrite the proposal's bytes in place (never its
/// length).
pub type StampFn = dyn Fn(&mut [u8]) + Send + Sync;

impl ProposalStamp {
    /// Runs the stamp over a proposal. A local proposal's buffer is unshared and is stamped in
    /// place; a forwarded one is a slice of the frame it came in, so stamping copies it once. The
    /// stamp only rewrites bytes, never the length.
    pub(crate) fn stamp(&self, data: bytes::Bytes) -> bytes::Bytes {
        match data.try_into_mut() {
            Ok(mut owned) => {
                (self.0)(&mut owned);
                owned.freeze()
            }
            Err(shared) => {
                let mut owned = shared.to_vec();
                (self.0)(&mut owned);
                bytes::Bytes::from(owned)
            }
        }
    }
}

impl fmt::Debug for ProposalStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProposalStamp(..)")
    }
}

impl NodeConfig {
    /// A configuration with defaults for a LAN: 10 ms ticks, election timeout 30-60 ticks,
    /// heartbeats every 5 ticks, 5 s client timeouts.
    pub fn new(
        id: NodeId,
        cluster_id: u64,
        peers: BTreeMap<NodeId, SocketAddr>,
        listen_addr: SocketAddr,
    ) -> Self {
        let mut raft = crate::raft::Config::new(id);
        // 300-600 ms elections and 50 ms heartbeats: a shared, loaded 2-core machine delays
        // threads by tens of milliseconds, and a spurious election costs more than a slower
        // failover.
        raft.election_timeout_ticks = 30;
        raft.heartbeat_interval_ticks = 5;
        raft.seed = cluster_id;
        NodeConfig {
            id,
            cluster_id,
            peers,
            listen_addr,
            tick_interval: Duration::from_millis(10),
            raft,
            propose_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            max_pending_proposals: 65_536,
            // Five seconds: one fdatasync on a busy shared disk, or a segment's preparation
            // behind a 64 MiB entry, can take over a second, and a leader that steps aside
            // for a busy disk costs every client an election. (CockroachDB waits 20 s.)
            disk_stall_timeout: Duration::from_secs(5),
            peer_queue_bytes_max: 64 << 20,
            max_proposal_bytes: DEFAULT_MAX_PROPOSAL_BYTES,
            wal: ketch_storage::Options::default(),
            join: false,
            proposal_stamp: None,
            peer_security: PeerSecurity::default(),
        }
    }
}

//! [`ServerConfig`]: the server's tuning and limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::kv::acl::Acl;
use crate::kv::resp::Limits;
use crate::kv::state::DEFAULT_MAX_VALUE_BYTES;
use crate::raft::NodeId;

/// Write batch header: version, proposer clock, count (see `command`).
const WRITE_BATCH_HEADER_BYTES: usize = 13;

/// Tuning and limits of the RESP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Request parsing limits. [`Server::start`](super::Server::start) lowers `bulk_bytes_max`
    /// and `request_bytes_max` to [`ServerConfig::request_bytes_max`], which follows from
    /// [`ServerConfig::max_value_bytes`] (they may be set lower still).
    pub limits: Limits,
    /// Close a connection with nothing pending after this long without input (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Most open client connections.
    pub connections_max: usize,
    /// Most replies waiting per connection (pipelined requests in flight) before the server
    /// stops reading from it.
    pub pipeline_replies_max: usize,
    /// Most unsent reply bytes per connection before the server stops reading from it (a
    /// slow reader); one reply may exceed it.
    pub output_bytes_max: usize,
    /// Most commands in one write batch or one query batch.
    pub batch_commands_max: usize,
    /// Most encoded bytes in one batch (a single larger command goes alone).
    pub batch_bytes_max: usize,
    /// Largest value a write may leave: the value of a `SET`, the sum of the values of an
    /// `MSET`, the value an `APPEND` results in (default
    /// [`DEFAULT_MAX_VALUE_BYTES`](crate::kv::DEFAULT_MAX_VALUE_BYTES), at most
    /// [`MAX_VALUE_BYTES_MAX`](crate::kv::MAX_VALUE_BYTES_MAX)). Larger is refused with
    /// `-ERR value too large (N bytes; limit M)`. Every other size bound follows from it:
    /// request parsing ([`ServerConfig::request_bytes_max`]), the node's largest entry
    /// ([`ServerConfig::max_entry_bytes`], which
    /// [`KvService`](crate::kv::KvService) gives the node as its
    /// [`max_proposal_bytes`](crate::node::NodeConfig::max_proposal_bytes), and from which the
    /// node sizes its peer frames), and the state machine's `APPEND` check. It must be the
    /// same on every node.
    pub max_value_bytes: usize,
    /// Added to this node's wall clock wherever the key-value service reads it (the leader's
    /// stamp on write batches, hence key expiry; the clock reads carry; `TIME`): for tests and
    /// clock-skew drills, where nodes sharing one machine need clocks of their own. 0 in
    /// production. See [`Clock`](crate::kv::Clock).
    pub clock_offset_ms: i64,
    /// The users clients authenticate as and what each may run (see [`crate::kv::acl`]);
    /// by default only `default`, with no password and every right. Checked on the node a
    /// client is connected to, before its commands are batched or forwarded.
    pub acl: Arc<Acl>,
    /// Each node's client (RESP) address as clients dial it, for the Redis Cluster replies
    /// (`CLUSTER SLOTS`, `SHARDS`, `NODES`): nodes learn each other's peer addresses from the
    /// log, not their client addresses. A node missing here is left out of those replies;
    /// this node, if missing, is shown at the address the asking client connected to. Empty
    /// by default. See [`crate::kv::cluster::view`].
    pub cluster_client_addrs: BTreeMap<NodeId, SocketAddr>,
    /// How a request for a key whose group this node does not lead is answered when the
    /// keyspace is split over many groups (with one group, every request is forwarded).
    pub cluster_mode: ClusterMode,
}

impl ServerConfig {
    /// Room beyond the largest value for a command's keys, name and arguments: a sixteenth
    /// of the value limit, at least 1 MiB.
    fn slack_bytes(&self) -> usize {
        (self.max_value_bytes / 16).max(1 << 20)
    }

    /// The largest bulk string and the most argument bytes one request may carry: the value
    /// limit plus room for keys. A larger request is a protocol error (answered, then the
    /// connection is closed); a smaller one with a value over the limit is answered
    /// `value too large` and the connection stays open.
    pub fn request_bytes_max(&self) -> usize {
        self.max_value_bytes.saturating_add(self.slack_bytes())
    }

    /// The largest log entry (write batch) the server proposes: a request of
    /// [`ServerConfig::request_bytes_max`] argument bytes, encoded, with room for the
    /// per-argument length fields. A write that encodes larger is refused before it is
    /// proposed; a batch never grows past it (a large write goes in a batch of its own).
    pub fn max_entry_bytes(&self) -> usize {
        self.request_bytes_max().saturating_add(self.slack_bytes())
    }

    /// The most bytes one write may encode to so that a batch holding it alone stays within
    /// [`ServerConfig::max_entry_bytes`].
    pub(super) fn write_bytes_max(&self) -> usize {
        self.max_entry_bytes() - WRITE_BATCH_HEADER_BYTES
    }
}

impl Default for ServerConfig {
    /// Redis' limits, a 5 minute idle timeout, 10 000 connections, 1024 pipelined replies and
    /// 1 MiB of output per connection, batches of up to 1024 commands / 1 MiB, 64 MiB values, no
    /// password, no other node's client address.
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            idle_timeout: Some(Duration::from_secs(300)),
            connections_max: 10_000,
            pipeline_replies_max: 1024,
            output_bytes_max: 1 << 20,
            batch_commands_max: 1024,
            batch_bytes_max: 1 << 20,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            clock_offset_ms: 0,
            acl: Arc::new(Acl::open()),
            cluster_client_addrs: BTreeMap::new(),
            cluster_mode: ClusterMode::Forward,
        }
    }
}

/// How a sharded node answers a request for a key in a range another node leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterMode {
    /// The request goes to the range's group through this node (the host forwards a write to
    /// the leader, and confirms a read with it), so a client that does not route by slot is
    /// served all the same.
    #[default]
    Forward,
    /// `-MOVED slot host:port`, naming the leader's client address, as Redis Cluster
    /// answers; forwarded all the same while no leader, or no client address of it, is
    /// known.
    Redirect,
}

//! Prometheus metrics: the process-wide registry, the hooks the runtime calls on its hot
//! paths, the scrape-time collector over [`NodeStatus`](crate::node::NodeStatus), the HTTP
//! endpoint (`ketch serve --metrics-addr`), and the Grafana dashboard (`ketch dashboard`).
//!
//! Names follow etcd's (`etcd_` becomes `ketch_` where the meaning is the same), so dashboards
//! and alerts written for etcd carry over. The four that outside checks read are fixed:
//! `ketch_disk_wal_fsync_duration_seconds`, `ketch_server_proposals_committed_total`,
//! `ketch_server_has_leader`, `ketch_server_leader_changes_seen_total`.
//!
//! # Every metric
//!
//! | name | type | from |
//! |------|------|------|
//! | `ketch_disk_wal_fsync_duration_seconds` | histogram | log writer, around each round's `fdatasync` (count = INFO `fsyncs:`) |
//! | `ketch_disk_wal_write_entries_total` | counter | `WriterStats::entries_written`, at scrape |
//! | `ketch_disk_wal_write_bytes_total` | counter | log writer: entry and snapshot-chunk bytes of each round |
//! | `ketch_server_proposals_committed_total` | counter | the commit index, at scrape (as etcd) |
//! | `ketch_server_proposals_applied_total` | counter | the applied index, at scrape (as etcd) |
//! | `ketch_server_proposals_pending` | gauge | proposals submitted to this node and not yet answered |
//! | `ketch_server_proposals_failed_total` | counter | proposals answered with an error |
//! | `ketch_server_leader_changes_seen_total` | counter | each time a leader other than the last one is known |
//! | `ketch_server_has_leader` | gauge | 1 while a leader is known, at scrape |
//! | `ketch_server_is_leader` | gauge | 1 while this node leads, at scrape |
//! | `ketch_server_term` | gauge | current term, at scrape |
//! | `ketch_server_commit_index` | gauge | commit index, at scrape |
//! | `ketch_server_applied_index` | gauge | applied index, at scrape |
//! | `ketch_server_apply_queue_entries` | gauge | committed entries not yet applied, at scrape |
//! | `ketch_network_peer_sent_bytes_total{To}` | counter | frames queued to each peer |
//! | `ketch_network_peer_received_bytes_total{From}` | counter | frames decoded from each peer |
//! | `ketch_network_peer_round_trip_time_seconds` | histogram | heartbeat queued to its response decoded |
//! | `ketch_snapshot_build_duration_seconds` | histogram | apply thread: state machine to snapshot file |
//! | `ketch_snapshot_send_duration_seconds` | histogram | leader: first chunk queued to the follower's "installed" |
//! | `ketch_snapshot_install_duration_seconds` | histogram | log writer: verify, sync and rename a received snapshot, compact the log |
//! | `ketch_kv_client_connections` | gauge | RESP connections open |
//! | `ketch_kv_commands_total{cmd}` | counter | RESP commands parsed, by lower-case name; unknown names as `cmd="other"` |
//!
//! # Cost on hot paths
//!
//! Every hook is at most a few atomic operations, without allocation or locking: counters and
//! gauges are `prometheus`' atomic integers, histograms its lock-free `observe` (a bucket
//! search over at most 32 bounds and three atomic adds). Per-peer and per-command series are
//! resolved without a map: commands by matching the name against a fixed list (the label
//! children are created once, at start), peers through a fixed table of [`PEER_SLOTS`] atomic
//! slots claimed by compare-and-swap ([`peers`]). Whatever the node already counts
//! (`NodeStatus`, `WriterStats`) is read at scrape time instead, at no cost between scrapes.
//!
//! # Process-wide, aggregating by default
//!
//! One registry per process ([`global`]): the hooks have no handle to thread through the
//! runtime's configuration, and every series is the process's total. A host running several
//! Raft groups therefore aggregates by default: fsync, network, snapshot and command series
//! add up across groups, as the disk and the sockets they measure are shared. The status
//! collector ([`node_collector`]) reads every registered node: counters and the pending and
//! queue gauges are summed, `has_leader` is 1 only while every group has a leader, `is_leader`
//! counts the groups led here, `term` is the highest term. A per-group breakdown would add a
//! `group` label to those collector series only; the hot-path hooks would stay unlabelled.
//! A sharded `ketch serve` registers one status per range group (`ShardedService::
//! status_readers`), the shared log's counters with the first only.
//! In a test process holding several nodes, the per-peer series mix the nodes' traffic.
//!
//! # Parts
//!
//! - [`registry`]: [`Metrics`], the metric objects and their buckets.
//! - [`peers`]: the per-peer slot table (bytes, heartbeat and snapshot timers).
//! - [`kv_commands`]: the bounded command-name label set.
//! - [`leaders`]: leader changes seen, per local node.
//! - [`node_collector`]: scrape-time series from each node's status.
//! - [`http`]: the `GET /metrics` endpoint.
//! - [`dashboard`]: the Grafana dashboard JSON.

pub mod dashboard;
pub mod http;
pub mod kv_commands;
pub mod leaders;
pub mod node_collector;
pub mod peers;
pub mod registry;

use std::sync::OnceLock;
use std::time::Duration;

pub use http::MetricsServer;
pub use peers::PEER_SLOTS;
pub use registry::Metrics;

use crate::raft::{Message, MessageBody, NodeId};

/// The process-wide registry, created on first use.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new)
}

/// Log writer: one round's `fdatasync` succeeded after `elapsed`.
#[inline]
pub fn wal_fsync_done(elapsed: Duration) {
    global().wal_fsync_duration.observe(elapsed.as_secs_f64());
}

/// Log writer: a round wrote `bytes` of entries and snapshot chunks.
#[inline]
pub fn wal_round_written(bytes: u64) {
    global().wal_write_bytes.inc_by(bytes);
}

/// Wraps a proposal's callback so the proposal counts as pending until it is answered, and
/// as failed if answered with an error. The wrapper lives in the same allocation as `done`.
#[inline]
pub fn observe_proposal<T, E>(
    done: impl FnOnce(Result<T, E>) + Send + 'static,
) -> impl FnOnce(Result<T, E>) + Send + 'static {
    let metrics = global();
    metrics.proposals_pending.inc();
    move |result| {
        metrics.proposals_pending.dec();
        if result.is_err() {
            metrics.proposals_failed.inc();
        }
        done(result)
    }
}

/// Event loop: `node` currently knows `leader` (published with its status).
#[inline]
pub fn leader_seen(node: NodeId, leader: Option<NodeId>) {
    let metrics = global();
    if metrics.leaders.observe(node, leader) {
        metrics.leader_changes.inc();
    }
}

/// Transport: `message` was queued for its recipient as a frame of `frame_bytes`.
#[inline]
pub fn peer_message_queued(message: &Message, frame_bytes: usize) {
    let metrics = global();
    let slot = metrics.peers.slot(message.to);
    slot.add_sent(frame_bytes as u64);
    match &message.body {
        MessageBody::Heartbeat { .. } => slot.heartbeat_queued(),
        MessageBody::InstallSnapshot { offset: 0, .. } => slot.snapshot_started(),
        _ => {}
    }
}

/// Transport: a frame of `frame_bytes` that is not a Raft message (a forward) was queued
/// for `peer`.
#[inline]
pub fn peer_bytes_queued(peer: NodeId, frame_bytes: usize) {
    global().peers.slot(peer).add_sent(frame_bytes as u64);
}

/// Transport: a frame with `payload_bytes` that is not a Raft message (a forward, a host
/// beat, or a batch frame's own fields) arrived from `peer`. Counted with its header, like
/// the frames sent.
#[inline]
pub fn peer_bytes_received(peer: NodeId, payload_bytes: usize) {
    let frame_bytes = payload_bytes + crate::wire::frame::HEADER_BYTES;
    global().peers.slot(peer).add_received(frame_bytes as u64);
}

/// Transport: `message` arrived, in `wire_bytes` of a frame (the whole frame, header
/// included, or its share of a batch frame).
#[inline]
pub fn peer_message_received(message: &Message, wire_bytes: usize) {
    let metrics = global();
    let slot = metrics.peers.slot(message.from);
    slot.add_received(wire_bytes as u64);
    match &message.body {
        MessageBody::HeartbeatResponse { .. } => {
            if let Some(rtt) = slot.heartbeat_answered() {
                metrics.peer_round_trip.observe(rtt.as_secs_f64());
            }
        }
        MessageBody::InstallSnapshotResponse { done: true, .. } => {
            if let Some(took) = slot.snapshot_finished() {
                metrics.snapshot_send_duration.observe(took.as_secs_f64());
            }
        }
        _ => {}
    }
}

/// Apply thread: a snapshot was built in `elapsed`.
#[inline]
pub fn snapshot_built(elapsed: Duration) {
    global()
        .snapshot_build_duration
        .observe(elapsed.as_secs_f64());
}

/// Log writer: a received snapshot was installed in `elapsed`.
#[inline]
pub fn snapshot_installed(elapsed: Duration) {
    global()
        .snapshot_install_duration
        .observe(elapsed.as_secs_f64());
}

/// RESP server: a client connection opened.
#[inline]
pub fn kv_connection_opened() {
    global().kv_connections.inc();
}

/// RESP server: a client connection closed.
#[inline]
pub fn kv_connection_closed() {
    global().kv_connections.dec();
}

/// RESP server: a command named `name` (any case) was parsed.
#[inline]
pub fn kv_command(name: &[u8]) {
    global().kv_commands.count(name);
}

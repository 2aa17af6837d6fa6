//! Series read from each node's published [`NodeStatus`] at scrape time: whatever the node
//! already counts costs nothing between scrapes.
//!
//! Several nodes (a future multi-group host) aggregate as the module docs of
//! [`metrics`](super) say: counters and the queue gauge summed, `has_leader` the minimum,
//! `is_leader` summed, `term` the maximum, the index gauges summed. With no node registered
//! every series reads zero (`has_leader` 0), so the families always exist.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, Opts};

use crate::node::NodeStatus;
use crate::raft::Role;

/// Reads one node's latest status from any thread.
pub type StatusSource = Box<dyn Fn() -> NodeStatus + Send + Sync + 'static>;

/// What the scrape computes from every node's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeTotals {
    /// Commit indexes, summed.
    pub committed: u64,
    /// Applied indexes, summed.
    pub applied: u64,
    /// 1 while every node knows a leader (0 with no node).
    pub has_leader: i64,
    /// Nodes that lead.
    pub is_leader: i64,
    /// Highest term.
    pub term: u64,
    /// Committed entries not yet applied, summed.
    pub apply_queue: u64,
    /// Entries the log writers made durable, summed.
    pub wal_entries: u64,
}

impl NodeTotals {
    /// Aggregates `statuses`.
    pub fn of<'a>(statuses: impl IntoIterator<Item = &'a NodeStatus>) -> NodeTotals {
        let mut totals = NodeTotals::default();
        let mut every_has_leader = true;
        let mut any = false;
        for status in statuses {
            any = true;
            totals.committed += status.commit;
            totals.applied += status.applied;
            every_has_leader &= status.leader.is_some();
            totals.is_leader += i64::from(status.role == Role::Leader);
            totals.term = totals.term.max(status.term);
            totals.apply_queue += status.commit.saturating_sub(status.applied);
            totals.wal_entries += status.writer.entries_written;
        }
        totals.has_leader = i64::from(any && every_has_leader);
        totals
    }
}

/// The collector.
pub struct NodeCollector {
    sources: Mutex<Vec<StatusSource>>,
    committed: IntCounter,
    applied: IntCounter,
    has_leader: IntGauge,
    is_leader: IntGauge,
    term: IntGauge,
    commit_index: IntGauge,
    applied_index: IntGauge,
    apply_queue: IntGauge,
    wal_entries: IntCounter,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes = self.sources.lock().map_or(0, |s| s.len());
        f.debug_struct("NodeCollector")
            .field("nodes", &nodes)
            .finish()
    }
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(Opts::new(name, help)).expect("valid metric options")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help)).expect("valid metric options")
}

impl NodeCollector {
    /// A collector with no node yet.
    pub fn new() -> Self {
        NodeCollector {
            sources: Mutex::new(Vec::new()),
            committed: counter(
                "ketch_server_proposals_committed_total",
                "Committed log entries: the commit index, as etcd reports it.",
            ),
            applied: counter(
                "ketch_server_proposals_applied_total",
                "Applied log entries: the applied index, as etcd reports it.",
            ),
            has_leader: gauge(
                "ketch_server_has_leader",
                "1 while this node knows a leader (every group has one), else 0.",
            ),
            is_leader: gauge(
                "ketch_server_is_leader",
                "1 while this node is the leader (groups led here), else 0.",
            ),
            term: gauge(
                "ketch_server_term",
                "Current Raft term (highest of the groups).",
            ),
            commit_index: gauge("ketch_server_commit_index", "Raft commit index."),
            applied_index: gauge(
                "ketch_server_applied_index",
                "Index applied to the state machine.",
            ),
            apply_queue: gauge(
                "ketch_server_apply_queue_entries",
                "Committed entries waiting for the apply thread (commit - applied).",
            ),
            wal_entries: counter(
                "ketch_disk_wal_write_entries_total",
                "Log entries made durable by the log writer.",
            ),
        }
    }

    /// Adds a node whose status the scrape reads.
    pub fn add(&self, source: StatusSource) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    fn refresh(&self, totals: NodeTotals) {
        let as_gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.committed.reset();
        self.committed.inc_by(totals.committed);
        self.applied.reset();
        self.applied.inc_by(totals.applied);
        self.wal_entries.reset();
        self.wal_entries.inc_by(totals.wal_entries);
        self.has_leader.set(totals.has_leader);
        self.is_leader.set(totals.is_leader);
        self.term.set(as_gauge(totals.term));
        self.commit_index.set(as_gauge(totals.committed));
        self.applied_index.set(as_gauge(totals.applied));
        self.apply_queue.set(as_gauge(totals.apply_queue));
    }

    fn parts(&self) -> [&dyn Collector; 9] {
        [
            &self.committed,
            &self.applied,
            &self.has_leader,
            &self.is_leader,
            &self.term,
            &self.commit_index,
            &self.applied_index,
            &self.apply_queue,
            &self.wal_entries,
        ]
    }
}

impl Default for NodeCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for NodeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.parts().into_iter().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Held across the refresh and the read so two scrapes cannot interleave them.
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let statuses: Vec<NodeStatus> = sources.iter().map(|read| read()).collect();
        self.refresh(NodeTotals::of(&statuses));
        self.parts().into_iter().flat_map(|c| c.collect()).collect()
    }
}

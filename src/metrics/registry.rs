//! [`Metrics`]: every metric object of the process and the `prometheus` registry that
//! exports them.
//!
//! # Buckets
//!
//! - fsync ([`FSYNC_BUCKETS_SECONDS`]): 50 µs steps from 50 µs to 1 ms (an NVMe flush takes
//!   tens to hundreds of microseconds, and etcd's own 1 ms lowest bucket would lump them all
//!   together), then doubling from 2 ms to 512 ms, then 1, 2 and 4 s: 32 bounds.
//! - peer round trip ([`RTT_BUCKETS_SECONDS`]): etcd's, doubling from 100 µs, 16 bounds.
//! - snapshot build, send, install ([`SNAPSHOT_BUCKETS_SECONDS`]): doubling from 1 ms to
//!   about 65 s, 17 bounds.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

use super::kv_commands::CommandCounters;
use super::leaders::LeaderWatch;
use super::node_collector::{NodeCollector, StatusSource};
use super::peers::{PeerCollector, PeerTable};

/// Upper bounds of the fsync histogram, in seconds (see the module docs).
pub const FSYNC_BUCKETS_SECONDS: [f64; 32] = [
    0.000_05, 0.000_1, 0.000_15, 0.000_2, 0.000_25, 0.000_3, 0.000_35, 0.000_4, 0.000_45, 0.000_5,
    0.000_55, 0.000_6, 0.000_65, 0.000_7, 0.000_75, 0.000_8, 0.000_85, 0.000_9, 0.000_95, 0.001,
    0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 4.0,
];

/// Upper bounds of the peer round-trip histogram, in seconds.
pub const RTT_BUCKETS_SECONDS: [f64; 16] = [
    0.000_1, 0.000_2, 0.000_4, 0.000_8, 0.001_6, 0.003_2, 0.006_4, 0.012_8, 0.025_6, 0.051_2,
    0.102_4, 0.204_8, 0.409_6, 0.819_2, 1.638_4, 3.276_8,
];

/// Upper bounds of the snapshot duration histograms, in seconds.
pub const SNAPSHOT_BUCKETS_SECONDS: [f64; 17] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384, 32.768, 65.536,
];

/// The content type of [`Metrics::encode`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric of the process. Fields are updated by the hooks in [`super`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    names: Vec<String>,
    pub(super) wal_fsync_duration: Histogram,
    pub(super) wal_write_bytes: IntCounter,
    pub(super) proposals_pending: IntGauge,
    pub(super) proposals_failed: IntCounter,
    pub(super) leader_changes: IntCounter,
    pub(super) leaders: LeaderWatch,
    pub(super) peers: Arc<PeerTable>,
    pub(super) peer_round_trip: Histogram,
    pub(super) snapshot_build_duration: Histogram,
    pub(super) snapshot_send_duration: Histogram,
    pub(super) snapshot_install_duration: Histogram,
    pub(super) kv_connections: IntGauge,
    pub(super) kv_commands: CommandCounters,
    nodes: Arc<NodeCollector>,
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid histogram options")
}

impl Metrics {
    /// A registry holding every metric, all at zero. The process uses one
    /// ([`super::global`]); tests make their own.
    pub fn new() -> Self {
        // Shared by the registry (through a collector) and the hooks.
        let peers = Arc::new(PeerTable::default());
        let nodes = Arc::new(NodeCollector::default());
        let metrics = Metrics {
            registry: Registry::new(),
            names: Vec::new(),
            wal_fsync_duration: histogram(
                "ketch_disk_wal_fsync_duration_seconds",
                "Duration of the log writer's fdatasync calls (one per write round).",
                &FSYNC_BUCKETS_SECONDS,
            ),
            wal_write_bytes: IntCounter::with_opts(Opts::new(
                "ketch_disk_wal_write_bytes_total",
                "Entry and snapshot-chunk bytes written by the log writer.",
            ))
            .expect("valid metric options"),
            proposals_pending: IntGauge::with_opts(Opts::new(
                "ketch_server_proposals_pending",
                "Proposals submitted to this node and not yet answered.",
            ))
            .expect("valid metric options"),
            proposals_failed: IntCounter::with_opts(Opts::new(
                "ketch_server_proposals_failed_total",
                "Proposals answered with an error.",
            ))
            .expect("valid metric options"),
            leader_changes: IntCounter::with_opts(Opts::new(
                "ketch_server_leader_changes_seen_total",
                "Times this node came to know a leader other than the one it last knew.",
            ))
            .expect("valid metric options"),
            leaders: LeaderWatch::default(),
            peers,
            peer_round_trip: histogram(
                "ketch_network_peer_round_trip_time_seconds",
                "Heartbeat round trip: from queuing a heartbeat to a peer to decoding the \
                 peer's response (queueing, network both ways, the peer's event loop).",
                &RTT_BUCKETS_SECONDS,
            ),
            snapshot_build_duration: histogram(
                "ketch_snapshot_build_duration_seconds",
                "Time to write the state machine to a snapshot file.",
                &SNAPSHOT_BUCKETS_SECONDS,
            ),
            snapshot_send_duration: histogram(
                "ketch_snapshot_send_duration_seconds",
                "Time from queuing a snapshot's first chunk to a follower until it reports \
                 the snapshot installed.",
                &SNAPSHOT_BUCKETS_SECONDS,
            ),
            snapshot_install_duration: histogram(
                "ketch_snapshot_install_duration_seconds",
                "Time to verify, sync and install a received snapshot and compact the log.",
                &SNAPSHOT_BUCKETS_SECONDS,
            ),
            kv_connections: IntGauge::with_opts(Opts::new(
                "ketch_kv_client_connections",
                "RESP client connections open.",
            ))
            .expect("valid metric options"),
            kv_commands: CommandCounters::new(),
            nodes,
        };
        metrics.register_all()
    }

    fn register_all(mut self) -> Self {
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(self.wal_fsync_duration.clone()),
            Box::new(self.wal_write_bytes.clone()),
            Box::new(self.proposals_pending.clone()),
            Box::new(self.proposals_failed.clone()),
            Box::new(self.leader_changes.clone()),
            Box::new(self.peer_round_trip.clone()),
            Box::new(self.snapshot_build_duration.clone()),
            Box::new(self.snapshot_send_duration.clone()),
            Box::new(self.snapshot_install_duration.clone()),
            Box::new(self.kv_connections.clone()),
            Box::new(self.kv_commands.family().clone()),
            Box::new(PeerCollector::new(Arc::clone(&self.peers))),
            Box::new(SharedCollector(Arc::clone(&self.nodes))),
        ];
        for collector in collectors {
            self.names.extend(
                collector
                    .desc()
                    .into_iter()
                    .map(|desc| desc.fq_name.clone()),
            );
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
        self.names.sort();
        self
    }

    /// Every metric family name, sorted (histograms without their `_bucket`, `_sum`,
    /// `_count` suffixes).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Adds a node whose status the scrape reads (see [`NodeCollector`]).
    pub fn add_node(&self, source: StatusSource) {
        self.nodes.add(source);
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 << 10);
        // Encoding into a Vec fails only for malformed families, which the registry refuses
        // at registration.
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers a collector the metrics also keep a handle to.
struct SharedCollector<C: Collector + 'static>(Arc<C>);

impl<C: Collector + 'static> Collector for SharedCollector<C> {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_buckets_resolve_50_microseconds_then_double_and_are_increasing() {
        let b = &FSYNC_BUCKETS_SECONDS;
        for pair in b.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?} not increasing");
        }
        for (i, bound) in b[..20].iter().enumerate() {
            let expected = 50e-6 * (i + 1) as f64;
            assert!((bound - expected).abs() < 1e-12, "bucket {i}: {bound}");
        }
        // 1 ms to 512 ms, doubling.
        for pair in b[19..29].windows(2) {
            assert!(
                (pair[1] / pair[0] - 2.0).abs() < 1e-9,
                "{pair:?} does not double"
            );
        }
        assert_eq!(b[28], 0.512);
        assert_eq!(b[29..], [1.0, 2.0, 4.0]);
    }

    #[test]
    fn rtt_and_snapshot_buckets_double() {
        for buckets in [&RTT_BUCKETS_SECONDS[..], &SNAPSHOT_BUCKETS_SECONDS[..]] {
            for pair in buckets.windows(2) {
                assert!((pair[1] / pair[0] - 2.0).abs() < 1e-9, "{pair:?}");
            }
        }
    }

    #[test]
    fn an_observation_lands_in_its_bucket_and_every_higher_one() {
        let metrics = Metrics::new();
        metrics.wal_fsync_duration.observe(0.000_12);
        metrics.wal_fsync_duration.observe(0.003);
        let text = String::from_utf8(metrics.encode()).unwrap();
        let line = |le: &str| {
            let prefix = format!("ketch_disk_wal_fsync_duration_seconds_bucket{{le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"))
                .to_string()
        };
        assert_eq!(line("0.0001"), "0");
        assert_eq!(line("0.00015"), "1");
        assert_eq!(line("0.002"), "1");
        assert_eq!(line("0.004"), "2");
        assert_eq!(line("+Inf"), "2");
        assert!(text.contains("ketch_disk_wal_fsync_duration_seconds_count 2"));
    }

    #[test]
    fn the_registry_exports_every_fixed_name_with_no_node_and_no_traffic() {
        let metrics = Metrics::new();
        let text = String::from_utf8(metrics.encode()).unwrap();
        for name in [
            "ketch_disk_wal_fsync_duration_seconds",
            "ketch_server_proposals_committed_total",
            "ketch_server_has_leader",
            "ketch_server_leader_changes_seen_total",
        ] {
            assert!(
                metrics.names().iter().any(|n| n == name),
                "{name} not registered"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} not exported:\n{text}"
            );
        }
        assert!(text.contains("ketch_server_has_leader 0"));
        assert!(metrics
            .names()
            .iter()
            .any(|n| n == "ketch_network_peer_sent_bytes_total"));
    }

    #[test]
    fn hooks_move_the_series_they_name() {
        let metrics = Metrics::new();
        assert!(metrics.leaders.observe(1, Some(2)));
        metrics.peers.slot(2).add_sent(100);
        metrics.peers.slot(3).add_received(40);
        metrics.kv_commands.count(b"GET");
        let text = String::from_utf8(metrics.encode()).unwrap();
        assert!(
            text.contains("ketch_network_peer_sent_bytes_total{To=\"2\"} 100"),
            "{text}"
        );
        assert!(
            text.contains("ketch_network_peer_received_bytes_total{From=\"3\"} 40"),
            "{text}"
        );
        assert!(
            text.contains("ketch_kv_commands_total{cmd=\"get\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ketch_kv_commands_total{cmd=\"other\"} 0"),
            "{text}"
        );
    }
}

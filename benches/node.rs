//! The node runtime end to end: a 3-node cluster on loopback TCP with real data directories
//! (all three share this machine's disk and cores), proposals through `Node::propose`.
//!
//! - `node/commit_latency`: one proposer, one proposal at a time; a separate run of
//!   `LATENCY_SAMPLES` proposals prints p50, p99, p99.9 and max, because criterion reports means.
//! - `node/throughput/{1,16,256}`: that many threads proposing 256 B commands concurrently;
//!   criterion reports commits per second.
//! - `node/pipelined/256`: 256 proposals in flight from 4 threads through `Node::submit`.
//! - `node_tmpfs/*`: the same cluster with its data directories on tmpfs (`/dev/shm`), where
//!   fdatasync costs nothing: the runtime's own cost, without the disk.
//!
//! After each group the leader's fsyncs per committed entry are printed (one fsync per round
//! of the log writer; below 1.0 means rounds batch several entries).
//!
//! Run: `cargo bench --bench node` (add `-- throughput` to filter).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ketch::node::{Node, NodeConfig, ProposeError, StateMachine};
use ketch::raft::Role;

const PAYLOAD_BYTES: usize = 256;
const LATENCY_SAMPLES: usize = 10_000;
const PIPELINE_THREADS: u64 = 4;
const PIPELINE_DEPTH: usize = 64;

/// Counts commands; the cheapest state machine, so the figures are the runtime's.
#[derive(Default)]
struct Counter {
    applied: u64,
}

impl StateMachine for Counter {
    fn apply(&mut self, _index: u64, _command: &[u8]) -> Vec<u8> {
        self.applied += 1;
        Vec::new()
    }

    fn query(&mut self, _query: &[u8]) -> Vec<u8> {
        self.applied.to_le_bytes().to_vec()
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(&self.applied.to_le_bytes())
    }

    fn restore(&mut self, input: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = [0u8; 8];
        input.read_exact(&mut bytes)?;
        self.applied = u64::from_le_bytes(bytes);
        Ok(())
    }
}

struct Cluster {
    nodes: Vec<Arc<Node>>,
    /// Index in `nodes` of the node believed to lead; follows `NotLeader` hints, because a
    /// loaded shared machine can delay heartbeats enough for an election.
    leader: AtomicUsize,
    /// Proposals whose outcome is unknown (timeout, leader lost): counted, not retried.
    unknown_outcomes: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a cluster with its data directories under `parent` (the system temp dir if none)
    /// and commits 200 proposals.
    fn start(parent: Option<&Path>) -> Cluster {
        let dir = match parent {
            Some(parent) => tempfile::tempdir_in(parent),
            None => tempfile::tempdir(),
        }
        .expect("temp dir");
        let listeners: Vec<_> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let addrs: BTreeMap<u64, _> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u64 + 1, l.local_addr().expect("addr")))
            .collect();
        drop(listeners);
        let nodes: Vec<Arc<Node>> = addrs
            .keys()
            .map(|id| {
                let mut config = NodeConfig::new(*id, 1, addrs.clone(), addrs[id]);
                config.raft.max_uncommitted_bytes = 256 << 20;
                Arc::new(
                    Node::start(config, dir.path().join(id.to_string()), Counter::default())
                        .expect("node starts"),
                )
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let leader = loop {
            if let Some(leader) = nodes.iter().position(|n| n.status().role == Role::Leader) {
                break leader;
            }
            assert!(Instant::now() < deadline, "no leader elected");
            std::thread::sleep(Duration::from_millis(10));
        };
        let cluster = Cluster {
            nodes,
            leader: AtomicUsize::new(leader),
            unknown_outcomes: AtomicU64::new(0),
            _dir: dir,
        };
        // Warm up: connections, allocations, the first segment's page cache.
        for _ in 0..200 {
            cluster.propose();
        }
        cluster
    }

    fn leader(&self) -> &Node {
        &self.nodes[self.leader.load(Ordering::Relaxed)]
    }

    fn propose(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // Bounded by the deadline: retries only refusals that certainly did not apply.
        while Instant::now() < deadline {
            match self.leader().propose(vec![7u8; PAYLOAD_BYTES]) {
                Ok(_) => return,
                Err(ProposeError::Backpressure) => std::thread::yield_now(),
                Err(ProposeError::NotLeader { leader_hint }) => {
                    match leader_hint.and_then(|id| self.nodes.iter().position(|n| n.id() == id)) {
                        Some(i) => self.leader.store(i, Ordering::Relaxed),
                        None => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                Err(ProposeError::Timeout | ProposeError::LeaderLost) => {
                    self.unknown_outcomes.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => panic!("proposal failed: {e}"),
            }
        }
        panic!("no proposal accepted for 30 s");
    }

    /// Proposes `count` commands keeping `PIPELINE_DEPTH` in flight; refusals and unknown
    /// outcomes are counted, not retried (the leader is stable in this benchmark).
    fn pipeline(&self, count: u64) {
        let mut in_flight = std::collections::VecDeque::with_capacity(PIPELINE_DEPTH);
        for _ in 0..count {
            if in_flight.len() == PIPELINE_DEPTH {
                self.settle(in_flight.pop_front());
            }
            in_flight.push_back(self.leader().submit(vec![7u8; PAYLOAD_BYTES]));
        }
        for proposal in in_flight {
            self.settle(Some(proposal));
        }
    }

    fn settle(&self, proposal: Option<ketch::node::Proposal>) {
        if let Some(Err(_)) = proposal.map(|p| p.wait()) {
            self.unknown_outcomes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fsync_ratio(&self, since: (u64, u64)) -> f64 {
        let writer = self.leader().status().writer;
        let fsyncs = writer.fsyncs.saturating_sub(since.0);
        let entries = writer.entries_written.saturating_sub(since.1);
        fsyncs as f64 / entries.max(1) as f64
    }

    fn counters(&self) -> (u64, u64) {
        let writer = self.leader().status().writer;
        (writer.fsyncs, writer.entries_written)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Prints p50 / p99 / p99.9 / max of `LATENCY_SAMPLES` sequential proposals (criterion reports
/// means). With `KETCH_LATENCY_OUT=PREFIX` set, also writes the distribution to
/// `PREFIX-{group_name}.csv` (`percentile,latency_us` at the points of an HDR percentile plot),
/// which `benches/compare/latency_plot.py` draws.
fn print_latency_percentiles(group_name: &str, cluster: &Cluster) {
    let since = cluster.counters();
    let mut samples: Vec<Duration> = (0..LATENCY_SAMPLES)
        .map(|_| {
            let start = Instant::now();
            cluster.propose();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let (p50, p99, p999) = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
    );
    println!(
        "{group_name}/commit_latency: {LATENCY_SAMPLES} sequential {PAYLOAD_BYTES} B proposals: \
         p50 {p50:?}, p99 {p99:?} ({:.2}x p50), p99.9 {p999:?} ({:.2}x p50), max {:?}; leader \
         fsyncs per entry {:.3}",
        p99.as_secs_f64() / p50.as_secs_f64(),
        p999.as_secs_f64() / p50.as_secs_f64(),
        samples[samples.len() - 1],
        cluster.fsync_ratio(since),
    );
    if let Some(prefix) = std::env::var_os("KETCH_LATENCY_OUT") {
        let path = format!("{}-{group_name}.csv", prefix.to_string_lossy());
        let mut csv = String::from("percentile,latency_us\n");
        // 1 - 1/2^k: 0, 50, 75, 87.5, ... up to the sample count's resolution, then the max.
        let mut tail = 1.0f64;
        while tail * samples.len() as f64 >= 1.0 {
            let q = 1.0 - tail;
            csv.push_str(&format!(
                "{:.6},{:.1}\n",
                q * 100.0,
                percentile(&samples, q).as_secs_f64() * 1e6
            ));
            tail /= 2.0;
        }
        let max = samples[samples.len() - 1].as_secs_f64() * 1e6;
        csv.push_str(&format!("100,{max:.1}\n"));
        std::fs::write(&path, csv).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        println!("{group_name}/commit_latency: distribution written to {path}");
    }
}

/// `proposers` threads each proposing one command at a time.
fn bench_throughput(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    group_name: &str,
    cluster: &Cluster,
    proposers: usize,
) {
    let since = cluster.counters();
    group.throughput(Throughput::Elements(1));
    group.bench_with_input(
        BenchmarkId::new("throughput", proposers),
        &proposers,
        |b, &proposers| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(proposers as u64);
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for _ in 0..proposers {
                        scope.spawn(|| {
                            for _ in 0..per_thread {
                                cluster.propose();
                            }
                        });
                    }
                });
                // Normalise to `iters` proposals (rounding up per thread adds a few).
                let done = per_thread * proposers as u64;
                start.elapsed().mul_f64(iters as f64 / done as f64)
            });
        },
    );
    println!(
        "{group_name}/throughput/{proposers}: leader fsyncs per committed entry {:.3}",
        cluster.fsync_ratio(since)
    );
}

fn shut_down(cluster: Cluster) {
    println!(
        "proposals refused or with unknown outcome (timeout, leader change): {}",
        cluster.unknown_outcomes.load(Ordering::Relaxed)
    );
    for node in cluster.nodes {
        if let Ok(node) = Arc::try_unwrap(node) {
            node.shutdown().expect("clean shutdown");
        }
    }
}

fn bench_node(c: &mut Criterion) {
    let cluster = Cluster::start(None);
    print_latency_percentiles("node", &cluster);

    let mut group = c.benchmark_group("node");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("commit_latency", |b| b.iter(|| cluster.propose()));
    for proposers in [1usize, 16, 256] {
        bench_throughput(&mut group, "node", &cluster, proposers);
    }
    // 256 proposals in flight from 4 threads (64 each) through `Node::submit`: the same
    // concurrency as 256 blocking proposers without 256 threads' context switches.
    let since = cluster.counters();
    group.bench_function("pipelined/256", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(PIPELINE_THREADS);
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..PIPELINE_THREADS {
                    scope.spawn(|| cluster.pipeline(per_thread));
                }
            });
            start
                .elapsed()
                .mul_f64(iters as f64 / (per_thread * PIPELINE_THREADS) as f64)
        });
    });
    println!(
        "node/pipelined/256: leader fsyncs per committed entry {:.3}",
        cluster.fsync_ratio(since)
    );
    group.finish();
    shut_down(cluster);
}

/// The same cluster with its logs in memory (tmpfs, where fdatasync costs nothing): what the
/// runtime costs without the disk. The difference to `node/*` is the disk's share; see
/// `device/quorum_fdatasync_4096/2_of_3` in `benches/wal.rs` for that share measured alone.
fn bench_node_tmpfs(c: &mut Criterion) {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        println!("node_tmpfs: skipped, no /dev/shm");
        return;
    }
    let cluster = Cluster::start(Some(shm));
    print_latency_percentiles("node_tmpfs", &cluster);
    let mut group = c.benchmark_group("node_tmpfs");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("commit_latency", |b| b.iter(|| cluster.propose()));
    bench_throughput(&mut group, "node_tmpfs", &cluster, 256);
    group.finish();
    shut_down(cluster);
}

criterion_group!(benches, bench_node, bench_node_tmpfs);
criterion_main!(benches);

//! Raft core throughput: proposals committed per second in an in-memory 3-node cluster with
//! instant delivery and instant persistence, so the figure is the cost of the protocol logic
//! alone (message handling, progress tracking, commit computation, Ready assembly, copies).
//!
//! Each measured batch proposes `BATCH` entries at the leader and pumps messages and
//! completions until the leader has committed and applied all of them.
//! The driver snapshots (metadata only) every `SNAPSHOT_THRESHOLD` entries so memory stays
//! bounded over millions of proposals.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ketch::raft::{Config, Core, DurableState, Membership, Message, NodeId, Role, SnapshotMeta};

const BATCH: u64 = 1000;
const SNAPSHOT_THRESHOLD: u64 = 20_000;

struct Cluster {
    nodes: Vec<Core>,
    queue: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Self {
        let membership = Membership::with_voters([1, 2, 3]);
        let nodes = (1..=3)
            .map(|id| {
                let mut config = Config::new(id);
                config.seed = 7;
                config.snapshot_threshold_entries = SNAPSHOT_THRESHOLD;
                config.max_uncommitted_bytes = 1 << 30;
                let state = DurableState {
                    snapshot: SnapshotMeta {
                        membership: membership.clone(),
                        ..SnapshotMeta::default()
                    },
                    ..DurableState::default()
                };
                Core::new(config, state).expect("valid config")
            })
            .collect();
        let mut cluster = Self {
            nodes,
            queue: VecDeque::new(),
        };
        for _ in 0..100 {
            for i in 0..3 {
                cluster.nodes[i].tick();
            }
            cluster.pump();
            if cluster.leader().is_some() {
                return cluster;
            }
        }
        panic!("no leader elected");
    }

    fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.role() == Role::Leader)
    }

    fn index_of(id: NodeId) -> usize {
        (id - 1) as usize
    }

    /// Processes readies and delivers messages until quiet; persistence is instant.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            for i in 0..self.nodes.len() {
                let node = &mut self.nodes[i];
                while node.has_ready() {
                    progressed = true;
                    let ready = node.ready();
                    self.queue.extend(ready.messages);
                    self.queue.extend(ready.persisted_messages);
                    if let Some(last) = ready.entries.last() {
                        node.on_persisted(last.index, last.term);
                    }
                    if let Some(last) = ready.committed_entries.last() {
                        node.on_applied(last.index);
                    }
                    if let Some(request) = ready.snapshot_request {
                        node.on_snapshot_built(SnapshotMeta {
                            index: request.index,
                            term: request.term,
                            membership: request.membership,
                            size_bytes: 0,
                        });
                    }
                }
            }
            while let Some(message) = self.queue.pop_front() {
                progressed = true;
                let to = Self::index_of(message.to);
                self.nodes[to].step(message);
            }
            if !progressed {
                return;
            }
        }
    }

    fn propose_batch(&mut self, payload: &[u8]) {
        let leader = self.leader().expect("stable leader");
        let mut last = 0;
        for _ in 0..BATCH {
            last = self.nodes[leader]
                .propose(payload.to_vec())
                .expect("leader accepts");
        }
        self.pump();
        // Followers learn this commit index with the next append or heartbeat.
        assert!(self.nodes[leader].log().commit() >= last, "batch committed");
        assert!(
            self.nodes[leader].log().applied() >= last,
            "batch applied at the leader"
        );
    }
}

fn bench_propose(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_core_commit");
    group.throughput(Throughput::Elements(BATCH));
    for payload_bytes in [16usize, 1024] {
        let payload = vec![0xABu8; payload_bytes];
        group.bench_with_input(
            BenchmarkId::new("payload_bytes", payload_bytes),
            &payload,
            |b, payload| {
                let mut cluster = Cluster::new();
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let start = Instant::now();
                        cluster.propose_batch(payload);
                        total += start.elapsed();
                    }
                    total
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_propose);
criterion_main!(benches);

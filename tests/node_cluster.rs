//! Three-node clusters in one process over loopback TCP with real data directories.
//!
//! Each test arms a watchdog that aborts the process with a message if the test runs past its
//! bound, so a hang fails loudly instead of blocking CI. Reproduce one with
//! `cargo test --test node_cluster <name> -- --nocapture`.

#[path = "harness/ports.rs"]
mod ports;
#[path = "harness/seeded.rs"]
mod seeded;
#[path = "harness/watchdog.rs"]
mod watchdog;
use seeded::{env_u64, next_random};
use watchdog::watchdog;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketch::node::{ChangeError, Node, NodeConfig, ProposeError, ReadError, StateMachine};
use ketch::raft::{ConfChange, Membership, Role};
use ketch_storage::FaultInjector;

/// The state machine under test: the sequence of applied u64 values, in order.
#[derive(Default)]
struct Sequence {
    values: Vec<u64>,
}

impl StateMachine for Sequence {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let value = u64::from_le_bytes(command.try_into().expect("8-byte command"));
        self.values.push(value);
        (self.values.len() as u64).to_le_bytes().to_vec()
    }

    fn query(&mut self, _query: &[u8]) -> Vec<u8> {
        self.values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        for v in &self.values {
            out.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }

    fn restore(&mut self, input: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        self.values = decode(&bytes);
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

struct Cluster {
    addrs: BTreeMap<u64, SocketAddr>,
    dirs: BTreeMap<u64, PathBuf>,
    nodes: BTreeMap<u64, Arc<Node>>,
    /// Each node's WAL fault injector (disarmed unless a test arms it).
    faults: BTreeMap<u64, Arc<FaultInjector>>,
    _root: tempfile::TempDir,
    snapshot_threshold_entries: u64,
    /// Every node's propose and read timeout.
    client_timeout: Duration,
    /// Every node's leader disk-stall bound (`None`: `NodeConfig`'s default).
    disk_stall_timeout: Option<Duration>,
    /// Every node's base election timeout in ticks (`None`: `NodeConfig`'s default).
    election_timeout_ticks: Option<u32>,
}

impl Cluster {
    fn new(size: u64, snapshot_threshold_entries: u64) -> Cluster {
        Cluster::with_client_timeout(size, snapshot_threshold_entries, Duration::from_secs(3))
    }

    fn with_client_timeout(
        size: u64,
        snapshot_threshold_entries: u64,
        client_timeout: Duration,
    ) -> Cluster {
        Cluster::with_timeouts(size, snapshot_threshold_entries, client_timeout, None, None)
    }

    fn with_timeouts(
        size: u64,
        snapshot_threshold_entries: u64,
        client_timeout: Duration,
        disk_stall_timeout: Option<Duration>,
        election_timeout_ticks: Option<u32>,
    ) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let addrs = ports::node_addrs(size);
        let dirs = addrs
            .keys()
            .map(|id| (*id, root.path().join(format!("node-{id}"))))
            .collect();
        let mut cluster = Cluster {
            addrs,
            dirs,
            nodes: BTreeMap::new(),
            faults: BTreeMap::new(),
            _root: root,
            snapshot_threshold_entries,
            client_timeout,
            disk_stall_timeout,
            election_timeout_ticks,
        };
        for id in 1..=size {
            cluster.start(id);
        }
        cluster
    }

    fn start(&mut self, id: u64) {
        let mut config = NodeConfig::new(id, 7, self.addrs.clone(), self.addrs[&id]);
        config.raft.snapshot_threshold_entries = self.snapshot_threshold_entries;
        config.propose_timeout = self.client_timeout;
        config.read_timeout = self.client_timeout;
        if let Some(bound) = self.disk_stall_timeout {
            config.disk_stall_timeout = bound;
        }
        if let Some(ticks) = self.election_timeout_ticks {
            config.raft.election_timeout_ticks = ticks;
        }
        let faults = Arc::new(FaultInjector::default());
        config.wal.fault_injector = Some(Arc::clone(&faults));
        self.faults.insert(id, faults);
        let dir: &Path = &self.dirs[&id];
        // The port may still be held by the node just shut down: retry briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        let node = loop {
            match Node::start(config.clone(), dir, Sequence::default()) {
                Ok(node) => break node,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("start of node {id} failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("node {id} does not start: {e}"),
            }
        };
        self.nodes.insert(id, Arc::new(node));
    }

    /// Reserves an address and a data directory for node `id`, to start later with
    /// `start_joining`.
    fn reserve(&mut self, id: u64) -> SocketAddr {
        let addr = ports::free_addr();
        self.addrs.insert(id, addr);
        let dir = self._root.path().join(format!("node-{id}"));
        self.dirs.insert(id, dir);
        addr
    }

    /// Starts reserved node `id` joining the running cluster (empty configuration), knowing
    /// only the peer addresses of `contacts`.
    fn start_joining(&mut self, id: u64, contacts: &[u64]) {
        let mut peers: BTreeMap<u64, SocketAddr> =
            contacts.iter().map(|c| (*c, self.addrs[c])).collect();
        peers.insert(id, self.addrs[&id]);
        let mut config = NodeConfig::new(id, 7, peers, self.addrs[&id]);
        config.raft.snapshot_threshold_entries = self.snapshot_threshold_entries;
        config.propose_timeout = self.client_timeout;
        config.read_timeout = self.client_timeout;
        config.join = true;
        let node = Node::start(config, &self.dirs[&id], Sequence::default())
            .unwrap_or_else(|e| panic!("joining node {id} does not start: {e}"));
        self.nodes.insert(id, Arc::new(node));
    }

    /// Runs a membership change on node `on` and waits for its answer.
    fn change(
        &self,
        on: u64,
        change: ConfChange,
        peer_addr: Option<SocketAddr>,
    ) -> Result<(), ChangeError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.nodes[&on].change_membership(change, peer_addr, move |result| {
            let _ = tx.send(result);
        });
        rx.recv_timeout(self.client_timeout + Duration::from_secs(5))
            .expect("a change is answered within its timeout")
    }

    /// Runs `change` at the leader until it is answered `Ok` or the leader's committed
    /// configuration is `expected` (a `Timeout` or `LeaderLost` answer may have been applied),
    /// retrying every other answer (not the leader; refused while a learner catches up or the
    /// previous change finishes). An `Ok` must leave `expected` in force and committed at
    /// the leader that answered. Returns that leader.
    fn change_at_leader(
        &self,
        change: ConfChange,
        peer_addr: Option<SocketAddr>,
        expected: &Membership,
    ) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = self.leader(Duration::from_secs(10));
            let status = self.nodes[&leader].status();
            if status.committed_membership == *expected && status.membership == *expected {
                return leader;
            }
            match self.change(leader, change.clone(), peer_addr) {
                Ok(()) => {
                    let status = self.nodes[&leader].status();
                    assert_eq!(status.membership, *expected, "{change:?} answered Ok");
                    assert_eq!(status.committed_membership, *expected, "{change:?}");
                    return leader;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("{change:?}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{change:?} failed: {e}"),
            }
        }
    }

    fn stop(&mut self, id: u64) {
        let node = unwrap_node(self.nodes.remove(&id).expect("node running"));
        node.shutdown()
            .unwrap_or_else(|e| panic!("node {id} shut down with errors: {e}"));
    }

    /// Every node but `id`, e.g. the majority left when it is cut off or its disk fails.
    fn nodes_except(&self, id: u64) -> BTreeMap<u64, Arc<Node>> {
        self.nodes
            .iter()
            .filter(|(other, _)| **other != id)
            .map(|(other, n)| (*other, Arc::clone(n)))
            .collect()
    }

    fn leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let leaders: Vec<u64> = self
                .nodes
                .values()
                .map(|n| n.status())
                .filter(|s| s.role == Role::Leader)
                .map(|s| s.id)
                .collect();
            if leaders.len() == 1 {
                return leaders[0];
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let statuses: Vec<_> = self
            .nodes
            .values()
            .map(|n| {
                let s = n.status();
                (s.id, s.role, s.term, s.leader, s.connected_peers)
            })
            .collect();
        panic!("no single leader within {timeout:?}: {statuses:?}");
    }

    /// Proposes `value` at whichever node leads, retrying refusals that certainly did not
    /// apply; returns whether it was acknowledged.
    fn propose(&self, value: u64, timeout: Duration) -> bool {
        propose_on(&self.nodes, value, timeout)
    }

    fn read_all(&self, id: u64) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.nodes[&id].read(Vec::new()) {
                Ok(bytes) => return decode(&bytes),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("read on node {id} keeps failing: {e}"),
            }
        }
    }

    fn shutdown_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
    }
}

fn propose_on(nodes: &BTreeMap<u64, Arc<Node>>, value: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut target = *nodes.keys().next().unwrap();
    while Instant::now() < deadline {
        let Some(node) = nodes.get(&target) else {
            target = *nodes.keys().next().unwrap();
            continue;
        };
        match node.propose(value.to_le_bytes().to_vec()) {
            Ok(_) => return true,
            Err(ProposeError::NotLeader { leader_hint }) => {
                target = leader_hint
                    .filter(|h| nodes.contains_key(h))
                    .unwrap_or_else(|| next_id(nodes, target));
                if leader_hint.is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Err(ProposeError::Backpressure) => std::thread::sleep(Duration::from_millis(1)),
            // Unknown outcome: never retry (a retry could apply the value twice); not acked.
            Err(_) => return false,
        }
    }
    false
}

fn next_id(nodes: &BTreeMap<u64, Arc<Node>>, after: u64) -> u64 {
    nodes
        .keys()
        .copied()
        .find(|id| *id > after)
        .unwrap_or_else(|| *nodes.keys().next().unwrap())
}

/// Takes sole ownership of a node whose clones clients may still hold for one request.
fn unwrap_node(mut node: Arc<Node>) -> Node {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Arc::try_unwrap(node) {
            Ok(node) => return node,
            Err(shared) if Instant::now() < deadline => {
                node = shared;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => panic!("a client holds a node for more than 10 s"),
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

#[test]
fn three_nodes_replicate_and_a_restarted_follower_catches_up_through_a_snapshot() {
    let done = watchdog("three_nodes_replicate", Duration::from_secs(120));
    let mut cluster = Cluster::new(3, 200);
    let leader = cluster.leader(Duration::from_secs(10));
    for value in 0..1000u64 {
        assert!(
            cluster.propose(value, Duration::from_secs(5)),
            "proposal {value} not acknowledged"
        );
    }
    let expected: Vec<u64> = (0..1000).collect();
    for id in 1..=3 {
        assert_eq!(cluster.read_all(id), expected, "node {id} diverges");
    }
    let status = cluster.nodes[&leader].status();
    assert!(status.writer.fsyncs > 0);
    assert!(status.writer.entries_written >= 1000);

    let follower = if leader == 1 { 2 } else { 1 };
    cluster.stop(follower);
    for value in 1000..1600u64 {
        assert!(
            cluster.propose(value, Duration::from_secs(5)),
            "proposal {value} not acknowledged with one follower down"
        );
    }
    cluster.start(follower);
    let expected: Vec<u64> = (0..1600).collect();
    wait_until(
        "the restarted follower applies everything",
        Duration::from_secs(20),
        || cluster.nodes[&follower].status().applied >= cluster.nodes[&leader].status().commit,
    );
    assert_eq!(cluster.read_all(follower), expected);
    // 600 entries missed against a threshold of 200: the leader compacted past the
    // follower's log, so catching up must have gone through InstallSnapshot.
    let stats = cluster.nodes[&follower].status().raft_stats;
    assert!(
        stats.snapshots_installed >= 1,
        "follower {follower} caught up without a snapshot: {stats:?}"
    );
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn leader_failover_under_load_loses_no_acknowledged_proposal_and_a_full_restart_keeps_them() {
    let done = watchdog("leader_failover", Duration::from_secs(120));
    let mut cluster = Cluster::new(3, 100_000);
    let old_leader = cluster.leader(Duration::from_secs(10));
    let nodes = Arc::new(Mutex::new(std::mem::take(&mut cluster.nodes)));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (nodes, acked, stop, next) = (
                Arc::clone(&nodes),
                Arc::clone(&acked),
                Arc::clone(&stop),
                Arc::clone(&next),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let value = next.fetch_add(1, Ordering::Relaxed);
                    // A copy of the map: the lock is held only to look nodes up, so the
                    // four clients' proposals overlap.
                    let current = nodes.lock().unwrap().clone();
                    let ok = propose_on(&current, value, Duration::from_millis(500));
                    drop(current);
                    if ok {
                        acked.lock().unwrap().insert(value);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let old = unwrap_node(nodes.lock().unwrap().remove(&old_leader).unwrap());
    old.shutdown().expect("old leader shuts down cleanly");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    for client in clients {
        client.join().unwrap();
    }
    cluster.nodes = Arc::try_unwrap(nodes)
        .unwrap_or_else(|_| panic!("clients are done but the node map is still shared"))
        .into_inner()
        .unwrap();
    let new_leader = cluster.leader(Duration::from_secs(10));
    assert_ne!(new_leader, old_leader);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too few acknowledged proposals: {}",
        acked.len()
    );
    let survivors: Vec<u64> = cluster.nodes.keys().copied().collect();
    for id in &survivors {
        let state: BTreeSet<u64> = cluster.read_all(*id).into_iter().collect();
        let lost: Vec<_> = acked.difference(&state).take(10).collect();
        assert!(
            lost.is_empty(),
            "node {id} lost acknowledged values {lost:?}"
        );
    }
    cluster.shutdown_all();
    for id in 1..=3 {
        cluster.start(id);
    }
    cluster.leader(Duration::from_secs(10));
    let reference = cluster.read_all(1);
    let state: BTreeSet<u64> = reference.iter().copied().collect();
    assert_eq!(state.len(), reference.len(), "a value applied twice");
    let lost: Vec<_> = acked.difference(&state).take(10).collect();
    assert!(lost.is_empty(), "after a full restart, lost {lost:?}");
    for id in 2..=3 {
        assert_eq!(
            cluster.read_all(id),
            reference,
            "node {id} diverges after restart"
        );
    }
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn a_foreign_cluster_is_refused_at_the_handshake() {
    let done = watchdog("foreign_cluster", Duration::from_secs(60));
    let mut cluster = Cluster::new(3, 100_000);
    cluster.leader(Duration::from_secs(10));
    // A node claiming id 3 of another cluster dials everyone.
    let dir = tempfile::tempdir().unwrap();
    let mut addrs = cluster.addrs.clone();
    let own = ports::free_addr();
    addrs.insert(3, own);
    let stranger = Node::start(
        NodeConfig::new(3, 999, addrs, own),
        dir.path(),
        Sequence::default(),
    )
    .unwrap();
    wait_until("a refused handshake", Duration::from_secs(10), || {
        [1, 2]
            .iter()
            .map(|id| cluster.nodes[id].status().transport.handshakes_refused)
            .sum::<u64>()
            > 0
    });
    stranger.shutdown().unwrap();
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn a_leader_whose_fsync_fails_stops_participating_and_recovers_after_restart() {
    let done = watchdog("fsync_failure", Duration::from_secs(120));
    let mut cluster = Cluster::new(3, 100_000);
    let leader = cluster.leader(Duration::from_secs(10));
    for value in 0..100u64 {
        assert!(cluster.propose(value, Duration::from_secs(5)));
    }
    cluster.faults[&leader].fail_sync_after(0);
    // The failing proposal's outcome is unknown: it may commit through the other two nodes.
    let _ = cluster.nodes[&leader].propose(100u64.to_le_bytes().to_vec());
    wait_until(
        "the leader records its disk error",
        Duration::from_secs(10),
        || {
            let status = cluster.nodes[&leader].status();
            !status.participating && status.last_error.is_some()
        },
    );
    let error = cluster.nodes[&leader].status().last_error.unwrap();
    assert!(error.contains("sync"), "unexpected error: {error}");
    // It neither votes nor acknowledges: the other two elect a leader among themselves.
    let others = cluster.nodes_except(leader);
    // A proposal forwarded to the failed leader just before the survivors elect a new one is
    // answered "may have been applied" (the forward's fate is unknown), so a few values may
    // go unacknowledged; the survivors must still commit nearly all of them.
    let acked: Vec<u64> = (101..200u64)
        .filter(|value| propose_on(&others, *value, Duration::from_secs(10)))
        .collect();
    assert!(
        acked.len() >= 90,
        "only {} of 99 proposals acknowledged by the two healthy nodes",
        acked.len()
    );
    drop(others);
    assert!(matches!(
        cluster.nodes[&leader].propose(vec![0; 8]),
        Err(ProposeError::Stopped { .. })
    ));
    let failed = unwrap_node(cluster.nodes.remove(&leader).unwrap());
    let shutdown = failed.shutdown();
    assert!(
        shutdown
            .as_ref()
            .is_err_and(|e| e.to_string().contains("writer")),
        "shutdown must report the writer's error: {shutdown:?}"
    );
    // "Space freed": restart without the fault; the node catches up.
    cluster.start(leader);
    let survivor = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let reference = cluster.read_all(survivor);
    for value in (0..100u64).chain(acked) {
        assert!(reference.contains(&value), "acknowledged {value} lost");
    }
    wait_until(
        "the restarted node catches up",
        Duration::from_secs(20),
        || cluster.nodes[&leader].status().applied >= cluster.nodes[&survivor].status().commit,
    );
    assert_eq!(cluster.read_all(leader), reference);
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn garbage_on_the_peer_port_closes_that_connection_and_the_cluster_carries_on() {
    let done = watchdog("garbage_input", Duration::from_secs(60));
    let mut cluster = Cluster::new(3, 100_000);
    let leader = cluster.leader(Duration::from_secs(10));
    let target = if leader == 1 { 2 } else { 1 };
    // Not a frame at all: bad magic.
    let mut raw = std::net::TcpStream::connect(cluster.addrs[&target]).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    // A valid handshake followed by a frame with a corrupted checksum.
    let mut raw2 = std::net::TcpStream::connect(cluster.addrs[&target]).unwrap();
    let mut bytes = Vec::new();
    ketch::wire::message::encode_handshake(
        &ketch::wire::message::Handshake::unauthenticated(7, leader, target),
        &mut bytes,
    )
    .unwrap();
    let start = bytes.len();
    ketch::wire::frame::encode_frame(
        ketch::wire::message::FRAME_KIND_RAFT,
        &[1, 2, 3],
        &mut bytes,
    )
    .unwrap();
    bytes[start + 8] ^= 0xff;
    raw2.write_all(&bytes).unwrap();
    wait_until(
        "both connections counted and closed",
        Duration::from_secs(10),
        || {
            let t = cluster.nodes[&target].status().transport;
            t.handshakes_refused + t.malformed_closed >= 2
        },
    );
    for value in 0..50u64 {
        assert!(cluster.propose(value, Duration::from_secs(5)));
    }
    assert_eq!(cluster.read_all(target), (0..50).collect::<Vec<u64>>());
    drop((raw, raw2));
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn five_nodes_commit_with_two_down_and_the_two_catch_up() {
    let done = watchdog("five_nodes", Duration::from_secs(120));
    let mut cluster = Cluster::new(5, 100_000);
    let leader = cluster.leader(Duration::from_secs(10));
    for value in 0..200u64 {
        assert!(cluster.propose(value, Duration::from_secs(5)));
    }
    let down: Vec<u64> = (1..=5).filter(|id| *id != leader).take(2).collect();
    for id in &down {
        cluster.stop(*id);
    }
    for value in 200..400u64 {
        assert!(
            cluster.propose(value, Duration::from_secs(5)),
            "a majority of three must still commit"
        );
    }
    for id in &down {
        cluster.start(*id);
    }
    let expected: Vec<u64> = (0..400).collect();
    for id in 1..=5 {
        assert_eq!(cluster.read_all(id), expected, "node {id} diverges");
    }
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn a_partitioned_leader_serves_no_stale_read_and_rejoins_after_healing() {
    let done = watchdog("partitioned_leader", Duration::from_secs(120));
    let mut cluster = Cluster::new(3, 100_000);
    let old_leader = cluster.leader(Duration::from_secs(10));
    for value in 0..50u64 {
        assert!(cluster.propose(value, Duration::from_secs(5)));
    }
    cluster.nodes[&old_leader].set_isolated(true);
    let majority = cluster.nodes_except(old_leader);
    wait_until(
        "the majority elects a new leader",
        Duration::from_secs(10),
        || majority.values().any(|n| n.status().role == Role::Leader),
    );
    for value in 50..100u64 {
        assert!(
            propose_on(&majority, value, Duration::from_secs(10)),
            "the majority side must commit {value}"
        );
    }
    // The old leader cannot confirm its leadership: a read there must fail, never return a
    // state without the majority's writes.
    match cluster.nodes[&old_leader].read(Vec::new()) {
        Err(_) => {}
        Ok(bytes) => {
            let state = decode(&bytes);
            assert!(
                state.len() >= 100,
                "stale read on the partitioned old leader: {} values",
                state.len()
            );
        }
    }
    assert!(
        cluster.nodes[&old_leader]
            .propose(1_000u64.to_le_bytes().to_vec())
            .is_err(),
        "a partitioned node must not acknowledge a proposal"
    );
    cluster.nodes[&old_leader].set_isolated(false);
    let reference = cluster.read_all(*majority.keys().next().unwrap());
    assert!(
        !reference.contains(&1_000),
        "the isolated proposal committed"
    );
    drop(majority);
    wait_until("the old leader catches up", Duration::from_secs(20), || {
        let status = cluster.nodes[&old_leader].status();
        status.role != Role::Leader && status.applied >= reference.len() as u64
    });
    assert_eq!(cluster.read_all(old_leader), reference);
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

/// Not a test of its own: when `KETCH_CHILD_NODE` is set, this process is a node started by
/// `a_follower_killed_with_sigkill_recovers_from_its_directory` (the test binary re-executes
/// itself filtered to this function), and it runs until killed. Without the variable it
/// returns at once.
#[test]
fn child_node_process() {
    let Ok(spec) = std::env::var("KETCH_CHILD_NODE") else {
        return;
    };
    // spec: "<id>;<dir>;<id>=<addr>,<id>=<addr>,..."
    let mut parts = spec.split(';');
    let id: u64 = parts.next().unwrap().parse().unwrap();
    let dir = PathBuf::from(parts.next().unwrap());
    let addrs: BTreeMap<u64, SocketAddr> = parts
        .next()
        .unwrap()
        .split(',')
        .map(|pair| {
            let (id, addr) = pair.split_once('=').unwrap();
            (id.parse().unwrap(), addr.parse().unwrap())
        })
        .collect();
    let config = NodeConfig::new(id, 7, addrs.clone(), addrs[&id]);
    let _node = Node::start(config, &dir, Sequence::default()).unwrap();
    // Bounded by the parent: it kills this process; the limit only guards against orphans.
    std::thread::sleep(Duration::from_secs(120));
}

/// Kills and reaps the child on every path, panics included, so no process outlives the test.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_follower_killed_with_sigkill_recovers_from_its_directory() {
    let done = watchdog("sigkill_follower", Duration::from_secs(120));
    let mut cluster = Cluster::new(3, 100_000);
    // Node 3 runs in a child process instead of in this one.
    cluster.stop(3);
    // Elect the leader among the in-process nodes before the child starts: the helpers here see
    // only in-process nodes, and with pre-vote and check-quorum the child, hearing a leader,
    // cannot take over.
    let leader = cluster.leader(Duration::from_secs(10));
    let spec = format!(
        "3;{};{}",
        cluster.dirs[&3].display(),
        cluster
            .addrs
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut child = ChildGuard(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["child_node_process", "--exact", "--nocapture"])
            .env("KETCH_CHILD_NODE", spec)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut acked = Vec::new();
    for value in 0..300u64 {
        if value == 200 {
            // The child really replicated before it dies.
            wait_until("the child replicates", Duration::from_secs(10), || {
                let status = cluster.nodes[&leader].status();
                status
                    .progress
                    .get(&3)
                    .is_some_and(|p| p.match_index >= 150)
            });
            // SIGKILL mid-stream: no shutdown, whatever was not fsynced is lost.
            child.0.kill().unwrap();
            child.0.wait().unwrap();
        }
        assert!(
            cluster.propose(value, Duration::from_secs(5)),
            "the leader {leader} with one follower left must commit {value}"
        );
        acked.push(value);
    }
    cluster.start(3);
    wait_until(
        "node 3 catches up after SIGKILL",
        Duration::from_secs(20),
        || cluster.nodes[&3].status().applied >= cluster.nodes[&leader].status().commit,
    );
    assert_eq!(cluster.read_all(3), acked);
    assert_eq!(cluster.read_all(leader), acked);
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

/// What clients were told about each value they proposed (each value is proposed once).
#[derive(Default)]
struct Outcomes {
    /// Answered `Ok`: must be applied everywhere.
    acked: BTreeSet<u64>,
    /// Refused with an error that says "not applied": must be applied nowhere.
    not_applied: BTreeSet<u64>,
    /// "May have been applied" (timeout, leadership lost, ...): either is fine, once.
    unknown: BTreeSet<u64>,
}

impl Outcomes {
    fn record(&mut self, value: u64, result: &Result<Vec<u8>, ProposeError>) {
        match result {
            Ok(_) => {
                self.acked.insert(value);
            }
            Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Backpressure)) => {
                assert!(e.to_string().contains("not applied"), "{e}");
                self.not_applied.insert(value);
            }
            Err(e) => {
                assert!(!e.to_string().contains("; not applied"), "{e}");
                self.unknown.insert(value);
            }
        }
    }
}

/// Clients that each propose fresh values (never a retry of the same value) until stopped:
/// client 0 always at `pinned`, the others starting at the other nodes and then at whichever
/// node they last heard leads.
struct Proposers {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Proposers {
    fn start(nodes: &BTreeMap<u64, Arc<Node>>, pinned: u64, clients: u64) -> Proposers {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let next_value = Arc::new(AtomicU64::new(1_000_000));
        let threads = (0..clients)
            .map(|client| {
                let nodes = nodes.clone();
                let (stop, outcomes, next_value) = (
                    Arc::clone(&stop),
                    Arc::clone(&outcomes),
                    Arc::clone(&next_value),
                );
                std::thread::spawn(move || {
                    let mut target = pinned;
                    for _ in 0..client {
                        target = next_id(&nodes, target);
                    }
                    while !stop.load(Ordering::Acquire) {
                        let value = next_value.fetch_add(1, Ordering::Relaxed);
                        let result = nodes[&target].propose(value.to_le_bytes().to_vec());
                        outcomes.lock().unwrap().record(value, &result);
                        if client == 0 {
                            continue;
                        }
                        match result {
                            Err(ProposeError::NotLeader {
                                leader_hint: Some(hint),
                            }) if nodes.contains_key(&hint) => target = hint,
                            Err(ProposeError::NotLeader { .. } | ProposeError::Timeout) => {
                                target = next_id(&nodes, target);
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                            Ok(_) => {}
                        }
                    }
                })
            })
            .collect();
        Proposers {
            stop,
            outcomes,
            threads,
        }
    }

    fn acked(&self) -> usize {
        self.outcomes.lock().unwrap().acked.len()
    }

    fn finish(self) -> Outcomes {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads {
            thread.join().unwrap();
        }
        Arc::try_unwrap(self.outcomes)
            .unwrap_or_else(|_| panic!("clients are done"))
            .into_inner()
            .unwrap()
    }
}

#[test]
fn a_leader_with_a_stalled_disk_is_superseded_and_rejoins_losing_nothing() {
    let done = watchdog("stalled_leader_disk", Duration::from_secs(120));
    let stall_bound = Duration::from_millis(300);
    let mut cluster =
        Cluster::with_timeouts(3, 100_000, Duration::from_secs(2), Some(stall_bound), None);
    let old_leader = cluster.leader(Duration::from_secs(10));
    for value in 0..50u64 {
        assert!(cluster.propose(value, Duration::from_secs(5)));
    }
    let old_term = cluster.nodes[&old_leader].status().term;
    assert!(!cluster.nodes[&old_leader].status().disk_stalled);
    let proposers = Proposers::start(&cluster.nodes, old_leader, 4);

    // Every fsync of the leader now takes five times the bound: its writes stay pending.
    cluster.faults[&old_leader].stall_syncs(stall_bound * 5);
    let stalled_at = Instant::now();
    wait_until(
        "the stalled leader reports disk_stalled",
        Duration::from_secs(10),
        || cluster.nodes[&old_leader].status().disk_stalled,
    );
    // It sends nothing, not even heartbeats: the others elect a leader in a higher term.
    let mut new_leader = None;
    wait_until(
        "another node leads in a higher term",
        Duration::from_secs(15),
        || {
            new_leader = cluster
                .nodes
                .iter()
                .filter(|(id, _)| **id != old_leader)
                .map(|(_, n)| n.status())
                .find(|s| s.role == Role::Leader && s.term > old_term)
                .map(|s| s.id);
            new_leader.is_some()
        },
    );
    let new_leader = new_leader.unwrap();
    wait_until(
        "the stalled leader stops leading",
        Duration::from_secs(15),
        || {
            let status = cluster.nodes[&old_leader].status();
            status.role != Role::Leader || status.term > old_term
        },
    );
    // The new leader commits while the old leader's disk is still stalled (its syncs take
    // 1.5 s each, so it acknowledges little): the new leader and the third node suffice.
    let acked_before = proposers.acked();
    let healthy = cluster.nodes_except(old_leader);
    for value in 50..100u64 {
        assert!(
            propose_on(&healthy, value, Duration::from_secs(10)),
            "proposal {value} not acknowledged by the healthy nodes"
        );
    }
    drop(healthy);
    wait_until(
        "the concurrent clients get acknowledgements during the stall",
        Duration::from_secs(15),
        || proposers.acked() >= acked_before + 20,
    );
    // Two whole stalled syncs: the old leader, now a follower, acknowledges the new leader's
    // entries 1.5 s late while the clients keep going (client 0 through it, forwarded).
    let acked_before = proposers.acked();
    wait_until(
        "two stalled syncs pass with client acknowledgements",
        Duration::from_secs(20),
        || stalled_at.elapsed() >= stall_bound * 10 && proposers.acked() >= acked_before + 20,
    );
    assert!(cluster.faults[&old_leader].syncs_stalled());
    let stalled_status = cluster.nodes[&old_leader].status();
    assert_ne!(stalled_status.role, Role::Leader);
    let stalled_for = stalled_at.elapsed();

    cluster.faults[&old_leader].clear();
    let outcomes = proposers.finish();
    eprintln!(
        "stall test: old leader {old_leader} (term {old_term}), new leader {new_leader}, \
         disk stalled for {stalled_for:?}; clients: {} acked, {} not applied, {} unknown",
        outcomes.acked.len(),
        outcomes.not_applied.len(),
        outcomes.unknown.len()
    );
    wait_until(
        "the old leader rejoins as a follower",
        Duration::from_secs(15),
        || {
            let status = cluster.nodes[&old_leader].status();
            status.role == Role::Follower
                && status.leader.is_some_and(|l| l != old_leader)
                && status.participating
                && !status.disk_stalled
        },
    );
    let leader = cluster.leader(Duration::from_secs(10));
    // One more acknowledged proposal: everything before it is committed in the leader's term.
    assert!(cluster.propose(100, Duration::from_secs(5)));
    wait_until(
        "every node applies everything committed",
        Duration::from_secs(20),
        || {
            let commit = cluster.nodes[&leader].status().commit;
            cluster.nodes.values().all(|n| n.status().applied >= commit)
        },
    );
    let reference = cluster.read_all(leader);
    let applied: BTreeSet<u64> = reference.iter().copied().collect();
    assert_eq!(applied.len(), reference.len(), "a value applied twice");
    let expected_base: BTreeSet<u64> = (0..=100).collect();
    let lost: Vec<_> = expected_base.difference(&applied).take(10).collect();
    assert!(lost.is_empty(), "acknowledged test values lost: {lost:?}");
    let lost: Vec<_> = outcomes.acked.difference(&applied).take(10).collect();
    assert!(lost.is_empty(), "acknowledged client values lost: {lost:?}");
    let wrongly: Vec<_> = outcomes
        .not_applied
        .intersection(&applied)
        .take(10)
        .collect();
    assert!(
        wrongly.is_empty(),
        "values refused as 'not applied' were applied: {wrongly:?}"
    );
    assert!(
        outcomes.acked.len() > 10,
        "too few client proposals acknowledged: {}",
        outcomes.acked.len()
    );
    for id in cluster.nodes.keys().copied().collect::<Vec<_>>() {
        assert_eq!(cluster.read_all(id), reference, "node {id} diverges");
    }
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

/// Every answer a completion callback gave, by request number, with when it came; a request
/// answered twice shows up as two entries.
struct Answers<E> {
    calls: Arc<Mutex<BTreeMap<u64, Vec<Answer<E>>>>>,
}

/// When a callback ran, and with what.
type Answer<E> = (Instant, Result<Vec<u8>, E>);

impl<E: Send + 'static> Answers<E> {
    fn new() -> Self {
        Answers {
            calls: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// The callback for request `n`.
    fn callback(&self, n: u64) -> impl FnOnce(Result<Vec<u8>, E>) + Send + 'static {
        let calls = Arc::clone(&self.calls);
        move |result| {
            calls
                .lock()
                .unwrap()
                .entry(n)
                .or_default()
                .push((Instant::now(), result))
        }
    }

    fn answered(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Each of requests `0..count` answered exactly once: its single answer and its time.
    fn exactly_once(&self, count: u64) -> Vec<Answer<E>>
    where
        E: Clone + std::fmt::Debug,
    {
        let calls = self.calls.lock().unwrap();
        assert_eq!(
            calls.keys().copied().collect::<Vec<_>>(),
            (0..count).collect::<Vec<_>>(),
            "every request answered"
        );
        calls
            .iter()
            .map(|(n, answers)| {
                assert_eq!(answers.len(), 1, "request {n} answered {answers:?}");
                answers[0].clone()
            })
            .collect()
    }
}

#[test]
fn completion_callbacks_answer_every_proposal_and_read_exactly_once() {
    let done = watchdog("completion_callbacks", Duration::from_secs(60));
    let mut cluster = Cluster::new(3, 100_000);
    let leader = cluster.leader(Duration::from_secs(10));
    let follower = next_id(&cluster.nodes, leader);
    let proposals = Answers::<ProposeError>::new();
    for value in 0..300u64 {
        cluster.nodes[&leader].submit_with(value.to_le_bytes().to_vec(), proposals.callback(value));
    }
    wait_until(
        "all 300 proposals answered",
        Duration::from_secs(20),
        || proposals.answered() == 300,
    );
    // The state machine answers the log length after each apply: 300 proposals, each
    // applied once, in some order, answer 1..=300 once each.
    let mut lengths: Vec<u64> = proposals
        .exactly_once(300)
        .into_iter()
        .map(|(_, result)| {
            let bytes = result.expect("a proposal on a stable leader succeeds");
            u64::from_le_bytes(bytes.try_into().expect("8-byte answer"))
        })
        .collect();
    lengths.sort_unstable();
    assert_eq!(lengths, (1..=300).collect::<Vec<u64>>());
    let reads = Answers::<ReadError>::new();
    for n in 0..20u64 {
        let on = if n % 2 == 0 { leader } else { follower };
        cluster.nodes[&on].read_with(Vec::new(), reads.callback(n));
    }
    wait_until("all 20 reads answered", Duration::from_secs(20), || {
        reads.answered() == 20
    });
    cluster.shutdown_all();
    // Checked after every node thread has exited: no late second answer.
    assert_eq!(proposals.exactly_once(300).len(), 300);
    // A loaded machine can delay heartbeats into an election: a read may then be refused
    // (reads are safe to retry), but one that answers must see every acknowledged write.
    let mut answered = 0;
    for (_, answer) in reads.exactly_once(20) {
        match answer {
            Ok(bytes) => {
                let mut values = decode(&bytes);
                values.sort_unstable();
                assert_eq!(
                    values,
                    (0..300).collect::<Vec<u64>>(),
                    "a read missed writes"
                );
                answered += 1;
            }
            Err(ReadError::NotLeader { .. } | ReadError::Timeout) => {}
            Err(e) => panic!("a read on a running cluster failed: {e}"),
        }
    }
    assert!(answered > 0, "no read succeeded");
    done.store(true, Ordering::Release);
}

#[test]
fn an_isolated_leader_answers_timeout_to_callbacks_at_its_deadline_and_only_once() {
    let done = watchdog("callback_timeouts", Duration::from_secs(60));
    let timeout = Duration::from_millis(800);
    let mut cluster = Cluster::with_client_timeout(3, 100_000, timeout);
    let leader = cluster.leader(Duration::from_secs(10));
    assert!(cluster.propose(1, Duration::from_secs(5)));
    cluster.nodes[&leader].set_isolated(true);
    let proposals = Answers::<ProposeError>::new();
    let reads = Answers::<ReadError>::new();
    let submitted_at = Instant::now();
    for n in 0..20u64 {
        cluster.nodes[&leader].submit_with((100 + n).to_le_bytes().to_vec(), proposals.callback(n));
    }
    for n in 0..5u64 {
        cluster.nodes[&leader].read_with(Vec::new(), reads.callback(n));
    }
    wait_until("every callback answered", Duration::from_secs(20), || {
        proposals.answered() == 20 && reads.answered() == 5
    });
    // Nothing else can answer them: the leader is cut off, so the node's own timeout must.
    // On a loaded machine the leader may have stepped down (check-quorum) before a request
    // reached it: that request is refused at once as certainly not applied.
    let mut timeouts = 0;
    for (at, answer) in proposals.exactly_once(20) {
        match answer {
            Err(ProposeError::Timeout) => {
                timeouts += 1;
                assert!(at >= submitted_at + timeout, "timed out early");
            }
            Err(ProposeError::NotLeader { .. }) => {}
            other => panic!("an isolated leader answered {other:?}"),
        }
    }
    for (at, answer) in reads.exactly_once(5) {
        match answer {
            Err(ReadError::Timeout) => assert!(at >= submitted_at + timeout, "timed out early"),
            Err(ReadError::NotLeader { .. }) => {}
            other => panic!("an isolated leader answered a read with {other:?}"),
        }
    }
    assert!(timeouts > 0, "no proposal reached the isolated leader");
    cluster.nodes[&leader].set_isolated(false);
    cluster.shutdown_all();
    // The proposals may still commit once the old leader rejoins (a timeout means "may
    // have been applied"); their callbacks must not run a second time.
    assert_eq!(proposals.exactly_once(20).len(), 20);
    assert_eq!(reads.exactly_once(5).len(), 5);
    done.store(true, Ordering::Release);
}

#[test]
fn shutdown_answers_every_pending_callback_once() {
    let done = watchdog("callback_shutdown", Duration::from_secs(60));
    // Timeouts far beyond the test: only the shutdown can answer.
    let mut cluster = Cluster::with_client_timeout(3, 100_000, Duration::from_secs(120));
    let leader = cluster.leader(Duration::from_secs(10));
    assert!(cluster.propose(1, Duration::from_secs(5)));
    cluster.nodes[&leader].set_isolated(true);
    let proposals = Answers::<ProposeError>::new();
    let reads = Answers::<ReadError>::new();
    for n in 0..50u64 {
        cluster.nodes[&leader].submit_with((100 + n).to_le_bytes().to_vec(), proposals.callback(n));
    }
    for n in 0..10u64 {
        cluster.nodes[&leader].read_with(Vec::new(), reads.callback(n));
    }
    let started = Instant::now();
    cluster.stop(leader);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    for (_, answer) in proposals.exactly_once(50) {
        assert!(
            matches!(
                answer,
                Err(ProposeError::ShuttingDown | ProposeError::NotLeader { .. })
            ),
            "a proposal on an isolated leader answered {answer:?} at shutdown"
        );
    }
    for (_, answer) in reads.exactly_once(10) {
        assert!(
            matches!(
                answer,
                Err(ReadError::ShuttingDown | ReadError::NotLeader { .. })
            ),
            "a read on an isolated leader answered {answer:?} at shutdown"
        );
    }
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn proposals_on_followers_are_forwarded_applied_once_and_answer_the_leaders_result() {
    let done = watchdog("forwarded_proposals", Duration::from_secs(90));
    let mut cluster = Cluster::new(3, 100_000);
    let leader = cluster.leader(Duration::from_secs(10));
    let term_before = cluster.nodes[&leader].status().term;
    let followers: Vec<u64> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    wait_until("followers know the leader", Duration::from_secs(10), || {
        followers
            .iter()
            .all(|f| cluster.nodes[f].status().leader == Some(leader))
    });
    let answers = Answers::<ProposeError>::new();
    // 200 through callbacks on the two followers, 20 through the blocking API.
    for value in 0..200u64 {
        let on = followers[value as usize % 2];
        cluster.nodes[&on].submit_with(value.to_le_bytes().to_vec(), answers.callback(value));
    }
    let mut blocking = Vec::new();
    for value in 200..220u64 {
        let on = followers[value as usize % 2];
        blocking.push((
            value,
            cluster.nodes[&on].propose(value.to_le_bytes().to_vec()),
        ));
    }
    wait_until(
        "200 forwarded proposals answered",
        Duration::from_secs(30),
        || answers.answered() == 200,
    );
    let stable = cluster.nodes[&leader].status().term == term_before;
    let log = cluster.read_all(leader);
    let mut acknowledged = 0;
    let results = answers
        .exactly_once(200)
        .into_iter()
        .map(|(_, r)| r)
        .zip(0u64..)
        .map(|(r, v)| (v, r))
        .chain(blocking);
    for (value, result) in results {
        match result {
            Ok(bytes) => {
                // The leader's state machine answers the log length after the apply: the
                // value must sit at exactly that position.
                let length = u64::from_le_bytes(bytes.try_into().expect("8-byte answer"));
                assert_eq!(
                    log.get(length as usize - 1),
                    Some(&value),
                    "value {value} answered position {length}"
                );
                acknowledged += 1;
            }
            Err(e) => assert!(!stable, "value {value} failed on a stable cluster: {e}"),
        }
        assert!(
            log.iter().filter(|v| **v == value).count() <= 1,
            "value {value} applied twice"
        );
    }
    assert!(acknowledged > 0);
    if stable {
        assert_eq!(acknowledged, 220);
    }
    // Status is published by each loop at most once per millisecond: wait for it.
    if stable {
        wait_until(
            "the leader counts 220 forwards",
            Duration::from_secs(10),
            || cluster.nodes[&leader].status().transport.forwards_received >= 220,
        );
    }
    wait_until("no forward left in flight", Duration::from_secs(10), || {
        followers
            .iter()
            .all(|f| cluster.nodes[f].status().forwards_in_flight == 0)
    });
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn a_forward_to_a_leader_isolated_mid_flight_may_have_been_applied_never_certainly_not() {
    let done = watchdog("forward_leader_isolated", Duration::from_secs(90));
    // 3-6 s elections: the test's premise is that the follower still believes in the
    // isolated leader when it takes the proposals, and on a loaded machine the test thread
    // alone can be descheduled for longer than the default 300 ms.
    let mut cluster = Cluster::with_timeouts(3, 100_000, Duration::from_secs(5), None, Some(300));
    let leader = cluster.leader(Duration::from_secs(20));
    let follower = next_id(&cluster.nodes, leader);
    wait_until(
        "the follower knows the leader",
        Duration::from_secs(10),
        || cluster.nodes[&follower].status().leader == Some(leader),
    );
    assert!(cluster.propose(1, Duration::from_secs(5)));
    // The follower still believes in the leader (for an election timeout, 3 s or more),
    // so it forwards; the leader, cut off, never answers.
    cluster.nodes[&leader].set_isolated(true);
    let answers = Answers::<ProposeError>::new();
    for n in 0..20u64 {
        cluster.nodes[&follower].submit_with((100 + n).to_le_bytes().to_vec(), answers.callback(n));
    }
    wait_until("every forward answered", Duration::from_secs(20), || {
        answers.answered() == 20
    });
    for (_, answer) in answers.exactly_once(20) {
        assert!(
            matches!(
                answer,
                Err(ProposeError::LeaderLost | ProposeError::Timeout)
            ),
            "a forward in flight when the leader vanished answered {answer:?}; it must say \
             'may have been applied'"
        );
    }
    cluster.nodes[&leader].set_isolated(false);
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn a_proposal_on_a_node_that_knows_no_leader_is_certainly_not_applied() {
    let done = watchdog("forward_no_leader", Duration::from_secs(60));
    let mut cluster = Cluster::new(3, 100_000);
    let leader = cluster.leader(Duration::from_secs(10));
    let survivor = next_id(&cluster.nodes, leader);
    let other = next_id(&cluster.nodes, survivor);
    cluster.stop(leader);
    cluster.stop(other);
    wait_until(
        "the survivor forgets the leader",
        Duration::from_secs(10),
        || cluster.nodes[&survivor].status().leader.is_none(),
    );
    let answer = cluster.nodes[&survivor].propose(7u64.to_le_bytes().to_vec());
    assert!(
        matches!(answer, Err(ProposeError::NotLeader { leader_hint: None })),
        "no leader known must mean certainly not applied, got {answer:?}"
    );
    let answers = Answers::<ProposeError>::new();
    cluster.nodes[&survivor].submit_with(8u64.to_le_bytes().to_vec(), answers.callback(0));
    wait_until("the callback answered", Duration::from_secs(10), || {
        answers.answered() == 1
    });
    let (_, answer) = answers.exactly_once(1).remove(0);
    assert!(
        matches!(answer, Err(ProposeError::NotLeader { .. })),
        "got {answer:?}"
    );
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn status_lists_the_members_with_their_addresses() {
    let done = watchdog("status_members", Duration::from_secs(30));
    let mut cluster = Cluster::new(3, 100_000);
    cluster.leader(Duration::from_secs(10));
    for (id, node) in &cluster.nodes {
        let members = node.status().members;
        assert_eq!(members.len(), 3, "node {id}: {:?}", node.status());
        for (member, status) in members {
            assert_eq!(status.peer_addr, Some(cluster.addrs[&member]));
            assert!(status.voter);
        }
    }
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

/// Writes `1, 2, 3, ...` through whichever of `nodes` leads until told to stop, recording
/// the values acknowledged. The test may change `nodes` meanwhile (a node about to be
/// removed is taken out first: it would answer errors).
fn spawn_writer(
    nodes: Arc<Mutex<BTreeMap<u64, Arc<Node>>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut value = 0;
        while !stop.load(Ordering::Acquire) {
            value += 1;
            let targets = nodes.lock().unwrap().clone();
            if propose_on(&targets, value, Duration::from_secs(2)) {
                acked.lock().unwrap().push(value);
            }
        }
    })
}

/// Waits until `count` more values are acknowledged.
fn wait_acked(acked: &Mutex<Vec<u64>>, count: usize) {
    let start = acked.lock().unwrap().len();
    wait_until(
        &format!("{count} more acknowledged writes"),
        Duration::from_secs(20),
        || acked.lock().unwrap().len() >= start + count,
    );
}

/// Waits until node `id` has `expected` in force and committed.
fn wait_membership(cluster: &Cluster, id: u64, expected: &Membership) {
    wait_until(
        &format!("node {id} has {expected:?} in force and committed"),
        Duration::from_secs(20),
        || {
            let status = cluster.nodes[&id].status();
            status.membership == *expected && status.committed_membership == *expected
        },
    );
}

fn voters_and_learners(voters: &[u64], learners: &[u64]) -> Membership {
    Membership {
        voters: voters.iter().copied().collect(),
        learners: learners.iter().copied().collect(),
        outgoing_voters: Default::default(),
    }
}

#[test]
fn change_membership_adds_a_learner_promotes_it_and_removes_a_voter_under_writes() {
    let done = watchdog("change_membership", Duration::from_secs(90));
    let mut cluster = Cluster::new(3, 100_000);
    let leader = cluster.leader(Duration::from_secs(10));
    let addr = cluster.reserve(4);
    cluster.start_joining(4, &[1, 2, 3]);
    assert!(cluster.nodes[&4].status().membership.is_unknown());

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let targets: BTreeMap<u64, Arc<Node>> = (1..=3)
        .map(|id| (id, Arc::clone(&cluster.nodes[&id])))
        .collect();
    let targets = Arc::new(Mutex::new(targets));
    let writer = spawn_writer(Arc::clone(&targets), Arc::clone(&stop), Arc::clone(&acked));
    wait_acked(&acked, 20);

    // A follower refuses, certainly not applied; adding a node without its address is
    // refused, not applied.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    assert!(matches!(
        cluster.change(follower, ConfChange::AddLearner(4), Some(addr)),
        Err(ChangeError::NotLeader { .. })
    ));
    assert!(matches!(
        cluster.change(leader, ConfChange::AddLearner(4), None),
        Err(ChangeError::Refused { .. }) | Err(ChangeError::NotLeader { .. })
    ));
    assert!(!cluster.nodes[&leader].status().membership.contains(4));

    // 1. A learner: in force and committed at the leader when answered, then everywhere.
    let with_learner = voters_and_learners(&[1, 2, 3], &[4]);
    cluster.change_at_leader(ConfChange::AddLearner(4), Some(addr), &with_learner);
    for id in 1..=4 {
        wait_membership(&cluster, id, &with_learner);
    }
    assert!(!cluster.nodes[&4].status().members[&4].voter);
    wait_acked(&acked, 20);

    // 2. Promote it: through the joint configuration to four voters.
    let four = Membership::with_voters([1, 2, 3, 4]);
    cluster.change_at_leader(ConfChange::Promote(4), None, &four);
    for id in 1..=4 {
        wait_membership(&cluster, id, &four);
    }
    assert!(cluster.nodes[&4].status().members[&4].voter);
    wait_acked(&acked, 20);

    // 3. Remove an original voter that does not lead; it learns its removal.
    let leader = cluster.leader(Duration::from_secs(10));
    let removed = (1..=3).find(|id| *id != leader).unwrap();
    let remaining: Vec<u64> = (1..=4).filter(|id| *id != removed).collect();
    let three = Membership::with_voters(remaining.iter().copied());
    {
        let mut targets = targets.lock().unwrap();
        targets.remove(&removed);
        targets.insert(4, Arc::clone(&cluster.nodes[&4]));
    }
    cluster.change_at_leader(ConfChange::Remove(removed), None, &three);
    for id in &remaining {
        wait_membership(&cluster, *id, &three);
    }
    wait_until(
        &format!("node {removed} learns its removal"),
        Duration::from_secs(20),
        || cluster.nodes[&removed].status().removed,
    );
    wait_acked(&acked, 20);
    stop.store(true, Ordering::Release);
    writer.join().expect("writer thread");
    // The nodes must be ours alone to shut down.
    drop(targets);

    // Nothing acknowledged lost; the new voter has it all.
    let leader = cluster.leader(Duration::from_secs(10));
    let on_leader = cluster.read_all(leader);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 80,
        "only {} writes acknowledged",
        acked.len()
    );
    for value in &acked {
        assert!(on_leader.contains(value), "acknowledged {value} lost");
    }
    wait_until(
        "node 4 applies every write",
        Duration::from_secs(20),
        || cluster.read_all(4).len() >= on_leader.len(),
    );
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

#[test]
fn a_node_that_joins_through_a_snapshot_learns_every_member_address() {
    let done = watchdog("join_through_snapshot", Duration::from_secs(90));
    let threshold = 50;
    let mut cluster = Cluster::new(3, threshold);
    cluster.leader(Duration::from_secs(10));
    // Node 4 is added before it runs: the address entry naming every member is only in the
    // log, which is then compacted past it.
    let addr = cluster.reserve(4);
    let with_learner = voters_and_learners(&[1, 2, 3], &[4]);
    let leader = cluster.change_at_leader(ConfChange::AddLearner(4), Some(addr), &with_learner);
    let added_at = cluster.nodes[&leader].status().last_index;
    for value in 0..4 * threshold {
        assert!(
            cluster.propose(value, Duration::from_secs(5)),
            "write {value}"
        );
    }
    let leader = cluster.leader(Duration::from_secs(10));
    // The latest snapshot (the one a new node receives) is then at least a threshold past
    // the address entry. (The status may trail the last write by an index or two.)
    let commit = cluster.nodes[&leader].status().commit;
    assert!(
        commit >= added_at + 3 * threshold,
        "commit {commit}, added at {added_at}"
    );
    // Node 4 knows only the leader.
    let contact = leader;
    cluster.start_joining(4, &[contact]);
    wait_until(
        "node 4 installs a snapshot",
        Duration::from_secs(20),
        || cluster.nodes[&4].status().raft_stats.snapshots_installed >= 1,
    );
    let four = Membership::with_voters([1, 2, 3, 4]);
    cluster.change_at_leader(ConfChange::Promote(4), None, &four);
    wait_membership(&cluster, 4, &four);
    // Node 4 knows every member's address and connects to each.
    let members = cluster.nodes[&4].status().members;
    for id in 1..=4u64 {
        assert_eq!(
            members[&id].peer_addr,
            Some(cluster.addrs[&id]),
            "node 4's address of node {id}: {members:?}"
        );
    }
    wait_until(
        "node 4 connects to every other member",
        Duration::from_secs(20),
        || {
            let connected = cluster.nodes[&4].status().connected_peers;
            (1..=3).all(|id| connected.contains(&id))
        },
    );
    // Leading, with its only contact down, node 4 commits through the two others (3 of 4
    // voters): impossible without their addresses.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current = cluster.leader(Duration::from_secs(10));
        if current == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "node 4 never leads");
        let (tx, rx) = std::sync::mpsc::channel();
        cluster.nodes[&current].transfer_leadership(4, move |result| {
            let _ = tx.send(result);
        });
        if let Ok(Err(e)) = rx.recv_timeout(Duration::from_secs(10)) {
            eprintln!("transfer to node 4: {e}; retrying");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    cluster.stop(contact);
    // A write may time out while the cluster settles without the contact (its outcome is
    // then unknown): retry with a fresh value until one is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acked = None;
    for value in 1_000_000.. {
        if propose_on(&cluster.nodes, value, Duration::from_secs(5)) {
            acked = Some(value);
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        eprintln!("write {value} not acknowledged; retrying");
    }
    let acked = acked.unwrap_or_else(|| panic!("no write commits with node {contact} down"));
    assert!(cluster.read_all(4).contains(&acked));
    cluster.shutdown_all();
    done.store(true, Ordering::Release);
}

/// What a client was told about one proposal, by the node's error rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Applied,
    NotApplied,
    MaybeApplied,
}

fn told(answer: &Result<Vec<u8>, ProposeError>) -> Told {
    match answer {
        Ok(_) => Told::Applied,
        Err(ProposeError::NotLeader { .. } | ProposeError::Backpressure) => Told::NotApplied,
        Err(ProposeError::Stopped { .. }) => Told::NotApplied,
        Err(ProposeError::Timeout | ProposeError::LeaderLost | ProposeError::ShuttingDown) => {
            Told::MaybeApplied
        }
    }
}

/// Keeps windows of proposals in flight at `node` from several threads until `stop`,
/// recording what each value was told. Values are `writer << 32 | seq`, so each is unique.
fn spawn_window_writers(
    node: &Arc<Node>,
    writers: std::ops::Range<u64>,
    window: usize,
    stop: &Arc<AtomicBool>,
    told_values: &Arc<Mutex<Vec<(u64, Told)>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    writers
        .map(|writer| {
            let node = Arc::clone(node);
            let stop = Arc::clone(stop);
            let told_values = Arc::clone(told_values);
            std::thread::spawn(move || {
                let mut seq = 0u64;
                // Bounded: until the flag, which the test sets within seconds.
                while !stop.load(Ordering::Acquire) {
                    let (tx, rx) = std::sync::mpsc::channel();
                    for _ in 0..window {
                        let value = writer << 32 | seq;
                        seq += 1;
                        let tx = tx.clone();
                        node.submit_with(value.to_le_bytes().to_vec(), move |answer| {
                            let _ = tx.send((value, told(&answer)));
                        });
                    }
                    drop(tx);
                    let mut refused = false;
                    for (value, told) in rx {
                        refused |= told == Told::NotApplied;
                        told_values.lock().unwrap().push((value, told));
                    }
                    if refused {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        })
        .collect()
}

/// One run: writers keep windows of proposals in flight at the leader and at a follower (which
/// forwards them); the leader's log then fails (fsync or ENOSPC, after a seeded number of
/// operations), once it has sent appends that the followers store. Every answer must agree
/// with what committed in the end.
fn leader_disk_failure_run(seed: u64) {
    let mut random = seed;
    let mut cluster = Cluster::with_client_timeout(3, 100_000, Duration::from_secs(3));
    let leader = cluster.leader(Duration::from_secs(10));
    let follower = next_id(&cluster.nodes, leader);
    let stop = Arc::new(AtomicBool::new(false));
    let told_values: Arc<Mutex<Vec<(u64, Told)>>> = Arc::default();
    let mut writers = spawn_window_writers(&cluster.nodes[&leader], 0..4, 16, &stop, &told_values);
    writers.extend(spawn_window_writers(
        &cluster.nodes[&follower],
        4..5,
        16,
        &stop,
        &told_values,
    ));
    // Some writes commit first, so the failure hits a log under way, with appends in flight.
    wait_acked_count(&told_values, 50 + (next_random(&mut random) % 200) as usize);
    let successes = next_random(&mut random) % 8;
    let disk_full = next_random(&mut random) % 2 == 0;
    if disk_full {
        cluster.faults[&leader].fail_write_after(successes, 0, true);
    } else {
        cluster.faults[&leader].fail_sync_after(successes);
    }
    eprintln!(
        "seed {seed:#x}: node {leader}'s log fails ({}) after {successes} more operations",
        if disk_full { "ENOSPC" } else { "fsync" }
    );
    wait_until(
        "the leader stops participating",
        Duration::from_secs(10),
        || !cluster.nodes[&leader].status().participating,
    );
    let stopped = cluster.nodes[&leader].status();
    assert_ne!(stopped.role, Role::Leader, "a stopped node claims to lead");
    assert_eq!(stopped.leader, None, "a stopped node names a leader");
    // Writers go on for a moment: new proposals at the stopped node are refused.
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.join().unwrap();
    }
    // A value acknowledged by the survivors commits everything a new leader kept. Markers
    // answered "maybe" are not retried but replaced: a marker's count does not matter.
    let survivors = cluster.nodes_except(leader);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut marker = u64::MAX;
    while !propose_on(&survivors, marker, Duration::from_secs(5)) {
        assert!(
            Instant::now() < deadline,
            "seed {seed:#x}: the two healthy nodes elect no leader that commits"
        );
        marker -= 1;
    }
    drop(survivors);
    let survivor = follower;
    let applied = cluster.read_all(survivor);
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for value in &applied {
        *counts.entry(*value).or_default() += 1;
    }
    let told_values = told_values.lock().unwrap().clone();
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for (value, told) in &told_values {
        let times = counts.get(value).copied().unwrap_or(0);
        assert!(
            times <= 1,
            "seed {seed:#x}: value {value:#x} applied {times} times"
        );
        match told {
            Told::Applied => assert_eq!(times, 1, "seed {seed:#x}: acknowledged {value:#x} lost"),
            Told::NotApplied => assert_eq!(
                times, 0,
                "seed {seed:#x}: value {value:#x} was answered \"not applied\" but was applied"
            ),
            Told::MaybeApplied => {}
        }
        let key = match (told, times) {
            (Told::Applied, _) => "applied",
            (Told::NotApplied, _) => "not applied",
            (Told::MaybeApplied, 0) => "maybe, and was not",
            (Told::MaybeApplied, _) => "maybe, and was",
        };
        *tally.entry(key).or_default() += 1;
    }
    eprintln!("seed {seed:#x}: {tally:?}");
    let failed = unwrap_node(cluster.nodes.remove(&leader).unwrap());
    let shutdown = failed.shutdown();
    assert!(
        shutdown
            .as_ref()
            .is_err_and(|e| e.to_string().contains("poisoned earlier")),
        "shutdown must say the log was poisoned earlier: {shutdown:?}"
    );
    cluster.shutdown_all();
}

fn wait_acked_count(told_values: &Mutex<Vec<(u64, Told)>>, count: usize) {
    wait_until("writes are acknowledged", Duration::from_secs(20), || {
        let told = told_values.lock().unwrap();
        told.iter().filter(|(_, t)| *t == Told::Applied).count() >= count
    });
}

/// The leader sends appends before its own write is durable (thesis §10.2.1), so when its
/// disk fails, a quorum of followers may hold entries it had accepted, and the next leader
/// commits them. No proposal answered "not applied" may be among them.
/// `KETCH_FAULT_RUNS` sets the number of seeded runs (default 10), `KETCH_FAULT_SEED` the first
/// seed.
#[test]
fn a_leader_whose_disk_fails_under_load_answers_not_applied_only_for_what_never_applied() {
    let runs = env_u64("KETCH_FAULT_RUNS", 10);
    let first_seed = env_u64("KETCH_FAULT_SEED", 0x15d1);
    let done = watchdog("leader_disk_failure", Duration::from_secs(60 + 30 * runs));
    for run in 0..runs {
        leader_disk_failure_run(first_seed + run);
    }
    done.store(true, Ordering::Release);
}

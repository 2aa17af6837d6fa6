//! Many Raft groups on three hosts (`ketch::node::Host`), on loopback TCP with real data
//! directories on this machine's disk, against a single-group `Node` cluster, side by side.
//!
//! Before criterion's runs, a side-by-side report alternates, over `ROUNDS` rounds, a 3-node
//! `Node` cluster and 3-host clusters running 1, 16 and 64 groups (leaders spread over the
//! hosts), each under the same client load: `CLIENTS` threads each proposing 256 B commands
//! one at a time, round-robin over the groups, for `ROUND_SECS` seconds. It prints
//! commits/s, the ratio to the single group's, fsyncs per host per second, and commit p50/p99
//! of one proposer on one group.
//!
//! criterion then measures `host/throughput/{1,16,64}` (commits/s under the same load).
//!
//! With `KETCH_HOST_BENCH_IDLE_GROUPS=N`, it first starts three hosts holding N groups each,
//! waits until every replica quiesced, and prints the process's CPU over 30 s and its resident
//! memory per group replica against the same hosts with no groups (the three hosts share this
//! one process, so the CPU figure is the three together).
//!
//! With `KETCH_HOST_BENCH_FAILOVER_GROUPS=N`, it starts three hosts holding N groups each,
//! spreads the leaders over them, writes once to every group, waits for every replica to
//! quiesce, then shuts down the host leading a third of the groups and prints the time until
//! every group has a leader on the other two, in base election timeouts, and checks that every
//! group still holds its acknowledged write.
//!
//! Run: `cargo bench --bench host` (`KETCH_HOST_BENCH_ROUNDS=N`, `KETCH_BENCH_DIR=DIR`;
//! `KETCH_HOST_BENCH_ROUNDS=0` skips the side-by-side report; `KETCH_HOST_BENCH_ONLY=host-64`
//! runs one kind alone for `ROUNDS` x 5 s, for a profile).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ketch::node::{Group, GroupId, Host, HostConfig, Node, NodeConfig, ProposeError, StateMachine};
use ketch::raft::Role;

const PAYLOAD_BYTES: usize = 256;
const CLIENTS: usize = 64;
const ROUND_SECS: u64 = 5;
const LATENCY_SAMPLES: usize = 2_000;

/// Counts commands: the cheapest state machine, so the figures are the runtime's.
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

fn free_addrs(count: usize) -> BTreeMap<u64, SocketAddr> {
    let listeners: Vec<_> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().expect("addr")))
        .collect()
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("KETCH_BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")),
    }
    .expect("temp dir")
}

/// What a client proposes to: one group of a host cluster, or a node cluster.
trait Target: Send + Sync {
    /// Proposes at the leader, following hints; false if the outcome is unknown.
    fn propose(&self, slot: usize) -> bool;
    /// Fsyncs so far, summed over the hosts (or nodes).
    fn fsyncs(&self) -> u64;
    fn members(&self) -> usize;
}

struct Hosts {
    hosts: Vec<Host>,
    groups: Vec<GroupId>,
    /// Per group, the index in `hosts` believed to lead.
    leaders: Vec<AtomicU64>,
    _dir: tempfile::TempDir,
}

impl Hosts {
    fn start(groups: usize) -> Hosts {
        let dir = bench_dir();
        let addrs = free_addrs(3);
        let hosts: Vec<Host> = addrs
            .keys()
            .map(|id| {
                let mut config = HostConfig::new(*id, 1, addrs.clone(), addrs[id]);
                config.raft.max_uncommitted_bytes = 256 << 20;
                Host::start(config, dir.path().join(id.to_string()), |_| {
                    Counter::default()
                })
                .expect("host starts")
            })
            .collect();
        let ids: Vec<GroupId> = (1..=groups as u64).collect();
        for host in &hosts {
            for group in &ids {
                host.create_group(*group, &[1, 2, 3]).expect("group");
            }
        }
        let cluster = Hosts {
            leaders: ids.iter().map(|_| AtomicU64::new(0)).collect(),
            hosts,
            groups: ids,
            _dir: dir,
        };
        cluster.wait_for_leaders();
        cluster.spread_leaders();
        cluster
    }

    fn wait_for_leaders(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for (slot, group) in self.groups.iter().enumerate() {
            loop {
                let leader = self.hosts.iter().position(|h| {
                    h.group(*group)
                        .and_then(|g| g.status())
                        .is_some_and(|s| s.role == Role::Leader)
                });
                if let Some(leader) = leader {
                    self.leaders[slot].store(leader as u64, Ordering::Relaxed);
                    break;
                }
                assert!(Instant::now() < deadline, "group {group} elected no leader");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Moves group `i`'s leadership to host `i % 3`, so the leaders spread evenly.
    fn spread_leaders(&self) {
        for (slot, group) in self.groups.iter().enumerate() {
            let want = slot % self.hosts.len();
            let current = self.leaders[slot].load(Ordering::Relaxed) as usize;
            if current == want {
                continue;
            }
            let (tx, rx) = std::sync::mpsc::channel();
            self.hosts[current]
                .group(*group)
                .expect("group")
                .transfer_leadership(want as u64 + 1, move |r| {
                    let _ = tx.send(r);
                });
            if let Ok(Ok(())) = rx.recv_timeout(Duration::from_secs(10)) {
                self.leaders[slot].store(want as u64, Ordering::Relaxed);
            }
        }
        self.wait_for_leaders();
    }

    fn group(&self, slot: usize) -> Group {
        let leader = self.leaders[slot].load(Ordering::Relaxed) as usize;
        self.hosts[leader]
            .group(self.groups[slot])
            .expect("group on host")
    }
}

impl Target for Hosts {
    fn propose(&self, client: usize) -> bool {
        let slot = client % self.groups.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.group(slot).propose(vec![7u8; PAYLOAD_BYTES]) {
                Ok(_) => return true,
                Err(ProposeError::Backpressure) => std::thread::yield_now(),
                Err(ProposeError::NotLeader { leader_hint }) => match leader_hint {
                    Some(id) => self.leaders[slot].store(id - 1, Ordering::Relaxed),
                    None => std::thread::sleep(Duration::from_millis(10)),
                },
                Err(ProposeError::Timeout | ProposeError::LeaderLost) => return false,
                Err(e) => panic!("proposal failed: {e}"),
            }
        }
        panic!("no proposal accepted for 30 s");
    }

    fn fsyncs(&self) -> u64 {
        self.hosts.iter().map(|h| h.status().writer.fsyncs).sum()
    }

    fn members(&self) -> usize {
        self.hosts.len()
    }
}

struct Nodes {
    nodes: Vec<Node>,
    leader: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Nodes {
    fn start() -> Nodes {
        let dir = bench_dir();
        let addrs = free_addrs(3);
        let nodes: Vec<Node> = addrs
            .keys()
            .map(|id| {
                let mut config = NodeConfig::new(*id, 1, addrs.clone(), addrs[id]);
                config.raft.max_uncommitted_bytes = 256 << 20;
                Node::start(config, dir.path().join(id.to_string()), Counter::default())
                    .expect("node starts")
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        let leader = loop {
            if let Some(leader) = nodes.iter().position(|n| n.status().role == Role::Leader) {
                break leader;
            }
            assert!(Instant::now() < deadline, "no leader elected");
            std::thread::sleep(Duration::from_millis(10));
        };
        Nodes {
            nodes,
            leader: AtomicU64::new(leader as u64),
            _dir: dir,
        }
    }
}

impl Target for Nodes {
    fn propose(&self, _client: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let leader = &self.nodes[self.leader.load(Ordering::Relaxed) as usize];
            match leader.propose(vec![7u8; PAYLOAD_BYTES]) {
                Ok(_) => return true,
                Err(ProposeError::Backpressure) => std::thread::yield_now(),
                Err(ProposeError::NotLeader { leader_hint }) => match leader_hint {
                    Some(id) => self.leader.store(id - 1, Ordering::Relaxed),
                    None => std::thread::sleep(Duration::from_millis(10)),
                },
                Err(ProposeError::Timeout | ProposeError::LeaderLost) => return false,
                Err(e) => panic!("proposal failed: {e}"),
            }
        }
        panic!("no proposal accepted for 30 s");
    }

    fn fsyncs(&self) -> u64 {
        self.nodes.iter().map(|n| n.status().writer.fsyncs).sum()
    }

    fn members(&self) -> usize {
        self.nodes.len()
    }
}

/// Runs `clients` threads proposing for `duration`; returns commits/s and fsyncs per member
/// per second.
fn load(target: &dyn Target, clients: usize, duration: Duration) -> (f64, f64) {
    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let fsyncs_before = target.fsyncs();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..clients {
            let (stop, commits) = (&stop, &commits);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if target.propose(client) {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    let secs = started.elapsed().as_secs_f64();
    let fsyncs = target.fsyncs() - fsyncs_before;
    (
        commits.load(Ordering::Relaxed) as f64 / secs,
        fsyncs as f64 / target.members() as f64 / secs,
    )
}

fn latency(target: &dyn Target) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..LATENCY_SAMPLES)
        .map(|_| {
            let start = Instant::now();
            target.propose(0);
            start.elapsed()
        })
        .collect();
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.99))
}

/// A cluster of `kind`: `node`, or `host-N` for three hosts running N groups.
fn start_target(kind: &str) -> Box<dyn Target> {
    match kind.strip_prefix("host-") {
        None => Box::new(Nodes::start()),
        Some(groups) => Box::new(Hosts::start(groups.parse().expect("host-N"))),
    }
}

fn side_by_side() {
    let rounds: usize = std::env::var("KETCH_HOST_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(ROUND_SECS);
    let kinds = ["node", "host-1", "host-16", "host-64"];
    // KETCH_HOST_BENCH_ONLY=host-64 (say) runs one kind alone, for a profile.
    let only = std::env::var("KETCH_HOST_BENCH_ONLY").ok();
    if let Some(kind) = only.as_deref() {
        let target = start_target(kind);
        load(&*target, CLIENTS, Duration::from_secs(1));
        let (rate, fsyncs) = load(&*target, CLIENTS, duration * rounds.max(1) as u32);
        println!("{kind:8} {rate:>9.0} commits/s {fsyncs:>7.0} fsyncs/s per member");
        return;
    }
    for round in 0..rounds {
        let mut order: Vec<&str> = kinds.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut results: BTreeMap<&str, (f64, f64, Duration, Duration)> = BTreeMap::new();
        for kind in order {
            let target = start_target(kind);
            load(&*target, CLIENTS, Duration::from_secs(1));
            let (rate, fsyncs) = load(&*target, CLIENTS, duration);
            let (p50, p99) = latency(&*target);
            results.insert(kind, (rate, fsyncs, p50, p99));
        }
        let one = results["host-1"].0;
        let node = results["node"];
        for kind in kinds {
            let (rate, fsyncs, p50, p99) = results[kind];
            println!(
                "round {round} {kind:8} {rate:>9.0} commits/s ({:.2}x host-1, {:.2}x node) \
                 {fsyncs:>7.0} fsyncs/s per member  one proposer p50 {p50:?} ({:.2}x node) \
                 p99 {p99:?} ({:.2}x node)",
                rate / one,
                rate / node.0,
                p50.as_secs_f64() / node.2.as_secs_f64(),
                p99.as_secs_f64() / node.3.as_secs_f64(),
            );
        }
    }
}

/// This process's CPU time (user + system) so far, from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after the state field.
    let clock_ticks = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks)
}

/// This process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Starts three hosts in this process, with no groups.
fn start_hosts() -> (Vec<Host>, tempfile::TempDir) {
    let dir = bench_dir();
    let addrs = free_addrs(3);
    let hosts: Vec<Host> = addrs
        .keys()
        .map(|id| {
            let config = HostConfig::new(*id, 1, addrs.clone(), addrs[id]);
            Host::start(config, dir.path().join(id.to_string()), |_| {
                Counter::default()
            })
            .expect("host starts")
        })
        .collect();
    (hosts, dir)
}

/// Creates groups `1..=groups` on every host (each group on all three), one thread per host.
fn create_groups(hosts: &[Host], groups: u64) {
    std::thread::scope(|scope| {
        for host in hosts {
            scope.spawn(move || {
                for group in 1..=groups {
                    host.create_group(group, &[1, 2, 3]).expect("group");
                }
            });
        }
    });
}

/// Waits until `done` holds, polling; panics naming `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

/// Runs `op` for every group at once, at most `in_flight` outstanding, retrying a group whose
/// answer `op` reports as retryable; returns the groups that failed for good.
fn for_every_group<F>(groups: u64, in_flight: usize, op: F) -> Vec<(GroupId, String)>
where
    F: Fn(GroupId, std::sync::mpsc::SyncSender<(GroupId, Result<(), (bool, String)>)>),
{
    let (tx, rx) = std::sync::mpsc::sync_channel(groups as usize);
    let mut next = 1u64;
    let mut outstanding = 0usize;
    let mut retries: Vec<GroupId> = Vec::new();
    let mut failed = Vec::new();
    let mut attempts: BTreeMap<GroupId, u32> = BTreeMap::new();
    let mut answers = 0u64;
    let mut last_retry = String::new();
    let started = Instant::now();
    loop {
        while outstanding < in_flight {
            let group = match retries.pop() {
                Some(group) => group,
                None if next <= groups => {
                    next += 1;
                    next - 1
                }
                None => break,
            };
            outstanding += 1;
            op(group, tx.clone());
        }
        if outstanding == 0 {
            return failed;
        }
        let (group, result) = rx.recv().expect("answers keep coming");
        outstanding -= 1;
        answers += 1;
        if answers % 2000 == 0 {
            eprintln!(
                "  {answers} answers, {} retries (the last: {last_retry}), {} failed, {:?}",
                attempts.values().sum::<u32>(),
                failed.len(),
                started.elapsed()
            );
        }
        if let Err((retryable, why)) = result {
            let tries = attempts.entry(group).or_default();
            *tries += 1;
            last_retry = why.clone();
            if retryable && *tries < 200 {
                std::thread::sleep(Duration::from_millis(2));
                retries.push(group);
            } else {
                failed.push((group, why));
            }
        }
    }
}

/// The failover bar: three hosts of `groups` groups each, leaders spread, one write per group,
/// all quiesced; then the host leading a third of the groups goes away. Prints how long until
/// every group has a leader again and checks every acknowledged write is still there.
fn failover_report(groups: u64) {
    let started = Instant::now();
    let (mut hosts, _dir) = start_hosts();
    create_groups(&hosts, groups);
    println!(
        "failover: {groups} groups on 3 hosts created in {:?}",
        started.elapsed()
    );
    let leaders = |hosts: &[Host]| hosts.iter().map(|h| h.status().leaders).sum::<usize>();
    wait_until(
        "every group elects a leader",
        Duration::from_secs(300),
        || leaders(&hosts) == groups as usize,
    );
    // Group g's leadership goes to host g % 3, so each host leads a third.
    let failed = for_every_group(groups, 512, |group, tx| {
        let want = group % 3 + 1;
        let Some(current) = hosts.iter().find(|h| {
            h.group(group)
                .and_then(|g| g.status())
                .is_some_and(|s| s.role == Role::Leader)
        }) else {
            let _ = tx.send((group, Err((true, "no leader yet".into()))));
            return;
        };
        if current.id() == want {
            let _ = tx.send((group, Ok(())));
            return;
        }
        current
            .group(group)
            .expect("group")
            .transfer_leadership(want, move |r| {
                let _ = tx.send((group, r.map_err(|e| (true, e.to_string()))));
            });
    });
    println!(
        "failover: leaders spread over the hosts ({} transfers failed) after {:?}; leaders per \
         host {:?}",
        failed.len(),
        started.elapsed(),
        hosts.iter().map(|h| h.status().leaders).collect::<Vec<_>>()
    );
    // One acknowledged write per group, at its leader.
    let failed = for_every_group(groups, 512, |group, tx| {
        let leader = hosts.iter().find(|h| {
            h.status().leaders > 0
                && h.group(group)
                    .and_then(|g| g.status())
                    .is_some_and(|s| s.role == Role::Leader)
        });
        let Some(leader) = leader else {
            let _ = tx.send((group, Err((true, "no leader".into()))));
            return;
        };
        leader
            .group(group)
            .expect("group")
            .submit_with(vec![7u8; PAYLOAD_BYTES], move |r| {
                let retryable = matches!(
                    r,
                    Err(ProposeError::Backpressure | ProposeError::NotLeader { .. })
                );
                let _ = tx.send((group, r.map(|_| ()).map_err(|e| (retryable, e.to_string()))));
            });
    });
    assert!(
        failed.is_empty(),
        "writes failed: {:?}",
        &failed[..failed.len().min(5)]
    );
    println!(
        "failover: one write acknowledged in each group after {:?}",
        started.elapsed()
    );
    let quiet = wait_until("every replica quiesces", Duration::from_secs(300), || {
        hosts.iter().all(|h| h.status().quiesced == groups as usize)
    });
    println!(
        "failover: all {} replicas quiesced {quiet:?} later",
        groups * 3
    );
    let victim = (0..hosts.len())
        .min_by_key(|&i| hosts[i].status().leaders.abs_diff(groups as usize / 3))
        .expect("three hosts");
    let lost = hosts[victim].status().leaders;
    let killed = hosts.remove(victim);
    let election = Duration::from_millis(10) * 30;
    let down = Instant::now();
    killed.shutdown().expect("shutdown");
    let shutdown_took = down.elapsed();
    let took = wait_until(
        "every group has a leader again",
        Duration::from_secs(120),
        || leaders(&hosts) == groups as usize,
    ) + shutdown_took;
    println!(
        "failover: host {} leading {lost} of {groups} groups shut down (in {shutdown_took:?}); \
         every group had a leader again {took:?} later: {:.1} base election timeouts of \
         {election:?} (bar: 5)",
        victim + 1,
        took.as_secs_f64() / election.as_secs_f64()
    );
    // Every group still holds its write: the counter is at least 1. The read goes to the
    // first surviving host, which answers as leader or as a follower (ReadIndex at the
    // leader), so finding each group's leader costs no status round trip per group.
    let failed = for_every_group(groups, 512, |group, tx| {
        hosts[0]
            .group(group)
            .expect("group")
            .read_with(Vec::new(), move |r| {
                let result = match r {
                    Ok(bytes)
                        if bytes.len() == 8
                            && u64::from_le_bytes(bytes[..].try_into().expect("8 bytes")) >= 1 =>
                    {
                        Ok(())
                    }
                    Ok(bytes) => Err((false, format!("the acknowledged write is gone: {bytes:?}"))),
                    Err(e) => Err((true, e.to_string())),
                };
                let _ = tx.send((group, result));
            });
    });
    for (group, why) in failed.iter().take(5) {
        let seen: Vec<_> = hosts
            .iter()
            .map(|h| h.group(*group).and_then(|g| g.status()))
            .collect();
        eprintln!(
            "failover: group {group} after the failover: {why}; as the hosts see it: {seen:?}"
        );
    }
    assert!(
        failed.is_empty(),
        "after failover: {} groups failed, the first {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    println!(
        "failover: every group's acknowledged write is there after the failover; loop passes \
         late enough to drop ticks, per surviving host: {:?}",
        hosts
            .iter()
            .map(|h| h.status().ticks_dropped)
            .collect::<Vec<_>>()
    );
    // The groups that keep a replica on the lost host quiesce without it.
    let started = Instant::now();
    let quiesced = loop {
        let all = hosts.iter().all(|h| h.status().quiesced == groups as usize);
        if all || started.elapsed() > Duration::from_secs(60) {
            break all;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "failover: every replica on the surviving hosts quiesced again: {quiesced}, after \
         {:?} (quiesced per host: {:?})",
        started.elapsed(),
        hosts
            .iter()
            .map(|h| h.status().quiesced)
            .collect::<Vec<_>>()
    );
    for host in hosts {
        host.shutdown().expect("shutdown");
    }
}

/// Three hosts in this process, `groups` groups each (every group on all three), left idle
/// until they quiesce: prints the CPU the process uses over 30 s (all three hosts together)
/// and the resident memory per group replica, against the same hosts with no groups.
fn idle_report(groups: u64) {
    let (hosts, _dir) = start_hosts();
    std::thread::sleep(Duration::from_secs(2));
    let empty_rss = resident_bytes();
    let started = Instant::now();
    create_groups(&hosts, groups);
    println!(
        "idle: {groups} groups created on 3 hosts in {:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    while hosts.iter().any(|h| h.status().quiesced < groups as usize) {
        assert!(
            Instant::now() < deadline,
            "groups did not quiesce in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "idle: all replicas quiesced {:?} after the start",
        started.elapsed()
    );
    let cpu_before = process_cpu();
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let cpu = process_cpu() - cpu_before;
    let elapsed = window.elapsed();
    let rss = resident_bytes();
    let replicas = groups * 3;
    let quiesced: usize = hosts.iter().map(|h| h.status().quiesced).sum();
    println!(
        "idle: {quiesced} of {replicas} replicas quiesced; CPU of the 3 hosts {:.2}% of one core \
         over {elapsed:.0?}; resident memory {:.1} MiB more than with no groups, {:.1} KiB per \
         group replica",
        cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        rss.saturating_sub(empty_rss) as f64 / (1 << 20) as f64,
        rss.saturating_sub(empty_rss) as f64 / 1024.0 / replicas as f64
    );
}

fn bench(c: &mut Criterion) {
    if let Some(groups) = std::env::var("KETCH_HOST_BENCH_IDLE_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        idle_report(groups);
    }
    if let Some(groups) = std::env::var("KETCH_HOST_BENCH_FAILOVER_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        failover_report(groups);
    }
    side_by_side();
    let mut group = c.benchmark_group("host/throughput");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for groups in [1usize, 16, 64] {
        let hosts = Hosts::start(groups);
        group.throughput(Throughput::Elements(CLIENTS as u64));
        group.bench_with_input(BenchmarkId::from_parameter(groups), &hosts, |b, hosts| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    for client in 0..CLIENTS {
                        scope.spawn(move || hosts.propose(client));
                    }
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

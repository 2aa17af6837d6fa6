//! Network partitions between real `ketch serve` processes, made by a proxy between peers
//! (`tests/e2e/peer_proxy.rs`), with clients on both sides of each partition; the recorded
//! client history must be linearizable (no acknowledged write lost, no stale read).
//!
//! Rounds cycle through three faults, then heal: isolate the leader (a deposed leader keeps
//! clients on the minority side), isolate a random node, and a flaky network where every link
//! drops 10% of Raft messages and delays frames by up to 10 ms. Reproduce with
//! `cargo test --release --test e2e_partition -- --nocapture`; `KETCH_PARTITION_ROUNDS` sets
//! the rounds (default 3), `KETCH_FAULT_SEED` the seed. The rounds run twice: with ReadIndex
//! reads, and with `--read-mode lease`. Soak mode: `KETCH_SOAK_SECS=N` keeps
//! partitioning for N seconds, with fresh keys every round, and prints a summary.

#[path = "e2e/peer_proxy.rs"]
mod peer_proxy;
#[path = "e2e/recorder.rs"]
mod recorder;
#[path = "e2e/support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketch::client::{Client, ClientOptions};
use ketch_history::{check, CheckLimits, Op};
use peer_proxy::{Flaky, PeerProxy};
use recorder::{env_u64, next_random, Recorder};
use support::TestCluster;

const KEYS: u64 = 5;

/// A client that only ever talks to `addr` (one side of a partition), giving up quickly so
/// it keeps issuing operations while its side has no leader.
fn pinned_client(addr: SocketAddr) -> Client {
    let options = ClientOptions {
        io_timeout: Duration::from_secs(2),
        retry_time_max: Duration::from_secs(2),
        // The map would send commands to the leader, across the partition.
        slot_aware: false,
        ..support::test_client_options()
    };
    Client::connect_with(&[addr], options).expect("connect a pinned client")
}

#[test]
fn partitions_with_clients_on_both_sides_are_linearizable() {
    partitions_are_linearizable("read-index");
}

/// The same rounds with leader leases: a deposed leader must stop answering reads from its
/// lease before a new leader can take a write.
#[test]
fn partitions_with_lease_reads_are_linearizable() {
    partitions_are_linearizable("lease");
}

fn partitions_are_linearizable(read_mode: &str) {
    let soak = Duration::from_secs(env_u64("KETCH_SOAK_SECS", 0));
    let done = support::watchdog("partitions", Duration::from_secs(170) + soak * 2);
    let started = Instant::now();
    let key_epoch = Arc::new(AtomicU64::new(0));
    let rounds = env_u64("KETCH_PARTITION_ROUNDS", 3);
    let seed = env_u64("KETCH_FAULT_SEED", 0x9a7);
    eprintln!("partitions ({read_mode} reads): {rounds} rounds, KETCH_FAULT_SEED={seed}");
    let proxy_base = support::free_consecutive_ports(3);
    let proxy_addrs: Vec<SocketAddr> = (0..3)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], proxy_base + i)))
        .collect();
    let mut cluster = TestCluster::new_stopped(3, Some(&proxy_addrs));
    for id in 1..=3 {
        cluster
            .extra_args
            .insert(id, vec!["--read-mode".to_string(), read_mode.to_string()]);
    }
    let proxy = PeerProxy::for_cluster(&cluster, &proxy_addrs);
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_ready(Duration::from_secs(30));

    let recorder = Recorder::new();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    // One client pinned to each node: whichever node is cut off, a client is on its side.
    let workers: Vec<_> = cluster
        .nodes
        .iter()
        .map(|node| {
            let (client_id, addr) = (node.id, node.client_addr);
            let recorder = recorder.clone();
            let stop = Arc::clone(&stop);
            let acknowledged = Arc::clone(&acknowledged);
            let key_epoch = Arc::clone(&key_epoch);
            let ops_max = if soak.is_zero() { 4_000 } else { u64::MAX };
            std::thread::spawn(move || {
                let mut client = pinned_client(addr);
                let mut random = seed ^ client_id.wrapping_mul(0x5851_F42D_4C95_7F2D);
                // Bounded: until the flag, at most 4,000 operations per client (soak: until
                // the flag, which the soak deadline sets).
                for seq in 0..ops_max {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let epoch = key_epoch.load(Ordering::Acquire);
                    let key = format!("p{epoch}.{}", next_random(&mut random) % KEYS).into_bytes();
                    let value = format!("<{client_id}.{seq}>").into_bytes();
                    let op = match next_random(&mut random) % 3 {
                        0 => Op::Append { key, value },
                        1 => Op::Put { key, value },
                        _ => Op::Get { key },
                    };
                    if recorder.run(client_id, &mut client, op) {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let mut random = seed;
    let mut round = 0;
    // Bounded: `rounds`, or until the soak time has passed.
    while round < rounds || started.elapsed() < soak {
        key_epoch.store(round, Ordering::Release);
        std::thread::sleep(Duration::from_millis(800));
        if round % 3 == 2 {
            let before = acknowledged.load(Ordering::Relaxed);
            let dropped_before = proxy.dropped_frames();
            eprintln!(
                "round {round}: flaky links (10% of Raft messages dropped, up to 10 ms delay)"
            );
            proxy.set_flaky(Flaky {
                drop_per_mille: 100,
                delay_max: Duration::from_millis(10),
            });
            std::thread::sleep(Duration::from_millis(3000));
            proxy.heal();
            let during = acknowledged.load(Ordering::Relaxed) - before;
            let dropped = proxy.dropped_frames() - dropped_before;
            eprintln!(
                "round {round}: {during} operations acknowledged, {dropped} messages dropped"
            );
            assert!(
                dropped > 0,
                "the flaky round dropped nothing: it tested nothing"
            );
            round += 1;
            continue;
        }
        let isolated = if round % 3 == 0 {
            cluster.wait_for_leader(Duration::from_secs(20))
        } else {
            1 + next_random(&mut random) % 3
        };
        let rest: Vec<u64> = (1..=3).filter(|&id| id != isolated).collect();
        eprintln!("round {round}: partition [{isolated}] | {rest:?}");
        let before = acknowledged.load(Ordering::Relaxed);
        proxy.partition(&[&[isolated], &rest]);
        let cut_at = Instant::now();
        if round % 3 == 0 {
            // The proxy really partitions: the majority elects a leader of its own.
            let elected = loop {
                let found = rest
                    .iter()
                    .copied()
                    .find(|&id| cluster.info(id).is_some_and(|view| view.role == "leader"));
                if found.is_some() || cut_at.elapsed() > Duration::from_secs(15) {
                    break found;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            assert!(
                elected.is_some(),
                "the majority {rest:?} elected no leader with node {isolated} cut off\n{}",
                cluster.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(2500).saturating_sub(cut_at.elapsed()));
        let during = acknowledged.load(Ordering::Relaxed) - before;
        eprintln!("round {round}: {during} operations acknowledged during the partition");
        proxy.heal();
        round += 1;
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    for worker in workers {
        worker.join().expect("client thread");
    }
    // Final linearizable reads of every key through the healed cluster.
    let leader = cluster.wait_ready(Duration::from_secs(30));
    let mut reader = cluster.client_starting_at(leader);
    for epoch in 0..round {
        for key in 0..KEYS {
            let key = format!("p{epoch}.{key}").into_bytes();
            assert!(
                recorder.run(99, &mut reader, Op::Get { key }),
                "final read failed"
            );
        }
    }
    let history = recorder.history.lock().unwrap();
    let result = check(&history, CheckLimits::default());
    eprintln!(
        "summary: {round} partitions in {:?}; {} operations recorded, {} acknowledged; \
         checker: {result}",
        started.elapsed(),
        history.len(),
        acknowledged.load(Ordering::Relaxed)
    );
    assert!(
        acknowledged.load(Ordering::Relaxed) > 100,
        "too few operations were acknowledged: the test proves nothing\n{}",
        cluster.logs()
    );
    assert!(
        result.is_ok(),
        "client history under partitions is not linearizable (KETCH_FAULT_SEED={seed}): \
         {result}\n{}",
        cluster.logs()
    );
    drop(proxy);
    done.store(true, Ordering::Release);
}

//! Faults under a slot-aware workload on a 3-node cluster of real `ketch serve --shards 16`
//! processes (16 Raft groups per process, one per slot range), with a peer proxy
//! (`tests/e2e/peer_proxy.rs`) between the nodes: each range's recorded history must be
//! linearizable, and no acknowledged write lost.
//!
//! Four slot-aware clients, each knowing every node, SET, APPEND and GET 32 keys, two in each
//! of the 16 ranges; every operation is recorded in the history of its key's range. Rounds
//! cycle through three faults: the node leading the most ranges is cut off from the other two
//! for 4 s (the majority must then lead all 16 ranges), the node leading the most ranges is
//! killed with SIGKILL and restarted 4 s later (likewise), and a flaky network drops 10% of
//! Raft messages on every link and delays frames by up to 10 ms. Every round must see
//! operations acknowledged, and after it every node names a master for each range again. At
//! the end every key is read once more through the healed cluster, each range's history is
//! checked on its own (`ketch_history`), and every range must have acknowledged operations,
//! writes among them, so the test cannot pass by doing nothing.
//!
//! Reproduce with `cargo test --release --test e2e_sharded_partition -- --nocapture`;
//! `KETCH_PARTITION_ROUNDS` sets the rounds (default 6, each fault twice), `KETCH_FAULT_SEED`
//! the seed of the workload's choices.

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
use ketch::kv::cluster::key_slot;
use ketch::kv::resp::Reply;
use ketch_history::{check, CheckLimits, Op};
use peer_proxy::{Flaky, PeerProxy};
use recorder::{env_u64, next_random, Recorder};
use support::TestCluster;

const SHARDS: usize = 16;
/// 16,384 slots in 16 equal ranges.
const SLOTS_PER_RANGE: u16 = 1024;
const KEYS_PER_RANGE: usize = 2;
const CLIENTS: u64 = 4;
/// The client id of the final reads.
const READER: u64 = 99;

/// The index of the range (0..16) holding `key`'s slot; group `index + 1` serves it.
fn range_of(key: &[u8]) -> usize {
    usize::from(key_slot(key) / SLOTS_PER_RANGE)
}

/// `KEYS_PER_RANGE` keys in each range, in range order.
fn pick_keys() -> Vec<Vec<u8>> {
    let mut by_range: Vec<Vec<Vec<u8>>> = vec![Vec::new(); SHARDS];
    // Bounded: a few hundred names fill every range (each is 1/16 of the slots).
    for n in 0..100_000u32 {
        if by_range.iter().all(|keys| keys.len() == KEYS_PER_RANGE) {
            break;
        }
        let key = format!("sp{n}").into_bytes();
        let keys = &mut by_range[range_of(&key)];
        if keys.len() < KEYS_PER_RANGE {
            keys.push(key);
        }
    }
    assert!(by_range.iter().all(|keys| keys.len() == KEYS_PER_RANGE));
    by_range.into_iter().flatten().collect()
}

/// Options for the workload's clients: they give up on a call within a few seconds, so a
/// client whose call meets a fault goes on with other keys.
fn workload_options() -> ClientOptions {
    ClientOptions {
        io_timeout: Duration::from_secs(2),
        retry_time_max: Duration::from_secs(4),
        ..support::test_client_options()
    }
}

/// Node `addr`'s `CLUSTER SLOTS`: each range's first slot and master, or `None` if it does
/// not answer within a second or two.
fn slot_masters(addr: SocketAddr) -> Option<Vec<(u16, SocketAddr)>> {
    let options = ClientOptions {
        connect_timeout: Duration::from_millis(500),
        io_timeout: Duration::from_secs(1),
        attempts_max: 1,
        retry_time_max: Duration::from_secs(1),
        slot_aware: false,
        ..support::test_client_options()
    };
    let mut client = Client::connect_with(&[addr], options).ok()?;
    let Reply::Array(Some(entries)) = client.command(&["CLUSTER", "SLOTS"]).ok()? else {
        return None;
    };
    let mut masters = Vec::new();
    for entry in entries {
        let Reply::Array(Some(fields)) = entry else {
            return None;
        };
        let (Some(Reply::Integer(first)), Some(Reply::Array(Some(master)))) =
            (fields.first(), fields.get(2))
        else {
            return None;
        };
        let (Some(Reply::Bulk(Some(host))), Some(Reply::Integer(port))) =
            (master.first(), master.get(1))
        else {
            return None;
        };
        let master = format!("{}:{port}", String::from_utf8_lossy(host))
            .parse()
            .ok()?;
        masters.push((u16::try_from(*first).ok()?, master));
    }
    masters.sort();
    Some(masters)
}

/// True if `masters` names a master for each of the 16 ranges, none of them `not`.
fn all_ranges_led(masters: &[(u16, SocketAddr)], not: Option<SocketAddr>) -> bool {
    masters.len() == SHARDS
        && masters.iter().enumerate().all(|(i, &(first, master))| {
            usize::from(first) == i * usize::from(SLOTS_PER_RANGE) && Some(master) != not
        })
}

/// Waits until each node of `ids` names a master for every range, none of them node `not`;
/// the time it took.
fn wait_for_masters(
    cluster: &TestCluster,
    ids: &[u64],
    not: Option<u64>,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let not_addr = not.map(|id| cluster.node(id).client_addr);
    for &id in ids {
        let mut last = None;
        loop {
            last = slot_masters(cluster.node(id).client_addr).or(last);
            if last.as_ref().is_some_and(|m| all_ranges_led(m, not_addr)) {
                break;
            }
            assert!(
                started.elapsed() < limit,
                "node {id} does not name a master for every range (none of them {not:?}) \
                 within {limit:?}: {last:?}\n{}",
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    started.elapsed()
}

/// The node leading the most ranges as node `via` sees it, and how many it leads.
fn busiest(cluster: &TestCluster, via: u64) -> (u64, usize) {
    let masters = slot_masters(cluster.node(via).client_addr).unwrap_or_default();
    cluster
        .nodes
        .iter()
        .map(|n| {
            let led = masters.iter().filter(|m| m.1 == n.client_addr).count();
            (n.id, led)
        })
        .max_by_key(|&(id, led)| (led, std::cmp::Reverse(id)))
        .expect("three nodes")
}

/// What the workload has had acknowledged, per range.
#[derive(Default)]
struct Progress {
    ops: [AtomicU64; SHARDS],
    writes: [AtomicU64; SHARDS],
    /// Calls that failed (recorded as unknown: they may or may not have taken effect).
    unknown: [AtomicU64; SHARDS],
}

impl Progress {
    fn total_ops(&self) -> u64 {
        self.ops.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

#[test]
fn faults_under_a_slot_aware_workload_keep_every_shard_linearizable() {
    let done = support::watchdog("sharded_partition", Duration::from_secs(240));
    let started = Instant::now();
    let rounds = env_u64("KETCH_PARTITION_ROUNDS", 6);
    let seed = env_u64("KETCH_FAULT_SEED", 0x5a4d);
    eprintln!("sharded partitions: {rounds} rounds, KETCH_FAULT_SEED={seed}");
    let keys = Arc::new(pick_keys());

    let proxy_base = support::free_consecutive_ports(3);
    let proxy_addrs: Vec<SocketAddr> = (0..3)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], proxy_base + i)))
        .collect();
    let mut cluster = TestCluster::new_stopped(3, Some(&proxy_addrs));
    let args = cluster.sharded_args(SHARDS as u16);
    for id in 1..=3 {
        cluster.extra_args.insert(id, args.clone());
    }
    let proxy = PeerProxy::for_cluster(&cluster, &proxy_addrs);
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_ready(Duration::from_secs(60));
    let took = wait_for_masters(&cluster, &[1, 2, 3], None, Duration::from_secs(60));
    eprintln!(
        "every range led after {:?} (maps complete {took:?} after the first leader)",
        started.elapsed()
    );

    // One history per range: each range is its own set of registers, checked alone.
    let recorders: Arc<Vec<Recorder>> = Arc::new((0..SHARDS).map(|_| Recorder::new()).collect());
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (1..=CLIENTS)
        .map(|client_id| {
            // Each client's any-node failover starts at a different node.
            let mut addrs = cluster.client_addrs();
            addrs.rotate_left((client_id % 3) as usize);
            let (recorders, progress) = (Arc::clone(&recorders), Arc::clone(&progress));
            let (stop, keys) = (Arc::clone(&stop), Arc::clone(&keys));
            std::thread::spawn(move || {
                let mut client =
                    Client::connect_with(&addrs, workload_options()).expect("connect a client");
                let mut random = seed ^ client_id.wrapping_mul(0x5851_F42D_4C95_7F2D);
                // Bounded: until the flag, at most 200,000 operations per client (about 600 a
                // second on a quiet 2-core machine: far more than the rounds take; each round
                // checks that the workload still runs).
                for seq in 0..200_000u64 {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let key = keys[(next_random(&mut random) % keys.len() as u64) as usize].clone();
                    let range = range_of(&key);
                    let value = format!("<{client_id}.{seq}>").into_bytes();
                    let op = match next_random(&mut random) % 5 {
                        0 | 1 => Op::Put { key, value },
                        2 => Op::Append { key, value },
                        _ => Op::Get { key },
                    };
                    let is_write = !matches!(op, Op::Get { .. });
                    if recorders[range].run(client_id, &mut client, op) {
                        progress.ops[range].fetch_add(1, Ordering::Relaxed);
                        if is_write {
                            progress.writes[range].fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        progress.unknown[range].fetch_add(1, Ordering::Relaxed);
                    }
                }
                client.stats()
            })
        })
        .collect();

    let all = [1, 2, 3];
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(1000));
        let before = progress.total_ops();
        let (victim, led) = busiest(&cluster, all[(round % 3) as usize]);
        let rest: Vec<u64> = all.iter().copied().filter(|&id| id != victim).collect();
        match round % 3 {
            0 => {
                eprintln!("round {round}: partition [{victim}] (leads {led} ranges) | {rest:?}");
                proxy.partition(&[&[victim], &rest]);
                let cut_at = Instant::now();
                // The proxy really partitions: the majority leads every range without it.
                let took = wait_for_masters(&cluster, &rest, Some(victim), Duration::from_secs(30));
                eprintln!("round {round}: the majority leads every range after {took:?}");
                std::thread::sleep(Duration::from_secs(4).saturating_sub(cut_at.elapsed()));
                proxy.heal();
            }
            1 => {
                eprintln!("round {round}: kill -9 node {victim} (leads {led} ranges)");
                cluster.kill9(victim);
                let killed_at = Instant::now();
                let took = wait_for_masters(&cluster, &rest, Some(victim), Duration::from_secs(30));
                eprintln!("round {round}: the survivors lead every range after {took:?}");
                std::thread::sleep(Duration::from_secs(4).saturating_sub(killed_at.elapsed()));
                cluster.spawn(victim);
                let addr = cluster.node(victim).client_addr;
                let deadline = Instant::now() + Duration::from_secs(30);
                while !support::ping(addr) {
                    assert!(
                        Instant::now() < deadline,
                        "node {victim} does not answer PING after its restart\n{}",
                        cluster.logs()
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                eprintln!("round {round}: node {victim} restarted");
            }
            _ => {
                let dropped_before = proxy.dropped_frames();
                eprintln!(
                    "round {round}: flaky links (10% of Raft messages dropped, up to 10 ms delay)"
                );
                proxy.set_flaky(Flaky {
                    drop_per_mille: 100,
                    delay_max: Duration::from_millis(10),
                });
                std::thread::sleep(Duration::from_secs(4));
                proxy.heal();
                let dropped = proxy.dropped_frames() - dropped_before;
                eprintln!("round {round}: {dropped} Raft messages dropped");
                assert!(
                    dropped > 0,
                    "the flaky round dropped nothing: it tested nothing"
                );
            }
        }
        let during = progress.total_ops() - before;
        assert!(
            during > 0,
            "round {round}: no operation acknowledged: the workload stopped\n{}",
            cluster.logs()
        );
        let took = wait_for_masters(&cluster, &all, None, Duration::from_secs(30));
        eprintln!(
            "round {round}: {during} operations acknowledged; every node names 16 masters \
             {took:?} after the heal"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    for (client_id, worker) in (1..=CLIENTS).zip(workers) {
        let stats = worker.join().expect("client thread");
        eprintln!("client {client_id}: {stats:?}");
    }

    // Final reads of every key through the healed cluster: each acknowledged write must be
    // in the value read (or overwritten by a later one), which the check below decides.
    let mut reader = cluster.client_starting_at(1);
    for key in keys.iter() {
        let op = Op::Get { key: key.clone() };
        assert!(
            recorders[range_of(key)].run(READER, &mut reader, op),
            "the final read of {} failed\n{}",
            String::from_utf8_lossy(key),
            cluster.logs()
        );
    }

    let mut failures = Vec::new();
    let (mut recorded, mut acknowledged, mut acknowledged_writes) = (0, 0, 0);
    for range in 0..SHARDS {
        let history = recorders[range].history.lock().unwrap();
        let ops = progress.ops[range].load(Ordering::Relaxed);
        let writes = progress.writes[range].load(Ordering::Relaxed);
        let unknown = progress.unknown[range].load(Ordering::Relaxed);
        let checked_at = Instant::now();
        let result = check(&history, CheckLimits::default());
        eprintln!(
            "range {range} (slots {}-{}): {} operations recorded, {ops} acknowledged \
             ({writes} writes), {unknown} failed; checked in {:?}: {result}",
            range * usize::from(SLOTS_PER_RANGE),
            (range + 1) * usize::from(SLOTS_PER_RANGE) - 1,
            history.len(),
            checked_at.elapsed()
        );
        recorded += history.len();
        acknowledged += ops;
        acknowledged_writes += writes;
        if !result.is_ok() {
            failures.push(format!("range {range}: {result}"));
        }
        assert!(
            ops >= 10 && writes >= 3,
            "range {range} acknowledged only {ops} operations ({writes} writes): the test \
             proves nothing for it\n{}",
            cluster.logs()
        );
    }
    eprintln!(
        "summary: {rounds} rounds in {:?}; {recorded} operations recorded, {acknowledged} \
         acknowledged, {acknowledged_writes} of them writes",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "a range's history under faults is not linearizable (KETCH_FAULT_SEED={seed}):\n{}\n{}",
        failures.join("\n"),
        cluster.logs()
    );
    drop(proxy);
    done.store(true, Ordering::Release);
}

//! Snapshots: local compaction, InstallSnapshot to lagging followers, under loss and crashes;
//! scripted: the chunks of one transfer.

use ketch::raft::NodeId;

use super::{await_leader, core, elect, followers, pick, size_for, LIVENESS_BOUND_TICKS};
use crate::cluster::{Cluster, RunReport, SimConfig};
use crate::invariants::violation;
use crate::kv::Command;
use crate::network::NetworkFaults;

fn snapshot_config(n: u64) -> SimConfig {
    let mut cfg = SimConfig::new(n);
    cfg.snapshot_threshold_entries = 25;
    cfg.snapshot_chunk_bytes = 128;
    cfg.clients = 4;
    cfg.op_start_per_mille = 400;
    cfg
}

/// Every node snapshots and compacts its log as it applies; restarts use the snapshot.
pub fn snapshot_basic(seed: u64) -> RunReport {
    let n = size_for(seed, &[1, 3, 5]);
    let mut c = Cluster::new(snapshot_config(n), seed);
    c.clients_active = true;
    await_leader(&mut c, 60);
    c.run_ticks(150);
    for id in c.ids() {
        if c.node(id).disk.durable.snapshot.index == 0 {
            violation(format!("node {id} never took a snapshot"));
        }
    }
    let ids = c.ids();
    let victim = pick(&mut c, &ids);
    c.crash(victim);
    c.restart(victim);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// A follower that was down while the leader compacted receives a snapshot in chunks.
pub fn snapshot_install_lagging(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut c = Cluster::new(snapshot_config(n), seed);
    c.clients_active = true;
    let leader = await_leader(&mut c, 60);
    let f = followers(&c, leader);
    let lagging = pick(&mut c, &f);
    c.crash(lagging);
    c.run_ticks(150);
    c.restart(lagging);
    let installed = c.run_until(100, |c| {
        c.core(lagging)
            .is_some_and(|core| core.stats().snapshots_installed > 0)
    });
    if !installed {
        violation(format!(
            "lagging follower {lagging} never installed a snapshot"
        ));
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Snapshot transfers over a lossy, duplicating, reordering network with partitions.
pub fn snapshot_install_unreliable(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut cfg = snapshot_config(n);
    cfg.network = NetworkFaults::unreliable();
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    let ids = c.ids();
    for _ in 0..10 {
        let victim = pick(&mut c, &ids);
        c.net.isolate(victim, &ids);
        let pause = c.rng.range(20, 60);
        c.run_ticks(pause);
        c.net.heal();
        let pause = c.rng.range(5, 30);
        c.run_ticks(pause);
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Crashes in the middle of snapshot transfers and installs.
pub fn snapshot_install_crash(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut c = Cluster::new(snapshot_config(n), seed);
    c.clients_active = true;
    let ids = c.ids();
    for _ in 0..10 {
        let victim: NodeId = pick(&mut c, &ids);
        c.crash(victim);
        let pause = c.rng.range(10, 50);
        c.run_ticks(pause);
        c.restart(victim);
        // Crash it again soon after, possibly mid-install.
        let pause = c.rng.range(0, 8);
        c.run_ticks(pause);
        if c.rng.range(0, 2) == 0 {
            c.crash(victim);
            c.run_ticks(2);
            c.restart(victim);
        }
        let pause = c.rng.range(5, 20);
        c.run_ticks(pause);
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a follower that was away while the leader compacted receives the snapshot in
/// `snapshot_chunk_bytes` chunks, each sent once, and then the entries after it.
pub fn lagging_follower_receives_a_snapshot_in_chunks(seed: u64) -> RunReport {
    let mut cfg = SimConfig::lockstep(3);
    cfg.snapshot_threshold_entries = 20;
    cfg.snapshot_chunk_bytes = 1000;
    let mut c = Cluster::new(cfg, seed);
    let leader = elect(&mut c);
    let lagging = followers(&c, leader)[0];
    c.paused.insert(lagging);
    for _ in 0..100 {
        core(&mut c, leader).propose(put_2500()).unwrap();
        c.settle();
    }
    c.tick_all(2);
    assert!(core(&mut c, leader).log().snapshot().index >= 20);
    assert!(core(&mut c, leader).log().first_index() > 1);
    assert_eq!(core(&mut c, leader).log().snapshot().size_bytes, 2500);
    c.paused.clear();
    c.tick_all(10);
    assert_eq!(core(&mut c, lagging).stats().snapshots_installed, 1);
    let last_index = core(&mut c, leader).log().last_index();
    assert_eq!(core(&mut c, lagging).log().last_index(), last_index);
    let commit = core(&mut c, leader).log().commit();
    assert_eq!(core(&mut c, lagging).log().commit(), commit);
    assert_eq!(
        c.net.sent_by_kind["InstallSnapshot"], 3,
        "2500 bytes in chunks of 1000"
    );
    c.finish(LIVENESS_BOUND_TICKS)
}

/// A put that leaves the state machine, and so every snapshot of it, 2500 bytes long: one key
/// of 1 byte with a value of 2491 (each length takes 4 bytes).
fn put_2500() -> Vec<u8> {
    Command::put(b"k", vec![7; 2491]).encode()
}

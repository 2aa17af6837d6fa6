//! ReadIndex reads under partitions: a deposed leader must never serve a stale read;
//! scripted: a read waits for a quorum's heartbeat round.

use ketch::raft::{Fault, MessageBody, ReadMode, ReadState};

use super::{core, elect, followers, pick, size_for, LIVENESS_BOUND_TICKS};
use crate::cluster::{Cluster, RunReport, SimConfig};

/// Read-heavy clients talk to every node that believes it leads (stale ones included) while
/// leaders are repeatedly cut off; the history must stay linearizable.
pub fn reads_under_partitions(seed: u64, read_mode: ReadMode, fault: Option<Fault>) -> RunReport {
    reads_under_partitions_with(
        SimConfig::new(size_for(seed, &[3, 5])),
        seed,
        read_mode,
        fault,
    )
}

/// Lease reads while clocks drift: about half the nodes run slow, dropping one tick in every
/// `slow_every` (see [`lease_drift_allowed_every`]). A slow leader measures its lease on a slow
/// clock, so the lease lasts longer in real time than it believes, while the followers' election
/// timers run at full speed.
pub fn lease_reads_under_clock_drift(seed: u64, slow_every: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut cfg = SimConfig::new(n);
    let mut pick_rng = ketch::raft::SplitMix64::new(seed ^ 0xD41F7);
    for id in 1..=n {
        if pick_rng.next_u64() % 2 == 0 {
            cfg.slow_clocks.insert(id, slow_every);
        }
    }
    if cfg.slow_clocks.is_empty() {
        cfg.slow_clocks.insert(1 + seed % n, slow_every);
    }
    reads_under_partitions_with(cfg, seed, ReadMode::Lease, None)
}

/// The largest drift the lease allows, as "one tick dropped in every N": a lease of
/// `election_timeout - lease_margin` ticks on a clock running at `1 - 1/N` lasts
/// `(E - m) / (1 - 1/N)` real ticks, which must not exceed the followers' election timeout
/// `E`: so `N >= E / m`.
pub fn lease_drift_allowed_every() -> u64 {
    let cfg = SimConfig::new(3);
    let margin = u64::from(ketch::raft::Config::new(1).lease_margin_ticks);
    u64::from(cfg.election_timeout_ticks).div_ceil(margin)
}

fn reads_under_partitions_with(
    mut cfg: SimConfig,
    seed: u64,
    read_mode: ReadMode,
    fault: Option<Fault>,
) -> RunReport {
    cfg.read_mode = read_mode;
    cfg.fault = fault;
    cfg.clients = 6;
    cfg.keys = 2;
    cfg.op_start_per_mille = 500;
    cfg.op_timeout_ticks = 15;
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    let ids = c.ids();
    for _ in 0..8 {
        let pause = c.rng.range(20, 40);
        c.run_ticks(pause);
        let leader = c.leader();
        if let (Some(leader), true) = (leader, c.rng.range(0, 2) == 0) {
            // Asymmetric: one follower stops hearing the leader but still reaches everyone
            // else. Leader stickiness must keep it from being elected while the leader (and
            // its lease) is alive.
            let others: Vec<u64> = ids.iter().copied().filter(|id| *id != leader).collect();
            let follower = pick(&mut c, &others);
            c.net.cut_link(leader, follower);
        } else if let Some(leader) = leader {
            c.net.isolate(leader, &ids);
        } else {
            let victim = pick(&mut c, &ids);
            c.net.isolate(victim, &ids);
        }
        // Long enough for a new leader to be elected and take writes while the old one
        // still believes it leads.
        let pause = c.rng.range(12, 30);
        c.run_ticks(pause);
        c.net.heal();
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a read at the leader waits for a heartbeat round that a quorum answers (thesis
/// §6.4); a follower's read is forwarded to the leader and answered with the same index.
pub fn read_index_waits_for_a_quorum_heartbeat_round(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    c.tick_all(2);
    let commit = core(&mut c, leader).log().commit();
    core(&mut c, leader).read_index(5).unwrap();
    let ready = core(&mut c, leader).ready();
    assert!(ready.read_states.is_empty());
    let heartbeats = ready
        .messages
        .iter()
        .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
        .count();
    assert_eq!(heartbeats, 2, "a read starts a heartbeat round");
    c.handle_ready(leader, ready);
    c.settle();
    assert_eq!(
        c.node(leader).read_states,
        vec![ReadState {
            ctx: 5,
            index: commit
        }]
    );
    // A follower forwards its read to the leader and gets the answer back.
    let follower = followers(&c, leader)[0];
    core(&mut c, follower).read_index(6).unwrap();
    c.settle();
    assert_eq!(
        c.node(follower).read_states,
        vec![ReadState {
            ctx: 6,
            index: commit
        }]
    );
    c.finish(LIVENESS_BOUND_TICKS)
}

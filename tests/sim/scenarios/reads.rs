//! ReadIndex reads under partitions: a deposed leader must never serve a stale read;
//! scripted: a read waits for a quorum's heartbeat round.

use ketch::raft::{Fault, MessageBody, ReadMode, ReadState};

use super::{core, elect, followers, pick, size_for, LIVENESS_BOUND_TICKS};
use crate::cluster::{Cluster, RunReport, SimConfig};

/// Read-heavy clients talk to every node that believes it leads (stale ones included) while
/// leaders are repeatedly cut off; the history must stay linearizable.
pub fn reads_under_partitions(seed: u64, read_mode: ReadMode, fault: Option<Fault>) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut cfg = SimConfig::new(n);
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

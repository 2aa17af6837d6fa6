//! ReadIndex reads under partitions: a deposed leader must never serve a stale read.

use ketch::raft::{Fault, ReadMode};

use super::{pick, size_for, LIVENESS_BOUND_TICKS};
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

//! Crashes (followers, leaders, everyone), Figure 8, and churn with crashes and partitions;
//! scripted: a restart from durable state.

use ketch::raft::{Core, Fault, NodeId};

use super::{
    await_leader, core, elect, followers, pick, pick_many, size_for, LIVENESS_BOUND_TICKS,
};
use crate::cluster::{Cluster, RunReport, SimConfig};
use crate::network::NetworkFaults;

/// Which nodes a persistence scenario crashes.
#[derive(Debug, Clone, Copy)]
pub enum Victims {
    /// A random follower at a time.
    Followers,
    /// The leader at a time.
    Leaders,
    /// Every node at once.
    Everyone,
}

/// Crashes (losing unsynced writes, tearing the last) under client load, then restarts.
pub fn persistence(seed: u64, victims: Victims) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    c.clients_active = true;
    await_leader(&mut c, 60);
    for _ in 0..6 {
        let down_for = c.rng.range(1, 25);
        let crashed: Vec<NodeId> = match victims {
            Victims::Followers => match c.leader() {
                Some(leader) => {
                    let f = followers(&c, leader);
                    pick_many(&mut c, &f, ((n - 1) / 2) as usize)
                }
                None => Vec::new(),
            },
            Victims::Leaders => c.leader().into_iter().collect(),
            Victims::Everyone => c.ids(),
        };
        for id in &crashed {
            c.crash(*id);
        }
        c.run_ticks(down_for);
        for id in &crashed {
            c.restart(*id);
        }
        let pause = c.rng.range(5, 40);
        c.run_ticks(pause);
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Raft Figure 8 (6.824 "Figure8"): leaders crash right after proposing, so entries of old
/// terms sit on some nodes; only current-term commits may count replicas.
pub fn figure8(seed: u64, unreliable: bool, fault: Option<Fault>) -> RunReport {
    let mut cfg = SimConfig::new(5);
    cfg.fault = fault;
    cfg.clients = 4;
    // Sparse proposals (6.824's Figure 8 test proposes once per iteration): new leaders often
    // replicate old-term entries before any entry of their own term exists.
    cfg.op_start_per_mille = 10;
    if unreliable {
        cfg.network = NetworkFaults::unreliable();
    }
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    let ids = c.ids();
    for _ in 0..40 {
        if let Some(leader) = c.leader() {
            if c.rng.range(0, 2) == 0 {
                c.crash(leader);
            }
        }
        // Mostly short pauses (crash before replication), sometimes long (commit).
        let pause_ticks = if c.rng.range(0, 10) < 7 {
            c.rng.range(1, 4)
        } else {
            c.rng.range(5, 40)
        };
        c.run_ticks(pause_ticks);
        if unreliable && c.rng.range(0, 4) == 0 {
            let a = pick(&mut c, &ids);
            let b = pick(&mut c, &ids);
            if a != b {
                c.net.cut_link(a, b);
            }
        }
        if unreliable && c.rng.range(0, 6) == 0 {
            c.net.heal();
        }
        let up = ids.iter().filter(|id| c.is_up(**id)).count();
        if up < 3 {
            let down: Vec<NodeId> = ids.iter().copied().filter(|id| !c.is_up(*id)).collect();
            let revive = pick(&mut c, &down);
            c.restart(revive);
        }
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Everything at once: unreliable network, random partitions (some asymmetric), crashes.
pub fn churn(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5, 7]);
    let mut cfg = SimConfig::new(n);
    cfg.network = NetworkFaults::unreliable();
    cfg.clients = 5;
    cfg.op_start_per_mille = 300;
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    let ids = c.ids();
    for _ in 0..30 {
        match c.rng.range(0, 6) {
            0 => {
                let victim = pick(&mut c, &ids);
                c.crash(victim);
            }
            1 => {
                let down: Vec<NodeId> = ids.iter().copied().filter(|id| !c.is_up(*id)).collect();
                if !down.is_empty() {
                    let revive = pick(&mut c, &down);
                    c.restart(revive);
                }
            }
            2 => {
                let k = c.rng.range(1, n);
                let side = pick_many(&mut c, &ids, k as usize);
                let other: Vec<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|id| !side.contains(id))
                    .collect();
                c.net.partition(&[side, other]);
            }
            3 => {
                let a = pick(&mut c, &ids);
                let b = pick(&mut c, &ids);
                if a != b {
                    c.net.cut_link(a, b);
                }
            }
            _ => c.net.heal(),
        }
        let pause = c.rng.range(1, 30);
        c.run_ticks(pause);
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Partitions the cluster so that only `group` is connected and waits until `target` leads
/// it, transferring leadership if another member of the group wins. Returns whether it did.
fn lead_group(c: &mut Cluster, target: NodeId, group: &[NodeId]) -> bool {
    let rest: Vec<NodeId> = c
        .ids()
        .into_iter()
        .filter(|id| !group.contains(id))
        .collect();
    c.net.partition(&[group.to_vec(), rest]);
    for _ in 0..5 {
        let found = c.run_until(100, |c| {
            c.leaders().iter().any(|(id, _)| group.contains(id))
        });
        if !found {
            return false;
        }
        let (leader, _) = c
            .leaders()
            .into_iter()
            .filter(|(id, _)| group.contains(id))
            .max_by_key(|(_, t)| *t)
            .expect("found");
        if leader == target {
            return true;
        }
        if let Some(core) = c.core_mut(leader) {
            let _ = core.transfer_leader(target);
        }
        c.drive(leader);
        if c.run_until(30, |c| c.leader() == Some(target)) {
            return true;
        }
    }
    false
}

/// Raft Figure 8, scripted: an entry of an old term is replicated to a majority by a later
/// leader, which then crashes; a node holding a conflicting entry of an intermediate term
/// can still win. A correct core never counts such an entry as committed (Raft §5.4.2).
pub fn figure8_scripted(seed: u64, fault: Option<Fault>) -> RunReport {
    let mut cfg = SimConfig::new(5);
    cfg.fault = fault;
    cfg.clients = 2;
    let mut c = Cluster::new(cfg, seed);
    let (s1, s2, s3, s4, s5) = (1, 2, 3, 4, 5);
    let ids = c.ids();
    // (a) S1 leads; its entry X reaches S2 only.
    if !lead_group(&mut c, s1, &ids) {
        return c.finish(LIVENESS_BOUND_TICKS);
    }
    c.run_ticks(3);
    c.net.partition(&[vec![s1, s2], vec![s3, s4, s5]]);
    let x = c.core_mut(s1).expect("up").propose(b"X".to_vec());
    c.drive(s1);
    c.run_ticks(2);
    c.crash(s1);
    // (b) S5 leads S3, S4; (c) appends Y at the same index, durably, and crashes.
    if x.is_ok() && lead_group(&mut c, s5, &[s3, s4, s5]) {
        c.net.isolate(s5, &ids);
        let _ = c.core_mut(s5).expect("up").propose(b"Y".to_vec());
        c.drive(s5);
        c.run_ticks(1);
        c.crash(s5);
        // (d) S1 returns and leads S2, S3, S4; X spreads to a majority.
        c.restart(s1);
        if lead_group(&mut c, s1, &[s1, s2, s3, s4]) {
            c.run_ticks(10);
            // (e) S1 and S2 crash; S5 returns and can win S3's and S4's votes only if they
            // lack any entry of a term above Y's.
            c.crash(s1);
            c.crash(s2);
            c.restart(s5);
            c.net.partition(&[vec![s3, s4, s5], vec![s1, s2]]);
            c.run_ticks(60);
        }
    }
    c.clients_active = true;
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a core rebuilt from a node's disk has its term and log, and applies again from
/// the snapshot; a log with a gap is refused.
pub fn restart_restores_hard_state_and_log(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    core(&mut c, leader).propose(b"p".to_vec()).unwrap();
    c.tick_all(2);
    let durable = c.node(leader).disk.durable.to_state();
    let config = c.config(leader).clone();
    let node = Core::new(config.clone(), durable.clone()).unwrap();
    assert_eq!(node.term(), durable.hard_state.term);
    let last_index = core(&mut c, leader).log().last_index();
    assert_eq!(node.log().last_index(), last_index);
    assert_eq!(node.log().applied(), 0);
    let mut broken = durable;
    broken.entries.remove(0);
    assert!(Core::new(config, broken).is_err());
    c.finish(LIVENESS_BOUND_TICKS)
}

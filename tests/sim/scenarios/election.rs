//! Elections: initial, after failures, under churn, and their message costs.

use ketch::raft::Role;

use super::{await_leader, followers, pick_many, size_for, LIVENESS_BOUND_TICKS};
use crate::cluster::{Cluster, RunReport, SimConfig};
use crate::invariants::violation;

/// One leader emerges and, on a reliable network, stays (no needless re-elections).
pub fn initial_election(seed: u64) -> RunReport {
    let n = size_for(seed, &[1, 3, 5, 7]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    let leader = await_leader(&mut c, 60);
    let term = c.core(leader).expect("up").term();
    c.run_ticks(100);
    if c.leader() != Some(leader) || c.core(leader).expect("up").term() != term {
        violation(format!(
            "leader changed without failures (was {leader} in term {term})"
        ));
    }
    for id in c.ids() {
        let core = c.core(id).expect("up");
        if core.term() != term || core.leader() != Some(leader) {
            violation(format!(
                "node {id} does not follow leader {leader} in term {term}"
            ));
        }
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// A new leader after the leader crashes; no leader without a majority; recovery after.
pub fn reelection(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5, 7]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    c.clients_active = true;
    let leader = await_leader(&mut c, 60);
    c.crash(leader);
    let new_leader = await_leader(&mut c, 60);
    assert_ne!(new_leader, leader);
    c.restart(leader);
    c.run_ticks(20);
    // Crash a majority: nobody may lead once check-quorum has run.
    let ids = c.voter_ids();
    let victims = pick_many(&mut c, &ids, (n / 2 + 1) as usize);
    for id in &victims {
        c.crash(*id);
    }
    c.run_ticks(3 * u64::from(c.cfg.election_timeout_ticks));
    if let Some(l) = c.leader() {
        violation(format!("node {l} leads without a majority"));
    }
    for id in &victims {
        c.restart(*id);
    }
    await_leader(&mut c, 80);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Repeated crashes of up to a minority: a leader always emerges among the majority.
pub fn many_elections(seed: u64) -> RunReport {
    let n = 7;
    let mut c = Cluster::new(SimConfig::new(n), seed);
    c.clients_active = true;
    await_leader(&mut c, 60);
    for _ in 0..8 {
        let ids = c.voter_ids();
        let victims = pick_many(&mut c, &ids, 3);
        for id in &victims {
            c.crash(*id);
        }
        await_leader(&mut c, 100);
        c.run_ticks(10);
        for id in &victims {
            c.restart(*id);
        }
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Message costs: an election on a quiet network takes a bounded number of messages, and an
/// idle leader sends one heartbeat per follower per heartbeat interval (plus answers).
pub fn message_counts(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    let leader = await_leader(&mut c, 60);
    let election_messages: u64 = ["PreVote", "PreVoteResponse", "Vote", "VoteResponse"]
        .iter()
        .map(|k| c.net.sent_by_kind.get(k).copied().unwrap_or(0))
        .sum();
    let campaigns: u64 = c
        .ids()
        .iter()
        .map(|id| c.core(*id).expect("up").stats().campaigns_started)
        .sum();
    // Each campaign (pre-vote or vote phase) costs at most a request and an answer per peer.
    if election_messages > campaigns * 2 * (n - 1) {
        violation(format!(
            "{election_messages} election messages for {campaigns} campaigns"
        ));
    }
    if campaigns > 3 * n {
        violation(format!(
            "{campaigns} campaigns to elect one leader among {n}"
        ));
    }
    c.run_ticks(5);
    let before = c.net.total_sent();
    let idle_ticks = 100;
    c.run_ticks(idle_ticks);
    let sent = c.net.total_sent() - before;
    // One heartbeat and one answer per follower per tick (heartbeat interval is one tick).
    let bound = idle_ticks * 2 * (n - 1) + 4 * (n - 1);
    if sent > bound {
        violation(format!(
            "idle leader {leader}: {sent} messages in {idle_ticks} ticks (bound {bound})"
        ));
    }
    if c.core(leader).expect("up").role() != Role::Leader {
        violation("the leader changed while idle".to_string());
    }
    let f = followers(&c, leader);
    assert_eq!(f.len() as u64, n - 1);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Elections under a storm of short crashes with slow disks and without pre-vote, so that
/// competing candidates share terms and votes sit unsynced for long: a vote that is not
/// durable before it is sent would let a restarted voter vote twice in one term.
pub fn election_crash_storm(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut cfg = SimConfig::new(n);
    cfg.pre_vote = false;
    cfg.disk_delay_steps = (5, 40);
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    let ids = c.ids();
    for _ in 0..600 {
        c.run_ticks(1);
        if c.rng.range(0, 100) < 30 {
            let victim = super::pick(&mut c, &ids);
            c.crash(victim);
        }
        let down: Vec<u64> = ids.iter().copied().filter(|id| !c.is_up(*id)).collect();
        for id in down {
            if c.rng.range(0, 100) < 50 {
                c.restart(id);
            }
        }
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

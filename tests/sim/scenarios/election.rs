//! Elections: initial, after failures, under churn, and their message costs; scripted:
//! pre-vote, check-quorum and leader stickiness.

use ketch::raft::{Message, MessageBody, Role};

use super::{await_leader, core, elect, followers, pick_many, size_for, LIVENESS_BOUND_TICKS};
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

/// Scripted: a follower cut off from the cluster keeps campaigning with pre-votes (thesis
/// §9.6), which never raise its term.
pub fn prevote_keeps_a_partitioned_node_from_bumping_terms(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    let term = core(&mut c, leader).term();
    let isolated = followers(&c, leader)[0];
    // Only the isolated node ticks, and its messages are dropped.
    c.paused.insert(isolated);
    for _ in 0..100 {
        core(&mut c, isolated).tick();
        let ready = core(&mut c, isolated).ready();
        assert!(ready.messages.iter().all(|m| m.term <= term + 1));
        c.handle_ready(isolated, ready);
    }
    c.settle();
    assert_eq!(
        core(&mut c, isolated).term(),
        term,
        "pre-vote never increments the term"
    );
    assert!(core(&mut c, isolated).stats().campaigns_started > 0);
    assert_eq!(core(&mut c, isolated).role(), Role::PreCandidate);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a leader that hears from no quorum steps down (check-quorum, thesis §6.2), and
/// a read it was confirming is never answered.
pub fn check_quorum_deposes_an_isolated_leader_and_drops_its_reads(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    c.tick_all(3);
    c.paused.extend(followers(&c, leader));
    core(&mut c, leader).read_index(99).unwrap();
    c.tick_all(25);
    assert_ne!(core(&mut c, leader).role(), Role::Leader);
    assert!(core(&mut c, leader).stats().check_quorum_step_downs >= 1);
    assert!(
        !c.node(leader).read_states.iter().any(|s| s.ctx == 99),
        "a deposed leader never answers a read"
    );
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a follower that hears from its leader ignores vote requests (thesis §4.2.3),
/// unless a leadership transfer forces the election; a vote it grants leaves only once
/// durable.
pub fn followers_that_hear_a_leader_ignore_vote_requests(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    c.tick_all(2);
    let f = followers(&c, leader);
    let (follower, other) = (f[0], f[1]);
    let term = core(&mut c, follower).term();
    let last_log_index = core(&mut c, follower).log().last_index();
    let last_log_term = core(&mut c, follower).log().last_term();
    let request = |leadership_transfer| Message {
        from: other,
        to: follower,
        term: term + 1,
        body: MessageBody::Vote {
            last_log_index,
            last_log_term,
            leadership_transfer,
        },
    };
    core(&mut c, follower).step(request(false));
    assert_eq!(
        core(&mut c, follower).term(),
        term,
        "leader stickiness: request ignored"
    );
    assert!(!core(&mut c, follower).has_ready());
    // A transfer-initiated election is allowed through.
    core(&mut c, follower).step(request(true));
    assert_eq!(core(&mut c, follower).term(), term + 1);
    let ready = core(&mut c, follower).ready();
    assert_eq!(
        ready.persisted_messages[0].body,
        MessageBody::VoteResponse { granted: true },
        "a vote grant leaves only after it is durable"
    );
    assert!(ready.messages.is_empty());
    assert_eq!(ready.hard_state.unwrap().vote, Some(other));
    c.handle_ready(follower, ready);
    c.finish(LIVENESS_BOUND_TICKS)
}

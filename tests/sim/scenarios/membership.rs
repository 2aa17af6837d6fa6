//! Leadership transfer and learners; scripted: a transfer's refusals and its time-out.

use ketch::raft::{NodeId, ProposalRefused, Role, TransferError};

use super::{await_leader, core, elect, followers, pick, size_for, LIVENESS_BOUND_TICKS};
use crate::cluster::{Cluster, RunReport, SimConfig};
use crate::invariants::violation;

/// Repeated leadership transfers under client load: each hands over within an election
/// timeout on a healthy network.
pub fn leadership_transfer(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5, 7]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    c.clients_active = true;
    for _ in 0..6 {
        let leader = await_leader(&mut c, 60);
        c.run_ticks(5);
        let f = followers(&c, leader);
        let target = pick(&mut c, &f);
        let Some(core) = c.core_mut(leader) else {
            continue;
        };
        if core.role() != Role::Leader {
            continue;
        }
        core.transfer_leader(target).expect("valid transfer");
        c.drive(leader);
        let bound = u64::from(c.cfg.election_timeout_ticks);
        if !c.run_until(bound, |c| c.leader() == Some(target)) {
            violation(format!(
                "transfer {leader} -> {target} did not complete in {bound} ticks"
            ));
        }
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Learners receive the log and catch up (also after crashes) but never vote or lead; the
/// voters' quorum alone decides.
pub fn learners(seed: u64) -> RunReport {
    let mut cfg = SimConfig::new(3);
    cfg.learners = size_for(seed, &[1, 2]);
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    let learner_ids: Vec<NodeId> = (4..=3 + c.cfg.learners).collect();
    let check_learners = |c: &Cluster| {
        for id in &learner_ids {
            if let Some(core) = c.core(*id) {
                if core.role() != Role::Follower || core.stats().campaigns_started > 0 {
                    violation(format!("learner {id} campaigned or led"));
                }
            }
        }
    };
    let leader = await_leader(&mut c, 60);
    for _ in 0..5 {
        c.run_ticks(20);
        check_learners(&c);
        let learner = pick(&mut c, &learner_ids);
        c.crash(learner);
        c.run_ticks(30);
        c.restart(learner);
    }
    // A voter down plus all learners down: the two remaining voters still commit.
    let f = followers(&c, c.leader().unwrap_or(leader));
    if let Some(voter) = f.first().copied() {
        for id in &learner_ids {
            c.crash(*id);
        }
        c.crash(voter);
        let before = c.inv.max_committed();
        c.run_ticks(60);
        if c.inv.max_committed() <= before {
            violation("two of three voters did not commit without the learners".to_string());
        }
        for id in learner_ids.iter().chain(std::iter::once(&voter)) {
            c.restart(*id);
        }
    }
    check_learners(&c);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a transfer refuses proposals until the target leads; a transfer to the leader
/// itself is refused.
pub fn leadership_transfer_hands_over_and_refuses_proposals_meanwhile(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    c.tick_all(2);
    let target = followers(&c, leader)[0];
    assert_eq!(
        core(&mut c, leader).transfer_leader(leader),
        Err(TransferError::InvalidTarget { target: leader })
    );
    core(&mut c, leader).transfer_leader(target).unwrap();
    assert_eq!(
        core(&mut c, leader).propose(vec![1]),
        Err(ProposalRefused::TransferInProgress)
    );
    c.settle();
    assert_eq!(core(&mut c, target).role(), Role::Leader);
    assert_eq!(core(&mut c, leader).role(), Role::Follower);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a transfer to an unreachable target gives up after exactly one election
/// timeout (thesis §3.10), and the leader accepts proposals again.
pub fn transfer_to_an_unreachable_target_aborts_after_an_election_timeout(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    c.tick_all(2);
    let target = followers(&c, leader)[0];
    c.paused.insert(target);
    core(&mut c, leader).propose(b"behind".to_vec()).unwrap();
    c.settle();
    core(&mut c, leader).transfer_leader(target).unwrap();
    assert_eq!(
        core(&mut c, leader).transfer_leader(target),
        Err(TransferError::AlreadyInProgress { target })
    );
    c.tick_all(9);
    assert_eq!(
        core(&mut c, leader).propose(vec![1]),
        Err(ProposalRefused::TransferInProgress)
    );
    c.tick_all(1);
    assert!(
        core(&mut c, leader).propose(vec![1]).is_ok(),
        "transfer aborted"
    );
    assert_eq!(core(&mut c, leader).role(), Role::Leader);
    c.finish(LIVENESS_BOUND_TICKS)
}

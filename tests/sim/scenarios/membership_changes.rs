//! Membership changes by joint consensus (thesis §4.3): replacing a voter, growing 3 -> 5
//! through learners, a learner catching up in an idle cluster, shrinking 5 -> 3, removing the
//! leader, and changes under partitions, message loss and crashes during the joint phase. The invariants (including the joint rule
//! and "the configuration in force is the latest in the log") are checked after every step;
//! each scenario then requires that the final configuration commits and that a leader of it
//! serves clients (`Cluster::finish`).

use std::collections::BTreeSet;

use ketch::raft::{ConfChange, ConfChangeError, Fault, Membership, NodeId};

use super::{pick, pick_many, size_for, LIVENESS_BOUND_TICKS};
use crate::cluster::{Cluster, RunReport, SimConfig};
use crate::invariants::violation;
use crate::network::NetworkFaults;

/// Ticks within which a change proposed on a healthy cluster must commit.
const CHANGE_BOUND_TICKS: u64 = 150;

/// The configuration a change leads to, from the current leader's committed configuration.
fn target_of(c: &Cluster, change: &ConfChange) -> Option<Membership> {
    let leader = c.leader()?;
    change.target(c.core(leader)?.committed_membership()).ok()
}

/// Whether a running leader has `target` as its committed, latest configuration.
fn committed(c: &Cluster, target: &Membership) -> bool {
    let Some(leader) = c.leader() else {
        return false;
    };
    let Some(core) = c.core(leader) else {
        return false;
    };
    core.membership() == target
        && core.memberships().latest().index <= core.log().commit()
        && core.membership().is_voter(leader)
}

/// Proposes `change` at the leader until it is accepted (errors that say "retry" are
/// retried each tick), then waits until its final configuration commits. Returns the target,
/// or `None` if the change was refused for good (for example a demotion that a concurrent
/// change made invalid) or did not commit within `bound_ticks` (only allowed under faults).
fn apply_change(c: &mut Cluster, change: ConfChange, bound_ticks: u64) -> Option<Membership> {
    let mut target = None;
    for _ in 0..bound_ticks {
        if let Some(leader) = c.leader() {
            let expected = target_of(c, &change);
            if let Some(core) = c.core_mut(leader) {
                match core.propose_conf_change(change.clone()) {
                    Ok(_) => {
                        c.drive(leader);
                        target = expected;
                        break;
                    }
                    Err(
                        ConfChangeError::NotLeader { .. }
                        | ConfChangeError::LeaderNotReady
                        | ConfChangeError::ChangeInProgress { .. }
                        | ConfChangeError::TransferInProgress
                        | ConfChangeError::NotCaughtUp { .. },
                    ) => {}
                    Err(_) => return None,
                }
            }
        }
        c.run_ticks(1);
    }
    let target = target?;
    c.run_until(bound_ticks, |c| committed(c, &target))
        .then_some(target)
}

/// Like `apply_change`, on a healthy cluster: not committing within the bound is a failure.
fn must_apply(c: &mut Cluster, change: ConfChange) -> Membership {
    let description = format!("{change:?}");
    match apply_change(c, change, CHANGE_BOUND_TICKS) {
        Some(target) => target,
        None => violation(format!(
            "liveness: change {description} did not commit within {CHANGE_BOUND_TICKS} ticks"
        )),
    }
}

/// Starts spare `id` and adds it as a learner.
fn add_learner(c: &mut Cluster, id: NodeId) {
    c.start_joining(id);
    must_apply(c, ConfChange::AddLearner(id));
}

/// Every node not in `target` must learn it was removed and stop within the bound.
fn removed_nodes_stop(c: &mut Cluster, before: &BTreeSet<NodeId>, target: &Membership) {
    let gone: Vec<NodeId> = before
        .iter()
        .copied()
        .filter(|id| !target.contains(*id))
        .collect();
    let bound = 6 * u64::from(c.cfg.election_timeout_ticks);
    if !c.run_until(bound, |c| gone.iter().all(|id| c.is_stopped(*id))) {
        violation(format!(
            "removed nodes {gone:?} did not all learn of their removal within {bound} ticks"
        ));
    }
}

fn cluster(voters: u64, spares: u64, seed: u64) -> Cluster {
    let mut cfg = SimConfig::new(voters);
    cfg.spares = spares;
    // Some runs compact their logs, so new learners catch up by snapshot, whose metadata
    // carries the configuration.
    if seed % 3 == 0 {
        cfg.snapshot_threshold_entries = 30;
    }
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    c
}

/// Replace a voter: a new node joins as a learner, catches up, and takes a voter's place in
/// one joint change. The replaced voter is sometimes the leader.
pub fn replace_voter(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut c = cluster(n, 1, seed);
    super::await_leader(&mut c, 60);
    c.run_ticks(10);
    let new = n + 1;
    add_learner(&mut c, new);
    let voters: Vec<NodeId> = (1..=n).collect();
    let old = pick(&mut c, &voters);
    let before: BTreeSet<NodeId> = (1..=new).collect();
    let target = must_apply(
        &mut c,
        ConfChange::Replace {
            add: new,
            remove: old,
        },
    );
    if target.voters.len() as u64 != n || !target.voters.contains(&new) {
        violation(format!("replace produced {target:?}"));
    }
    removed_nodes_stop(&mut c, &before, &target);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// A learner added to an idle cluster catches up without any new proposal. It is added
/// before it runs, so the leader's first probe is lost (as when its connection is not up
/// yet); heartbeat responses must restart the replication (by entries, or by snapshot in the
/// runs that compact their logs).
pub fn idle_learner_catches_up(seed: u64) -> RunReport {
    let mut c = cluster(3, 1, seed);
    super::await_leader(&mut c, 60);
    c.run_ticks(40);
    c.clients_active = false;
    if !c.run_until(2 * c.cfg.op_timeout_ticks + 5, |c| !c.ops_pending()) {
        violation("client operations did not finish".to_string());
    }
    must_apply(&mut c, ConfChange::AddLearner(4));
    c.run_ticks(5);
    c.start_joining(4);
    let caught_up = |c: &Cluster| {
        let Some(core) = c.leader().and_then(|l| c.core(l)) else {
            return false;
        };
        core.status().progress.get(&4).map(|p| p.match_index) == Some(core.log().last_index())
    };
    let bound = 3 * u64::from(c.cfg.election_timeout_ticks);
    if !c.run_until(bound, caught_up) {
        violation(format!(
            "liveness: idle learner 4 not caught up within {bound} ticks"
        ));
    }
    c.clients_active = true;
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Grow 3 -> 5: two new nodes join as learners, then both become voters in one change.
pub fn grow_three_to_five(seed: u64) -> RunReport {
    let mut c = cluster(3, 2, seed);
    super::await_leader(&mut c, 60);
    c.run_ticks(10);
    add_learner(&mut c, 4);
    add_learner(&mut c, 5);
    let target = if seed % 2 == 0 {
        must_apply(
            &mut c,
            ConfChange::Set {
                voters: (1..=5).collect(),
                learners: BTreeSet::new(),
            },
        )
    } else {
        must_apply(&mut c, ConfChange::Promote(4));
        must_apply(&mut c, ConfChange::Promote(5))
    };
    if target != Membership::with_voters(1..=5) {
        violation(format!("grow produced {target:?}"));
    }
    // Two of the five may now fail and the other three still commit.
    let leader = super::await_leader(&mut c, 60);
    let others: Vec<NodeId> = (1..=5).filter(|id| *id != leader).collect();
    for id in pick_many(&mut c, &others, 2) {
        c.crash(id);
    }
    let before = c.inv.max_committed();
    c.run_ticks(40);
    if c.inv.max_committed() <= before {
        violation("three of five voters did not commit".to_string());
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Shrink 5 -> 3 in one change (the leader may be among the removed); the removed nodes stop.
pub fn shrink_five_to_three(seed: u64) -> RunReport {
    shrink_five_to_three_with(seed, None)
}

/// `shrink_five_to_three`, optionally with a deliberately broken core.
pub fn shrink_five_to_three_with(seed: u64, fault: Option<Fault>) -> RunReport {
    let mut cfg = SimConfig::new(5);
    cfg.fault = fault;
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    super::await_leader(&mut c, 60);
    c.run_ticks(10);
    let all: Vec<NodeId> = (1..=5).collect();
    let keep: BTreeSet<NodeId> = pick_many(&mut c, &all, 3).into_iter().collect();
    let target = must_apply(
        &mut c,
        ConfChange::Set {
            voters: keep.clone(),
            learners: BTreeSet::new(),
        },
    );
    if target.voters != keep {
        violation(format!("shrink produced {target:?}"));
    }
    removed_nodes_stop(&mut c, &all.iter().copied().collect(), &target);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Remove the leader: it keeps leading until the change commits, then hands over to a voter
/// of the new configuration and stops.
pub fn remove_leader(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut c = cluster(n, 0, seed);
    for _ in 0..2 {
        let leader = super::await_leader(&mut c, 60);
        c.run_ticks(5);
        let before: BTreeSet<NodeId> = c
            .core(leader)
            .map(|core| core.membership().all_members())
            .unwrap_or_default();
        let Some(target) = apply_change(&mut c, ConfChange::Remove(leader), CHANGE_BOUND_TICKS)
        else {
            // Leadership moved before the change was proposed; the next round retries.
            continue;
        };
        if target.contains(leader) {
            continue;
        }
        removed_nodes_stop(&mut c, &before, &target);
        let next = super::await_leader(&mut c, 60);
        if next == leader || !target.is_voter(next) {
            violation(format!(
                "after removing leader {leader} the leader is {next}, not a voter of {target:?}"
            ));
        }
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Random changes (add learner, promote, demote, remove, replace) while the network drops,
/// duplicates and delays messages, partitions come and go, and nodes crash right after a
/// change is proposed (in the joint phase). After the faults heal the final configuration must
/// commit with a leader of it.
pub fn changes_under_faults(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let spares = 3;
    let mut cfg = SimConfig::new(n);
    cfg.spares = spares;
    cfg.network = NetworkFaults::unreliable();
    // Small enough that snapshots (carrying configurations) are built and sent to learners.
    cfg.snapshot_threshold_entries = 40;
    // Without pre-vote a removed node's campaigns bump terms; check-quorum must keep them
    // harmless.
    cfg.pre_vote = seed % 4 != 0;
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    let mut next_spare = n + 1;
    for _round in 0..8 {
        let Some(leader) = c.leader() else {
            c.run_ticks(20);
            continue;
        };
        let Some(current) = c
            .core(leader)
            .map(|core| core.committed_membership().clone())
        else {
            continue;
        };
        let voters: Vec<NodeId> = current.voters.iter().copied().collect();
        let learners: Vec<NodeId> = current.learners.iter().copied().collect();
        let change = match c.rng.range(0, 5) {
            0 | 1 if next_spare <= n + spares => {
                c.start_joining(next_spare);
                next_spare += 1;
                Some(ConfChange::AddLearner(next_spare - 1))
            }
            2 if !learners.is_empty() => Some(ConfChange::Promote(pick(&mut c, &learners))),
            3 if !learners.is_empty() && voters.len() > 2 => Some(ConfChange::Replace {
                add: pick(&mut c, &learners),
                remove: pick(&mut c, &voters),
            }),
            4 if voters.len() > 3 => Some(ConfChange::Demote(pick(&mut c, &voters))),
            _ if voters.len() > 3 => Some(ConfChange::Remove(pick(&mut c, &voters))),
            _ => None,
        };
        let Some(change) = change else {
            c.run_ticks(10);
            continue;
        };
        let proposed = c
            .core_mut(leader)
            .map(|core| core.propose_conf_change(change.clone()));
        c.drive(leader);
        if !matches!(proposed, Some(Ok(_))) {
            c.run_ticks(10);
            continue;
        }
        // Faults during the joint phase.
        let pause = c.rng.range(0, 4);
        c.run_ticks(pause);
        match c.rng.range(0, 3) {
            0 => c.crash(leader),
            1 => {
                let members: Vec<NodeId> = current.all_members().into_iter().collect();
                let victim = pick(&mut c, &members);
                c.crash(victim);
            }
            _ => {
                let ids: Vec<NodeId> = c.ids().into_iter().filter(|id| c.is_up(*id)).collect();
                let cut = pick_many(&mut c, &ids, ids.len() / 2);
                let rest: Vec<NodeId> = ids.into_iter().filter(|id| !cut.contains(id)).collect();
                c.net.partition(&[cut, rest]);
            }
        }
        let fault_ticks = c.rng.range(5, 30);
        c.run_ticks(fault_ticks);
        c.net.heal();
        for id in c.ids() {
            c.restart(id);
        }
        c.run_ticks(20);
    }
    // Faults stop: the configuration in flight (joint or not) must reach a committed final
    // configuration with a leader of it.
    c.net.heal();
    c.net.faults = NetworkFaults::reliable();
    for id in c.ids() {
        c.restart(id);
    }
    let settled = c.run_until(LIVENESS_BOUND_TICKS, |c| {
        let Some(leader) = c.leader() else {
            return false;
        };
        let Some(core) = c.core(leader) else {
            return false;
        };
        !core.membership().is_joint()
            && core.memberships().latest().index <= core.log().commit()
            && core.membership().is_voter(leader)
    });
    if !settled {
        violation(format!(
            "liveness: no committed final configuration with its leader {LIVENESS_BOUND_TICKS} ticks after faults stopped"
        ));
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

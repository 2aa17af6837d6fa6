//! Membership changes by joint consensus (thesis §4.3): replacing a voter, growing 3 -> 5
//! through learners, a learner catching up in an idle cluster, shrinking 5 -> 3, removing the
//! leader, and changes under partitions, message loss and crashes during the joint phase. The
//! invariants (including the joint rule and "the configuration in force is the latest in the
//! log") are checked after every step; each scenario then requires that the final
//! configuration commits and that a leader of it serves clients (`Cluster::finish`).
//! Scripted: promotion and its refusals, joint majorities, removed leaders and followers, a
//! new leader's first change, a learner catching up in an idle cluster.

use std::collections::BTreeSet;

use ketch::raft::{ConfChange, ConfChangeError, EntryKind, Fault, Membership, NodeId, Role};

use super::{core, elect, followers, pick, pick_many, size_for, LIVENESS_BOUND_TICKS};
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

/// A lockstep cluster whose removed nodes keep running, so that scripts can watch them.
fn scripted(voters: u64, spares: u64, seed: u64) -> Cluster {
    let mut cfg = SimConfig::lockstep(voters);
    cfg.spares = spares;
    cfg.keep_removed = true;
    Cluster::new(cfg, seed)
}

/// Grows a settled 3-node cluster by learner 4 and waits for it to catch up.
fn with_learner_four(c: &mut Cluster) -> NodeId {
    let leader = elect(c);
    c.tick_all(2);
    c.start_joining(4);
    core(c, leader)
        .propose_conf_change(ConfChange::AddLearner(4))
        .unwrap();
    c.tick_all(3);
    assert!(core(c, 4).membership().learners.contains(&4));
    leader
}

/// Scripted: promoting a learner goes through C_old,new, then C_new, in every log; a second
/// change is refused meanwhile.
pub fn promotion_goes_through_a_joint_configuration_and_a_second_change_is_refused(
    seed: u64,
) -> RunReport {
    let mut c = scripted(3, 1, seed);
    let leader = with_learner_four(&mut c);
    let joint_index = core(&mut c, leader)
        .propose_conf_change(ConfChange::Promote(4))
        .unwrap();
    assert!(
        core(&mut c, leader).membership().is_joint(),
        "in force when appended"
    );
    assert_eq!(
        core(&mut c, leader).propose_conf_change(ConfChange::Remove(1)),
        Err(ConfChangeError::ChangeInProgress { index: joint_index })
    );
    c.tick_all(3);
    // The leader appended C_new once C_old,new committed; both are in every log in order.
    for id in 1..=4 {
        let node = core(&mut c, id);
        assert_eq!(
            node.membership(),
            &Membership::with_voters([1, 2, 3, 4]),
            "node {id}"
        );
        assert_eq!(node.committed_membership(), node.membership());
        let kinds: Vec<bool> = (joint_index..=joint_index + 1)
            .map(|i| node.log().entry(i).unwrap().kind == EntryKind::ConfChange)
            .collect();
        assert_eq!(kinds, vec![true, true]);
    }
    assert!(core(&mut c, leader)
        .propose_conf_change(ConfChange::Demote(4))
        .is_ok());
    c.tick_all(3);
    assert!(core(&mut c, leader).membership().is_learner_only(4));
    // Configuration entries reach the driver among the committed entries, marked ConfChange
    // so that it keeps them from the state machine.
    assert!(c
        .node(4)
        .applied
        .iter()
        .any(|e| e.kind == EntryKind::ConfChange));
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a learner that lags by more than `promote_max_lag_entries` is not promoted
/// until it catches up; new voters must be learners first; only the leader changes the
/// configuration.
pub fn promotion_is_refused_until_the_learner_is_caught_up(seed: u64) -> RunReport {
    let mut cfg = SimConfig::lockstep(3);
    cfg.spares = 1;
    cfg.tune = |config| config.promote_max_lag_entries = 5;
    let mut c = Cluster::new(cfg, seed);
    let leader = with_learner_four(&mut c);
    c.paused.insert(4);
    for i in 0..20u32 {
        core(&mut c, leader)
            .propose(i.to_le_bytes().to_vec())
            .unwrap();
    }
    c.settle();
    let err = core(&mut c, leader)
        .propose_conf_change(ConfChange::Promote(4))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfChangeError::NotCaughtUp {
                id: 4,
                max_lag_entries: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not caught up"));
    c.paused.clear();
    c.tick_all(3);
    core(&mut c, leader)
        .propose_conf_change(ConfChange::Promote(4))
        .unwrap();
    let mut report = c.finish(LIVENESS_BOUND_TICKS);
    // New voters must be learners first.
    let mut c = scripted(3, 0, seed);
    let leader = elect(&mut c);
    c.tick_all(2);
    assert_eq!(
        core(&mut c, leader).propose_conf_change(ConfChange::Set {
            voters: [1, 2, 3, 9].into_iter().collect(),
            learners: Default::default(),
        }),
        Err(ConfChangeError::NotALearner { id: 9 })
    );
    let follower = followers(&c, leader)[0];
    assert_eq!(
        core(&mut c, follower).propose_conf_change(ConfChange::AddLearner(9)),
        Err(ConfChangeError::NotLeader {
            leader_hint: Some(leader)
        })
    );
    report.add(&c.finish(LIVENESS_BOUND_TICKS));
    report
}

/// Scripted: a joint configuration commits only with a majority of both halves, and old
/// voters alone commit nothing after it; the removed voters learn of their removal.
pub fn joint_configuration_needs_both_majorities_to_commit(seed: u64) -> RunReport {
    let mut c = scripted(3, 2, seed);
    let leader = elect(&mut c);
    c.tick_all(2);
    for id in [4, 5] {
        c.start_joining(id);
        core(&mut c, leader)
            .propose_conf_change(ConfChange::AddLearner(id))
            .unwrap();
        c.tick_all(3);
    }
    // Move to {leader, 4, 5}: the joint configuration needs a majority of {1, 2, 3} and of
    // {leader, 4, 5}.
    let others = followers(&c, leader);
    c.paused = [4, 5].into();
    let joint_index = core(&mut c, leader)
        .propose_conf_change(ConfChange::Set {
            voters: [leader, 4, 5].into_iter().collect(),
            learners: Default::default(),
        })
        .unwrap();
    c.tick_all(3);
    assert!(
        core(&mut c, leader).log().commit() < joint_index,
        "the old majority alone does not commit a joint entry"
    );
    for id in &others {
        assert!(core(&mut c, *id).log().last_index() >= joint_index);
    }
    // Old voters alone can no longer commit anything either.
    let index = core(&mut c, leader).propose(b"x".to_vec()).unwrap();
    c.tick_all(3);
    assert!(core(&mut c, leader).log().commit() < index);
    c.paused.clear();
    c.tick_all(5);
    assert!(core(&mut c, leader).log().commit() >= index);
    assert_eq!(
        core(&mut c, leader).membership(),
        &Membership::with_voters([leader, 4, 5])
    );
    // The removed voters learn it from the committed configuration.
    c.tick_all(5);
    for id in others {
        assert!(
            core(&mut c, id).is_removed(),
            "node {id} knows it was removed"
        );
        // Not a voter, so never a candidate.
        assert!(!core(&mut c, id).membership().is_voter(id));
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a leader that removes itself leads until C_new commits, then hands over by
/// transfer (one term up, no election timeout) and never campaigns again.
pub fn removed_leader_hands_over_after_the_change_commits(seed: u64) -> RunReport {
    let mut c = scripted(3, 0, seed);
    let leader = elect(&mut c);
    c.tick_all(2);
    let term = core(&mut c, leader).term();
    core(&mut c, leader)
        .propose_conf_change(ConfChange::Remove(leader))
        .unwrap();
    assert_eq!(
        core(&mut c, leader).role(),
        Role::Leader,
        "it leads until C_new commits"
    );
    c.tick_all(1);
    let new_leader = c.leader().expect("handed over");
    assert_ne!(new_leader, leader);
    assert_eq!(
        core(&mut c, new_leader).term(),
        term + 1,
        "transfer, not an election timeout with pre-vote rounds"
    );
    c.tick_all(3);
    assert!(core(&mut c, leader).is_removed());
    assert!(!core(&mut c, new_leader).is_removed());
    assert!(!core(&mut c, new_leader).membership().contains(leader));
    // The remaining two commit without the removed node.
    c.paused.insert(leader);
    let index = core(&mut c, new_leader).propose(b"after".to_vec()).unwrap();
    c.tick_all(2);
    assert!(core(&mut c, new_leader).log().commit() >= index);
    // The removed node never campaigns.
    let campaigns = core(&mut c, leader).stats().campaigns_started;
    c.paused.clear();
    c.tick_all(50);
    assert_eq!(core(&mut c, leader).stats().campaigns_started, campaigns);
    assert_eq!(c.leader(), Some(new_leader));
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: until an entry of its own term commits, a new leader cannot know whether an
/// earlier leader's configuration entry committed, so it refuses changes.
pub fn a_new_leader_refuses_changes_until_its_term_commits(seed: u64) -> RunReport {
    let mut c = scripted(1, 0, seed);
    c.node_mut(1).disk.held = true;
    let leader = elect(&mut c);
    // The election no-op is not durable, hence not committed.
    assert_eq!(
        core(&mut c, leader).propose_conf_change(ConfChange::AddLearner(7)),
        Err(ConfChangeError::LeaderNotReady)
    );
    c.node_mut(1).disk.held = false;
    c.settle();
    assert!(core(&mut c, leader)
        .propose_conf_change(ConfChange::AddLearner(7))
        .is_ok());
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a removed follower learns of its removal, never campaigns, and the leader stops
/// replicating to it once the retention runs out.
pub fn a_removed_follower_learns_it_and_stops_campaigning(seed: u64) -> RunReport {
    let mut c = scripted(3, 0, seed);
    let leader = elect(&mut c);
    c.tick_all(2);
    let follower = followers(&c, leader)[0];
    core(&mut c, leader)
        .propose_conf_change(ConfChange::Remove(follower))
        .unwrap();
    c.tick_all(3);
    assert!(core(&mut c, follower).is_removed());
    assert!(!core(&mut c, leader).is_removed());
    let campaigns = core(&mut c, follower).stats().campaigns_started;
    c.tick_all(40);
    assert_eq!(core(&mut c, follower).stats().campaigns_started, campaigns);
    // The leader stops replicating to it once the retention runs out.
    assert!(!core(&mut c, leader)
        .status()
        .progress
        .contains_key(&follower));
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Adds `id` as a learner while it is unreachable, so the leader's first probe is lost,
/// then makes it reachable again.
fn add_learner_while_unreachable(c: &mut Cluster, leader: NodeId, id: NodeId) {
    c.start_joining(id);
    c.paused.insert(id);
    core(c, leader)
        .propose_conf_change(ConfChange::AddLearner(id))
        .unwrap();
    c.tick_all(3);
    assert!(core(c, leader).membership().learners.contains(&id));
    c.paused.clear();
}

/// Ticks until the leader's match index for `id` reaches the leader's last index; returns
/// the ticks taken, or `None` after `bound_ticks`.
fn ticks_until_caught_up(
    c: &mut Cluster,
    leader: NodeId,
    id: NodeId,
    bound_ticks: u32,
) -> Option<u32> {
    for ticks in 0..=bound_ticks {
        let node = core(c, leader);
        let last_index = node.log().last_index();
        if node.status().progress.get(&id).map(|p| p.match_index) == Some(last_index) {
            return Some(ticks);
        }
        c.tick_all(1);
    }
    None
}

/// Scripted `idle_learner_catches_up`: a learner whose first probe was lost catches up
/// within a few heartbeats with no new writes, by entries or, once compacted, by snapshot.
pub fn a_learner_added_to_an_idle_cluster_catches_up_without_new_writes(seed: u64) -> RunReport {
    // The learner is unreachable when it is added (in the runtime: its connection is not
    // up yet), so the leader's first probe is lost; no proposal follows. Heartbeat
    // responses must restart the replication on their own.
    let mut c = scripted(3, 1, seed);
    let leader = elect(&mut c);
    for i in 0..50u32 {
        core(&mut c, leader)
            .propose(i.to_le_bytes().to_vec())
            .unwrap();
    }
    c.tick_all(2);
    add_learner_while_unreachable(&mut c, leader, 4);
    let bound_ticks = 4 * c.config(leader).heartbeat_interval_ticks;
    let taken = ticks_until_caught_up(&mut c, leader, 4, bound_ticks);
    assert!(
        taken.is_some(),
        "learner 4 not caught up within {bound_ticks} ticks of an idle cluster"
    );
    let last_index = core(&mut c, leader).log().last_index();
    assert_eq!(core(&mut c, 4).log().last_index(), last_index);
    assert!(core(&mut c, 4).membership().learners.contains(&4));
    let mut report = c.finish(LIVENESS_BOUND_TICKS);

    // Same when the entries are compacted: the heartbeat response starts a snapshot.
    let mut cfg = SimConfig::lockstep(3);
    cfg.spares = 1;
    cfg.snapshot_threshold_entries = 20;
    let mut c = Cluster::new(cfg, seed);
    let leader = elect(&mut c);
    for i in 0..50u32 {
        core(&mut c, leader)
            .propose(i.to_le_bytes().to_vec())
            .unwrap();
        c.settle();
    }
    c.tick_all(2);
    assert!(core(&mut c, leader).log().snapshot().index > 0, "compacted");
    add_learner_while_unreachable(&mut c, leader, 4);
    let bound_ticks = 8 * c.config(leader).heartbeat_interval_ticks;
    let taken = ticks_until_caught_up(&mut c, leader, 4, bound_ticks);
    assert!(
        taken.is_some(),
        "learner 4 not caught up by snapshot within {bound_ticks} ticks"
    );
    assert!(
        core(&mut c, 4).log().snapshot().index > 0,
        "installed a snapshot"
    );
    report.add(&c.finish(LIVENESS_BOUND_TICKS));
    report
}

//! Agreement: basic, with failed minorities and majorities, concurrent clients, a rejoining
//! partitioned leader, and fast backup over long divergent logs; scripted: commitment waits
//! for durability, and backpressure.

use ketch::raft::ProposalRefused;

use super::{await_leader, core, elect, followers, pick_many, size_for, LIVENESS_BOUND_TICKS};
use crate::cluster::{Cluster, RunReport, SimConfig};
use crate::invariants::violation;
use crate::kv::Command;

/// Clients write and read on a healthy cluster; every node applies the same entries.
pub fn basic_agreement(seed: u64) -> RunReport {
    let n = size_for(seed, &[1, 3, 5, 7]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    c.clients_active = true;
    await_leader(&mut c, 60);
    c.run_ticks(150);
    let report = c.report;
    if report.ops_completed < 20 {
        violation(format!(
            "only {} operations completed on a healthy cluster",
            report.ops_completed
        ));
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// A failed minority does not stop agreement; it catches up when it returns.
pub fn fail_agree(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5, 7]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    c.clients_active = true;
    let leader = await_leader(&mut c, 60);
    let f = followers(&c, leader);
    let victims = pick_many(&mut c, &f, ((n - 1) / 2) as usize);
    let ids = c.ids();
    for id in &victims {
        c.net.isolate(*id, &ids);
    }
    let committed_before = c.inv.max_committed();
    c.run_ticks(80);
    if c.inv.max_committed() <= committed_before + 5 {
        violation(format!(
            "no agreement with a minority {victims:?} disconnected"
        ));
    }
    c.net.heal();
    c.finish(LIVENESS_BOUND_TICKS)
}

/// With a majority of followers gone nothing commits; agreement resumes when they return.
pub fn fail_no_agree(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5, 7]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    c.clients_active = true;
    let leader = await_leader(&mut c, 60);
    c.run_ticks(20);
    let f = followers(&c, leader);
    let victims = pick_many(&mut c, &f, (n / 2 + 1) as usize);
    for id in &victims {
        c.crash(*id);
    }
    // Let in-flight acknowledgements land first.
    c.run_ticks(2);
    let committed_before = c.inv.max_committed();
    c.run_ticks(60);
    if c.inv.max_committed() != committed_before {
        violation(format!(
            "entries committed without a majority ({committed_before} -> {})",
            c.inv.max_committed()
        ));
    }
    for id in &victims {
        c.restart(*id);
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Many clients propose at once.
pub fn concurrent_proposals(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut cfg = SimConfig::new(n);
    cfg.clients = 10;
    cfg.op_start_per_mille = 500;
    let mut c = Cluster::new(cfg, seed);
    c.clients_active = true;
    await_leader(&mut c, 60);
    c.run_ticks(120);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// A partitioned leader keeps believing it leads for a while; its clients time out; it
/// rejoins as a follower and its uncommitted entries are replaced.
pub fn rejoin_partitioned_leader(seed: u64) -> RunReport {
    let n = size_for(seed, &[3, 5]);
    let mut c = Cluster::new(SimConfig::new(n), seed);
    c.clients_active = true;
    let first = await_leader(&mut c, 60);
    let ids = c.ids();
    c.net.isolate(first, &ids);
    let second = await_leader_other_than(&mut c, first);
    c.run_ticks(30);
    c.net.heal();
    c.net.isolate(second, &ids);
    c.run_ticks(60);
    c.net.heal();
    c.finish(LIVENESS_BOUND_TICKS)
}

fn await_leader_other_than(c: &mut Cluster, old: u64) -> u64 {
    let ok = c.run_until(100, |c| c.leaders().iter().any(|(id, _)| *id != old));
    if !ok {
        violation(format!("no new leader besides the isolated {old}"));
    }
    c.leaders()
        .into_iter()
        .find(|(id, _)| *id != old)
        .expect("checked")
        .0
}

/// Fast backup (Raft §5.3 optimisation): a follower with 10,000 conflicting entries is
/// brought in line in a handful of AppendEntries round trips.
pub fn fast_backup(seed: u64) -> RunReport {
    let mut cfg = SimConfig::new(3);
    cfg.max_uncommitted_bytes = 8 << 20;
    cfg.clients = 1;
    // A fixed delay keeps pipelined appends in order, so every rejection counted is a
    // backtracking step rather than a reordered message arriving ahead of its predecessor.
    cfg.network.min_delay_steps = 3;
    cfg.network.max_delay_steps = 3;
    let mut c = Cluster::new(cfg, seed);
    let old = await_leader(&mut c, 60);
    c.run_ticks(5);
    let ids = c.ids();
    c.net.isolate(old, &ids);
    for i in 0..10_000u32 {
        c.core_mut(old)
            .expect("up")
            .propose(i.to_le_bytes().to_vec())
            .expect("leader accepts");
    }
    c.drive(old);
    let new = await_leader_other_than(&mut c, old);
    for i in 0..10_000u32 {
        c.core_mut(new)
            .expect("up")
            .propose((i + 20_000).to_le_bytes().to_vec())
            .expect("leader accepts");
    }
    c.drive(new);
    let target_commit = c.core(new).expect("up").log().last_index();
    if !c.run_until(200, |c| {
        c.core(new)
            .is_some_and(|core| core.log().commit() >= target_commit)
    }) {
        violation("the new leader did not commit its 10,000 entries".to_string());
    }
    // Move leadership to the third node so its view of the old leader starts at the end of
    // its long log, far past the divergence.
    let third = ids
        .iter()
        .copied()
        .find(|id| *id != old && *id != new)
        .expect("three nodes");
    c.core_mut(new)
        .expect("up")
        .transfer_leader(third)
        .expect("transfer starts");
    c.drive(new);
    if !c.run_until(50, |c| {
        c.leader() == Some(third) || c.leaders().iter().any(|(id, _)| *id == third)
    }) {
        violation("leadership transfer to the third node did not happen".to_string());
    }
    let rejections_before = c.net.append_rejections.get(&old).copied().unwrap_or(0);
    c.net.rejected_probes.remove(&old);
    c.net.heal();
    let caught_up = c.run_until(100, |c| {
        let leader_last = c.core(third).map_or(0, |core| core.log().last_index());
        c.core(old).is_some_and(|core| {
            core.log().last_index() == leader_last && core.log().commit() == leader_last
        })
    });
    if !caught_up {
        violation("the old leader did not catch up".to_string());
    }
    let rejections = c.net.append_rejections.get(&old).copied().unwrap_or(0) - rejections_before;
    let steps = c.net.rejected_probes.get(&old).map_or(0, |s| s.len());
    // One rejection of the leader's probe at its last index jumps over the whole divergent
    // term; a probe re-sent on a heartbeat answer while the first is in flight may be rejected
    // again, which costs a message but no extra round trip.
    if steps > 2 || rejections > 4 {
        violation(format!(
            "backing up over 10,000 entries took {steps} backtracking steps ({rejections} rejections)"
        ));
    }
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a single voter elects itself, and commits an entry only once its disk holds it.
pub fn single_node_elects_itself_and_commits_only_when_durable(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(1), seed);
    let leader = elect(&mut c);
    assert_eq!(leader, 1);
    c.node_mut(1).disk.held = true;
    let index = core(&mut c, 1).propose(b"x".to_vec()).unwrap();
    c.settle();
    assert!(
        core(&mut c, 1).log().commit() < index,
        "not durable yet, not committed"
    );
    c.node_mut(1).disk.held = false;
    c.settle();
    assert_eq!(core(&mut c, 1).log().commit(), index);
    assert_eq!(c.node(1).applied.last().unwrap().data, b"x".to_vec());
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: three voters elect one leader, whose entry every node commits and applies
/// within two ticks.
pub fn three_nodes_elect_one_leader_and_replicate(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    let term = core(&mut c, leader).term();
    assert!(c.ids().iter().all(|id| core(&mut c, *id).term() == term));
    let index = core(&mut c, leader).propose(b"hello".to_vec()).unwrap();
    c.tick_all(2);
    for id in 1..=3 {
        assert_eq!(core(&mut c, id).log().commit(), index, "node {id}");
        assert!(c.node(id).applied.iter().any(|e| e.data == b"hello"[..]));
    }
    // The leader's vote for itself and the voters' grants were persisted first.
    let hs = c.node(leader).disk.durable.hard_state;
    assert_eq!(hs.vote, Some(leader));
    assert_eq!(hs.term, term);
    assert_eq!(followers(&c, leader).len(), 2);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: a leader counts its own copy toward a quorum only once its disk holds it, even
/// when a follower's copy would complete the majority.
pub fn leader_counts_itself_only_up_to_its_durable_index(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    let f = followers(&c, leader);
    c.paused.insert(f[1]);
    c.node_mut(leader).disk.held = true;
    let index = core(&mut c, leader).propose(b"a".to_vec()).unwrap();
    c.settle();
    // Only one follower holds it durably: leader + follower would be a quorum, but the
    // leader's own copy is not durable.
    assert!(core(&mut c, leader).log().commit() < index);
    c.node_mut(leader).disk.held = false;
    c.settle();
    assert_eq!(core(&mut c, leader).log().commit(), index);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted `fast_backup`: in lockstep no message overtakes another, so one rejection skips
/// the whole divergent term and at most two more finish the job.
pub fn fast_backtracking_over_ten_thousand_divergent_entries(seed: u64) -> RunReport {
    let mut cfg = SimConfig::lockstep(3);
    cfg.max_uncommitted_bytes = u64::MAX / 2;
    let mut c = Cluster::new(cfg, seed);
    let old_leader = elect(&mut c);
    c.tick_all(2);
    // The old leader appends 10,000 entries nobody else receives.
    c.paused.extend(followers(&c, old_leader));
    for i in 0..10_000u32 {
        core(&mut c, old_leader)
            .propose(i.to_le_bytes().to_vec())
            .unwrap();
    }
    c.settle();
    // The others elect a new leader and commit 10,000 entries of their own.
    c.paused = [old_leader].into();
    let new_leader = elect(&mut c);
    for i in 0..10_000u32 {
        core(&mut c, new_leader)
            .propose((i + 1_000_000).to_le_bytes().to_vec())
            .unwrap();
    }
    c.settle();
    c.tick_all(2);
    // Hand leadership to the third node so its progress for the old leader starts at the
    // end of its long log, far beyond the point of divergence.
    let third = (1..=3)
        .find(|id| *id != old_leader && *id != new_leader)
        .unwrap();
    core(&mut c, new_leader).transfer_leader(third).unwrap();
    c.settle();
    assert_eq!(c.leader(), Some(third));
    let new_leader = third;
    c.net.append_rejections.clear();
    c.paused.clear();
    c.tick_all(30);
    let last = core(&mut c, new_leader).log().last_index();
    assert_eq!(core(&mut c, old_leader).log().last_index(), last);
    let commit = core(&mut c, new_leader).log().commit();
    assert_eq!(core(&mut c, old_leader).log().commit(), commit);
    // Raft §5.3 optimisation: one rejection skips the whole divergent term.
    let rejections: u64 = c.net.append_rejections.values().sum();
    assert!(
        rejections <= 3,
        "{rejections} rejections to back up over 10,000 entries"
    );
    assert!(rejections >= 1, "the logs did diverge");
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Scripted: proposals are refused at a follower (with the leader as hint) and, beyond
/// `max_uncommitted_bytes`, at the leader until some commit.
pub fn backpressure_and_errors(seed: u64) -> RunReport {
    let mut cfg = SimConfig::lockstep(3);
    cfg.max_uncommitted_bytes = 100;
    let mut c = Cluster::new(cfg, seed);
    let leader = elect(&mut c);
    let follower = followers(&c, leader)[0];
    assert_eq!(
        core(&mut c, follower).propose(vec![1]),
        Err(ProposalRefused::NotLeader {
            leader_hint: Some(leader)
        })
    );
    c.paused = followers(&c, leader).into_iter().collect();
    // 60 bytes: a header of 19, a key of 1.
    let put = Command::put(b"k", vec![0; 40]).encode();
    core(&mut c, leader).propose(put.clone()).unwrap();
    let err = core(&mut c, leader).propose(put.clone()).unwrap_err();
    assert!(matches!(err, ProposalRefused::Backpressure { .. }), "{err}");
    c.paused.clear();
    c.tick_all(2);
    core(&mut c, leader).propose(put).unwrap();
    c.finish(LIVENESS_BOUND_TICKS)
}

//! Scenario bodies, one function per scenario, each `fn(seed) -> RunReport`. The MIT 6.824
//! Raft tests are the checklist; every scenario ends with `Cluster::finish`, which checks
//! liveness after the faults stop and linearizability of the client history (but for
//! `bad_input::arbitrary_peer_messages`, whose forgeries void every safety property).
//!
//! Most scenarios run a randomized schedule and check properties. The scripted ones (in
//! lockstep, see `SimConfig::lockstep`) check one behaviour of the core tick by tick, with
//! exact bounds; they are the core's cluster tests, run by this driver so that the core has no
//! driver of its own. Each starts with `elect`, and reaches into cores with `core`.

pub mod agreement;
pub mod bad_input;
pub mod election;
pub mod hosts;
pub mod membership;
pub mod membership_changes;
pub mod persistence;
pub mod reads;
pub mod routing;
pub mod snapshot;

use ketch::raft::{Core, NodeId};

use crate::cluster::Cluster;
use crate::invariants::violation;

/// Ticks within which a cluster must recover once faults stop.
pub const LIVENESS_BOUND_TICKS: u64 = 200;

/// Picks a cluster size from `sizes` by seed.
pub fn size_for(seed: u64, sizes: &[u64]) -> u64 {
    sizes[(seed % sizes.len() as u64) as usize]
}

/// Waits for a leader, failing the run if none appears within the bound.
pub fn await_leader(c: &mut Cluster, bound_ticks: u64) -> NodeId {
    if !c.run_until(bound_ticks, |c| c.leader().is_some()) {
        violation(format!("liveness: no leader within {bound_ticks} ticks"));
    }
    c.leader().expect("checked")
}

/// A random element of `items`.
pub fn pick(c: &mut Cluster, items: &[NodeId]) -> NodeId {
    items[c.rng.range(0, items.len() as u64) as usize]
}

/// Up to `count` distinct random elements of `items`.
pub fn pick_many(c: &mut Cluster, items: &[NodeId], count: usize) -> Vec<NodeId> {
    let mut pool = items.to_vec();
    let mut out = Vec::new();
    while out.len() < count && !pool.is_empty() {
        let i = c.rng.range(0, pool.len() as u64) as usize;
        out.push(pool.swap_remove(i));
    }
    out
}

/// Running followers (running nodes that are not the given leader).
pub fn followers(c: &Cluster, leader: NodeId) -> Vec<NodeId> {
    c.voter_ids()
        .into_iter()
        .filter(|id| *id != leader && c.is_up(*id))
        .collect()
}

/// Lockstep: ticks until a leader is elected, failing the run after 100 ticks.
pub fn elect(c: &mut Cluster) -> NodeId {
    for _ in 0..100 {
        c.tick_all(1);
        if let Some(leader) = c.leader() {
            return leader;
        }
    }
    violation("liveness: no leader elected within 100 ticks".to_string())
}

/// The core of node `id`, which the script knows to be running.
pub fn core(c: &mut Cluster, id: NodeId) -> &mut Core {
    c.core_mut(id)
        .unwrap_or_else(|| panic!("node {id} is not running"))
}

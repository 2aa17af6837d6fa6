//! Many groups on a few hosts (`crate::hosts`): idle groups quiesce and fail over when the
//! host leading them crashes; a thousand groups through a host crash under load, losing the
//! unsynced tail of the host's shared log; a host partitioned away and healed while groups
//! are quiesced.

use ketch::node::quiescence::QUIESCE_AFTER_TICKS;
use ketch::raft::NodeId;

use super::{size_for, LIVENESS_BOUND_TICKS};
use crate::cluster::RunReport;
use crate::hosts::{Hosts, HostsConfig};
use crate::invariants::violation;

/// Ticks within which every group has a leader after boot.
const ELECTION_BOUND_TICKS: u64 = 60;

/// Ticks within which every group led from a crashed or cut-off host has a new leader on the
/// other hosts. A quiesced follower wakes once its leader's host has been silent for more
/// than an election timeout (10 ticks); its election clock, resumed where it stopped, then
/// runs out within its randomized timeout (below 20 ticks), and a pre-vote and a vote follow:
/// about 31 ticks for a first round. With two voters left of three, a round splits when both
/// time out within a tick of each other, and a few groups in a thousand split two or three
/// times: ten election timeouts (the slowest of 24 groups over 100 seeds took 67 ticks).
const FAILOVER_BOUND_TICKS: u64 = 100;

/// The same for the slowest of 1,000 groups, awake under load (the slowest over 20 seeds
/// took 64 ticks).
const FAILOVER_BOUND_1000_GROUPS_TICKS: u64 = 120;

/// Ticks within which an idle set of groups is mostly quiesced. A group is idle once its
/// last client operation ends (at most the 40-tick client timeout); its leader quiesces after
/// `QUIESCE_AFTER_TICKS` idle ticks; a follower whose notice was lost times out within two
/// election timeouts and wakes the group with a pre-vote, and the leader tries again
/// `QUIESCE_AFTER_TICKS` later. Three attempts: with 2% loss and four followers, a group
/// fails an attempt about one time in twelve.
const QUIESCE_BOUND_TICKS: u64 = 40 + 3 * (QUIESCE_AFTER_TICKS as u64 + 20);

/// Waits until every group has a leader followed by all its running replicas.
fn await_leaders(h: &mut Hosts, on: &[NodeId], bound_ticks: u64, what: &str) -> u64 {
    match h.run_until(bound_ticks, |h| h.every_group_led_within(on)) {
        Some(ticks) => ticks,
        None => violation(format!(
            "liveness: {what}: not every group led from hosts {on:?} and followed there \
             within {bound_ticks} ticks (the first such groups and their replicas: {:?})",
            h.groups_not_led_within(on, 5)
        )),
    }
}

/// Waits until at least nine in ten running replicas are quiesced.
fn await_quiescence(h: &mut Hosts, what: &str) {
    let quiet = |h: &Hosts| h.quiesced_replicas() * 10 >= h.running_replicas() * 9;
    if h.run_until(QUIESCE_BOUND_TICKS, quiet).is_none() {
        violation(format!(
            "{what}: only {} of {} replicas quiesced {QUIESCE_BOUND_TICKS} ticks after the \
             groups went idle",
            h.quiesced_replicas(),
            h.running_replicas()
        ));
    }
}

/// Client load, then silence until every group goes idle and quiesces.
fn load_then_quiesce(h: &mut Hosts, load_ticks: u64) {
    h.set_clients_active(true);
    h.run_ticks(load_ticks);
    h.set_clients_active(false);
    await_quiescence(h, "idle groups");
}

/// Groups on 3 or 5 hosts go idle and quiesce (at least 90% of the replicas, with 2% of
/// messages and notices lost); then the host leading the most groups crashes, clients resume,
/// and every group is led from the other hosts within `FAILOVER_BOUND_TICKS`. No write
/// acknowledged before or after is lost.
pub fn hosts_quiesce_then_failover(seed: u64) -> RunReport {
    let hosts = size_for(seed, &[3, 5]);
    let mut cfg = HostsConfig::new(hosts, 24);
    cfg.group.network.drop_per_mille = 20;
    let mut h = Hosts::new(cfg, seed);
    let all = h.host_ids();
    await_leaders(&mut h, &all, ELECTION_BOUND_TICKS, "boot");
    load_then_quiesce(&mut h, 30);
    let victim = h.busiest_leader_host();
    let led = h.groups_led_by(victim);
    assert!(
        led * hosts as usize >= h.groups.len(),
        "the busiest host leads at least its share"
    );
    h.crash_host(victim);
    h.set_clients_active(true);
    let survivors: Vec<NodeId> = all.iter().copied().filter(|x| *x != victim).collect();
    await_leaders(
        &mut h,
        &survivors,
        FAILOVER_BOUND_TICKS,
        "after the crash of the host leading the most groups",
    );
    h.run_ticks(20);
    h.restart_host(victim);
    h.run_ticks(20);
    h.finish(LIVENESS_BOUND_TICKS)
}

/// 1,000 groups on 3 hosts under client load (one client per group, starting an operation
/// about every ten ticks when idle); the host leading the most groups crashes while many groups have unsynced writes
/// on it, its shared log losing its tail; every group is led from the other two within
/// `FAILOVER_BOUND_1000_GROUPS_TICKS`; the host restarts and the load goes on. No acknowledged write is
/// lost, and every group's history is linearizable.
pub fn hosts_crash_with_1000_groups(seed: u64) -> RunReport {
    let mut cfg = HostsConfig::new(3, 1000);
    cfg.group.keys = 2;
    cfg.group.op_start_per_mille = 10;
    let mut h = Hosts::new(cfg, seed);
    let all = h.host_ids();
    await_leaders(&mut h, &all, ELECTION_BOUND_TICKS, "boot");
    h.set_clients_active(true);
    h.run_ticks(15);
    let victim = h.busiest_leader_host();
    let unsynced = h
        .groups
        .iter()
        .filter(|g| !g.node(victim).disk.pending.is_empty())
        .count();
    assert!(
        unsynced >= 10,
        "under load, many groups have unsynced writes on the host ({unsynced})"
    );
    let crash = h.crash_host(victim);
    assert!(
        crash.groups_losing_writes <= unsynced as u64,
        "only groups with unsynced writes lose any"
    );
    assert!(
        crash.writes_lost >= crash.groups_losing_writes,
        "a group that lost writes lost at least one"
    );
    let survivors: Vec<NodeId> = all.iter().copied().filter(|x| *x != victim).collect();
    await_leaders(
        &mut h,
        &survivors,
        FAILOVER_BOUND_1000_GROUPS_TICKS,
        "after a host crash under load",
    );
    h.run_ticks(10);
    h.restart_host(victim);
    h.run_ticks(20);
    h.set_clients_active(false);
    h.finish(LIVENESS_BOUND_TICKS)
}

/// Groups on 3 or 5 hosts go idle and quiesce; one host is cut off from the others, and
/// clients resume: every group is led from the other hosts within `FAILOVER_BOUND_TICKS`
/// (the cut-off host's quiesced leaders stay leaders of old terms until they hear of the new
/// ones). After the heal every group has one leader followed by every replica within
/// `FAILOVER_BOUND_TICKS`, and once idle again the groups quiesce again.
pub fn hosts_partition_and_heal(seed: u64) -> RunReport {
    let hosts = size_for(seed, &[3, 5]);
    let mut h = Hosts::new(HostsConfig::new(hosts, 24), seed);
    let all = h.host_ids();
    await_leaders(&mut h, &all, ELECTION_BOUND_TICKS, "boot");
    load_then_quiesce(&mut h, 30);
    // The busiest leader host on odd seeds, any host on even ones.
    let victim = if seed % 2 == 1 {
        h.busiest_leader_host()
    } else {
        h.rng.range(1, hosts + 1)
    };
    h.isolate(victim);
    h.set_clients_active(true);
    let rest: Vec<NodeId> = all.iter().copied().filter(|x| *x != victim).collect();
    await_leaders(
        &mut h,
        &rest,
        FAILOVER_BOUND_TICKS,
        "with a host partitioned away",
    );
    h.run_ticks(20);
    h.heal();
    await_leaders(&mut h, &all, FAILOVER_BOUND_TICKS, "after the heal");
    h.run_ticks(20);
    h.set_clients_active(false);
    await_quiescence(&mut h, "idle again after the heal");
    h.finish(LIVENESS_BOUND_TICKS)
}

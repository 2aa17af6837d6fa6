//! Hosts of many Raft groups: the simulator's model of a multi-Raft `Host`.
//!
//! A `Hosts` holds one `Cluster` per group, all with the same node ids: node `h` of every
//! group is the replica on host `h`. The clusters are stepped together, one step at a time,
//! and the harness adds what the groups of one host share:
//!
//! - **Crashes.** `crash_host(h)` crashes node `h` of every group in the same step, and
//!   `restart_host(h)` brings them all back.
//! - **One log per host.** The disks of a host's replicas share a `SharedLog`: their writes
//!   complete in the order submitted across all groups, and a host crash tears that one
//!   stream (`disk::crash_shared_log`): a random prefix of the unsynced writes survives, the
//!   write at the cut may be torn, and the rest is lost, so one crash loses the unsynced
//!   writes of many groups at once.
//! - **Partitions between hosts.** `partition`, `isolate` and `heal` apply the same cuts to
//!   every group's network, and to the host-level traffic below.
//! - **Quiescence**, by the rules of `ketch::node::quiescence` (the real rule functions):
//!   on each of its ticks, host `h` counts, per group it leads, the consecutive ticks in which
//!   `leader_idle` holds (no client operation outstanding in the group, no read waiting at the
//!   replica; followers whose host was not heard from within an election timeout may lag, if
//!   the rest and the leader are a majority). After
//!   `QUIESCE_AFTER_TICKS` such ticks the leader quiesces (`Cluster::quiesced`: it is no
//!   longer ticked), in the first of them in which it sent nothing (the answers to a
//!   heartbeat sent in the same tick would wake it at once; host groups heartbeat every 3
//!   ticks, so an idle leader has such ticks), and sends each follower's host a notice of its
//!   term and commit index (not to lost hosts). A quiesced leader that left a follower behind
//!   wakes once that follower's host is heard from again. A notice travels like a message: it is delayed and lost by the
//!   group's network faults, and dropped by a cut link. A follower quiesces on a notice when `follower_may_quiesce` holds,
//!   the sender's host is not lost to it, and no read waits at it. A delivered Raft message,
//!   or a client operation, wakes a quiesced replica (`Cluster::wake`).
//! - **Host liveness.** Each host beats every other host on each of its ticks; a beat crosses
//!   only a link that is not cut, between running hosts. A quiesced follower whose leader's
//!   host has not been heard from for more than an election timeout wakes (checked on every
//!   tick of its host), and its election clock, resumed from where it stopped, runs out.
//!
//! The safety invariants are each group's own (`Cluster` checks them after every input to
//! every replica). `finish` heals, restarts and wakes everything, then ends each group on its
//! own (detached from the shared log, as it no longer runs with the others): liveness and
//! convergence as `Cluster::finish`, linearizability of its history, and no write
//! acknowledged to a client missing from its leader's applied entries.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::rc::Rc;

use ketch::node::quiescence::{
    follower_may_quiesce, leader_idle, left_behind, QUIESCE_AFTER_TICKS,
};
use ketch::raft::{EntryKind, NodeId, Role, SplitMix64};

use crate::cluster::{Cluster, RunReport, SimConfig, STEPS_PER_TICK};
use crate::disk::{crash_shared_log, Disk, SharedLogRef};
use crate::invariants::violation;
use crate::kv::Command;

/// Parameters of a simulated set of hosts.
#[derive(Debug, Clone)]
pub struct HostsConfig {
    /// Hosts; every group has one voter on each (`group.voters` is set to this).
    pub hosts: u64,
    /// Raft groups.
    pub groups: usize,
    /// The settings of every group (its clients are the group's own).
    pub group: SimConfig,
    /// Whether idle groups quiesce.
    pub quiesce: bool,
}

impl HostsConfig {
    /// `groups` groups on `hosts` hosts, quiescing, each group with one client on 3 keys.
    pub fn new(hosts: u64, groups: usize) -> Self {
        let mut group = SimConfig::new(hosts);
        group.clients = 1;
        group.keys = 3;
        // As on a host, heartbeats some ticks apart, so an idle leader has ticks in which it
        // sends nothing, and may quiesce in one.
        group.tune = |c| c.heartbeat_interval_ticks = 3;
        Self {
            hosts,
            groups,
            group,
            quiesce: true,
        }
    }
}

/// A quiesce notice in flight from a leader's host to a follower's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Notice {
    deliver_at: u64,
    seq: u64,
    group: usize,
    from: NodeId,
    to: NodeId,
    term: u64,
    commit: u64,
}

/// What a host crash did, for scenarios that look.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostCrash {
    /// Groups whose replica on the host lost unsynced writes.
    pub groups_losing_writes: u64,
    /// Unsynced writes lost, over all groups.
    pub writes_lost: u64,
}

/// Many groups on a few hosts, stepped together from one seed.
pub struct Hosts {
    /// Settings.
    pub cfg: HostsConfig,
    /// The groups, each a cluster whose node `h` is its replica on host `h`.
    pub groups: Vec<Cluster>,
    /// The generator of the host-level random choices (each group has its own).
    pub rng: SplitMix64,
    /// Current step (every group's `now` is the same).
    pub now: u64,
    /// Host-level counters (host crashes, torn logs, quiesces), added to the groups' at the end.
    pub report: RunReport,
    down: BTreeSet<NodeId>,
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Per host (index `h - 1`): the log its replicas share.
    logs: Vec<SharedLogRef>,
    /// Per group: consecutive idle ticks of each replica that leads it.
    idle_ticks: Vec<BTreeMap<NodeId, u32>>,
    notices: BinaryHeap<Reverse<Notice>>,
    notices_sent: u64,
    /// (from, to) -> the step at which host `to` last heard a beat from host `from`.
    last_heard: BTreeMap<(NodeId, NodeId), u64>,
}

impl Hosts {
    /// Builds and boots every group.
    pub fn new(mut cfg: HostsConfig, seed: u64) -> Self {
        cfg.group.voters = cfg.hosts;
        assert_eq!(cfg.group.learners, 0, "every replica of a host group votes");
        assert_eq!(cfg.group.spares, 0, "every replica of a host group votes");
        assert!(
            cfg.group.snapshot_threshold_entries >= 1_000_000,
            "finish checks acknowledged writes against applied entries: no snapshots"
        );
        let logs: Vec<SharedLogRef> = (0..cfg.hosts).map(|_| Rc::default()).collect();
        let groups: Vec<Cluster> = (0..cfg.groups)
            .map(|g| {
                let group_seed = seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(g as u64 + 1);
                let mut cluster = Cluster::new(cfg.group.clone(), group_seed);
                for (node, log) in cluster.nodes.iter_mut().zip(&logs) {
                    node.disk.shared = Some(log.clone());
                }
                cluster
            })
            .collect();
        Self {
            idle_ticks: vec![BTreeMap::new(); cfg.groups],
            cfg,
            groups,
            // Mixed, so that small seeds 1, 2, 3... start far apart.
            rng: SplitMix64::for_node(seed, 0x4057_4057),
            now: 0,
            report: RunReport::default(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            logs,
            notices: BinaryHeap::new(),
            notices_sent: 0,
            last_heard: BTreeMap::new(),
        }
    }

    /// Host ids.
    pub fn host_ids(&self) -> Vec<NodeId> {
        (1..=self.cfg.hosts).collect()
    }

    /// Whether host `h` is running.
    pub fn is_up(&self, h: NodeId) -> bool {
        !self.down.contains(&h)
    }

    /// The election timeout of every group, in ticks.
    pub fn election_timeout_ticks(&self) -> u64 {
        u64::from(self.cfg.group.election_timeout_ticks)
    }

    /// Sets whether clients of every group start operations.
    pub fn set_clients_active(&mut self, active: bool) {
        for group in &mut self.groups {
            group.clients_active = active;
        }
    }

    // ----- the step loop -----

    /// One step of every group, then the host-level traffic and each due host's tick.
    pub fn step(&mut self) {
        self.now += 1;
        for group in &mut self.groups {
            group.step();
            debug_assert_eq!(group.now, self.now, "groups step together");
        }
        self.deliver_notices();
        for h in self.host_ids() {
            if self.now % STEPS_PER_TICK == h % STEPS_PER_TICK && self.is_up(h) {
                self.host_tick(h);
            }
        }
    }

    /// Runs `ticks` ticks.
    pub fn run_ticks(&mut self, ticks: u64) {
        for _ in 0..ticks * STEPS_PER_TICK {
            self.step();
        }
    }

    /// Runs until `done` holds (checked every tick) or `max_ticks` pass; returns the ticks
    /// it took, or `None`.
    pub fn run_until(
        &mut self,
        max_ticks: u64,
        mut done: impl FnMut(&Hosts) -> bool,
    ) -> Option<u64> {
        for ticks in 0..=max_ticks {
            if done(self) {
                return Some(ticks);
            }
            if ticks < max_ticks {
                self.run_ticks(1);
            }
        }
        None
    }

    /// Whether host `to` has not heard from host `from` for more than an election timeout.
    fn lost(&self, from: NodeId, to: NodeId) -> bool {
        let heard = self.last_heard.get(&(from, to)).copied().unwrap_or(0);
        self.now.saturating_sub(heard) > self.election_timeout_ticks() * STEPS_PER_TICK
    }

    /// Host `h`'s tick (its replicas ticked in this step already, as `Cluster::step` ticks
    /// node `h` in the same phase): beats to the other hosts, then quiescence of its groups.
    fn host_tick(&mut self, h: NodeId) {
        for other in self.host_ids() {
            if other != h && self.is_up(other) && !self.cut.contains(&(h, other)) {
                self.last_heard.insert((h, other), self.now);
            }
        }
        if !self.cfg.quiesce {
            return;
        }
        for g in 0..self.groups.len() {
            self.quiesce_tick(g, h);
        }
    }

    /// The quiescence rules for the replica of group `g` on host `h`, on a tick of `h`.
    fn quiesce_tick(&mut self, g: usize, h: NodeId) {
        let group = &self.groups[g];
        let Some(core) = group.core(h) else {
            return;
        };
        if group.quiesced.contains(&h) {
            // A quiesced leader that left a follower behind on a lost host wakes once that
            // host is heard from again (the host acts on the change; checked here every tick,
            // which wakes it at the same tick).
            if core.role() == Role::Leader {
                let back = core
                    .peer_matches()
                    .any(|(f, _)| f != h && !self.lost(f, h) && left_behind(core, f));
                if back {
                    self.groups[g].quiesced.remove(&h);
                    self.report.silence_wakes += 1;
                }
                return;
            }
            // Host liveness stands in for the heartbeats of a quiesced follower's leader.
            {
                let leader_lost = match core.leader() {
                    Some(leader) => leader != h && self.lost(leader, h),
                    None => true,
                };
                if leader_lost {
                    self.groups[g].quiesced.remove(&h);
                    self.report.silence_wakes += 1;
                }
            }
            return;
        }
        let node = group.node(h);
        let waiting = group.ops_pending() || !node.pending_reads.is_empty();
        if !leader_idle(core, node.applied_index, waiting, |f| self.lost(f, h)) {
            self.idle_ticks[g].remove(&h);
            return;
        }
        // Followers on lost hosts may lag; they get no notice.
        let followers: Vec<NodeId> = core
            .peer_matches()
            .map(|(peer, _)| peer)
            .filter(|peer| *peer != h && !self.lost(*peer, h))
            .collect();
        let ticks = self.idle_ticks[g].entry(h).or_insert(0);
        *ticks += 1;
        // A leader that sent heartbeats in this tick would be woken by their answers: it
        // waits for a tick in which it sent nothing (the one refinement of the host's rules).
        if *ticks < QUIESCE_AFTER_TICKS || node.last_send_step == self.now {
            return;
        }
        self.idle_ticks[g].remove(&h);
        let (term, commit) = (core.term(), core.log().commit());
        let faults = group.net.faults;
        self.groups[g].quiesced.insert(h);
        self.report.quiesces += 1;
        for to in followers {
            if self.cut.contains(&(h, to)) || self.rng.range(0, 1000) < faults.drop_per_mille {
                continue;
            }
            self.notices_sent += 1;
            let delay = self
                .rng
                .range(faults.min_delay_steps, faults.max_delay_steps + 1);
            self.notices.push(Reverse(Notice {
                deliver_at: self.now + delay,
                seq: self.notices_sent,
                group: g,
                from: h,
                to,
                term,
                commit,
            }));
        }
    }

    /// Delivers the quiesce notices due now over links that are up; a follower quiesces on one
    /// by `follower_may_quiesce`.
    fn deliver_notices(&mut self) {
        while self
            .notices
            .peek()
            .is_some_and(|Reverse(n)| n.deliver_at <= self.now)
        {
            let Reverse(notice) = self.notices.pop().expect("peeked");
            let Notice {
                group: g,
                from,
                to,
                term,
                commit,
                ..
            } = notice;
            if self.cut.contains(&(from, to)) || !self.is_up(to) || self.lost(from, to) {
                continue;
            }
            let group = &self.groups[g];
            let Some(core) = group.core(to) else {
                continue;
            };
            if group.quiesced.contains(&to)
                || !group.node(to).pending_reads.is_empty()
                || !follower_may_quiesce(core, from, term, commit)
            {
                continue;
            }
            self.groups[g].quiesced.insert(to);
            self.report.quiesces += 1;
        }
    }

    // ----- faults -----

    /// Crashes host `h`: its replica of every group goes down in this step, and its shared
    /// log loses its unsynced tail (see `disk::crash_shared_log`).
    pub fn crash_host(&mut self, h: NodeId) -> HostCrash {
        if !self.is_up(h) {
            return HostCrash::default();
        }
        let i = (h - 1) as usize;
        let mut disks: Vec<&mut Disk> = self
            .groups
            .iter_mut()
            .filter(|group| group.is_up(h))
            .map(|group| &mut group.node_mut(h).disk)
            .collect();
        let outcome = crash_shared_log(&mut disks, &mut self.rng);
        for group in &mut self.groups {
            let disk = &group.node(h).disk;
            assert!(
                disk.pending.is_empty(),
                "the shared log crash took every write"
            );
            group.crash(h);
        }
        assert!(
            self.logs[i].borrow().writes_submitted >= outcome.writes_survived,
            "the shared log counts every write"
        );
        for idle in &mut self.idle_ticks {
            idle.remove(&h);
        }
        let notices = std::mem::take(&mut self.notices);
        self.notices = notices
            .into_iter()
            .filter(|Reverse(n)| n.from != h && n.to != h)
            .collect();
        self.down.insert(h);
        self.report.host_crashes += 1;
        self.report.torn_writes += u64::from(outcome.torn);
        self.report.groups_losing_writes += outcome.groups_losing_writes;
        HostCrash {
            groups_losing_writes: outcome.groups_losing_writes,
            writes_lost: outcome.writes_lost,
        }
    }

    /// Restarts host `h`: every group's replica on it, from its disk.
    pub fn restart_host(&mut self, h: NodeId) {
        if self.is_up(h) {
            return;
        }
        self.down.remove(&h);
        for group in &mut self.groups {
            group.restart(h);
        }
    }

    /// Splits the hosts into sides that cannot talk to each other, in every group.
    pub fn partition(&mut self, sides: &[Vec<NodeId>]) {
        self.cut.clear();
        for (a, side_a) in sides.iter().enumerate() {
            for (b, side_b) in sides.iter().enumerate() {
                if a != b {
                    for x in side_a {
                        for y in side_b {
                            self.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
        for group in &mut self.groups {
            group.net.partition(sides);
        }
    }

    /// Cuts host `h` off from every other host, in every group.
    pub fn isolate(&mut self, h: NodeId) {
        let rest: Vec<NodeId> = self.host_ids().into_iter().filter(|x| *x != h).collect();
        self.partition(&[vec![h], rest]);
    }

    /// Restores every link between hosts.
    pub fn heal(&mut self) {
        self.cut.clear();
        for group in &mut self.groups {
            group.net.heal();
        }
    }

    // ----- looking -----

    /// Replicas quiesced, over all groups.
    pub fn quiesced_replicas(&self) -> usize {
        self.groups.iter().map(|g| g.quiesced.len()).sum()
    }

    /// Replicas running, over all groups.
    pub fn running_replicas(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.ids().into_iter().filter(|id| g.is_up(*id)).count())
            .sum()
    }

    /// The number of groups whose leader (of the highest term) is on host `h`.
    pub fn groups_led_by(&self, h: NodeId) -> usize {
        self.groups.iter().filter(|g| g.leader() == Some(h)).count()
    }

    /// The host that leads the most groups (the lowest id among equals).
    pub fn busiest_leader_host(&self) -> NodeId {
        self.host_ids()
            .into_iter()
            .max_by_key(|h| (self.groups_led_by(*h), Reverse(*h)))
            .expect("at least one host")
    }

    /// Whether every group has a leader whose host is in `hosts`, of a term above every
    /// other leader's in the group, followed by every running replica in `hosts`.
    pub fn every_group_led_within(&self, hosts: &[NodeId]) -> bool {
        self.groups_not_led_within(hosts, 1).is_empty()
    }

    /// The first `max` groups that `every_group_led_within` finds not so led, each described
    /// with its replicas' roles, terms, leaders and whether quiesced.
    pub fn groups_not_led_within(&self, hosts: &[NodeId], max: usize) -> Vec<String> {
        let led = |g: &Cluster| {
            let Some(leader) = g.leader() else {
                return false;
            };
            let term = g.core(leader).expect("leader runs").term();
            hosts.contains(&leader)
                && hosts.iter().all(|h| {
                    g.core(*h)
                        .is_none_or(|core| core.term() == term && core.leader() == Some(leader))
                })
        };
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| !led(g))
            .take(max)
            .map(|(i, g)| {
                let replicas: Vec<String> = g
                    .ids()
                    .into_iter()
                    .map(|id| match g.core(id) {
                        Some(c) => format!(
                            "{id}: {:?} of term {} following {:?}{}",
                            c.role(),
                            c.term(),
                            c.leader(),
                            if g.quiesced.contains(&id) {
                                ", quiesced"
                            } else {
                                ""
                            }
                        ),
                        None => format!("{id}: down"),
                    })
                    .collect();
                format!("group {i} ({})", replicas.join("; "))
            })
            .collect()
    }

    // ----- endings -----

    /// Heals every link, restarts every host and wakes every replica, then ends each group as
    /// `Cluster::finish` does (progress and convergence within `bound_ticks`, linearizability),
    /// and checks that every write acknowledged to a client is applied at the group's leader.
    /// Returns the report of all groups and the hosts.
    pub fn finish(mut self, bound_ticks: u64) -> RunReport {
        self.heal();
        for h in self.host_ids() {
            self.restart_host(h);
        }
        let mut total = self.report;
        for (g, mut group) in self.groups.into_iter().enumerate() {
            // Each group now runs on alone, so its writes no longer queue behind the others'.
            for node in &mut group.nodes {
                node.disk.shared = None;
            }
            group.quiesced.clear();
            group.converge(bound_ticks);
            check_acknowledged_writes(g, &group);
            total.add(&group.into_report());
        }
        total
    }
}

/// Every write acknowledged to a client of group `g` is among the entries its leader applied.
fn check_acknowledged_writes(g: usize, group: &Cluster) {
    let leader = group.leader().expect("converge found a leader");
    let applied: BTreeSet<(u64, u64)> = group
        .node(leader)
        .applied
        .iter()
        .filter(|entry| entry.kind == EntryKind::Normal)
        .filter_map(|entry| Command::decode(&entry.data))
        .map(|command| (command.client, command.seq))
        .collect();
    for (client, seq) in &group.acked_writes {
        if !applied.contains(&(*client, *seq)) {
            violation(format!(
                "group {g}: write {seq} of client {client} was acknowledged but its leader \
                 {leader} never applied it"
            ));
        }
    }
}

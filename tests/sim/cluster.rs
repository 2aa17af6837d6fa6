//! The simulation harness: nodes (core + disk + state machine), the network, clients with a
//! recorded history, and the invariant checker, all driven from one seed.
//!
//! Time is counted in steps; a node ticks every `STEPS_PER_TICK` steps (each node with its own
//! phase). In each step: due disk writes complete, due messages are delivered, nodes tick,
//! clients act. After every input to a node its `Ready` is processed and the invariants are
//! checked.
//!
//! Scripted scenarios, which check one behaviour tick by tick, run in lockstep instead
//! (`SimConfig::lockstep`): `tick_all` ticks every node at once and `settle` then runs without
//! ticks until every exchange it started is over, so a script can say exactly how many ticks a
//! behaviour takes. The same disks, network and invariant checks serve both.
//!
//! A node can be quiesced (`Cluster::quiesced`): it is not ticked, and the next message
//! delivered to it or client operation sent to it wakes it. The cluster never quiesces a
//! node itself; the multi-group harness (`hosts`) does, by the host's rules.

use std::collections::{BTreeMap, BTreeSet};

use ketch::kv::server::RangeCheck;
use ketch::raft::{
    Config, Core, DurableState, Entry, EntryKind, Fault, Membership, Message, MessageBody, NodeId,
    ReadMode, ReadState, Ready, Role, SnapshotMeta, SplitMix64,
};
use ketch_history::{self as history, CheckLimits, CheckResult, History, Op, OpId, Outcome};

use crate::disk::{Disk, PendingWrite};
use crate::invariants::{violation, Invariants};
use crate::kv::{Applied, Command, Kv};
use crate::network::{Network, NetworkFaults};

/// Steps per core tick.
pub const STEPS_PER_TICK: u64 = 10;

/// Parameters of a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Voters.
    pub voters: u64,
    /// Learners (ids after the voters).
    pub learners: u64,
    /// Nodes that are not started at boot (ids after the learners): they join a running
    /// cluster with `Cluster::start_joining`, knowing no configuration.
    pub spares: u64,
    /// Base election timeout.
    pub election_timeout_ticks: u32,
    /// Snapshot threshold.
    pub snapshot_threshold_entries: u64,
    /// Snapshot chunk size.
    pub snapshot_chunk_bytes: u64,
    /// A deliberate protocol bug.
    pub fault: Option<Fault>,
    /// Read mode.
    pub read_mode: ReadMode,
    /// Pre-vote.
    pub pre_vote: bool,
    /// Clients issuing operations.
    pub clients: u64,
    /// Distinct keys.
    pub keys: u64,
    /// A client gives up on an operation after this many ticks.
    pub op_timeout_ticks: u64,
    /// Chance (per mille, per step) that an idle client starts an operation.
    pub op_start_per_mille: u64,
    /// Chance (per mille) that a read goes through a follower (forwarded read index).
    pub follower_read_per_mille: u64,
    /// Largest uncommitted bytes at a leader.
    pub max_uncommitted_bytes: u64,
    /// Persistence delay range in steps.
    pub disk_delay_steps: (u64, u64),
    /// Network faults.
    pub network: NetworkFaults,
    /// Adjusts each node's core configuration after the settings above.
    pub tune: fn(&mut Config),
    /// Whether a node that learned of its removal keeps running (a runtime stops it), for
    /// scenarios that watch what a removed node does.
    pub keep_removed: bool,
    /// Slow clocks: node `id` drops one tick in every `n` (its clock runs at `1 - 1/n` of the
    /// others' rate), so lease reads can be checked under clock drift.
    pub slow_clocks: BTreeMap<NodeId, u64>,
}

impl SimConfig {
    /// A cluster of `voters` with default settings.
    pub fn new(voters: u64) -> Self {
        Self {
            voters,
            learners: 0,
            spares: 0,
            election_timeout_ticks: 10,
            snapshot_threshold_entries: 1_000_000,
            snapshot_chunk_bytes: 256,
            fault: None,
            read_mode: ReadMode::Safe,
            pre_vote: true,
            clients: 3,
            keys: 3,
            op_timeout_ticks: 40,
            op_start_per_mille: 100,
            follower_read_per_mille: 200,
            max_uncommitted_bytes: 1 << 20,
            disk_delay_steps: (0, 8),
            network: NetworkFaults::reliable(),
            tune: |_| {},
            keep_removed: false,
            slow_clocks: BTreeMap::new(),
        }
    }

    /// A cluster for scripted scenarios, driven with `Cluster::tick_all` and `Cluster::settle`:
    /// no clients, disks that write at once, and a network that delivers every message in the
    /// next step, in the order sent.
    pub fn lockstep(voters: u64) -> Self {
        Self {
            clients: 0,
            disk_delay_steps: (0, 0),
            network: NetworkFaults::instant(),
            ..Self::new(voters)
        }
    }
}

/// One simulated server.
pub struct SimNode {
    /// Its id.
    pub id: NodeId,
    /// The core; `None` while crashed.
    pub core: Option<Core>,
    /// Its disk (survives crashes).
    pub disk: Disk,
    /// The state machine (lost on a crash, rebuilt from the snapshot and the log).
    pub kv: Kv,
    /// Last applied index.
    pub applied_index: u64,
    /// Read states waiting for the state machine to catch up: (ctx, index).
    pub pending_reads: Vec<(u64, u64)>,
    /// Whether the node was started (spares start later).
    pub started: bool,
    /// Whether the node stopped for good after learning it was removed.
    pub stopped: bool,
    /// Every committed entry handed to the state machine, in order (again after a restart).
    pub applied: Vec<Entry>,
    /// Every read state the core handed out.
    pub read_states: Vec<ReadState>,
    /// The step at which it last sent a message.
    pub last_send_step: u64,
    config: Config,
}

enum PendingKind {
    Write { seq: u64 },
    Read { ctx: u64, key: Vec<u8> },
}

struct PendingOp {
    op_id: OpId,
    kind: PendingKind,
    deadline_step: u64,
}

struct Client {
    id: u64,
    seq: u64,
    pending: Option<PendingOp>,
}

/// Counters reported at the end of a run: what the run exercised.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunReport {
    /// Steps simulated.
    pub steps: u64,
    /// Client operations invoked.
    pub ops_invoked: u64,
    /// Client operations completed with a definite answer.
    pub ops_completed: u64,
    /// Messages sent.
    pub messages: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Crashes that left a torn (partially written) batch.
    pub torn_writes: u64,
    /// Log suffix truncations requested by cores.
    pub truncations: u64,
    /// Terms in which some node became leader.
    pub leader_terms: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Leaders that stepped down for lack of a quorum.
    pub check_quorum_step_downs: u64,
    /// Peer messages the cores rejected as inconsistent.
    pub inconsistent_messages: u64,
    /// Runs whose linearizability check gave up (hit its search bound) instead of deciding.
    pub linearizability_unknown: u64,
    /// Configuration entries appended (counted per node that appended one).
    pub configuration_entries: u64,
    /// Nodes that learned they were removed and stopped.
    pub removed_stops: u64,
    /// Replicas that quiesced (see `hosts`).
    pub quiesces: u64,
    /// Quiesced replicas woken by a message or a client operation.
    pub quiesce_wakes: u64,
    /// Quiesced followers woken because their leader's host went silent.
    pub silence_wakes: u64,
    /// Host crashes (each crashes one replica of every group on the host).
    pub host_crashes: u64,
    /// Groups that lost unsynced writes in a host crash, summed over host crashes.
    pub groups_losing_writes: u64,
    /// Client operations refused by a range group because their route was stale
    /// (`scenarios::routing`).
    pub stale_route_refusals: u64,
    /// Of those, operations routed by a host's table older than the latest.
    pub lagging_table_refusals: u64,
    /// Range boundaries moved between groups, each completed by a routing table change.
    pub handovers: u64,
}

impl RunReport {
    /// Adds another run's counters.
    pub fn add(&mut self, other: &RunReport) {
        self.steps += other.steps;
        self.ops_invoked += other.ops_invoked;
        self.ops_completed += other.ops_completed;
        self.messages += other.messages;
        self.crashes += other.crashes;
        self.torn_writes += other.torn_writes;
        self.truncations += other.truncations;
        self.leader_terms += other.leader_terms;
        self.snapshots_installed += other.snapshots_installed;
        self.check_quorum_step_downs += other.check_quorum_step_downs;
        self.inconsistent_messages += other.inconsistent_messages;
        self.linearizability_unknown += other.linearizability_unknown;
        self.configuration_entries += other.configuration_entries;
        self.removed_stops += other.removed_stops;
        self.quiesces += other.quiesces;
        self.quiesce_wakes += other.quiesce_wakes;
        self.silence_wakes += other.silence_wakes;
        self.host_crashes += other.host_crashes;
        self.groups_losing_writes += other.groups_losing_writes;
        self.stale_route_refusals += other.stale_route_refusals;
        self.lagging_table_refusals += other.lagging_table_refusals;
        self.handovers += other.handovers;
    }

    fn add_core_stats(&mut self, stats: ketch::raft::Stats) {
        self.leader_terms += stats.leader_terms;
        self.snapshots_installed += stats.snapshots_installed;
        self.check_quorum_step_downs += stats.check_quorum_step_downs;
        self.inconsistent_messages += stats.inconsistent_messages;
    }
}

/// What became of an operation of a client outside the cluster (`Cluster::propose_external`,
/// `Cluster::read_external`), reported by the first replica that applied or served it (as
/// every replica applies the same entries alike, a later one says the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The command `(client, seq)` was applied (with its answer) or refused.
    Write {
        /// The proposing client.
        client: u64,
        /// Its sequence number.
        seq: u64,
        /// What the apply did.
        applied: Applied,
    },
    /// The read `ctx` was served: its value, or `None` if refused.
    Read {
        /// The read's context.
        ctx: u64,
        /// The value read (itself `None` if the key is absent), or `None` if refused.
        value: Option<Option<Vec<u8>>>,
    },
}

/// The whole simulated system.
pub struct Cluster {
    /// Settings.
    pub cfg: SimConfig,
    /// The seeded generator of every random choice.
    pub rng: SplitMix64,
    /// Current step.
    pub now: u64,
    /// Nodes, `nodes[i].id == i + 1`.
    pub nodes: Vec<SimNode>,
    /// The network.
    pub net: Network,
    /// Safety checker.
    pub inv: Invariants,
    /// Client history.
    pub history: History,
    clients: Vec<Client>,
    /// Whether clients start new operations.
    pub clients_active: bool,
    /// Operations invoked / completed with an answer.
    pub report: RunReport,
    next_ctx: u64,
    /// Per leader: (term, commit index) last checked by `check_commit_quorum`.
    leader_commit_checked: std::collections::BTreeMap<NodeId, (u64, u64)>,
    /// Paused nodes neither tick nor exchange messages (one due to or from a paused node is
    /// dropped), but unlike crashed ones they keep their state.
    pub paused: BTreeSet<NodeId>,
    /// Per node with a slow clock: the ticks its clock was due so far.
    clock_ticks_due: BTreeMap<NodeId, u64>,
    /// Quiesced nodes are not ticked; a message delivered to one, or a client operation sent
    /// to it, wakes it (removes it from the set). A crash wakes it too (a restarted node is
    /// awake).
    pub quiesced: BTreeSet<NodeId>,
    /// Every write acknowledged to a client, as (client, seq), in the order acknowledged.
    pub acked_writes: Vec<(u64, u64)>,
    /// The state every node starts from (and restarts from, without a snapshot).
    initial_kv: Kv,
    /// Whether to record `answers` (for clients outside the cluster).
    pub record_answers: bool,
    /// Answers for clients outside the cluster, in the order they arose (see `Answer`); every
    /// replica's apply of a command adds one, so the first for a `(client, seq)` is the one.
    pub answers: Vec<Answer>,
    /// Reads of clients outside the cluster waiting to be served: ctx -> (key, guard).
    external_reads: BTreeMap<u64, (Vec<u8>, Option<RangeCheck>)>,
    /// Whether a client outside the cluster has an operation outstanding in this group (as
    /// `ops_pending` reports, for quiescence).
    pub external_ops_pending: bool,
}

impl Cluster {
    /// Builds and boots a cluster.
    pub fn new(cfg: SimConfig, seed: u64) -> Self {
        let mut membership = Membership::with_voters(1..=cfg.voters);
        membership.learners = (cfg.voters + 1..=cfg.voters + cfg.learners).collect();
        let mut nodes = Vec::new();
        let members = cfg.voters + cfg.learners;
        for id in 1..=members + cfg.spares {
            let mut config = Config::new(id);
            config.seed = seed;
            config.election_timeout_ticks = cfg.election_timeout_ticks;
            config.snapshot_threshold_entries = cfg.snapshot_threshold_entries;
            config.snapshot_chunk_bytes = cfg.snapshot_chunk_bytes;
            config.unsafe_fault = cfg.fault;
            config.read_mode = cfg.read_mode;
            config.pre_vote = cfg.pre_vote;
            config.max_uncommitted_bytes = cfg.max_uncommitted_bytes;
            config.max_message_bytes = 64 << 10;
            config.max_inflight_messages = 8;
            (cfg.tune)(&mut config);
            let mut disk = Disk::default();
            let started = id <= members;
            disk.durable.snapshot = SnapshotMeta {
                // A spare joins knowing no configuration.
                membership: if started {
                    membership.clone()
                } else {
                    Membership::default()
                },
                ..SnapshotMeta::default()
            };
            let core = started
                .then(|| Core::new(config.clone(), disk.durable.to_state()).expect("valid config"));
            nodes.push(SimNode {
                id,
                core,
                disk,
                kv: Kv::default(),
                applied_index: 0,
                pending_reads: Vec::new(),
                started,
                stopped: false,
                applied: Vec::new(),
                read_states: Vec::new(),
                last_send_step: 0,
                config,
            });
        }
        let clients = (0..cfg.clients)
            .map(|id| Client {
                id: id + 1,
                seq: 0,
                pending: None,
            })
            .collect();
        Self {
            net: Network::new(cfg.network),
            cfg,
            rng: SplitMix64::new(seed ^ 0x5151_5151),
            now: 0,
            nodes,
            inv: Invariants::default(),
            history: History::new(),
            clients,
            clients_active: false,
            report: RunReport::default(),
            next_ctx: 1,
            leader_commit_checked: Default::default(),
            paused: BTreeSet::new(),
            clock_ticks_due: BTreeMap::new(),
            quiesced: BTreeSet::new(),
            acked_writes: Vec::new(),
            initial_kv: Kv::default(),
            record_answers: false,
            answers: Vec::new(),
            external_reads: BTreeMap::new(),
            external_ops_pending: false,
        }
    }

    /// Sets the state every node starts from (before the first step: a range group's range,
    /// the meta group's table); a node restarting without a snapshot starts from it again.
    pub fn set_initial_state(&mut self, kv: Kv) {
        for node in &mut self.nodes {
            assert_eq!(
                node.applied_index, 0,
                "the initial state is set before any apply"
            );
            node.kv = kv.clone();
        }
        self.initial_kv = kv;
    }

    /// Every node id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Voter ids.
    pub fn voter_ids(&self) -> Vec<NodeId> {
        (1..=self.cfg.voters).collect()
    }

    fn idx(id: NodeId) -> usize {
        (id - 1) as usize
    }

    /// Node `id`.
    pub fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[Self::idx(id)]
    }

    /// Node `id`, mutable.
    pub fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[Self::idx(id)]
    }

    /// The core of a running node.
    pub fn core(&self, id: NodeId) -> Option<&Core> {
        self.nodes[Self::idx(id)].core.as_ref()
    }

    /// Mutable core of a running node.
    pub fn core_mut(&mut self, id: NodeId) -> Option<&mut Core> {
        self.nodes[Self::idx(id)].core.as_mut()
    }

    /// The configuration node `id` runs its core with.
    pub fn config(&self, id: NodeId) -> &Config {
        &self.nodes[Self::idx(id)].config
    }

    /// Running, unpaused nodes that believe they lead, with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, u64)> {
        self.nodes
            .iter()
            .filter(|n| !self.paused.contains(&n.id))
            .filter_map(|n| {
                n.core
                    .as_ref()
                    .filter(|c| c.role() == Role::Leader)
                    .map(|c| (n.id, c.term()))
            })
            .collect()
    }

    /// The running leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|(_, term)| *term)
            .map(|(id, _)| id)
    }

    /// Whether `id` is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[Self::idx(id)].core.is_some()
    }

    // ----- faults -----

    /// Crashes a node: its core and state machine vanish, unsynced writes are lost or torn.
    pub fn crash(&mut self, id: NodeId) {
        let node = &mut self.nodes[Self::idx(id)];
        let Some(core) = node.core.take() else {
            return;
        };
        self.quiesced.remove(&id);
        self.report.add_core_stats(core.stats());
        self.report.crashes += 1;
        if node.disk.crash(&mut self.rng) {
            self.report.torn_writes += 1;
        }
        node.kv = Kv::default();
        node.pending_reads.clear();
        node.applied_index = 0;
    }

    /// Starts a spare node for the first time (it joins a running cluster).
    pub fn start_joining(&mut self, id: NodeId) {
        let node = &mut self.nodes[Self::idx(id)];
        assert!(!node.started, "node {id} already started");
        node.started = true;
        self.restart(id);
    }

    /// Stops a node for good: it learned that it was removed from the cluster.
    fn stop_removed(&mut self, id: NodeId) {
        let node = &mut self.nodes[Self::idx(id)];
        if let Some(core) = node.core.take() {
            self.report.add_core_stats(core.stats());
        }
        node.stopped = true;
        node.pending_reads.clear();
        self.report.removed_stops += 1;
    }

    /// Whether node `id` stopped after its removal.
    pub fn is_stopped(&self, id: NodeId) -> bool {
        self.nodes[Self::idx(id)].stopped
    }

    /// Restarts a crashed node from its disk (not one never started or stopped after removal).
    pub fn restart(&mut self, id: NodeId) {
        let node = &mut self.nodes[Self::idx(id)];
        if node.core.is_some() || !node.started || node.stopped {
            return;
        }
        let state: DurableState = node.disk.durable.to_state();
        let core = match Core::new(node.config.clone(), state) {
            Ok(core) => core,
            Err(e) => violation(format!(
                "node {id} cannot restart from its durable state: {e}"
            )),
        };
        node.kv = if node.disk.durable.snapshot.index == 0 {
            self.initial_kv.clone()
        } else {
            Kv::decode(&node.disk.durable.snapshot_data)
        };
        node.applied_index = node.disk.durable.snapshot.index;
        node.core = Some(core);
        self.inv.on_restart(id);
        let core = self.nodes[Self::idx(id)].core.as_ref().expect("running");
        self.inv.rescan_configuration(id, core);
        self.drive(id);
    }

    // ----- the step loop -----

    /// Runs `ticks` ticks.
    pub fn run_ticks(&mut self, ticks: u64) {
        for _ in 0..ticks * STEPS_PER_TICK {
            self.step();
        }
    }

    /// Runs until `done` holds (checked every tick) or `max_ticks` pass; returns whether it held.
    pub fn run_until(&mut self, max_ticks: u64, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        for _ in 0..max_ticks {
            if done(self) {
                return true;
            }
            self.run_ticks(1);
        }
        done(self)
    }

    /// One step of simulated time.
    pub fn step(&mut self) {
        self.advance();
        for i in 0..self.nodes.len() {
            let id = self.nodes[i].id;
            if self.now % STEPS_PER_TICK == id % STEPS_PER_TICK
                && !self.paused.contains(&id)
                && !self.quiesced.contains(&id)
                && !self.slow_clock_drops_tick(id)
            {
                if let Some(core) = self.nodes[i].core.as_mut() {
                    core.tick();
                    self.drive(id);
                }
            }
        }
        self.step_clients();
    }

    /// Whether node `id`'s slow clock drops the tick now due (see `SimConfig::slow_clocks`).
    fn slow_clock_drops_tick(&mut self, id: NodeId) -> bool {
        let Some(&every) = self.cfg.slow_clocks.get(&id) else {
            return false;
        };
        let due = self.clock_ticks_due.entry(id).or_insert(0);
        *due += 1;
        *due % every == 0
    }

    /// Lockstep: ticks every running, unpaused node at once, then settles; `ticks` times.
    pub fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            for id in self.ids() {
                if self.paused.contains(&id) || self.quiesced.contains(&id) {
                    continue;
                }
                if let Some(core) = self.core_mut(id) {
                    core.tick();
                }
            }
            self.settle();
        }
    }

    /// Lockstep: runs without ticks until nothing is left to do: no `Ready` pending, no
    /// message in flight, no write pending on a disk that is not held.
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            for id in self.ids() {
                self.drive(id);
            }
            let disks_idle = self
                .nodes
                .iter()
                .all(|n| n.core.is_none() || n.disk.held || n.disk.pending.is_empty());
            if disks_idle && self.net.in_flight() == 0 {
                return;
            }
            self.advance();
        }
        panic!("the cluster did not settle");
    }

    /// Time moves on one step: due disk writes complete, due messages are delivered.
    fn advance(&mut self) {
        self.now += 1;
        self.report.steps += 1;
        for i in 0..self.nodes.len() {
            let id = self.nodes[i].id;
            while self.nodes[i].core.is_some() {
                let Some(write) = self.nodes[i].disk.complete_next(self.now) else {
                    break;
                };
                self.on_write_complete(id, write);
            }
        }
        while let Some(message) = self.net.next_due(self.now) {
            let to = message.to;
            if to == 0 || to as usize > self.nodes.len() {
                continue;
            }
            if self.paused.contains(&to) || self.paused.contains(&message.from) {
                continue;
            }
            if let Some(core) = self.nodes[Self::idx(to)].core.as_mut() {
                core.step(message);
                self.wake(to);
                self.drive(to);
            }
        }
    }

    /// Wakes node `id` if it is quiesced.
    pub fn wake(&mut self, id: NodeId) {
        if self.quiesced.remove(&id) {
            self.report.quiesce_wakes += 1;
        }
    }

    fn send(&mut self, mut message: Message) {
        if let MessageBody::InstallSnapshot {
            meta,
            offset,
            len,
            data,
            ..
        } = &mut message.body
        {
            // The driver fills snapshot bytes from its own snapshot file (see raft module docs).
            let durable = &self.nodes[Self::idx(message.from)].disk.durable;
            let Some(bytes) = durable.snapshot_bytes(meta) else {
                return;
            };
            let start = *offset as usize;
            let end = start + *len as usize;
            *data = bytes[start..end].to_vec();
        }
        // A forged sender (see `bad_input`) may be no node of the cluster.
        let sender = (message.from as usize).checked_sub(1);
        if let Some(node) = sender.and_then(|i| self.nodes.get_mut(i)) {
            node.last_send_step = self.now;
        }
        self.net.send(message, self.now, &mut self.rng);
    }

    /// Processes every `Ready` of node `id` and checks the invariants.
    pub fn drive(&mut self, id: NodeId) {
        loop {
            let i = Self::idx(id);
            let Some(core) = self.nodes[i].core.as_mut() else {
                return;
            };
            if !core.has_ready() {
                break;
            }
            let ready = core.ready();
            self.handle_ready(id, ready);
            let core = self.nodes[i].core.as_ref().expect("running");
            self.inv.check_node(id, core);
            self.inv.check_configuration(id, core);
            self.check_commit_quorum(id);
        }
        if let Some(core) = self.nodes[Self::idx(id)].core.as_ref() {
            self.inv.check_node(id, core);
            self.inv.check_configuration(id, core);
            if core.is_removed() && !self.cfg.keep_removed {
                self.stop_removed(id);
            }
        }
    }

    /// The joint rule, against the disks: the index a leader commits is durably held by a
    /// majority of each half of its configuration.
    fn check_commit_quorum(&mut self, id: NodeId) {
        let core = self.nodes[Self::idx(id)].core.as_ref().expect("running");
        if core.role() != Role::Leader {
            return;
        }
        let (term, commit) = (core.term(), core.log().commit());
        let checked = self.leader_commit_checked.insert(id, (term, commit));
        // Checked only for advances made as leader of this term (a new leader's commit index
        // was learned as a follower).
        let Some((checked_term, checked_commit)) = checked else {
            return;
        };
        if checked_term != term || commit <= checked_commit {
            return;
        }
        let Some(commit_term) = core.log().term(commit) else {
            return;
        };
        let quorum = core.membership().quorum();
        let holds = |voter: &NodeId| {
            let Some(node) = self.nodes.get(Self::idx(*voter)) else {
                return false;
            };
            let durable = &node.disk.durable;
            if commit <= durable.snapshot.index {
                return true;
            }
            durable
                .entries
                .get((commit - durable.snapshot.index - 1) as usize)
                .is_some_and(|e| e.index == commit && e.term == commit_term)
        };
        for (half, voters) in [
            ("incoming", &quorum.incoming),
            ("outgoing", &quorum.outgoing),
        ] {
            if voters.is_empty() {
                continue;
            }
            let holding = voters.iter().filter(|v| holds(v)).count();
            if holding * 2 <= voters.len() {
                violation(format!(
                    "joint rule: leader {id} of term {term} committed {commit} held durably by \
                     {holding} of the {} {half} voters {voters:?}",
                    voters.len()
                ));
            }
        }
    }

    /// Carries out a `Ready` of node `id` (`drive` takes them; a scenario that took one from
    /// the core itself, to look at it, hands it back here).
    pub fn handle_ready(&mut self, id: NodeId, ready: Ready) {
        let i = Self::idx(id);
        {
            let core = self.nodes[i].core.as_ref().expect("running");
            self.inv.on_entries(id, core, &ready.entries);
            self.inv
                .on_ready_log(id, core, ready.truncate_from, &ready.entries);
        }
        for message in ready.messages {
            self.send(message);
        }
        self.report.truncations += u64::from(ready.truncate_from.is_some());
        let needs_write = ready.hard_state.is_some()
            || ready.truncate_from.is_some()
            || !ready.entries.is_empty()
            || !ready.snapshot_chunks.is_empty()
            || ready.snapshot_to_install.is_some()
            || !ready.persisted_messages.is_empty();
        if needs_write {
            let delay = self
                .rng
                .range(self.cfg.disk_delay_steps.0, self.cfg.disk_delay_steps.1 + 1);
            self.nodes[i].disk.submit(PendingWrite {
                complete_at: self.now + delay,
                hard_state: ready.hard_state,
                truncate_from: ready.truncate_from,
                entries: ready.entries,
                chunks: ready.snapshot_chunks,
                install: ready.snapshot_to_install,
                after_messages: ready.persisted_messages,
                log_seq: 0,
            });
        }
        if !ready.committed_entries.is_empty() {
            let term = self.nodes[i].core.as_ref().expect("running").term();
            let mut last = 0;
            for entry in &ready.committed_entries {
                let node = &mut self.nodes[i];
                if entry.index != node.applied_index + 1 {
                    violation(format!(
                        "node {id}: applying entry {} after {}",
                        entry.index, node.applied_index
                    ));
                }
                node.applied_index = entry.index;
                node.applied.push(entry.clone());
                self.inv.on_apply(id, entry, term);
                if entry.kind != EntryKind::Normal {
                    last = entry.index;
                    continue;
                }
                if let Some(command) = Command::decode(&entry.data) {
                    let applied = self.nodes[i].kv.apply(entry.index, &command);
                    if applied != Applied::Refused {
                        self.complete_write(&command);
                    }
                    if self.record_answers {
                        self.answers.push(Answer::Write {
                            client: command.client,
                            seq: command.seq,
                            applied,
                        });
                    }
                }
                last = entry.index;
            }
            self.nodes[i]
                .core
                .as_mut()
                .expect("running")
                .on_applied(last);
        }
        self.nodes[i]
            .pending_reads
            .extend(ready.read_states.iter().map(|r| (r.ctx, r.index)));
        self.nodes[i].read_states.extend(ready.read_states);
        self.serve_reads(id);
        if let Some(request) = ready.snapshot_request {
            let node = &mut self.nodes[i];
            assert_eq!(
                request.index, node.applied_index,
                "snapshot requested at the applied index"
            );
            let data = node.kv.encode();
            let meta = SnapshotMeta {
                index: request.index,
                term: request.term,
                membership: request.membership,
                size_bytes: data.len() as u64,
            };
            node.disk.store_snapshot(meta.clone(), data);
            node.core.as_mut().expect("running").on_snapshot_built(meta);
        }
    }

    fn on_write_complete(&mut self, id: NodeId, write: PendingWrite) {
        for message in write.after_messages {
            self.send(message);
        }
        let i = Self::idx(id);
        if let Some(last) = write.entries.last() {
            self.nodes[i]
                .core
                .as_mut()
                .expect("running")
                .on_persisted(last.index, last.term);
        }
        if let Some(meta) = write.install {
            let node = &mut self.nodes[i];
            node.kv = Kv::decode(&node.disk.durable.snapshot_data);
            node.applied_index = meta.index;
            node.core
                .as_mut()
                .expect("running")
                .on_snapshot_installed(meta);
            let core = self.nodes[i].core.as_ref().expect("running");
            self.inv.rescan_configuration(id, core);
        }
        self.drive(id);
    }

    // ----- clients -----

    fn complete_write(&mut self, command: &Command) {
        let Some(client) = self.clients.iter_mut().find(|c| c.id == command.client) else {
            return;
        };
        let matches = matches!(&client.pending, Some(PendingOp { kind: PendingKind::Write { seq }, .. }) if *seq == command.seq);
        if matches {
            let op = client.pending.take().expect("matched");
            let outcome = if command.kind == 1 {
                Outcome::Put
            } else {
                Outcome::Append
            };
            self.history.complete(op.op_id, outcome, self.now);
            self.report.ops_completed += 1;
            self.acked_writes.push((command.client, command.seq));
        }
    }

    fn serve_reads(&mut self, id: NodeId) {
        let i = Self::idx(id);
        let applied = self.nodes[i].applied_index;
        let ready: Vec<(u64, u64)> = self.nodes[i]
            .pending_reads
            .iter()
            .copied()
            .filter(|(_, index)| *index <= applied)
            .collect();
        self.nodes[i]
            .pending_reads
            .retain(|(_, index)| *index > applied);
        for (ctx, _) in ready {
            if let Some((key, guard)) = self.external_reads.remove(&ctx) {
                let value = self.nodes[i].kv.read(&key, guard);
                self.answers.push(Answer::Read { ctx, value });
                continue;
            }
            let Some(client) = self
                .clients
                .iter_mut()
                .find(|c| matches!(&c.pending, Some(PendingOp { kind: PendingKind::Read { ctx: c_ctx, .. }, .. }) if *c_ctx == ctx))
            else {
                continue;
            };
            let op = client.pending.take().expect("matched");
            let PendingKind::Read { key, .. } = op.kind else {
                unreachable!()
            };
            let value = self.nodes[i].kv.map.get(&key).cloned();
            self.history
                .complete(op.op_id, Outcome::Get(value), self.now);
            self.report.ops_completed += 1;
        }
    }

    fn step_clients(&mut self) {
        for c in 0..self.clients.len() {
            if let Some(op) = &self.clients[c].pending {
                if self.now >= op.deadline_step {
                    let op = self.clients[c].pending.take().expect("pending");
                    self.history.complete(op.op_id, Outcome::Unknown, self.now);
                }
                continue;
            }
            if !self.clients_active || self.rng.range(0, 1000) >= self.cfg.op_start_per_mille {
                continue;
            }
            self.start_op(c, None);
        }
    }

    /// Client `c` starts an operation (a write if `write`, random if `None`); returns whether
    /// one was started.
    fn start_op(&mut self, c: usize, write: Option<bool>) -> bool {
        let leaders = self.leaders();
        if leaders.is_empty() {
            return false;
        }
        // Any node that believes it leads may get the request, stale leaders included.
        let (leader, _) = leaders[self.rng.range(0, leaders.len() as u64) as usize];
        let key = format!("k{}", self.rng.range(0, self.cfg.keys)).into_bytes();
        let client_id = self.clients[c].id;
        self.clients[c].seq += 1;
        let seq = self.clients[c].seq;
        let deadline_step = self.now + self.cfg.op_timeout_ticks * STEPS_PER_TICK;
        let mut choice = self.rng.range(0, 10);
        match write {
            Some(true) => choice %= 6,
            Some(false) => choice = 6 + choice % 4,
            None => {}
        }
        if choice < 6 {
            let kind = if choice < 3 { 1 } else { 2 };
            let value = format!("{client_id}.{seq};").into_bytes();
            let command = Command {
                kind,
                client: client_id,
                seq,
                key: key.clone(),
                value: value.clone(),
                guard: None,
            };
            self.wake(leader);
            let core = self.core_mut(leader).expect("leader runs");
            if core.propose(command.encode()).is_err() {
                return false;
            }
            let op = if kind == 1 {
                Op::Put { key, value }
            } else {
                Op::Append { key, value }
            };
            let op_id = self.history.invoke(client_id, op, self.now);
            self.report.ops_invoked += 1;
            self.clients[c].pending = Some(PendingOp {
                op_id,
                kind: PendingKind::Write { seq },
                deadline_step,
            });
            self.drive(leader);
        } else {
            let target = if self.rng.range(0, 1000) < self.cfg.follower_read_per_mille {
                let up: Vec<NodeId> = self
                    .ids()
                    .into_iter()
                    .filter(|id| self.is_up(*id))
                    .collect();
                up[self.rng.range(0, up.len() as u64) as usize]
            } else {
                leader
            };
            let ctx = self.next_ctx;
            self.next_ctx += 1;
            let op_id = self
                .history
                .invoke(client_id, Op::Get { key: key.clone() }, self.now);
            self.report.ops_invoked += 1;
            self.wake(target);
            let core = self.core_mut(target).expect("target runs");
            if core.read_index(ctx).is_err() {
                self.history.complete(op_id, Outcome::Unknown, self.now);
                return false;
            }
            self.clients[c].pending = Some(PendingOp {
                op_id,
                kind: PendingKind::Read { ctx, key },
                deadline_step,
            });
            self.drive(target);
        }
        true
    }

    /// Whether any client operation is outstanding.
    pub fn ops_pending(&self) -> bool {
        self.external_ops_pending || self.clients.iter().any(|c| c.pending.is_some())
    }

    /// A client outside the cluster proposes `command` at node `leader` (which believes it
    /// leads); its answer comes in `answers`. Returns whether the core took it.
    pub fn propose_external(&mut self, leader: NodeId, command: &Command) -> bool {
        self.wake(leader);
        let Some(core) = self.core_mut(leader) else {
            return false;
        };
        if core.propose(command.encode()).is_err() {
            return false;
        }
        self.drive(leader);
        true
    }

    /// A client outside the cluster reads `key` at node `target` (ReadIndex; the leader or a
    /// follower), through a route with `guard`; the answer comes in `answers` under the
    /// returned context, unless the read is lost (it then never comes).
    pub fn read_external(
        &mut self,
        target: NodeId,
        key: &[u8],
        guard: Option<RangeCheck>,
    ) -> Option<u64> {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        self.wake(target);
        let core = self.core_mut(target)?;
        if core.read_index(ctx).is_err() {
            return None;
        }
        self.external_reads.insert(ctx, (key.to_vec(), guard));
        self.drive(target);
        Some(ctx)
    }

    // ----- endings -----

    /// Heals everything (links, pauses, stalled disks), then requires progress within bounds: a leader is elected, every
    /// client completes one more write and one more read without timing out, and every node
    /// converges. Then checks the history for linearizability. Returns the run report.
    pub fn finish(mut self, bound_ticks: u64) -> RunReport {
        self.converge(bound_ticks);
        self.into_report()
    }

    /// `finish` but for the report: heals everything, requires progress and convergence
    /// within `bound_ticks`, and checks the history.
    pub fn converge(&mut self, bound_ticks: u64) {
        self.net.heal();
        self.net.faults = NetworkFaults::reliable();
        self.paused.clear();
        for node in &mut self.nodes {
            node.disk.held = false;
        }
        for id in self.ids() {
            self.restart(id);
        }
        self.clients_active = false;
        let waited = self.run_until(2 * self.cfg.op_timeout_ticks + 5, |c| !c.ops_pending());
        assert!(waited, "client operations time out, so they always finish");
        if !self.run_until(bound_ticks, |c| c.leader().is_some()) {
            violation(format!(
                "liveness: no leader {bound_ticks} ticks after faults stopped"
            ));
        }
        // Every client must now get one write and one read through, without timing out.
        for c in 0..self.clients.len() {
            for want_write in [true, false] {
                let deadline = self.now + bound_ticks * STEPS_PER_TICK;
                let completed_before = self.report.ops_completed;
                // An operation sent to a leader that is deposed right after may time out; the
                // client retries, and must succeed within the bound.
                while self.now < deadline && self.report.ops_completed == completed_before {
                    if self.clients[c].pending.is_none() {
                        self.start_op(c, Some(want_write));
                    }
                    self.step();
                }
                if self.report.ops_completed == completed_before {
                    violation(format!(
                        "liveness: client {} operation not completed within {bound_ticks} ticks after faults stopped",
                        c + 1
                    ));
                }
            }
        }
        // Followers learn the final commit index from heartbeats.
        // Every member of the leader's configuration (nodes removed from it stop or are left
        // out) converges.
        let converged = self.run_until(bound_ticks, |c| {
            let Some(leader) = c.leader() else {
                return false;
            };
            let Some(core) = c.core(leader) else {
                return false;
            };
            let commit = core.log().commit();
            let members = core.membership().all_members();
            c.nodes
                .iter()
                .filter(|n| members.contains(&n.id))
                .all(|n| n.applied_index == commit)
        });
        let leader = self.leader().unwrap_or(1);
        if !converged {
            let applied: Vec<u64> = self.nodes.iter().map(|n| n.applied_index).collect();
            violation(format!(
                "liveness: nodes did not converge (applied {applied:?})"
            ));
        }
        let members = self
            .core(leader)
            .map(|core| core.membership().all_members())
            .unwrap_or_default();
        let first = self.nodes[Self::idx(leader)].kv.clone();
        for node in self.nodes.iter().filter(|n| members.contains(&n.id)) {
            if node.kv != first {
                violation(format!(
                    "state machines of nodes {leader} and {} differ after convergence",
                    node.id
                ));
            }
        }
        if !self.check_history() {
            self.report.linearizability_unknown += 1;
        }
    }

    /// The run's counters, at its end.
    pub fn into_report(mut self) -> RunReport {
        self.report.messages = self.net.total_sent();
        self.report.configuration_entries = self.inv.configuration_entries;
        for node in &self.nodes {
            if let Some(core) = &node.core {
                self.report.add_core_stats(core.stats());
            }
        }
        self.report
    }

    /// Checks the recorded history for linearizability. Returns false if the checker gave up
    /// (hit its search bound): not a proof of a bug, but counted, and a scenario where that
    /// happens often fails (see `seeds::run`).
    pub fn check_history(&self) -> bool {
        match history::check(&self.history, CheckLimits::default()) {
            CheckResult::Ok => true,
            CheckResult::Violation(v) => violation(format!("linearizability: {v}")),
            CheckResult::Unknown { key, reason } => {
                eprintln!("linearizability check gave up on key {key:?}: {reason}");
                false
            }
        }
    }
}

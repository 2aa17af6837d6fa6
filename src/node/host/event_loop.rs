//! The host's event loop thread: one mio `Poll` for the peer transport and the waker, every
//! group's core, ticks, client requests, and the routing of every group's `Ready` (the contract
//! of `crate::raft`, carried out per group exactly as the single-group loop does).
//!
//! It never blocks on disk or on another thread: work for the writer and the apply workers is
//! gathered over the pass and sent at its end, one message per thread (`outbox`), on bounded
//! channels whose room the loop checked first (items sent against items reported done). A
//! group whose worker, or the writer, has no room keeps its `Ready` in its core until the next
//! pass.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketch_storage::snapshot::RawSnapshotFile;
use mio::{Events, Poll};

use super::apply::{ApplyReport, ApplyShared, ApplyWork, APPLY_QUEUE_ITEMS};
use super::log_writer::{PersistWork, WriterShared, WRITER_QUEUE_ITEMS};
use super::outbox::{Gone, Outbox};
use super::request::HostRequest;
use super::snapshot_pacing::SnapshotPacer;
use super::snapshots::GroupSnapshots;
use super::status::{GroupStatus, HostStatus};
use crate::node::apply::Waiter;
use crate::node::coalesce::coalesce_appends;
use crate::node::completion::{ProposeCompletion, ReadCompletion};
use crate::node::disk_stall::{self, WriterProgress};
use crate::node::errors::{ProposeError, ReadError};
use crate::node::forward::{ForwardState, Leading, Route};
use crate::node::membership_change::{ChangeCompletion, ChangeError};
use crate::node::quiescence;
use crate::node::transport::{Received, Transport, LISTENER_TOKEN, WAKER_TOKEN};
use crate::raft::{Core, GroupId, Message, MessageBody, NodeId, Ready, Role, SnapshotMeta};
use crate::wire::message::QuiesceNotice;

/// Client requests taken per pass, so a flood cannot starve peer traffic and ticks.
const INBOX_PER_PASS_MAX: usize = 4096;
/// `Ready`s taken from one group per pass.
const READIES_PER_GROUP_MAX: usize = 8;
/// Items kept free in each apply queue beyond one `Ready`'s work (restores, reads).
const APPLY_SLACK_ITEMS: u64 = 16;
/// How often the host's status is published.
const STATUS_PERIOD: Duration = Duration::from_millis(10);

/// A persistence item sent to the writer, with what to do once it is durable.
struct PendingPersist {
    seq: u64,
    group: GroupId,
    /// When it was sent to the writer, and the entry and chunk bytes it carries (for the
    /// disk-stall rule, `crate::node::disk_stall`).
    sent_at: Instant,
    write_bytes: u64,
    persisted_messages: Vec<Message>,
    last_entry: Option<(u64, u64)>,
    install: Option<SnapshotMeta>,
}

struct PendingRead {
    query: Vec<u8>,
    done: ReadCompletion,
    deadline: Instant,
}

/// An operator request of one group waiting for its outcome.
enum PendingChange {
    /// A configuration entry at `index`, proposed in `term`: done once it and the change's
    /// final configuration are committed.
    Membership {
        index: u64,
        term: u64,
        done: ChangeCompletion,
        deadline: Instant,
    },
    /// A leadership transfer to `target`.
    Transfer {
        target: NodeId,
        done: ChangeCompletion,
        deadline: Instant,
    },
}

/// Which groups sleep (see `crate::node::quiescence`), kept so that the loop's per-tick work
/// visits only the awake ones: a host of ten thousand idle groups must not walk them all a
/// hundred times a second.
#[derive(Default)]
struct Sleepers {
    /// Groups not quiesced.
    awake: HashSet<GroupId>,
    /// Groups quiesced.
    quiesced: usize,
    /// Of those, the ones whose replica here led when it quiesced.
    quiesced_leaders: usize,
}

impl Sleepers {
    fn quiesce(&mut self, group: GroupId, replica: &mut Replica) {
        if replica.quiesced {
            return;
        }
        replica.quiesced = true;
        replica.idle_ticks = 0;
        replica.quiesced_as_leader = replica.core.role() == Role::Leader;
        self.awake.remove(&group);
        self.quiesced += 1;
        self.quiesced_leaders += usize::from(replica.quiesced_as_leader);
    }

    fn wake(&mut self, group: GroupId, replica: &mut Replica) {
        if !replica.quiesced {
            return;
        }
        replica.quiesced = false;
        replica.idle_ticks = 0;
        self.awake.insert(group);
        self.quiesced -= 1;
        self.quiesced_leaders -= usize::from(replica.quiesced_as_leader);
    }

    fn forget(&mut self, group: GroupId, replica: &Replica) {
        if replica.quiesced {
            self.quiesced -= 1;
            self.quiesced_leaders -= usize::from(replica.quiesced_as_leader);
        } else {
            self.awake.remove(&group);
        }
    }
}

/// One group's replica on this host, as the loop holds it.
struct Replica {
    core: Core,
    /// The apply worker of the group.
    worker: usize,
    /// Proposals accepted here, by log index, until their entry is committed.
    waiters: BTreeMap<u64, Waiter>,
    proposals_expire_from: Option<Instant>,
    reads: HashMap<u64, PendingRead>,
    changes: Vec<PendingChange>,
    applied_reported: u64,
    /// Queued in `HostLoop::dirty`.
    dirty: bool,
    /// Not ticked: idle, see `quiescence`.
    quiesced: bool,
    /// Consecutive idle ticks of a leader.
    idle_ticks: u32,
    /// It led when it quiesced (its role cannot change while it sleeps: a message that could
    /// change it wakes it).
    quiesced_as_leader: bool,
}

/// The loop's settings.
pub struct LoopSettings {
    pub tick_interval: Duration,
    pub max_pending_proposals: usize,
    pub max_pending_reads: usize,
    pub append_merge_bytes_max: u64,
    pub max_proposal_bytes: u64,
    /// How long a proposal forwarded by a follower may take here, from its arrival.
    pub propose_timeout: Duration,
    /// Ticks without hearing from a host after which it counts as lost.
    pub election_timeout_ticks: u64,
    /// Idle ticks before a leader quiesces its group (0: never).
    pub quiesce_after_ticks: u32,
    /// Ticks between host beats to each peer host (at least 1).
    pub host_beat_interval_ticks: u64,
    /// How long the log writer may make no progress before the host counts its disk as
    /// stalled (`crate::node::disk_stall`).
    pub disk_stall_timeout: Duration,
    /// Host-wide budget of InstallSnapshot chunk bytes sent per second (0: unlimited).
    pub snapshot_bytes_per_sec: u64,
    /// The leader's hook over accepted proposals (see `HostConfig::proposal_stamp`).
    pub proposal_stamp: Option<crate::node::ProposalStamp>,
}

/// The sending side of snapshot transfers: chunks paced host-wide (`snapshot_pacing`), their
/// bytes read from the group's snapshot file only once they go, so a held chunk costs no
/// memory for its data.
struct SnapshotSends {
    snapshots: GroupSnapshots,
    /// The snapshot file last read from, kept open across a transfer's chunks.
    raw: Option<(GroupId, RawSnapshotFile)>,
    /// Keyed by group and follower; the message carries its group's term.
    pacer: SnapshotPacer<Message>,
    /// Chunk bytes handed to the transport.
    bytes_sent: u64,
}

/// The loop's ends of its links.
pub struct LoopLinks {
    pub inbox: Receiver<HostRequest>,
    pub writer_tx: SyncSender<Vec<PersistWork>>,
    pub writer_shared: Arc<WriterShared>,
    pub apply_txs: Vec<SyncSender<Vec<ApplyWork>>>,
    pub apply_shared: Arc<ApplyShared>,
    pub snapshots: GroupSnapshots,
    /// The loop's own waker, for completions of forwarded proposals.
    pub waker: Arc<mio::Waker>,
    pub stop: Arc<AtomicBool>,
    pub status: Arc<Mutex<HostStatus>>,
}

/// Everything the loop thread owns.
pub struct HostLoop {
    id: NodeId,
    poll: Poll,
    transport: Transport,
    settings: LoopSettings,
    links: LoopLinks,
    groups: HashMap<GroupId, Replica>,
    dirty: Vec<GroupId>,
    seq: u64,
    pending: std::collections::VecDeque<PendingPersist>,
    apply_sent: Vec<u64>,
    /// The pass's work for the writer and the workers, sent at the end of the pass.
    outbox: Outbox,
    next_read_ctx: u64,
    pending_proposals: usize,
    pending_reads: usize,
    participating: bool,
    /// The log writer's progress over `pending`.
    writer_progress: WriterProgress,
    /// The writer has made no progress for too long: the host sends nothing, host beats
    /// included, so every group it leads elects a leader elsewhere (`disk_stall`). One log
    /// serves every group, so the stall is the whole host's.
    disk_stalled: bool,
    last_error: Option<String>,
    snapshot_sends: SnapshotSends,
    received: Received,
    /// Proposals this host forwarded to their group's leader, and those it takes from
    /// followers (`crate::node::forward`); both bounded host-wide.
    forwards: ForwardState,
    ticks: u64,
    messages_unrouted: u64,
    /// Passes that ran so late that ticks were dropped (see `run`).
    ticks_dropped: u64,
    sleepers: Sleepers,
    /// The tick at which each peer host was last heard from (any frame).
    last_heard: HashMap<NodeId, u64>,
    /// Peer hosts not heard from for an election timeout.
    lost_peers: BTreeSet<NodeId>,
    /// The peer hosts (this one excluded).
    peers: Vec<NodeId>,
}

impl HostLoop {
    /// A loop over `poll` (the links' waker registered on it) and `transport`.
    pub fn new(
        id: NodeId,
        poll: Poll,
        transport: Transport,
        settings: LoopSettings,
        links: LoopLinks,
    ) -> HostLoop {
        let workers = links.apply_txs.len();
        let peers: Vec<NodeId> = transport.peers().into_keys().collect();
        let snapshot_sends = SnapshotSends {
            snapshots: links.snapshots.clone(),
            raw: None,
            pacer: SnapshotPacer::new(settings.snapshot_bytes_per_sec, Instant::now()),
            bytes_sent: 0,
        };
        HostLoop {
            id,
            poll,
            transport,
            settings,
            links,
            groups: HashMap::new(),
            dirty: Vec::new(),
            seq: 0,
            pending: std::collections::VecDeque::new(),
            apply_sent: vec![0; workers],
            outbox: Outbox::new(workers),
            next_read_ctx: 1,
            pending_proposals: 0,
            pending_reads: 0,
            participating: true,
            writer_progress: WriterProgress::new(),
            disk_stalled: false,
            last_error: None,
            snapshot_sends,
            received: Received::default(),
            forwards: ForwardState::new(),
            ticks: 0,
            messages_unrouted: 0,
            ticks_dropped: 0,
            sleepers: Sleepers::default(),
            last_heard: peers.iter().map(|p| (*p, 0)).collect(),
            lost_peers: BTreeSet::new(),
            peers,
        }
    }

    /// Runs until `stop` is set.
    pub fn run(mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + self.settings.tick_interval;
        let mut next_status = Instant::now();
        while !self.links.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut wake_at = next_tick;
            if let Some(retry) = self.transport.next_retry() {
                wake_at = wake_at.min(retry);
            }
            if let Some(chunk_at) = self.snapshot_sends.pacer.next_ready_at(now) {
                wake_at = wake_at.min(chunk_at);
            }
            let timeout = if self.transport.has_pending_io() || !self.dirty.is_empty() {
                Duration::ZERO
            } else {
                wake_at.saturating_duration_since(now)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll failed: {e}"));
                }
            }
            let registry = self.poll.registry();
            self.transport.read_pending(registry, &mut self.received);
            for event in events.iter() {
                match event.token() {
                    LISTENER_TOKEN => self.transport.accept(registry),
                    WAKER_TOKEN => {}
                    _ => self
                        .transport
                        .handle_event(registry, event, &mut self.received),
                }
            }
            self.transport
                .maintain(self.poll.registry(), Instant::now());
            self.check_failures();
            self.route_received();
            self.take_forwards();
            self.take_requests();
            self.check_forwards();
            // One tick per pass at most, and ticks missed while the pass ran late are
            // dropped, not caught up: catching up ticks every awake group several times
            // with no message read in between, so under load (thousands of groups woken by a
            // failover) every candidate's election timer fired before any vote could arrive,
            // and when one tick of all groups took longer than a tick interval the loop did
            // nothing else. A loaded host's clock runs slow instead, as etcd's does.
            let now = Instant::now();
            if now >= next_tick {
                self.tick_all();
                next_tick += self.settings.tick_interval;
                if next_tick <= now {
                    self.ticks_dropped += 1;
                    next_tick = now + self.settings.tick_interval;
                }
                self.expire();
            }
            self.take_completions();
            self.check_disk_stall();
            // Held chunks go before the pass's new ones, which queue behind them.
            self.release_snapshot_chunks();
            self.handle_readies();
            self.flush_outbox();
            self.send_forward_results();
            self.transport.flush_all(self.poll.registry());
            let now = Instant::now();
            if now >= next_status {
                self.publish_status();
                next_status = now + STATUS_PERIOD;
            }
        }
        self.flush_outbox();
        self.transport.close_all(self.poll.registry());
        for replica in self.groups.values_mut() {
            for (_, read) in replica.reads.drain() {
                read.done.complete(Err(ReadError::ShuttingDown));
            }
        }
        Ok(())
    }

    fn mark_dirty(dirty: &mut Vec<GroupId>, group: GroupId, replica: &mut Replica) {
        if !replica.dirty {
            replica.dirty = true;
            dirty.push(group);
        }
    }

    fn route_received(&mut self) {
        let messages = std::mem::take(&mut self.received.messages);
        if !self.participating {
            return;
        }
        for peer in self.received.heard_from.drain(..) {
            self.last_heard.insert(peer, self.ticks);
        }
        for (group, message) in messages {
            match self.groups.get_mut(&group) {
                Some(replica) => {
                    // Answers to a quiesced leader's last heartbeat, still in flight when it
                    // quiesced, say nothing new: they would wake every group they reach.
                    // (One of a newer term wakes it: it may make the leader step down.)
                    let wakes = !matches!(message.body, MessageBody::HeartbeatResponse { .. })
                        || message.term != replica.core.term();
                    if wakes {
                        self.sleepers.wake(group, replica);
                    }
                    replica.core.step(message);
                    Self::mark_dirty(&mut self.dirty, group, replica);
                }
                // Unknown here (not created yet, or removed: a tombstoned group is never
                // brought back by a message).
                None => self.messages_unrouted += 1,
            }
        }
        for (from, notice) in std::mem::take(&mut self.received.quiesce) {
            let Some(replica) = self.groups.get_mut(&notice.group) else {
                continue;
            };
            if !replica.quiesced
                && !self.lost_peers.contains(&from)
                && replica.waiters.is_empty()
                && replica.reads.is_empty()
                && replica.changes.is_empty()
                && quiescence::follower_may_quiesce(&replica.core, from, notice.term, notice.commit)
            {
                self.sleepers.quiesce(notice.group, replica);
            }
        }
    }

    /// Forwards from peers: proposals for groups this host leads (any other is refused,
    /// certainly not applied, and never creates a group), and the answers to this host's.
    /// Taken also once the host stopped: its own forwards never touched its log, and the
    /// leaders still answer them.
    fn take_forwards(&mut self) {
        for forward in std::mem::take(&mut self.received.forwards) {
            let group = forward.group;
            let leading = match self.groups.get(&group) {
                Some(replica) if self.participating && replica.core.role() == Role::Leader => {
                    Leading::Yes
                }
                Some(replica) if self.participating => Leading::No {
                    leader_hint: replica.core.leader(),
                },
                _ => Leading::No { leader_hint: None },
            };
            let max_bytes = self.settings.max_proposal_bytes;
            let waker = &self.links.waker;
            if let Some((data, done)) = self.forwards.take(forward, leading, max_bytes, waker) {
                // A quiesced leader wakes for it, as for a local proposal.
                self.wake(group);
                let deadline = Instant::now() + self.settings.propose_timeout;
                self.propose_here(group, data, done, deadline);
            }
        }
    }

    /// Answers the forwards whose group's leader here changed, whose connection to it was
    /// lost, or whose deadline passed.
    fn check_forwards(&mut self) {
        let (groups, transport) = (&self.groups, &self.transport);
        self.forwards.check_leaders(
            |group| groups.get(&group).and_then(|r| r.core.leader()),
            |leader| transport.connection_epoch(leader),
        );
        self.forwards.expire(Instant::now());
    }

    /// Sends the results this host owes followers; one that cannot be sent is dropped (the
    /// follower then answers "may have been applied").
    fn send_forward_results(&mut self) {
        let (transport, registry) = (&mut self.transport, self.poll.registry());
        self.forwards.send_results(self.id, |frame| {
            let _ = transport.send_forward(registry, frame);
        });
    }

    /// Wakes `group` if it is quiesced (a client request arrived for it).
    fn wake(&mut self, group: GroupId) {
        if let Some(replica) = self.groups.get_mut(&group) {
            self.sleepers.wake(group, replica);
        }
    }

    fn tick_all(&mut self) {
        self.ticks += 1;
        if !self.participating {
            return;
        }
        // Host liveness: one beat per peer host per heartbeat interval (as often as one
        // group's leader would heartbeat), whatever the number of groups.
        if self.ticks % self.settings.host_beat_interval_ticks == 0 && !self.disk_stalled {
            for peer in &self.peers {
                self.transport
                    .send_host_beat(self.poll.registry(), *peer, self.ticks);
            }
        }
        self.check_lost_peers();
        let quiesce_after = self.settings.quiesce_after_ticks;
        let mut notices: BTreeMap<NodeId, Vec<QuiesceNotice>> = BTreeMap::new();
        let awake: Vec<GroupId> = self.sleepers.awake.iter().copied().collect();
        for group in &awake {
            let Some(replica) = self.groups.get_mut(group) else {
                continue;
            };
            // A replica removed from its group's configuration takes no further part: its
            // ticks would only make it campaign (harmlessly, with pre-vote) forever.
            if replica.core.is_removed() {
                continue;
            }
            if quiesce_after == 0 {
                replica.core.tick();
                Self::mark_dirty(&mut self.dirty, *group, replica);
                continue;
            }
            // Heartbeats a tick produces do not count: an idle leader still sends them.
            let waiting = !replica.waiters.is_empty()
                || !replica.reads.is_empty()
                || !replica.changes.is_empty();
            let lost_peers = &self.lost_peers;
            let idle =
                quiescence::leader_idle(&replica.core, replica.applied_reported, waiting, |peer| {
                    lost_peers.contains(&peer)
                });
            // The notice goes to the followers that matched, not to lost hosts.
            let followers: Vec<NodeId> = if idle {
                replica
                    .core
                    .peer_matches()
                    .map(|(peer, _)| peer)
                    .filter(|peer| *peer != self.id && !lost_peers.contains(peer))
                    .collect()
            } else {
                Vec::new()
            };
            if idle && replica.idle_ticks + 1 >= quiesce_after {
                // Quiesced instead of ticked: this tick sends no heartbeat that would arrive
                // after the notice and wake the follower again.
                self.sleepers.quiesce(*group, replica);
                let notice = QuiesceNotice {
                    group: *group,
                    term: replica.core.term(),
                    commit: replica.core.log().commit(),
                };
                for follower in followers {
                    notices.entry(follower).or_default().push(notice);
                }
                continue;
            }
            replica.idle_ticks = if idle { replica.idle_ticks + 1 } else { 0 };
            replica.core.tick();
            Self::mark_dirty(&mut self.dirty, *group, replica);
        }
        if self.disk_stalled {
            return;
        }
        for (peer, notices) in notices {
            self.transport
                .send_quiesce(self.poll.registry(), peer, &notices);
        }
    }

    /// Marks peer hosts silent for an election timeout as lost, and wakes every quiesced
    /// group led from a host just lost (it will campaign once its election clock runs out) and
    /// every quiesced leader that left a follower behind on a host heard from again.
    fn check_lost_peers(&mut self) {
        let limit = self.settings.election_timeout_ticks;
        let mut newly_lost = Vec::new();
        let mut back = Vec::new();
        for peer in &self.peers {
            let heard = self.last_heard.get(peer).copied().unwrap_or(0);
            let silent = self.ticks.saturating_sub(heard) > limit;
            if silent {
                if self.lost_peers.insert(*peer) {
                    newly_lost.push(*peer);
                }
            } else if self.lost_peers.remove(peer) {
                back.push(*peer);
            }
        }
        if (newly_lost.is_empty() && back.is_empty()) || self.sleepers.quiesced == 0 {
            return;
        }
        // A scan of every group, on a host lost or back only.
        for (group, replica) in self.groups.iter_mut() {
            if !replica.quiesced {
                continue;
            }
            let leader = replica.core.leader();
            let leader_lost = leader.is_some_and(|l| newly_lost.contains(&l));
            let follower_back = back
                .iter()
                .any(|peer| quiescence::left_behind(&replica.core, *peer));
            if leader_lost || follower_back {
                self.sleepers.wake(*group, replica);
                Self::mark_dirty(&mut self.dirty, *group, replica);
            }
        }
    }

    fn take_requests(&mut self) {
        for _ in 0..INBOX_PER_PASS_MAX {
            match self.links.inbox.try_recv() {
                Ok(request) => self.take_request(request),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
    }

    fn take_request(&mut self, request: HostRequest) {
        match &request {
            HostRequest::Propose { group, .. }
            | HostRequest::Read { group, .. }
            | HostRequest::ChangeMembership { group, .. }
            | HostRequest::TransferLeader { group, .. } => self.wake(*group),
            _ => {}
        }
        match request {
            HostRequest::Add {
                group,
                core,
                state_machine,
                applied,
                done,
            } => {
                let _ = done.send(self.add_group(group, *core, state_machine, applied));
            }
            HostRequest::Remove { group, done } => {
                self.remove_group(group);
                let _ = done.send(());
            }
            HostRequest::Propose {
                group,
                data,
                done,
                deadline,
            } => self.propose(group, data, done, deadline),
            HostRequest::Read {
                group,
                query,
                done,
                deadline,
            } => self.read(group, query, done, deadline),
            HostRequest::Status { group, done } => {
                let status = self.groups.get(&group).map(|r| self.group_status(group, r));
                let _ = done.send(status);
            }
            HostRequest::ChangeMembership {
                group,
                change,
                done,
                deadline,
            } => {
                let Some(replica) = self.groups.get_mut(&group) else {
                    done.complete(Err(ChangeError::Refused {
                        reason: format!("group {group} is not on this host"),
                    }));
                    return;
                };
                if !self.participating {
                    done.complete(Err(ChangeError::Stopped {
                        reason: self.last_error.clone().unwrap_or_default(),
                    }));
                    return;
                }
                match replica.core.propose_conf_change(change) {
                    Ok(index) => {
                        let term = replica.core.term();
                        replica.changes.push(PendingChange::Membership {
                            index,
                            term,
                            done,
                            deadline,
                        });
                        Self::mark_dirty(&mut self.dirty, group, replica);
                    }
                    Err(crate::raft::ConfChangeError::NotLeader { leader_hint }) => {
                        done.complete(Err(ChangeError::NotLeader { leader_hint }))
                    }
                    Err(e) => done.complete(Err(ChangeError::Refused {
                        reason: e.to_string(),
                    })),
                }
            }
            HostRequest::TransferLeader {
                group,
                target,
                done,
                deadline,
            } => {
                let Some(replica) = self.groups.get_mut(&group) else {
                    done.complete(Err(ChangeError::Refused {
                        reason: format!("group {group} is not on this host"),
                    }));
                    return;
                };
                match replica.core.transfer_leader(target) {
                    Ok(()) => {
                        replica.changes.push(PendingChange::Transfer {
                            target,
                            done,
                            deadline,
                        });
                        Self::mark_dirty(&mut self.dirty, group, replica);
                    }
                    Err(crate::raft::TransferError::NotLeader) => {
                        done.complete(Err(ChangeError::NotLeader {
                            leader_hint: replica.core.leader(),
                        }))
                    }
                    Err(e) => done.complete(Err(ChangeError::Refused {
                        reason: e.to_string(),
                    })),
                }
            }
        }
    }

    /// Runs `group` on this loop from now on; its state machine goes to its apply worker
    /// first, so the worker knows the group before any of its entries arrive.
    pub fn add_group(
        &mut self,
        group: GroupId,
        core: Core,
        state_machine: Box<dyn crate::node::StateMachine>,
        applied: (u64, u64),
    ) -> Result<(), String> {
        let worker = super::worker_of(group, self.links.apply_txs.len());
        let work = ApplyWork::Add {
            group,
            state_machine,
            applied,
        };
        // Adds skip the room check: they are rare and small, and the outbox waits for a full
        // queue (the worker drains it).
        self.outbox.apply(worker, work);
        self.apply_sent[worker] += 1;
        let mut replica = Replica {
            core,
            worker,
            waiters: BTreeMap::new(),
            proposals_expire_from: None,
            reads: HashMap::new(),
            changes: Vec::new(),
            applied_reported: applied.0,
            dirty: false,
            quiesced: false,
            idle_ticks: 0,
            quiesced_as_leader: false,
        };
        self.sleepers.awake.insert(group);
        Self::mark_dirty(&mut self.dirty, group, &mut replica);
        self.groups.insert(group, replica);
        Ok(())
    }

    fn remove_group(&mut self, group: GroupId) {
        let Some(mut replica) = self.groups.remove(&group) else {
            return;
        };
        self.sleepers.forget(group, &replica);
        self.forwards.lose_group(group);
        self.pending_proposals -= replica.waiters.len();
        self.pending_reads -= replica.reads.len();
        // Their commands may have reached other replicas' logs.
        for (_, waiter) in std::mem::take(&mut replica.waiters) {
            waiter.done.complete(Err(ProposeError::LeaderLost));
        }
        for (_, read) in replica.reads.drain() {
            read.done.complete(Err(ReadError::ShuttingDown));
        }
        for change in replica.changes.drain(..) {
            let (PendingChange::Membership { done, .. } | PendingChange::Transfer { done, .. }) =
                change;
            done.complete(Err(ChangeError::Stopped {
                reason: format!("group {group} was removed from this host"),
            }));
        }
        if self
            .snapshot_sends
            .raw
            .as_ref()
            .is_some_and(|(cached, _)| *cached == group)
        {
            self.snapshot_sends.raw = None;
        }
        self.snapshot_sends.pacer.drop_group(group);
        let worker = replica.worker;
        self.outbox.apply(worker, ApplyWork::Remove { group });
        self.apply_sent[worker] += 1;
        self.seq += 1;
        self.pending.push_back(PendingPersist {
            seq: self.seq,
            group,
            sent_at: Instant::now(),
            write_bytes: 0,
            persisted_messages: Vec::new(),
            last_entry: None,
            install: None,
        });
        let work = PersistWork {
            seq: self.seq,
            group,
            remove: true,
            ..PersistWork::default()
        };
        self.outbox.persist(work);
    }

    /// A client's proposal: proposed here if this replica leads its group, forwarded to the
    /// leader it knows otherwise (`crate::node::forward` says what the caller is told).
    fn propose(
        &mut self,
        group: GroupId,
        data: Vec<u8>,
        done: ProposeCompletion,
        deadline: Instant,
    ) {
        if !self.participating {
            let reason = self.last_error.clone().unwrap_or_default();
            done.complete(Err(ProposeError::Stopped { reason }));
            return;
        }
        let Some(replica) = self.groups.get(&group) else {
            done.complete(Err(ProposeError::NotLeader { leader_hint: None }));
            return;
        };
        if data.len() as u64 > self.settings.max_proposal_bytes {
            done.complete(Err(ProposeError::Backpressure));
            return;
        }
        match replica.core.leader() {
            Some(leader) if leader != self.id && replica.core.role() != Role::Leader => {
                let route = Route {
                    from: self.id,
                    to: leader,
                    group,
                };
                let (transport, registry) = (&mut self.transport, self.poll.registry());
                self.forwards.forward(route, data, done, deadline, |frame| {
                    transport.send_forward(registry, frame)?;
                    Ok(transport.connection_epoch(leader))
                });
            }
            _ => self.propose_here(group, data.into(), done, deadline),
        }
    }

    /// Proposes on this host's replica of `group` (answers `NotLeader` unless it leads).
    fn propose_here(
        &mut self,
        group: GroupId,
        data: bytes::Bytes,
        done: ProposeCompletion,
        deadline: Instant,
    ) {
        let Some(replica) = self.groups.get_mut(&group) else {
            done.complete(Err(ProposeError::NotLeader { leader_hint: None }));
            return;
        };
        if self.pending_proposals >= self.settings.max_pending_proposals {
            done.complete(Err(ProposeError::Backpressure));
            return;
        }
        let data = match &self.settings.proposal_stamp {
            Some(stamp) if replica.core.role() == Role::Leader => stamp.stamp(data),
            _ => data,
        };
        let error = match replica.core.propose(data) {
            Ok(index) => {
                let waiter = Waiter {
                    term: replica.core.term(),
                    done,
                    deadline,
                };
                self.pending_proposals += 1;
                if let Some(old) = replica.waiters.insert(index, waiter) {
                    self.pending_proposals -= 1;
                    old.done.complete(Err(ProposeError::LeaderLost));
                }
                replica.proposals_expire_from = Some(
                    replica
                        .proposals_expire_from
                        .map_or(deadline, |at| at.min(deadline)),
                );
                Self::mark_dirty(&mut self.dirty, group, replica);
                return;
            }
            Err(crate::raft::ProposalRefused::NotLeader { leader_hint }) => {
                ProposeError::NotLeader { leader_hint }
            }
            Err(crate::raft::ProposalRefused::TransferInProgress) => {
                ProposeError::NotLeader { leader_hint: None }
            }
            Err(crate::raft::ProposalRefused::Backpressure { .. }) => ProposeError::Backpressure,
        };
        done.complete(Err(error));
    }

    fn read(&mut self, group: GroupId, query: Vec<u8>, done: ReadCompletion, deadline: Instant) {
        if !self.participating {
            let reason = self.last_error.clone().unwrap_or_default();
            done.complete(Err(ReadError::Stopped { reason }));
            return;
        }
        let Some(replica) = self.groups.get_mut(&group) else {
            done.complete(Err(ReadError::NotLeader { leader_hint: None }));
            return;
        };
        if self.pending_reads >= self.settings.max_pending_reads {
            done.complete(Err(ReadError::Backpressure));
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        match replica.core.read_index(ctx) {
            Ok(()) => {
                replica.reads.insert(
                    ctx,
                    PendingRead {
                        query,
                        done,
                        deadline,
                    },
                );
                self.pending_reads += 1;
                Self::mark_dirty(&mut self.dirty, group, replica);
            }
            Err(crate::raft::ReadIndexRefused::NoLeader) => {
                done.complete(Err(ReadError::NotLeader { leader_hint: None }))
            }
            Err(crate::raft::ReadIndexRefused::TooManyPending { .. }) => {
                done.complete(Err(ReadError::Backpressure))
            }
        }
    }

    /// Times out proposals, reads and operator requests past their deadline (once per tick).
    fn expire(&mut self) {
        let now = Instant::now();
        // A quiesced group has nothing waiting: every request wakes its group first.
        for group in self.sleepers.awake.iter() {
            let Some(replica) = self.groups.get_mut(group) else {
                continue;
            };
            let group = *group;
            if replica.proposals_expire_from.is_some_and(|at| at <= now) {
                let (expired, waiting): (BTreeMap<_, _>, BTreeMap<_, _>) =
                    std::mem::take(&mut replica.waiters)
                        .into_iter()
                        .partition(|(_, w)| w.deadline <= now);
                replica.waiters = waiting;
                replica.proposals_expire_from = replica.waiters.values().map(|w| w.deadline).min();
                self.pending_proposals -= expired.len();
                for (_, waiter) in expired {
                    waiter.done.complete(Err(ProposeError::Timeout));
                }
            }
            if !replica.reads.is_empty() {
                let late: Vec<u64> = replica
                    .reads
                    .iter()
                    .filter(|(_, r)| r.deadline <= now)
                    .map(|(ctx, _)| *ctx)
                    .collect();
                for ctx in late {
                    if let Some(read) = replica.reads.remove(&ctx) {
                        self.pending_reads -= 1;
                        read.done.complete(Err(ReadError::Timeout));
                    }
                }
            }
            if !replica.changes.is_empty() {
                check_changes(group, replica, now);
            }
        }
    }

    fn check_failures(&mut self) {
        if !self.participating {
            return;
        }
        let writer_error = self
            .links
            .writer_shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let apply_error = self
            .links
            .apply_shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(error) = writer_error.or(apply_error) {
            self.stop_participating(error);
        }
    }

    /// A failed log write or apply stops every group: one poisoned log holds them all. Every
    /// waiting client is answered now, truthfully: an appended proposal may have reached other
    /// replicas (`LeaderLost`, may have been applied). Proposals this host forwarded never
    /// touched its log: they wait on for their leader's answer, as a `Node`'s do.
    /// Sends the pass's work to the writer and the apply workers (see `outbox`). A thread
    /// that is gone stops every group; the completions in apply work it could not take are
    /// answered here.
    fn flush_outbox(&mut self) {
        let Err(unsent) = self
            .outbox
            .flush(&self.links.writer_tx, &self.links.apply_txs)
        else {
            return;
        };
        let error = match unsent.gone {
            Gone::Writer => self.links.writer_shared.error.lock(),
            Gone::ApplyWorker(_) => self.links.apply_shared.error.lock(),
        }
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(|| format!("{:?} exited", unsent.gone));
        for work in unsent.apply {
            match work {
                ApplyWork::Entries { waiters, .. } => {
                    // Committed, so applied wherever the group's workers still run.
                    for (_, waiter) in waiters {
                        waiter.done.complete(Err(ProposeError::LeaderLost));
                    }
                }
                ApplyWork::Read { done, .. } => done.complete(Err(ReadError::Stopped {
                    reason: error.clone(),
                })),
                _ => {}
            }
        }
        self.stop_participating(error);
    }

    fn stop_participating(&mut self, error: String) {
        if !self.participating {
            return;
        }
        log::error!("host {}: stops every group: {error}", self.id);
        self.participating = false;
        self.last_error = Some(error.clone());
        for replica in self.groups.values_mut() {
            for (_, waiter) in std::mem::take(&mut replica.waiters) {
                waiter.done.complete(Err(ProposeError::LeaderLost));
            }
            for (_, read) in replica.reads.drain() {
                read.done.complete(Err(ReadError::Stopped {
                    reason: error.clone(),
                }));
            }
            for change in replica.changes.drain(..) {
                let (PendingChange::Membership { done, .. } | PendingChange::Transfer { done, .. }) =
                    change;
                done.complete(Err(ChangeError::Stopped {
                    reason: error.clone(),
                }));
            }
        }
        self.pending_proposals = 0;
        self.pending_reads = 0;
        self.snapshot_sends.pacer.drop_all();
    }

    /// Sends the held snapshot chunks the host's budget now allows, oldest first. A chunk
    /// whose group is gone, or no longer led here in the chunk's term, is dropped: its
    /// transfer ended with that leadership. A host whose disk stalls sends nothing, so it
    /// drops them all; its leaders' cores send their chunks again once they resume.
    fn release_snapshot_chunks(&mut self) {
        let held = self.snapshot_sends.pacer.held();
        if held == 0 {
            return;
        }
        if !self.participating || self.disk_stalled {
            self.snapshot_sends.pacer.drop_all();
            return;
        }
        // The bound of `snapshot_pacing`: one chunk per group and follower.
        debug_assert!(held <= self.groups.len() * self.peers.len());
        let groups = &self.groups;
        let now = Instant::now();
        let current = |(group, _): (GroupId, NodeId), message: &Message| {
            groups.get(&group).is_some_and(|replica| {
                replica.core.role() == Role::Leader && replica.core.term() == message.term
            })
        };
        // Bounded by the chunks held: each turn takes one.
        while let Some(((group, _), message)) = self.snapshot_sends.pacer.pop_ready(now, current) {
            send_chunk(
                &mut self.transport,
                &self.poll,
                &mut self.snapshot_sends,
                group,
                message,
            );
        }
    }

    fn take_completions(&mut self) {
        let durable = self
            .links
            .writer_shared
            .durable_through_seq
            .load(Ordering::Acquire);
        while self.pending.front().is_some_and(|p| p.seq <= durable) {
            let done = self.pending.pop_front().expect("front exists");
            self.writer_progress.durable(done.write_bytes);
            let Some(replica) = self.groups.get_mut(&done.group) else {
                continue;
            };
            if let Some(meta) = done.install {
                let kept = replica.waiters.split_off(&(meta.index + 1));
                let below = std::mem::replace(&mut replica.waiters, kept);
                self.pending_proposals -= below.len();
                for (_, waiter) in below {
                    waiter.done.complete(Err(ProposeError::LeaderLost));
                }
                let worker = replica.worker;
                // Room was kept for restores (APPLY_SLACK_ITEMS).
                self.outbox.apply(
                    worker,
                    ApplyWork::Restore {
                        group: done.group,
                        meta: meta.clone(),
                    },
                );
                self.apply_sent[worker] += 1;
                replica.core.on_snapshot_installed(meta);
            }
            if let Some((index, term)) = done.last_entry {
                replica.core.on_persisted(index, term);
            }
            if self.participating && !self.disk_stalled {
                for message in done.persisted_messages {
                    send_message(
                        &mut self.transport,
                        &self.poll,
                        &mut self.snapshot_sends,
                        done.group,
                        message,
                    );
                }
            }
            Self::mark_dirty(&mut self.dirty, done.group, replica);
        }
        let reports = std::mem::take(
            &mut *self
                .links
                .apply_shared
                .reports
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for report in reports {
            match report {
                ApplyReport::Applied(group, index) => {
                    if let Some(replica) = self.groups.get_mut(&group) {
                        if index > replica.applied_reported {
                            replica.core.on_applied(index);
                            replica.applied_reported = index;
                            Self::mark_dirty(&mut self.dirty, group, replica);
                        }
                    }
                }
                ApplyReport::Built(group, meta) => {
                    let Some(replica) = self.groups.get_mut(&group) else {
                        continue;
                    };
                    let index = meta.index;
                    replica.core.on_snapshot_built(meta);
                    Self::mark_dirty(&mut self.dirty, group, replica);
                    if !self.writer_has_room() {
                        log::warn!(
                            "group {group}: log writer queue full: compaction to {index} \
                             skipped until the next snapshot"
                        );
                        continue;
                    }
                    self.seq += 1;
                    self.pending.push_back(PendingPersist {
                        seq: self.seq,
                        group,
                        sent_at: Instant::now(),
                        write_bytes: 0,
                        persisted_messages: Vec::new(),
                        last_entry: None,
                        install: None,
                    });
                    let work = PersistWork {
                        seq: self.seq,
                        group,
                        compact_to: Some(index + 1),
                        ..PersistWork::default()
                    };
                    self.outbox.persist(work);
                }
            }
        }
    }

    /// Updates `disk_stalled` from the writer's progress, logging each change.
    fn check_disk_stall(&mut self) {
        let stalled = self.pending.front().is_some_and(|p| {
            self.writer_progress
                .stalled(p.sent_at, self.settings.disk_stall_timeout)
        });
        if stalled == self.disk_stalled {
            return;
        }
        if stalled {
            let oldest = self.pending.front().expect("a stall has a pending write");
            log::warn!(
                "host {}: the log writer made no progress for {:?} (the limit is {:?}, plus \
                 {:?} for the {} bytes pending); sending nothing, host beats included, so \
                 that the groups this host leads elect leaders with a working disk",
                self.id,
                self.writer_progress.waited(oldest.sent_at),
                self.settings.disk_stall_timeout,
                disk_stall::allowance(self.writer_progress.pending_bytes()),
                self.writer_progress.pending_bytes(),
            );
        } else {
            log::info!("host {}: log writes complete again", self.id);
        }
        self.disk_stalled = stalled;
    }

    fn writer_has_room(&self) -> bool {
        let durable = self
            .links
            .writer_shared
            .durable_through_seq
            .load(Ordering::Acquire);
        self.seq - durable + 2 < WRITER_QUEUE_ITEMS as u64
    }

    fn apply_has_room(&self, worker: usize) -> bool {
        let processed = self.links.apply_shared.processed[worker].load(Ordering::Acquire);
        let inflight = self.apply_sent[worker] - processed;
        inflight + APPLY_SLACK_ITEMS < APPLY_QUEUE_ITEMS as u64
    }

    fn handle_readies(&mut self) {
        if !self.participating {
            self.dirty.clear();
            for replica in self.groups.values_mut() {
                replica.dirty = false;
            }
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut again = Vec::new();
        for group in dirty {
            let Some(worker) = self.groups.get(&group).map(|r| r.worker) else {
                continue;
            };
            let mut handled = 0;
            loop {
                let room = self.writer_has_room() && self.apply_has_room(worker);
                let Some(replica) = self.groups.get_mut(&group) else {
                    break;
                };
                if !replica.changes.is_empty() {
                    check_changes(group, replica, Instant::now());
                }
                if !replica.core.has_ready() {
                    replica.dirty = false;
                    break;
                }
                if handled >= READIES_PER_GROUP_MAX || !room {
                    again.push(group);
                    break;
                }
                let ready = replica.core.ready();
                self.handle_ready(group, ready);
                handled += 1;
                if !self.participating {
                    return;
                }
            }
        }
        self.dirty.extend(again);
    }

    fn handle_ready(&mut self, group: GroupId, ready: Ready) {
        let Ready {
            hard_state,
            truncate_from,
            entries,
            messages,
            persisted_messages,
            committed_entries,
            read_states,
            snapshot_request,
            snapshot_chunks,
            snapshot_to_install,
        } = ready;
        let messages = if self.disk_stalled {
            Vec::new()
        } else {
            coalesce_appends(messages, self.settings.append_merge_bytes_max)
        };
        for message in messages {
            send_message(
                &mut self.transport,
                &self.poll,
                &mut self.snapshot_sends,
                group,
                message,
            );
        }
        let replica = self.groups.get_mut(&group).expect("a dirty group exists");
        let worker = replica.worker;
        let needs_persist = hard_state.is_some()
            || truncate_from.is_some()
            || !entries.is_empty()
            || !snapshot_chunks.is_empty()
            || snapshot_to_install.is_some();
        if needs_persist || !persisted_messages.is_empty() {
            self.seq += 1;
            let write_bytes = disk_stall::write_bytes(&entries, &snapshot_chunks);
            self.writer_progress.sent(write_bytes);
            self.pending.push_back(PendingPersist {
                seq: self.seq,
                group,
                sent_at: Instant::now(),
                write_bytes,
                persisted_messages,
                last_entry: entries.last().map(|e| (e.index, e.term)),
                install: snapshot_to_install.clone(),
            });
            let work = PersistWork {
                seq: self.seq,
                group,
                truncate_from,
                entries,
                hard_state,
                snapshot_chunks,
                snapshot_to_install,
                compact_to: None,
                remove: false,
            };
            self.outbox.persist(work);
        }
        let mut sends = Vec::new();
        if let Some(request) = snapshot_request {
            sends.push(ApplyWork::BuildSnapshot { group, request });
        }
        if let Some(last) = committed_entries.last() {
            let later = replica.waiters.split_off(&(last.index + 1));
            let waiters = std::mem::replace(&mut replica.waiters, later);
            self.pending_proposals -= waiters.len();
            sends.push(ApplyWork::Entries {
                group,
                entries: committed_entries,
                waiters,
            });
        }
        for read_state in read_states {
            let Some(read) = replica.reads.remove(&read_state.ctx) else {
                continue;
            };
            self.pending_reads -= 1;
            sends.push(ApplyWork::Read {
                group,
                index: read_state.index,
                query: read.query,
                done: read.done,
                deadline: read.deadline,
            });
        }
        for work in sends {
            self.outbox.apply(worker, work);
            self.apply_sent[worker] += 1;
        }
    }

    fn group_status(&self, group: GroupId, replica: &Replica) -> GroupStatus {
        let participating = self.participating;
        GroupStatus {
            group,
            role: if participating {
                replica.core.role()
            } else {
                Role::Follower
            },
            term: replica.core.term(),
            leader: replica.core.leader().filter(|_| participating),
            commit: replica.core.log().commit(),
            applied: replica.applied_reported,
            last_index: replica.core.log().last_index(),
            membership: replica.core.membership().clone(),
            participating,
        }
    }

    fn publish_status(&mut self) {
        let leaders = if self.participating {
            let awake_leaders = self
                .sleepers
                .awake
                .iter()
                .filter_map(|group| self.groups.get(group))
                .filter(|r| r.core.role() == Role::Leader)
                .count();
            awake_leaders + self.sleepers.quiesced_leaders
        } else {
            0
        };
        let writer = *self
            .links
            .writer_shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut status = self.links.status.lock().unwrap_or_else(|p| p.into_inner());
        status.groups = self.groups.len();
        status.leaders = leaders;
        status.quiesced = self.sleepers.quiesced;
        status.writer = writer;
        status.transport = self.transport.stats();
        status.connected_peers = self.transport.connected_peers();
        status.participating = self.participating;
        status.last_error = self.last_error.clone();
        status.messages_unrouted = self.messages_unrouted;
        status.pending_proposals = self.pending_proposals;
        status.disk_stalled = self.disk_stalled;
        status.ticks_dropped = self.ticks_dropped;
        status.forwards_in_flight = self.forwards.in_flight();
        status.snapshot_bytes_sent = self.snapshot_sends.bytes_sent;
        status.snapshot_chunks_delayed = self.snapshot_sends.pacer.chunks_delayed();
        status.snapshot_chunks_held = self.snapshot_sends.pacer.held();
    }
}

/// Answers the operator requests of `group` that are done or past their deadline.
fn check_changes(group: GroupId, replica: &mut Replica, now: Instant) {
    let core = &replica.core;
    let mut kept = Vec::new();
    for change in replica.changes.drain(..) {
        match change {
            PendingChange::Membership {
                index,
                term,
                done,
                deadline,
            } => {
                let committed = core.log().commit() >= index
                    && core.membership() == core.committed_membership()
                    && !core.committed_membership().is_joint();
                if committed {
                    done.complete(Ok(()));
                } else if core.term() != term {
                    done.complete(Err(ChangeError::LeaderLost));
                } else if deadline <= now {
                    done.complete(Err(ChangeError::Timeout));
                } else {
                    kept.push(PendingChange::Membership {
                        index,
                        term,
                        done,
                        deadline,
                    });
                }
            }
            PendingChange::Transfer {
                target,
                done,
                deadline,
            } => {
                if core.leader() == Some(target) {
                    done.complete(Ok(()));
                } else if deadline <= now {
                    log::info!("group {group}: leadership transfer to {target} timed out");
                    done.complete(Err(ChangeError::Timeout));
                } else {
                    kept.push(PendingChange::Transfer {
                        target,
                        done,
                        deadline,
                    });
                }
            }
        }
    }
    replica.changes = kept;
}

/// Sends `message` of `group`; an InstallSnapshot chunk goes through the host's pacer, which
/// may hold it for a later pass (`HostLoop::release_snapshot_chunks`). Nothing else waits.
fn send_message(
    transport: &mut Transport,
    poll: &Poll,
    sends: &mut SnapshotSends,
    group: GroupId,
    message: Message,
) {
    let MessageBody::InstallSnapshot { len, .. } = &message.body else {
        transport.send(poll.registry(), group, &message);
        return;
    };
    let key = (group, message.to);
    let len = *len;
    if let Some(message) = sends.pacer.offer(key, len, message, Instant::now()) {
        send_chunk(transport, poll, sends, group, message);
    }
}

/// Sends an InstallSnapshot chunk of `group`, first filling its data from the group's
/// snapshot file (the core never holds snapshot bytes).
fn send_chunk(
    transport: &mut Transport,
    poll: &Poll,
    sends: &mut SnapshotSends,
    group: GroupId,
    mut message: Message,
) {
    if let MessageBody::InstallSnapshot {
        meta,
        offset,
        len,
        data,
        ..
    } = &mut message.body
    {
        if data.is_empty() && *len > 0 {
            match read_snapshot_chunk(&sends.snapshots, &mut sends.raw, group, meta, *offset, *len)
            {
                Some(bytes) => *data = bytes,
                None => return,
            }
        }
        sends.bytes_sent += data.len() as u64;
    }
    transport.send(poll.registry(), group, &message);
}

fn read_snapshot_chunk(
    snapshots: &GroupSnapshots,
    raw_snapshot: &mut Option<(GroupId, RawSnapshotFile)>,
    group: GroupId,
    meta: &SnapshotMeta,
    offset: u64,
    len: u64,
) -> Option<Vec<u8>> {
    let cached = raw_snapshot.as_ref().is_some_and(|(g, raw)| {
        *g == group && (raw.meta().index, raw.meta().term) == (meta.index, meta.term)
    });
    if !cached {
        let store = snapshots.store(group).ok()?;
        let file_meta = store
            .list()
            .into_iter()
            .find(|m| (m.index, m.term) == (meta.index, meta.term))?;
        match store.open_raw(&file_meta) {
            Ok(raw) => *raw_snapshot = Some((group, raw)),
            Err(e) => {
                log::warn!(
                    "group {group}: cannot open snapshot {} for sending: {e}",
                    meta.index
                );
                return None;
            }
        }
    }
    let (_, raw) = raw_snapshot.as_ref()?;
    let len = usize::try_from(len).ok()?;
    let mut buf = vec![0; len];
    match raw.read_at(offset, &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(e) => {
            log::warn!(
                "group {group}: cannot read snapshot {} for sending: {e}",
                meta.index
            );
            *raw_snapshot = None;
            None
        }
    }
}

//! The event loop thread: one mio `Poll` for the peer transport and the waker, the core's
//! ticks, client requests, and the routing of every `Ready` (see `crate::raft` for the
//! contract, and the module docs of `crate::node` for the threads and channels).
//!
//! The loop never blocks on disk or on another thread: every send to the writer and apply
//! threads is a `try_send` on a bounded channel for which the loop first checked room (it
//! counts items sent against items the thread reports done). When either thread is that far
//! behind, the loop stops taking `Ready`s from the core until it catches up; the core keeps
//! its work (bounded by its own limits). One exception, stated: an InstallSnapshot chunk is
//! read from the snapshot file on this thread (a positioned read of at most one chunk).

mod proposals_and_reads;
mod reconfiguration;
mod routing;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketch_storage::snapshot::{RawSnapshotFile, SnapshotStore};
use mio::{Events, Poll};

use super::addresses::AddressBook;
use super::apply::{ApplyShared, ApplyWork, Waiter, APPLY_QUEUE_ITEMS};
use super::completion::ReadCompletion;
use super::config::NodeConfig;
use super::disk_stall::{self, WriterProgress};
use super::errors::{ProposeError, ReadError};
use super::forward::ForwardState;
use super::log_writer::{PersistWork, WriterShared, WRITER_QUEUE_ITEMS};
use super::membership_change::PendingChange;
use super::request::Request;
use super::status::{members_of, NodeStatus};
use super::transport::{Received, Transport, LISTENER_TOKEN, WAKER_TOKEN};
use crate::raft::{Core, GroupId, Message, NodeId, Role};

/// The group id of this node's only Raft group on the wire: every message and forward it
/// sends names it, and whatever arrives for another group (only a multi-group host sends
/// those) is dropped and counted in `NodeStatus::other_group_dropped`.
pub(crate) const NODE_GROUP: GroupId = 0;

/// Client requests taken from the inbox per loop iteration, so a flood of clients cannot
/// starve peer traffic and ticks.
const INBOX_PER_ITERATION_MAX: usize = 4096;
/// `Ready`s handled per loop iteration before polling the network again.
const READIES_PER_ITERATION_MAX: usize = 64;
/// Items kept free in the apply queue for restores and reads beyond one `Ready`'s work.
const APPLY_SLACK_ITEMS: u64 = 16;

/// A persistence work item sent to the writer, with what to do once it is durable.
struct PendingPersist {
    seq: u64,
    sent_at: Instant,
    /// Entry and snapshot bytes it writes: a large write earns more time before it counts as
    /// a stalled disk.
    write_bytes: u64,
    persisted_messages: Vec<Message>,
    last_entry: Option<(u64, u64)>,
    install: Option<crate::raft::SnapshotMeta>,
}

struct PendingRead {
    query: Vec<u8>,
    done: ReadCompletion,
    deadline: Instant,
}

/// The loop's settings, from the node's configuration.
#[derive(Debug, Clone)]
pub(crate) struct LoopSettings {
    /// Tick period.
    pub tick_interval: Duration,
    /// Most proposals waiting for their result.
    pub max_pending_proposals: usize,
    /// How long a proposal forwarded by a follower may take here, from its arrival.
    pub propose_timeout: Duration,
    /// A leader whose oldest write has not been durable for this long stops sending.
    pub disk_stall_timeout: Duration,
    /// Entry bytes up to which contiguous Appends to one peer are merged (see `coalesce`).
    pub append_merge_bytes_max: u64,
    /// Largest proposal accepted (see `NodeConfig::max_proposal_bytes`).
    pub max_proposal_bytes: u64,
    /// The leader's hook over accepted proposals (see `NodeConfig::proposal_stamp`).
    pub proposal_stamp: Option<crate::node::config::ProposalStamp>,
    /// Reads may be answered from a leader lease (`ReadMode::Lease`).
    pub lease_reads: bool,
}

impl LoopSettings {
    /// The settings `config` gives the loop.
    pub(crate) fn new(config: &NodeConfig) -> LoopSettings {
        LoopSettings {
            tick_interval: config.tick_interval,
            max_pending_proposals: config.max_pending_proposals,
            propose_timeout: config.propose_timeout,
            disk_stall_timeout: config.disk_stall_timeout,
            append_merge_bytes_max: config.raft.max_message_bytes,
            max_proposal_bytes: config.max_proposal_bytes,
            proposal_stamp: config.proposal_stamp.clone(),
            lease_reads: config.raft.read_mode == crate::raft::ReadMode::Lease,
        }
    }
}

/// The loop's ends of its links to the API, the log writer and the apply thread.
pub(crate) struct LoopLinks {
    /// Client requests.
    pub inbox: Receiver<Request>,
    /// To the log writer.
    pub writer_tx: SyncSender<PersistWork>,
    /// The writer's published state.
    pub writer_shared: Arc<WriterShared>,
    /// To the apply thread.
    pub apply_tx: SyncSender<ApplyWork>,
    /// The apply thread's published state.
    pub apply_shared: Arc<ApplyShared>,
    /// The loop's own waker (the other threads hold clones), for completions of forwarded
    /// proposals.
    pub waker: Arc<mio::Waker>,
    /// Set by `Node::shutdown`.
    pub stop: Arc<AtomicBool>,
    /// Published for `Node::status`.
    pub status: Arc<Mutex<NodeStatus>>,
}

/// Everything the loop thread owns.
pub(crate) struct EventLoop {
    core: Core,
    /// The poll instance (the waker is registered on it).
    poll: Poll,
    transport: Transport,
    /// Known peer addresses (this node's included), kept across restarts.
    addresses: AddressBook,
    /// Snapshot files, for filling InstallSnapshot chunks.
    snapshots: SnapshotStore,
    settings: LoopSettings,
    inbox: Receiver<Request>,
    writer_tx: SyncSender<PersistWork>,
    writer_shared: Arc<WriterShared>,
    apply_tx: SyncSender<ApplyWork>,
    apply_shared: Arc<ApplyShared>,
    waker: Arc<mio::Waker>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<NodeStatus>>,
}

/// The loop's moving parts, apart from its configuration.
struct State {
    seq: u64,
    pending: VecDeque<PendingPersist>,
    /// The log writer's progress over `pending`, for the disk-stall rule (`disk_stall`).
    writer_progress: WriterProgress,
    apply_sent: u64,
    applied_reported: u64,
    reads: HashMap<u64, PendingRead>,
    next_read_ctx: u64,
    /// No waiting proposal has a deadline before this: the sweep that times proposals out
    /// runs only once it passes (about once per propose timeout under steady traffic, since
    /// most proposals resolve long before their deadline).
    proposals_expire_from: Option<Instant>,
    participating: bool,
    /// A leader's write has been pending past `disk_stall_timeout`: it sends nothing, so it
    /// stops renewing its leadership and the others elect a leader with a working disk.
    disk_stalled: bool,
    /// Test hook: a simulated partition; every peer message in and out is dropped.
    isolated: bool,
    /// Raft messages and forwards received for a group other than [`NODE_GROUP`], dropped.
    other_group_dropped: u64,
    last_error: Option<String>,
    raw_snapshot: Option<RawSnapshotFile>,
    last_role: (Role, Option<u64>, u64),
    received: Received,
    forwards: ForwardState,
    /// The membership last published in the status (members are rebuilt only on change).
    published_membership: Option<crate::raft::Membership>,
    /// Status is published at most once per `STATUS_PERIOD` (and on role changes): copying
    /// it on every wake-up costs throughput.
    next_status_at: Instant,
    /// Operator requests (membership changes, transfers) waiting for their outcome; at most
    /// `PENDING_CHANGES_MAX`.
    changes: Vec<PendingChange>,
    /// The (latest, committed) configurations the transport's peer set was last matched to.
    dialed_membership: Option<(crate::raft::Membership, crate::raft::Membership)>,
    /// Peers that left the configurations, and when the transport forgets them (at most
    /// `ADDRESSES_MAX`).
    departing: BTreeMap<NodeId, Instant>,
    /// Set once the core reports this node removed.
    removed: bool,
    /// Proposals accepted here, by log index, waiting for their entry to commit: then each
    /// goes to the apply thread with its entry, which answers it (see `apply`). At most
    /// `max_pending_proposals`. Owned by this thread alone.
    waiters: BTreeMap<u64, Waiter>,
}

/// Most operator requests waiting at once (the core takes one change at a time; the rest are
/// transfers or answers not yet delivered).
const PENDING_CHANGES_MAX: usize = 64;
/// How long a node that left the configuration stays reachable: well over the two election
/// timeouts for which the leader keeps replicating to it (`raft` departed nodes).
const DEPARTED_GRACE: Duration = Duration::from_secs(10);

/// A loop pass longer than this is logged, with where the time went: a few of them in a row
/// delay heartbeats past an election timeout.
const SLOW_PASS: Duration = Duration::from_millis(100);

/// Period of status publication.
const STATUS_PERIOD: Duration = Duration::from_millis(1);

impl EventLoop {
    /// A loop over `core`, its poller (with the links' waker registered on it) and its
    /// transport, not yet running.
    pub(crate) fn new(
        core: Core,
        poll: Poll,
        transport: Transport,
        addresses: AddressBook,
        snapshots: SnapshotStore,
        settings: LoopSettings,
        links: LoopLinks,
    ) -> EventLoop {
        let LoopLinks {
            inbox,
            writer_tx,
            writer_shared,
            apply_tx,
            apply_shared,
            waker,
            stop,
            status,
        } = links;
        EventLoop {
            core,
            poll,
            transport,
            addresses,
            snapshots,
            settings,
            inbox,
            writer_tx,
            writer_shared,
            apply_tx,
            apply_shared,
            waker,
            stop,
            status,
        }
    }

    /// Runs until `stop` is set; returns an error only for a failure of the loop itself.
    pub fn run(mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let mut state = State {
            seq: 0,
            pending: VecDeque::new(),
            writer_progress: WriterProgress::new(),
            apply_sent: 0,
            applied_reported: self.core.log().applied(),
            reads: HashMap::new(),
            next_read_ctx: 1,
            proposals_expire_from: None,
            participating: true,
            disk_stalled: false,
            isolated: false,
            other_group_dropped: 0,
            last_error: None,
            raw_snapshot: None,
            last_role: (Role::Follower, None, 0),
            received: Received::default(),
            forwards: ForwardState::new(),
            published_membership: None,
            next_status_at: Instant::now(),
            changes: Vec::new(),
            dialed_membership: None,
            departing: BTreeMap::new(),
            removed: false,
            waiters: BTreeMap::new(),
        };
        let mut next_tick = Instant::now() + self.settings.tick_interval;
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut wake_at = next_tick;
            if let Some(retry) = self.transport.next_retry() {
                wake_at = wake_at.min(retry);
            }
            // A connection stopped at its read or write budget has work waiting but no new
            // event.
            let timeout = if self.transport.has_pending_io() {
                Duration::ZERO
            } else {
                wake_at.saturating_duration_since(now)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll failed: {e}"));
                }
            }
            let pass_started = Instant::now();
            // Connections left at their read budget by an earlier pass, before this pass's
            // events (which may add them again): one budget each per pass.
            self.transport
                .read_pending(self.poll.registry(), &mut state.received);
            for event in events.iter() {
                match event.token() {
                    LISTENER_TOKEN => self.transport.accept(self.poll.registry()),
                    WAKER_TOKEN => {}
                    _ => self.transport.handle_event(
                        self.poll.registry(),
                        event,
                        &mut state.received,
                    ),
                }
            }
            let now = Instant::now();
            let network_took = now - pass_started;
            self.transport.maintain(self.poll.registry(), now);
            self.check_failures(&mut state);
            if self.settings.lease_reads {
                // A lease is measured on the core's tick clock: after this thread was held up
                // (a loaded machine, a stopped process), the ticks it missed are counted before
                // any message or request can be answered from the lease.
                self.catch_up_ticks(&state, &mut next_tick);
            }
            // A single-group node has no use for host liveness: its core's heartbeats say it.
            state.received.heard_from.clear();
            let stepping = state.participating && !state.isolated;
            for (group, message) in state.received.messages.drain(..) {
                if group != NODE_GROUP {
                    state.other_group_dropped += 1;
                } else if stepping {
                    self.core.step(message);
                }
            }
            let forwards = std::mem::take(&mut state.received.forwards);
            for forward in forwards {
                if forward.group != NODE_GROUP {
                    state.other_group_dropped += 1;
                } else if !state.isolated {
                    self.take_forward(&mut state, forward);
                }
            }
            self.take_requests(&mut state);
            let inputs_took = Instant::now() - pass_started;
            self.catch_up_ticks(&state, &mut next_tick);
            self.expire_reads(&mut state);
            self.expire_proposals(&mut state);
            let leader = self.core.leader();
            let transport = &self.transport;
            state
                .forwards
                .check_leaders(|_| leader, |l| transport.connection_epoch(l));
            state.forwards.expire(Instant::now());
            self.take_completions(&mut state);
            self.check_disk_stall(&mut state);
            if state.participating {
                let mut handled = 0;
                while handled < READIES_PER_ITERATION_MAX
                    && self.core.has_ready()
                    && self.has_room(&state)
                {
                    let ready = self.core.ready();
                    self.handle_ready(&mut state, ready);
                    handled += 1;
                    // Completions that arrived meanwhile unblock acknowledgements sooner.
                    self.take_completions(&mut state);
                }
            }
            let readies_took = Instant::now() - pass_started;
            self.send_forward_results(&mut state);
            self.check_membership(&mut state);
            self.transport.flush_all(self.poll.registry());
            let pass_took = pass_started.elapsed();
            if pass_took > SLOW_PASS {
                log::warn!(
                    "node {}: one loop pass took {pass_took:?} (network done after \
                     {network_took:?}, inputs after {inputs_took:?}, readies after \
                     {readies_took:?}); heartbeats wait meanwhile",
                    self.core.id()
                );
            }
            let role_changed = self.log_role_changes(&mut state);
            let now = Instant::now();
            if role_changed || now >= state.next_status_at {
                self.publish_status(&mut state);
                state.next_status_at = now + STATUS_PERIOD;
            }
        }
        self.transport.close_all(self.poll.registry());
        for (_, read) in state.reads.drain() {
            read.done.complete(Err(ReadError::ShuttingDown));
        }
        // Waiting proposals stay with the apply thread, which resolves those whose entries it
        // still applies; the rest answer `ShuttingDown` when the last holder drops them.
        Ok(())
    }

    fn has_room(&self, state: &State) -> bool {
        let durable = self
            .writer_shared
            .durable_through_seq
            .load(Ordering::Acquire);
        let writer_inflight = state.seq - durable;
        writer_inflight + 2 < WRITER_QUEUE_ITEMS as u64
            && self.apply_inflight(state) + APPLY_SLACK_ITEMS < APPLY_QUEUE_ITEMS as u64
    }

    /// Items sent to the apply thread and not yet processed.
    fn apply_inflight(&self, state: &State) -> u64 {
        state.apply_sent - self.apply_shared.processed_items.load(Ordering::Acquire)
    }

    /// Ticks the core for the tick periods that have passed by now.
    ///
    /// A leader counts every one it missed (bounded: the ticks missed since the last call): its
    /// lease is measured on this clock, which must never run slow. Any other role ticks at most
    /// once per call and drops the rest. Catching up ticked a follower many times with no
    /// message read in between, so after a pass held up by a loaded machine (110-170 ms
    /// passes were seen in CI, 11-17 ticks) its election timer could fire although its leader's
    /// heartbeats were waiting in the socket: a spurious election. A follower's clock that runs
    /// slow only delays its election, and for the lease it is the safe direction: it waits
    /// longer before it may vote (thesis §6.4.1).
    fn catch_up_ticks(&mut self, state: &State, next_tick: &mut Instant) {
        let now = Instant::now();
        if now < *next_tick {
            return;
        }
        if self.core.role() == Role::Leader {
            while now >= *next_tick {
                if state.participating {
                    self.core.tick();
                }
                *next_tick += self.settings.tick_interval;
            }
            return;
        }
        if state.participating {
            self.core.tick();
        }
        *next_tick += self.settings.tick_interval;
        if *next_tick <= now {
            *next_tick = now + self.settings.tick_interval;
        }
    }

    fn check_failures(&mut self, state: &mut State) {
        if !state.participating {
            return;
        }
        let writer_error = self
            .writer_shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let apply_error = self
            .apply_shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(error) = writer_error.or(apply_error) {
            self.stop_participating(state, error);
        }
    }

    /// Stops voting, acknowledging, sending and proposing after a fatal error (a failed log
    /// write or fsync, which poisons the log, or a failed apply).
    ///
    /// Every proposal this node already accepted answers `LeaderLost` ("may have been
    /// applied"), never `Stopped` ("not applied"): as leader it sent the entries to its
    /// followers before its own write was durable (thesis §10.2.1), so a quorum of them may
    /// hold the entries and the next leader commit them. Only proposals refused from now on
    /// answer `Stopped`: those never reach the log.
    fn stop_participating(&mut self, state: &mut State, error: String) {
        log::error!(
            "node {}: stops participating (no votes, no acknowledgements): {error}",
            self.core.id()
        );
        state.participating = false;
        state.last_error = Some(error);
        // Those already handed to the apply thread with their committed entry are answered
        // there, with their result.
        for (_, waiter) in std::mem::take(&mut state.waiters) {
            waiter.done.complete(Err(ProposeError::LeaderLost));
        }
        // Published at once: nobody may read this node as leader once it leads nothing.
        self.publish_status(state);
    }

    fn check_disk_stall(&mut self, state: &mut State) {
        let stalled = self.core.role() == Role::Leader
            && state.pending.front().is_some_and(|p| {
                state
                    .writer_progress
                    .stalled(p.sent_at, self.settings.disk_stall_timeout)
            });
        if stalled != state.disk_stalled {
            if stalled {
                let oldest = state.pending.front().expect("a stall has a pending write");
                log::warn!(
                    "node {}: leader's log writer made no progress for {:?} (the limit is \
                     {:?}, plus {:?} for the {} bytes pending); sending nothing so that a \
                     node with a working disk takes over",
                    self.core.id(),
                    state.writer_progress.waited(oldest.sent_at),
                    self.settings.disk_stall_timeout,
                    disk_stall::allowance(state.writer_progress.pending_bytes()),
                    state.writer_progress.pending_bytes(),
                );
            } else {
                log::info!("node {}: log writes complete again", self.core.id());
            }
            state.disk_stalled = stalled;
        }
    }

    fn take_requests(&mut self, state: &mut State) {
        for _ in 0..INBOX_PER_ITERATION_MAX {
            let request = match self.inbox.try_recv() {
                Ok(request) => request,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            match request {
                Request::Propose {
                    data,
                    done,
                    deadline,
                } => self.propose(state, data, done, deadline),
                Request::Read {
                    query,
                    done,
                    deadline,
                } => self.read(state, query, done, deadline),
                Request::SetIsolated(isolated) => {
                    log::warn!("node {}: isolated from peers: {isolated}", self.core.id());
                    state.isolated = isolated;
                }
                Request::ChangeMembership {
                    change,
                    peer_addr,
                    done,
                    deadline,
                } => self.change_membership(state, change, peer_addr, done, deadline),
                Request::TransferLeader {
                    target,
                    done,
                    deadline,
                } => self.transfer_leader(state, target, done, deadline),
            }
        }
    }

    /// Logs leader changes; returns whether anything changed.
    fn log_role_changes(&mut self, state: &mut State) -> bool {
        let now = (self.core.role(), self.core.leader(), self.core.term());
        let changed = now != state.last_role;
        if changed {
            if now.0 == Role::Leader && state.last_role.0 != Role::Leader {
                log::info!("node {}: became leader in term {}", self.core.id(), now.2);
            } else if now.1 != state.last_role.1 {
                log::info!(
                    "node {}: leader is now {:?} in term {} (role {:?})",
                    self.core.id(),
                    now.1,
                    now.2,
                    now.0
                );
            }
            if state.last_role.0 == Role::Leader && now.0 != Role::Leader {
                log::info!("node {}: stepped down in term {}", self.core.id(), now.2);
            }
            state.last_role = now;
        }
        changed
    }

    fn publish_status(&self, state: &mut State) {
        let membership = self.core.membership();
        let members = if state.published_membership.as_ref() != Some(membership) {
            state.published_membership = Some(membership.clone());
            let members = members_of(membership, self.addresses.addrs());
            Some(members)
        } else {
            None
        };
        let core = self.core.status();
        let writer = self
            .writer_shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        // A node that stopped participating leads nothing, whatever its core last knew: it
        // sends nothing and the others elect a leader without it. Its core is not told (the
        // core knows nothing of disks), so the status says it instead, and names no leader,
        // since what it knew is no longer followed.
        if state.participating {
            status.role = core.role;
            status.leader = core.leader;
        } else {
            status.role = Role::Follower;
            status.leader = None;
        }
        crate::metrics::leader_seen(status.id, status.leader);
        status.term = core.term;
        status.commit = core.commit;
        status.applied = self.apply_shared.applied_index.load(Ordering::Acquire);
        status.last_index = core.last_index;
        status.progress = core.progress;
        status.writer = writer;
        status.transport = self.transport.stats();
        status.raft_stats = self.core.stats();
        status.participating = state.participating;
        status.disk_stalled = state.disk_stalled;
        status.last_error = state.last_error.clone();
        status.connected_peers = self.transport.connected_peers();
        status.forwards_in_flight = state.forwards.in_flight();
        status.other_group_dropped = state.other_group_dropped;
        status.removed = state.removed;
        if status.membership != *self.core.membership() {
            status.membership = self.core.membership().clone();
        }
        if status.committed_membership != *self.core.committed_membership() {
            status.committed_membership = self.core.committed_membership().clone();
        }
        if let Some(members) = members {
            status.members = members;
        }
    }
}

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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketch_storage::snapshot::{RawSnapshotFile, SnapshotStore};
use mio::{Events, Poll};

use super::api::{dialed_peers, MemberStatus, NodeStatus, ProposeError, ReadError, Request};
use super::apply::{ApplyShared, ApplyWork, Waiter, APPLY_QUEUE_ITEMS};
use super::coalesce::coalesce_appends;
use super::completion::{ProposeCompletion, ReadCompletion};
use super::forward::{outcome_of, ForwardState};
use super::log_writer::{PersistWork, WriterShared, WRITER_QUEUE_ITEMS};
use super::membership::{
    addresses_in, encode_address_entry, write_address_book, Awaited, ChangeCompletion, ChangeError,
    CoreView, PendingChange, ADDRESSES_MAX,
};
use super::storage::snapshot_addresses;
use super::transport::{ForwardRefused, Received, Transport, LISTENER_TOKEN, WAKER_TOKEN};
use crate::raft::{Core, Message, MessageBody, NodeId, Ready, Role};
use crate::wire::message::{Forward, ForwardBody};

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
    persisted_messages: Vec<Message>,
    last_entry: Option<(u64, u64)>,
    install: Option<crate::raft::SnapshotMeta>,
}

struct PendingRead {
    query: Vec<u8>,
    done: ReadCompletion,
    deadline: Instant,
}

/// Everything the loop thread owns.
pub struct EventLoop {
    /// The core.
    pub core: Core,
    /// The poll instance (the waker is registered on it).
    pub poll: Poll,
    /// The peer transport.
    pub transport: Transport,
    /// Tick period.
    pub tick_interval: Duration,
    /// Most proposals waiting for their result.
    pub max_pending_proposals: usize,
    /// How long a proposal forwarded by a follower may take here, from its arrival.
    pub propose_timeout: Duration,
    /// The loop's own waker, for completions of forwarded proposals.
    pub waker: Arc<mio::Waker>,
    /// Known peer addresses (this node's included): configured, then learned from address
    /// entries (see `membership`). Bounded by `membership::ADDRESSES_MAX`.
    pub peer_addrs: BTreeMap<NodeId, SocketAddr>,
    /// Where learned addresses are kept across restarts.
    pub address_book_path: std::path::PathBuf,
    /// Entry bytes up to which contiguous Appends to one peer are merged (see `coalesce`).
    pub append_merge_bytes_max: u64,
    /// A leader whose oldest write has not been durable for this long stops sending.
    pub disk_stall_timeout: Duration,
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
    /// Snapshot files, for filling InstallSnapshot chunks.
    pub snapshots: SnapshotStore,
    /// Set by `Node::shutdown`.
    pub stop: Arc<AtomicBool>,
    /// Published for `Node::status`.
    pub status: Arc<Mutex<NodeStatus>>,
}

/// The loop's moving parts, apart from its configuration.
struct State {
    seq: u64,
    pending: VecDeque<PendingPersist>,
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
}

/// Most operator requests waiting at once (the core takes one change at a time; the rest are
/// transfers or answers not yet delivered).
const PENDING_CHANGES_MAX: usize = 64;
/// How long a node that left the configuration stays reachable: well over the two election
/// timeouts for which the leader keeps replicating to it (`raft` departed nodes).
const DEPARTED_GRACE: Duration = Duration::from_secs(10);

/// Period of status publication.
const STATUS_PERIOD: Duration = Duration::from_millis(1);

impl EventLoop {
    /// Runs until `stop` is set; returns an error only for a failure of the loop itself.
    pub fn run(mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let mut state = State {
            seq: 0,
            pending: VecDeque::new(),
            apply_sent: 0,
            applied_reported: self.core.log().applied(),
            reads: HashMap::new(),
            next_read_ctx: 1,
            proposals_expire_from: None,
            participating: true,
            disk_stalled: false,
            isolated: false,
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
        };
        let mut next_tick = Instant::now() + self.tick_interval;
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut wake_at = next_tick;
            if let Some(retry) = self.transport.next_retry() {
                wake_at = wake_at.min(retry);
            }
            let timeout = wake_at.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll failed: {e}"));
                }
            }
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
            self.transport.maintain(self.poll.registry(), now);
            self.check_failures(&mut state);
            if state.participating && !state.isolated {
                for message in state.received.messages.drain(..) {
                    self.core.step(message);
                }
            } else {
                state.received.messages.clear();
            }
            let forwards = std::mem::take(&mut state.received.forwards);
            if !state.isolated {
                for forward in forwards {
                    self.take_forward(&mut state, forward);
                }
            }
            self.take_requests(&mut state);
            // Bounded: catches up at most the ticks missed since the last pass.
            while Instant::now() >= next_tick {
                if state.participating {
                    self.core.tick();
                }
                next_tick += self.tick_interval;
            }
            self.expire_reads(&mut state);
            self.expire_proposals(&mut state);
            let leader = self.core.leader();
            let epoch = leader.map_or(0, |l| self.transport.connection_epoch(l));
            state.forwards.check_leader(leader, epoch);
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
            self.send_forward_results(&mut state);
            self.check_membership(&mut state);
            self.transport.flush_all(self.poll.registry());
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
            log::error!(
                "node {}: stops participating (no votes, no acknowledgements): {error}",
                self.core.id()
            );
            state.participating = false;
            state.last_error = Some(error.clone());
            let waiters = std::mem::take(
                &mut *self
                    .apply_shared
                    .waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            // Callbacks run outside the lock: the apply thread must not wait on them.
            for (_, waiter) in waiters {
                waiter.done.complete(Err(ProposeError::Stopped {
                    reason: error.clone(),
                }));
            }
        }
    }

    fn check_disk_stall(&mut self, state: &mut State) {
        let stalled = self.core.role() == Role::Leader
            && state
                .pending
                .front()
                .is_some_and(|p| p.sent_at.elapsed() > self.disk_stall_timeout);
        if stalled != state.disk_stalled {
            if stalled {
                log::warn!(
                    "node {}: leader's log write pending for over {:?}; sending nothing so \
                     that a node with a working disk takes over",
                    self.core.id(),
                    self.disk_stall_timeout
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

    /// A client's proposal: proposed here on the leader, forwarded to the leader otherwise.
    fn propose(
        &mut self,
        state: &mut State,
        data: Vec<u8>,
        done: ProposeCompletion,
        deadline: Instant,
    ) {
        match self.core.leader() {
            Some(leader)
                if leader != self.core.id()
                    && self.core.role() != Role::Leader
                    && state.participating =>
            {
                self.forward(state, leader, data, done, deadline);
            }
            _ => self.propose_here(state, data, done, deadline),
        }
    }

    /// Sends a proposal to `leader`; see `forward` for what each failure means to the caller.
    fn forward(
        &mut self,
        state: &mut State,
        leader: NodeId,
        data: Vec<u8>,
        done: ProposeCompletion,
        deadline: Instant,
    ) {
        if !state.forwards.has_room() {
            done.complete(Err(ProposeError::Backpressure));
            return;
        }
        let request_id = state.forwards.next_request_id();
        let forward = Forward {
            from: self.core.id(),
            to: leader,
            body: ForwardBody::Propose { request_id, data },
        };
        // An isolated node's frames vanish as in a partition: the caller waits and learns
        // "may have been applied", as it would on a real network.
        let sent = if state.isolated {
            Ok(())
        } else {
            self.transport.send_forward(self.poll.registry(), &forward)
        };
        match sent {
            Ok(()) => {
                let epoch = self.transport.connection_epoch(leader);
                state
                    .forwards
                    .sent(request_id, leader, epoch, done, deadline);
            }
            Err(ForwardRefused::NoConnection) => done.complete(Err(ProposeError::NotLeader {
                leader_hint: Some(leader),
            })),
            Err(ForwardRefused::QueueFull) => done.complete(Err(ProposeError::Backpressure)),
            Err(ForwardRefused::TooLarge) => {
                log::warn!(
                    "node {}: a proposal too large to forward to node {leader} was refused",
                    self.core.id()
                );
                done.complete(Err(ProposeError::Backpressure));
            }
        }
    }

    /// A forward from a peer: a proposal to make here as leader, or the answer to one this
    /// node forwarded.
    fn take_forward(&mut self, state: &mut State, forward: Forward) {
        match forward.body {
            ForwardBody::Result {
                request_id,
                outcome,
            } => state.forwards.resolve(forward.from, request_id, outcome),
            ForwardBody::Propose { request_id, data } => {
                let peer = forward.from;
                if self.core.role() != Role::Leader || !state.participating {
                    // Never forwarded again: a second hop could loop between stale views. A
                    // stopped node proposes nothing: also certainly not applied.
                    let refusal = ProposeError::NotLeader {
                        leader_hint: self.core.leader().filter(|_| state.participating),
                    };
                    state.forwards.refuse(peer, request_id, refusal);
                    return;
                }
                if !state.forwards.accept(peer) {
                    state
                        .forwards
                        .refuse(peer, request_id, ProposeError::Backpressure);
                    return;
                }
                let results = std::sync::Arc::clone(&state.forwards.results);
                let waker = std::sync::Arc::clone(&self.waker);
                let done = ProposeCompletion::proposal(move |result| {
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((peer, request_id, result));
                    let _ = waker.wake();
                });
                let deadline = Instant::now() + self.propose_timeout;
                self.propose_here(state, data, done, deadline);
            }
        }
    }

    /// Sends the results this leader owes followers; one that cannot be sent is dropped (the
    /// follower then answers "may have been applied").
    fn send_forward_results(&mut self, state: &mut State) {
        for (peer, request_id, result) in state.forwards.take_results() {
            if state.isolated {
                continue;
            }
            let forward = Forward {
                from: self.core.id(),
                to: peer,
                body: ForwardBody::Result {
                    request_id,
                    outcome: outcome_of(result),
                },
            };
            let _ = self.transport.send_forward(self.poll.registry(), &forward);
        }
    }

    /// Proposes on this node's core (answers `NotLeader` unless it leads).
    fn propose_here(
        &mut self,
        state: &mut State,
        data: Vec<u8>,
        done: ProposeCompletion,
        deadline: Instant,
    ) {
        if !state.participating {
            let reason = state.last_error.clone().unwrap_or_default();
            done.complete(Err(ProposeError::Stopped { reason }));
            return;
        }
        let mut waiters = self
            .apply_shared
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if waiters.len() >= self.max_pending_proposals {
            drop(waiters);
            done.complete(Err(ProposeError::Backpressure));
            return;
        }
        let error = match self.core.propose(data) {
            Ok(index) => {
                let waiter = Waiter {
                    term: self.core.term(),
                    done,
                    deadline,
                };
                let overwritten = waiters.insert(index, waiter);
                drop(waiters);
                state.proposals_expire_from = Some(
                    state
                        .proposals_expire_from
                        .map_or(deadline, |at| at.min(deadline)),
                );
                if let Some(old) = overwritten {
                    // An earlier proposal at this index was overwritten by another leader.
                    old.done.complete(Err(ProposeError::LeaderLost));
                }
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
        drop(waiters);
        done.complete(Err(error));
    }

    /// Answers `Timeout` to the proposals past their deadline. Runs only when the earliest
    /// deadline may have passed; the sweep visits every waiter (at most
    /// `max_pending_proposals`) under the waiters lock.
    fn expire_proposals(&mut self, state: &mut State) {
        let now = Instant::now();
        if state.proposals_expire_from.is_none_or(|at| at > now) {
            return;
        }
        let mut expired = Vec::new();
        {
            let mut waiters = self
                .apply_shared
                .waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let expired_indexes: Vec<u64> = waiters
                .iter()
                .filter(|(_, w)| w.deadline <= now)
                .map(|(index, _)| *index)
                .collect();
            for index in expired_indexes {
                expired.extend(waiters.remove(&index));
            }
            state.proposals_expire_from = waiters.values().map(|w| w.deadline).min();
        }
        for waiter in expired {
            waiter.done.complete(Err(ProposeError::Timeout));
        }
    }

    fn read(&mut self, state: &mut State, query: Vec<u8>, done: ReadCompletion, deadline: Instant) {
        if !state.participating {
            let reason = state.last_error.clone().unwrap_or_default();
            done.complete(Err(ReadError::Stopped { reason }));
            return;
        }
        if state.reads.len() >= APPLY_QUEUE_ITEMS {
            done.complete(Err(ReadError::Backpressure));
            return;
        }
        let ctx = state.next_read_ctx;
        state.next_read_ctx += 1;
        match self.core.read_index(ctx) {
            Ok(()) => {
                state.reads.insert(
                    ctx,
                    PendingRead {
                        query,
                        done,
                        deadline,
                    },
                );
            }
            Err(crate::raft::ReadIndexRefused::NoLeader) => {
                done.complete(Err(ReadError::NotLeader { leader_hint: None }));
            }
            Err(crate::raft::ReadIndexRefused::TooManyPending { .. }) => {
                done.complete(Err(ReadError::Backpressure));
            }
        }
    }

    /// Answers `Timeout` to the reads still waiting for their read index past their
    /// deadline (at most `APPLY_QUEUE_ITEMS` are pending).
    fn expire_reads(&mut self, state: &mut State) {
        let now = Instant::now();
        let expired: Vec<u64> = state
            .reads
            .iter()
            .filter(|(_, read)| read.deadline <= now)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in expired {
            if let Some(read) = state.reads.remove(&ctx) {
                read.done.complete(Err(ReadError::Timeout));
            }
        }
    }

    fn take_completions(&mut self, state: &mut State) {
        let durable = self
            .writer_shared
            .durable_through_seq
            .load(Ordering::Acquire);
        while state.pending.front().is_some_and(|p| p.seq <= durable) {
            let done = state.pending.pop_front().expect("front exists");
            if let Some(meta) = done.install {
                self.learn_snapshot_addresses(&meta);
                self.send_apply(state, ApplyWork::Restore(meta.clone()));
                self.core.on_snapshot_installed(meta);
            }
            if let Some((index, term)) = done.last_entry {
                self.core.on_persisted(index, term);
            }
            for message in done.persisted_messages {
                self.send_message(state, message);
            }
        }
        // Built snapshots first: the apply thread publishes the applied index before a
        // snapshot at it, so the index read next covers every snapshot taken here, and the
        // core is never told of a snapshot beyond its applied index.
        let built = std::mem::take(
            &mut *self
                .apply_shared
                .built
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let applied = self.apply_shared.applied_index.load(Ordering::Acquire);
        if applied > state.applied_reported {
            self.core.on_applied(applied);
            state.applied_reported = applied;
        }
        for meta in built {
            let index = meta.index;
            self.core.on_snapshot_built(meta);
            // The snapshot is durable: the log below it is no longer needed at restart.
            state.seq += 1;
            state.pending.push_back(PendingPersist {
                seq: state.seq,
                sent_at: Instant::now(),
                persisted_messages: Vec::new(),
                last_entry: None,
                install: None,
            });
            let work = PersistWork {
                seq: state.seq,
                compact_to: Some(index + 1),
                ..PersistWork::default()
            };
            if self.writer_tx.try_send(work).is_err() {
                state.seq -= 1;
                state.pending.pop_back();
                log::warn!("log writer queue full: log compaction to {index} skipped until the next snapshot");
            }
        }
    }

    fn send_apply(&mut self, state: &mut State, work: ApplyWork) {
        match self.apply_tx.try_send(work) {
            Ok(()) => state.apply_sent += 1,
            // has_room() keeps slack for this; a full queue here is a bug in that accounting.
            Err(e) => panic!("apply queue full despite the room check: {e}"),
        }
    }

    fn handle_ready(&mut self, state: &mut State, ready: Ready) {
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
        // Addresses of new members, from the entries this node appends (see `membership`).
        if !entries.is_empty() {
            self.learn_addresses(addresses_in(&entries));
        }
        // The leader sends appends before its own write is durable (thesis §10.2.1).
        for message in coalesce_appends(messages, self.append_merge_bytes_max) {
            self.send_message(state, message);
        }
        let needs_persist = hard_state.is_some()
            || truncate_from.is_some()
            || !entries.is_empty()
            || !snapshot_chunks.is_empty()
            || snapshot_to_install.is_some();
        if needs_persist || !persisted_messages.is_empty() {
            state.seq += 1;
            let last_entry = entries.last().map(|e| (e.index, e.term));
            state.pending.push_back(PendingPersist {
                seq: state.seq,
                sent_at: Instant::now(),
                persisted_messages,
                last_entry,
                install: snapshot_to_install.clone(),
            });
            let work = PersistWork {
                seq: state.seq,
                truncate_from,
                entries,
                hard_state,
                snapshot_chunks,
                snapshot_to_install,
                compact_to: None,
            };
            if let Err(e) = self.writer_tx.try_send(work) {
                // has_room() checked; only a writer that exited (fatal error) gets here.
                log::error!("log writer is gone: {e}");
                state.participating = false;
            }
        }
        if let Some(request) = snapshot_request {
            let addresses = self.peer_addrs.clone();
            self.send_apply(state, ApplyWork::BuildSnapshot { request, addresses });
        }
        if !committed_entries.is_empty() {
            self.send_apply(state, ApplyWork::Entries(committed_entries));
        }
        for read_state in read_states {
            let Some(read) = state.reads.remove(&read_state.ctx) else {
                continue;
            };
            // Reads may use the queue only down to half the slack, which stays reserved for
            // restores and the next Ready's entries.
            if self.apply_inflight(state) + APPLY_SLACK_ITEMS / 2 >= APPLY_QUEUE_ITEMS as u64 {
                read.done.complete(Err(ReadError::Backpressure));
                continue;
            }
            let work = ApplyWork::Read {
                index: read_state.index,
                query: read.query,
                done: read.done,
                deadline: read.deadline,
            };
            self.send_apply(state, work);
        }
    }

    fn send_message(&mut self, state: &mut State, mut message: Message) {
        if !state.participating || state.disk_stalled || state.isolated {
            return;
        }
        if let MessageBody::InstallSnapshot {
            meta,
            offset,
            len,
            data,
            ..
        } = &mut message.body
        {
            if data.is_empty() && *len > 0 {
                match self.read_snapshot_chunk(state, meta, *offset, *len) {
                    Some(bytes) => *data = bytes,
                    // The snapshot is gone; the leader retries with a newer one.
                    None => return,
                }
            }
        }
        self.transport.send(self.poll.registry(), &message);
    }

    fn read_snapshot_chunk(
        &mut self,
        state: &mut State,
        meta: &crate::raft::SnapshotMeta,
        offset: u64,
        len: u64,
    ) -> Option<Vec<u8>> {
        let cached = state
            .raw_snapshot
            .as_ref()
            .is_some_and(|raw| (raw.meta().index, raw.meta().term) == (meta.index, meta.term));
        if !cached {
            let file_meta = self
                .snapshots
                .list()
                .into_iter()
                .find(|m| (m.index, m.term) == (meta.index, meta.term))?;
            match self.snapshots.open_raw(&file_meta) {
                Ok(raw) => state.raw_snapshot = Some(raw),
                Err(e) => {
                    log::warn!("cannot open snapshot {} for sending: {e}", meta.index);
                    return None;
                }
            }
        }
        let raw = state.raw_snapshot.as_ref()?;
        let len = usize::try_from(len).ok()?;
        let mut buf = vec![0; len];
        match raw.read_at(offset, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(e) => {
                log::warn!("cannot read snapshot {} for sending: {e}", meta.index);
                state.raw_snapshot = None;
                None
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

    /// An operator's membership change: on the leader, the address entry (when the change
    /// adds a node) then the configuration entry; answered by `check_membership`.
    fn change_membership(
        &mut self,
        state: &mut State,
        change: crate::raft::ConfChange,
        peer_addr: Option<SocketAddr>,
        done: ChangeCompletion,
        deadline: Instant,
    ) {
        if let Some(error) = self.admin_refusal(state) {
            done.complete(Err(error));
            return;
        }
        let target = match change.target(self.core.membership()) {
            Ok(target) => target,
            Err(e) => return done.complete(Err(e.into())),
        };
        if let crate::raft::ConfChange::AddLearner(id) = change {
            let Some(addr) = peer_addr else {
                return done.complete(Err(ChangeError::Refused {
                    reason: format!("adding node {id} needs its peer address"),
                }));
            };
            if self.peer_addrs.len() >= ADDRESSES_MAX && !self.peer_addrs.contains_key(&id) {
                return done.complete(Err(ChangeError::Refused {
                    reason: format!("address book full ({ADDRESSES_MAX})"),
                }));
            }
            // Every known member's address with the new one: a node that joins learns them
            // all from one entry.
            let mut book = dialed_peers(self.core.membership(), &self.peer_addrs);
            book.insert(self.core.id(), self.peer_addrs[&self.core.id()]);
            book.insert(id, addr);
            if let Err(e) = self.core.propose(encode_address_entry(&book)) {
                let error = match e {
                    crate::raft::ProposalRefused::NotLeader { leader_hint } => {
                        ChangeError::NotLeader { leader_hint }
                    }
                    other => ChangeError::Refused {
                        reason: format!("the address entry was refused: {other:?}"),
                    },
                };
                return done.complete(Err(error));
            }
        }
        match self.core.propose_conf_change(change) {
            Ok(index) => {
                log::info!(
                    "node {}: membership change proposed at index {index}, towards voters \
                     {:?} learners {:?}",
                    self.core.id(),
                    target.voters,
                    target.learners
                );
                state.changes.push(PendingChange {
                    awaited: Awaited::Change { index, target },
                    term: self.core.term(),
                    deadline,
                    done,
                });
            }
            Err(e) => done.complete(Err(e.into())),
        }
    }

    fn transfer_leader(
        &mut self,
        state: &mut State,
        target: NodeId,
        done: ChangeCompletion,
        deadline: Instant,
    ) {
        if let Some(error) = self.admin_refusal(state) {
            return done.complete(Err(error));
        }
        match self.core.transfer_leader(target) {
            Ok(()) => state.changes.push(PendingChange {
                awaited: Awaited::Transfer { target },
                term: self.core.term(),
                deadline,
                done,
            }),
            Err(e) => done.complete(Err(e.into())),
        }
    }

    /// Why an admin request is refused before reaching the core, if it is.
    fn admin_refusal(&self, state: &State) -> Option<ChangeError> {
        if !state.participating {
            return Some(ChangeError::Stopped {
                reason: state.last_error.clone().unwrap_or_default(),
            });
        }
        if self.core.role() != Role::Leader {
            return Some(ChangeError::NotLeader {
                leader_hint: self.core.leader(),
            });
        }
        (state.changes.len() >= PENDING_CHANGES_MAX).then(|| ChangeError::Refused {
            reason: format!("{PENDING_CHANGES_MAX} admin requests already pending"),
        })
    }

    /// Learns the address book carried in an installed snapshot (see `storage`): the
    /// address entries it covers never reach this node's log.
    fn learn_snapshot_addresses(&mut self, meta: &crate::raft::SnapshotMeta) {
        let Some(file_meta) = self
            .snapshots
            .list()
            .into_iter()
            .find(|m| (m.index, m.term) == (meta.index, meta.term))
        else {
            log::warn!(
                "node {}: installed snapshot {} is not in the store; its addresses are not read",
                self.core.id(),
                meta.index
            );
            return;
        };
        match snapshot_addresses(&file_meta) {
            Ok(addrs) => self.learn_addresses(addrs),
            // Not fatal: the addresses in later entries and the contacts still work.
            Err(e) => log::warn!("node {}: {e}", self.core.id()),
        }
    }

    /// Adds newly learned addresses to the book (and the file), and redials moved peers.
    fn learn_addresses(&mut self, learned: BTreeMap<NodeId, SocketAddr>) {
        let mut changed = false;
        for (id, addr) in learned {
            if self.peer_addrs.get(&id) == Some(&addr) {
                continue;
            }
            if self.peer_addrs.len() >= ADDRESSES_MAX && !self.peer_addrs.contains_key(&id) {
                log::warn!(
                    "node {}: address book full; node {id} ignored",
                    self.core.id()
                );
                continue;
            }
            log::info!("node {}: node {id} listens on {addr}", self.core.id());
            self.peer_addrs.insert(id, addr);
            changed = true;
            if self.core.membership().contains(id) {
                self.transport.set_peer(self.poll.registry(), id, addr);
            }
        }
        if changed {
            if let Err(e) = write_address_book(&self.address_book_path, &self.peer_addrs) {
                // Not fatal: the addresses are in the log too until it is compacted.
                log::warn!("node {}: {e}", self.core.id());
            }
        }
    }

    /// Matches the transport to the configuration in force, answers operator requests whose
    /// outcome is known, and stops a node that learned it was removed.
    fn check_membership(&mut self, state: &mut State) {
        let (latest, committed) = (self.core.membership(), self.core.committed_membership());
        let changed = state
            .dialed_membership
            .as_ref()
            .is_none_or(|(l, c)| l != latest || c != committed);
        if (changed || !state.departing.is_empty()) && !latest.is_unknown() {
            // Members of the latest and of the committed configuration: a follower still
            // answers a leader that its log already removes (its removal may not commit).
            let mut wanted = dialed_peers(latest, &self.peer_addrs);
            wanted.extend(dialed_peers(committed, &self.peer_addrs));
            state.dialed_membership = Some((latest.clone(), committed.clone()));
            let now = Instant::now();
            for (id, _) in self.transport.peers() {
                if wanted.contains_key(&id) {
                    continue;
                }
                // Kept a grace period: the leader replicates to a removed node for a while so
                // that it learns its removal committed.
                let forget_at = *state.departing.entry(id).or_insert(now + DEPARTED_GRACE);
                if forget_at <= now {
                    log::info!("node {}: node {id} left the configuration", self.core.id());
                    self.transport.remove_peer(self.poll.registry(), id);
                    state.departing.remove(&id);
                }
            }
            for (id, addr) in wanted {
                state.departing.remove(&id);
                self.transport.set_peer(self.poll.registry(), id, addr);
            }
        }
        if !state.changes.is_empty() {
            let view = CoreView {
                is_leader: self.core.role() == Role::Leader,
                term: self.core.term(),
                leader: self.core.leader(),
                commit: self.core.log().commit(),
                committed_membership: self.core.committed_membership(),
            };
            let now = Instant::now();
            let mut answered = Vec::new();
            let mut i = 0;
            while i < state.changes.len() {
                if let Some(outcome) = state.changes[i].outcome(&view, now) {
                    answered.push((state.changes.swap_remove(i), outcome));
                } else {
                    i += 1;
                }
            }
            if !answered.is_empty() {
                // Published first: a caller told "committed" who then reads the status sees
                // the configuration it was told about.
                self.publish_status(state);
                state.next_status_at = Instant::now() + STATUS_PERIOD;
            }
            for (change, outcome) in answered {
                change.done.complete(outcome);
            }
        }
        if !state.removed && self.core.is_removed() {
            log::warn!(
                "node {}: removed from the cluster (configuration {:?}); stops participating",
                self.core.id(),
                self.core.committed_membership()
            );
            state.removed = true;
            state.participating = false;
            state.last_error = Some("removed from the cluster".to_string());
            for change in state.changes.drain(..) {
                change.done.complete(Err(ChangeError::Stopped {
                    reason: "removed from the cluster".to_string(),
                }));
            }
        }
    }

    fn publish_status(&self, state: &mut State) {
        let membership = self.core.membership();
        let members = if state.published_membership.as_ref() != Some(membership) {
            state.published_membership = Some(membership.clone());
            let members = members_of(membership, &self.peer_addrs);
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
        status.role = core.role;
        status.term = core.term;
        status.leader = core.leader;
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

/// The status's member list: every member of `membership` with its configured address.
pub fn members_of(
    membership: &crate::raft::Membership,
    peer_addrs: &BTreeMap<NodeId, SocketAddr>,
) -> BTreeMap<NodeId, MemberStatus> {
    membership
        .all_members()
        .into_iter()
        .map(|id| {
            let member = MemberStatus {
                peer_addr: peer_addrs.get(&id).copied(),
                voter: membership.voters.contains(&id) || membership.outgoing_voters.contains(&id),
            };
            (id, member)
        })
        .collect()
}

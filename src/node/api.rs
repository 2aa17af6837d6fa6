//! The embedding API: [`NodeConfig`], [`Node::start`], `propose`, `read`, `status`, `shutdown`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Interest, Poll, Waker};

use super::addresses::{dialed_peers, AddressBook};
use super::apply::{Applier, ApplyShared, APPLY_QUEUE_ITEMS};
use super::completion::{ProposeCompletion, ReadCompletion};
use super::config::NodeConfig;
use super::durable_state::load;
use super::errors::{NodeError, ProposeError, ReadError};
use super::event_loop::{EventLoop, LoopLinks, LoopSettings};
use super::log_writer::{LogWriter, WriterShared, WriterStats, WRITER_QUEUE_ITEMS};
use super::membership_change::{ChangeCompletion, ChangeError};
use super::request::Request;
use super::state_machine::StateMachine;
use super::status::{members_of, NodeStatus};
use super::transport::{Transport, TransportStats, LISTENER_TOKEN, WAKER_TOKEN};
use crate::raft::{ConfChange, Core, NodeId, Role, Stats};
use crate::wire::frame::{HEADER_BYTES, MAX_FRAME_PAYLOAD_BYTES};

/// Bound of the client request inbox; a full inbox answers `Backpressure`.
pub const INBOX_REQUESTS: usize = 8192;

/// How long the blocking `Proposal::wait` and `Node::read` wait past the node's own timeout
/// for the node's answer (which is `Timeout` at the latest), before giving up themselves.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

/// A proposal in flight, from [`Node::submit`].
#[derive(Debug)]
pub struct Proposal {
    result: Receiver<Result<Vec<u8>, ProposeError>>,
    deadline: Instant,
}

impl Proposal {
    /// A proposal whose result arrives on `result`, answered by `deadline`.
    pub(crate) fn new(
        result: Receiver<Result<Vec<u8>, ProposeError>>,
        deadline: Instant,
    ) -> Proposal {
        Proposal { result, deadline }
    }

    /// Waits for the result until the node's propose timeout (counted from submission).
    pub fn wait(self) -> Result<Vec<u8>, ProposeError> {
        // The node answers by the deadline itself; the margin only covers a loop that is
        // late expiring (a loaded machine), so the caller never sees two different answers.
        let timeout = self.deadline.saturating_duration_since(Instant::now()) + WAIT_MARGIN;
        match self.result.recv_timeout(timeout) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => Err(ProposeError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ProposeError::ShuttingDown),
        }
    }
}

/// A running node: an event loop, a log writer and an apply thread.
pub struct Node {
    id: NodeId,
    cluster_id: u64,
    inbox: SyncSender<Request>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<NodeStatus>>,
    threads: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
    propose_timeout: Duration,
    read_timeout: Duration,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node").field("id", &self.id).finish()
    }
}

impl Node {
    /// Opens `data_dir` (creating it), restores the state machine from the newest valid
    /// snapshot, binds the peer listener and starts the three threads.
    pub fn start<S: StateMachine>(
        config: NodeConfig,
        data_dir: impl AsRef<Path>,
        mut state_machine: S,
    ) -> Result<Node, NodeError> {
        let data_dir = data_dir.as_ref();
        if !config.peers.contains_key(&config.id) {
            return Err(NodeError::Config(format!(
                "peers must include this node ({})",
                config.id
            )));
        }
        if max_frame_payload_bytes(&config) > u64::from(MAX_FRAME_PAYLOAD_BYTES) {
            return Err(NodeError::Config(format!(
                "max_proposal_bytes {} (or max_message_bytes / snapshot_chunk_bytes) needs \
                 frames above the {MAX_FRAME_PAYLOAD_BYTES} byte protocol maximum",
                config.max_proposal_bytes
            )));
        }
        let voters = if config.join {
            BTreeSet::new()
        } else {
            config.peers.keys().copied().collect()
        };
        let mut loaded = load(data_dir, &voters, config.wal.clone()).map_err(NodeError::Storage)?;
        let (applied_index, applied_term) =
            (loaded.durable.snapshot.index, loaded.durable.snapshot.term);
        if let Some(mut reader) = loaded.snapshot_reader.take() {
            state_machine
                .restore(&mut reader)
                .map_err(|e| NodeError::Config(format!("restoring the snapshot: {e}")))?;
            reader.finish().map_err(|e| NodeError::Storage(e.into()))?;
        }
        let mut raft = config.raft.clone();
        raft.id = config.id;
        // The core admits an entry past the bound only when nothing is uncommitted; with room
        // for two of the largest, one is admitted whenever the pipeline is at most half full,
        // instead of waiting for a moment with nothing uncommitted, which steady load may
        // never give.
        raft.max_uncommitted_bytes = raft.max_uncommitted_bytes.max(
            config
                .max_proposal_bytes
                .saturating_add(ENTRY_OVERHEAD_BYTES)
                * 2,
        );
        let core = Core::new(raft.clone(), loaded.durable)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let addresses =
            AddressBook::open(data_dir, &config.peers, core.log()).map_err(NodeError::Config)?;
        let poll = Poll::new().map_err(NodeError::Io)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN).map_err(NodeError::Io)?);
        let (transport, listen_addr) = bind_transport(&config, &poll, &core, &addresses)?;
        let status = Arc::new(Mutex::new(NodeStatus {
            id: config.id,
            role: Role::Follower,
            term: core.term(),
            leader: None,
            commit: core.log().commit(),
            applied: applied_index,
            last_index: core.log().last_index(),
            progress: BTreeMap::new(),
            writer: WriterStats::default(),
            transport: TransportStats::default(),
            raft_stats: Stats::default(),
            connected_peers: Vec::new(),
            participating: true,
            disk_stalled: false,
            last_error: None,
            listen_addr,
            members: members_of(core.membership(), addresses.addrs()),
            forwards_in_flight: 0,
            other_group_dropped: 0,
            membership: core.membership().clone(),
            committed_membership: core.committed_membership().clone(),
            removed: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (writer_tx, writer_rx) = sync_channel(WRITER_QUEUE_ITEMS);
        let (apply_tx, apply_rx) = sync_channel(APPLY_QUEUE_ITEMS);
        let (inbox_tx, inbox_rx) = sync_channel(INBOX_REQUESTS);
        let writer_shared = Arc::new(WriterShared::default());
        let apply_shared = Arc::new(ApplyShared::default());
        let writer = LogWriter::new(
            loaded.wal,
            loaded.snapshots.clone(),
            Arc::clone(&writer_shared),
            Arc::clone(&waker),
        );
        let applier = Applier::new(
            state_machine,
            loaded.snapshots.clone(),
            Arc::clone(&apply_shared),
            Arc::clone(&waker),
            applied_index,
            applied_term,
        );
        let links = LoopLinks {
            inbox: inbox_rx,
            writer_tx,
            writer_shared,
            apply_tx,
            apply_shared,
            waker: Arc::clone(&waker),
            stop: Arc::clone(&stop),
            status: Arc::clone(&status),
        };
        let event_loop = EventLoop::new(
            core,
            poll,
            transport,
            addresses,
            loaded.snapshots,
            LoopSettings::new(&config),
            links,
        );
        let id = config.id;
        let spawn = |name: &'static str, f: Box<dyn FnOnce() -> Result<(), String> + Send>| {
            std::thread::Builder::new()
                .name(format!("ketch-{id}-{name}"))
                .spawn(f)
                .map(|handle| (name, handle))
                .map_err(NodeError::Io)
        };
        let threads = vec![
            spawn("writer", Box::new(move || writer.run(writer_rx)))?,
            spawn("apply", Box::new(move || applier.run(apply_rx)))?,
            spawn("loop", Box::new(move || event_loop.run()))?,
        ];
        log::info!("node {id}: started, listening for peers on {listen_addr}");
        Ok(Node {
            id,
            cluster_id: config.cluster_id,
            inbox: inbox_tx,
            waker,
            stop,
            status,
            threads,
            propose_timeout: config.propose_timeout,
            read_timeout: config.read_timeout,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The id of the cluster it belongs to (its configuration's `cluster_id`).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// Proposes `command` and waits (up to the configured timeout) for the state machine's
    /// result on this node. Same as `self.submit(command).wait()`.
    pub fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>, ProposeError> {
        self.submit(command).wait()
    }

    /// Proposes `command` without waiting: the returned [`Proposal`] resolves to the result.
    /// One thread can keep many proposals in flight this way (pipelining) instead of one
    /// thread per outstanding proposal.
    pub fn submit(&self, command: Vec<u8>) -> Proposal {
        let (reply, result) = sync_channel(1);
        let deadline = Instant::now() + self.propose_timeout;
        self.submit_until(command, deadline, move |answer| {
            // One slot and one answer: never full; the receiver may have gone.
            let _ = reply.try_send(answer);
        });
        Proposal { result, deadline }
    }

    /// Proposes `command`; `done` runs exactly once with the result (on a node thread: it
    /// must be cheap and must not block, e.g. push to a queue and wake a `mio::Waker`).
    ///
    /// Every path answers once: refused at the inbox → at once, on the caller's thread, with
    /// `Backpressure` or `ShuttingDown`; no result within the node's propose timeout →
    /// `Timeout`; node shut down first → `ShuttingDown`.
    pub fn submit_with(
        &self,
        command: Vec<u8>,
        done: impl FnOnce(Result<Vec<u8>, ProposeError>) + Send + 'static,
    ) {
        let deadline = Instant::now() + self.propose_timeout;
        self.submit_until(command, deadline, done);
    }

    fn submit_until(
        &self,
        command: Vec<u8>,
        deadline: Instant,
        done: impl FnOnce(Result<Vec<u8>, ProposeError>) + Send + 'static,
    ) {
        let request = Request::Propose {
            data: command,
            done: ProposeCompletion::proposal(done),
            deadline,
        };
        let (refused, error) = match self.inbox.try_send(request) {
            Ok(()) => {
                let _ = self.waker.wake();
                return;
            }
            Err(TrySendError::Full(request)) => (request, ProposeError::Backpressure),
            Err(TrySendError::Disconnected(request)) => (request, ProposeError::ShuttingDown),
        };
        if let Request::Propose { done, .. } = refused {
            done.complete(Err(error));
        }
    }

    /// A linearizable read (ReadIndex, thesis §6.4): on a follower the read index comes from
    /// the leader, and the query runs here once this node has applied up to it.
    pub fn read(&self, query: Vec<u8>) -> Result<Vec<u8>, ReadError> {
        let (reply, result) = sync_channel(1);
        self.read_with(query, move |answer| {
            let _ = reply.try_send(answer);
        });
        match result.recv_timeout(self.read_timeout + WAIT_MARGIN) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => Err(ReadError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ReadError::ShuttingDown),
        }
    }

    /// A linearizable read like [`Node::read`]; `done` runs exactly once with the answer,
    /// under the same rules as [`Node::submit_with`] (refused → at once on the caller's
    /// thread; the node's read timeout → `Timeout`; shutdown → `ShuttingDown`).
    pub fn read_with(
        &self,
        query: Vec<u8>,
        done: impl FnOnce(Result<Vec<u8>, ReadError>) + Send + 'static,
    ) {
        let request = Request::Read {
            query,
            done: ReadCompletion::read(done),
            deadline: Instant::now() + self.read_timeout,
        };
        let (refused, error) = match self.inbox.try_send(request) {
            Ok(()) => {
                let _ = self.waker.wake();
                return;
            }
            Err(TrySendError::Full(request)) => (request, ReadError::Backpressure),
            Err(TrySendError::Disconnected(request)) => (request, ReadError::ShuttingDown),
        };
        if let Request::Read { done, .. } = refused {
            done.complete(Err(error));
        }
    }

    /// Changes the membership through this node, which must lead (a follower answers
    /// `NotLeader` with its leader hint; nothing is forwarded). `peer_addr` is required when
    /// the change adds a node (`AddLearner`) and is replicated to every node (see
    /// `membership`). `done` runs once: `Ok` when the configuration the change leads to is
    /// committed (for a joint change, the final one), or the error (see [`ChangeError`] for
    /// which errors mean "certainly not applied"). The node's propose timeout applies.
    pub fn change_membership(
        &self,
        change: ConfChange,
        peer_addr: Option<SocketAddr>,
        done: impl FnOnce(Result<(), ChangeError>) + Send + 'static,
    ) {
        let request = Request::ChangeMembership {
            change,
            peer_addr,
            done: ChangeCompletion::new(done),
            deadline: Instant::now() + self.propose_timeout,
        };
        self.send_admin(request);
    }

    /// Hands leadership to `target` (this node must lead). `done` runs once: `Ok` when this
    /// node sees `target` lead, else the error (`Timeout` after the propose timeout).
    pub fn transfer_leadership(
        &self,
        target: NodeId,
        done: impl FnOnce(Result<(), ChangeError>) + Send + 'static,
    ) {
        let request = Request::TransferLeader {
            target,
            done: ChangeCompletion::new(done),
            deadline: Instant::now() + self.propose_timeout,
        };
        self.send_admin(request);
    }

    /// Queues an admin request; a refused one answers at once (dropping its completion
    /// answers `Stopped` for a stopped node; a full inbox is answered here).
    fn send_admin(&self, request: Request) {
        match self.inbox.try_send(request) {
            Ok(()) => {
                let _ = self.waker.wake();
            }
            Err(TrySendError::Full(
                Request::ChangeMembership { done, .. } | Request::TransferLeader { done, .. },
            )) => done.complete(Err(ChangeError::Refused {
                reason: "the node's request inbox is full".to_string(),
            })),
            // Dropping the request answers `Stopped`.
            Err(_) => {}
        }
    }

    /// Test hook: cut this node off from its peers (every peer message in and out is dropped)
    /// or reconnect it, to test partitions without touching the network.
    #[doc(hidden)]
    pub fn set_isolated(&self, isolated: bool) {
        // Blocking send: the inbox is bounded and this is a test-only, rare request.
        let _ = self.inbox.send(Request::SetIsolated(isolated));
        let _ = self.waker.wake();
    }

    /// Where the node stands (as of the loop's latest iteration).
    pub fn status(&self) -> NodeStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A reader of the status [`Node::status`] returns, for another thread (a metrics
    /// scrape): it holds the published status only, not the node, so it outlives a shutdown
    /// (then reading the last status published).
    pub fn status_reader(&self) -> impl Fn() -> NodeStatus + Send + Sync + 'static {
        let status = Arc::clone(&self.status);
        move || status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops every thread and joins them: the loop first, then the writer (which writes and
    /// syncs all it was given) and the apply thread. Returns every thread's error or panic.
    pub fn shutdown(mut self) -> Result<(), NodeError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), NodeError> {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        let mut errors = Vec::new();
        // The loop goes first: it owns the senders whose drop ends the other two threads.
        let mut threads = std::mem::take(&mut self.threads);
        threads.sort_by_key(|(name, _)| u8::from(*name != "loop"));
        for (name, handle) in threads {
            match handle.join() {
                Ok(Ok(())) => {}
                // The writer and apply threads only return an error that stopped them while
                // the node ran; the node stopped participating then. Say so: the operator
                // sees this at shutdown, long after the failure.
                Ok(Err(e)) if name == "writer" => errors.push(format!(
                    "writer thread: the log was poisoned earlier by a failed write or fsync, \
                     and the node stopped participating then (a failed write is never \
                     retried; restart the node once the disk is fixed): {e}"
                )),
                Ok(Err(e)) if name == "apply" => errors.push(format!(
                    "apply thread: applying failed earlier, and the node stopped \
                     participating then: {e}"
                )),
                Ok(Err(e)) => errors.push(format!("{name} thread: {e}")),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".to_string());
                    errors.push(format!("{name} thread panicked: {what}"));
                }
            }
        }
        log::info!("node {}: stopped", self.id);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(NodeError::Threads(errors))
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            if let Err(e) = self.stop_and_join() {
                log::error!("node {}: {e}", self.id);
            }
        }
    }
}

/// Binds the peer listener on `poll` and makes the transport that dials the members of the
/// core's configuration; returns it with the bound address.
fn bind_transport(
    config: &NodeConfig,
    poll: &Poll,
    core: &Core,
    addresses: &AddressBook,
) -> Result<(Transport, SocketAddr), NodeError> {
    let std_listener = std::net::TcpListener::bind(config.listen_addr).map_err(NodeError::Io)?;
    std_listener.set_nonblocking(true).map_err(NodeError::Io)?;
    let listen_addr = std_listener.local_addr().map_err(NodeError::Io)?;
    let mut listener = mio::net::TcpListener::from_std(std_listener);
    poll.registry()
        .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)
        .map_err(NodeError::Io)?;
    let max_frame = max_frame_payload_bytes(config);
    // An empty queue must take the largest frame, or that entry would be dropped and resent
    // forever.
    let queue_bytes_max = config
        .peer_queue_bytes_max
        .max(usize::try_from(max_frame).unwrap_or(usize::MAX) + HEADER_BYTES);
    let transport = Transport::new(
        config.id,
        config.cluster_id,
        &dialed_peers(core.membership(), addresses.addrs()),
        listener,
        u32::try_from(max_frame).unwrap_or(u32::MAX),
        queue_bytes_max,
        config.peer_security.clone(),
    );
    Ok((transport, listen_addr))
}

/// Bytes an entry takes beyond its data, in the core's accounting and on the wire, rounded up.
const ENTRY_OVERHEAD_BYTES: u64 = 64;

/// The largest frame payload this node sends and accepts: room for the core's largest message
/// (`max_message_bytes` of entries; more only as one entry alone, see `coalesce`), its largest
/// snapshot chunk, and one entry of `max_proposal_bytes`, encoded. Every node computes it from
/// the same settings, so no node sends what its peers refuse (see `transport`).
pub(crate) fn max_frame_payload_bytes(config: &NodeConfig) -> u64 {
    let raft = &config.raft;
    let message = raft.max_message_bytes.max(raft.snapshot_chunk_bytes) * 2;
    let entry = config
        .max_proposal_bytes
        .saturating_add(ENTRY_OVERHEAD_BYTES);
    message.max(entry).saturating_add(64 << 10)
}

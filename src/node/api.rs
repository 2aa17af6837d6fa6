//! The embedding API: [`NodeConfig`], [`Node::start`], `propose`, `read`, `status`, `shutdown`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Interest, Poll, Waker};

use super::apply::{Applier, ApplyShared, APPLY_QUEUE_ITEMS};
use super::completion::{ProposeCompletion, ReadCompletion};
use super::event_loop::{members_of, EventLoop};
use super::log_writer::{LogWriter, WriterShared, WriterStats, WRITER_QUEUE_ITEMS};
use super::membership::{
    address_book_path, addresses_in_log, read_address_book, ChangeCompletion, ChangeError,
};
use super::state_machine::StateMachine;
use super::storage::{load, StorageError};
use super::transport::{Transport, TransportStats, LISTENER_TOKEN, WAKER_TOKEN};
use crate::raft::{ConfChange, Core, Membership, NodeId, PeerProgress, Role, Stats};

/// Bound of the client request inbox; a full inbox answers `Backpressure`.
pub const INBOX_REQUESTS: usize = 8192;

/// How long the blocking `Proposal::wait` and `Node::read` wait past the node's own timeout
/// for the node's answer (which is `Timeout` at the latest), before giving up themselves.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

/// Configuration of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id (non-zero, a key of `peers`).
    pub id: NodeId,
    /// Peers refuse connections from other clusters.
    pub cluster_id: u64,
    /// Every voter's peer address, this node included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Where to listen for peers (may differ from `peers[id]`, e.g. `0.0.0.0:port`).
    pub listen_addr: SocketAddr,
    /// Duration of one core tick.
    pub tick_interval: Duration,
    /// Core tuning; its `id` is overwritten with `id`.
    pub raft: crate::raft::Config,
    /// How long `propose` waits for the result.
    pub propose_timeout: Duration,
    /// How long `read` waits for the answer.
    pub read_timeout: Duration,
    /// Most proposals waiting for their result on this node.
    pub max_pending_proposals: usize,
    /// Leader disk-stall bound: a leader whose oldest log write has been pending this long
    /// sends nothing (no heartbeats) until it completes, so followers elect another leader
    /// instead of the cluster hanging on a dead disk while heartbeats flow.
    pub disk_stall_timeout: Duration,
    /// Bytes queued per peer before messages are dropped.
    pub peer_queue_bytes_max: usize,
    /// WAL options (segment size, fault injection for tests).
    pub wal: ketch_storage::Options,
    /// Join a running cluster: start with an empty configuration (`peers` then only says
    /// where to reach the current members until the first configuration arrives) and wait to
    /// be added with [`Node::change_membership`] on the leader. Ignored once the data
    /// directory holds state: a restart recovers the configuration from the log.
    pub join: bool,
}

impl NodeConfig {
    /// A configuration with defaults for a LAN: 10 ms ticks, election timeout 30-60 ticks,
    /// heartbeats every 5 ticks, 5 s client timeouts.
    pub fn new(
        id: NodeId,
        cluster_id: u64,
        peers: BTreeMap<NodeId, SocketAddr>,
        listen_addr: SocketAddr,
    ) -> Self {
        let mut raft = crate::raft::Config::new(id);
        // 300-600 ms elections and 50 ms heartbeats: a shared, loaded 2-core machine delays
        // threads by tens of milliseconds, and a spurious election costs more than a slower
        // failover.
        raft.election_timeout_ticks = 30;
        raft.heartbeat_interval_ticks = 5;
        raft.seed = cluster_id;
        NodeConfig {
            id,
            cluster_id,
            peers,
            listen_addr,
            tick_interval: Duration::from_millis(10),
            raft,
            propose_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            max_pending_proposals: 65_536,
            disk_stall_timeout: Duration::from_secs(1),
            peer_queue_bytes_max: 64 << 20,
            wal: ketch_storage::Options::default(),
            join: false,
        }
    }
}

/// Why a proposal failed. `NotLeader`, `Backpressure` and `Stopped` (when returned before the
/// proposal was accepted) mean it was certainly not applied; `Timeout` and `LeaderLost` mean
/// it may have been applied (or may still be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node is not the leader. Not applied.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// Too much pending; retry later. Not applied.
    Backpressure,
    /// No result within the timeout. May have been applied.
    Timeout,
    /// Leadership changed while the proposal was pending. May have been applied.
    LeaderLost,
    /// The node is shutting down. May have been applied if it was accepted.
    ShuttingDown,
    /// The node stopped participating after a fatal error (disk). Not applied by this node.
    Stopped {
        /// The error.
        reason: String,
    },
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader_hint } => {
                write!(
                    f,
                    "not the leader (leader hint: {leader_hint:?}); not applied"
                )
            }
            ProposeError::Backpressure => write!(f, "too many pending proposals; not applied"),
            ProposeError::Timeout => write!(f, "timed out; the command may have been applied"),
            ProposeError::LeaderLost => {
                write!(f, "leadership changed; the command may have been applied")
            }
            ProposeError::ShuttingDown => write!(f, "node shutting down"),
            ProposeError::Stopped { reason } => write!(f, "node stopped participating: {reason}"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// Why a read failed; reads change nothing, so all of these are safe to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// No leader is known.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// Too many reads pending.
    Backpressure,
    /// No answer within the timeout (leadership may have changed).
    Timeout,
    /// The node is shutting down.
    ShuttingDown,
    /// The node stopped participating after a fatal error.
    Stopped {
        /// The error.
        reason: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotLeader { leader_hint } => {
                write!(f, "no leader to confirm the read (hint: {leader_hint:?})")
            }
            ReadError::Backpressure => write!(f, "too many pending reads"),
            ReadError::Timeout => write!(f, "read timed out"),
            ReadError::ShuttingDown => write!(f, "node shutting down"),
            ReadError::Stopped { reason } => write!(f, "node stopped participating: {reason}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Why a node could not start or stopped badly.
#[derive(Debug)]
pub enum NodeError {
    /// The data directory could not be opened or loaded.
    Storage(StorageError),
    /// The configuration is invalid.
    Config(String),
    /// A socket or the poller failed at start.
    Io(std::io::Error),
    /// Threads reported errors or panicked; each entry names the thread.
    Threads(Vec<String>),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Storage(e) => write!(f, "{e}"),
            NodeError::Config(e) => write!(f, "invalid node configuration: {e}"),
            NodeError::Io(e) => write!(f, "node I/O: {e}"),
            NodeError::Threads(errors) => write!(f, "node threads failed: {}", errors.join("; ")),
        }
    }
}

impl std::error::Error for NodeError {}

/// A request from an API caller to the loop.
#[derive(Debug)]
pub(crate) enum Request {
    /// Propose a command.
    Propose {
        /// The command.
        data: Vec<u8>,
        /// Where the result goes.
        done: ProposeCompletion,
        /// When the proposal times out (its submission plus the propose timeout).
        deadline: Instant,
    },
    /// A linearizable read.
    Read {
        /// The query.
        query: Vec<u8>,
        /// Where the answer goes.
        done: ReadCompletion,
        /// When the read times out (its submission plus the read timeout).
        deadline: Instant,
    },
    /// Test hook: drop every peer message in and out (a network partition of this node).
    SetIsolated(bool),
    /// A membership change (see `membership`).
    ChangeMembership {
        /// The change.
        change: ConfChange,
        /// The peer address of the node the change adds, if it adds one.
        peer_addr: Option<SocketAddr>,
        /// Where the answer goes.
        done: ChangeCompletion,
        /// When the change answers `Timeout`.
        deadline: Instant,
    },
    /// A leadership transfer to `target`.
    TransferLeader {
        /// The node to lead.
        target: NodeId,
        /// Where the answer goes.
        done: ChangeCompletion,
        /// When the transfer answers `Timeout`.
        deadline: Instant,
    },
}

/// Where a node stands, published by the loop after every iteration.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: u64,
    /// Applied index (the apply thread's).
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Per-follower progress (leader only).
    pub progress: BTreeMap<NodeId, PeerProgress>,
    /// The log writer's counters: fsyncs, entries, batch-size histogram.
    pub writer: WriterStats,
    /// Transport counters.
    pub transport: TransportStats,
    /// The core's counters.
    pub raft_stats: Stats,
    /// Peers with an established outbound connection.
    pub connected_peers: Vec<NodeId>,
    /// False after a fatal error: the node no longer votes or acknowledges.
    pub participating: bool,
    /// True while this leader's log write is pending past `disk_stall_timeout`.
    pub disk_stalled: bool,
    /// The fatal error, if any.
    pub last_error: Option<String>,
    /// The bound peer address.
    pub listen_addr: SocketAddr,
    /// Every member of the configuration in force (joint: both halves), by id.
    pub members: BTreeMap<NodeId, MemberStatus>,
    /// Proposals this node forwarded to the leader and still waits on.
    pub forwards_in_flight: usize,
    /// The configuration in force (the latest in the log; joint: both halves).
    pub membership: Membership,
    /// The latest committed configuration.
    pub committed_membership: Membership,
    /// True once this node learned it was removed from the cluster: it no longer
    /// participates (`participating` is false).
    pub removed: bool,
}

/// One member of the configuration, as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its peer address, if this node's configuration names one.
    pub peer_addr: Option<SocketAddr>,
    /// Whether it votes (in either half of a joint configuration); false for a learner.
    pub voter: bool,
}

/// A proposal in flight, from [`Node::submit`].
#[derive(Debug)]
pub struct Proposal {
    result: Receiver<Result<Vec<u8>, ProposeError>>,
    deadline: Instant,
}

impl Proposal {
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
        if !config.peers.contains_key(&config.id) {
            return Err(NodeError::Config(format!(
                "peers must include this node ({})",
                config.id
            )));
        }
        let voters = if config.join {
            std::collections::BTreeSet::new()
        } else {
            config.peers.keys().copied().collect()
        };
        let mut loaded =
            load(data_dir.as_ref(), &voters, config.wal.clone()).map_err(NodeError::Storage)?;
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
        let core = Core::new(raft.clone(), loaded.durable)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        // Addresses: the configured ones, then those learned from membership changes (the
        // address book file, then the log's address entries, newest last).
        let book_path = address_book_path(data_dir.as_ref());
        let mut peer_addrs = config.peers.clone();
        peer_addrs.extend(read_address_book(&book_path).map_err(NodeError::Config)?);
        peer_addrs.extend(addresses_in_log(core.log()));
        let dialed = dialed_peers(core.membership(), &peer_addrs);

        let poll = Poll::new().map_err(NodeError::Io)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN).map_err(NodeError::Io)?);
        let std_listener =
            std::net::TcpListener::bind(config.listen_addr).map_err(NodeError::Io)?;
        std_listener.set_nonblocking(true).map_err(NodeError::Io)?;
        let listen_addr = std_listener.local_addr().map_err(NodeError::Io)?;
        let mut listener = mio::net::TcpListener::from_std(std_listener);
        poll.registry()
            .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)
            .map_err(NodeError::Io)?;
        let max_frame = raft.max_message_bytes.max(raft.snapshot_chunk_bytes) * 2 + (64 << 10);
        let transport = Transport::new(
            config.id,
            config.cluster_id,
            &dialed,
            listener,
            u32::try_from(max_frame).unwrap_or(u32::MAX),
            config.peer_queue_bytes_max,
        );

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
            members: members_of(core.membership(), &peer_addrs),
            forwards_in_flight: 0,
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
        let event_loop = EventLoop {
            core,
            poll,
            transport,
            tick_interval: config.tick_interval,
            max_pending_proposals: config.max_pending_proposals,
            propose_timeout: config.propose_timeout,
            waker: Arc::clone(&waker),
            peer_addrs,
            address_book_path: book_path,
            disk_stall_timeout: config.disk_stall_timeout,
            append_merge_bytes_max: raft.max_message_bytes,
            inbox: inbox_rx,
            writer_tx,
            writer_shared,
            apply_tx,
            apply_shared,
            snapshots: loaded.snapshots,
            stop: Arc::clone(&stop),
            status: Arc::clone(&status),
        };
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

/// The peers the transport dials: the members of `membership` with a known address, or every
/// known address while this node has no configuration yet (it joins, see `membership`).
pub(crate) fn dialed_peers(
    membership: &Membership,
    peer_addrs: &BTreeMap<NodeId, SocketAddr>,
) -> BTreeMap<NodeId, SocketAddr> {
    if membership.is_unknown() {
        return peer_addrs.clone();
    }
    let members = membership.all_members();
    peer_addrs
        .iter()
        .filter(|(id, _)| members.contains(id))
        .map(|(id, addr)| (*id, *addr))
        .collect()
}

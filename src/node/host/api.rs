//! [`Host`] and [`Group`]: starting a host, creating and removing its groups, and each group's
//! client calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ketch_storage::LogStore;
use mio::{Interest, Poll, Waker};

use super::apply::{ApplyShared, ApplyWorker, APPLY_QUEUE_ITEMS};
use super::catalog::GroupCatalog;
use super::config::HostConfig;
use super::event_loop::{HostLoop, LoopLinks, LoopSettings};
use super::log_writer::{HostLogWriter, WriterShared, WRITER_QUEUE_ITEMS};
use super::request::HostRequest;
use super::snapshots::GroupSnapshots;
use super::status::{GroupStatus, HostStatus};
use crate::node::api::Proposal;
use crate::node::completion::{ProposeCompletion, ReadCompletion};
use crate::node::durable_state::{
    from_storage_entry, from_storage_hard_state, membership_bytes, raft_snapshot_meta,
};
use crate::node::errors::{NodeError, ProposeError, ReadError};
use crate::node::membership_change::{ChangeCompletion, ChangeError};
use crate::node::transport::{Transport, LISTENER_TOKEN, WAKER_TOKEN};
use crate::node::StateMachine;
use crate::raft::{ConfChange, Core, DurableState, GroupId, Membership, NodeId, SnapshotMeta};
use crate::wire::frame::{HEADER_BYTES, MAX_FRAME_PAYLOAD_BYTES};

/// Requests the loop's inbox holds.
const INBOX_REQUESTS: usize = 8192;
/// Extra wait over a request's own deadline (the loop answers by the deadline itself).
const WAIT_MARGIN: Duration = Duration::from_secs(1);
/// Bytes an entry's framing adds to its data on the wire.
const ENTRY_OVERHEAD_BYTES: u64 = 64;
/// The shared log's directory inside the data directory.
const LOG_DIR: &str = "log";

/// Builds a group's state machine (see [`Host::start`]).
pub type StateMachineFactory = dyn Fn(GroupId) -> Box<dyn StateMachine> + Send + Sync;

/// What the API threads share with each other and with every [`Group`] handle.
struct HostLink {
    id: NodeId,
    inbox: SyncSender<HostRequest>,
    waker: Arc<Waker>,
    propose_timeout: Duration,
    read_timeout: Duration,
}

impl HostLink {
    fn send_blocking(&self, request: HostRequest) -> Result<(), NodeError> {
        self.inbox
            .send(request)
            .map_err(|_| NodeError::Config("the host is shutting down".into()))?;
        let _ = self.waker.wake();
        Ok(())
    }
}

/// A process's host of many Raft groups: one data directory, one shared log (`LogStore`),
/// one peer connection per peer host, and a fixed set of threads (the event loop, the log
/// writer and `HostConfig::apply_workers` apply workers), whatever the number of groups.
/// See the module docs of `crate::node::host`.
pub struct Host {
    link: Arc<HostLink>,
    config: HostConfig,
    catalog: Mutex<GroupCatalog>,
    factory: Box<StateMachineFactory>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<HostStatus>>,
    threads: Vec<(String, JoinHandle<Result<(), String>>)>,
    data_dir: PathBuf,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host").field("id", &self.link.id).finish()
    }
}

/// A handle on one group of a [`Host`]: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Group {
    id: GroupId,
    link: Arc<HostLink>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("host", &self.link.id)
            .finish()
    }
}

/// A group as loaded from the data directory at start.
struct LoadedGroup {
    core: Core,
    state_machine: Box<dyn StateMachine>,
    applied: (u64, u64),
}

impl Host {
    /// Opens `data_dir` (creating it), brings back every group its catalog holds (each state
    /// machine built by `factory` and restored from the group's newest snapshot and log), binds
    /// the peer listener and starts the threads.
    ///
    /// A data directory written by a single-group `Node` is refused, with a message saying so.
    pub fn start<F, S>(
        config: HostConfig,
        data_dir: impl AsRef<Path>,
        factory: F,
    ) -> Result<Host, NodeError>
    where
        F: Fn(GroupId) -> S + Send + Sync + 'static,
        S: StateMachine + Send + 'static,
    {
        config.validate().map_err(NodeError::Config)?;
        let data_dir = data_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&data_dir).map_err(NodeError::Io)?;
        refuse_node_data_dir(&data_dir)?;
        let factory: Box<StateMachineFactory> = Box::new(move |group| Box::new(factory(group)));
        let catalog = GroupCatalog::open(&data_dir).map_err(NodeError::Config)?;
        let store = LogStore::open_with(
            data_dir.join(LOG_DIR),
            config.log.clone(),
            config.store.clone(),
        )
        .map_err(|e| NodeError::Storage(e.into()))?;
        let snapshots = GroupSnapshots::new(&data_dir);
        // Data of a group removed (or never recorded) is dropped: a crash can fall between the
        // tombstone and the removal.
        for group in store.groups() {
            if catalog.voters(group).is_none() {
                log::info!(
                    "host {}: dropping the log of group {group}, which this host no longer holds",
                    config.id
                );
                store
                    .remove_group(group)
                    .map_err(|e| NodeError::Storage(e.into()))?;
                snapshots.remove(group).map_err(NodeError::Config)?;
            }
        }
        store.sync().map_err(|e| NodeError::Storage(e.into()))?;
        let mut loaded = Vec::new();
        let started = Instant::now();
        for (group, voters) in catalog.groups() {
            let group_loaded = load_group(&config, &store, &snapshots, &*factory, *group, voters)?;
            loaded.push((*group, group_loaded));
        }
        if !loaded.is_empty() {
            log::info!(
                "host {}: loaded {} groups in {:?}",
                config.id,
                loaded.len(),
                started.elapsed()
            );
        }
        let store = Arc::new(store);
        let poll = Poll::new().map_err(NodeError::Io)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN).map_err(NodeError::Io)?);
        let (transport, listen_addr) = bind_transport(&config, &poll)?;
        let status = Arc::new(Mutex::new(HostStatus {
            id: config.id,
            participating: true,
            listen_addr: Some(listen_addr),
            ..HostStatus::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (writer_tx, writer_rx) = sync_channel(WRITER_QUEUE_ITEMS);
        let (inbox_tx, inbox_rx) = sync_channel(INBOX_REQUESTS);
        let writer_shared = Arc::new(WriterShared::default());
        let apply_shared = Arc::new(ApplyShared::new(config.apply_workers));
        let id = config.id;
        let mut threads = Vec::new();
        let spawn = |name: String,
                     threads: &mut Vec<(String, JoinHandle<Result<(), String>>)>,
                     f: Box<dyn FnOnce() -> Result<(), String> + Send>|
         -> Result<(), NodeError> {
            let handle = std::thread::Builder::new()
                .name(format!("ketch-h{id}-{name}"))
                .spawn(f)
                .map_err(NodeError::Io)?;
            threads.push((name, handle));
            Ok(())
        };
        let writer = HostLogWriter::new(
            Arc::clone(&store),
            snapshots.clone(),
            Arc::clone(&writer_shared),
            Arc::clone(&waker),
        );
        spawn(
            "writer".into(),
            &mut threads,
            Box::new(move || writer.run(writer_rx)),
        )?;
        let mut apply_txs = Vec::new();
        for worker in 0..config.apply_workers {
            let (tx, rx) = sync_channel(APPLY_QUEUE_ITEMS);
            apply_txs.push(tx);
            let applier = ApplyWorker::new(
                worker,
                snapshots.clone(),
                Arc::clone(&apply_shared),
                Arc::clone(&waker),
            );
            spawn(
                format!("apply-{worker}"),
                &mut threads,
                Box::new(move || applier.run(rx)),
            )?;
        }
        let settings = LoopSettings {
            tick_interval: config.tick_interval,
            max_pending_proposals: config.max_pending_proposals,
            max_pending_reads: config.max_pending_reads,
            append_merge_bytes_max: config.raft.max_message_bytes,
            max_proposal_bytes: config.max_proposal_bytes,
            propose_timeout: config.propose_timeout,
            election_timeout_ticks: u64::from(config.raft.election_timeout_ticks),
            quiesce_after_ticks: config.quiesce_after_ticks,
            host_beat_interval_ticks: u64::from(config.raft.heartbeat_interval_ticks.max(1)),
            disk_stall_timeout: config.disk_stall_timeout,
            snapshot_bytes_per_sec: config.snapshot_bytes_per_sec,
            proposal_stamp: config.proposal_stamp.clone(),
        };
        let links = LoopLinks {
            inbox: inbox_rx,
            writer_tx,
            writer_shared,
            apply_txs,
            apply_shared,
            snapshots,
            waker: Arc::clone(&waker),
            stop: Arc::clone(&stop),
            status: Arc::clone(&status),
        };
        let mut host_loop = HostLoop::new(id, poll, transport, settings, links);
        for (group, group_loaded) in loaded {
            host_loop
                .add_group(
                    group,
                    group_loaded.core,
                    group_loaded.state_machine,
                    group_loaded.applied,
                )
                .map_err(NodeError::Config)?;
        }
        spawn(
            "loop".into(),
            &mut threads,
            Box::new(move || host_loop.run()),
        )?;
        log::info!("host {id}: started, listening for peers on {listen_addr}");
        Ok(Host {
            link: Arc::new(HostLink {
                id,
                inbox: inbox_tx,
                waker,
                propose_timeout: config.propose_timeout,
                read_timeout: config.read_timeout,
            }),
            config,
            catalog: Mutex::new(catalog),
            factory,
            stop,
            status,
            threads,
            data_dir,
        })
    }

    /// This host's id.
    pub fn id(&self) -> NodeId {
        self.link.id
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Creates this host's replica of group `group_id`, whose voting replicas are on the hosts
    /// `voters` (this one among them), and returns its handle. The same call is made on each
    /// host in `voters`; the replicas then elect a leader. For a group that exists here it
    /// returns the group's handle (whatever `voters` says). A group removed from this host is
    /// never created again: its id is refused.
    pub fn create_group(&self, group_id: GroupId, voters: &[NodeId]) -> Result<Group, NodeError> {
        let voters: BTreeSet<NodeId> = voters.iter().copied().collect();
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        if catalog.voters(group_id).is_some() {
            return Ok(self.handle(group_id));
        }
        self.check_new_group(&catalog, group_id, &voters)?;
        // Snapshots left by a `create_group_with_state` that crashed before recording the
        // group would otherwise be loaded as this group's at the next start.
        GroupSnapshots::new(&self.data_dir)
            .remove(group_id)
            .map_err(NodeError::Config)?;
        catalog
            .create(group_id, &voters)
            .map_err(NodeError::Config)?;
        let durable = DurableState {
            hard_state: Default::default(),
            snapshot: SnapshotMeta {
                index: 0,
                term: 0,
                membership: Membership::with_voters(voters.iter().copied()),
                size_bytes: 0,
            },
            entries: Vec::new(),
        };
        let state_machine = (self.factory)(group_id);
        self.add_group(group_id, durable, state_machine, (0, 0))
    }

    /// Creates this host's replica of group `group_id` as [`Host::create_group`] does, but
    /// starting from a state instead of from nothing: `state` writes the state machine's
    /// state (as [`StateMachine::snapshot`] would), which becomes the group's snapshot at log
    /// position (`index`, `term`), both at least 1; the group's log continues at `index + 1`.
    ///
    /// The hosts of `voters` that make the same call with the same state start as identical
    /// replicas, with nothing sent over the network: how a range split hands the new group
    /// its half (TiKV starts a split region at a fixed first index the same way). A voter
    /// that calls [`Host::create_group`] instead starts empty, cannot win an election
    /// against the others (its log is behind), and is sent the group's snapshot by its
    /// leader.
    ///
    /// The snapshot is written and synced, then the group recorded in the catalog, so a crash
    /// leaves either no group (and at most an unused snapshot directory) or the whole one.
    /// For a group that exists here it returns the group's handle, and `state` is not called.
    pub fn create_group_with_state(
        &self,
        group_id: GroupId,
        voters: &[NodeId],
        index: u64,
        term: u64,
        state: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<Group, NodeError> {
        if index == 0 || term == 0 {
            return Err(NodeError::Config(format!(
                "group {group_id}: a group created with a state starts at index and term 1 or \
                 more, got index {index} term {term}"
            )));
        }
        let voters: BTreeSet<NodeId> = voters.iter().copied().collect();
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        if catalog.voters(group_id).is_some() {
            return Ok(self.handle(group_id));
        }
        self.check_new_group(&catalog, group_id, &voters)?;
        let membership = Membership::with_voters(voters.iter().copied());
        let snapshots = GroupSnapshots::new(&self.data_dir);
        // Whatever an earlier attempt that crashed left (see `create_group`).
        snapshots.remove(group_id).map_err(NodeError::Config)?;
        let store = snapshots.store(group_id).map_err(NodeError::Config)?;
        let mut writer = store
            .begin(
                index,
                term,
                &membership_bytes(&membership, &BTreeMap::new()),
            )
            .map_err(|e| NodeError::Storage(e.into()))?;
        state(&mut writer).map_err(|e| {
            NodeError::Config(format!("group {group_id}: writing its initial state: {e}"))
        })?;
        let file_meta = writer.finish().map_err(|e| NodeError::Storage(e.into()))?;
        let snapshot = raft_snapshot_meta(&file_meta).map_err(NodeError::Storage)?;
        // Restored from the file just written, as a restart would: what runs is what is on
        // disk.
        let mut state_machine = (self.factory)(group_id);
        let mut reader = store
            .open_reader(&file_meta)
            .map_err(|e| NodeError::Storage(e.into()))?;
        state_machine.restore(&mut reader).map_err(|e| {
            NodeError::Config(format!(
                "group {group_id}: restoring its initial state: {e}"
            ))
        })?;
        reader.finish().map_err(|e| NodeError::Storage(e.into()))?;
        catalog
            .create(group_id, &voters)
            .map_err(NodeError::Config)?;
        let durable = DurableState {
            hard_state: Default::default(),
            snapshot,
            entries: Vec::new(),
        };
        self.add_group(group_id, durable, state_machine, (index, term))
    }

    /// Refuses a group this host may not create: removed before, without this host among its
    /// voters, with a voter that is not a configured host, or past `max_groups`.
    fn check_new_group(
        &self,
        catalog: &GroupCatalog,
        group_id: GroupId,
        voters: &BTreeSet<NodeId>,
    ) -> Result<(), NodeError> {
        if catalog.is_removed(group_id) {
            return Err(NodeError::Config(format!(
                "group {group_id} was removed from host {}; a removed group id is never reused",
                self.link.id
            )));
        }
        if !voters.contains(&self.link.id) {
            return Err(NodeError::Config(format!(
                "group {group_id}: voters {voters:?} do not include this host ({})",
                self.link.id
            )));
        }
        if let Some(unknown) = voters.iter().find(|v| !self.config.peers.contains_key(v)) {
            return Err(NodeError::Config(format!(
                "group {group_id}: voter {unknown} is not one of the hosts in the configuration"
            )));
        }
        if catalog.groups().len() >= self.config.max_groups {
            return Err(NodeError::Config(format!(
                "host {} holds {} groups, its limit (HostConfig::max_groups)",
                self.link.id,
                catalog.groups().len()
            )));
        }
        Ok(())
    }

    /// Hands a group just recorded in the catalog to the loop.
    fn add_group(
        &self,
        group_id: GroupId,
        durable: DurableState,
        state_machine: Box<dyn StateMachine + Send>,
        applied: (u64, u64),
    ) -> Result<Group, NodeError> {
        let core = Core::new(group_raft_config(&self.config, group_id), durable)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let (done, answer) = sync_channel(1);
        self.link.send_blocking(HostRequest::Add {
            group: group_id,
            core: Box::new(core),
            state_machine,
            applied,
            done,
        })?;
        match answer.recv() {
            Ok(Ok(())) => Ok(self.handle(group_id)),
            Ok(Err(e)) => Err(NodeError::Config(e)),
            Err(_) => Err(NodeError::Config("the host is shutting down".into())),
        }
    }

    /// The handle of group `group_id`, if this host holds it.
    pub fn group(&self, group_id: GroupId) -> Option<Group> {
        let catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        catalog.voters(group_id).map(|_| self.handle(group_id))
    }

    /// The groups this host holds, ascending.
    pub fn groups(&self) -> Vec<GroupId> {
        let catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        catalog.groups().keys().copied().collect()
    }

    fn handle(&self, group_id: GroupId) -> Group {
        Group {
            id: group_id,
            link: Arc::clone(&self.link),
        }
    }

    /// Removes this host's replica of `group_id`: its tombstone is made durable first (so the
    /// group never comes back, not even after a crash in the middle), then the loop stops it,
    /// answers its waiting clients, and the log writer deletes its log and snapshots. This is
    /// not a membership change: remove the replica from the group's configuration first, or
    /// the other replicas keep counting it. Removing a group this host does not hold is a no-op.
    pub fn remove_group(&self, group_id: GroupId) -> Result<(), NodeError> {
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        if catalog.voters(group_id).is_none() {
            return Ok(());
        }
        catalog.remove(group_id).map_err(NodeError::Config)?;
        let (done, answer) = sync_channel(1);
        self.link.send_blocking(HostRequest::Remove {
            group: group_id,
            done,
        })?;
        answer
            .recv()
            .map_err(|_| NodeError::Config("the host is shutting down".into()))
    }

    /// Where the host stands: group, leader and quiesced counts, log writer and transport
    /// counters.
    pub fn status(&self) -> HostStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops every thread and joins them: the loop first, then the log writer (which writes
    /// and syncs all it was given) and the apply workers. Returns every thread's error or
    /// panic.
    pub fn shutdown(mut self) -> Result<(), NodeError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), NodeError> {
        self.stop.store(true, Ordering::Release);
        let _ = self.link.waker.wake();
        let mut threads = std::mem::take(&mut self.threads);
        // The loop first: it owns the senders whose drop ends the others.
        threads.sort_by_key(|(name, _)| u8::from(name != "loop"));
        let mut errors = Vec::new();
        for (name, handle) in threads {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) if name == "writer" => errors.push(format!(
                    "writer thread: the shared log was poisoned earlier by a failed write or \
                     fsync, and every group on the host stopped then (a failed write is never \
                     retried; restart the host once the disk is fixed): {e}"
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
        log::info!("host {}: stopped", self.link.id);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(NodeError::Threads(errors))
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            if let Err(e) = self.stop_and_join() {
                log::error!("host {}: {e}", self.link.id);
            }
        }
    }
}

impl Group {
    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// Proposes `command` and waits (up to the host's propose timeout) for the state
    /// machine's result. On a follower the proposal is forwarded to the group's leader that
    /// this replica knows, and the result is the one the leader's state machine gave. The
    /// errors say whether it may have been applied: `NotLeader` (no leader known, or none
    /// reachable), `Backpressure` and `Stopped` mean certainly not; `LeaderLost`, `Timeout`
    /// and `ShuttingDown` mean it may have been ([`ProposeError`] has the rule).
    /// Nothing is retried: exactly-once belongs to the state machine (sessions).
    pub fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>, ProposeError> {
        self.submit(command).wait()
    }

    /// Proposes `command` without waiting: the returned [`Proposal`] resolves to the result.
    pub fn submit(&self, command: Vec<u8>) -> Proposal {
        let (reply, result) = sync_channel(1);
        let deadline = Instant::now() + self.link.propose_timeout;
        self.submit_until(command, deadline, move |answer| {
            let _ = reply.try_send(answer);
        });
        Proposal::new(result, deadline)
    }

    /// Proposes `command`; `done` runs exactly once with the result, on a host thread (it must
    /// be cheap and must not block). Refused at the inbox: at once, on the caller's thread.
    pub fn submit_with(
        &self,
        command: Vec<u8>,
        done: impl FnOnce(Result<Vec<u8>, ProposeError>) + Send + 'static,
    ) {
        let deadline = Instant::now() + self.link.propose_timeout;
        self.submit_until(command, deadline, done);
    }

    fn submit_until(
        &self,
        command: Vec<u8>,
        deadline: Instant,
        done: impl FnOnce(Result<Vec<u8>, ProposeError>) + Send + 'static,
    ) {
        let request = HostRequest::Propose {
            group: self.id,
            data: command,
            done: ProposeCompletion::proposal(done),
            deadline,
        };
        let (refused, error) = match self.link.inbox.try_send(request) {
            Ok(()) => {
                let _ = self.link.waker.wake();
                return;
            }
            Err(TrySendError::Full(request)) => (request, ProposeError::Backpressure),
            Err(TrySendError::Disconnected(request)) => (request, ProposeError::ShuttingDown),
        };
        if let HostRequest::Propose { done, .. } = refused {
            done.complete(Err(error));
        }
    }

    /// A linearizable read (ReadIndex, thesis §6.4), answered on this host once it applied
    /// up to the read index the leader confirmed.
    pub fn read(&self, query: Vec<u8>) -> Result<Vec<u8>, ReadError> {
        let (reply, result) = sync_channel(1);
        self.read_with(query, move |answer| {
            let _ = reply.try_send(answer);
        });
        match result.recv_timeout(self.link.read_timeout + WAIT_MARGIN) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => Err(ReadError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ReadError::ShuttingDown),
        }
    }

    /// A linearizable read like [`Group::read`]; `done` runs exactly once with the answer.
    pub fn read_with(
        &self,
        query: Vec<u8>,
        done: impl FnOnce(Result<Vec<u8>, ReadError>) + Send + 'static,
    ) {
        let request = HostRequest::Read {
            group: self.id,
            query,
            done: ReadCompletion::read(done),
            deadline: Instant::now() + self.link.read_timeout,
        };
        let (refused, error) = match self.link.inbox.try_send(request) {
            Ok(()) => {
                let _ = self.link.waker.wake();
                return;
            }
            Err(TrySendError::Full(request)) => (request, ReadError::Backpressure),
            Err(TrySendError::Disconnected(request)) => (request, ReadError::ShuttingDown),
        };
        if let HostRequest::Read { done, .. } = refused {
            done.complete(Err(error));
        }
    }

    /// Where this host's replica of the group stands; `None` once the group is gone from the
    /// host (or the host is shutting down).
    pub fn status(&self) -> Option<GroupStatus> {
        let (done, answer) = sync_channel(1);
        let request = HostRequest::Status {
            group: self.id,
            done,
        };
        if self.link.inbox.send(request).is_err() {
            return None;
        }
        let _ = self.link.waker.wake();
        answer.recv_timeout(self.link.read_timeout).ok().flatten()
    }

    /// Changes the group's membership through this host's replica, which must lead (a
    /// follower answers `NotLeader` with its hint). Members are host ids. `done` runs once:
    /// `Ok` when the configuration the change leads to is committed.
    pub fn change_membership(
        &self,
        change: ConfChange,
        done: impl FnOnce(Result<(), ChangeError>) + Send + 'static,
    ) {
        let request = HostRequest::ChangeMembership {
            group: self.id,
            change,
            done: ChangeCompletion::new(done),
            deadline: Instant::now() + self.link.propose_timeout,
        };
        self.send_admin(request);
    }

    /// Transfers the group's leadership to the replica on host `target`; `done` runs once:
    /// `Ok` when `target` leads.
    pub fn transfer_leadership(
        &self,
        target: NodeId,
        done: impl FnOnce(Result<(), ChangeError>) + Send + 'static,
    ) {
        let request = HostRequest::TransferLeader {
            group: self.id,
            target,
            done: ChangeCompletion::new(done),
            deadline: Instant::now() + self.link.propose_timeout,
        };
        self.send_admin(request);
    }

    fn send_admin(&self, request: HostRequest) {
        match self.link.inbox.try_send(request) {
            Ok(()) => {
                let _ = self.link.waker.wake();
            }
            Err(TrySendError::Full(request) | TrySendError::Disconnected(request)) => {
                let reason = "the host's inbox is full or the host is shutting down".to_string();
                if let HostRequest::ChangeMembership { done, .. }
                | HostRequest::TransferLeader { done, .. } = request
                {
                    done.complete(Err(ChangeError::Stopped { reason }));
                }
            }
        }
    }
}

/// The core configuration of `group` on this host.
fn group_raft_config(config: &HostConfig, group: GroupId) -> crate::raft::Config {
    let mut raft = config.raft.clone();
    raft.id = config.id;
    // Groups created together must not time out together: each gets its own jitter.
    raft.seed ^= group.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    raft.max_uncommitted_bytes = raft.max_uncommitted_bytes.max(
        config
            .max_proposal_bytes
            .saturating_add(ENTRY_OVERHEAD_BYTES)
            * 2,
    );
    raft
}

/// Loads `group` from the shared log and its snapshots: the newest valid snapshot is the base
/// (none: index 0 and the group's first voters), the log is brought in line with it, and the
/// entries after it become the core's.
fn load_group(
    config: &HostConfig,
    store: &LogStore,
    snapshots: &GroupSnapshots,
    factory: &StateMachineFactory,
    group: GroupId,
    voters: &BTreeSet<NodeId>,
) -> Result<LoadedGroup, NodeError> {
    let mut state_machine = factory(group);
    let mut snapshot = SnapshotMeta {
        index: 0,
        term: 0,
        membership: Membership::with_voters(voters.iter().copied()),
        size_bytes: 0,
    };
    if snapshots.exists(group) {
        let snapshot_store = snapshots.store(group).map_err(NodeError::Config)?;
        if let Some(mut reader) = snapshot_store
            .open_latest_valid()
            .map_err(|e| NodeError::Storage(e.into()))?
        {
            snapshot = raft_snapshot_meta(reader.meta()).map_err(NodeError::Storage)?;
            state_machine.restore(&mut reader).map_err(|e| {
                NodeError::Config(format!(
                    "group {group}: restoring snapshot {}: {e}",
                    snapshot.index
                ))
            })?;
            reader.finish().map_err(|e| NodeError::Storage(e.into()))?;
        }
    }
    if snapshot.index > 0 || store.first_index(group) > 1 {
        if store.first_index(group) > snapshot.index + 1 {
            return Err(NodeError::Config(format!(
                "group {group}: the log starts at index {} but the newest valid snapshot ends at \
                 {}: entries in between are lost (a newer snapshot is probably damaged)",
                store.first_index(group),
                snapshot.index
            )));
        }
        store
            .apply_snapshot(group, snapshot.index, snapshot.term)
            .map_err(|e| NodeError::Storage(e.into()))?;
    }
    let first = store.first_index(group).max(snapshot.index + 1);
    let last = store.last_index(group);
    let mut entries = Vec::new();
    if last >= first {
        for entry in store
            .entries(group, first..last + 1)
            .map_err(|e| NodeError::Storage(e.into()))?
        {
            entries.push(from_storage_entry(entry).map_err(NodeError::Storage)?);
        }
    }
    let applied = (snapshot.index, snapshot.term);
    let durable = DurableState {
        hard_state: from_storage_hard_state(store.hard_state(group)),
        snapshot,
        entries,
    };
    let (log_first, log_last) = (store.first_index(group), store.last_index(group));
    let snapshot_at = durable.snapshot.index;
    let core = Core::new(group_raft_config(config, group), durable).map_err(|e| {
        NodeError::Config(format!(
            "group {group}: {e} (snapshot at index {snapshot_at}, log holds {log_first}..={log_last})"
        ))
    })?;
    Ok(LoadedGroup {
        core,
        state_machine,
        applied,
    })
}

/// A single-group `Node` keeps its log segments and snapshots at the top of its data
/// directory; a host keeps them under `log/` and `snapshots/`. Opening one as the other would
/// lose the node's state silently, so it is refused.
fn refuse_node_data_dir(data_dir: &Path) -> Result<(), NodeError> {
    let entries = std::fs::read_dir(data_dir).map_err(NodeError::Io)?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(ketch_storage::segment::SEGMENT_SUFFIX)
            || (name.starts_with("snap-") && name.ends_with(".snap"))
        {
            return Err(NodeError::Config(format!(
                "{} holds the data of a single-group node ({name}); a host cannot open it. \
                 Keep running it with `Node`, or start the host in a new directory and move the \
                 data over through the group's replication (add the host as a learner)",
                data_dir.display()
            )));
        }
    }
    Ok(())
}

/// Binds the peer listener on `poll`; the transport dials every other host.
fn bind_transport(config: &HostConfig, poll: &Poll) -> Result<(Transport, SocketAddr), NodeError> {
    let std_listener = std::net::TcpListener::bind(config.listen_addr).map_err(NodeError::Io)?;
    std_listener.set_nonblocking(true).map_err(NodeError::Io)?;
    let listen_addr = std_listener.local_addr().map_err(NodeError::Io)?;
    let mut listener = mio::net::TcpListener::from_std(std_listener);
    poll.registry()
        .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)
        .map_err(NodeError::Io)?;
    let raft = &config.raft;
    let max_frame = (raft.max_message_bytes.max(raft.snapshot_chunk_bytes) * 2)
        .max(
            config
                .max_proposal_bytes
                .saturating_add(ENTRY_OVERHEAD_BYTES),
        )
        .saturating_add(64 << 10);
    if max_frame > u64::from(MAX_FRAME_PAYLOAD_BYTES) {
        return Err(NodeError::Config(format!(
            "max_proposal_bytes {} needs frames above the {MAX_FRAME_PAYLOAD_BYTES} byte \
             protocol maximum",
            config.max_proposal_bytes
        )));
    }
    let queue_bytes_max = config
        .peer_queue_bytes_max
        .max(usize::try_from(max_frame).unwrap_or(usize::MAX) + HEADER_BYTES);
    let transport = Transport::new(
        config.id,
        config.cluster_id,
        &config.peers,
        listener,
        u32::try_from(max_frame).unwrap_or(u32::MAX),
        queue_bytes_max,
        config.peer_security.clone(),
    );
    Ok((transport, listen_addr))
}

//! Batching: within one poll iteration, the writes of all connections go into one write batch
//! (one log entry) and the reads into one query batch (one ReadIndex round), each capped at
//! [`ServerConfig::batch_commands_max`] commands and [`ServerConfig::batch_bytes_max`] bytes
//! (a write larger than that goes in a write batch of its own).
//! A query batch carries this node's [`Clock`] (offset included) from when it was opened:
//! reads hide keys past their deadline by it (see `state`).
//! A batch's result comes back from a node thread through the [`CompletionQueue`], which wakes
//! the connection loop.
//!
//! Each lane of the [`Backend`] (one Raft group) has batches of its own: a write batch is one
//! entry in one group's log, so commands for different groups never share a batch.
//! `submit_writes` and `submit_reads` send the open batches of every lane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mio::Waker;

use super::backend::{Backend, RangeCheck};
use super::config::ServerConfig;
use super::error_reply::{propose_error_text, read_error_text};
use crate::kv::admin::{change_reply, AdminCommand};
use crate::kv::clock::Clock;
use crate::kv::command::{
    Query, QueryBatchEncoder, Write as KvWrite, WriteBatchEncoder, QUERIES_PER_BATCH_MAX,
    WRITES_PER_BATCH_MAX,
};
use crate::node::ChangeError;

/// Where a batched command's reply goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    /// The lane (group) the command goes to.
    pub(super) lane: usize,
    /// What the lane's group checks of its route (see `backend::LaneRoute`).
    pub(super) check: Option<RangeCheck>,
    pub(super) slot: usize,
    pub(super) generation: u64,
    pub(super) reply_no: u64,
    /// The connection-session sequence number, for writes in the connection's own session.
    pub(super) seq: Option<u64>,
}

/// A batch's result list, or the error reply text, by the error rule, for every command of the
/// batch.
pub(super) type BatchResult = Result<Vec<u8>, String>;

/// Results coming back from node threads. Bounded by construction: one completion per batch
/// in flight, and batches in flight hold at least one pending reply each.
#[derive(Debug)]
pub(super) struct CompletionQueue {
    items: Mutex<Vec<Completion>>,
    waker: Waker,
}

#[derive(Debug)]
struct Completion {
    batch_id: u64,
    result: BatchResult,
}

impl CompletionQueue {
    fn new(waker: Waker) -> Self {
        CompletionQueue {
            items: Mutex::new(Vec::new()),
            waker,
        }
    }

    fn push(&self, completion: Completion) {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(completion);
        let _ = self.waker.wake();
    }

    /// Wakes the connection loop with nothing new (to stop it).
    pub(super) fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// A batch whose result came back.
pub(super) struct FinishedBatch {
    /// Where its replies go, in command order.
    pub(super) targets: Vec<Target>,
    pub(super) result: BatchResult,
}

/// What differs between the two kinds of batch, writes (one log entry, proposed) and queries
/// (one ReadIndex round); they are filled, capped and sent alike.
trait BatchEncoder: Sized {
    /// One command of the batch.
    type Command<'a>;
    /// Most commands the encoding holds, whatever the configuration allows.
    const COMMANDS_MAX: u32;
    /// An empty batch, stamped with this node's clock.
    fn open(clock_ms: u64) -> Self;
    fn push(&mut self, command: &Self::Command<'_>);
    fn encoded_bytes(&self) -> usize;
    /// Hands the batch to lane `lane` of `backend`, its routes' `check` with it; `done` gets
    /// its result.
    fn send(
        self,
        backend: &dyn Backend,
        lane: usize,
        check: Option<RangeCheck>,
        done: impl FnOnce(BatchResult) + Send + 'static,
    );
}

impl BatchEncoder for WriteBatchEncoder {
    type Command<'a> = KvWrite<'a>;
    const COMMANDS_MAX: u32 = WRITES_PER_BATCH_MAX;

    fn open(clock_ms: u64) -> Self {
        // The leader overwrites the stamp (`NodeConfig::proposal_stamp`); this one only
        // matters if no stamp is installed.
        WriteBatchEncoder::new(clock_ms)
    }

    fn push(&mut self, write: &KvWrite<'_>) {
        WriteBatchEncoder::push(self, write);
    }

    fn encoded_bytes(&self) -> usize {
        WriteBatchEncoder::encoded_bytes(self)
    }

    fn send(
        self,
        backend: &dyn Backend,
        lane: usize,
        check: Option<RangeCheck>,
        done: impl FnOnce(BatchResult) + Send + 'static,
    ) {
        let done = move |result: Result<Vec<u8>, _>| {
            done(result.map_err(|e| propose_error_text(&e)));
        };
        backend.submit(lane, check, self.finish(), Box::new(done));
    }
}

impl BatchEncoder for QueryBatchEncoder {
    type Command<'a> = Query<'a>;
    const COMMANDS_MAX: u32 = QUERIES_PER_BATCH_MAX;

    fn open(clock_ms: u64) -> Self {
        QueryBatchEncoder::new(clock_ms)
    }

    fn push(&mut self, query: &Query<'_>) {
        QueryBatchEncoder::push(self, query);
    }

    fn encoded_bytes(&self) -> usize {
        QueryBatchEncoder::encoded_bytes(self)
    }

    fn send(
        self,
        backend: &dyn Backend,
        lane: usize,
        check: Option<RangeCheck>,
        done: impl FnOnce(BatchResult) + Send + 'static,
    ) {
        let done = move |result: Result<Vec<u8>, _>| {
            done(result.map_err(|e| read_error_text(&e)));
        };
        backend.read(lane, check, self.finish(), Box::new(done));
    }
}

/// A batch being filled: its commands so far, and where each one's reply goes.
#[derive(Debug)]
struct OpenBatch<E> {
    encoder: E,
    targets: Vec<Target>,
    /// What the group checks of its commands' routes (`None` while no command is checked):
    /// one per batch, since the group checks the batch whole.
    check: Option<RangeCheck>,
}

impl<E> OpenBatch<E> {
    /// True if a command routed with `check` cannot join this batch (a route of another
    /// range or epoch: the table changed between the two).
    fn other_route(open: &Option<Self>, check: Option<RangeCheck>) -> bool {
        open.as_ref().is_some_and(|batch| batch.conflicts(check))
    }

    fn conflicts(&self, check: Option<RangeCheck>) -> bool {
        check.is_some() && self.check.is_some() && self.check != check
    }
}

impl<E: BatchEncoder> OpenBatch<E> {
    /// Adds a command to the batch `open` holds, opening one if none is; true if the batch is
    /// now full and must go.
    fn add(
        open: &mut Option<Self>,
        command: &E::Command<'_>,
        target: Target,
        config: &ServerConfig,
    ) -> bool {
        let batch = open.get_or_insert_with(|| OpenBatch {
            encoder: E::open(Clock::with_offset_ms(config.clock_offset_ms).now_ms()),
            targets: Vec::with_capacity(64),
            check: None,
        });
        debug_assert!(!batch.conflicts(target.check));
        if target.check.is_some() {
            batch.check = target.check;
        }
        batch.encoder.push(command);
        batch.targets.push(target);
        batch.targets.len() >= config.batch_commands_max.min(E::COMMANDS_MAX as usize)
            || batch.encoder.encoded_bytes() >= config.batch_bytes_max
    }
}

/// One lane's batches being filled.
#[derive(Debug, Default)]
struct LaneBatches {
    writes: Option<OpenBatch<WriteBatchEncoder>>,
    reads: Option<OpenBatch<QueryBatchEncoder>>,
}

/// Batches being filled and batches in flight.
pub(super) struct Batches {
    backend: Arc<dyn Backend>,
    completions: Arc<CompletionQueue>,
    /// By lane: as many as the backend has.
    lanes: Vec<LaneBatches>,
    inflight: HashMap<u64, Vec<Target>>,
    next_batch_id: u64,
    config: ServerConfig,
}

impl Batches {
    /// Batches for `backend`; `waker` wakes the connection loop when a result comes back.
    pub(super) fn new(backend: Arc<dyn Backend>, waker: Waker, config: ServerConfig) -> Self {
        let lanes = backend.lanes();
        assert!(lanes >= 1, "a backend has at least one lane");
        Batches {
            backend,
            completions: Arc::new(CompletionQueue::new(waker)),
            lanes: (0..lanes).map(|_| LaneBatches::default()).collect(),
            inflight: HashMap::new(),
            next_batch_id: 1,
            config,
        }
    }

    /// What the batches go to.
    pub(super) fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Where node threads hand results back.
    pub(super) fn completions(&self) -> Arc<CompletionQueue> {
        Arc::clone(&self.completions)
    }

    /// The server's configuration.
    pub(super) fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(super) fn add_write(&mut self, write: &KvWrite<'_>, target: Target) {
        let lane = target.lane;
        // A write that would take the open batch past its byte cap goes in a batch of its own,
        // so a batch is at most the cap or one write (which `size_refusal` keeps within the
        // node's entry limit), never the cap plus a large write.
        if self.lanes[lane].writes.as_ref().is_some_and(|open| {
            open.encoder.encoded_bytes() + write.encoded_bytes() > self.config.batch_bytes_max
        }) || OpenBatch::other_route(&self.lanes[lane].writes, target.check)
        {
            self.submit_lane_writes(lane);
        }
        if OpenBatch::add(&mut self.lanes[lane].writes, write, target, &self.config) {
            self.submit_lane_writes(lane);
        }
    }

    pub(super) fn add_read(&mut self, query: &Query<'_>, target: Target) {
        let lane = target.lane;
        if OpenBatch::other_route(&self.lanes[lane].reads, target.check) {
            self.submit_lane_reads(lane);
        }
        if OpenBatch::add(&mut self.lanes[lane].reads, query, target, &self.config) {
            self.submit_lane_reads(lane);
        }
    }

    /// Sends every lane's open write batch.
    pub(super) fn submit_writes(&mut self) {
        for lane in 0..self.lanes.len() {
            self.submit_lane_writes(lane);
        }
    }

    /// Sends every lane's open query batch.
    pub(super) fn submit_reads(&mut self) {
        for lane in 0..self.lanes.len() {
            self.submit_lane_reads(lane);
        }
    }

    fn submit_lane_writes(&mut self, lane: usize) {
        if let Some(batch) = self.lanes[lane].writes.take() {
            self.submit(lane, batch);
        }
    }

    fn submit_lane_reads(&mut self, lane: usize) {
        if let Some(batch) = self.lanes[lane].reads.take() {
            self.submit(lane, batch);
        }
    }

    fn submit<E: BatchEncoder>(&mut self, lane: usize, batch: OpenBatch<E>) {
        let done = self.register_batch(batch.targets);
        batch.encoder.send(&*self.backend, lane, batch.check, done);
    }

    /// Sends a membership change or transfer to the node; its reply is one result.
    pub(super) fn submit_admin(&mut self, command: AdminCommand, target: Target) {
        let done = self.register_batch(vec![target]);
        let changed = move |result: Result<(), ChangeError>| {
            let reply = change_reply(&result);
            // A result list of one (see `command::split_results`): u32 length, bytes.
            let mut list = (reply.len() as u32).to_le_bytes().to_vec();
            list.extend_from_slice(&reply);
            done(Ok(list));
        };
        match command {
            AdminCommand::Change(change, addr) => {
                self.backend
                    .change_membership(change, addr, Box::new(changed))
            }
            AdminCommand::Transfer(id) => self.backend.transfer_leadership(id, Box::new(changed)),
            AdminCommand::Members => changed(Err(ChangeError::Refused {
                reason: "KETCH.MEMBERS is answered locally".to_string(),
            })),
        }
    }

    /// Records a batch about to be sent to the node and whose replies go to `targets`; the
    /// node thread that has its result calls what this returns with it.
    fn register_batch(
        &mut self,
        targets: Vec<Target>,
    ) -> impl FnOnce(BatchResult) + Send + 'static {
        let batch_id = self.next_batch_id;
        self.next_batch_id += 1;
        self.inflight.insert(batch_id, targets);
        let completions = Arc::clone(&self.completions);
        move |result| completions.push(Completion { batch_id, result })
    }

    /// The batches whose result came back since the last call.
    pub(super) fn take_finished(&mut self) -> Vec<FinishedBatch> {
        let items = std::mem::take(
            &mut *self
                .completions
                .items
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let mut finished = Vec::with_capacity(items.len());
        for completion in items {
            let Some(targets) = self.inflight.remove(&completion.batch_id) else {
                log::error!(
                    "RESP server: completion for unknown batch {}",
                    completion.batch_id
                );
                continue;
            };
            finished.push(FinishedBatch {
                targets,
                result: completion.result,
            });
        }
        finished
    }
}

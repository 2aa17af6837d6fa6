//! The RESP2 server: one thread, one mio `Poll`, many client connections, in front of a
//! [`Node`] running a [`KvStateMachine`](super::KvStateMachine).
//!
//! # Commands
//!
//! `PING [msg]`, `ECHO msg`, `GET key`, `SET key value [NX|XX] [KEEPTTL]` (`EX`/`PX`/`EXAT`/
//! `PXAT`/`GET` are refused: there are no expiring keys), `DEL key...`, `EXISTS key...`,
//! `APPEND key value`, `INCR key`, `INCRBY key n`, `DECR key`, `DECRBY key n`, `MGET key...`,
//! `MSET key value [key value...]`, `DBSIZE`, `INFO [section]` (node id, role, term, leader,
//! commit / applied / last index, members, fsync statistics, clients), `COMMAND` (`COUNT`,
//! `DOCS`, ...: empty answers, enough for `redis-cli`), `CONFIG GET param...` (`save`,
//! `appendonly`, `appendfsync`, `databases`; others give no pair), `SELECT 0`,
//! `CLIENT SETNAME|SETINFO|GETNAME|ID`, `QUIT`. Unknown commands and wrong arity get Redis'
//! own error wording.
//!
//! Admin commands (`KETCH.ADDLEARNER`, `KETCH.PROMOTE`, `KETCH.REMOVE`, `KETCH.TRANSFER`,
//! `KETCH.MEMBERS`) are described in [`admin`](super::admin).
//!
//! ## Explicit sessions: `KETCH.WRITE`
//!
//! ```text
//! KETCH.WRITE <session> <seq> <acked-below> <write command> [args...]
//! e.g. KETCH.WRITE 0000018c2f4a3b1d0001a2b3c4d5e6f7 5 4 INCR counter
//! ```
//!
//! Runs the wrapped write (`SET`, `DEL`, `APPEND`, `INCR`, `INCRBY`, `DECR`, `DECRBY`, `MSET`)
//! as sequence number `seq` (>= 1) of session `session` (32 hex digits, see
//! [`SessionId`]; its high 64 bits are its creation ms), telling the state machine that the
//! client has the results of every sequence number below `acked-below`. The reply is the
//! wrapped command's reply. A client that retries the same (session, seq) on any node gets
//! the first result back; the write is applied once. A session unknown to the cluster that
//! may have been dropped (expired or evicted) is refused with
//! `-ERR session expired or evicted; ...` (not applied: start a new session). This is what
//! `ketch::client` uses to carry its session across reconnects and nodes.
//!
//! Ordinary writes on a connection use a session the server makes for that connection (id
//! from this node's id and the clock) with sequence numbers it assigns, so a write the runtime
//! re-sends internally is still applied once.
//!
//! # Error rule
//!
//! - `-TRYAGAIN ...`: the command was certainly not applied; retrying it is safe. A write gets
//!   it only when it never reached a log: no leader known, refused by backpressure, or sent to
//!   a node that had already stopped participating after a disk failure. Every failed read is
//!   a `TRYAGAIN`.
//! - `-TIMEOUT ...`: a write that may have been applied: it reached the leader's log and no
//!   result came (no result in time, leadership lost while it was pending, node shutting
//!   down). This includes every write pending on a leader whose log write or fsync fails: the
//!   leader sent the entry to its followers before its own write was durable (thesis
//!   §10.2.1), so they may commit it under the next leader.
//! - `-ERR ...`: the command's own error (wrong type, syntax, expired session).
//!
//! # Ordering and consistency
//!
//! Replies leave in request order, whatever order the results come back in. Reads are
//! linearizable (ReadIndex through [`Node::read_with`]). Within one connection, a read waits
//! for the connection's outstanding writes (and a write for its outstanding reads), so a
//! pipeline `SET k v; GET k` sees its own write and `GET k; SET k v` does not see the later
//! one. `READONLY` (stale local reads) is refused: reads are always linearizable.
//!
//! # Batching
//!
//! Within one poll iteration, the writes of all connections go into one write batch (one log
//! entry) and the reads into one query batch (one ReadIndex round), each capped at
//! [`ServerConfig::batch_commands_max`] commands and [`ServerConfig::batch_bytes_max`] bytes.
//!
//! # Bounds
//!
//! | what                              | bound                                               |
//! |-----------------------------------|-----------------------------------------------------|
//! | connections                       | [`ServerConfig::connections_max`] (more: `-ERR max number of clients reached`, closed) |
//! | one request                       | [`Limits`] (bulk, array, inline, request bytes)     |
//! | replies pending per connection    | [`ServerConfig::pipeline_replies_max`]: past it, the connection is not read |
//! | unsent output per connection      | [`ServerConfig::output_bytes_max`] (+ one reply): past it, not read |
//! | completions queued from the node  | one per batch in flight; batches in flight ≤ pending replies of all connections |
//! | idle connections                  | closed after [`ServerConfig::idle_timeout`] with nothing pending |

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};

use super::admin::{change_reply, is_admin, members_reply, parse_admin, AdminCommand};
use crate::node::ChangeError;
use mio::{Events, Interest, Poll, Token, Waker};

use super::command::{
    split_results, Operation, Query, QueryBatchEncoder, SetCondition, Write as KvWrite,
    WriteBatchEncoder, QUERIES_PER_BATCH_MAX, WRITES_PER_BATCH_MAX,
};
use super::kv_state_machine::NOT_AN_INTEGER_TEXT;
use super::resp::{
    write_array_header, write_bulk, write_error, write_integer, Limits, Request, RequestParser,
};
use super::session_id::{wall_clock_ms, SessionId};
use crate::node::{Node, ProposeError, ReadError};
use crate::raft::{NodeId, Role};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;
/// Bytes read from a socket per `read` call.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Events taken per poll.
const EVENTS_PER_POLL: usize = 1024;
/// How often idle connections are looked for.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Tuning and limits of the RESP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Request parsing limits.
    pub limits: Limits,
    /// Close a connection with nothing pending after this long without input (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Most open client connections.
    pub connections_max: usize,
    /// Most replies waiting per connection (pipelined requests in flight) before the server
    /// stops reading from it.
    pub pipeline_replies_max: usize,
    /// Most unsent reply bytes per connection before the server stops reading from it (a
    /// slow reader); one reply may exceed it.
    pub output_bytes_max: usize,
    /// Most commands in one write batch or one query batch.
    pub batch_commands_max: usize,
    /// Most encoded bytes in one batch (a single larger command goes alone).
    pub batch_bytes_max: usize,
}

impl Default for ServerConfig {
    /// Redis' limits, a 5 minute idle timeout, 10 000 connections, 1024 pipelined replies and
    /// 1 MiB of output per connection, batches of up to 1024 commands / 1 MiB.
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            idle_timeout: Some(Duration::from_secs(300)),
            connections_max: 10_000,
            pipeline_replies_max: 1024,
            output_bytes_max: 1 << 20,
            batch_commands_max: 1024,
            batch_bytes_max: 1 << 20,
        }
    }
}

/// A running RESP server thread.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    completions: Arc<CompletionQueue>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Serves RESP clients accepted on `listener` in front of `node`. `members` is listed by
    /// `INFO`.
    pub fn start(
        node: Arc<Node>,
        listener: std::net::TcpListener,
        members: Vec<NodeId>,
        config: ServerConfig,
    ) -> io::Result<Server> {
        assert!(
            config.pipeline_replies_max >= 1,
            "pipeline_replies_max must be >= 1"
        );
        assert!(
            config.batch_commands_max >= 1,
            "batch_commands_max must be >= 1"
        );
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let completions = Arc::new(CompletionQueue {
            items: Mutex::new(Vec::new()),
            waker: Waker::new(poll.registry(), WAKER)?,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let node_id = node.id();
        let mut server_loop = ServerLoop {
            poll,
            listener,
            batches: Batches {
                node,
                completions: Arc::clone(&completions),
                writes: None,
                reads: None,
                inflight: HashMap::new(),
                next_batch_id: 1,
                config: config.clone(),
            },
            config,
            members,
            stop: Arc::clone(&stop),
            connections: Vec::new(),
            free_slots: Vec::new(),
            open_connections: 0,
            next_generation: 1,
            read_buffer: vec![0; READ_CHUNK_BYTES],
            touched: Vec::new(),
            node_id,
        };
        let thread = std::thread::Builder::new()
            .name(format!("ketch-{node_id}-resp"))
            .spawn(move || server_loop.run())?;
        log::info!("node {node_id}: RESP server listening on {local_addr}");
        Ok(Server {
            local_addr,
            stop,
            completions,
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the thread (closing every client connection) and returns its error, if any.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::Release);
        let _ = self.completions.waker.wake();
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the RESP server thread panicked")),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            log::error!("RESP server: {e}");
        }
    }
}

/// Results coming back from node threads. Bounded by construction: one completion per batch
/// in flight, and batches in flight hold at least one pending reply each.
#[derive(Debug)]
struct CompletionQueue {
    items: Mutex<Vec<Completion>>,
    waker: Waker,
}

#[derive(Debug)]
struct Completion {
    batch_id: u64,
    /// The result list, or the error reply text for every command of the batch.
    result: Result<Vec<u8>, String>,
}

impl CompletionQueue {
    fn push(&self, completion: Completion) {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(completion);
        let _ = self.waker.wake();
    }
}

/// The error reply for a failed write, by the error rule (module docs).
pub fn propose_error_text(error: &ProposeError) -> String {
    match error {
        ProposeError::NotLeader { leader_hint } => match leader_hint {
            Some(leader) => {
                format!("TRYAGAIN not applied: not the leader and not forwarded (leader {leader})")
            }
            None => "TRYAGAIN not applied: no leader known".to_string(),
        },
        ProposeError::Backpressure => "TRYAGAIN not applied: too many pending writes".to_string(),
        // Given only to proposals that arrived after the node stopped (see `ProposeError`).
        ProposeError::Stopped { reason } => format!("TRYAGAIN not applied: node stopped: {reason}"),
        ProposeError::Timeout => {
            "TIMEOUT no result in time; the write may have been applied".to_string()
        }
        ProposeError::LeaderLost => {
            "TIMEOUT leadership changed; the write may have been applied".to_string()
        }
        ProposeError::ShuttingDown => {
            "TIMEOUT node shutting down; the write may have been applied".to_string()
        }
    }
}

/// The error reply for a failed read: always `TRYAGAIN` (a read changes nothing).
pub fn read_error_text(error: &ReadError) -> String {
    format!("TRYAGAIN read not served: {error}")
}

/// Where a batched command's reply goes.
#[derive(Debug, Clone, Copy)]
struct Target {
    slot: usize,
    generation: u64,
    reply_no: u64,
    /// The connection-session sequence number, for writes in the connection's own session.
    seq: Option<u64>,
}

#[derive(Debug)]
struct OpenWrites {
    encoder: WriteBatchEncoder,
    targets: Vec<Target>,
}

#[derive(Debug)]
struct OpenReads {
    encoder: QueryBatchEncoder,
    targets: Vec<Target>,
}

/// Batches being filled and batches in flight.
struct Batches {
    node: Arc<Node>,
    completions: Arc<CompletionQueue>,
    writes: Option<OpenWrites>,
    reads: Option<OpenReads>,
    inflight: HashMap<u64, Vec<Target>>,
    next_batch_id: u64,
    config: ServerConfig,
}

impl Batches {
    fn add_write(&mut self, write: &KvWrite<'_>, target: Target) {
        let open = self.writes.get_or_insert_with(|| OpenWrites {
            encoder: WriteBatchEncoder::new(wall_clock_ms()),
            targets: Vec::with_capacity(64),
        });
        open.encoder.push(write);
        open.targets.push(target);
        if open.targets.len()
            >= self
                .config
                .batch_commands_max
                .min(WRITES_PER_BATCH_MAX as usize)
            || open.encoder.encoded_bytes() >= self.config.batch_bytes_max
        {
            self.submit_writes();
        }
    }

    fn add_read(&mut self, query: &Query<'_>, target: Target) {
        let open = self.reads.get_or_insert_with(|| OpenReads {
            encoder: QueryBatchEncoder::new(),
            targets: Vec::with_capacity(64),
        });
        open.encoder.push(query);
        open.targets.push(target);
        if open.targets.len()
            >= self
                .config
                .batch_commands_max
                .min(QUERIES_PER_BATCH_MAX as usize)
            || open.encoder.encoded_bytes() >= self.config.batch_bytes_max
        {
            self.submit_reads();
        }
    }

    /// Records a batch about to be sent to the node and whose replies go to `targets`: its id
    /// and the queue its completion callback pushes to.
    fn register_batch(&mut self, targets: Vec<Target>) -> (u64, Arc<CompletionQueue>) {
        let batch_id = self.next_batch_id;
        self.next_batch_id += 1;
        self.inflight.insert(batch_id, targets);
        (batch_id, Arc::clone(&self.completions))
    }

    fn submit_writes(&mut self) {
        let Some(open) = self.writes.take() else {
            return;
        };
        let (batch_id, completions) = self.register_batch(open.targets);
        self.node.submit_with(open.encoder.finish(), move |result| {
            completions.push(Completion {
                batch_id,
                result: result.map_err(|e| propose_error_text(&e)),
            });
        });
    }

    /// Sends a membership change or transfer to the node; its reply is one result.
    fn submit_admin(&mut self, command: AdminCommand, target: Target) {
        let (batch_id, completions) = self.register_batch(vec![target]);
        let done = move |result: Result<(), ChangeError>| {
            let reply = change_reply(&result);
            // A result list of one (see `command::split_results`): u32 length, bytes.
            let mut list = (reply.len() as u32).to_le_bytes().to_vec();
            list.extend_from_slice(&reply);
            completions.push(Completion {
                batch_id,
                result: Ok(list),
            });
        };
        match command {
            AdminCommand::Change(change, addr) => self.node.change_membership(change, addr, done),
            AdminCommand::Transfer(id) => self.node.transfer_leadership(id, done),
            AdminCommand::Members => done(Err(ChangeError::Refused {
                reason: "KETCH.MEMBERS is answered locally".to_string(),
            })),
        }
    }

    fn submit_reads(&mut self) {
        let Some(open) = self.reads.take() else {
            return;
        };
        let (batch_id, completions) = self.register_batch(open.targets);
        self.node.read_with(open.encoder.finish(), move |result| {
            completions.push(Completion {
                batch_id,
                result: result.map_err(|e| read_error_text(&e)),
            });
        });
    }
}

/// What a connection is waiting for from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outstanding {
    Nothing,
    Writes(usize),
    Reads(usize),
}

struct Connection {
    socket: TcpStream,
    generation: u64,
    /// Received bytes; `input[input_start..]` is not parsed yet.
    input: Vec<u8>,
    input_start: usize,
    parser: RequestParser,
    output: Vec<u8>,
    output_sent: usize,
    /// Replies not yet in `output`, in order; `None` while awaited. The front is reply
    /// number `first_pending_no`.
    pending: VecDeque<Option<Vec<u8>>>,
    first_pending_no: u64,
    outstanding: Outstanding,
    /// A request waiting for the other kind of outstanding command to finish.
    deferred: Option<Request>,
    session: Option<SessionId>,
    next_seq: u64,
    /// Sequence numbers of this connection's session whose result has not come back.
    unanswered_seqs: BTreeSet<u64>,
    last_active: Instant,
    /// Stop reading and parsing; close once every pending reply is sent (QUIT, bad input).
    closing: bool,
    /// The client closed its side: answer what it sent, then close.
    read_closed: bool,
    /// Input was left unread because of backpressure.
    read_paused: bool,
}

impl Connection {
    fn backpressured(&self, config: &ServerConfig) -> bool {
        self.pending.len() >= config.pipeline_replies_max
            || self.output.len() - self.output_sent >= config.output_bytes_max
    }

    fn next_reply_no(&self) -> u64 {
        self.first_pending_no + self.pending.len() as u64
    }

    /// Queues an immediate reply behind any awaited ones.
    fn reply(&mut self, bytes: &[u8]) {
        if self.pending.is_empty() {
            self.output.extend_from_slice(bytes);
        } else {
            self.pending.push_back(Some(bytes.to_vec()));
        }
    }

    fn reply_error(&mut self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 3);
        write_error(&mut bytes, text);
        self.reply(&bytes);
    }

    /// Places the reply numbered `reply_no`, moving every ready reply to the output.
    fn deliver(&mut self, reply_no: u64, bytes: &[u8]) {
        debug_assert!(reply_no >= self.first_pending_no);
        let position = (reply_no - self.first_pending_no) as usize;
        if position == 0 {
            self.output.extend_from_slice(bytes);
            self.pending.pop_front();
            self.first_pending_no += 1;
            while let Some(Some(_)) = self.pending.front() {
                let ready = self.pending.pop_front().flatten().expect("checked");
                self.output.extend_from_slice(&ready);
                self.first_pending_no += 1;
            }
        } else {
            debug_assert!(self.pending[position].is_none(), "reply delivered twice");
            self.pending[position] = Some(bytes.to_vec());
        }
    }

    fn finished(&self) -> bool {
        let done_reading =
            self.closing || (self.read_closed && self.deferred.is_none() && !self.read_paused);
        done_reading && self.pending.is_empty() && self.output_sent == self.output.len()
    }
}

struct ServerLoop {
    poll: Poll,
    listener: TcpListener,
    batches: Batches,
    config: ServerConfig,
    members: Vec<NodeId>,
    stop: Arc<AtomicBool>,
    connections: Vec<Option<Connection>>,
    free_slots: Vec<usize>,
    open_connections: usize,
    next_generation: u64,
    read_buffer: Vec<u8>,
    /// Connections that got replies this iteration (to flush and maybe resume).
    touched: Vec<usize>,
    node_id: NodeId,
}

impl ServerLoop {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let mut next_idle_check = Instant::now() + IDLE_CHECK_INTERVAL;
        loop {
            let timeout = next_idle_check.saturating_duration_since(Instant::now());
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(token) => {
                        let slot = token - FIRST_CONNECTION;
                        if event.is_writable() {
                            self.flush(slot);
                        }
                        if event.is_readable() || event.is_read_closed() {
                            self.read(slot);
                        }
                        self.close_if_finished(slot);
                    }
                }
            }
            self.take_completions();
            self.batches.submit_writes();
            self.batches.submit_reads();
            if Instant::now() >= next_idle_check {
                self.close_idle();
                next_idle_check = Instant::now() + IDLE_CHECK_INTERVAL;
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let (mut socket, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or similar: stop accepting this round, keep serving.
                    log::warn!("RESP server: accept failed: {e}");
                    return;
                }
            };
            if self.open_connections >= self.config.connections_max {
                let _ = socket.write(b"-ERR max number of clients reached\r\n");
                continue;
            }
            let _ = socket.set_nodelay(true);
            let slot = self.free_slots.pop().unwrap_or_else(|| {
                self.connections.push(None);
                self.connections.len() - 1
            });
            if let Err(e) = self.poll.registry().register(
                &mut socket,
                Token(slot + FIRST_CONNECTION),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("RESP server: cannot register client {peer}: {e}");
                self.free_slots.push(slot);
                continue;
            }
            let generation = self.next_generation;
            self.next_generation += 1;
            self.open_connections += 1;
            self.connections[slot] = Some(Connection {
                socket,
                generation,
                input: Vec::new(),
                input_start: 0,
                parser: RequestParser::new(self.config.limits),
                output: Vec::new(),
                output_sent: 0,
                pending: VecDeque::new(),
                first_pending_no: 0,
                outstanding: Outstanding::Nothing,
                deferred: None,
                session: None,
                next_seq: 1,
                unanswered_seqs: BTreeSet::new(),
                last_active: Instant::now(),
                closing: false,
                read_closed: false,
                read_paused: false,
            });
        }
    }

    /// Reads until the socket is drained or the connection is backpressured, handling every
    /// complete request.
    fn read(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.connections.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if conn.closing {
                return;
            }
            if conn.backpressured(&self.config) || conn.deferred.is_some() {
                conn.read_paused = true;
                return;
            }
            conn.read_paused = false;
            if conn.read_closed {
                return;
            }
            match conn.socket.read(&mut self.read_buffer) {
                Ok(0) => {
                    conn.read_closed = true;
                    return;
                }
                Ok(n) => {
                    conn.last_active = Instant::now();
                    conn.input.extend_from_slice(&self.read_buffer[..n]);
                    self.process_input(slot);
                    self.flush(slot);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(slot);
                    return;
                }
            }
        }
    }

    /// Parses and dispatches buffered requests until input runs out or backpressure.
    fn process_input(&mut self, slot: usize) {
        let Some(conn) = self.connections.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let ctx = Context {
            slot,
            members: &self.members,
            node_id: self.node_id,
            open_connections: self.open_connections,
        };
        loop {
            if conn.closing {
                break;
            }
            if conn.backpressured(&self.config) {
                conn.read_paused = true;
                break;
            }
            if let Some(request) = conn.deferred.take() {
                if !dispatch(conn, request, &mut self.batches, &ctx) {
                    break;
                }
                continue;
            }
            match conn.parser.parse(&conn.input[conn.input_start..]) {
                Err(e) => {
                    conn.reply_error(&e.reply_text());
                    conn.closing = true;
                    break;
                }
                Ok(parsed) => {
                    conn.input_start += parsed.consumed;
                    match parsed.request {
                        None => break,
                        Some(request) => {
                            if !dispatch(conn, request, &mut self.batches, &ctx) {
                                break;
                            }
                        }
                    }
                }
            }
        }
        if conn.input_start == conn.input.len() {
            conn.input.clear();
            conn.input_start = 0;
            if conn.input.capacity() > 4 * READ_CHUNK_BYTES {
                conn.input.shrink_to(READ_CHUNK_BYTES);
            }
        } else if conn.input_start > 0 {
            conn.input.drain(..conn.input_start);
            conn.input_start = 0;
        }
    }

    fn flush(&mut self, slot: usize) {
        let Some(conn) = self.connections.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        while conn.output_sent < conn.output.len() {
            match conn.socket.write(&conn.output[conn.output_sent..]) {
                Ok(0) => {
                    self.close(slot);
                    return;
                }
                Ok(n) => conn.output_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(slot);
                    return;
                }
            }
        }
        conn.output.clear();
        conn.output_sent = 0;
        if conn.output.capacity() > 4 * self.config.output_bytes_max.max(READ_CHUNK_BYTES) {
            conn.output.shrink_to(READ_CHUNK_BYTES);
        }
        // Room again: go on with input left unread by backpressure.
        if conn.read_paused && !conn.backpressured(&self.config) {
            self.process_input(slot);
            self.read(slot);
        }
    }

    fn take_completions(&mut self) {
        let items = std::mem::take(
            &mut *self
                .batches
                .completions
                .items
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for completion in items {
            let Some(targets) = self.batches.inflight.remove(&completion.batch_id) else {
                log::error!(
                    "RESP server: completion for unknown batch {}",
                    completion.batch_id
                );
                continue;
            };
            match &completion.result {
                Ok(results) => match split_results(results, targets.len()) {
                    Ok(replies) => {
                        for (target, reply) in targets.iter().zip(replies) {
                            self.deliver(target, reply);
                        }
                    }
                    Err(e) => {
                        let mut reply = Vec::new();
                        write_error(&mut reply, &format!("ERR internal error: {e}"));
                        for target in &targets {
                            self.deliver(target, &reply);
                        }
                    }
                },
                Err(text) => {
                    let mut reply = Vec::new();
                    write_error(&mut reply, text);
                    for target in &targets {
                        self.deliver(target, &reply);
                    }
                }
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for &slot in &touched {
            let resumable = match self.connections.get_mut(slot).and_then(Option::as_mut) {
                Some(conn) => conn.deferred.is_some() || conn.read_paused,
                None => false,
            };
            if resumable {
                self.process_input(slot);
            }
            self.flush(slot);
            if let Some(conn) = self.connections.get_mut(slot).and_then(Option::as_mut) {
                if conn.read_paused && !conn.backpressured(&self.config) && conn.deferred.is_none()
                {
                    self.read(slot);
                }
            }
            self.close_if_finished(slot);
        }
        self.touched = touched;
        self.touched.clear();
    }

    fn deliver(&mut self, target: &Target, reply: &[u8]) {
        let Some(conn) = self
            .connections
            .get_mut(target.slot)
            .and_then(Option::as_mut)
            .filter(|c| c.generation == target.generation)
        else {
            // The connection closed while its command was in flight.
            return;
        };
        if let Some(seq) = target.seq {
            conn.unanswered_seqs.remove(&seq);
        }
        conn.outstanding = match conn.outstanding {
            Outstanding::Writes(1) | Outstanding::Reads(1) => Outstanding::Nothing,
            Outstanding::Writes(n) => Outstanding::Writes(n - 1),
            Outstanding::Reads(n) => Outstanding::Reads(n - 1),
            Outstanding::Nothing => {
                debug_assert!(false, "a reply nobody waits for");
                Outstanding::Nothing
            }
        };
        conn.last_active = Instant::now();
        conn.deliver(target.reply_no, reply);
        if self.touched.last() != Some(&target.slot) {
            self.touched.push(target.slot);
        }
    }

    fn close_if_finished(&mut self, slot: usize) {
        if let Some(conn) = self.connections.get(slot).and_then(Option::as_ref) {
            if conn.finished() {
                self.close(slot);
            }
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut conn) = self.connections.get_mut(slot).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut conn.socket);
            self.free_slots.push(slot);
            self.open_connections -= 1;
        }
    }

    fn close_idle(&mut self) {
        let Some(idle_timeout) = self.config.idle_timeout else {
            return;
        };
        for slot in 0..self.connections.len() {
            let idle = match &self.connections[slot] {
                Some(conn) => {
                    conn.pending.is_empty()
                        && conn.outstanding == Outstanding::Nothing
                        && conn.last_active.elapsed() >= idle_timeout
                }
                None => false,
            };
            if idle {
                self.close(slot);
            }
        }
    }
}

struct Context<'a> {
    slot: usize,
    members: &'a [NodeId],
    node_id: NodeId,
    open_connections: usize,
}

/// Upper-cases a command name into `buf`; `None` if too long to be one we know.
fn upper<'b>(name: &[u8], buf: &'b mut [u8; 16]) -> Option<&'b [u8]> {
    if name.len() > buf.len() {
        return None;
    }
    for (out, byte) in buf.iter_mut().zip(name) {
        *out = byte.to_ascii_uppercase();
    }
    Some(&buf[..name.len()])
}

fn arity_error(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

fn parse_i64_arg(bytes: &[u8]) -> Option<i64> {
    super::kv_state_machine::parse_redis_integer(bytes)
}

fn parse_u64_arg(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses a write command (name and arguments) into an operation, or the error reply text.
/// `Ok(None)` if the command is not a write.
fn parse_write(args: &[Vec<u8>]) -> Result<Option<Operation<'_>>, String> {
    let mut buf = [0u8; 16];
    let Some(name) = upper(&args[0], &mut buf) else {
        return Ok(None);
    };
    let argc = args.len();
    let operation = match name {
        b"SET" => {
            if argc < 3 {
                return Err(arity_error("set"));
            }
            let mut condition = SetCondition::Always;
            for option in &args[3..] {
                let mut obuf = [0u8; 16];
                match upper(option, &mut obuf) {
                    Some(b"NX") if condition == SetCondition::Always => {
                        condition = SetCondition::IfAbsent
                    }
                    Some(b"XX") if condition == SetCondition::Always => {
                        condition = SetCondition::IfPresent
                    }
                    Some(b"KEEPTTL") => {}
                    Some(b"EX" | b"PX" | b"EXAT" | b"PXAT") => {
                        return Err("ERR key expiry (EX/PX/EXAT/PXAT) is not supported by ketch"
                            .to_string())
                    }
                    Some(b"GET") => {
                        return Err("ERR SET ... GET is not supported by ketch".to_string())
                    }
                    _ => return Err("ERR syntax error".to_string()),
                }
            }
            Operation::Set {
                key: &args[1],
                value: &args[2],
                condition,
            }
        }
        b"DEL" => {
            if argc < 2 {
                return Err(arity_error("del"));
            }
            Operation::Del {
                keys: args[1..].iter().map(|k| &k[..]).collect(),
            }
        }
        b"APPEND" => {
            if argc != 3 {
                return Err(arity_error("append"));
            }
            Operation::Append {
                key: &args[1],
                value: &args[2],
            }
        }
        b"INCR" | b"DECR" => {
            if argc != 2 {
                return Err(arity_error(if name == b"INCR" { "incr" } else { "decr" }));
            }
            Operation::IncrBy {
                key: &args[1],
                delta: if name == b"INCR" { 1 } else { -1 },
            }
        }
        b"INCRBY" | b"DECRBY" => {
            let incr = name == b"INCRBY";
            if argc != 3 {
                return Err(arity_error(if incr { "incrby" } else { "decrby" }));
            }
            let Some(delta) = parse_i64_arg(&args[2]) else {
                return Err(NOT_AN_INTEGER_TEXT.to_string());
            };
            let delta = if incr {
                delta
            } else {
                delta
                    .checked_neg()
                    .ok_or_else(|| "ERR decrement would overflow".to_string())?
            };
            Operation::IncrBy {
                key: &args[1],
                delta,
            }
        }
        b"MSET" => {
            if argc < 3 || argc % 2 == 0 {
                return Err(arity_error("mset"));
            }
            Operation::MSet {
                pairs: args[1..]
                    .chunks_exact(2)
                    .map(|pair| (&pair[0][..], &pair[1][..]))
                    .collect(),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(operation))
}

/// Parses a read command into a query, or the error reply text; `Ok(None)` if not a read.
fn parse_read(args: &[Vec<u8>]) -> Result<Option<Query<'_>>, String> {
    let mut buf = [0u8; 16];
    let Some(name) = upper(&args[0], &mut buf) else {
        return Ok(None);
    };
    let argc = args.len();
    let query = match name {
        b"GET" => {
            if argc != 2 {
                return Err(arity_error("get"));
            }
            Query::Get { key: &args[1] }
        }
        b"MGET" | b"EXISTS" => {
            let mget = name == b"MGET";
            if argc < 2 {
                return Err(arity_error(if mget { "mget" } else { "exists" }));
            }
            let keys = args[1..].iter().map(|k| &k[..]).collect();
            if mget {
                Query::MGet { keys }
            } else {
                Query::Exists { keys }
            }
        }
        b"DBSIZE" => {
            if argc != 1 {
                return Err(arity_error("dbsize"));
            }
            Query::DbSize
        }
        _ => return Ok(None),
    };
    Ok(Some(query))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
    Explicit,
    Admin,
    Local,
}

fn kind_of(name: &[u8]) -> Kind {
    let mut buf = [0u8; 16];
    match upper(name, &mut buf) {
        Some(b"SET" | b"DEL" | b"APPEND" | b"INCR" | b"DECR" | b"INCRBY" | b"DECRBY" | b"MSET") => {
            Kind::Write
        }
        Some(b"GET" | b"MGET" | b"EXISTS" | b"DBSIZE") => Kind::Read,
        Some(b"KETCH.WRITE") => Kind::Explicit,
        Some(name) if is_admin(name) => Kind::Admin,
        _ => Kind::Local,
    }
}

/// Handles one request. Returns false if input processing must stop (deferred or closing).
fn dispatch(
    conn: &mut Connection,
    request: Request,
    batches: &mut Batches,
    ctx: &Context<'_>,
) -> bool {
    if request.is_empty() {
        return true;
    }
    let kind = kind_of(&request[0]);
    let conflicting = matches!(
        (kind, conn.outstanding),
        (
            Kind::Write | Kind::Explicit | Kind::Admin,
            Outstanding::Reads(_)
        ) | (Kind::Read, Outstanding::Writes(_))
    );
    if conflicting {
        conn.deferred = Some(request);
        return false;
    }
    match kind {
        Kind::Write => match parse_write(&request) {
            Ok(Some(operation)) => {
                let session = *conn
                    .session
                    .get_or_insert_with(|| SessionId::generate(ctx.node_id as u16));
                let seq = conn.next_seq;
                conn.next_seq += 1;
                conn.unanswered_seqs.insert(seq);
                let acked_below = *conn.unanswered_seqs.first().expect("just inserted");
                let target = await_reply(conn, ctx.slot, Some(seq), true);
                batches.add_write(
                    &KvWrite {
                        session,
                        seq,
                        acked_below,
                        operation,
                    },
                    target,
                );
            }
            Ok(None) => unreachable_local(conn),
            Err(text) => conn.reply_error(&text),
        },
        Kind::Explicit => match parse_explicit_write(&request) {
            Ok((session, seq, acked_below, operation)) => {
                let target = await_reply(conn, ctx.slot, None, true);
                batches.add_write(
                    &KvWrite {
                        session,
                        seq,
                        acked_below,
                        operation,
                    },
                    target,
                );
            }
            Err(text) => conn.reply_error(&text),
        },
        Kind::Read => match parse_read(&request) {
            Ok(Some(query)) => {
                let target = await_reply(conn, ctx.slot, None, false);
                batches.add_read(&query, target);
            }
            Ok(None) => unreachable_local(conn),
            Err(text) => conn.reply_error(&text),
        },
        Kind::Admin => {
            let mut buf = [0u8; 16];
            let name = upper(&request[0], &mut buf).unwrap_or_default();
            match parse_admin(name, &request) {
                Ok(AdminCommand::Members) => conn.reply(&members_reply(&batches.node.status())),
                Ok(command) => {
                    let target = await_reply(conn, ctx.slot, None, true);
                    batches.submit_admin(command, target);
                }
                Err(text) => conn.reply_error(&text),
            }
        }
        Kind::Local => {
            let status = || batches.node.status();
            return local_command(conn, &request, ctx, status);
        }
    }
    true
}

fn unreachable_local(conn: &mut Connection) {
    debug_assert!(false, "kind_of and the parsers disagree");
    conn.reply_error("ERR internal error: unclassified command");
}

/// Reserves the next reply slot for a batched command.
fn await_reply(conn: &mut Connection, slot: usize, seq: Option<u64>, write: bool) -> Target {
    let reply_no = conn.next_reply_no();
    conn.pending.push_back(None);
    conn.outstanding = match (conn.outstanding, write) {
        (Outstanding::Nothing, true) => Outstanding::Writes(1),
        (Outstanding::Nothing, false) => Outstanding::Reads(1),
        (Outstanding::Writes(n), true) => Outstanding::Writes(n + 1),
        (Outstanding::Reads(n), false) => Outstanding::Reads(n + 1),
        (other, _) => unreachable!("dispatch defers conflicting commands, had {other:?}"),
    };
    Target {
        slot,
        generation: conn.generation,
        reply_no,
        seq,
    }
}

fn parse_explicit_write(args: &[Vec<u8>]) -> Result<(SessionId, u64, u64, Operation<'_>), String> {
    if args.len() < 5 {
        return Err(arity_error("ketch.write"));
    }
    let session = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|text| text.parse::<SessionId>().ok())
        .ok_or_else(|| "ERR KETCH.WRITE: the session id must be 32 hex digits".to_string())?;
    let seq = parse_u64_arg(&args[2])
        .filter(|&seq| seq >= 1)
        .ok_or_else(|| "ERR KETCH.WRITE: seq must be an integer >= 1".to_string())?;
    let acked_below = parse_u64_arg(&args[3])
        .ok_or_else(|| "ERR KETCH.WRITE: acked-below must be a non-negative integer".to_string())?;
    match parse_write(&args[4..])? {
        Some(operation) => Ok((session, seq, acked_below, operation)),
        None => Err(
            "ERR KETCH.WRITE wraps a write: SET, DEL, APPEND, INCR, INCRBY, DECR, DECRBY or MSET"
                .to_string(),
        ),
    }
}

/// Answers a command that needs no node round trip. Returns false to stop reading (QUIT).
fn local_command(
    conn: &mut Connection,
    args: &[Vec<u8>],
    ctx: &Context<'_>,
    status: impl FnOnce() -> crate::node::NodeStatus,
) -> bool {
    let mut buf = [0u8; 16];
    let argc = args.len();
    let mut out = Vec::new();
    match upper(&args[0], &mut buf) {
        Some(b"PING") => match argc {
            1 => out.extend_from_slice(b"+PONG\r\n"),
            2 => write_bulk(&mut out, &args[1]),
            _ => write_error(&mut out, &arity_error("ping")),
        },
        Some(b"ECHO") => match argc {
            2 => write_bulk(&mut out, &args[1]),
            _ => write_error(&mut out, &arity_error("echo")),
        },
        Some(b"QUIT") => {
            conn.reply(b"+OK\r\n");
            conn.closing = true;
            return false;
        }
        Some(b"SELECT") => match argc {
            2 if &args[1][..] == b"0" => out.extend_from_slice(b"+OK\r\n"),
            2 => write_error(&mut out, "ERR DB index is out of range"),
            _ => write_error(&mut out, &arity_error("select")),
        },
        Some(b"READONLY") | Some(b"READWRITE") => write_error(
            &mut out,
            "ERR stale local reads are not supported: every read is linearizable",
        ),
        Some(b"HELLO") => {
            let protocol = args.get(1).map(|v| &v[..]);
            if protocol.is_some_and(|p| p != b"2") {
                write_error(
                    &mut out,
                    "NOPROTO sorry, this protocol version is not supported",
                );
            } else {
                write_error(
                    &mut out,
                    "ERR HELLO is not supported; the protocol is RESP2",
                );
            }
        }
        Some(b"CLIENT") => {
            let mut sbuf = [0u8; 16];
            match args.get(1).and_then(|sub| upper(sub, &mut sbuf)) {
                Some(b"SETNAME" | b"SETINFO") => out.extend_from_slice(b"+OK\r\n"),
                Some(b"GETNAME") => out.extend_from_slice(b"$-1\r\n"),
                Some(b"ID") => write_integer(&mut out, conn.generation as i64),
                _ => write_error(&mut out, "ERR unsupported CLIENT subcommand"),
            }
        }
        Some(b"COMMAND") => {
            let mut sbuf = [0u8; 16];
            match args.get(1).and_then(|sub| upper(sub, &mut sbuf)) {
                Some(b"COUNT") => write_integer(&mut out, SUPPORTED_COMMANDS as i64),
                _ => write_array_header(&mut out, 0),
            }
        }
        Some(b"CONFIG") => {
            let mut sbuf = [0u8; 16];
            match args.get(1).and_then(|sub| upper(sub, &mut sbuf)) {
                Some(b"GET") if argc >= 3 => config_get(&mut out, &args[2..]),
                Some(b"GET") => write_error(&mut out, &arity_error("config|get")),
                _ => write_error(&mut out, "ERR only CONFIG GET is supported"),
            }
        }
        Some(b"INFO") => {
            let info = info_text(&status(), ctx);
            write_bulk(&mut out, info.as_bytes());
        }
        _ => write_error(&mut out, &unknown_command_text(args)),
    }
    conn.reply(&out);
    true
}

/// Commands `COMMAND COUNT` reports.
const SUPPORTED_COMMANDS: usize = 24;

fn config_get(out: &mut Vec<u8>, params: &[Vec<u8>]) {
    let known: [(&str, &str); 4] = [
        ("save", ""),
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("databases", "1"),
    ];
    let mut pairs = Vec::new();
    for param in params {
        let param = String::from_utf8_lossy(param).to_ascii_lowercase();
        for (name, value) in known {
            if name == param || param == "*" {
                pairs.push((name, value));
            }
        }
    }
    write_array_header(out, pairs.len() * 2);
    for (name, value) in pairs {
        write_bulk(out, name.as_bytes());
        write_bulk(out, value.as_bytes());
    }
}

/// Redis 7's wording: `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
fn unknown_command_text(args: &[Vec<u8>]) -> String {
    let name = String::from_utf8_lossy(&args[0]);
    let name: String = name.chars().take(128).collect();
    let mut rest = String::new();
    for arg in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let arg = String::from_utf8_lossy(arg);
        let arg: String = arg.chars().take(room).collect();
        let _ = write!(rest, "'{arg}' ");
    }
    format!("ERR unknown command '{name}', with args beginning with: {rest}")
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "precandidate",
    }
}

fn info_text(status: &crate::node::NodeStatus, ctx: &Context<'_>) -> String {
    let mut text = String::with_capacity(512);
    // The configuration in force (it changes with KETCH.ADDLEARNER and friends); the list
    // given at start only while the node has none yet (it joins).
    let members: Vec<String> = if status.members.is_empty() {
        ctx.members.iter().map(|id| id.to_string()).collect()
    } else {
        status.members.keys().map(|id| id.to_string()).collect()
    };
    let _ = write!(
        text,
        "# Server\r\nketch_version:{}\r\nnode_id:{}\r\n\r\n\
         # Clients\r\nconnected_clients:{}\r\n\r\n\
         # Replication\r\nrole:{}\r\nterm:{}\r\nleader_id:{}\r\ncommit_index:{}\r\n\
         applied_index:{}\r\nlast_index:{}\r\nmembers:{}\r\nconnected_peers:{}\r\n\
         participating:{}\r\nremoved:{}\r\n\r\n\
         # Persistence\r\nfsyncs:{}\r\nentries_written:{}\r\nwrite_items:{}\r\n\
         disk_stalled:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        status.id,
        ctx.open_connections,
        // A node that stopped participating leads nothing; monitors read `role`.
        if status.participating {
            role_name(status.role)
        } else {
            "stopped"
        },
        status.term,
        status
            .leader
            .map_or_else(|| "none".to_string(), |l| l.to_string()),
        status.commit,
        status.applied,
        status.last_index,
        members.join(","),
        status.connected_peers.len(),
        u8::from(status.participating),
        u8::from(status.removed),
        status.writer.fsyncs,
        status.writer.entries_written,
        status.writer.items_written,
        u8::from(status.disk_stalled),
    );
    let histogram: Vec<String> = status
        .writer
        .batch_items_histogram
        .iter()
        .map(|n| n.to_string())
        .collect();
    let _ = write!(
        text,
        "fsync_batch_items_log2_histogram:{}\r\n",
        histogram.join(",")
    );
    if let Some(error) = &status.last_error {
        let _ = write!(text, "last_error:{}\r\n", error.replace(['\r', '\n'], " "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn write_commands_parse_like_redis() {
        assert_eq!(
            parse_write(&args(&["set", "k", "v", "nx"])).unwrap(),
            Some(Operation::Set {
                key: b"k",
                value: b"v",
                condition: SetCondition::IfAbsent
            })
        );
        assert_eq!(
            parse_write(&args(&["SET", "k", "v", "NX", "XX"])).unwrap_err(),
            "ERR syntax error"
        );
        assert!(parse_write(&args(&["SET", "k", "v", "EX", "10"]))
            .unwrap_err()
            .contains("not supported"));
        assert_eq!(
            parse_write(&args(&["SET", "k"])).unwrap_err(),
            "ERR wrong number of arguments for 'set' command"
        );
        assert_eq!(
            parse_write(&args(&["MSET", "a", "1", "b"])).unwrap_err(),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            parse_write(&args(&["INCRBY", "k", "x"])).unwrap_err(),
            NOT_AN_INTEGER_TEXT
        );
        assert_eq!(
            parse_write(&args(&["DECRBY", "k", "-9223372036854775808"])).unwrap_err(),
            "ERR decrement would overflow"
        );
        assert_eq!(
            parse_write(&args(&["decr", "k"])).unwrap(),
            Some(Operation::IncrBy {
                key: b"k",
                delta: -1
            })
        );
        assert_eq!(parse_write(&args(&["GET", "k"])).unwrap(), None);
    }

    #[test]
    fn explicit_writes_carry_their_session() {
        let id = SessionId::new(5, 6);
        let text = id.to_string();
        let request = args(&["KETCH.WRITE", &text, "3", "2", "INCR", "c"]);
        let (session, seq, acked, op) = parse_explicit_write(&request).unwrap();
        assert_eq!((session, seq, acked), (id, 3, 2));
        assert_eq!(
            op,
            Operation::IncrBy {
                key: b"c",
                delta: 1
            }
        );
        assert!(
            parse_explicit_write(&args(&["KETCH.WRITE", &text, "0", "0", "INCR", "c"])).is_err()
        );
        assert!(
            parse_explicit_write(&args(&["KETCH.WRITE", "zz", "1", "0", "INCR", "c"])).is_err()
        );
        assert!(
            parse_explicit_write(&args(&["KETCH.WRITE", &text, "1", "0", "GET", "c"]))
                .unwrap_err()
                .contains("wraps a write")
        );
    }

    #[test]
    fn unknown_commands_are_worded_like_redis_7() {
        assert_eq!(
            unknown_command_text(&args(&["foo", "a", "b"])),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            unknown_command_text(&args(&["foo"])),
            "ERR unknown command 'foo', with args beginning with: "
        );
    }

    #[test]
    fn error_rule_codes() {
        for (error, code) in [
            (ProposeError::NotLeader { leader_hint: None }, "TRYAGAIN"),
            (ProposeError::Backpressure, "TRYAGAIN"),
            (
                ProposeError::Stopped {
                    reason: "disk".into(),
                },
                "TRYAGAIN",
            ),
            (ProposeError::Timeout, "TIMEOUT"),
            (ProposeError::LeaderLost, "TIMEOUT"),
            (ProposeError::ShuttingDown, "TIMEOUT"),
        ] {
            assert!(propose_error_text(&error).starts_with(code), "{error:?}");
        }
        assert!(read_error_text(&ReadError::Timeout).starts_with("TRYAGAIN"));
    }
}

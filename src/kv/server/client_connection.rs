//! One client's connection: its requests, dispatched as they are parsed, and its replies.
//!
//! # Ordering and consistency
//!
//! Replies leave in request order, whatever order the results come back in. Reads are
//! linearizable (ReadIndex through [`Node::read_with`](crate::node::Node::read_with)). Within
//! one connection, a read waits for the connection's outstanding writes (and a write for its
//! outstanding reads), so a pipeline `SET k v; GET k` sees its own write and `GET k; SET k v`
//! does not see the later one. `READONLY` (which asks a Redis Cluster replica for stale
//! local reads) answers `+OK` and changes nothing: reads stay linearizable. `INFO` with its keyspace section counts as a read (its key count is one).
//!
//! # Protocol
//!
//! Each reply is written in the protocol the connection spoke when its request was
//! dispatched: after `HELLO 3`, replies from the state machine (always RESP2) are converted
//! to RESP3 by their command's [`ReplyShape`] (see `resp3_reply`), and local replies are
//! written in RESP3 directly. A pipeline `GET a; HELLO 3; GET a` gets `$-1`, the map, `_`.
//!
//! # Per-connection state
//!
//! [`ClientState`] holds what commands read and change about the connection itself (id,
//! protocol, name, library, addresses, times, last command, user); it is what `CLIENT` shows.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::auth::{admit, ConnectionAuth};
use super::backend::{Backend, LaneRoute};
use super::batching::{Batches, Target};
use super::client_stream::ClientStream;
use super::command_table::reply_shape;
use super::config::ClusterMode;
use super::config::ServerConfig;
use super::fan_out::{fan_out, Combine, Lanes, ScanCursor};
use super::info::{
    info_text, with_keyspace, ErrorCounts, InfoInputs, InfoSections, ProcessFacts, ServerStats,
};
use super::local_commands::{client_line, local_command, ClientBuffers, LocalEnv, LocalReply};
use super::parse::{
    kind_of, parse_explicit_write, parse_read, parse_write, size_refusal, upper, Kind,
};
use super::request_slot::{request_slot, RequestSlot, CROSSSLOT_ERROR};
use super::resp3_reply::{resp2_to_resp3, ReplyShape};
use super::transaction::{Control, ControlStep, ExecReply, Transaction};
use crate::kv::admin::{members_reply, parse_admin, AdminCommand};
use crate::kv::command::{Operation, Query, Write as KvWrite};
use crate::kv::resp::{write_error, Limits, Protocol, Reply, ReplyParser, Request, RequestParser};
use crate::kv::session_id::SessionId;
use crate::raft::NodeId;

/// What commands read and change about their own connection (module docs).
#[derive(Debug, Clone)]
pub(super) struct ClientState {
    /// `CLIENT ID`: unique for the server's life (the connection's generation).
    pub(super) id: u64,
    /// The protocol replies are written in.
    pub(super) protocol: Protocol,
    /// `CLIENT SETNAME` / `HELLO ... SETNAME`.
    pub(super) name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub(super) lib_name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-VER`.
    pub(super) lib_ver: Option<Vec<u8>>,
    /// The client's address, if the socket knows it.
    pub(super) peer_addr: Option<SocketAddr>,
    /// The server's address this connection came in on.
    pub(super) local_addr: Option<SocketAddr>,
    /// The socket's descriptor (-1 if none).
    pub(super) fd: i64,
    /// When the connection was accepted.
    pub(super) connected_at: Instant,
    /// When its last command was dispatched.
    pub(super) last_command_at: Instant,
    /// Its last command's name as Redis shows it (`get`, `client|list`).
    pub(super) last_command: String,
    /// Its user and what it may run (see `auth`).
    pub(super) auth: ConnectionAuth,
}

impl ClientState {
    /// The state of a new connection: RESP2, no name.
    pub(super) fn new(
        id: u64,
        peer_addr: Option<SocketAddr>,
        local_addr: Option<SocketAddr>,
        fd: i64,
    ) -> Self {
        let now = Instant::now();
        ClientState {
            id,
            protocol: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            peer_addr,
            local_addr,
            fd,
            connected_at: now,
            last_command_at: now,
            last_command: "NULL".to_string(),
            auth: ConnectionAuth::default(),
        }
    }

    /// Notes `request` as the last command (`cmd=` in `CLIENT LIST`). Reuses the string's
    /// buffer: this runs for every request.
    fn note_command(&mut self, request: &Request) {
        // Shown in a space-separated line: one printable word, and short.
        const SHOWN_BYTES_MAX: usize = 64;
        fn push_lower(out: &mut String, word: &[u8]) {
            for &byte in word {
                if out.len() < SHOWN_BYTES_MAX && byte.is_ascii_graphic() {
                    out.push(char::from(byte.to_ascii_lowercase()));
                }
            }
        }
        self.last_command.clear();
        push_lower(&mut self.last_command, &request[0]);
        let has_subcommands = matches!(&self.last_command[..], "client" | "command" | "config");
        if has_subcommands && request.len() > 1 {
            self.last_command.push('|');
            push_lower(&mut self.last_command, &request[1]);
        }
        self.last_command_at = Instant::now();
    }
}

/// What is done to an awaited reply when it arrives.
#[derive(Debug, Clone)]
enum Finish {
    /// Sent as the state machine wrote it (RESP2).
    AsIs,
    /// Converted to RESP3 by this shape.
    Resp3(ReplyShape),
    /// The key counts of an `INFO`: they go into the keyspace section of `text`.
    Info {
        text: String,
        sections: InfoSections,
        protocol: Protocol,
    },
    /// A `WATCH` of these keys: the revisions are recorded, the client gets `+OK` (see
    /// `transaction`).
    Watch(Vec<Vec<u8>>),
    /// An `EXEC`: queued local replies spliced in, elements shaped (see `transaction`).
    Exec(ExecReply),
    /// A command sent to several lanes: the parts so far, then the combined reply is
    /// finished by `then` (see `fan_out`).
    Gather(Box<Gather>),
    /// A `SCAN` page of `lane`: its cursor becomes the client's (see `fan_out`), then `then`.
    Scan {
        lane: usize,
        next_lane: Option<usize>,
        then: Box<Finish>,
    },
}

/// The parts of a fanned-out command's reply.
#[derive(Debug, Clone)]
struct Gather {
    combine: Combine,
    /// Parts still to come (at least 1 while pending).
    left: usize,
    parts: Vec<Vec<u8>>,
    then: Finish,
}

impl Finish {
    fn apply(&self, reply: &[u8]) -> Vec<u8> {
        match self {
            Finish::AsIs => reply.to_vec(),
            Finish::Resp3(shape) => resp2_to_resp3(reply, *shape),
            Finish::Info {
                text,
                sections,
                protocol,
            } => {
                let counts = match ReplyParser::new(Limits::default()).parse(reply) {
                    Ok(Some((Reply::Array(Some(items)), _))) => match &items[..] {
                        [Reply::Integer(keys), Reply::Integer(expires)] => Some((*keys, *expires)),
                        _ => None,
                    },
                    // No leader to confirm the read: INFO still answers (module docs of
                    // `info`).
                    _ => None,
                };
                let text = with_keyspace(text.clone(), sections, counts);
                info_frame(text, *protocol)
            }
            Finish::Exec(exec) => exec.finish(reply),
            Finish::Scan {
                lane,
                next_lane,
                then,
            } => then.apply(&ScanCursor::client_reply(*lane, *next_lane, reply)),
            Finish::Watch(_) => unreachable!("a WATCH reply is finished by its connection"),
            Finish::Gather(_) => unreachable!("a gathered reply is finished by its connection"),
        }
    }
}

/// `INFO`'s text as a reply: a bulk string, a verbatim string in RESP3.
fn info_frame(text: String, protocol: Protocol) -> Vec<u8> {
    crate::kv::resp::Frame::Verbatim {
        format: *b"txt",
        text: text.into_bytes(),
    }
    .to_bytes(protocol)
}

/// A reply slot: the reply once known, and what to do to it.
#[derive(Debug)]
struct Pending {
    reply: Option<Vec<u8>>,
    finish: Finish,
}

/// A connection session's numbering in one lane.
#[derive(Debug, Default)]
struct LaneSeqs {
    /// The last sequence number given (0: none yet; numbers start at 1).
    next: u64,
    /// Numbers whose result has not come back.
    unanswered: BTreeSet<u64>,
}

/// What a connection is waiting for from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outstanding {
    Nothing,
    Writes(usize),
    Reads(usize),
}

pub(super) struct ClientConnection {
    pub(super) socket: ClientStream,
    pub(super) generation: u64,
    /// Received bytes; `input[input_start..]` is not parsed yet.
    pub(super) input: Vec<u8>,
    pub(super) input_start: usize,
    pub(super) parser: RequestParser,
    pub(super) output: Vec<u8>,
    pub(super) output_sent: usize,
    /// Replies not yet in `output`, in order; `reply: None` while awaited. The front is
    /// reply number `first_pending_no`.
    pending: VecDeque<Pending>,
    first_pending_no: u64,
    outstanding: Outstanding,
    /// A request waiting for the other kind of outstanding command to finish.
    pub(super) deferred: Option<Request>,
    session: Option<SessionId>,
    /// The session's numbering in each lane (group) the connection wrote to, by lane: each
    /// group's session table sees its own gapless sequence.
    lane_seqs: Vec<LaneSeqs>,
    pub(super) last_active: Instant,
    /// Stop reading and parsing; close once every pending reply is sent (QUIT, bad input).
    pub(super) closing: bool,
    /// The client closed its side: answer what it sent, then close.
    pub(super) read_closed: bool,
    /// Input was left unread because of backpressure.
    pub(super) read_paused: bool,
    /// What `CLIENT` and `HELLO` read and change.
    pub(super) state: ClientState,
    /// `MULTI`'s queue and the `WATCH`ed keys.
    tx: Transaction,
    /// With many lanes: the slot of the keys `WATCH`ed and queued since the transaction
    /// began, which all must share (a transaction is one entry in one group's log).
    tx_slot: Option<u16>,
    /// Error replies sent, for `INFO errorstats`.
    pub(super) errors: ErrorCounts,
}

impl ClientConnection {
    pub(super) fn new(socket: ClientStream, generation: u64, limits: Limits) -> Self {
        use std::os::fd::AsRawFd;
        let state = ClientState::new(
            generation,
            socket.tcp().peer_addr().ok(),
            socket.tcp().local_addr().ok(),
            i64::from(socket.tcp().as_raw_fd()),
        );
        ClientConnection {
            state,
            socket,
            generation,
            input: Vec::new(),
            input_start: 0,
            parser: RequestParser::new(limits),
            output: Vec::new(),
            output_sent: 0,
            pending: VecDeque::new(),
            first_pending_no: 0,
            outstanding: Outstanding::Nothing,
            deferred: None,
            session: None,
            lane_seqs: Vec::new(),
            tx_slot: None,
            last_active: Instant::now(),
            closing: false,
            read_closed: false,
            read_paused: false,
            tx: Transaction::default(),
            errors: ErrorCounts::default(),
        }
    }

    pub(super) fn backpressured(&self, config: &ServerConfig) -> bool {
        self.pending.len() >= config.pipeline_replies_max
            || self.output.len() - self.output_sent >= config.output_bytes_max
    }

    fn next_reply_no(&self) -> u64 {
        self.first_pending_no + self.pending.len() as u64
    }

    /// Queues an immediate reply behind any awaited ones.
    fn reply(&mut self, bytes: &[u8]) {
        self.errors.note(bytes);
        if self.pending.is_empty() {
            self.output.extend_from_slice(bytes);
        } else {
            self.pending.push_back(Pending {
                reply: Some(bytes.to_vec()),
                finish: Finish::AsIs,
            });
        }
    }

    pub(super) fn reply_error(&mut self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 3);
        write_error(&mut bytes, text);
        self.reply(&bytes);
    }

    /// Numbers a write to lane `lane` in the connection's own session, which its first write
    /// makes.
    fn own_session_write<'a>(
        &mut self,
        node_id: NodeId,
        lane: usize,
        operation: Operation<'a>,
    ) -> KvWrite<'a> {
        let session = *self
            .session
            .get_or_insert_with(|| SessionId::generate(node_id as u16));
        if self.lane_seqs.len() <= lane {
            self.lane_seqs.resize_with(lane + 1, LaneSeqs::default);
        }
        let seqs = &mut self.lane_seqs[lane];
        seqs.next += 1;
        let seq = seqs.next;
        seqs.unanswered.insert(seq);
        let acked_below = *seqs.unanswered.first().expect("just inserted");
        KvWrite {
            session,
            seq,
            acked_below,
            operation,
        }
    }

    /// Takes the reply to the batched command `target` names: that command is no longer
    /// outstanding.
    pub(super) fn take_reply(&mut self, target: &Target, reply: &[u8]) {
        if let Some(seq) = target.seq {
            if let Some(seqs) = self.lane_seqs.get_mut(target.lane) {
                seqs.unanswered.remove(&seq);
            }
        }
        self.outstanding = match self.outstanding {
            Outstanding::Writes(1) | Outstanding::Reads(1) => Outstanding::Nothing,
            Outstanding::Writes(n) => Outstanding::Writes(n - 1),
            Outstanding::Reads(n) => Outstanding::Reads(n - 1),
            Outstanding::Nothing => {
                debug_assert!(false, "a reply nobody waits for");
                Outstanding::Nothing
            }
        };
        self.last_active = Instant::now();
        self.deliver(target.reply_no, reply);
    }

    /// Places the reply numbered `reply_no` (finished as its slot says), moving every ready
    /// reply to the output.
    fn deliver(&mut self, reply_no: u64, bytes: &[u8]) {
        debug_assert!(reply_no >= self.first_pending_no);
        let position = (reply_no - self.first_pending_no) as usize;
        let slot = &mut self.pending[position];
        debug_assert!(slot.reply.is_none(), "reply delivered twice");
        if let Finish::Gather(gather) = &mut slot.finish {
            gather.parts.push(bytes.to_vec());
            gather.left -= 1;
            if gather.left > 0 {
                return;
            }
            let combined = gather.combine.apply(&gather.parts);
            slot.finish = std::mem::replace(&mut gather.then, Finish::AsIs);
            return self.deliver(reply_no, &combined);
        }
        let finished = match &slot.finish {
            Finish::AsIs => None,
            Finish::Watch(keys) => Some(self.tx.watched(keys, bytes)),
            _ => Some(slot.finish.apply(bytes)),
        };
        self.errors.note(finished.as_deref().unwrap_or(bytes));
        if position == 0 {
            self.output
                .extend_from_slice(finished.as_deref().unwrap_or(bytes));
            self.pending.pop_front();
            self.first_pending_no += 1;
            while self.pending.front().is_some_and(|p| p.reply.is_some()) {
                let ready = self.pending.pop_front().expect("checked");
                self.output
                    .extend_from_slice(ready.reply.as_deref().expect("checked"));
                self.first_pending_no += 1;
            }
        } else {
            slot.reply = Some(finished.unwrap_or_else(|| bytes.to_vec()));
        }
    }

    /// The buffer sizes `CLIENT LIST` shows.
    pub(super) fn buffers(&self) -> ClientBuffers {
        ClientBuffers {
            input_unparsed_bytes: self.input.len() - self.input_start,
            input_capacity_bytes: self.input.capacity(),
            output_unsent_bytes: self.output.len() - self.output_sent,
            output_capacity_bytes: self.output.capacity(),
            replies_pending: self.pending.len(),
        }
    }

    /// This connection's `CLIENT LIST` line.
    pub(super) fn client_line(&self) -> String {
        client_line(&self.state, self.buffers())
    }

    pub(super) fn finished(&self) -> bool {
        let done_reading =
            self.closing || (self.read_closed && self.deferred.is_none() && !self.read_paused);
        done_reading && self.pending.is_empty() && self.output_sent == self.output.len()
    }

    /// Nothing pending, nothing outstanding and no input for `idle_timeout`.
    pub(super) fn idle(&self, idle_timeout: Duration) -> bool {
        self.pending.is_empty()
            && self.outstanding == Outstanding::Nothing
            && self.last_active.elapsed() >= idle_timeout
    }
}

/// What a request may need to know of the server around its connection.
pub(super) struct Context<'a> {
    pub(super) slot: usize,
    pub(super) members: &'a [NodeId],
    pub(super) node_id: NodeId,
    pub(super) open_connections: usize,
    /// The server's other connections (this one is not among them while it dispatches).
    pub(super) others: &'a [Option<ClientConnection>],
    pub(super) process: &'a ProcessFacts,
    pub(super) stats: ServerStats,
    /// The error replies of connections closed already.
    pub(super) closed_errors: &'a ErrorCounts,
}

/// Whether `request` is an `INFO` that needs the key count (a read through the node).
fn info_reads(kind: Kind, request: &Request) -> bool {
    kind == Kind::Local
        && request[0].eq_ignore_ascii_case(b"INFO")
        && InfoSections::parse(&request[1..]).keyspace()
}

/// Handles one request. Returns false if input processing must stop (deferred or closing).
pub(super) fn dispatch(
    conn: &mut ClientConnection,
    request: Request,
    batches: &mut Batches,
    ctx: &Context<'_>,
) -> bool {
    if request.is_empty() {
        return true;
    }
    // Authentication and ACLs, before anything is queued or batched (see `auth`). As in
    // Redis, a refusal inside `MULTI` aborts the transaction.
    if !conn.state.auth.unrestricted() && !admit(conn, &request, batches.config()) {
        conn.tx.mark_refused();
        return !conn.closing;
    }
    let control = Control::of(&request[0], conn.tx.in_multi());
    let route = match route(conn, control, &request, batches) {
        Ok(route) => route,
        Err(text) => {
            // As a queued command's other errors: the transaction is then refused at EXEC.
            conn.tx.mark_refused();
            conn.state.note_command(&request);
            conn.reply_error(&text);
            return true;
        }
    };
    if control.is_none() && conn.tx.in_multi() && !request[0].eq_ignore_ascii_case(b"QUIT") {
        conn.state.note_command(&request);
        let reply = conn
            .tx
            .queue(request, conn.state.protocol, batches.config());
        conn.reply(&reply);
        return true;
    }
    let kind = kind_of(&request[0]);
    // `WATCH` reads revisions and `EXEC` proposes: they wait like a read and a write.
    let reads = kind == Kind::Read || info_reads(kind, &request) || control == Some(Control::Watch);
    let writes = matches!(kind, Kind::Write | Kind::Explicit | Kind::Admin)
        || control == Some(Control::Exec);
    // A read sees the connection's earlier writes and no later one (module docs).
    let conflicting = (writes && matches!(conn.outstanding, Outstanding::Reads(_)))
        || (reads && matches!(conn.outstanding, Outstanding::Writes(_)));
    if conflicting {
        conn.deferred = Some(request);
        return false;
    }
    conn.state.note_command(&request);
    if let Some(control) = control {
        transaction_control(conn, control, route, &request, batches, ctx);
        if matches!(control, Control::Exec | Control::Discard | Control::Unwatch) {
            conn.tx_slot = None;
        }
        return true;
    }
    // Replies from the node are RESP2; under RESP3 they are converted on arrival.
    let finish = match conn.state.protocol {
        Protocol::Resp2 => Finish::AsIs,
        Protocol::Resp3 => Finish::Resp3(reply_shape(&request)),
    };
    match kind {
        Kind::Write => match parse_write(&request) {
            Ok(Some(operation)) => {
                if let Some(text) = size_refusal(&operation, batches.config()) {
                    conn.reply_error(&text);
                    return true;
                }
                if let Some((lanes, combine)) = fanned_out(&request, batches) {
                    let targets = await_parts(conn, ctx.slot, &lanes, true, combine, finish);
                    for (lane, mut target) in lanes.into_iter().zip(targets) {
                        let write = conn.own_session_write(ctx.node_id, lane, operation.clone());
                        target.seq = Some(write.seq);
                        batches.add_write(&write, target);
                    }
                    return true;
                }
                let write = conn.own_session_write(ctx.node_id, route.lane, operation);
                let target = await_reply(conn, ctx.slot, route, Some(write.seq), true, finish);
                batches.add_write(&write, target);
            }
            Ok(None) => unreachable_local(conn),
            Err(text) => conn.reply_error(&text),
        },
        Kind::Explicit => match parse_explicit_write(&request) {
            Ok(write) => {
                if let Some(text) = size_refusal(&write.operation, batches.config()) {
                    conn.reply_error(&text);
                    return true;
                }
                let target = await_reply(conn, ctx.slot, route, None, true, finish);
                batches.add_write(&write, target);
            }
            Err(text) => conn.reply_error(&text),
        },
        Kind::Read => match parse_read(&request) {
            Ok(Some(_))
                if batches.backend().lanes() > 1 && request[0].eq_ignore_ascii_case(b"SCAN") =>
            {
                scan_lanes(conn, &request, batches, ctx, finish);
            }
            Ok(Some(query)) => {
                if let Some((lanes, combine)) = fanned_out(&request, batches) {
                    let targets = await_parts(conn, ctx.slot, &lanes, false, combine, finish);
                    for target in targets {
                        batches.add_read(&query, target);
                    }
                    return true;
                }
                let target = await_reply(conn, ctx.slot, route, None, false, finish);
                batches.add_read(&query, target);
            }
            Ok(None) => unreachable_local(conn),
            Err(text) => conn.reply_error(&text),
        },
        Kind::Admin => {
            let mut buf = [0u8; 16];
            let name = upper(&request[0], &mut buf).unwrap_or_default();
            match parse_admin(name, &request) {
                Ok(AdminCommand::Members) => {
                    let reply = members_reply(&batches.backend().status());
                    match finish {
                        Finish::Resp3(shape) => conn.reply(&resp2_to_resp3(&reply, shape)),
                        _ => conn.reply(&reply),
                    }
                }
                Ok(command) => {
                    let target = await_reply(conn, ctx.slot, route, None, true, finish);
                    batches.submit_admin(command, target);
                }
                Err(text) => conn.reply_error(&text),
            }
        }
        Kind::Local => return local(conn, &request, batches, ctx),
    }
    true
}

/// Answers a local command (see `local_commands`); `INFO` with a keyspace section reads the
/// key count through the node first.
fn local(
    conn: &mut ClientConnection,
    request: &Request,
    batches: &mut Batches,
    ctx: &Context<'_>,
) -> bool {
    let backend = batches.backend();
    let is_leader_now = || backend.is_leader();
    let other_clients = || {
        ctx.others
            .iter()
            .flatten()
            .map(|other| (other.state.id, other.client_line()))
            .collect()
    };
    let buffers = conn.buffers();
    let own_line = |state: &ClientState| client_line(state, buffers);
    let config = batches.config();
    let cluster_view =
        |state: &ClientState| backend.cluster_view(&config.cluster_client_addrs, state.local_addr);
    let env = LocalEnv {
        config,
        process: ctx.process,
        is_leader: &is_leader_now,
        other_clients: &other_clients,
        own_line: &own_line,
        cluster_view: &cluster_view,
    };
    match local_command(request, &mut conn.state, &env) {
        LocalReply::Reply(frame) => {
            let bytes = frame.to_bytes(conn.state.protocol);
            conn.reply(&bytes);
        }
        LocalReply::Info(sections) => {
            let status = backend.status();
            let mut errors = ctx.closed_errors.clone();
            for other in ctx.others.iter().flatten() {
                errors.add(&other.errors);
            }
            errors.add(&conn.errors);
            let inputs = InfoInputs {
                status: &status,
                members: ctx.members,
                process: ctx.process,
                stats: ctx.stats,
                connected_clients: ctx.open_connections,
                connections_max: batches.config().connections_max,
                errors: &errors,
                shards: backend.lanes(),
                routing: backend.routing(),
            };
            let text = info_text(&sections, &inputs);
            let protocol = conn.state.protocol;
            if sections.keyspace() {
                let finish = Finish::Info {
                    text,
                    sections,
                    protocol,
                };
                if backend.lanes() == 1 {
                    let target =
                        await_reply(conn, ctx.slot, LaneRoute::unchecked(0), None, false, finish);
                    batches.add_read(&Query::KeyspaceCounts, target);
                } else {
                    let lanes = led_lanes(backend);
                    let targets =
                        await_parts(conn, ctx.slot, &lanes, false, Combine::PairSum, finish);
                    for target in targets {
                        batches.add_read(&Query::KeyspaceCounts, target);
                    }
                }
            } else {
                conn.reply(&info_frame(text, protocol));
            }
        }
        LocalReply::Quit => {
            conn.reply(b"+OK\r\n");
            conn.closing = true;
            return false;
        }
    }
    true
}

/// Runs `MULTI`, `EXEC`, `DISCARD`, `WATCH` or `UNWATCH` (see `transaction`).
fn transaction_control(
    conn: &mut ClientConnection,
    control: Control,
    route: LaneRoute,
    request: &Request,
    batches: &mut Batches,
    ctx: &Context<'_>,
) {
    match conn
        .tx
        .control(control, request, conn.state.protocol, batches.config())
    {
        ControlStep::Reply(bytes) => conn.reply(&bytes),
        ControlStep::ReadRevisions(keys) => {
            let query = Query::Revisions(keys.iter().map(|key| &key[..]).collect());
            let target = await_reply(
                conn,
                ctx.slot,
                route,
                None,
                false,
                Finish::Watch(keys.clone()),
            );
            batches.add_read(&query, target);
        }
        ControlStep::Propose(plan, reply) => {
            let write = conn.own_session_write(ctx.node_id, route.lane, plan.operation());
            let target = await_reply(
                conn,
                ctx.slot,
                route,
                Some(write.seq),
                true,
                Finish::Exec(reply),
            );
            batches.add_write(&write, target);
        }
    }
}

/// The lane `request` goes to (see `backend`): with one lane, lane 0 for every request (keys
/// of any slots together, as one Redis serves them). With many, its keys' slot's lane; a
/// request without keys goes to lane 0, except `EXEC`, which goes to the lane of its
/// transaction's slot. Refused with the error text: keys in different slots, also across a
/// transaction's `WATCH` and queued commands (`CROSSSLOT`), and, with
/// [`ClusterMode::Redirect`], a key whose group another node leads (`MOVED`).
fn route(
    conn: &mut ClientConnection,
    control: Option<Control>,
    request: &Request,
    batches: &Batches,
) -> Result<LaneRoute, String> {
    let backend = batches.backend();
    if backend.lanes() == 1 {
        return Ok(LaneRoute::unchecked(0));
    }
    let in_transaction = conn.tx.in_multi() || control == Some(Control::Watch);
    let slot = match request_slot(request) {
        RequestSlot::CrossSlot => return Err(CROSSSLOT_ERROR.to_string()),
        RequestSlot::NoKeys if control == Some(Control::Exec) => {
            return Ok(conn
                .tx_slot
                .map_or(LaneRoute::unchecked(0), |slot| backend.route_slot(slot)));
        }
        RequestSlot::NoKeys => return Ok(LaneRoute::unchecked(0)),
        RequestSlot::Slot(slot) => slot,
    };
    if in_transaction {
        match conn.tx_slot {
            Some(tx_slot) if tx_slot != slot => return Err(CROSSSLOT_ERROR.to_string()),
            _ => conn.tx_slot = Some(slot),
        }
    }
    let route = backend.route_slot(slot);
    let config = batches.config();
    if config.cluster_mode == ClusterMode::Redirect {
        let leader = backend
            .lane_leader(route.lane)
            .filter(|&id| id != backend.id());
        if let Some(addr) = leader.and_then(|id| config.cluster_client_addrs.get(&id)) {
            return Err(format!("MOVED {slot} {addr}"));
        }
    }
    Ok(route)
}

fn unreachable_local(conn: &mut ClientConnection) {
    debug_assert!(false, "kind_of and the parsers disagree");
    conn.reply_error("ERR internal error: unclassified command");
}

/// The lanes of this node's groups that it leads, by its latest view.
fn led_lanes(backend: &dyn Backend) -> Vec<usize> {
    let me = backend.id();
    (0..backend.lanes())
        .filter(|&lane| backend.lane_leader(lane) == Some(me))
        .collect()
}

/// With many lanes, the lanes a whole-keyspace command goes to and how its parts combine
/// (see `fan_out`); `None` for any other command, or with one lane.
fn fanned_out(request: &Request, batches: &Batches) -> Option<(Vec<usize>, Combine)> {
    let backend = batches.backend();
    if backend.lanes() == 1 {
        return None;
    }
    match fan_out(&request[0])? {
        (Lanes::Led, combine) => Some((led_lanes(backend), combine)),
        (Lanes::All, combine) => Some(((0..backend.lanes()).collect(), combine)),
    }
}

/// `SCAN` with many lanes: one page of one lane this node leads, its cursor the client's
/// (see `fan_out`). `request` has passed `parse_read`.
fn scan_lanes(
    conn: &mut ClientConnection,
    request: &Request,
    batches: &mut Batches,
    ctx: &Context<'_>,
    finish: Finish,
) {
    let backend = batches.backend();
    let led = led_lanes(backend);
    let cursor = std::str::from_utf8(&request[1])
        .ok()
        .and_then(|text| text.parse::<u64>().ok());
    let at = match cursor {
        Some(0) => match led.first() {
            Some(&lane) => ScanCursor { lane, hash: 0 },
            None => {
                // An empty master: a finished scan of nothing.
                let reply = b"*2\r\n$1\r\n0\r\n*0\r\n";
                return conn.reply(&finish.apply(reply));
            }
        },
        Some(cursor) => match ScanCursor::decode(cursor).filter(|c| c.lane < backend.lanes()) {
            Some(at) => at,
            None => return conn.reply_error("ERR invalid cursor"),
        },
        None => return conn.reply_error("ERR invalid cursor"),
    };
    let next_lane = led.iter().copied().find(|&lane| lane > at.lane);
    let mut lane_request = request.clone();
    lane_request[1] = at.hash.to_string().into_bytes();
    let Ok(Some(query)) = parse_read(&lane_request) else {
        return unreachable_local(conn);
    };
    let finish = Finish::Scan {
        lane: at.lane,
        next_lane,
        then: Box::new(finish),
    };
    // A whole lane's keys, whatever their slots: unchecked, as a keyless command.
    let target = await_reply(
        conn,
        ctx.slot,
        LaneRoute::unchecked(at.lane),
        None,
        false,
        finish,
    );
    batches.add_read(&query, target);
}

/// Reserves the next reply slot for a command sent to `lanes`, one target per lane, whose
/// parts make its reply by `combine`, then `finish`. With no lanes, the reply is the
/// combination of no parts, at once (or nothing, for a refusal already answered).
fn await_parts(
    conn: &mut ClientConnection,
    slot: usize,
    lanes: &[usize],
    write: bool,
    combine: Combine,
    finish: Finish,
) -> Vec<Target> {
    if lanes.is_empty() {
        let reply = combine.apply(&[]);
        match finish {
            Finish::AsIs => conn.reply(&reply),
            other => conn.reply(&other.apply(&reply)),
        }
        return Vec::new();
    }
    let gather = Gather {
        combine,
        left: lanes.len(),
        parts: Vec::with_capacity(lanes.len()),
        then: finish,
    };
    let first = await_reply(
        conn,
        slot,
        LaneRoute::unchecked(lanes[0]),
        None,
        write,
        Finish::Gather(Box::new(gather)),
    );
    let mut targets = vec![first];
    for &lane in &lanes[1..] {
        conn.outstanding = match conn.outstanding {
            Outstanding::Writes(n) => Outstanding::Writes(n + 1),
            Outstanding::Reads(n) => Outstanding::Reads(n + 1),
            Outstanding::Nothing => unreachable!("await_reply made it outstanding"),
        };
        targets.push(Target { lane, ..first });
    }
    targets
}

/// Reserves the next reply slot for a batched command, finished on arrival by `finish`.
fn await_reply(
    conn: &mut ClientConnection,
    slot: usize,
    route: LaneRoute,
    seq: Option<u64>,
    write: bool,
    finish: Finish,
) -> Target {
    let reply_no = conn.next_reply_no();
    conn.pending.push_back(Pending {
        reply: None,
        finish,
    });
    conn.outstanding = match (conn.outstanding, write) {
        (Outstanding::Nothing, true) => Outstanding::Writes(1),
        (Outstanding::Nothing, false) => Outstanding::Reads(1),
        (Outstanding::Writes(n), true) => Outstanding::Writes(n + 1),
        (Outstanding::Reads(n), false) => Outstanding::Reads(n + 1),
        (other, _) => unreachable!("dispatch defers conflicting commands, had {other:?}"),
    };
    Target {
        lane: route.lane,
        check: route.check,
        slot,
        generation: conn.generation,
        reply_no,
        seq,
    }
}

#[cfg(test)]
mod tests {
    use super::super::command_table::COMMANDS;
    use super::super::local_commands::LOCAL_COMMANDS;
    use super::*;

    /// Commands in the table that the dispatcher does not serve yet. When one is served, the
    /// test below says to remove it here.
    const NOT_YET_DISPATCHED: &[&str] = &[];

    /// Whether the dispatcher serves `name`: by the node (a write, read, admin or explicit
    /// write), as a local command, or as a transaction command.
    fn dispatched(name: &str) -> bool {
        let upper = name.to_ascii_uppercase();
        kind_of(upper.as_bytes()) != Kind::Local
            || LOCAL_COMMANDS.contains(&&upper[..])
            || Control::of(upper.as_bytes(), false).is_some()
    }

    #[test]
    fn the_dispatcher_serves_every_command_in_the_table() {
        for spec in COMMANDS {
            if NOT_YET_DISPATCHED.contains(&spec.name) {
                assert!(
                    !dispatched(spec.name),
                    "{} is dispatched now: remove it from NOT_YET_DISPATCHED",
                    spec.name
                );
            } else {
                assert!(dispatched(spec.name), "{} is not dispatched", spec.name);
            }
        }
        for name in NOT_YET_DISPATCHED {
            assert!(
                COMMANDS.iter().any(|spec| spec.name == *name),
                "{name} is not in the table"
            );
        }
    }

    #[test]
    fn last_command_names_are_one_word() {
        let mut state = ClientState::new(1, None, None, -1);
        state.note_command(&vec![b"CLIENT".to_vec(), b"List".to_vec()]);
        assert_eq!(state.last_command, "client|list");
        state.note_command(&vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(state.last_command, "get");
        state.note_command(&vec![b"a b\r\n".to_vec()]);
        assert_eq!(state.last_command, "ab");
    }
}

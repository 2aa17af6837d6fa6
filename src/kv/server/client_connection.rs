//! One client's connection: its requests, dispatched as they are parsed, and its replies.
//!
//! # Ordering and consistency
//!
//! Replies leave in request order, whatever order the results come back in. Reads are
//! linearizable (ReadIndex through [`Node::read_with`](crate::node::Node::read_with)). Within
//! one connection, a read waits for the connection's outstanding writes (and a write for its
//! outstanding reads), so a pipeline `SET k v; GET k` sees its own write and `GET k; SET k v`
//! does not see the later one. `READONLY` (stale local reads) is refused: reads are always
//! linearizable.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::batching::{Batches, Target};
use super::config::ServerConfig;
use super::local_commands::{info_text, local_command, LocalReply};
use super::parse::{
    kind_of, parse_explicit_write, parse_read, parse_write, size_refusal, upper, Kind,
};
use crate::kv::admin::{members_reply, parse_admin, AdminCommand};
use crate::kv::command::{Operation, Write as KvWrite};
use crate::kv::resp::{write_error, Limits, Request, RequestParser};
use crate::kv::session_id::SessionId;
use crate::raft::NodeId;

/// What a connection is waiting for from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outstanding {
    Nothing,
    Writes(usize),
    Reads(usize),
}

pub(super) struct ClientConnection {
    pub(super) socket: TcpStream,
    pub(super) generation: u64,
    /// Received bytes; `input[input_start..]` is not parsed yet.
    pub(super) input: Vec<u8>,
    pub(super) input_start: usize,
    pub(super) parser: RequestParser,
    pub(super) output: Vec<u8>,
    pub(super) output_sent: usize,
    /// Replies not yet in `output`, in order; `None` while awaited. The front is reply
    /// number `first_pending_no`.
    pending: VecDeque<Option<Vec<u8>>>,
    first_pending_no: u64,
    outstanding: Outstanding,
    /// A request waiting for the other kind of outstanding command to finish.
    pub(super) deferred: Option<Request>,
    session: Option<SessionId>,
    next_seq: u64,
    /// Sequence numbers of this connection's session whose result has not come back.
    unanswered_seqs: BTreeSet<u64>,
    pub(super) last_active: Instant,
    /// Stop reading and parsing; close once every pending reply is sent (QUIT, bad input).
    pub(super) closing: bool,
    /// The client closed its side: answer what it sent, then close.
    pub(super) read_closed: bool,
    /// Input was left unread because of backpressure.
    pub(super) read_paused: bool,
}

impl ClientConnection {
    pub(super) fn new(socket: TcpStream, generation: u64, limits: Limits) -> Self {
        ClientConnection {
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
            next_seq: 1,
            unanswered_seqs: BTreeSet::new(),
            last_active: Instant::now(),
            closing: false,
            read_closed: false,
            read_paused: false,
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
        if self.pending.is_empty() {
            self.output.extend_from_slice(bytes);
        } else {
            self.pending.push_back(Some(bytes.to_vec()));
        }
    }

    pub(super) fn reply_error(&mut self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 3);
        write_error(&mut bytes, text);
        self.reply(&bytes);
    }

    /// Numbers a write in the connection's own session, which its first write makes.
    fn own_session_write<'a>(&mut self, node_id: NodeId, operation: Operation<'a>) -> KvWrite<'a> {
        let session = *self
            .session
            .get_or_insert_with(|| SessionId::generate(node_id as u16));
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unanswered_seqs.insert(seq);
        let acked_below = *self.unanswered_seqs.first().expect("just inserted");
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
            self.unanswered_seqs.remove(&seq);
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
    let kind = kind_of(&request[0]);
    // A read sees the connection's earlier writes and no later one (module docs).
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
                if let Some(text) = size_refusal(&operation, batches.config()) {
                    conn.reply_error(&text);
                    return true;
                }
                let write = conn.own_session_write(ctx.node_id, operation);
                let target = await_reply(conn, ctx.slot, Some(write.seq), true);
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
                let target = await_reply(conn, ctx.slot, None, true);
                batches.add_write(&write, target);
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
                Ok(AdminCommand::Members) => conn.reply(&members_reply(&batches.node().status())),
                Ok(command) => {
                    let target = await_reply(conn, ctx.slot, None, true);
                    batches.submit_admin(command, target);
                }
                Err(text) => conn.reply_error(&text),
            }
        }
        Kind::Local => {
            let info = || info_text(&batches.node().status(), ctx.members, ctx.open_connections);
            match local_command(&request, conn.generation, info) {
                LocalReply::Reply(bytes) => conn.reply(&bytes),
                LocalReply::Quit => {
                    conn.reply(b"+OK\r\n");
                    conn.closing = true;
                    return false;
                }
            }
        }
    }
    true
}

fn unreachable_local(conn: &mut ClientConnection) {
    debug_assert!(false, "kind_of and the parsers disagree");
    conn.reply_error("ERR internal error: unclassified command");
}

/// Reserves the next reply slot for a batched command.
fn await_reply(conn: &mut ClientConnection, slot: usize, seq: Option<u64>, write: bool) -> Target {
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

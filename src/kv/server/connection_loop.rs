//! The connection loop: the server's one thread. It accepts connections, reads requests from
//! them, writes replies to them and closes them, all in one mio `Poll`, and hands the results
//! that come back from the node to the connections they belong to.
//!
//! There are up to two listeners, plaintext and TLS; what they accept goes into one table of
//! connections, each with a [`ClientStream`] that hides which kind it is. Every read and
//! write goes through it, so the rest of the loop does not know TLS exists; the stream's
//! module says how TLS stays correct under edge-triggered readiness.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::backend::Backend;
use super::batching::{Batches, CompletionQueue, FinishedBatch, Target};
use super::client_connection::{dispatch, ClientConnection, Context};
use super::client_stream::{ClientStream, RejectLog};
use super::config::ServerConfig;
use super::info::{ErrorCounts, ProcessFacts, ServerStats};
use super::ClientListeners;
use crate::kv::command::split_results;
use crate::kv::resp::write_error;
use crate::node::socket_drain::Drain;
use crate::raft::NodeId;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const TLS_LISTENER: Token = Token(2);
const FIRST_CONNECTION: usize = 3;
/// Bytes read from a socket per `read` call.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Events taken per poll.
const EVENTS_PER_POLL: usize = 1024;
/// How often idle connections are looked for.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

pub(super) struct ConnectionLoop {
    poll: Poll,
    /// Plaintext clients, if served.
    listener: Option<TcpListener>,
    /// TLS clients, if served, with the configuration their sessions share.
    tls_listener: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    /// Log lines for TLS connections closed on error, rate-limited.
    tls_rejects: RejectLog,
    batches: Batches,
    config: ServerConfig,
    members: Vec<NodeId>,
    stop: Arc<AtomicBool>,
    connections: Vec<Option<ClientConnection>>,
    free_slots: Vec<usize>,
    open_connections: usize,
    next_generation: u64,
    read_buffer: Vec<u8>,
    /// Connections that got replies this iteration (to flush and maybe resume).
    touched: Vec<usize>,
    node_id: NodeId,
    /// Fixed facts `INFO` and `CONFIG GET` show.
    process: ProcessFacts,
    /// Counters `INFO stats` shows.
    stats: ServerStats,
    /// Error replies of the connections closed so far (`INFO errorstats`).
    closed_errors: ErrorCounts,
}

impl ConnectionLoop {
    pub(super) fn new(
        backend: Arc<dyn Backend>,
        listeners: ClientListeners,
        members: Vec<NodeId>,
        config: ServerConfig,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        // Redis says port 0 for a listener that is off.
        let mut tcp_port = 0;
        let listener = match listeners.plain {
            Some(listener) => {
                tcp_port = listener.local_addr()?.port();
                let mut listener = TcpListener::from_std(listener);
                poll.registry()
                    .register(&mut listener, LISTENER, Interest::READABLE)?;
                Some(listener)
            }
            None => None,
        };
        let mut tls_port = 0;
        let tls_listener = match listeners.tls {
            Some((listener, tls)) => {
                tls_port = listener.local_addr()?.port();
                let mut listener = TcpListener::from_std(listener);
                poll.registry()
                    .register(&mut listener, TLS_LISTENER, Interest::READABLE)?;
                Some((listener, tls))
            }
            None => None,
        };
        let mut process = ProcessFacts::new(tcp_port, Instant::now());
        process.tls_port = tls_port;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let node_id = backend.id();
        Ok(ConnectionLoop {
            poll,
            listener,
            tls_listener,
            tls_rejects: RejectLog::new(),
            batches: Batches::new(backend, waker, config.clone()),
            config,
            members,
            stop,
            connections: Vec::new(),
            free_slots: Vec::new(),
            open_connections: 0,
            next_generation: 1,
            read_buffer: vec![0; READ_CHUNK_BYTES],
            touched: Vec::new(),
            node_id,
            process,
            stats: ServerStats::default(),
            closed_errors: ErrorCounts::default(),
        })
    }

    /// Where node threads hand results back; its waker also wakes the loop to stop.
    pub(super) fn completions(&self) -> Arc<CompletionQueue> {
        self.batches.completions()
    }

    pub(super) fn run(&mut self) -> io::Result<()> {
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
                    LISTENER => self.accept(false),
                    TLS_LISTENER => self.accept(true),
                    WAKER => {}
                    Token(token) => {
                        let slot = token - FIRST_CONNECTION;
                        if event.is_writable() {
                            self.flush(slot);
                        }
                        if event.is_readable() || event.is_read_closed() {
                            self.read(slot, Drain::for_event(event));
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

    /// Accepts every waiting client of the plaintext (`tls` false) or TLS listener.
    fn accept(&mut self, tls: bool) {
        loop {
            let accepted = match (tls, &self.listener, &self.tls_listener) {
                (false, Some(listener), _) | (true, _, Some((listener, _))) => listener.accept(),
                _ => return,
            };
            let (mut socket, peer) = match accepted {
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
                // A TLS client could not read a plaintext error: it just sees the close.
                if !tls {
                    let _ = socket.write(b"-ERR max number of clients reached\r\n");
                }
                self.stats.connections_rejected += 1;
                continue;
            }
            self.stats.connections_received += 1;
            let _ = socket.set_nodelay(true);
            let Some(mut socket) = self.client_stream(socket, tls, peer) else {
                continue;
            };
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
            crate::metrics::kv_connection_opened();
            self.connections[slot] = Some(ClientConnection::new(
                socket,
                generation,
                self.config.limits,
            ));
        }
    }

    /// The stream for an accepted socket: as it is, or in a new TLS session.
    fn client_stream(
        &mut self,
        socket: TcpStream,
        tls: bool,
        peer: std::net::SocketAddr,
    ) -> Option<ClientStream> {
        if !tls {
            return Some(ClientStream::Plain(socket));
        }
        let (_, config) = self.tls_listener.as_ref()?;
        match ClientStream::tls(socket, Arc::clone(config)) {
            Ok(stream) => Some(stream),
            Err(e) => {
                self.tls_rejects.rejected(Some(peer), &io::Error::other(e));
                None
            }
        }
    }

    /// Reads until the socket is drained (as `drain` decides) or the connection is
    /// backpressured, handling every complete request.
    fn read(&mut self, slot: usize, drain: Drain) {
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
                    let drained = drain.drained(n, self.read_buffer.len(), conn.socket.is_tls());
                    self.process_input(slot);
                    self.flush(slot);
                    if drained {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if conn.socket.is_tls() {
                        self.tls_rejects.rejected(conn.socket.peer_addr(), &e);
                    }
                    self.close(slot);
                    return;
                }
            }
        }
    }

    /// Parses and dispatches buffered requests until input runs out or backpressure.
    fn process_input(&mut self, slot: usize) {
        // Out of the table while it dispatches, so that `CLIENT LIST` can read the others.
        let Some(mut conn) = self.connections.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.process_connection_input(slot, &mut conn);
        self.connections[slot] = Some(conn);
    }

    fn process_connection_input(&mut self, slot: usize, conn: &mut ClientConnection) {
        let ctx = Context {
            slot,
            members: &self.members,
            node_id: self.node_id,
            open_connections: self.open_connections,
            others: &self.connections,
            process: &self.process,
            stats: self.stats,
            closed_errors: &self.closed_errors,
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
                            self.stats.commands_processed += 1;
                            crate::metrics::kv_command(request.first().map_or(&[], Vec::as_slice));
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
        // Records rustls still holds count as sent, as bytes in the kernel's send buffer
        // would: they are bounded, and the next writable event pushes them.
        match conn.socket.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.close(slot);
                return;
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
            self.read(slot, Drain::ToWouldBlock);
        }
    }

    fn take_completions(&mut self) {
        for FinishedBatch { targets, result } in self.batches.take_finished() {
            match &result {
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
                    self.read(slot, Drain::ToWouldBlock);
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
        conn.take_reply(target, reply);
        if self.touched.last() != Some(&target.slot) {
            self.touched.push(target.slot);
        }
    }

    fn close_if_finished(&mut self, slot: usize) {
        if let Some(conn) = self.connections.get(slot).and_then(Option::as_ref) {
            // Not while TLS records wait: they may carry the last reply.
            if conn.finished() && !conn.socket.has_pending_output() {
                self.close(slot);
            }
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut conn) = self.connections.get_mut(slot).and_then(Option::take) {
            conn.socket.close_notify();
            self.closed_errors.add(&conn.errors);
            let _ = self.poll.registry().deregister(&mut conn.socket);
            self.free_slots.push(slot);
            self.open_connections -= 1;
            crate::metrics::kv_connection_closed();
        }
    }

    fn close_idle(&mut self) {
        let Some(idle_timeout) = self.config.idle_timeout else {
            return;
        };
        for slot in 0..self.connections.len() {
            let idle = match &self.connections[slot] {
                Some(conn) => conn.idle(idle_timeout),
                None => false,
            };
            if idle {
                self.close(slot);
            }
        }
    }
}

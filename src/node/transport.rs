//! Peer TCP transport on the event loop's mio `Poll`: one listener, one outbound connection per
//! peer (this node only ever *sends* on the connections it dialed, and only *receives* on the
//! ones it accepted), handshakes, reconnects, and bounded two-priority outbound queues.
//!
//! - **Handshake.** A dialer's first frame is a [`Handshake`] (cluster id, its id, the id it
//!   meant to reach). The acceptor refuses, with a logged reason, a foreign cluster, a
//!   misdirected call, an unknown peer, or a first frame that is not a handshake, and closes.
//! - **Malformed input** (framing, checksum, decoding, a message whose `from` differs from the
//!   handshake's) closes that connection and is counted in [`TransportStats`]; never a panic.
//! - **Reconnect** with exponential backoff from [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`],
//!   each wait multiplied by a random factor in [0.5, 1.5) so restarted peers do not dial in
//!   lockstep.
//! - **Outbound queues** are bounded in bytes per peer (`queue_bytes_max`, shared by both
//!   priorities): a message that does not fit is dropped and counted (Raft tolerates loss; the
//!   core's flow control resends). Messages to a peer without a connection are dropped too.
//!   Votes, heartbeats and all responses go in the high-priority queue, appends with entries and
//!   snapshot chunks in the low one; each write batch takes high-priority frames first, so a
//!   heartbeat waits at most for the batch being written ([`WRITE_BATCH_BYTES`] plus one
//!   frame), never behind the whole bulk queue.
//! - **Forwards** (a follower's proposal sent to the leader, and the leader's answer) are
//!   client traffic: they go in the low-priority queue under the same byte bound, so they
//!   never delay votes or heartbeats. [`Transport::send_forward`] says whether the frame was
//!   queued, since its caller must know whether the proposal certainly did not leave; and
//!   [`Transport::connection_epoch`] changes whenever a connection is lost, which tells the
//!   caller that frames queued earlier may or may not have been delivered.
//! - **Reads** drain a socket until `WouldBlock` (mio is edge-triggered); the frame decoder
//!   bounds memory per connection to one maximal frame.
//! - **Frame size rule.** Every node computes the same maximum frame payload from the same
//!   settings (`bind_transport` in `api`: room for the core's largest message, its largest
//!   snapshot chunk, and one entry of `NodeConfig::max_proposal_bytes`), and the decoder
//!   closes a connection that carries a larger frame. So a frame above the maximum must never
//!   be sent: the peer would close the connection and the core would resend the same frame
//!   forever, wedging replication to that peer. A proposal larger than `max_proposal_bytes`
//!   is refused before it reaches the log, and the core never puts more than one entry past
//!   `max_message_bytes` in an Append, so this does not happen; should a message still encode
//!   larger, it is not sent, but counted ([`TransportStats::messages_oversize`]) and logged
//!   once per peer. A forward that would be too large is refused
//!   ([`ForwardRefused::TooLarge`]), never queued. The per-peer queue bound is at least one
//!   maximal frame, so the largest entry is never dropped for want of room in an empty queue.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::raft::{Message, MessageBody, NodeId, SplitMix64};
use crate::wire::frame::FrameDecoder;
use crate::wire::message::{
    decode_forward, decode_handshake, decode_message, encode_forward, encode_handshake,
    encode_message, Forward, ForwardBody, Handshake, FRAME_KIND_FORWARD, FRAME_KIND_HANDSHAKE,
    FRAME_KIND_RAFT,
};

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Cap of the reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Bytes gathered into one write: bounds how long a high-priority frame can wait behind bulk.
pub const WRITE_BATCH_BYTES: usize = 256 << 10;
/// Bytes read per `read` call.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Counters of transport events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Outbound connections established.
    pub connects: u64,
    /// Outbound connections lost or failed.
    pub disconnects: u64,
    /// Inbound connections accepted.
    pub accepted: u64,
    /// Inbound connections refused at the handshake.
    pub handshakes_refused: u64,
    /// Inbound connections closed for malformed input.
    pub malformed_closed: u64,
    /// Messages dropped: queue full or no connection.
    pub messages_dropped: u64,
    /// Messages queued for sending.
    pub messages_queued: u64,
    /// Messages received and decoded.
    pub messages_received: u64,
    /// Forwards (proposals and results) received and decoded.
    pub forwards_received: u64,
    /// Messages not sent because their frame would exceed the maximum frame size.
    pub messages_oversize: u64,
}

/// What connections delivered in one pass, for the loop to take.
#[derive(Debug, Default)]
pub struct Received {
    /// Raft messages, for the core.
    pub messages: Vec<Message>,
    /// Forwarded proposals and their results.
    pub forwards: Vec<Forward>,
}

/// Why [`Transport::send_forward`] did not queue a frame; in every case nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardRefused {
    /// No connection to the peer (or not a peer).
    NoConnection,
    /// The peer's queue is at its byte bound.
    QueueFull,
    /// The frame would exceed the maximum frame size.
    TooLarge {
        /// The frame's payload size (or the proposal's, if it could not be encoded).
        bytes: u64,
        /// The maximum frame payload.
        limit: u64,
    },
}

struct Outbound {
    addr: SocketAddr,
    stream: Option<(TcpStream, Token)>,
    connected: bool,
    high: VecDeque<Vec<u8>>,
    low: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Bytes being written: a batch of whole frames.
    current: Vec<u8>,
    current_pos: usize,
    backoff: Duration,
    retry_at: Instant,
    /// Connections lost so far: frames queued under an older epoch may or may not have left.
    epoch: u64,
    /// An oversize message to this peer was logged already (logged once, counted always).
    oversize_logged: bool,
}

struct Inbound {
    stream: TcpStream,
    decoder: FrameDecoder,
    peer: Option<NodeId>,
    addr: SocketAddr,
}

/// The transport's state, owned by the event loop thread.
pub struct Transport {
    id: NodeId,
    cluster_id: u64,
    listener: TcpListener,
    outbound: BTreeMap<NodeId, Outbound>,
    outbound_tokens: HashMap<Token, NodeId>,
    inbound: HashMap<Token, Inbound>,
    next_token: usize,
    rng: SplitMix64,
    max_frame_payload_bytes: u32,
    queue_bytes_max: usize,
    stats: TransportStats,
    scratch: Vec<u8>,
    read_buf: Vec<u8>,
}

/// The token of the peer listener.
pub const LISTENER_TOKEN: Token = Token(0);
/// The token of the loop's waker.
pub const WAKER_TOKEN: Token = Token(1);

impl Transport {
    /// A transport for node `id`, with `listener` registered by the caller under
    /// [`LISTENER_TOKEN`]. `peers` may include `id` itself (ignored).
    pub fn new(
        id: NodeId,
        cluster_id: u64,
        peers: &BTreeMap<NodeId, SocketAddr>,
        listener: TcpListener,
        max_frame_payload_bytes: u32,
        queue_bytes_max: usize,
    ) -> Self {
        let now = Instant::now();
        let outbound = peers
            .iter()
            .filter(|(peer, _)| **peer != id)
            .map(|(peer, addr)| {
                (
                    *peer,
                    Outbound {
                        addr: *addr,
                        stream: None,
                        connected: false,
                        high: VecDeque::new(),
                        low: VecDeque::new(),
                        queued_bytes: 0,
                        current: Vec::new(),
                        current_pos: 0,
                        backoff: BACKOFF_MIN,
                        retry_at: now,
                        epoch: 0,
                        oversize_logged: false,
                    },
                )
            })
            .collect();
        Transport {
            id,
            cluster_id,
            listener,
            outbound,
            outbound_tokens: HashMap::new(),
            inbound: HashMap::new(),
            next_token: 2,
            rng: SplitMix64::new(id ^ cluster_id.rotate_left(17) ^ nanos_now()),
            max_frame_payload_bytes,
            queue_bytes_max,
            stats: TransportStats::default(),
            scratch: Vec::new(),
            read_buf: vec![0; READ_CHUNK_BYTES],
        }
    }

    /// Counters.
    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    /// Peers with an established outbound connection.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        self.outbound
            .iter()
            .filter(|(_, o)| o.connected)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The earliest instant a reconnect is due, if any peer is waiting for one.
    pub fn next_retry(&self) -> Option<Instant> {
        self.outbound
            .values()
            .filter(|o| o.stream.is_none())
            .map(|o| o.retry_at)
            .min()
    }

    /// Dials peers whose reconnect delay has passed.
    pub fn maintain(&mut self, registry: &Registry, now: Instant) {
        let due: Vec<NodeId> = self
            .outbound
            .iter()
            .filter(|(_, o)| o.stream.is_none() && o.retry_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for peer in due {
            let token = Token(self.next_token);
            self.next_token += 1;
            let outbound = self.outbound.get_mut(&peer).expect("due peer exists");
            match TcpStream::connect(outbound.addr) {
                Ok(mut stream) => {
                    match registry.register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        Ok(()) => {
                            let _ = stream.set_nodelay(true);
                            outbound.stream = Some((stream, token));
                            self.outbound_tokens.insert(token, peer);
                        }
                        Err(e) => {
                            log::warn!(
                                "node {}: cannot register connection to {peer}: {e}",
                                self.id
                            );
                            self.schedule_retry(peer, now);
                        }
                    }
                }
                Err(e) => {
                    log::debug!("node {}: connect to node {peer} failed: {e}", self.id);
                    self.schedule_retry(peer, now);
                }
            }
        }
    }

    fn schedule_retry(&mut self, peer: NodeId, now: Instant) {
        let jitter_permille = 500 + self.rng.range(0, 1000);
        let outbound = self.outbound.get_mut(&peer).expect("peer exists");
        let wait = outbound.backoff * jitter_permille as u32 / 1000;
        outbound.retry_at = now + wait;
        outbound.backoff = (outbound.backoff * 2).min(BACKOFF_MAX);
    }

    fn disconnect(&mut self, registry: &Registry, peer: NodeId, reason: &str) {
        let Some(outbound) = self.outbound.get_mut(&peer) else {
            return;
        };
        if let Some((mut stream, token)) = outbound.stream.take() {
            let _ = registry.deregister(&mut stream);
            self.outbound_tokens.remove(&token);
        }
        outbound.epoch += 1;
        if outbound.connected {
            log::info!("node {}: lost connection to node {peer}: {reason}", self.id);
            self.stats.disconnects += 1;
        }
        outbound.connected = false;
        let dropped = outbound.high.len() + outbound.low.len();
        self.stats.messages_dropped += dropped as u64;
        outbound.high.clear();
        outbound.low.clear();
        outbound.queued_bytes = 0;
        outbound.current.clear();
        outbound.current_pos = 0;
        self.schedule_retry(peer, Instant::now());
    }

    /// Queues `message` for its recipient; drops it (counted) if there is no connection or
    /// its queue is full.
    pub fn send(&mut self, registry: &Registry, message: &Message) {
        let peer = message.to;
        let Some(outbound) = self.outbound.get_mut(&peer) else {
            self.stats.messages_dropped += 1;
            return;
        };
        if outbound.stream.is_none() {
            self.stats.messages_dropped += 1;
            return;
        }
        let mut frame = Vec::new();
        if let Err(e) = encode_message(message, &mut self.scratch, &mut frame) {
            log::error!(
                "node {}: cannot encode {}: {e}",
                self.id,
                message.body.kind_name()
            );
            self.stats.messages_dropped += 1;
            return;
        }
        // The peer's decoder would close the connection over it and the core would resend
        // it forever (see the module docs).
        if frame.len() > self.max_frame_payload_bytes as usize {
            self.stats.messages_oversize += 1;
            if !outbound.oversize_logged {
                outbound.oversize_logged = true;
                log::error!(
                    "node {}: not sending a {} of {} bytes to node {peer}: above the {} byte \
                     frame limit (logged once per peer)",
                    self.id,
                    message.body.kind_name(),
                    frame.len(),
                    self.max_frame_payload_bytes
                );
            }
            return;
        }
        if outbound.queued_bytes + frame.len() > self.queue_bytes_max {
            self.stats.messages_dropped += 1;
            return;
        }
        outbound.queued_bytes += frame.len();
        crate::metrics::peer_message_queued(message, frame.len());
        let bulk = match &message.body {
            MessageBody::Append { entries, .. } => !entries.is_empty(),
            MessageBody::InstallSnapshot { .. } => true,
            _ => false,
        };
        if bulk {
            outbound.low.push_back(frame);
        } else {
            outbound.high.push_back(frame);
        }
        self.stats.messages_queued += 1;
        if outbound.connected && outbound.current_pos == outbound.current.len() {
            self.flush(registry, peer);
        }
    }

    /// Queues `forward` for its recipient in the low-priority queue, under the same byte
    /// bound as Raft messages. `Err` means nothing was queued, so nothing can arrive.
    pub fn send_forward(
        &mut self,
        registry: &Registry,
        forward: &Forward,
    ) -> Result<(), ForwardRefused> {
        let peer = forward.to;
        let Some(outbound) = self.outbound.get_mut(&peer) else {
            return Err(ForwardRefused::NoConnection);
        };
        if outbound.stream.is_none() {
            return Err(ForwardRefused::NoConnection);
        }
        let limit = u64::from(self.max_frame_payload_bytes);
        let mut frame = Vec::new();
        encode_forward(forward, &mut self.scratch, &mut frame).map_err(|_| {
            let bytes = match &forward.body {
                ForwardBody::Propose { data, .. } => data.len() as u64,
                ForwardBody::Result { .. } => 0,
            };
            ForwardRefused::TooLarge { bytes, limit }
        })?;
        if frame.len() as u64 > limit {
            return Err(ForwardRefused::TooLarge {
                bytes: frame.len() as u64,
                limit,
            });
        }
        if outbound.queued_bytes + frame.len() > self.queue_bytes_max {
            self.stats.messages_dropped += 1;
            return Err(ForwardRefused::QueueFull);
        }
        outbound.queued_bytes += frame.len();
        crate::metrics::peer_bytes_queued(peer, frame.len());
        outbound.low.push_back(frame);
        self.stats.messages_queued += 1;
        if outbound.connected && outbound.current_pos == outbound.current.len() {
            self.flush(registry, peer);
        }
        Ok(())
    }

    /// The peers this transport dials (and accepts), with their addresses.
    pub fn peers(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.outbound.iter().map(|(id, o)| (*id, o.addr)).collect()
    }

    /// Starts dialing (and accepting) `peer` at `addr`, or moves it there (membership changes,
    /// see `membership`). Its own id is ignored.
    pub fn set_peer(&mut self, registry: &Registry, peer: NodeId, addr: SocketAddr) {
        if peer == self.id {
            return;
        }
        if let Some(outbound) = self.outbound.get_mut(&peer) {
            if outbound.addr != addr {
                outbound.addr = addr;
                self.disconnect(registry, peer, "its address changed");
            }
            return;
        }
        self.outbound.insert(
            peer,
            Outbound {
                addr,
                stream: None,
                connected: false,
                high: VecDeque::new(),
                low: VecDeque::new(),
                queued_bytes: 0,
                current: Vec::new(),
                current_pos: 0,
                backoff: BACKOFF_MIN,
                retry_at: Instant::now(),
                epoch: 0,
                oversize_logged: false,
            },
        );
    }

    /// Forgets `peer` (it left the configuration): closes the outbound connection; its
    /// inbound connections are refused from the next handshake on.
    pub fn remove_peer(&mut self, registry: &Registry, peer: NodeId) {
        if self.outbound.contains_key(&peer) {
            self.disconnect(registry, peer, "it left the configuration");
            self.outbound.remove(&peer);
        }
    }

    /// Changes each time the outbound connection to `peer` is lost (0 for unknown peers).
    pub fn connection_epoch(&self, peer: NodeId) -> u64 {
        self.outbound.get(&peer).map_or(0, |o| o.epoch)
    }

    /// Writes queued frames of every connected peer until done or the socket is full.
    pub fn flush_all(&mut self, registry: &Registry) {
        let peers: Vec<NodeId> = self
            .outbound
            .iter()
            .filter(|(_, o)| o.connected)
            .map(|(id, _)| *id)
            .collect();
        for peer in peers {
            self.flush(registry, peer);
        }
    }

    fn flush(&mut self, registry: &Registry, peer: NodeId) {
        let outbound = self.outbound.get_mut(&peer).expect("peer exists");
        if let Err(reason) = write_queued(outbound) {
            self.disconnect(registry, peer, &reason);
        }
    }

    /// Accepts every pending inbound connection.
    pub fn accept(&mut self, registry: &Registry) {
        // Bounded by the kernel's accept backlog: ends at WouldBlock.
        loop {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
                        log::warn!("node {}: cannot register inbound connection: {e}", self.id);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.stats.accepted += 1;
                    self.inbound.insert(
                        token,
                        Inbound {
                            stream,
                            decoder: FrameDecoder::new(self.max_frame_payload_bytes),
                            peer: None,
                            addr,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("node {}: accept failed: {e}", self.id);
                    return;
                }
            }
        }
    }

    /// Handles a readiness event on a connection; decoded messages and forwards are appended
    /// to `received`.
    pub fn handle_event(
        &mut self,
        registry: &Registry,
        event: &mio::event::Event,
        received: &mut Received,
    ) {
        let token = event.token();
        if let Some(&peer) = self.outbound_tokens.get(&token) {
            self.outbound_event(registry, peer, event);
        } else if self.inbound.contains_key(&token) {
            if let Err(reason) = self.read_inbound(token, received) {
                let inbound = self.inbound.remove(&token).expect("inbound exists");
                self.close_inbound(registry, inbound, &reason);
            }
        }
    }

    fn outbound_event(&mut self, registry: &Registry, peer: NodeId, event: &mio::event::Event) {
        if let Err(reason) = self.outbound_ready(peer, event) {
            self.disconnect(registry, peer, &reason);
            return;
        }
        self.flush(registry, peer);
    }

    fn outbound_ready(&mut self, peer: NodeId, event: &mio::event::Event) -> Result<(), String> {
        let outbound = self.outbound.get_mut(&peer).expect("peer exists");
        let Some((stream, _)) = outbound.stream.as_mut() else {
            return Ok(());
        };
        if !outbound.connected {
            if !event.is_writable() && !event.is_error() && !event.is_write_closed() {
                return Ok(());
            }
            if let Ok(Some(e)) | Err(e) = stream.take_error() {
                return Err(format!("connect failed: {e}"));
            }
            match stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect failed: {e}")),
            }
            outbound.connected = true;
            outbound.backoff = BACKOFF_MIN;
            self.stats.connects += 1;
            log::info!(
                "node {}: connected to node {peer} at {}",
                self.id,
                outbound.addr
            );
            // The handshake goes first, before anything queued while connecting.
            outbound.current.clear();
            outbound.current_pos = 0;
            let handshake = Handshake {
                cluster_id: self.cluster_id,
                from: self.id,
                to: peer,
            };
            encode_handshake(&handshake, &mut outbound.current)
                .map_err(|e| format!("cannot encode handshake: {e}"))?;
        }
        if event.is_readable() || event.is_read_closed() {
            drain_outbound(stream, &mut self.read_buf)?;
        }
        Ok(())
    }

    fn read_inbound(&mut self, token: Token, received: &mut Received) -> Result<(), String> {
        let inbound = self.inbound.get_mut(&token).expect("inbound exists");
        // Ends at WouldBlock, EOF or an error; each pass consumes what it read.
        loop {
            let n = match inbound.stream.read(&mut self.read_buf) {
                Ok(0) => return Err("closed by the peer".to_string()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read failed: {e}")),
            };
            let mut fed = 0;
            while fed < n {
                fed += inbound.decoder.feed(&self.read_buf[fed..n]);
                while let Some((kind, payload)) = inbound
                    .decoder
                    .next_frame()
                    .map_err(|e| format!("malformed frame: {e}"))?
                {
                    match inbound.peer {
                        None => {
                            if kind != FRAME_KIND_HANDSHAKE {
                                return Err(format!(
                                    "handshake refused: first frame has kind {kind}, not a handshake"
                                ));
                            }
                            let hs = decode_handshake(&payload)
                                .map_err(|e| format!("handshake refused: {e}"))?;
                            if hs.cluster_id != self.cluster_id {
                                return Err(format!(
                                    "handshake refused: node {} belongs to cluster {}, this is cluster {}",
                                    hs.from, hs.cluster_id, self.cluster_id
                                ));
                            }
                            if hs.to != self.id {
                                return Err(format!(
                                    "handshake refused: node {} dialed node {} but reached node {}; check the peer addresses",
                                    hs.from, hs.to, self.id
                                ));
                            }
                            if hs.from == self.id || !self.outbound.contains_key(&hs.from) {
                                return Err(format!(
                                    "handshake refused: node {} is not a configured peer",
                                    hs.from
                                ));
                            }
                            log::info!(
                                "node {}: accepted node {} from {}",
                                self.id,
                                hs.from,
                                inbound.addr
                            );
                            inbound.peer = Some(hs.from);
                        }
                        Some(peer) if kind == FRAME_KIND_FORWARD => {
                            let forward = decode_forward(&payload)
                                .map_err(|e| format!("malformed forward: {e}"))?;
                            if forward.from != peer || forward.to != self.id {
                                return Err(format!(
                                    "malformed: forward from {} to {} on node {peer}'s connection",
                                    forward.from, forward.to
                                ));
                            }
                            self.stats.forwards_received += 1;
                            crate::metrics::peer_bytes_received(peer, payload.len());
                            received.forwards.push(forward);
                        }
                        Some(peer) => {
                            if kind != FRAME_KIND_RAFT {
                                return Err(format!("malformed: unexpected frame kind {kind}"));
                            }
                            let message = decode_message(&payload)
                                .map_err(|e| format!("malformed message: {e}"))?;
                            if message.from != peer || message.to != self.id {
                                return Err(format!(
                                    "malformed: message from {} to {} on node {peer}'s connection",
                                    message.from, message.to
                                ));
                            }
                            self.stats.messages_received += 1;
                            crate::metrics::peer_message_received(&message, payload.len());
                            received.messages.push(message);
                        }
                    }
                }
            }
        }
    }

    fn close_inbound(&mut self, registry: &Registry, mut inbound: Inbound, reason: &str) {
        let _ = registry.deregister(&mut inbound.stream);
        if reason.starts_with("handshake refused") {
            self.stats.handshakes_refused += 1;
            log::warn!(
                "node {}: connection from {}: {reason}",
                self.id,
                inbound.addr
            );
        } else if reason.starts_with("malformed") {
            self.stats.malformed_closed += 1;
            log::warn!(
                "node {}: connection from {}: {reason}",
                self.id,
                inbound.addr
            );
        } else if let Some(peer) = inbound.peer {
            log::info!(
                "node {}: inbound connection of node {peer} ended: {reason}",
                self.id
            );
        }
    }

    /// Closes every connection (at shutdown).
    pub fn close_all(&mut self, registry: &Registry) {
        let peers: Vec<NodeId> = self.outbound.keys().copied().collect();
        for peer in peers {
            if let Some(outbound) = self.outbound.get_mut(&peer) {
                if let Some((mut stream, token)) = outbound.stream.take() {
                    let _ = registry.deregister(&mut stream);
                    self.outbound_tokens.remove(&token);
                }
                outbound.connected = false;
            }
        }
        for (_, mut inbound) in self.inbound.drain() {
            let _ = registry.deregister(&mut inbound.stream);
        }
        let _ = registry.deregister(&mut self.listener);
    }
}

fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes queued frames until done or the socket is full; `Err` names why the connection must
/// close.
fn write_queued(outbound: &mut Outbound) -> Result<(), String> {
    let Some((stream, _)) = outbound.stream.as_mut() else {
        return Ok(());
    };
    // Bounded: each pass writes bytes, refills from the bounded queues, or returns.
    loop {
        if outbound.current_pos == outbound.current.len() {
            outbound.current.clear();
            outbound.current_pos = 0;
            while outbound.current.len() < WRITE_BATCH_BYTES {
                let Some(frame) = outbound
                    .high
                    .pop_front()
                    .or_else(|| outbound.low.pop_front())
                else {
                    break;
                };
                outbound.queued_bytes -= frame.len();
                if outbound.current.is_empty() && frame.len() >= WRITE_BATCH_BYTES {
                    // A large frame is written from its own buffer, not copied: a frame of
                    // tens of MiB would cost the loop a copy per peer.
                    outbound.current = frame;
                    break;
                }
                outbound.current.extend_from_slice(&frame);
            }
            if outbound.current.is_empty() {
                return Ok(());
            }
        }
        match stream.write(&outbound.current[outbound.current_pos..]) {
            Ok(0) => return Err("connection closed while writing".to_string()),
            Ok(n) => outbound.current_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write failed: {e}")),
        }
    }
}

/// Drains an outbound socket, on which the acceptor never writes: data is ignored, EOF or an
/// error means it refused or went away.
fn drain_outbound(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), String> {
    // Ends at WouldBlock, EOF or an error.
    loop {
        match stream.read(buf) {
            Ok(0) => return Err("closed by the peer".to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Entry, EntryKind};
    use mio::{Events, Poll};

    fn append(index: u64, bytes: usize) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::Append {
                prev_log_index: index - 1,
                prev_log_term: 1,
                entries: vec![Entry {
                    term: 1,
                    index,
                    kind: EntryKind::Normal,
                    data: vec![0xAB; bytes],
                }],
                leader_commit: 0,
            },
        }
    }

    #[test]
    fn a_heartbeat_overtakes_queued_bulk_and_the_queue_is_bounded() {
        const APPEND_BYTES: usize = 256 << 10;
        const APPENDS: u64 = 80;
        let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut poll = Poll::new().unwrap();
        let mut own = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        poll.registry()
            .register(&mut own, LISTENER_TOKEN, Interest::READABLE)
            .unwrap();
        let peers: BTreeMap<NodeId, SocketAddr> = [
            (1, own.local_addr().unwrap()),
            (2, peer.local_addr().unwrap()),
        ]
        .into();
        // A 1 MiB bound: of 80 appends of 256 KiB (20 MiB), the kernel's socket buffers take
        // some while the peer is not reading, the queue four more, the rest are dropped.
        let mut transport = Transport::new(1, 7, &peers, own, 1 << 20, 1 << 20);
        transport.maintain(poll.registry(), Instant::now());
        let (mut conn, _) = peer.accept().unwrap();
        let mut events = Events::with_capacity(16);
        let mut received = Received::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while transport.connected_peers().is_empty() {
            assert!(Instant::now() < deadline, "never connected");
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            for event in events.iter() {
                transport.handle_event(poll.registry(), event, &mut received);
            }
        }
        for index in 1..=APPENDS {
            transport.send(poll.registry(), &append(index, APPEND_BYTES));
        }
        let heartbeat = Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::Heartbeat {
                commit: 0,
                round: 9,
            },
        };
        transport.send(poll.registry(), &heartbeat);
        let dropped = transport.stats().messages_dropped;
        assert!(dropped > 0, "the byte bound must drop some appends");
        let queued = APPENDS - dropped;

        // The peer reads frames in order and reports how many appends came before the heartbeat.
        let reader = std::thread::spawn(move || {
            let mut decoder = FrameDecoder::new(1 << 20);
            let mut buf = vec![0u8; 64 << 10];
            let mut appends_before = 0u64;
            let mut handshake_seen = false;
            loop {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed before the heartbeat");
                let mut fed = 0;
                while fed < n {
                    fed += decoder.feed(&buf[fed..n]);
                    while let Some((kind, payload)) = decoder.next_frame().unwrap() {
                        if kind == FRAME_KIND_HANDSHAKE {
                            let hs = decode_handshake(&payload).unwrap();
                            assert_eq!((hs.cluster_id, hs.from, hs.to), (7, 1, 2));
                            handshake_seen = true;
                            continue;
                        }
                        assert!(handshake_seen, "the handshake must come first");
                        match decode_message(&payload).unwrap().body {
                            MessageBody::Heartbeat { round: 9, .. } => return appends_before,
                            MessageBody::Append { .. } => appends_before += 1,
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                }
            }
        });
        while !reader.is_finished() {
            assert!(Instant::now() < deadline, "the heartbeat never arrived");
            poll.poll(&mut events, Some(Duration::from_millis(10)))
                .unwrap();
            for event in events.iter() {
                transport.handle_event(poll.registry(), event, &mut received);
            }
            transport.flush_all(poll.registry());
        }
        let appends_before = reader.join().unwrap();
        // What the kernel took before the heartbeat was queued, plus one write batch, may
        // precede it; the rest of the queue may not.
        assert!(
            appends_before < queued,
            "heartbeat waited behind the whole bulk queue: {appends_before} of {queued} appends first"
        );
    }
}

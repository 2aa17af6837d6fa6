//! Peer TCP transport on the event loop's mio `Poll`: one listener, two outbound connections
//! per peer (this node only ever *sends* on the connections it dialed, and only *receives* on
//! the ones it accepted), handshakes, reconnects, and bounded outbound queues.
//!
//! - **Two lanes per peer.** A *control* connection carries votes, heartbeats and every
//!   response; a *bulk* connection carries Appends (all of them, empty ones included, so
//!   they stay in order among themselves), InstallSnapshot chunks and forwards. Frames are
//!   atomic on a connection, so on one connection a heartbeat queued behind a 72 MiB Append
//!   would wait for all of it (hundreds of ms on a loaded host, as long as an election
//!   timeout); on its own connection it waits for nothing. Across the lanes frames may be
//!   reordered, which Raft tolerates: a heartbeat's commit is capped by what the follower
//!   matched, and responses carry their own indexes. Both connections are dialed together,
//!   each with its own handshake (the acceptor treats them alike, so the wire format does
//!   not change), and lost together: if either fails, both close, and the peer's
//!   [`Transport::connection_epoch`] changes. The peer counts as connected when both are.
//!   What each lane carries (frame kinds of `crate::wire::message`):
//!
//! | lane    | frames                                                                        |
//! |---------|-------------------------------------------------------------------------------|
//! | control | votes, pre-votes, heartbeats, every response, TimeoutNow, ReadIndex: coalesced into batches (kind 6, or kind 2 alone); host beats (kind 7) |
//! | bulk    | Appends (small ones coalesced, large ones as kind 2 from pieces), InstallSnapshot chunks, forwards (kind 3) |
//!
//! - **Groups.** Several Raft groups may share a host, and this transport carries them all on
//!   the same two connections per peer: [`Transport::send`] takes the message's group and
//!   [`Received::messages`] gives it back with each message; a [`Forward`] names its own. The
//!   transport never reads a group; it checks only that a message or forward comes from the
//!   connection's authenticated peer and is addressed to this node.
//! - **Coalescing.** A Raft message whose payload is under [`COALESCE_MESSAGE_BYTES_MAX`]
//!   (heartbeats, votes, responses, small Appends) is not framed alone: it joins its
//!   connection's open batch (`crate::wire::message::RaftBatch`), which is sealed into one
//!   frame when the connection is flushed ([`Transport::flush_all`], once per loop round). So
//!   a round's heartbeats, acknowledgements and small appends of many groups to one host
//!   travel as one frame per lane, one header and one checksum for all of them. A lane keeps
//!   its order: a large frame, a forward or a host beat queued behind an open batch seals it
//!   first. A batch is also sealed at [`BATCH_PAYLOAD_BYTES_MAX`] or at
//!   `crate::wire::message::MAX_MESSAGES_PER_BATCH` messages, and a batch of one message goes
//!   as a plain Raft frame. The cost: a small message waits for the end of its round (never
//!   longer than the loop pass that produced it), not for a timer.
//! - **Host beats.** [`Transport::send_host_beat`] queues one host-to-host liveness frame on
//!   the control lane; a multi-group host sends one per peer per tick in place of its groups'
//!   heartbeats. [`Received::heard_from`] lists each peer from which any authenticated frame
//!   (Raft message, batch, forward, host beat) was decoded since it was last cleared, once.
//! - **Handshake and authentication.** A dialer's first frame on each connection is a
//!   [`Handshake`] (cluster id, its id, the id it meant to reach, its authentication mode and
//!   a nonce), and the acceptor answers with a challenge; with a shared secret the dialer then
//!   sends its proof (the exchange and its threat model: `super::peer_auth`; the byte layouts:
//!   `crate::wire::message`). With mutual TLS (`super::peer_tls`) all of this runs inside TLS,
//!   and the acceptor also checks that the certificate names the claimed dialer. The acceptor
//!   refuses, with a logged reason, a foreign cluster, a misdirected call, an unknown peer, a
//!   mode other than its own, a wrong proof, an older protocol version, a TLS failure, or a
//!   first frame that is not a handshake, and closes. The table of what each side sends:
//!
//! | step | connection state (dialer / acceptor)      | dialer sends         | acceptor sends |
//! |------|-------------------------------------------|----------------------|----------------|
//! | 0    | TCP (and TLS) connecting                  | (TLS handshake)      | (TLS handshake)|
//! | 1    | awaiting challenge / awaiting handshake   | `Handshake`          |                |
//! | 2    | awaiting challenge / awaiting proof       |                      | `Challenge`    |
//! | 3    | authenticated / awaiting proof            | `Proof`, then frames |                |
//! | 4    | authenticated / authenticated             | Raft, batch, forward, host beat frames | nothing |
//!
//!   Without a secret, steps 2 and 3 shrink: the dialer counts as connected once its
//!   `Handshake` is queued (frames follow it at once), the acceptor authenticates the
//!   connection on the `Handshake` alone and still answers with a `Challenge` (mode none),
//!   which the dialer checks only for a mode mismatch. Until a connection is authenticated
//!   the acceptor decodes nothing but the exchange's frames, under a frame limit of
//!   [`HANDSHAKE_FRAME_PAYLOAD_MAX`] bytes (raised to the full limit afterwards), and never
//!   hands a frame to the core; at most [`UNAUTHENTICATED_INBOUND_MAX`] connections may be in
//!   that state at once (more are closed at accept). Either side closes a connection not
//!   authenticated within [`HANDSHAKE_TIMEOUT`] of its TCP connect or accept.
//! - **Refusals** are logged as warnings with the remote address and the reason, rate-limited
//!   per remote address (`super::refusal_log`): a node with a wrong secret redials forever.
//!   With neither a secret nor TLS, the node warns at start that its peer port is open.
//! - **Malformed input** (framing, checksum, decoding, a message, a message in a batch, a
//!   forward or a host beat whose `from` differs from the handshake's, a frame kind the
//!   acceptor does not take) closes that connection and is counted in [`TransportStats`];
//!   never a panic.
//! - **Reconnect** with exponential backoff from [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`],
//!   each wait multiplied by a random factor in [0.5, 1.5) so restarted peers do not dial in
//!   lockstep.
//! - **Outbound queues** are bounded in bytes per connection (`queue_bytes_max` each, so at
//!   most twice that per peer), counting the open batch's frame, the frames queued *and* what
//!   is left of the one being written: a message that does not fit is dropped and counted (Raft tolerates loss; the
//!   core's flow control resends). This matters for large entries: while a follower receives
//!   a 64 MiB Append, the leader's heartbeats come back without progress, the leader falls
//!   back to probing and resends the same entry with each heartbeat response; the bound
//!   refuses those copies (an Append's size is computed before it is encoded, so a refusal
//!   costs no checksum), instead of queueing a second 64 MiB behind the first. Messages to a
//!   peer without a connection are dropped too, and a lost connection drops (and counts) the
//!   messages of its open batch with the rest of its queue. The bound is at least one maximal
//!   frame, so the largest entry always fits in an idle lane.
//! - **Writing.** Small frames are copied together into one buffer of up to
//!   [`WRITE_BATCH_BYTES`]; a large Append or forward is framed from pieces
//!   (`crate::wire::frame::OutFrame`): its header and fields, then the entry's data itself,
//!   shared with the core's log, written with vectored writes. Sending a 64 MiB entry to two
//!   peers copies none of it on the loop thread (the kernel's copy into the socket aside).
//! - **Forwards** (a follower's proposal sent to the leader, and the leader's answer) are
//!   client traffic on the bulk lane under the same byte bound, so they never delay votes or
//!   heartbeats. [`Transport::send_forward`] says whether the frame was queued, since its
//!   caller must know whether the proposal certainly did not leave; and
//!   [`Transport::connection_epoch`] changes whenever a connection is lost, which tells the
//!   caller that frames queued earlier may or may not have been delivered.
//! - **Reads** take at most [`READ_PASS_BYTES_MAX`] from a connection per loop pass, and a
//!   flush writes at most [`WRITE_PASS_BYTES_MAX`] to one. mio is edge-triggered, so a
//!   connection stopped at its budget is remembered and served again on the next pass
//!   ([`Transport::has_pending_io`] tells the loop not to wait in `poll`);
//!   a large frame streaming in thus never keeps the loop from its ticks or from a heartbeat
//!   on the control connection. The frame decoder bounds memory per connection to one
//!   maximal frame, sizes its buffer for a large frame once its header is in, and hands the
//!   finished frame over without a copy; entries are decoded as slices of it.
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
//!   ([`ForwardRefused::TooLarge`]), never queued.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use bytes::Bytes;

use super::peer_auth::{
    fresh_nonce, AcceptorHandshake, AcceptorStep, DialerHandshake, PeerSecurity, HANDSHAKE_TIMEOUT,
};
use super::peer_tls::PeerStream;
use super::refusal_log::RefusalLog;
use super::socket_drain::Drain;
use crate::raft::{GroupId, Message, MessageBody, NodeId, SplitMix64};
use crate::wire::frame::{FrameDecoder, OutFrame, HEADER_BYTES};
#[cfg(doc)]
use crate::wire::message::Handshake;
use crate::wire::message::{
    append_frame_bytes, decode_forward_shared, decode_host_beat, decode_message_shared,
    decode_quiesce, decode_raft_batch_shared, encode_forward_shared, encode_host_beat,
    encode_message_shared, encode_quiesce, message_payload_bytes, Forward, ForwardBody, HostBeat,
    QuiesceNotice, RaftBatch, FRAME_KIND_FORWARD, FRAME_KIND_HOST_BEAT, FRAME_KIND_QUIESCE,
    FRAME_KIND_RAFT, FRAME_KIND_RAFT_BATCH, HANDSHAKE_FRAME_PAYLOAD_MAX, MAX_NOTICES_PER_FRAME,
};

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Cap of the reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Small frames gathered into one buffer for one write; a frame this large or larger is
/// written from its own pieces.
pub const WRITE_BATCH_BYTES: usize = 256 << 10;
/// Raft messages whose payload is under this many bytes are coalesced: gathered, per
/// connection, into one batch frame written at the connection's next flush (module docs).
/// Heartbeats, votes, responses and small Appends are far under it; a larger message goes as
/// its own frame.
pub const COALESCE_MESSAGE_BYTES_MAX: usize = 16 << 10;
/// Largest payload of one batch frame: a batch that would grow past it is sealed and a new
/// one opened (and never past the frame limit the transport was given).
pub const BATCH_PAYLOAD_BYTES_MAX: usize = 256 << 10;
/// Bytes read per `read` call.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Bytes read from one connection per pass of the loop before the others get their turn: a
/// frame of tens of MiB streaming in must not keep the loop from a heartbeat on the control
/// connection, nor from its ticks, for the whole transfer.
pub const READ_PASS_BYTES_MAX: usize = 1 << 20;
/// Bytes written to one connection per flush, for the same reason: a receiver draining as
/// fast as the sender writes would otherwise keep the sender's loop writing one large frame
/// until its end.
pub const WRITE_PASS_BYTES_MAX: usize = 1 << 20;
/// Pieces handed to one vectored write.
const WRITE_SLICES_MAX: usize = 64;
/// Most inbound connections not yet authenticated at once; more are closed at accept, so a
/// flood of half-open handshakes costs a bounded amount of memory (each holds a small decoder,
/// and a TLS session under TLS) until [`HANDSHAKE_TIMEOUT`] closes them.
pub const UNAUTHENTICATED_INBOUND_MAX: usize = 64;
/// Prefix of every reason that is a refusal at the handshake (logged rate-limited as a
/// warning, counted in [`TransportStats::handshakes_refused`]).
const REFUSED: &str = "handshake refused";

/// The two connections to each peer. Frames on one connection arrive in order; across the
/// two they may not, which Raft tolerates (and the lanes are chosen so that it costs nothing,
/// see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Votes, heartbeats and every response: small, and needed within an election timeout.
    Control = 0,
    /// Appends (all of them, so they stay in order), snapshot chunks and forwards.
    Bulk = 1,
}

impl Lane {
    const ALL: [Lane; 2] = [Lane::Control, Lane::Bulk];

    fn name(self) -> &'static str {
        match self {
            Lane::Control => "control",
            Lane::Bulk => "bulk",
        }
    }

    /// The lane that carries `body`.
    fn of(body: &MessageBody) -> Lane {
        match body {
            MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. } => Lane::Bulk,
            _ => Lane::Control,
        }
    }
}

/// Counters of transport events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Outbound connections established.
    pub connects: u64,
    /// Outbound connections lost or failed.
    pub disconnects: u64,
    /// Inbound connections accepted.
    pub accepted: u64,
    /// Connections refused at the handshake (inbound, and outbound ones whose acceptor
    /// failed its proof or refused this node), or not authenticated in time.
    pub handshakes_refused: u64,
    /// Inbound connections closed for malformed input (framing garbage before the handshake
    /// included).
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
    /// Host beats queued for sending.
    pub host_beats_sent: u64,
    /// Host beats received and decoded.
    pub host_beats_received: u64,
    /// Batch frames (several Raft messages in one frame) queued for sending.
    pub batch_frames_sent: u64,
    /// Batch frames (several Raft messages in one frame) received and decoded.
    pub batch_frames_received: u64,
}

/// What connections delivered in one pass, for the loop to take (and clear: every field
/// grows until its taker empties it).
#[derive(Debug, Default)]
pub struct Received {
    /// Raft messages, each with the group it is for, in the order they arrived on their
    /// connection.
    pub messages: Vec<(GroupId, Message)>,
    /// Forwarded proposals and their results (each names its group).
    pub forwards: Vec<Forward>,
    /// Every peer from which at least one authenticated frame (Raft message, batch, forward
    /// or host beat) was decoded since this list was last cleared, each listed once.
    pub heard_from: Vec<NodeId>,
    /// Leaders' notices that they quiesced a group, with the sending host.
    pub quiesce: Vec<(NodeId, QuiesceNotice)>,
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

/// One outbound connection of a peer, with its own queue.
#[derive(Default)]
struct Connection {
    stream: Option<(PeerStream, Token)>,
    /// The TCP connect completed: the handshake may be written.
    tcp_up: bool,
    /// Authenticated: queued frames may be written.
    connected: bool,
    /// The exchange, until the acceptor's challenge has been checked.
    handshake: Option<DialerHandshake>,
    /// Frames from the acceptor (only its challenge), under the handshake frame limit.
    decoder: Option<FrameDecoder>,
    /// Closed if not authenticated by then.
    deadline: Option<Instant>,
    /// Small Raft messages queued since the last flush, behind every frame in `queue`;
    /// sealed into `queue` as one frame when the connection is flushed, or before any other
    /// frame is queued (so the lane keeps its order).
    batch: RaftBatch,
    /// Frames in order, each with the number of messages it carries.
    queue: VecDeque<(OutFrame, u32)>,
    /// Bytes accepted and not yet written to the socket: the open batch's frame (if it holds
    /// a message), the frames in `queue` and what is left of `writing` (bounded by
    /// `queue_bytes_max`). Counting the frame being written matters: a resent 64 MiB Append
    /// must not queue up behind the one still on its way.
    queued_bytes: usize,
    /// Pieces being written, whole frames in order.
    writing: VecDeque<Bytes>,
    /// Bytes of `writing`'s front piece already written.
    written_bytes: usize,
    /// The last write stopped at [`WRITE_PASS_BYTES_MAX`] with the socket still taking bytes
    /// (no writable event will come: the loop must flush again without waiting).
    at_write_budget: bool,
}

impl Connection {
    /// Drops everything queued; returns the messages dropped.
    fn clear(&mut self) -> u64 {
        self.tcp_up = false;
        self.handshake = None;
        self.decoder = None;
        self.deadline = None;
        let dropped = u64::from(self.batch.count())
            + self
                .queue
                .iter()
                .map(|(_, messages)| u64::from(*messages))
                .sum::<u64>();
        self.batch = RaftBatch::new();
        self.queue.clear();
        self.queued_bytes = 0;
        self.writing.clear();
        self.written_bytes = 0;
        self.at_write_budget = false;
        dropped
    }

    fn idle(&self) -> bool {
        self.writing.is_empty()
    }

    /// Bytes the open batch adds to `queued_bytes`: its frame once it holds a message.
    fn batch_queued_bytes(&self) -> usize {
        if self.batch.is_empty() {
            0
        } else {
            self.batch.frame_bytes()
        }
    }

    /// Moves the open batch, if it holds a message, to the queue as one frame (a plain Raft
    /// frame for a lone message); true if that frame is a batch of several.
    fn seal_batch(&mut self) -> bool {
        if self.batch.is_empty() {
            return false;
        }
        let batch = std::mem::take(&mut self.batch);
        let counted_bytes = batch.frame_bytes();
        let messages = batch.count();
        // Sealed under BATCH_PAYLOAD_BYTES_MAX and the frame limit: never too large.
        let frame = batch
            .finish()
            .expect("a batch is sealed under the frame limit");
        assert!(
            self.queued_bytes >= counted_bytes,
            "queued bytes below the open batch"
        );
        self.queued_bytes = self.queued_bytes - counted_bytes + frame.len();
        self.queue.push_back((OutFrame::Whole(frame), messages));
        messages > 1
    }
}

struct Outbound {
    addr: SocketAddr,
    /// Indexed by `Lane`: both are dialed together and lost together.
    lanes: [Connection; 2],
    backoff: Duration,
    retry_at: Instant,
    /// Connections lost so far: frames queued under an older epoch may or may not have left.
    epoch: u64,
    /// An oversize message to this peer was logged already (logged once, counted always).
    oversize_logged: bool,
}

struct Inbound {
    stream: PeerStream,
    /// Under [`HANDSHAKE_FRAME_PAYLOAD_MAX`] until authenticated, the full limit after.
    decoder: FrameDecoder,
    handshake: AcceptorHandshake,
    /// The authenticated peer: frames are decoded and handed on only once this is set.
    peer: Option<NodeId>,
    addr: SocketAddr,
    /// Closed if not authenticated by then.
    deadline: Instant,
    /// Handshake bytes not yet written (one challenge at most).
    out: Vec<u8>,
}

/// The transport's state, owned by the event loop thread.
pub struct Transport {
    id: NodeId,
    cluster_id: u64,
    security: PeerSecurity,
    refusals: RefusalLog,
    listener: TcpListener,
    outbound: BTreeMap<NodeId, Outbound>,
    outbound_tokens: HashMap<Token, (NodeId, Lane)>,
    inbound: HashMap<Token, Inbound>,
    /// Inbound connections that stopped at their read budget with bytes left (mio is
    /// edge-triggered: no new event comes for those); at most one entry per connection.
    read_again: Vec<Token>,
    next_token: usize,
    rng: SplitMix64,
    max_frame_payload_bytes: u32,
    queue_bytes_max: usize,
    stats: TransportStats,
    read_buf: Vec<u8>,
}

impl Outbound {
    fn new(addr: SocketAddr, now: Instant) -> Outbound {
        Outbound {
            addr,
            lanes: [Connection::default(), Connection::default()],
            backoff: BACKOFF_MIN,
            retry_at: now,
            epoch: 0,
            oversize_logged: false,
        }
    }

    fn lane(&mut self, lane: Lane) -> &mut Connection {
        &mut self.lanes[lane as usize]
    }

    /// Both connections are up (handshakes queued).
    fn connected(&self) -> bool {
        self.lanes.iter().all(|c| c.connected)
    }

    /// Neither connection exists: the peer waits for its next dial.
    fn dialing_due(&self) -> bool {
        self.lanes.iter().all(|c| c.stream.is_none())
    }
}

/// The token of the peer listener.
pub const LISTENER_TOKEN: Token = Token(0);
/// The token of the loop's waker.
pub const WAKER_TOKEN: Token = Token(1);

impl Transport {
    /// A transport for node `id`, with `listener` registered by the caller under
    /// [`LISTENER_TOKEN`]. `peers` may include `id` itself (ignored). Warns if `security`
    /// secures nothing.
    pub fn new(
        id: NodeId,
        cluster_id: u64,
        peers: &BTreeMap<NodeId, SocketAddr>,
        listener: TcpListener,
        max_frame_payload_bytes: u32,
        queue_bytes_max: usize,
        security: PeerSecurity,
    ) -> Self {
        if security.is_open() {
            log::warn!(
                "node {id}: peer connections are not authenticated: anyone who can reach the                  peer port {} can act as a cluster member; give every node                  --peer-secret-file or --peer-cert/--peer-key/--peer-ca",
                listener
                    .local_addr()
                    .map_or("?".to_string(), |a| a.to_string())
            );
        }
        let now = Instant::now();
        let outbound = peers
            .iter()
            .filter(|(peer, _)| **peer != id)
            .map(|(peer, addr)| (*peer, Outbound::new(*addr, now)))
            .collect();
        Transport {
            id,
            cluster_id,
            security,
            refusals: RefusalLog::default(),
            listener,
            outbound,
            outbound_tokens: HashMap::new(),
            inbound: HashMap::new(),
            read_again: Vec::new(),
            next_token: 2,
            rng: SplitMix64::new(id ^ cluster_id.rotate_left(17) ^ nanos_now()),
            max_frame_payload_bytes,
            queue_bytes_max,
            stats: TransportStats::default(),
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
            .filter(|(_, o)| o.connected())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The earliest instant a reconnect is due, if any peer is waiting for one.
    pub fn next_retry(&self) -> Option<Instant> {
        self.outbound
            .values()
            .filter(|o| o.dialing_due())
            .map(|o| o.retry_at)
            .min()
    }

    /// Dials peers whose reconnect delay has passed: both connections, or, if either fails,
    /// neither (retried after the backoff).
    pub fn maintain(&mut self, registry: &Registry, now: Instant) {
        self.expire_handshakes(registry, now);
        self.refusals.sweep(now);
        let due: Vec<NodeId> = self
            .outbound
            .iter()
            .filter(|(_, o)| o.dialing_due() && o.retry_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for peer in due {
            for lane in Lane::ALL {
                if let Err(reason) = self.dial(registry, peer, lane) {
                    log::debug!("node {}: {reason}", self.id);
                    self.disconnect(registry, peer, &reason);
                    break;
                }
            }
        }
    }

    fn dial(&mut self, registry: &Registry, peer: NodeId, lane: Lane) -> Result<(), String> {
        let token = Token(self.next_token);
        self.next_token += 1;
        let outbound = self.outbound.get_mut(&peer).expect("due peer exists");
        let mut tcp = TcpStream::connect(outbound.addr)
            .map_err(|e| format!("connect to node {peer} failed: {e}"))?;
        registry
            .register(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("cannot register connection to {peer}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let stream = PeerStream::dialed(tcp, self.security.tls.as_deref(), peer)?;
        let connection = outbound.lane(lane);
        connection.stream = Some((stream, token));
        connection.deadline = Some(Instant::now() + HANDSHAKE_TIMEOUT);
        self.outbound_tokens.insert(token, (peer, lane));
        Ok(())
    }

    /// Closes connections, both ways, that were not authenticated within
    /// [`HANDSHAKE_TIMEOUT`].
    fn expire_handshakes(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<(NodeId, bool)> = self
            .outbound
            .iter()
            .filter_map(|(peer, o)| {
                let late = o.lanes.iter().find(|c| {
                    c.stream.is_some() && !c.connected && c.deadline.is_some_and(|d| d <= now)
                })?;
                Some((*peer, late.tcp_up))
            })
            .collect();
        for (peer, tcp_up) in late {
            let reason = if tcp_up {
                format!(
                    "{REFUSED}: node {peer} did not finish the handshake within {HANDSHAKE_TIMEOUT:?}"
                )
            } else {
                format!("connect to node {peer} did not finish within {HANDSHAKE_TIMEOUT:?}")
            };
            self.outbound_failed(registry, peer, None, reason);
        }
        let late: Vec<Token> = self
            .inbound
            .iter()
            .filter(|(_, i)| i.peer.is_none() && i.deadline <= now)
            .map(|(token, _)| *token)
            .collect();
        for token in late {
            let inbound = self.inbound.remove(&token).expect("inbound exists");
            let reason = format!("{REFUSED}: not authenticated within {HANDSHAKE_TIMEOUT:?}");
            self.close_inbound(registry, inbound, &reason);
        }
    }

    /// An outbound connection of `peer` failed: a refusal at the handshake is logged as a
    /// warning (rate-limited), anything else as the transport always did; both connections
    /// close.
    fn outbound_failed(
        &mut self,
        registry: &Registry,
        peer: NodeId,
        lane: Option<Lane>,
        reason: String,
    ) {
        let reason = match lane {
            Some(lane) => format!("{} connection: {reason}", lane.name()),
            None => reason,
        };
        if reason.contains(REFUSED) {
            self.stats.handshakes_refused += 1;
            if let Some(addr) = self.outbound.get(&peer).map(|o| o.addr) {
                let line = format!("node {}: dialing node {peer} at {addr}: {reason}", self.id);
                self.refusals.refused(Instant::now(), addr, &line);
            }
        }
        self.disconnect(registry, peer, &reason);
    }

    fn schedule_retry(&mut self, peer: NodeId, now: Instant) {
        let jitter_permille = 500 + self.rng.range(0, 1000);
        let outbound = self.outbound.get_mut(&peer).expect("peer exists");
        let wait = outbound.backoff * jitter_permille as u32 / 1000;
        outbound.retry_at = now + wait;
        outbound.backoff = (outbound.backoff * 2).min(BACKOFF_MAX);
    }

    /// Closes both connections to `peer`, drops what was queued on them, and schedules a
    /// redial.
    fn disconnect(&mut self, registry: &Registry, peer: NodeId, reason: &str) {
        let Some(outbound) = self.outbound.get_mut(&peer) else {
            return;
        };
        let was_connected = outbound.lanes.iter().any(|c| c.connected);
        let mut dropped = 0;
        for connection in &mut outbound.lanes {
            if let Some((mut stream, token)) = connection.stream.take() {
                let _ = registry.deregister(stream.tcp());
                self.outbound_tokens.remove(&token);
            }
            connection.connected = false;
            dropped += connection.clear();
        }
        outbound.epoch += 1;
        if was_connected {
            log::info!("node {}: lost connection to node {peer}: {reason}", self.id);
            self.stats.disconnects += 1;
        }
        self.stats.messages_dropped += dropped;
        self.schedule_retry(peer, Instant::now());
    }

    /// Queues `message` of `group` for its recipient, on the connection of its lane; drops it
    /// (counted) if there is no connection or that lane's queue is full. A small message
    /// joins the lane's open batch and leaves at the next flush (module docs: coalescing).
    pub fn send(&mut self, registry: &Registry, group: GroupId, message: &Message) {
        let peer = message.to;
        let Some(outbound) = self.outbound.get_mut(&peer) else {
            self.stats.messages_dropped += 1;
            return;
        };
        let lane = Lane::of(&message.body);
        let connection = outbound.lane(lane);
        if connection.stream.is_none() {
            self.stats.messages_dropped += 1;
            return;
        }
        let payload_bytes = message_payload_bytes(message);
        if payload_bytes < COALESCE_MESSAGE_BYTES_MAX
            && payload_bytes + 8 <= self.batch_payload_bytes_max()
        {
            self.batch_message(peer, lane, group, message, payload_bytes);
            return;
        }
        let connection = self
            .outbound
            .get_mut(&peer)
            .expect("peer exists")
            .lane(lane);
        // An Append that cannot fit is refused before its checksum is paid for: a leader
        // probing a follower that is still receiving a large entry resends it on every
        // heartbeat response.
        if let MessageBody::Append { entries, .. } = &message.body {
            let frame_bytes = append_frame_bytes(entries);
            if frame_bytes <= self.max_frame_payload_bytes as usize
                && connection.queued_bytes + frame_bytes > self.queue_bytes_max
            {
                self.stats.messages_dropped += 1;
                return;
            }
        }
        let frame = match encode_message_shared(group, message) {
            Ok(frame) => frame,
            Err(e) => {
                log::error!(
                    "node {}: cannot encode {}: {e}",
                    self.id,
                    message.body.kind_name()
                );
                self.stats.messages_dropped += 1;
                return;
            }
        };
        // The peer's decoder would close the connection over it and the core would resend
        // it forever (see the module docs).
        let outbound = self.outbound.get_mut(&peer).expect("peer exists");
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
        let frame_bytes = frame.len();
        if self.enqueue(registry, peer, lane, frame, 1).is_err() {
            self.stats.messages_dropped += 1;
            return;
        }
        crate::metrics::peer_message_queued(message, frame_bytes);
    }

    /// The largest payload of a batch frame this transport builds.
    fn batch_payload_bytes_max(&self) -> usize {
        BATCH_PAYLOAD_BYTES_MAX.min(self.max_frame_payload_bytes as usize)
    }

    /// Adds the small `message` of `group` to the open batch of `peer`'s `lane` (sealing
    /// the batch first if the message would take it past its bounds); drops it (counted) if
    /// the lane's queue has no room for it. Written at the connection's next flush.
    fn batch_message(
        &mut self,
        peer: NodeId,
        lane: Lane,
        group: GroupId,
        message: &Message,
        payload_bytes: usize,
    ) {
        let batch_payload_bytes_max = self.batch_payload_bytes_max();
        let connection = self
            .outbound
            .get_mut(&peer)
            .expect("peer exists")
            .lane(lane);
        let batch = &connection.batch;
        let grown_payload_bytes = batch.frame_bytes_with(payload_bytes) - HEADER_BYTES;
        let seal_first =
            !batch.is_empty() && (batch.is_full() || grown_payload_bytes > batch_payload_bytes_max);
        if seal_first && connection.seal_batch() {
            self.stats.batch_frames_sent += 1;
        }
        let added_bytes =
            connection.batch.frame_bytes_with(payload_bytes) - connection.batch_queued_bytes();
        if connection.queued_bytes + added_bytes > self.queue_bytes_max {
            self.stats.messages_dropped += 1;
            return;
        }
        let pushed_bytes = connection.batch.push(group, message);
        connection.queued_bytes += added_bytes;
        debug_assert_eq!(
            connection.batch_queued_bytes(),
            connection.batch.frame_bytes()
        );
        self.stats.messages_queued += 1;
        crate::metrics::peer_message_queued(message, pushed_bytes);
    }

    /// Queues `frame` (carrying `messages` messages) on `peer`'s `lane`, behind the open
    /// batch, which is sealed first, and starts writing it if that connection is idle; `Err`
    /// (nothing queued) if the lane's queue has no room for it.
    fn enqueue(
        &mut self,
        registry: &Registry,
        peer: NodeId,
        lane: Lane,
        frame: OutFrame,
        messages: u32,
    ) -> Result<(), ()> {
        let outbound = self.outbound.get_mut(&peer).expect("peer exists");
        let connection = outbound.lane(lane);
        if connection.queued_bytes + frame.len() > self.queue_bytes_max {
            return Err(());
        }
        // Order on a lane: the small messages queued before this frame leave before it.
        if connection.seal_batch() {
            self.stats.batch_frames_sent += 1;
        }
        connection.queued_bytes += frame.len();
        connection.queue.push_back((frame, messages));
        self.stats.messages_queued += u64::from(messages);
        if connection.connected && connection.idle() {
            self.flush(registry, peer, lane);
        }
        Ok(())
    }

    /// Queues a host beat for `peer` on its control connection, saying this host is alive at
    /// its tick `tick`; dropped (counted in `messages_dropped`) like any message if there is
    /// no connection or no room.
    pub fn send_host_beat(&mut self, registry: &Registry, peer: NodeId, tick: u64) {
        let Some(outbound) = self.outbound.get_mut(&peer) else {
            self.stats.messages_dropped += 1;
            return;
        };
        if outbound.lane(Lane::Control).stream.is_none() {
            self.stats.messages_dropped += 1;
            return;
        }
        let mut frame = Vec::new();
        let beat = HostBeat {
            from: self.id,
            tick,
        };
        encode_host_beat(&beat, &mut frame).expect("a host beat is far under the frame limit");
        let frame_bytes = frame.len();
        if self
            .enqueue(registry, peer, Lane::Control, OutFrame::Whole(frame), 0)
            .is_err()
        {
            self.stats.messages_dropped += 1;
            return;
        }
        self.stats.host_beats_sent += 1;
        crate::metrics::peer_bytes_queued(peer, frame_bytes);
    }

    /// Queues `notices` (groups this host's leaders quiesced) for `peer` on its control
    /// connection, in frames of at most `MAX_NOTICES_PER_FRAME`; dropped (counted) like any
    /// message if there is no connection or no room: a follower that misses one keeps ticking,
    /// which costs only a wake-up later (see `crate::node::quiescence`).
    pub fn send_quiesce(&mut self, registry: &Registry, peer: NodeId, notices: &[QuiesceNotice]) {
        for chunk in notices.chunks(MAX_NOTICES_PER_FRAME) {
            let connected = self
                .outbound
                .get_mut(&peer)
                .is_some_and(|o| o.lane(Lane::Control).stream.is_some());
            if !connected {
                self.stats.messages_dropped += 1;
                return;
            }
            let mut frame = Vec::new();
            encode_quiesce(self.id, chunk, &mut frame)
                .expect("a frame of quiesce notices is under the frame limit");
            let frame_bytes = frame.len();
            if self
                .enqueue(registry, peer, Lane::Control, OutFrame::Whole(frame), 0)
                .is_err()
            {
                self.stats.messages_dropped += 1;
                return;
            }
            crate::metrics::peer_bytes_queued(peer, frame_bytes);
        }
    }

    /// Queues `forward` for its recipient on the bulk connection, under the same byte bound
    /// as Raft messages. `Err` means nothing was queued, so nothing can arrive.
    pub fn send_forward(
        &mut self,
        registry: &Registry,
        forward: &Forward,
    ) -> Result<(), ForwardRefused> {
        let peer = forward.to;
        let Some(outbound) = self.outbound.get_mut(&peer) else {
            return Err(ForwardRefused::NoConnection);
        };
        if outbound.lane(Lane::Bulk).stream.is_none() {
            return Err(ForwardRefused::NoConnection);
        }
        let limit = u64::from(self.max_frame_payload_bytes);
        let frame = encode_forward_shared(forward).map_err(|_| {
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
        let frame_bytes = frame.len();
        self.enqueue(registry, peer, Lane::Bulk, frame, 1)
            .map_err(|()| {
                self.stats.messages_dropped += 1;
                ForwardRefused::QueueFull
            })?;
        crate::metrics::peer_bytes_queued(peer, frame_bytes);
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
        self.outbound
            .insert(peer, Outbound::new(addr, Instant::now()));
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

    /// Seals every open batch and writes queued frames of every connected peer until done or
    /// the socket is full. The loop calls it once per round, after the round's sends: the
    /// small messages of a round to one peer's lane leave as one frame.
    pub fn flush_all(&mut self, registry: &Registry) {
        let peers: Vec<NodeId> = self.outbound.keys().copied().collect();
        for peer in peers {
            for lane in Lane::ALL {
                self.flush(registry, peer, lane);
            }
        }
    }

    fn flush(&mut self, registry: &Registry, peer: NodeId, lane: Lane) {
        let Some(outbound) = self.outbound.get_mut(&peer) else {
            return;
        };
        let connection = outbound.lane(lane);
        if connection.seal_batch() {
            self.stats.batch_frames_sent += 1;
        }
        if !connection.tcp_up {
            return;
        }
        if let Err(reason) = write_queued(connection) {
            self.outbound_failed(registry, peer, Some(lane), reason);
        }
    }

    /// Accepts every pending inbound connection.
    pub fn accept(&mut self, registry: &Registry) {
        // Bounded by the kernel's accept backlog: ends at WouldBlock.
        loop {
            match self.listener.accept() {
                Ok((mut tcp, addr)) => {
                    let unauthenticated =
                        self.inbound.values().filter(|i| i.peer.is_none()).count();
                    if unauthenticated >= UNAUTHENTICATED_INBOUND_MAX {
                        self.stats.handshakes_refused += 1;
                        let line = format!(
                            "node {}: connection from {addr}: {REFUSED}: {unauthenticated} \
                             connections are in their handshake already",
                            self.id
                        );
                        self.refusals
                            .refused(Instant::now(), SocketAddr::new(addr.ip(), 0), &line);
                        continue;
                    }
                    let nonce = match fresh_nonce() {
                        Ok(nonce) => nonce,
                        Err(e) => {
                            log::error!("node {}: connection from {addr} closed: {e}", self.id);
                            continue;
                        }
                    };
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = registry.register(&mut tcp, token, interest) {
                        log::warn!("node {}: cannot register inbound connection: {e}", self.id);
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    let stream = match PeerStream::accepted(tcp, self.security.tls.as_deref()) {
                        Ok(stream) => stream,
                        Err(e) => {
                            log::error!("node {}: connection from {addr} closed: {e}", self.id);
                            continue;
                        }
                    };
                    self.stats.accepted += 1;
                    self.inbound.insert(
                        token,
                        Inbound {
                            stream,
                            decoder: FrameDecoder::new(HANDSHAKE_FRAME_PAYLOAD_MAX),
                            handshake: AcceptorHandshake::new(
                                self.cluster_id,
                                self.id,
                                self.security.secret.clone(),
                                nonce,
                            ),
                            peer: None,
                            addr,
                            deadline: Instant::now() + HANDSHAKE_TIMEOUT,
                            out: Vec::new(),
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
        if let Some(&(peer, lane)) = self.outbound_tokens.get(&token) {
            self.outbound_event(registry, peer, lane, event);
        } else if let Some(inbound) = self.inbound.get_mut(&token) {
            if event.is_writable() {
                if let Err(reason) = flush_inbound(inbound) {
                    let inbound = self.inbound.remove(&token).expect("inbound exists");
                    self.close_inbound(registry, inbound, &reason);
                    return;
                }
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                self.read_or_close(registry, token, Drain::for_event(event), received);
            }
        }
    }

    /// Connections left at their read or write budget with work to do: the loop must poll
    /// without waiting, call [`read_pending`](Self::read_pending), and flush.
    pub fn has_pending_io(&self) -> bool {
        !self.read_again.is_empty()
            || self
                .outbound
                .values()
                .any(|o| o.lanes.iter().any(|c| c.at_write_budget))
    }

    /// Gives each connection left with unread bytes one more budget of reads.
    pub fn read_pending(&mut self, registry: &Registry, received: &mut Received) {
        for token in std::mem::take(&mut self.read_again) {
            if self.inbound.contains_key(&token) {
                // Left at the budget, not answering an event: no new event is due.
                self.read_or_close(registry, token, Drain::ToWouldBlock, received);
            }
        }
    }

    fn read_or_close(
        &mut self,
        registry: &Registry,
        token: Token,
        drain: Drain,
        received: &mut Received,
    ) {
        match self.read_inbound(token, drain, received) {
            Ok(true) => {
                if !self.read_again.contains(&token) {
                    self.read_again.push(token);
                }
            }
            Ok(false) => {}
            Err(reason) => {
                let inbound = self.inbound.remove(&token).expect("inbound exists");
                self.close_inbound(registry, inbound, &reason);
            }
        }
    }

    fn outbound_event(
        &mut self,
        registry: &Registry,
        peer: NodeId,
        lane: Lane,
        event: &mio::event::Event,
    ) {
        if let Err(reason) = self.outbound_ready(peer, lane, event) {
            self.outbound_failed(registry, peer, Some(lane), reason);
            return;
        }
        self.flush(registry, peer, lane);
    }

    fn outbound_ready(
        &mut self,
        peer: NodeId,
        lane: Lane,
        event: &mio::event::Event,
    ) -> Result<(), String> {
        let outbound = self.outbound.get_mut(&peer).expect("peer exists");
        let addr = outbound.addr;
        let connection = &mut outbound.lanes[lane as usize];
        let Some((stream, _)) = connection.stream.as_mut() else {
            return Ok(());
        };
        let mut just_connected = false;
        if !connection.tcp_up {
            if !event.is_writable() && !event.is_error() && !event.is_write_closed() {
                return Ok(());
            }
            let tcp = stream.tcp();
            if let Ok(Some(e)) | Err(e) = tcp.take_error() {
                return Err(format!("connect failed: {e}"));
            }
            match tcp.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect failed: {e}")),
            }
            connection.tcp_up = true;
            // The handshake goes first, before anything queued while connecting; nothing
            // queued is written until the connection is authenticated.
            let handshake = DialerHandshake::new(
                self.cluster_id,
                self.id,
                peer,
                self.security.secret.clone(),
                fresh_nonce()?,
            );
            let frame = handshake.hello_frame();
            connection.writing.clear();
            connection.written_bytes = 0;
            connection.queued_bytes += frame.len();
            connection.writing.push_back(Bytes::from(frame));
            connection.connected = handshake.ready_after_hello();
            if connection.connected {
                connection.deadline = None;
            }
            just_connected = connection.connected;
            connection.handshake = Some(handshake);
            connection.decoder = Some(FrameDecoder::new(HANDSHAKE_FRAME_PAYLOAD_MAX));
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            if let Some(proof) = read_outbound(connection, peer, &mut self.read_buf)? {
                // The acceptor proved the secret: the proof goes out first, then the queue.
                connection.queued_bytes += proof.len();
                connection.writing.push_back(Bytes::from(proof));
            }
            if !connection.connected && connection.handshake.is_none() {
                connection.connected = true;
                connection.deadline = None;
                just_connected = true;
            }
        }
        if just_connected && outbound.connected() {
            outbound.backoff = BACKOFF_MIN;
            self.stats.connects += 1;
            log::info!("node {}: connected to node {peer} at {addr}", self.id);
        }
        Ok(())
    }

    /// Reads what `token`'s connection has, up to [`READ_PASS_BYTES_MAX`]; `Ok(true)` if it
    /// stopped at that budget (more may be waiting), `Err` names why it must close.
    fn read_inbound(
        &mut self,
        token: Token,
        drain: Drain,
        received: &mut Received,
    ) -> Result<bool, String> {
        let mut heard = None;
        let result = self.read_inbound_frames(token, drain, received, &mut heard);
        // Once per read of a connection, not per frame: the list holds at most one entry per
        // peer, so the scan is short.
        if let Some(peer) = heard {
            if !received.heard_from.contains(&peer) {
                received.heard_from.push(peer);
            }
        }
        result
    }

    /// [`read_inbound`](Self::read_inbound)'s work; sets `heard` to the peer once an
    /// authenticated frame of it was taken.
    fn read_inbound_frames(
        &mut self,
        token: Token,
        drain: Drain,
        received: &mut Received,
        heard: &mut Option<NodeId>,
    ) -> Result<bool, String> {
        let inbound = self.inbound.get_mut(&token).expect("inbound exists");
        let mut read_bytes = 0;
        // Ends at WouldBlock (or a short read, as `drain` allows), EOF, an error or the budget;
        // each pass consumes what it read.
        loop {
            if read_bytes >= READ_PASS_BYTES_MAX {
                return Ok(true);
            }
            let n = match inbound.stream.read(&mut self.read_buf) {
                Ok(0) => return Err("closed by the peer".to_string()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read failed: {e}")),
            };
            read_bytes += n;
            let mut fed = 0;
            while fed < n {
                fed += inbound.decoder.feed(&self.read_buf[fed..n]);
                while let Some((kind, payload)) = inbound
                    .decoder
                    .next_frame_shared()
                    .map_err(|e| format!("malformed frame: {e}"))?
                {
                    match inbound.peer {
                        None => {
                            // Only the exchange's frames until authenticated (module docs).
                            let stream = &inbound.stream;
                            let outbound = &self.outbound;
                            let mut admit = |from: NodeId| {
                                if !outbound.contains_key(&from) {
                                    return Err("is not a configured peer".to_string());
                                }
                                stream.check_peer_identity(from)
                            };
                            let step = inbound
                                .handshake
                                .on_frame(kind, &payload, &mut admit)
                                .map_err(|refusal| format!("{REFUSED}: {refusal}"))?;
                            let authenticated = match step {
                                AcceptorStep::Reply {
                                    frame,
                                    authenticated,
                                } => {
                                    debug_assert!(inbound.out.is_empty(), "one challenge");
                                    inbound.out.extend_from_slice(&frame);
                                    flush_inbound(inbound)?;
                                    authenticated
                                }
                                AcceptorStep::Authenticated(peer) => Some(peer),
                            };
                            if let Some(peer) = authenticated {
                                log::info!(
                                    "node {}: accepted node {peer} from {}",
                                    self.id,
                                    inbound.addr
                                );
                                inbound.peer = Some(peer);
                                inbound
                                    .decoder
                                    .raise_max_payload_bytes(self.max_frame_payload_bytes);
                            }
                        }
                        Some(peer) => {
                            take_frame(self.id, peer, kind, &payload, &mut self.stats, received)?;
                            *heard = Some(peer);
                        }
                    }
                }
            }
            if drain.drained(n, self.read_buf.len(), inbound.stream.is_tls()) {
                return Ok(false);
            }
        }
    }

    fn close_inbound(&mut self, registry: &Registry, mut inbound: Inbound, reason: &str) {
        let _ = registry.deregister(inbound.stream.tcp());
        if inbound.peer.is_none() {
            // Not authenticated: a refusal, unless it ended before claiming anything.
            let reason = match inbound.handshake.claimed_peer() {
                _ if reason.starts_with(REFUSED) => reason.to_string(),
                Some(peer) if reason == "closed by the peer" => format!(
                    "{REFUSED}: node {peer} closed the connection before proving the peer \
                     secret (it refused this node's proof: do the secrets differ?)"
                ),
                None if reason == "closed by the peer" => {
                    log::debug!(
                        "node {}: connection from {} closed before its handshake",
                        self.id,
                        inbound.addr
                    );
                    return;
                }
                _ => format!("{REFUSED}: {reason}"),
            };
            // Framing garbage counts as malformed input wherever it comes, as before.
            if reason.contains("malformed frame") {
                self.stats.malformed_closed += 1;
            } else {
                self.stats.handshakes_refused += 1;
            }
            let line = format!(
                "node {}: connection from {}: {reason}",
                self.id, inbound.addr
            );
            let from = SocketAddr::new(inbound.addr.ip(), 0);
            self.refusals.refused(Instant::now(), from, &line);
        } else if reason.starts_with(REFUSED) {
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
                for connection in &mut outbound.lanes {
                    if let Some((mut stream, token)) = connection.stream.take() {
                        let _ = registry.deregister(stream.tcp());
                        self.outbound_tokens.remove(&token);
                    }
                    connection.connected = false;
                }
            }
        }
        self.read_again.clear();
        for (_, mut inbound) in self.inbound.drain() {
            let _ = registry.deregister(inbound.stream.tcp());
        }
        let _ = registry.deregister(&mut self.listener);
    }
}

/// Takes one frame of authenticated `peer` into `received`: a Raft message, a batch of them,
/// a forward or a host beat. `Err` (the connection must close) for any other kind, a payload
/// that does not decode, or a message or forward not from `peer` to `own_id`.
fn take_frame(
    own_id: NodeId,
    peer: NodeId,
    kind: u8,
    payload: &Bytes,
    stats: &mut TransportStats,
    received: &mut Received,
) -> Result<(), String> {
    let check = |message: &Message| {
        if message.from != peer || message.to != own_id {
            return Err(format!(
                "malformed: message from {} to {} on node {peer}'s connection",
                message.from, message.to
            ));
        }
        Ok(())
    };
    match kind {
        FRAME_KIND_RAFT => {
            let (group, message) =
                decode_message_shared(payload).map_err(|e| format!("malformed message: {e}"))?;
            check(&message)?;
            stats.messages_received += 1;
            let frame_bytes = crate::wire::frame::HEADER_BYTES + payload.len();
            crate::metrics::peer_message_received(&message, frame_bytes);
            received.messages.push((group, message));
        }
        FRAME_KIND_RAFT_BATCH => {
            let messages =
                decode_raft_batch_shared(payload).map_err(|e| format!("malformed batch: {e}"))?;
            for (_, message) in &messages {
                check(message)?;
            }
            stats.batch_frames_received += 1;
            stats.messages_received += messages.len() as u64;
            // The count and the header, then each message with its length prefix.
            crate::metrics::peer_bytes_received(peer, 4);
            for (_, message) in &messages {
                let bytes = 4 + crate::wire::message::message_payload_bytes(message);
                crate::metrics::peer_message_received(message, bytes);
            }
            received.messages.extend(messages);
        }
        FRAME_KIND_FORWARD => {
            let forward =
                decode_forward_shared(payload).map_err(|e| format!("malformed forward: {e}"))?;
            if forward.from != peer || forward.to != own_id {
                return Err(format!(
                    "malformed: forward from {} to {} on node {peer}'s connection",
                    forward.from, forward.to
                ));
            }
            stats.forwards_received += 1;
            crate::metrics::peer_bytes_received(peer, payload.len());
            received.forwards.push(forward);
        }
        FRAME_KIND_QUIESCE => {
            let (from, notices) =
                decode_quiesce(payload).map_err(|e| format!("malformed quiesce notices: {e}"))?;
            if from != peer {
                return Err(format!(
                    "malformed: quiesce notices from {from} on node {peer}'s connection"
                ));
            }
            crate::metrics::peer_bytes_received(peer, payload.len());
            received
                .quiesce
                .extend(notices.into_iter().map(|notice| (from, notice)));
        }
        FRAME_KIND_HOST_BEAT => {
            let beat =
                decode_host_beat(payload).map_err(|e| format!("malformed host beat: {e}"))?;
            if beat.from != peer {
                return Err(format!(
                    "malformed: host beat from {} on node {peer}'s connection",
                    beat.from
                ));
            }
            stats.host_beats_received += 1;
            crate::metrics::peer_bytes_received(peer, payload.len());
        }
        kind => return Err(format!("malformed: unexpected frame kind {kind}")),
    }
    Ok(())
}

fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes queued frames until done or the socket is full; `Err` names why the connection must
/// close.
fn write_queued(connection: &mut Connection) -> Result<(), String> {
    connection.at_write_budget = false;
    if let Some((stream, _)) = connection.stream.as_mut() {
        // TLS records built earlier go before anything new.
        match stream.flush_tls() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(format!("write failed: {e}")),
        }
    }
    let mut written_bytes = 0;
    // Bounded: each pass writes bytes, refills from the bounded queue, or returns; and the
    // bytes written are bounded by the budget.
    loop {
        if written_bytes >= WRITE_PASS_BYTES_MAX {
            connection.at_write_budget = true;
            return Ok(());
        }
        if connection.writing.is_empty() {
            // Nothing queued leaves before the connection is authenticated.
            if !connection.connected {
                return Ok(());
            }
            refill(connection);
            if connection.writing.is_empty() {
                return Ok(());
            }
        }
        let Some((stream, _)) = connection.stream.as_mut() else {
            return Ok(());
        };
        let mut slices = [IoSlice::new(&[]); WRITE_SLICES_MAX];
        let mut count = 0;
        for (i, piece) in connection.writing.iter().take(WRITE_SLICES_MAX).enumerate() {
            let start = if i == 0 { connection.written_bytes } else { 0 };
            slices[i] = IoSlice::new(&piece[start..]);
            count += 1;
        }
        let written = stream.write_vectored(&slices[..count]);
        match written {
            Ok(0) => return Err("connection closed while writing".to_string()),
            Ok(n) => {
                written_bytes += n;
                advance(connection, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write failed: {e}")),
        }
    }
}

/// Moves frames from the queue to the pieces being written: small frames copied together into
/// one buffer of up to [`WRITE_BATCH_BYTES`], a large one as its own pieces (not copied).
fn refill(connection: &mut Connection) {
    debug_assert!(connection.writing.is_empty());
    connection.written_bytes = 0;
    let mut batch: Vec<u8> = Vec::new();
    // Bounded by the queue, and by the batch size.
    while batch.len() < WRITE_BATCH_BYTES {
        let Some((frame, _)) = connection.queue.pop_front() else {
            break;
        };
        match frame {
            // A lone frame (the usual case when lightly loaded) is written from its own
            // buffer; only several are copied together.
            OutFrame::Whole(bytes) if batch.is_empty() && connection.queue.is_empty() => {
                connection.writing.push_back(Bytes::from(bytes));
                break;
            }
            OutFrame::Whole(bytes) if bytes.len() < WRITE_BATCH_BYTES => {
                batch.extend_from_slice(&bytes);
            }
            OutFrame::Whole(bytes) => {
                if !batch.is_empty() {
                    connection
                        .writing
                        .push_back(Bytes::from(std::mem::take(&mut batch)));
                }
                connection.writing.push_back(Bytes::from(bytes));
                break;
            }
            OutFrame::Pieces { pieces, .. } => {
                if !batch.is_empty() {
                    connection
                        .writing
                        .push_back(Bytes::from(std::mem::take(&mut batch)));
                }
                connection.writing.extend(pieces);
                break;
            }
        }
    }
    if !batch.is_empty() {
        connection.writing.push_back(Bytes::from(batch));
    }
}

/// Records that `written` more bytes of the pieces left.
fn advance(connection: &mut Connection, mut written: usize) {
    // Bounded by the pieces a vectored write was given.
    while written > 0 {
        let front = connection.writing.front().expect("wrote bytes of a piece");
        let left = front.len() - connection.written_bytes;
        let taken = written.min(left);
        assert!(
            connection.queued_bytes >= taken,
            "queued bytes below the bytes being written"
        );
        connection.queued_bytes -= taken;
        if written < left {
            connection.written_bytes += written;
            return;
        }
        written -= left;
        connection.writing.pop_front();
        connection.written_bytes = 0;
    }
}

/// Reads what the acceptor sent on an outbound connection: its challenge, once, and nothing
/// after. `Ok(Some(proof))` when the challenge was checked and a proof must be sent; the
/// handshake is taken (`None`) once the challenge was checked. EOF or an error means the
/// acceptor refused or went away.
fn read_outbound(
    connection: &mut Connection,
    peer: NodeId,
    buf: &mut [u8],
) -> Result<Option<Vec<u8>>, String> {
    let Some((stream, _)) = connection.stream.as_mut() else {
        return Ok(None);
    };
    let mut proof = None;
    // Ends at WouldBlock, EOF or an error; the decoder refuses more than a challenge's worth.
    loop {
        let n = match stream.read(buf) {
            Ok(0) if connection.handshake.is_some() => {
                return Err(format!(
                    "{REFUSED}: node {peer} closed the connection before answering the \
                     handshake (it refused this node: see its log; or it runs an older version)"
                ))
            }
            Ok(0) => return Err("closed by the peer".to_string()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(proof),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if !connection.connected => return Err(format!("{REFUSED}: {e}")),
            Err(e) => return Err(format!("read failed: {e}")),
        };
        let decoder = connection
            .decoder
            .get_or_insert_with(|| FrameDecoder::new(HANDSHAKE_FRAME_PAYLOAD_MAX));
        let mut fed = 0;
        while fed < n {
            fed += decoder.feed(&buf[fed..n]);
            while let Some((kind, payload)) = decoder
                .next_frame()
                .map_err(|e| format!("{REFUSED}: malformed frame from the acceptor: {e}"))?
            {
                let Some(mut handshake) = connection.handshake.take() else {
                    return Err(format!(
                        "malformed: node {peer} sent a frame of kind {kind} after its challenge"
                    ));
                };
                proof = handshake
                    .on_frame(kind, &payload)
                    .map_err(|refusal| format!("{REFUSED}: {refusal}"))?;
            }
        }
    }
}

/// Writes an inbound connection's pending handshake bytes and TLS records; a full socket
/// leaves them for the next writable event.
fn flush_inbound(inbound: &mut Inbound) -> Result<(), String> {
    // Each pass writes some bytes or returns.
    while !inbound.out.is_empty() {
        match inbound.stream.write(&inbound.out) {
            Ok(0) => return Err("connection closed while writing".to_string()),
            Ok(n) => {
                inbound.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write failed: {e}")),
        }
    }
    match inbound.stream.flush_tls() {
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(format!("write failed: {e}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Entry, EntryKind};
    use crate::wire::message::{
        decode_handshake, decode_message, decode_raft_batch, FRAME_KIND_HANDSHAKE,
    };
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
                    data: bytes::Bytes::from(vec![0xAB; bytes]),
                }],
                leader_commit: 0,
            },
        }
    }

    /// The first Raft message on `conn` after its handshake (checked to come first and to
    /// name cluster 7, node 1 calling node 2).
    fn first_message(conn: &mut std::net::TcpStream) -> Message {
        let mut decoder = FrameDecoder::new(4 << 20);
        let mut buf = vec![0u8; 64 << 10];
        let mut handshake_seen = false;
        loop {
            let n = conn.read(&mut buf).expect("read");
            assert!(n > 0, "connection closed before a message");
            let mut fed = 0;
            while fed < n {
                fed += decoder.feed(&buf[fed..n]);
                while let Some((kind, payload)) = decoder.next_frame().expect("valid frames") {
                    if kind == FRAME_KIND_HANDSHAKE {
                        let hs = decode_handshake(&payload).unwrap();
                        assert_eq!((hs.cluster_id, hs.from, hs.to), (7, 1, 2));
                        handshake_seen = true;
                        continue;
                    }
                    assert!(handshake_seen, "the handshake must come first");
                    let (group, message) =
                        crate::wire::message::decode_message(&payload).expect("a message");
                    assert_eq!(group, 0);
                    return message;
                }
            }
        }
    }

    #[test]
    fn a_heartbeat_never_waits_behind_bulk_and_the_bulk_queue_is_bounded() {
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
        let mut transport =
            Transport::new(1, 7, &peers, own, 1 << 20, 1 << 20, PeerSecurity::default());
        transport.maintain(poll.registry(), Instant::now());
        let (mut first, _) = peer.accept().unwrap();
        let (mut second, _) = peer.accept().unwrap();
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
            transport.send(poll.registry(), 0, &append(index, APPEND_BYTES));
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
        transport.send(poll.registry(), 0, &heartbeat);
        let dropped = transport.stats().messages_dropped;
        assert!(dropped > 0, "the byte bound must drop some appends");
        assert!(dropped < APPENDS, "an empty queue takes appends");

        // The peer reads one message from each connection and leaves the bulk one full.
        let reader =
            std::thread::spawn(move || (first_message(&mut first), first_message(&mut second)));
        while !reader.is_finished() {
            assert!(Instant::now() < deadline, "a connection carried no message");
            poll.poll(&mut events, Some(Duration::from_millis(10)))
                .unwrap();
            for event in events.iter() {
                transport.handle_event(poll.registry(), event, &mut received);
            }
            transport.flush_all(poll.registry());
        }
        let firsts = reader.join().unwrap();
        let (control, bulk) = match firsts {
            (
                m @ Message {
                    body: MessageBody::Heartbeat { .. },
                    ..
                },
                other,
            ) => (m, other),
            (other, m) => (m, other),
        };
        // The heartbeat is the first message of its connection while the other is still
        // full of appends: it waited behind none of them.
        assert_eq!(control, heartbeat);
        assert!(
            matches!(
                bulk.body,
                MessageBody::Append {
                    prev_log_index: 0,
                    ..
                }
            ),
            "the bulk connection starts with the first append: {bulk:?}"
        );
    }

    #[test]
    fn a_resend_of_a_large_append_is_refused_while_the_first_is_in_flight() {
        let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut poll = Poll::new().unwrap();
        let own = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let peers: BTreeMap<NodeId, SocketAddr> = [
            (1, own.local_addr().unwrap()),
            (2, peer.local_addr().unwrap()),
        ]
        .into();
        const BIG: usize = 16 << 20;
        let bound = BIG + (1 << 20);
        let mut transport = Transport::new(
            1,
            7,
            &peers,
            own,
            bound as u32,
            bound,
            PeerSecurity::default(),
        );
        transport.maintain(poll.registry(), Instant::now());
        let (_first, _) = peer.accept().unwrap();
        let (_second, _) = peer.accept().unwrap();
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
        // Nobody reads: the first append stays partly unwritten, and its unwritten bytes
        // still count against the bound.
        transport.send(poll.registry(), 0, &append(1, BIG));
        transport.flush_all(poll.registry());
        assert_eq!(transport.stats().messages_dropped, 0);
        transport.send(poll.registry(), 0, &append(1, BIG));
        assert_eq!(
            transport.stats().messages_dropped,
            1,
            "a second large append queued behind the first"
        );
        // Small messages still have room beside it.
        transport.send(poll.registry(), 0, &append(2, 1024));
        assert_eq!(transport.stats().messages_dropped, 1);
    }

    fn heartbeat(round: u64) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::Heartbeat { commit: 0, round },
        }
    }

    /// Every frame on `conn` after its handshake, each with the messages it carries, until
    /// `messages` messages came (a frame of another kind carries none), or until the socket's
    /// read timeout passes without a byte.
    fn frames_until(
        conn: &mut std::net::TcpStream,
        messages: usize,
    ) -> Vec<(u8, Vec<(GroupId, Message)>)> {
        let mut decoder = FrameDecoder::new(4 << 20);
        let mut buf = vec![0u8; 64 << 10];
        let mut frames = Vec::new();
        let mut seen = 0;
        while seen < messages {
            let n = match conn.read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return frames
                }
                Err(e) => panic!("read failed: {e}"),
            };
            assert!(
                n > 0,
                "connection closed after {seen} of {messages} messages"
            );
            let mut fed = 0;
            while fed < n {
                fed += decoder.feed(&buf[fed..n]);
                while let Some((kind, payload)) = decoder.next_frame().expect("valid frames") {
                    let carried = match kind {
                        FRAME_KIND_HANDSHAKE => continue,
                        FRAME_KIND_RAFT => vec![decode_message(&payload).expect("a message")],
                        FRAME_KIND_RAFT_BATCH => decode_raft_batch(&payload).expect("a batch"),
                        _ => Vec::new(),
                    };
                    seen += carried.len();
                    frames.push((kind, carried));
                }
            }
        }
        frames
    }

    /// A transport for node 1 whose peer 2 is a plain listener, connected: the transport,
    /// its poll, and the two accepted sockets (control and bulk, in no known order).
    fn connected_to_a_raw_peer(
        max_frame_payload_bytes: u32,
        queue_bytes_max: usize,
    ) -> (Transport, Poll, [std::net::TcpStream; 2]) {
        let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let poll = Poll::new().unwrap();
        let own = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let peers: BTreeMap<NodeId, SocketAddr> = [
            (1, own.local_addr().unwrap()),
            (2, peer.local_addr().unwrap()),
        ]
        .into();
        let mut transport = Transport::new(
            1,
            7,
            &peers,
            own,
            max_frame_payload_bytes,
            queue_bytes_max,
            PeerSecurity::default(),
        );
        transport.maintain(poll.registry(), Instant::now());
        let (first, _) = peer.accept().unwrap();
        let (second, _) = peer.accept().unwrap();
        let mut events = Events::with_capacity(16);
        let mut received = Received::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut poll = poll;
        while transport.connected_peers().is_empty() {
            assert!(Instant::now() < deadline, "never connected");
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            for event in events.iter() {
                transport.handle_event(poll.registry(), event, &mut received);
            }
        }
        (transport, poll, [first, second])
    }

    #[test]
    fn a_rounds_small_messages_to_one_peer_travel_as_one_batch_frame_in_order() {
        let (mut transport, mut poll, [mut first, mut second]) =
            connected_to_a_raw_peer(1 << 20, 1 << 20);
        // One round: heartbeats of five groups on the control lane; on the bulk lane two
        // small appends, a large one, and two small ones again.
        for group in 1..=5 {
            transport.send(poll.registry(), group, &heartbeat(group));
        }
        let small = |index| append(index, 100);
        transport.send(poll.registry(), 1, &small(1));
        transport.send(poll.registry(), 2, &small(2));
        transport.send(poll.registry(), 3, &append(3, COALESCE_MESSAGE_BYTES_MAX));
        transport.send(poll.registry(), 4, &small(4));
        transport.send(poll.registry(), 5, &small(5));
        assert_eq!(transport.stats().messages_dropped, 0);
        assert_eq!(transport.stats().messages_queued, 10);
        transport.flush_all(poll.registry());
        // Two batches on the bulk lane (sealed before the large append, and by the flush),
        // one on the control lane.
        assert_eq!(transport.stats().batch_frames_sent, 3);

        let reader =
            std::thread::spawn(move || (frames_until(&mut first, 5), frames_until(&mut second, 5)));
        let mut events = Events::with_capacity(16);
        let mut received = Received::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reader.is_finished() {
            assert!(Instant::now() < deadline, "the frames never all came");
            poll.poll(&mut events, Some(Duration::from_millis(10)))
                .unwrap();
            for event in events.iter() {
                transport.handle_event(poll.registry(), event, &mut received);
            }
            transport.flush_all(poll.registry());
        }
        let (a, b) = reader.join().unwrap();
        let (control, bulk) = if a.len() == 1 { (a, b) } else { (b, a) };
        let heartbeats: Vec<_> = (1..=5).map(|g| (g, heartbeat(g))).collect();
        assert_eq!(control, vec![(FRAME_KIND_RAFT_BATCH, heartbeats)]);
        assert_eq!(
            bulk,
            vec![
                (FRAME_KIND_RAFT_BATCH, vec![(1, small(1)), (2, small(2))]),
                (
                    FRAME_KIND_RAFT,
                    vec![(3, append(3, COALESCE_MESSAGE_BYTES_MAX))]
                ),
                (FRAME_KIND_RAFT_BATCH, vec![(4, small(4)), (5, small(5))]),
            ],
            "the lane keeps its order across the large append"
        );
    }

    #[test]
    fn a_lone_small_message_goes_as_a_plain_frame_and_the_bound_counts_the_open_batch() {
        // A bound that holds the first batch's frame and not one more message.
        let lone_frame_bytes = HEADER_BYTES + message_payload_bytes(&heartbeat(1));
        let batch_of_two_bytes = HEADER_BYTES + 4 + 2 * (4 + lone_frame_bytes - HEADER_BYTES);
        let (mut transport, mut poll, [first, second]) =
            connected_to_a_raw_peer(1 << 20, batch_of_two_bytes + 4);
        transport.send(poll.registry(), 9, &heartbeat(1));
        transport.send(poll.registry(), 9, &heartbeat(2));
        assert_eq!(transport.stats().messages_dropped, 0);
        transport.send(poll.registry(), 9, &heartbeat(3));
        assert_eq!(
            transport.stats().messages_dropped,
            1,
            "the open batch counts against the byte bound"
        );
        transport.flush_all(poll.registry());
        assert_eq!(transport.stats().batch_frames_sent, 1);
        // The next round has one message: a plain frame.
        transport.send(poll.registry(), 9, &heartbeat(4));
        transport.flush_all(poll.registry());
        assert_eq!(transport.stats().batch_frames_sent, 1);

        let reader = std::thread::spawn(move || {
            // The control connection is whichever carries the heartbeats; the bulk one
            // carries nothing after its handshake.
            // Both stay open until both are read: closing one would close the other.
            let mut frames = Vec::new();
            let mut conns = [first, second];
            for conn in &mut conns {
                conn.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                frames.extend(frames_until(conn, 3));
            }
            frames
        });
        let mut events = Events::with_capacity(16);
        let mut received = Received::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reader.is_finished() {
            assert!(Instant::now() < deadline, "the frames never all came");
            poll.poll(&mut events, Some(Duration::from_millis(10)))
                .unwrap();
            for event in events.iter() {
                transport.handle_event(poll.registry(), event, &mut received);
            }
            transport.flush_all(poll.registry());
        }
        assert_eq!(
            reader.join().unwrap(),
            vec![
                (
                    FRAME_KIND_RAFT_BATCH,
                    vec![(9, heartbeat(1)), (9, heartbeat(2))]
                ),
                (FRAME_KIND_RAFT, vec![(9, heartbeat(4))]),
            ]
        );
    }

    #[test]
    fn batches_host_beats_and_forwards_arrive_with_their_groups_and_the_sender_heard_once() {
        let listeners: Vec<TcpListener> = (0..2)
            .map(|_| TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap())
            .collect();
        let peers: BTreeMap<NodeId, SocketAddr> = listeners
            .iter()
            .zip(1u64..)
            .map(|(l, id)| (id, l.local_addr().unwrap()))
            .collect();
        let mut polls = Vec::new();
        let mut transports = Vec::new();
        for (mut listener, id) in listeners.into_iter().zip(1u64..) {
            let poll = Poll::new().unwrap();
            poll.registry()
                .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)
                .unwrap();
            let transport = Transport::new(
                id,
                7,
                &peers,
                listener,
                1 << 20,
                1 << 20,
                PeerSecurity::default(),
            );
            polls.push(poll);
            transports.push(transport);
        }
        let mut events = Events::with_capacity(64);
        let mut received = [Received::default(), Received::default()];
        let registry = polls[0].registry().try_clone().unwrap();
        let mut pass = |transports: &mut Vec<Transport>, received: &mut [Received; 2]| {
            for i in 0..2 {
                transports[i].maintain(polls[i].registry(), Instant::now());
                polls[i]
                    .poll(&mut events, Some(Duration::from_millis(5)))
                    .unwrap();
                for event in events.iter() {
                    match event.token() {
                        LISTENER_TOKEN => transports[i].accept(polls[i].registry()),
                        _ => {
                            transports[i].handle_event(polls[i].registry(), event, &mut received[i])
                        }
                    }
                }
                transports[i].flush_all(polls[i].registry());
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while transports[0].connected_peers().is_empty() {
            assert!(Instant::now() < deadline, "never connected");
            pass(&mut transports, &mut received);
        }
        // One round from node 1: heartbeats of three groups, small appends of two, a host
        // beat and a forward.
        let mut sent = Vec::new();
        for group in [3, 1, 2] {
            sent.push((group, heartbeat(group)));
            sent.push((group + 10, append(group, 64)));
        }
        for (group, message) in &sent {
            transports[0].send(&registry, *group, message);
        }
        transports[0].send_host_beat(&registry, 2, 77);
        let forward = Forward {
            from: 1,
            to: 2,
            group: 5,
            body: ForwardBody::Propose {
                request_id: 1,
                data: Bytes::from_static(b"x"),
            },
        };
        transports[0].send_forward(&registry, &forward).unwrap();
        assert_eq!(transports[0].stats().host_beats_sent, 1);
        while received[1].messages.len() < sent.len()
            || received[1].forwards.is_empty()
            || transports[1].stats().host_beats_received == 0
        {
            assert!(Instant::now() < deadline, "not everything arrived");
            pass(&mut transports, &mut received);
        }
        let stats = transports[1].stats();
        assert_eq!(stats.batch_frames_received, 2, "one batch per lane");
        assert_eq!(stats.messages_received, sent.len() as u64);
        assert_eq!(received[1].heard_from, vec![1], "node 1, once");
        assert_eq!(received[1].forwards, vec![forward]);
        // Across the two lanes frames may interleave; on each lane the order is kept.
        let on_lane = |bulk: bool, list: &[(GroupId, Message)]| -> Vec<(GroupId, Message)> {
            list.iter()
                .filter(|(_, m)| matches!(m.body, MessageBody::Append { .. }) == bulk)
                .cloned()
                .collect()
        };
        for bulk in [false, true] {
            assert_eq!(on_lane(bulk, &received[1].messages), on_lane(bulk, &sent));
        }
    }

    #[test]
    fn a_batch_is_sealed_at_its_byte_bound_and_a_lost_connection_drops_it_counted() {
        let (mut transport, poll, _conns) = connected_to_a_raw_peer(1 << 20, 4 << 20);
        // Twenty appends of 15 KiB: over one batch's 256 KiB, under two.
        let data_bytes = 15 << 10;
        for index in 1..=20 {
            transport.send(poll.registry(), index, &append(index, data_bytes));
        }
        assert_eq!(
            transport.stats().batch_frames_sent,
            1,
            "the first batch was sealed when full"
        );
        transport.flush_all(poll.registry());
        assert_eq!(transport.stats().batch_frames_sent, 2);
        // Messages in an open batch are dropped with the connection, and counted.
        for index in 21..=23 {
            transport.send(poll.registry(), index, &append(index, 10));
        }
        let dropped = transport.stats().messages_dropped;
        transport.disconnect(poll.registry(), 2, "test");
        assert!(transport.stats().messages_dropped >= dropped + 3);
    }
}

//! Peer messages inside frames: the handshake that opens a connection and the Raft messages
//! that follow it.
//!
//! Every message travels as one frame of [`super::frame`]; its payload is encoded with the
//! primitives of [`super::codec`] (little-endian integers, `u32`-length-prefixed byte
//! strings, no padding). Seven frame kinds exist:
//!
//! | frame kind | constant                   | direction          | payload                               |
//! |------------|----------------------------|--------------------|---------------------------------------|
//! | 1          | [`FRAME_KIND_HANDSHAKE`]   | dialer to acceptor | [`Handshake`], sent once, first       |
//! | 2          | [`FRAME_KIND_RAFT`]        | dialer to acceptor | one [`Message`] with its group        |
//! | 3          | [`FRAME_KIND_FORWARD`]     | dialer to acceptor | one [`Forward`] (client traffic, v2)  |
//! | 4          | [`FRAME_KIND_CHALLENGE`]   | acceptor to dialer | [`Challenge`], once, answering kind 1 (v3) |
//! | 5          | [`FRAME_KIND_PROOF`]       | dialer to acceptor | [`Proof`], once, after kind 4, with a secret (v3) |
//! | 6          | [`FRAME_KIND_RAFT_BATCH`]  | dialer to acceptor | several [`Message`]s, each with its group (v4) |
//! | 7          | [`FRAME_KIND_HOST_BEAT`]   | dialer to acceptor | [`HostBeat`]: the sending host is alive (v4) |
//!
//! Several Raft groups may share a host and its connections, so every Raft message and every
//! forward names its group ([`GroupId`]); the Raft fields themselves are the same whatever the
//! group. A sender gathers the small messages of one loop round to one connection into one
//! kind-6 frame ([`RaftBatch`]; a batch of one goes as a kind-2 frame), and sends one host
//! beat per host pair per tick instead of one heartbeat per group.
//!
//! [`encode_message_shared`] and [`encode_forward_shared`] write the same bytes as
//! [`encode_message`] and [`encode_forward`], with each large entry's data (a proposal's, for
//! a forward) as a shared piece of the frame rather than a copy; [`decode_message_shared`] and
//! [`decode_forward_shared`] decode those data as slices of the received payload (see
//! `super::frame` for why). The plain functions copy, and stay for tools and tests.
//!
//! Protocol versions: 1 had frame kinds 1 and 2; 2 added kind 3; 3 added the acceptor's
//! answer (kind 4) and the dialer's proof (kind 5) and grew the handshake by the
//! authentication mode and a nonce, for peer authentication with a shared secret (the exchange,
//! its state machines and its threat model are in `crate::node::peer_auth`); 4 (this build)
//! put a `group` first in every Raft message payload and after `to` in every forward, and
//! added the batch (kind 6) and the host beat (kind 7), with the handshake unchanged. Peers of
//! different versions refuse each other at the handshake (the version is read right after the
//! magic, before any field whose layout changed, so an older handshake is refused by name,
//! never misread: "peer speaks protocol version 3, this build speaks 4"), and an unknown frame
//! kind never reaches a decoder.
//!
//! # Handshake payload (63 bytes, versions 3 and 4)
//!
//! | offset | size | field              | meaning                                          |
//! |--------|------|--------------------|--------------------------------------------------|
//! | 0      | 4    | `magic`            | [`HANDSHAKE_MAGIC`], ASCII `KTCH` read as u32 LE |
//! | 4      | 2    | `protocol_version` | [`PROTOCOL_VERSION`]; any other value is refused |
//! | 6      | 8    | `cluster_id`       | the sender's cluster; must equal the receiver's  |
//! | 14     | 8    | `from`             | the sender's node id (non-zero)                  |
//! | 22     | 8    | `to`               | the node id the sender believes it dialed        |
//! | 30     | 1    | `auth`             | [`AuthMode`]: 0 none, 1 shared secret            |
//! | 31     | 32   | `nonce`            | the dialer's fresh random nonce                  |
//!
//! # Challenge payload (frame kind 4, 65 bytes)
//!
//! | offset | size | field   | meaning                                                        |
//! |--------|------|---------|----------------------------------------------------------------|
//! | 0      | 1    | `auth`  | the acceptor's [`AuthMode`] (equal to the handshake's)         |
//! | 1      | 32   | `nonce` | the acceptor's fresh random nonce                              |
//! | 33     | 32   | `mac`   | the acceptor's proof (HMAC-SHA256, see `peer_auth`); zeros without a secret |
//!
//! # Proof payload (frame kind 5, 32 bytes)
//!
//! | offset | size | field | meaning                                      |
//! |--------|------|-------|----------------------------------------------|
//! | 0      | 32   | `mac` | the dialer's proof (HMAC-SHA256, see `peer_auth`) |
//!
//! # Raft message payload (frame kind 2, and each message of a batch)
//!
//! | size | field   | meaning                                                  |
//! |------|---------|----------------------------------------------------------|
//! | 8    | `group` | the Raft group the message belongs to (any value; v4)    |
//! | 8    | `from`  | sender id (non-zero)                                     |
//! | 8    | `to`    | recipient id (non-zero)                                  |
//! | 8    | `term`  | sender's term (the proposed term for pre-votes)          |
//! | 1    | `tag`   | body variant, below                                      |
//! | ...  | body    | the variant's fields in declaration order                |
//!
//! Body tags and fields (`u64` unless said; `bool` is one byte 0 or 1):
//!
//! | tag | variant                   | fields                                                          |
//! |-----|---------------------------|-----------------------------------------------------------------|
//! | 1   | `PreVote`                 | last_log_index, last_log_term                                   |
//! | 2   | `PreVoteResponse`         | granted: bool                                                   |
//! | 3   | `Vote`                    | last_log_index, last_log_term, leadership_transfer: bool        |
//! | 4   | `VoteResponse`            | granted: bool                                                   |
//! | 5   | `Append`                  | prev_log_index, prev_log_term, leader_commit, count: u32, count x entry |
//! | 6   | `AppendResponse`          | success: bool, index, reject_hint_index, reject_hint_term      |
//! | 7   | `Heartbeat`               | commit, round                                                   |
//! | 8   | `HeartbeatResponse`       | round                                                           |
//! | 9   | `InstallSnapshot`         | snapshot meta, offset, len, data: bytes, done: bool             |
//! | 10  | `InstallSnapshotResponse` | snapshot_index, next_offset, done: bool, rejected: bool         |
//! | 11  | `TimeoutNow`              | (none)                                                          |
//! | 12  | `ReadIndex`               | ctx                                                             |
//! | 13  | `ReadIndexResponse`       | ctx, index                                                      |
//!
//! An entry is `term`, `index`, `kind: u8` (0 normal, 1 no-op, 2 configuration change),
//! `data: bytes`. The data of a configuration change is the configuration it puts in force, a
//! membership as below (`Membership::encode`); a decoder refuses one that does not decode to a
//! valid membership (at least one voter, no learner among the incoming voters, no id 0). A snapshot meta
//! is `index`, `term`, membership, `size_bytes`. A membership is three id sets, voters,
//! learners, outgoing voters, each a `u32` count followed by that many `u64` ids.
//!
//! [`message_payload_bytes`] computes a payload's size from these rules without encoding it.
//!
//! # Raft batch payload (frame kind 6, v4)
//!
//! | size  | field     | meaning                                                      |
//! |-------|-----------|--------------------------------------------------------------|
//! | 4     | `count`   | messages that follow, at most [`MAX_MESSAGES_PER_BATCH`]     |
//! | 4     | `len`     | per message: bytes of its payload, which follows             |
//! | `len` | `message` | per message: one Raft message payload, as above (group first) |
//!
//! The `len` and `message` pair repeats `count` times, with nothing after the last. Messages
//! are in the order they were queued. Each message is checked as a kind-2 frame's
//! would be, and one bad message refuses the whole frame.
//!
//! # Host beat payload (frame kind 7, 16 bytes, v4)
//!
//! | offset | size | field  | meaning                                                    |
//! |--------|------|--------|------------------------------------------------------------|
//! | 0      | 8    | `from` | the sending host's node id (non-zero; the connection's peer) |
//! | 8      | 8    | `tick` | the sender's tick counter (informational)                  |
//!
//! # Forward payload (frame kind 3)
//!
//! A follower forwards a client's proposal to the leader it knows, and the leader answers once
//! the command applied or failed. These are not Raft messages: they carry no term and never
//! reach the core.
//!
//! | size | field        | meaning                                                    |
//! |------|--------------|------------------------------------------------------------|
//! | 8    | `from`       | sender id (non-zero; must be the connection's peer)        |
//! | 8    | `to`         | recipient id (non-zero)                                    |
//! | 8    | `group`      | the Raft group the proposal is for (any value; v4)         |
//! | 1    | `tag`        | 1 `ForwardPropose`, 2 `ForwardResult`                      |
//! | 8    | `request_id` | chosen by the follower, unique per follower incarnation    |
//! | ...  | body         | below                                                      |
//!
//! - `ForwardPropose` (tag 1): `data: bytes`, the command.
//! - `ForwardResult` (tag 2): `outcome: u8`, then per outcome:
//!
//! | outcome | [`ForwardOutcome`] | then              | applied?                          |
//! |---------|--------------------|-------------------|-----------------------------------|
//! | 0       | `Applied`          | `result: bytes`   | yes, with this result             |
//! | 1       | `NotLeader`        | `leader_hint: u64` (0 = none) | certainly not         |
//! | 2       | `Backpressure`     | (none)            | certainly not                     |
//! | 3       | `Timeout`          | (none)            | may have been                     |
//! | 4       | `LeaderLost`       | (none)            | may have been                     |
//! | 5       | `ShuttingDown`     | (none)            | may have been                     |
//!
//! # Bounds checked on decode
//!
//! At most [`MAX_ENTRIES_PER_MESSAGE`] entries, at most [`MAX_MEMBERS_PER_SET`] ids per set, at
//! most [`MAX_MESSAGES_PER_BATCH`] messages per batch, and no count larger than the bytes left
//! could hold (a batched message takes at least 37 bytes), so a hostile count never allocates. Byte
//! strings are bounded by the payload (itself bounded by the frame decoder's maximum).
//! Trailing bytes, unknown tags and entry kinds, and ids of 0 where a node is named are errors.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;

use super::codec::{CodecError, WireReader, WireWriter};
use super::frame::{
    encode_frame, frame_in_place, FrameBuilder, OutFrame, PeerFrameError, HEADER_BYTES,
    SHARED_FRAME_MIN_BYTES,
};
use crate::raft::{
    Entry, EntryKind, GroupId, Membership, Message, MessageBody, NodeId, SnapshotMeta,
};

/// Frame kind of a [`Handshake`].
pub const FRAME_KIND_HANDSHAKE: u8 = 1;
/// Frame kind of a Raft [`Message`].
pub const FRAME_KIND_RAFT: u8 = 2;
/// Frame kind of a [`Forward`] (a forwarded proposal or its result).
pub const FRAME_KIND_FORWARD: u8 = 3;
/// Frame kind of a [`Challenge`] (the acceptor's answer to a handshake).
pub const FRAME_KIND_CHALLENGE: u8 = 4;
/// Frame kind of a [`Proof`] (the dialer's answer to a challenge).
pub const FRAME_KIND_PROOF: u8 = 5;
/// Frame kind of several Raft messages in one frame (a [`RaftBatch`]).
pub const FRAME_KIND_RAFT_BATCH: u8 = 6;
/// Frame kind of a [`HostBeat`] (host-to-host liveness).
pub const FRAME_KIND_HOST_BEAT: u8 = 7;
/// Frame kind of a batch of [`QuiesceNotice`]s (a leader host quiesced these groups).
pub const FRAME_KIND_QUIESCE: u8 = 8;
/// Opens every handshake payload: ASCII `KTCH` read as a little-endian u32.
pub const HANDSHAKE_MAGIC: u32 = u32::from_le_bytes(*b"KTCH");
/// The peer protocol version this build speaks (4: every Raft message and forward names its
/// group, several Raft messages may share a frame, and hosts exchange beats).
pub const PROTOCOL_VERSION: u16 = 4;
/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a handshake MAC (HMAC-SHA256).
pub const MAC_BYTES: usize = 32;
/// Bytes of a handshake payload.
pub const HANDSHAKE_PAYLOAD_BYTES: usize = 4 + 2 + 8 + 8 + 8 + 1 + NONCE_BYTES;
/// Bytes of a challenge payload.
pub const CHALLENGE_PAYLOAD_BYTES: usize = 1 + NONCE_BYTES + MAC_BYTES;
/// Largest payload of a frame exchanged before a connection is authenticated: a decoder
/// limited to this buffers at most a few hundred bytes for a peer that has proved nothing.
pub const HANDSHAKE_FRAME_PAYLOAD_MAX: u32 = 256;
/// Most entries one `Append` may carry on the wire.
pub const MAX_ENTRIES_PER_MESSAGE: u32 = 1 << 16;
/// Most node ids in one membership set.
pub const MAX_MEMBERS_PER_SET: u32 = 1 << 10;
/// Most Raft messages one batch frame may carry on the wire.
pub const MAX_MESSAGES_PER_BATCH: u32 = 1 << 16;
/// Bytes of a host beat payload.
pub const HOST_BEAT_PAYLOAD_BYTES: usize = 8 + 8;

/// Smallest encoded entry: term, index, kind, empty data length.
const ENTRY_MIN_BYTES: usize = 8 + 8 + 1 + 4;
/// The fields every Raft message payload starts with: group, from, to, term, tag.
const MESSAGE_HEAD_BYTES: usize = 8 + 8 + 8 + 8 + 1;
/// Smallest message in a batch: its length, then the head of a message without a body.
const BATCH_ITEM_MIN_BYTES: usize = 4 + MESSAGE_HEAD_BYTES;
/// A batch payload's fixed part: the message count.
const BATCH_COUNT_BYTES: usize = 4;

/// The first frame on every peer connection: who is calling whom, in which cluster, and how
/// the caller means to prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The cluster the sender belongs to.
    pub cluster_id: u64,
    /// The sender's node id.
    pub from: NodeId,
    /// The node id the sender meant to reach.
    pub to: NodeId,
    /// How the sender authenticates; the acceptor refuses a mode other than its own.
    pub auth: AuthMode,
    /// The dialer's fresh random nonce (covered by both proofs, see `crate::node::peer_auth`).
    pub nonce: [u8; NONCE_BYTES],
}

impl Handshake {
    /// A handshake without authentication (and a zero nonce, which nothing then reads).
    pub fn unauthenticated(cluster_id: u64, from: NodeId, to: NodeId) -> Self {
        Handshake {
            cluster_id,
            from,
            to,
            auth: AuthMode::None,
            nonce: [0; NONCE_BYTES],
        }
    }
}

/// How the two ends of a peer connection authenticate each other at the handshake (mutual
/// TLS, if configured, is a layer below and not named here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No proof: the ids are taken on trust.
    None = 0,
    /// Both ends prove knowledge of the cluster's shared secret (HMAC-SHA256 over both nonces).
    Secret = 1,
}

impl AuthMode {
    fn from_byte(byte: u8) -> Result<AuthMode, MessageError> {
        match byte {
            0 => Ok(AuthMode::None),
            1 => Ok(AuthMode::Secret),
            found => Err(MessageError::UnknownAuthMode { found }),
        }
    }
}

/// The acceptor's answer to a [`Handshake`] (frame kind [`FRAME_KIND_CHALLENGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// The acceptor's mode.
    pub auth: AuthMode,
    /// The acceptor's fresh random nonce.
    pub nonce: [u8; NONCE_BYTES],
    /// The acceptor's proof; zeros under [`AuthMode::None`].
    pub mac: [u8; MAC_BYTES],
}

/// The dialer's answer to a [`Challenge`] (frame kind [`FRAME_KIND_PROOF`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// The dialer's proof.
    pub mac: [u8; MAC_BYTES],
}

/// Why a payload does not decode into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// A primitive could not be read (truncated, over a length limit, bad bool, trailing bytes).
    Codec(CodecError),
    /// The frame could not be built (payload over the frame maximum).
    Frame(PeerFrameError),
    /// A handshake does not start with [`HANDSHAKE_MAGIC`].
    BadHandshakeMagic {
        /// What was found.
        found: u32,
    },
    /// The peer speaks another protocol version.
    UnsupportedProtocolVersion {
        /// Version found.
        found: u16,
    },
    /// A handshake or challenge names no [`AuthMode`].
    UnknownAuthMode {
        /// Byte found.
        found: u8,
    },
    /// The body tag names no message variant.
    UnknownBodyTag {
        /// Tag found.
        tag: u8,
    },
    /// An entry kind byte names no kind.
    UnknownEntryKind {
        /// Byte found.
        kind: u8,
    },
    /// A configuration-change entry whose data is not a valid membership.
    MalformedConfChange {
        /// The entry's index.
        index: u64,
    },
    /// A count is over its bound or over what the remaining bytes could hold.
    CountTooLarge {
        /// What was counted.
        what: &'static str,
        /// Count found.
        count: u32,
        /// The bound in force.
        max: u32,
    },
    /// A node id is 0 where a node must be named.
    ZeroNodeId {
        /// Which field.
        field: &'static str,
    },
    /// A forward's tag names no forward variant.
    UnknownForwardTag {
        /// Tag found.
        tag: u8,
    },
    /// A forward result's outcome byte names no outcome.
    UnknownForwardOutcome {
        /// Byte found.
        outcome: u8,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Codec(e) => write!(f, "malformed peer message: {e}"),
            MessageError::Frame(e) => write!(f, "cannot frame peer message: {e}"),
            MessageError::BadHandshakeMagic { found } => {
                write!(f, "handshake magic {found:#010x} is not Ketch's; wrong port or protocol?")
            }
            MessageError::UnsupportedProtocolVersion { found } => write!(
                f,
                "peer speaks protocol version {found}, this build speaks {PROTOCOL_VERSION}; upgrade one side"
            ),
            MessageError::UnknownAuthMode { found } => {
                write!(f, "unknown authentication mode {found}")
            }
            MessageError::UnknownBodyTag { tag } => write!(f, "unknown message tag {tag}"),
            MessageError::UnknownEntryKind { kind } => write!(f, "unknown entry kind {kind}"),
            MessageError::MalformedConfChange { index } => {
                write!(f, "configuration entry {index} does not hold a valid membership")
            }
            MessageError::CountTooLarge { what, count, max } => {
                write!(f, "{count} {what} exceed the bound of {max}")
            }
            MessageError::ZeroNodeId { field } => write!(f, "node id 0 in field {field}"),
            MessageError::UnknownForwardTag { tag } => write!(f, "unknown forward tag {tag}"),
            MessageError::UnknownForwardOutcome { outcome } => {
                write!(f, "unknown forward outcome {outcome}")
            }
        }
    }
}

impl std::error::Error for MessageError {}

impl From<CodecError> for MessageError {
    fn from(e: CodecError) -> Self {
        MessageError::Codec(e)
    }
}

/// Client traffic between peers (frame kind [`FRAME_KIND_FORWARD`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The group whose leader the proposal is for (and whose result it is).
    pub group: GroupId,
    /// What it carries.
    pub body: ForwardBody,
}

/// The body of a [`Forward`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardBody {
    /// A follower asks the leader to propose `data` for it.
    Propose {
        /// The follower's id for this request.
        request_id: u64,
        /// The command (shared, so a large one is framed without a copy).
        data: Bytes,
    },
    /// The leader's answer to a `Propose`.
    Result {
        /// The follower's id of the request answered.
        request_id: u64,
        /// What became of it.
        outcome: ForwardOutcome,
    },
}

/// What became of a forwarded proposal, as the leader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardOutcome {
    /// Applied; the state machine's result.
    Applied(Vec<u8>),
    /// The recipient was not the leader when the proposal arrived: certainly not applied.
    NotLeader {
        /// The leader the recipient knows of.
        leader_hint: Option<NodeId>,
    },
    /// The leader refused it for load: certainly not applied.
    Backpressure,
    /// No result within the leader's timeout: may have been applied.
    Timeout,
    /// Leadership changed while it was pending: may have been applied.
    LeaderLost,
    /// The leader shut down or stopped while it was pending: may have been applied.
    ShuttingDown,
}

/// Appends `forward` as one frame of kind [`FRAME_KIND_FORWARD`] to `out`; `scratch` holds
/// the payload.
pub fn encode_forward(
    forward: &Forward,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), MessageError> {
    scratch.clear();
    let mut w = WireWriter::new(scratch);
    w.write_u64(forward.from);
    w.write_u64(forward.to);
    w.write_u64(forward.group);
    match &forward.body {
        ForwardBody::Propose { request_id, data } => {
            w.write_u8(1);
            w.write_u64(*request_id);
            w.write_bytes(data);
        }
        ForwardBody::Result {
            request_id,
            outcome,
        } => {
            w.write_u8(2);
            w.write_u64(*request_id);
            match outcome {
                ForwardOutcome::Applied(result) => {
                    w.write_u8(0);
                    w.write_bytes(result);
                }
                ForwardOutcome::NotLeader { leader_hint } => {
                    w.write_u8(1);
                    w.write_u64(leader_hint.unwrap_or(0));
                }
                ForwardOutcome::Backpressure => w.write_u8(2),
                ForwardOutcome::Timeout => w.write_u8(3),
                ForwardOutcome::LeaderLost => w.write_u8(4),
                ForwardOutcome::ShuttingDown => w.write_u8(5),
            }
        }
    }
    encode_frame(FRAME_KIND_FORWARD, scratch, out).map_err(MessageError::Frame)
}

/// `forward` as one frame of kind [`FRAME_KIND_FORWARD`], the same bytes as
/// [`encode_forward`] writes; a large proposal's data is a piece of its own, not copied.
pub fn encode_forward_shared(forward: &Forward) -> Result<OutFrame, MessageError> {
    match &forward.body {
        ForwardBody::Propose { request_id, data } if data.len() >= SHARED_FRAME_MIN_BYTES => {
            let mut builder = FrameBuilder::new();
            let mut w = WireWriter::new(builder.inline());
            w.write_u64(forward.from);
            w.write_u64(forward.to);
            w.write_u64(forward.group);
            w.write_u8(1);
            w.write_u64(*request_id);
            w.write_u32(byte_string_len(data)?);
            builder.share(data.clone());
            builder
                .finish(FRAME_KIND_FORWARD)
                .map_err(MessageError::Frame)
        }
        _ => {
            let mut out = Vec::new();
            encode_forward(forward, &mut Vec::new(), &mut out)?;
            Ok(OutFrame::Whole(out))
        }
    }
}

/// A byte string's length prefix; one over `u32` cannot be framed anyway.
fn byte_string_len(bytes: &[u8]) -> Result<u32, MessageError> {
    u32::try_from(bytes.len()).map_err(|_| {
        MessageError::Frame(PeerFrameError::TooLarge {
            payload_len: bytes.len() as u64,
            max_payload_bytes: super::frame::MAX_FRAME_PAYLOAD_BYTES,
        })
    })
}

/// Decodes a forward payload (of a frame of kind [`FRAME_KIND_FORWARD`]). Never panics.
pub fn decode_forward(payload: &[u8]) -> Result<Forward, MessageError> {
    decode_forward_in(payload, None)
}

/// [`decode_forward`] of a shared payload: a proposal's data is a slice of it, not a copy.
pub fn decode_forward_shared(payload: &Bytes) -> Result<Forward, MessageError> {
    decode_forward_in(payload, Some(payload))
}

/// `bytes`, a part of `owner`'s bytes if there is an owner (no copy), else copied.
fn shared_or_copied(owner: Option<&Bytes>, bytes: &[u8]) -> Bytes {
    match owner {
        Some(owner) if !bytes.is_empty() => owner.slice_ref(bytes),
        _ => Bytes::copy_from_slice(bytes),
    }
}

fn decode_forward_in(payload: &[u8], owner: Option<&Bytes>) -> Result<Forward, MessageError> {
    let mut r = WireReader::new(payload);
    let from = nonzero(r.read_u64()?, "forward.from")?;
    let to = nonzero(r.read_u64()?, "forward.to")?;
    let group = r.read_u64()?;
    let tag = r.read_u8()?;
    let request_id = r.read_u64()?;
    let body = match tag {
        1 => ForwardBody::Propose {
            request_id,
            data: shared_or_copied(owner, r.read_bytes(remaining_u32(&r))?),
        },
        2 => {
            let outcome = match r.read_u8()? {
                0 => ForwardOutcome::Applied(r.read_bytes(remaining_u32(&r))?.to_vec()),
                1 => ForwardOutcome::NotLeader {
                    leader_hint: Some(r.read_u64()?).filter(|id| *id != 0),
                },
                2 => ForwardOutcome::Backpressure,
                3 => ForwardOutcome::Timeout,
                4 => ForwardOutcome::LeaderLost,
                5 => ForwardOutcome::ShuttingDown,
                outcome => return Err(MessageError::UnknownForwardOutcome { outcome }),
            };
            ForwardBody::Result {
                request_id,
                outcome,
            }
        }
        tag => return Err(MessageError::UnknownForwardTag { tag }),
    };
    r.finish()?;
    Ok(Forward {
        from,
        to,
        group,
        body,
    })
}

/// Appends the handshake frame to `out`.
pub fn encode_handshake(handshake: &Handshake, out: &mut Vec<u8>) -> Result<(), MessageError> {
    let mut payload = Vec::with_capacity(HANDSHAKE_PAYLOAD_BYTES);
    let mut w = WireWriter::new(&mut payload);
    w.write_u32(HANDSHAKE_MAGIC);
    w.write_u16(PROTOCOL_VERSION);
    w.write_u64(handshake.cluster_id);
    w.write_u64(handshake.from);
    w.write_u64(handshake.to);
    w.write_u8(handshake.auth as u8);
    write_fixed(&mut w, &handshake.nonce);
    debug_assert_eq!(payload.len(), HANDSHAKE_PAYLOAD_BYTES);
    encode_frame(FRAME_KIND_HANDSHAKE, &payload, out).map_err(MessageError::Frame)
}

/// Decodes a handshake payload (of a frame of kind [`FRAME_KIND_HANDSHAKE`]). The version is
/// checked before any field that changed between versions, so an older peer's handshake is
/// refused as [`MessageError::UnsupportedProtocolVersion`]. Never panics.
pub fn decode_handshake(payload: &[u8]) -> Result<Handshake, MessageError> {
    let mut r = WireReader::new(payload);
    let magic = r.read_u32()?;
    if magic != HANDSHAKE_MAGIC {
        return Err(MessageError::BadHandshakeMagic { found: magic });
    }
    let version = r.read_u16()?;
    if version != PROTOCOL_VERSION {
        return Err(MessageError::UnsupportedProtocolVersion { found: version });
    }
    let handshake = Handshake {
        cluster_id: r.read_u64()?,
        from: nonzero(r.read_u64()?, "handshake.from")?,
        to: nonzero(r.read_u64()?, "handshake.to")?,
        auth: AuthMode::from_byte(r.read_u8()?)?,
        nonce: read_fixed(&mut r)?,
    };
    r.finish()?;
    Ok(handshake)
}

/// Appends the challenge frame to `out`.
pub fn encode_challenge(challenge: &Challenge, out: &mut Vec<u8>) -> Result<(), MessageError> {
    let mut payload = Vec::with_capacity(CHALLENGE_PAYLOAD_BYTES);
    let mut w = WireWriter::new(&mut payload);
    w.write_u8(challenge.auth as u8);
    write_fixed(&mut w, &challenge.nonce);
    write_fixed(&mut w, &challenge.mac);
    encode_frame(FRAME_KIND_CHALLENGE, &payload, out).map_err(MessageError::Frame)
}

/// Decodes a challenge payload (of a frame of kind [`FRAME_KIND_CHALLENGE`]). Never panics.
pub fn decode_challenge(payload: &[u8]) -> Result<Challenge, MessageError> {
    let mut r = WireReader::new(payload);
    let challenge = Challenge {
        auth: AuthMode::from_byte(r.read_u8()?)?,
        nonce: read_fixed(&mut r)?,
        mac: read_fixed(&mut r)?,
    };
    r.finish()?;
    Ok(challenge)
}

/// Appends the proof frame to `out`.
pub fn encode_proof(proof: &Proof, out: &mut Vec<u8>) -> Result<(), MessageError> {
    let mut payload = Vec::with_capacity(MAC_BYTES);
    write_fixed(&mut WireWriter::new(&mut payload), &proof.mac);
    encode_frame(FRAME_KIND_PROOF, &payload, out).map_err(MessageError::Frame)
}

/// Decodes a proof payload (of a frame of kind [`FRAME_KIND_PROOF`]). Never panics.
pub fn decode_proof(payload: &[u8]) -> Result<Proof, MessageError> {
    let mut r = WireReader::new(payload);
    let proof = Proof {
        mac: read_fixed(&mut r)?,
    };
    r.finish()?;
    Ok(proof)
}

/// Writes a fixed-size field of 32 bytes (a nonce or a MAC) as it is, without a length.
fn write_fixed(w: &mut WireWriter<'_>, bytes: &[u8; 32]) {
    // Four little-endian u64s give back the same bytes in order.
    for chunk in bytes.chunks_exact(8) {
        w.write_u64(u64::from_le_bytes(chunk.try_into().expect("8-byte chunk")));
    }
}

/// Reads a fixed-size field of 32 bytes written by [`write_fixed`].
fn read_fixed(r: &mut WireReader<'_>) -> Result<[u8; 32], MessageError> {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&r.read_u64()?.to_le_bytes());
    }
    Ok(bytes)
}

/// Appends `message` of `group` as one frame of kind [`FRAME_KIND_RAFT`] to `out`. The
/// payload is encoded in place after room for the header, never copied to be framed: an
/// Append of tens of MiB costs one copy of its entries. `scratch` is not needed for that and
/// is left alone.
pub fn encode_message(
    group: GroupId,
    message: &Message,
    _scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), MessageError> {
    let start = out.len();
    // Entries make the bulk of a large message: one allocation instead of doubling up to it.
    if let MessageBody::Append { entries, .. } = &message.body {
        let entry_bytes: u64 = entries.iter().map(|e| e.size_bytes()).sum();
        out.reserve(HEADER_BYTES + 64 + usize::try_from(entry_bytes).unwrap_or(0));
    }
    out.extend_from_slice(&[0u8; HEADER_BYTES]);
    encode_message_payload(group, message, out);
    frame_in_place(FRAME_KIND_RAFT, out, start).map_err(MessageError::Frame)
}

/// `message` of `group` as one frame of kind [`FRAME_KIND_RAFT`], the same bytes as
/// [`encode_message`] writes; in an Append, the data of each entry of at least
/// [`SHARED_FRAME_MIN_BYTES`] is a piece of its own, shared with the entry, not copied. Other
/// messages are one buffer.
pub fn encode_message_shared(group: GroupId, message: &Message) -> Result<OutFrame, MessageError> {
    let MessageBody::Append {
        prev_log_index,
        prev_log_term,
        entries,
        leader_commit,
    } = &message.body
    else {
        return encode_whole(group, message);
    };
    if !entries
        .iter()
        .any(|e| e.data.len() >= SHARED_FRAME_MIN_BYTES)
    {
        return encode_whole(group, message);
    }
    let mut builder = FrameBuilder::new();
    let mut w = WireWriter::new(builder.inline());
    w.write_u64(group);
    w.write_u64(message.from);
    w.write_u64(message.to);
    w.write_u64(message.term);
    w.write_u8(5);
    w.write_u64(*prev_log_index);
    w.write_u64(*prev_log_term);
    w.write_u64(*leader_commit);
    w.write_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
    for entry in entries {
        let mut w = WireWriter::new(builder.inline());
        write_entry_head(&mut w, entry);
        if entry.data.len() >= SHARED_FRAME_MIN_BYTES {
            w.write_u32(byte_string_len(&entry.data)?);
            builder.share(entry.data.clone());
        } else {
            w.write_bytes(&entry.data);
        }
    }
    builder.finish(FRAME_KIND_RAFT).map_err(MessageError::Frame)
}

/// The frame size, header included, of an Append carrying `entries`, without encoding it:
/// lets a sender refuse a frame it has no room for before paying for its checksum.
pub fn append_frame_bytes(entries: &[Entry]) -> usize {
    HEADER_BYTES + append_payload_bytes(entries)
}

/// The payload size of an Append carrying `entries`.
fn append_payload_bytes(entries: &[Entry]) -> usize {
    // group, from, to, term, tag, prev_log_index, prev_log_term, leader_commit, count.
    const APPEND_FIXED_BYTES: usize = MESSAGE_HEAD_BYTES + 8 + 8 + 8 + 4;
    APPEND_FIXED_BYTES
        + entries
            .iter()
            .map(|e| ENTRY_MIN_BYTES + e.data.len())
            .sum::<usize>()
}

/// The exact size of `message`'s payload ([`encode_message_payload`]'s bytes), without
/// encoding it: lets a sender choose how to frame a message, and refuse one it has no room
/// for, before paying for the copy.
pub fn message_payload_bytes(message: &Message) -> usize {
    let membership_bytes =
        |m: &Membership| 3 * 4 + 8 * (m.voters.len() + m.learners.len() + m.outgoing_voters.len());
    let body_bytes = match &message.body {
        MessageBody::Append { entries, .. } => return append_payload_bytes(entries),
        MessageBody::PreVote { .. } => 8 + 8,
        MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. } => 1,
        MessageBody::Vote { .. } => 8 + 8 + 1,
        MessageBody::AppendResponse { .. } => 1 + 8 + 8 + 8,
        MessageBody::Heartbeat { .. } => 8 + 8,
        MessageBody::HeartbeatResponse { .. } => 8,
        MessageBody::InstallSnapshot { meta, data, .. } => {
            (8 + 8 + membership_bytes(&meta.membership) + 8) + 8 + 8 + (4 + data.len()) + 1
        }
        MessageBody::InstallSnapshotResponse { .. } => 8 + 8 + 1 + 1,
        MessageBody::TimeoutNow => 0,
        MessageBody::ReadIndex { .. } => 8,
        MessageBody::ReadIndexResponse { .. } => 8 + 8,
    };
    MESSAGE_HEAD_BYTES + body_bytes
}

fn encode_whole(group: GroupId, message: &Message) -> Result<OutFrame, MessageError> {
    let mut out = Vec::new();
    encode_message(group, message, &mut Vec::new(), &mut out)?;
    Ok(OutFrame::Whole(out))
}

/// An entry's fields before its data: term, index, kind.
fn write_entry_head(w: &mut WireWriter<'_>, entry: &Entry) {
    w.write_u64(entry.term);
    w.write_u64(entry.index);
    w.write_u8(match entry.kind {
        EntryKind::Normal => 0,
        EntryKind::Noop => 1,
        EntryKind::ConfChange => 2,
    });
}

/// The payload bytes of `message` of `group` (without the frame), appended to `out`.
pub fn encode_message_payload(group: GroupId, message: &Message, out: &mut Vec<u8>) {
    let mut w = WireWriter::new(out);
    w.write_u64(group);
    w.write_u64(message.from);
    w.write_u64(message.to);
    w.write_u64(message.term);
    match &message.body {
        MessageBody::PreVote {
            last_log_index,
            last_log_term,
        } => {
            w.write_u8(1);
            w.write_u64(*last_log_index);
            w.write_u64(*last_log_term);
        }
        MessageBody::PreVoteResponse { granted } => {
            w.write_u8(2);
            w.write_bool(*granted);
        }
        MessageBody::Vote {
            last_log_index,
            last_log_term,
            leadership_transfer,
        } => {
            w.write_u8(3);
            w.write_u64(*last_log_index);
            w.write_u64(*last_log_term);
            w.write_bool(*leadership_transfer);
        }
        MessageBody::VoteResponse { granted } => {
            w.write_u8(4);
            w.write_bool(*granted);
        }
        MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => {
            w.write_u8(5);
            w.write_u64(*prev_log_index);
            w.write_u64(*prev_log_term);
            w.write_u64(*leader_commit);
            // The core bounds entries per message by bytes; the count bound is the receiver's.
            w.write_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
            for entry in entries {
                write_entry_head(&mut w, entry);
                w.write_bytes(&entry.data);
            }
        }
        MessageBody::AppendResponse {
            success,
            index,
            reject_hint_index,
            reject_hint_term,
        } => {
            w.write_u8(6);
            w.write_bool(*success);
            w.write_u64(*index);
            w.write_u64(*reject_hint_index);
            w.write_u64(*reject_hint_term);
        }
        MessageBody::Heartbeat { commit, round } => {
            w.write_u8(7);
            w.write_u64(*commit);
            w.write_u64(*round);
        }
        MessageBody::HeartbeatResponse { round } => {
            w.write_u8(8);
            w.write_u64(*round);
        }
        MessageBody::InstallSnapshot {
            meta,
            offset,
            len,
            data,
            done,
        } => {
            w.write_u8(9);
            write_snapshot_meta(&mut w, meta);
            w.write_u64(*offset);
            w.write_u64(*len);
            w.write_bytes(data);
            w.write_bool(*done);
        }
        MessageBody::InstallSnapshotResponse {
            snapshot_index,
            next_offset,
            done,
            rejected,
        } => {
            w.write_u8(10);
            w.write_u64(*snapshot_index);
            w.write_u64(*next_offset);
            w.write_bool(*done);
            w.write_bool(*rejected);
        }
        MessageBody::TimeoutNow => w.write_u8(11),
        MessageBody::ReadIndex { ctx } => {
            w.write_u8(12);
            w.write_u64(*ctx);
        }
        MessageBody::ReadIndexResponse { ctx, index } => {
            w.write_u8(13);
            w.write_u64(*ctx);
            w.write_u64(*index);
        }
    }
}

/// Decodes a Raft message payload (of a frame of kind [`FRAME_KIND_RAFT`]): the group it
/// belongs to, and the message. Never panics.
pub fn decode_message(payload: &[u8]) -> Result<(GroupId, Message), MessageError> {
    decode_message_in(payload, None)
}

/// [`decode_message`] of a shared payload: entries' data are slices of it, not copies, so
/// an Append of tens of MiB is decoded without touching its bytes.
pub fn decode_message_shared(payload: &Bytes) -> Result<(GroupId, Message), MessageError> {
    decode_message_in(payload, Some(payload))
}

fn decode_message_in(
    payload: &[u8],
    owner: Option<&Bytes>,
) -> Result<(GroupId, Message), MessageError> {
    let mut r = WireReader::new(payload);
    let group = r.read_u64()?;
    let from = nonzero(r.read_u64()?, "message.from")?;
    let to = nonzero(r.read_u64()?, "message.to")?;
    let term = r.read_u64()?;
    let tag = r.read_u8()?;
    let body = match tag {
        1 => MessageBody::PreVote {
            last_log_index: r.read_u64()?,
            last_log_term: r.read_u64()?,
        },
        2 => MessageBody::PreVoteResponse {
            granted: r.read_bool()?,
        },
        3 => MessageBody::Vote {
            last_log_index: r.read_u64()?,
            last_log_term: r.read_u64()?,
            leadership_transfer: r.read_bool()?,
        },
        4 => MessageBody::VoteResponse {
            granted: r.read_bool()?,
        },
        5 => {
            let prev_log_index = r.read_u64()?;
            let prev_log_term = r.read_u64()?;
            let leader_commit = r.read_u64()?;
            let count = read_count(&mut r, "entries", MAX_ENTRIES_PER_MESSAGE, ENTRY_MIN_BYTES)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(read_entry(&mut r, owner)?);
            }
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            }
        }
        6 => MessageBody::AppendResponse {
            success: r.read_bool()?,
            index: r.read_u64()?,
            reject_hint_index: r.read_u64()?,
            reject_hint_term: r.read_u64()?,
        },
        7 => MessageBody::Heartbeat {
            commit: r.read_u64()?,
            round: r.read_u64()?,
        },
        8 => MessageBody::HeartbeatResponse {
            round: r.read_u64()?,
        },
        9 => {
            let meta = read_snapshot_meta(&mut r)?;
            let offset = r.read_u64()?;
            let len = r.read_u64()?;
            let data = r.read_bytes(remaining_u32(&r))?.to_vec();
            MessageBody::InstallSnapshot {
                meta,
                offset,
                len,
                data,
                done: r.read_bool()?,
            }
        }
        10 => MessageBody::InstallSnapshotResponse {
            snapshot_index: r.read_u64()?,
            next_offset: r.read_u64()?,
            done: r.read_bool()?,
            rejected: r.read_bool()?,
        },
        11 => MessageBody::TimeoutNow,
        12 => MessageBody::ReadIndex { ctx: r.read_u64()? },
        13 => MessageBody::ReadIndexResponse {
            ctx: r.read_u64()?,
            index: r.read_u64()?,
        },
        tag => return Err(MessageError::UnknownBodyTag { tag }),
    };
    r.finish()?;
    Ok((
        group,
        Message {
            from,
            to,
            term,
            body,
        },
    ))
}

/// Raft messages gathered into one frame as they are encoded, for one connection: each
/// message's payload is written once, in place, after room for the frame header and the
/// count (layout: "Raft batch payload" in the module docs). [`finish`](Self::finish) frames
/// them.
#[derive(Debug)]
pub struct RaftBatch {
    /// Room for the header and the count, then each message's length and payload.
    frame: Vec<u8>,
    count: u32,
}

impl Default for RaftBatch {
    fn default() -> Self {
        RaftBatch::new()
    }
}

impl RaftBatch {
    /// A batch of no messages.
    pub fn new() -> Self {
        RaftBatch {
            frame: vec![0u8; HEADER_BYTES + BATCH_COUNT_BYTES],
            count: 0,
        }
    }

    /// Messages pushed so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True once the batch holds [`MAX_MESSAGES_PER_BATCH`] messages: seal it.
    pub fn is_full(&self) -> bool {
        self.count >= MAX_MESSAGES_PER_BATCH
    }

    /// Bytes of the batch frame as it stands, header included.
    pub fn frame_bytes(&self) -> usize {
        self.frame.len()
    }

    /// Bytes of the batch frame once a message of `payload_bytes` (see
    /// [`message_payload_bytes`]) is pushed.
    pub fn frame_bytes_with(&self, payload_bytes: usize) -> usize {
        self.frame.len() + 4 + payload_bytes
    }

    /// Appends `message` of `group`; returns the bytes the frame grew by (its length prefix
    /// and payload).
    ///
    /// # Panics
    ///
    /// If the batch is full ([`is_full`](Self::is_full)), or the payload is over `u32`.
    pub fn push(&mut self, group: GroupId, message: &Message) -> usize {
        assert!(!self.is_full(), "push into a full batch");
        let start = self.frame.len();
        self.frame.extend_from_slice(&[0u8; 4]);
        encode_message_payload(group, message, &mut self.frame);
        let payload_bytes = self.frame.len() - start - 4;
        let len = u32::try_from(payload_bytes).expect("batched message under u32::MAX bytes");
        self.frame[start..start + 4].copy_from_slice(&len.to_le_bytes());
        debug_assert_eq!(payload_bytes, message_payload_bytes(message));
        self.count += 1;
        self.frame.len() - start
    }

    /// The frame that carries every message pushed: of kind [`FRAME_KIND_RAFT_BATCH`], or,
    /// for a batch of one message, the plain frame of kind [`FRAME_KIND_RAFT`] that
    /// [`encode_message`] writes (8 bytes shorter). Fails if the payload is over the frame
    /// maximum.
    pub fn finish(self) -> Result<Vec<u8>, MessageError> {
        let RaftBatch { mut frame, count } = self;
        if count == 1 {
            // Drop the count and the one length prefix: the payload follows the header.
            frame.drain(HEADER_BYTES..HEADER_BYTES + BATCH_COUNT_BYTES + 4);
            frame_in_place(FRAME_KIND_RAFT, &mut frame, 0).map_err(MessageError::Frame)?;
            return Ok(frame);
        }
        frame[HEADER_BYTES..HEADER_BYTES + BATCH_COUNT_BYTES].copy_from_slice(&count.to_le_bytes());
        frame_in_place(FRAME_KIND_RAFT_BATCH, &mut frame, 0).map_err(MessageError::Frame)?;
        Ok(frame)
    }
}

/// The payload of a batch frame carrying `messages` in order, appended to `out` (a batch of
/// any size, one or none included: tools and tests; senders use [`RaftBatch`]).
///
/// # Panics
///
/// If there are more than [`MAX_MESSAGES_PER_BATCH`] messages.
pub fn encode_raft_batch_payload(messages: &[(GroupId, Message)], out: &mut Vec<u8>) {
    let count = u32::try_from(messages.len())
        .ok()
        .filter(|count| *count <= MAX_MESSAGES_PER_BATCH)
        .expect("at most MAX_MESSAGES_PER_BATCH messages in a batch");
    out.extend_from_slice(&count.to_le_bytes());
    for (group, message) in messages {
        let start = out.len();
        out.extend_from_slice(&[0u8; 4]);
        encode_message_payload(*group, message, out);
        let len = u32::try_from(out.len() - start - 4).expect("batched message under u32::MAX");
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// Appends `messages` as one frame of kind [`FRAME_KIND_RAFT_BATCH`] to `out`, whatever
/// their number.
pub fn encode_raft_batch(
    messages: &[(GroupId, Message)],
    out: &mut Vec<u8>,
) -> Result<(), MessageError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_BYTES]);
    encode_raft_batch_payload(messages, out);
    frame_in_place(FRAME_KIND_RAFT_BATCH, out, start).map_err(MessageError::Frame)
}

/// Decodes a batch payload (of a frame of kind [`FRAME_KIND_RAFT_BATCH`]) into its messages,
/// in order, each with its group. Never panics; a hostile count never allocates.
pub fn decode_raft_batch(payload: &[u8]) -> Result<Vec<(GroupId, Message)>, MessageError> {
    decode_raft_batch_in(payload, None)
}

/// [`decode_raft_batch`] of a shared payload: entries' data are slices of it, not copies.
pub fn decode_raft_batch_shared(payload: &Bytes) -> Result<Vec<(GroupId, Message)>, MessageError> {
    decode_raft_batch_in(payload, Some(payload))
}

fn decode_raft_batch_in(
    payload: &[u8],
    owner: Option<&Bytes>,
) -> Result<Vec<(GroupId, Message)>, MessageError> {
    let mut r = WireReader::new(payload);
    let count = read_count(
        &mut r,
        "batched messages",
        MAX_MESSAGES_PER_BATCH,
        BATCH_ITEM_MIN_BYTES,
    )?;
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        let item = r.read_bytes(remaining_u32(&r))?;
        messages.push(decode_message_in(item, owner)?);
    }
    r.finish()?;
    Ok(messages)
}

/// Host-to-host liveness (frame kind [`FRAME_KIND_HOST_BEAT`]): one per host pair per tick,
/// whatever the number of groups the two share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostBeat {
    /// The sending host's node id (non-zero; must be the connection's peer).
    pub from: NodeId,
    /// The sender's tick counter: informational, for logs and tests.
    pub tick: u64,
}

/// Appends the host beat frame to `out`.
pub fn encode_host_beat(beat: &HostBeat, out: &mut Vec<u8>) -> Result<(), MessageError> {
    let mut payload = Vec::with_capacity(HOST_BEAT_PAYLOAD_BYTES);
    let mut w = WireWriter::new(&mut payload);
    w.write_u64(beat.from);
    w.write_u64(beat.tick);
    encode_frame(FRAME_KIND_HOST_BEAT, &payload, out).map_err(MessageError::Frame)
}

/// Decodes a host beat payload (of a frame of kind [`FRAME_KIND_HOST_BEAT`]). Never panics.
pub fn decode_host_beat(payload: &[u8]) -> Result<HostBeat, MessageError> {
    let mut r = WireReader::new(payload);
    let beat = HostBeat {
        from: nonzero(r.read_u64()?, "host_beat.from")?,
        tick: r.read_u64()?,
    };
    r.finish()?;
    Ok(beat)
}

/// A leader's notice that it quiesced `group` (see `crate::node::quiescence`): one entry of a
/// frame of kind [`FRAME_KIND_QUIESCE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuiesceNotice {
    /// The group.
    pub group: GroupId,
    /// The leader's term.
    pub term: u64,
    /// The leader's commit index, which is also its last index.
    pub commit: u64,
}

/// Bytes of one [`QuiesceNotice`] in a frame.
const QUIESCE_NOTICE_BYTES: usize = 24;
/// Most notices one quiesce frame carries; more are sent in several frames.
pub const MAX_NOTICES_PER_FRAME: usize = 1 << 14;

/// Appends a quiesce frame from host `from` carrying `notices` (at most
/// [`MAX_NOTICES_PER_FRAME`]) to `out`. Payload: `from: u64`, `count: u32`, then `count` times
/// `group, term, commit` (`u64` each).
pub fn encode_quiesce(
    from: NodeId,
    notices: &[QuiesceNotice],
    out: &mut Vec<u8>,
) -> Result<(), MessageError> {
    assert!(
        notices.len() <= MAX_NOTICES_PER_FRAME,
        "caller splits notices"
    );
    let mut payload = Vec::with_capacity(12 + QUIESCE_NOTICE_BYTES * notices.len());
    let mut w = WireWriter::new(&mut payload);
    w.write_u64(from);
    w.write_u32(notices.len() as u32);
    for notice in notices {
        w.write_u64(notice.group);
        w.write_u64(notice.term);
        w.write_u64(notice.commit);
    }
    encode_frame(FRAME_KIND_QUIESCE, &payload, out).map_err(MessageError::Frame)
}

/// Decodes a quiesce payload (of a frame of kind [`FRAME_KIND_QUIESCE`]) into its sender and
/// notices. Never panics; a count larger than the bytes left is refused before allocating.
pub fn decode_quiesce(payload: &[u8]) -> Result<(NodeId, Vec<QuiesceNotice>), MessageError> {
    let mut r = WireReader::new(payload);
    let from = nonzero(r.read_u64()?, "quiesce.from")?;
    let count = read_count(
        &mut r,
        "quiesce notices",
        MAX_NOTICES_PER_FRAME as u32,
        QUIESCE_NOTICE_BYTES,
    )?;
    let mut notices = Vec::with_capacity(count);
    for _ in 0..count {
        notices.push(QuiesceNotice {
            group: r.read_u64()?,
            term: r.read_u64()?,
            commit: r.read_u64()?,
        });
    }
    r.finish()?;
    Ok((from, notices))
}

/// Appends the membership encoding (three id sets) to `out`; also the snapshot files'
/// membership field (see `crate::node::durable_state`).
pub fn encode_membership(membership: &Membership, out: &mut Vec<u8>) {
    let mut w = WireWriter::new(out);
    write_membership(&mut w, membership);
}

/// Decodes a membership written by [`encode_membership`], refusing trailing bytes.
pub fn decode_membership(bytes: &[u8]) -> Result<Membership, MessageError> {
    let mut r = WireReader::new(bytes);
    let membership = read_membership(&mut r)?;
    r.finish()?;
    Ok(membership)
}

fn nonzero(id: u64, field: &'static str) -> Result<u64, MessageError> {
    if id == 0 {
        return Err(MessageError::ZeroNodeId { field });
    }
    Ok(id)
}

fn remaining_u32(r: &WireReader<'_>) -> u32 {
    u32::try_from(r.remaining_bytes()).unwrap_or(u32::MAX)
}

/// Reads a `u32` count bounded by `max` and by what the remaining bytes could hold at
/// `min_item_bytes` each, so the count is safe to preallocate.
fn read_count(
    r: &mut WireReader<'_>,
    what: &'static str,
    max: u32,
    min_item_bytes: usize,
) -> Result<usize, MessageError> {
    let count = r.read_u32()?;
    let fits = r.remaining_bytes() / min_item_bytes;
    if count > max || count as usize > fits {
        return Err(MessageError::CountTooLarge {
            what,
            count,
            max: max.min(u32::try_from(fits).unwrap_or(u32::MAX)),
        });
    }
    Ok(count as usize)
}

fn read_entry(r: &mut WireReader<'_>, owner: Option<&Bytes>) -> Result<Entry, MessageError> {
    let term = r.read_u64()?;
    let index = r.read_u64()?;
    let kind = match r.read_u8()? {
        0 => EntryKind::Normal,
        1 => EntryKind::Noop,
        2 => EntryKind::ConfChange,
        kind => return Err(MessageError::UnknownEntryKind { kind }),
    };
    let data = shared_or_copied(owner, r.read_bytes(remaining_u32(r))?);
    if kind == EntryKind::ConfChange && Membership::decode(&data).is_none() {
        return Err(MessageError::MalformedConfChange { index });
    }
    Ok(Entry {
        term,
        index,
        kind,
        data,
    })
}

fn write_id_set(w: &mut WireWriter<'_>, ids: &BTreeSet<NodeId>) {
    w.write_u32(u32::try_from(ids.len()).unwrap_or(u32::MAX));
    for id in ids {
        w.write_u64(*id);
    }
}

fn read_id_set(
    r: &mut WireReader<'_>,
    what: &'static str,
) -> Result<BTreeSet<NodeId>, MessageError> {
    let count = read_count(r, what, MAX_MEMBERS_PER_SET, 8)?;
    let mut ids = BTreeSet::new();
    for _ in 0..count {
        ids.insert(nonzero(r.read_u64()?, what)?);
    }
    Ok(ids)
}

fn write_membership(w: &mut WireWriter<'_>, membership: &Membership) {
    write_id_set(w, &membership.voters);
    write_id_set(w, &membership.learners);
    write_id_set(w, &membership.outgoing_voters);
}

fn read_membership(r: &mut WireReader<'_>) -> Result<Membership, MessageError> {
    Ok(Membership {
        voters: read_id_set(r, "voters")?,
        learners: read_id_set(r, "learners")?,
        outgoing_voters: read_id_set(r, "outgoing voters")?,
    })
}

fn write_snapshot_meta(w: &mut WireWriter<'_>, meta: &SnapshotMeta) {
    w.write_u64(meta.index);
    w.write_u64(meta.term);
    write_membership(w, &meta.membership);
    w.write_u64(meta.size_bytes);
}

fn read_snapshot_meta(r: &mut WireReader<'_>) -> Result<SnapshotMeta, MessageError> {
    Ok(SnapshotMeta {
        index: r.read_u64()?,
        term: r.read_u64()?,
        membership: read_membership(r)?,
        size_bytes: r.read_u64()?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn quiesce_notices_round_trip_and_hostile_counts_are_refused() {
        let notices = vec![
            QuiesceNotice {
                group: 7,
                term: 3,
                commit: 41,
            },
            QuiesceNotice {
                group: 1 << 40,
                term: 9,
                commit: 0,
            },
        ];
        let mut frame = Vec::new();
        encode_quiesce(5, &notices, &mut frame).unwrap();
        let payload = &frame[HEADER_BYTES..];
        assert_eq!(frame[3], FRAME_KIND_QUIESCE);
        assert_eq!(decode_quiesce(payload).unwrap(), (5, notices));
        // A count larger than the bytes could hold, truncation, trailing bytes, sender 0.
        let mut hostile = payload.to_vec();
        hostile[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_quiesce(&hostile),
            Err(MessageError::CountTooLarge { .. })
        ));
        assert!(decode_quiesce(&payload[..payload.len() - 1]).is_err());
        let mut trailing = payload.to_vec();
        trailing.push(0);
        assert!(decode_quiesce(&trailing).is_err());
        let mut anonymous = payload.to_vec();
        anonymous[..8].copy_from_slice(&0u64.to_le_bytes());
        assert!(decode_quiesce(&anonymous).is_err());
    }

    use super::*;
    use crate::wire::frame::FrameDecoder;
    use proptest::collection::{btree_set, vec};
    use proptest::prelude::*;

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            vec(any::<u8>(), 0..64),
        )
            .prop_map(|(term, index, noop, data)| Entry {
                term,
                index,
                kind: if noop {
                    EntryKind::Noop
                } else {
                    EntryKind::Normal
                },
                data: bytes::Bytes::from(data),
            })
    }

    fn arb_membership() -> impl Strategy<Value = Membership> {
        (
            btree_set(1u64..100, 0..5),
            btree_set(1u64..100, 0..3),
            btree_set(1u64..100, 0..3),
        )
            .prop_map(|(voters, learners, outgoing_voters)| Membership {
                voters,
                learners,
                outgoing_voters,
            })
    }

    fn arb_body() -> impl Strategy<Value = MessageBody> {
        let u = any::<u64>;
        prop_oneof![
            (u(), u()).prop_map(|(a, b)| MessageBody::PreVote {
                last_log_index: a,
                last_log_term: b
            }),
            any::<bool>().prop_map(|granted| MessageBody::PreVoteResponse { granted }),
            (u(), u(), any::<bool>()).prop_map(|(a, b, t)| MessageBody::Vote {
                last_log_index: a,
                last_log_term: b,
                leadership_transfer: t
            }),
            any::<bool>().prop_map(|granted| MessageBody::VoteResponse { granted }),
            (u(), u(), vec(arb_entry(), 0..8), u()).prop_map(|(a, b, entries, c)| {
                MessageBody::Append {
                    prev_log_index: a,
                    prev_log_term: b,
                    entries,
                    leader_commit: c,
                }
            }),
            (any::<bool>(), u(), u(), u()).prop_map(|(s, a, b, c)| MessageBody::AppendResponse {
                success: s,
                index: a,
                reject_hint_index: b,
                reject_hint_term: c
            }),
            (u(), u()).prop_map(|(commit, round)| MessageBody::Heartbeat { commit, round }),
            u().prop_map(|round| MessageBody::HeartbeatResponse { round }),
            (
                (u(), u(), arb_membership(), u()),
                u(),
                u(),
                vec(any::<u8>(), 0..128),
                any::<bool>()
            )
                .prop_map(
                    |((index, term, membership, size_bytes), offset, len, data, done)| {
                        MessageBody::InstallSnapshot {
                            meta: SnapshotMeta {
                                index,
                                term,
                                membership,
                                size_bytes,
                            },
                            offset,
                            len,
                            data,
                            done,
                        }
                    }
                ),
            (u(), u(), any::<bool>(), any::<bool>()).prop_map(|(a, b, d, r)| {
                MessageBody::InstallSnapshotResponse {
                    snapshot_index: a,
                    next_offset: b,
                    done: d,
                    rejected: r,
                }
            }),
            Just(MessageBody::TimeoutNow),
            u().prop_map(|ctx| MessageBody::ReadIndex { ctx }),
            (u(), u()).prop_map(|(ctx, index)| MessageBody::ReadIndexResponse { ctx, index }),
        ]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (1u64.., 1u64.., any::<u64>(), arb_body()).prop_map(|(from, to, term, body)| Message {
            from,
            to,
            term,
            body,
        })
    }

    proptest! {
        #[test]
        fn shared_frames_are_the_same_bytes(
            m in arb_message(),
            group in any::<u64>(),
            big in any::<bool>(),
        ) {
            let mut m = m;
            if big {
                // One entry above the sharing threshold, so the pieces path is taken.
                if let MessageBody::Append { entries, .. } = &mut m.body {
                    entries.push(Entry {
                        term: 1,
                        index: 1,
                        kind: EntryKind::Normal,
                        data: Bytes::from(vec![7u8; SHARED_FRAME_MIN_BYTES + 3]),
                    });
                }
            }
            let mut whole = Vec::new();
            encode_message(group, &m, &mut Vec::new(), &mut whole).unwrap();
            let shared = encode_message_shared(group, &m).unwrap();
            prop_assert_eq!(shared.len(), whole.len());
            prop_assert!(shared.to_vec() == whole, "pieces differ from the whole frame");
            if let MessageBody::Append { entries, .. } = &m.body {
                prop_assert_eq!(append_frame_bytes(entries), whole.len());
            }
            prop_assert_eq!(message_payload_bytes(&m), whole.len() - HEADER_BYTES);
            prop_assert_eq!(&whole[HEADER_BYTES..HEADER_BYTES + 8], &group.to_le_bytes()[..]);
            let payload = Bytes::copy_from_slice(&whole[HEADER_BYTES..]);
            prop_assert_eq!(decode_message_shared(&payload).unwrap(), (group, m));
        }

        #[test]
        fn messages_round_trip_through_frames(
            messages in vec((any::<u64>(), arb_message()), 1..6),
        ) {
            let mut stream = Vec::new();
            let mut scratch = Vec::new();
            for (group, m) in &messages {
                encode_message(*group, m, &mut scratch, &mut stream).unwrap();
            }
            let mut decoder = FrameDecoder::new(1 << 20);
            prop_assert_eq!(decoder.feed(&stream), stream.len());
            for m in &messages {
                let (kind, payload) = decoder.next_frame().unwrap().unwrap();
                prop_assert_eq!(kind, FRAME_KIND_RAFT);
                prop_assert_eq!(&decode_message(&payload).unwrap(), m);
            }
            prop_assert!(decoder.next_frame().unwrap().is_none());
        }

        #[test]
        fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
            let _ = decode_message(&bytes);
            let _ = decode_handshake(&bytes);
            let _ = decode_membership(&bytes);
        }

        #[test]
        fn truncated_or_extended_payloads_are_errors(m in arb_message(), cut in any::<prop::sample::Index>()) {
            let mut payload = Vec::new();
            encode_message_payload(7, &m, &mut payload);
            let cut = cut.index(payload.len());
            prop_assert!(decode_message(&payload[..cut]).is_err());
            payload.push(0);
            prop_assert!(decode_message(&payload).is_err());
        }

        #[test]
        fn membership_round_trips(m in arb_membership()) {
            let mut bytes = Vec::new();
            encode_membership(&m, &mut bytes);
            prop_assert_eq!(decode_membership(&bytes).unwrap(), m);
        }
    }

    fn arb_forward() -> impl Strategy<Value = Forward> {
        let outcome = prop_oneof![
            vec(any::<u8>(), 0..64).prop_map(ForwardOutcome::Applied),
            any::<Option<u64>>().prop_map(|hint| ForwardOutcome::NotLeader {
                leader_hint: hint.map(|h| h.max(1)),
            }),
            Just(ForwardOutcome::Backpressure),
            Just(ForwardOutcome::Timeout),
            Just(ForwardOutcome::LeaderLost),
            Just(ForwardOutcome::ShuttingDown),
        ];
        let body = prop_oneof![
            (any::<u64>(), vec(any::<u8>(), 0..64)).prop_map(|(request_id, data)| {
                ForwardBody::Propose {
                    request_id,
                    data: bytes::Bytes::from(data),
                }
            }),
            (any::<u64>(), outcome).prop_map(|(request_id, outcome)| ForwardBody::Result {
                request_id,
                outcome
            }),
        ];
        (1..u64::MAX, 1..u64::MAX, any::<u64>(), body).prop_map(|(from, to, group, body)| Forward {
            from,
            to,
            group,
            body,
        })
    }

    proptest! {
        #[test]
        fn forwards_round_trip_and_every_cut_is_an_error(
            forward in arb_forward(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut frame = Vec::new();
            encode_forward(&forward, &mut Vec::new(), &mut frame).unwrap();
            let mut decoder = crate::wire::frame::FrameDecoder::new(1 << 20);
            prop_assert_eq!(decoder.feed(&frame), frame.len());
            let (kind, payload) = decoder.next_frame().unwrap().unwrap();
            prop_assert_eq!(kind, FRAME_KIND_FORWARD);
            prop_assert_eq!(decode_forward(&payload).unwrap(), forward);
            let cut = cut.index(payload.len());
            prop_assert!(decode_forward(&payload[..cut]).is_err());
            let mut longer = payload.clone();
            longer.push(0);
            prop_assert!(decode_forward(&longer).is_err());
        }

        #[test]
        fn random_forward_bytes_never_panic(bytes in vec(any::<u8>(), 0..128)) {
            let _ = decode_forward(&bytes);
        }
    }

    #[test]
    fn a_large_forwarded_proposal_is_framed_from_pieces_and_decoded_shared() {
        let data = Bytes::from(vec![5u8; SHARED_FRAME_MIN_BYTES + 1]);
        let forward = Forward {
            from: 2,
            to: 1,
            group: 9,
            body: ForwardBody::Propose {
                request_id: 4,
                data: data.clone(),
            },
        };
        let shared = encode_forward_shared(&forward).unwrap();
        assert!(matches!(shared, OutFrame::Pieces { .. }));
        let mut whole = Vec::new();
        encode_forward(&forward, &mut Vec::new(), &mut whole).unwrap();
        assert!(
            shared.to_vec() == whole,
            "pieces differ from the whole frame"
        );
        let payload = Bytes::copy_from_slice(&whole[HEADER_BYTES..]);
        assert_eq!(decode_forward_shared(&payload).unwrap(), forward);
    }

    #[test]
    fn forward_with_unknown_tag_outcome_or_zero_sender_is_refused() {
        let mut payload = Vec::new();
        let mut w = WireWriter::new(&mut payload);
        w.write_u64(1);
        w.write_u64(2);
        w.write_u64(3);
        w.write_u8(9);
        w.write_u64(5);
        assert_eq!(
            decode_forward(&payload),
            Err(MessageError::UnknownForwardTag { tag: 9 })
        );
        assert_eq!(
            &payload[16..24],
            &3u64.to_le_bytes()[..],
            "the group follows the recipient"
        );
        payload[24] = 2;
        payload.push(7);
        assert_eq!(
            decode_forward(&payload),
            Err(MessageError::UnknownForwardOutcome { outcome: 7 })
        );
        payload[..8].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            decode_forward(&payload),
            Err(MessageError::ZeroNodeId {
                field: "forward.from"
            })
        );
    }

    #[test]
    fn handshake_round_trips_and_refuses_foreign_input() {
        let hs = Handshake {
            cluster_id: 42,
            from: 1,
            to: 2,
            auth: AuthMode::Secret,
            nonce: std::array::from_fn(|i| i as u8),
        };
        let mut stream = Vec::new();
        encode_handshake(&hs, &mut stream).unwrap();
        let mut decoder = FrameDecoder::new(1 << 10);
        assert_eq!(decoder.feed(&stream), stream.len());
        let (kind, payload) = decoder.next_frame().unwrap().unwrap();
        assert_eq!(kind, FRAME_KIND_HANDSHAKE);
        assert_eq!(payload.len(), HANDSHAKE_PAYLOAD_BYTES);
        assert_eq!(payload.len(), 63);
        assert_eq!(
            &payload[31..],
            &hs.nonce[..],
            "the nonce travels as its bytes"
        );
        assert_eq!(decode_handshake(&payload).unwrap(), hs);
        let mut bad = payload.clone();
        bad[0] ^= 1;
        assert!(matches!(
            decode_handshake(&bad),
            Err(MessageError::BadHandshakeMagic { .. })
        ));
        let mut bad = payload.clone();
        bad[4] = 9;
        assert_eq!(
            decode_handshake(&bad),
            Err(MessageError::UnsupportedProtocolVersion { found: 9 })
        );
        let mut bad = payload.clone();
        bad[30] = 7;
        assert_eq!(
            decode_handshake(&bad),
            Err(MessageError::UnknownAuthMode { found: 7 })
        );
        // A version 2 handshake (30 bytes, no mode or nonce) is refused by its version.
        let mut v2 = payload[..30].to_vec();
        v2[4..6].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(
            decode_handshake(&v2),
            Err(MessageError::UnsupportedProtocolVersion { found: 2 })
        );
        // A version 3 handshake has this version's layout but not its messages: refused by
        // its version, with a reason that names both.
        let mut v3 = payload.clone();
        v3[4..6].copy_from_slice(&3u16.to_le_bytes());
        let refusal = decode_handshake(&v3).unwrap_err();
        assert_eq!(
            refusal,
            MessageError::UnsupportedProtocolVersion { found: 3 }
        );
        assert_eq!(
            refusal.to_string(),
            "peer speaks protocol version 3, this build speaks 4; upgrade one side"
        );
        for cut in 0..payload.len() {
            assert!(decode_handshake(&payload[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn challenge_and_proof_round_trip_and_every_cut_is_an_error() {
        let challenge = Challenge {
            auth: AuthMode::Secret,
            nonce: [7; NONCE_BYTES],
            mac: std::array::from_fn(|i| 255 - i as u8),
        };
        let mut frame = Vec::new();
        encode_challenge(&challenge, &mut frame).unwrap();
        let payload = &frame[HEADER_BYTES..];
        assert_eq!(payload.len(), CHALLENGE_PAYLOAD_BYTES);
        assert_eq!(decode_challenge(payload).unwrap(), challenge);
        for cut in 0..payload.len() {
            assert!(decode_challenge(&payload[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = payload.to_vec();
        long.push(0);
        assert!(decode_challenge(&long).is_err());
        let proof = Proof {
            mac: [9; MAC_BYTES],
        };
        let mut frame = Vec::new();
        encode_proof(&proof, &mut frame).unwrap();
        let payload = &frame[HEADER_BYTES..];
        assert_eq!(decode_proof(payload).unwrap(), proof);
        for cut in 0..payload.len() {
            assert!(decode_proof(&payload[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn hostile_entry_count_is_refused_before_allocating() {
        let mut payload = Vec::new();
        let mut w = WireWriter::new(&mut payload);
        for v in [0u64, 1, 2, 3] {
            w.write_u64(v);
        }
        w.write_u8(5);
        for v in [0u64, 0, 0] {
            w.write_u64(v);
        }
        w.write_u32(u32::MAX);
        assert!(matches!(
            decode_message(&payload),
            Err(MessageError::CountTooLarge {
                what: "entries",
                ..
            })
        ));
    }

    #[test]
    fn configuration_entries_round_trip_and_malformed_ones_are_refused() {
        let mut joint = Membership::with_voters([1, 2, 4]);
        joint.outgoing_voters = [1, 2, 3].into_iter().collect();
        joint.learners.insert(3);
        let append = |data: Vec<u8>| Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::Append {
                prev_log_index: 6,
                prev_log_term: 3,
                entries: vec![Entry {
                    term: 3,
                    index: 7,
                    kind: EntryKind::ConfChange,
                    data: bytes::Bytes::from(data),
                }],
                leader_commit: 6,
            },
        };
        let good = append(joint.encode());
        let mut payload = Vec::new();
        encode_message_payload(0, &good, &mut payload);
        assert_eq!(decode_message(&payload).unwrap(), (0, good));
        for bad_data in [
            Vec::new(),
            joint.encode()[..9].to_vec(),
            Membership::default().encode(),
        ] {
            let mut payload = Vec::new();
            encode_message_payload(0, &append(bad_data), &mut payload);
            assert_eq!(
                decode_message(&payload),
                Err(MessageError::MalformedConfChange { index: 7 })
            );
        }
    }

    proptest! {
        #[test]
        fn batches_round_trip_and_every_cut_or_extension_is_an_error(
            messages in vec((any::<u64>(), arb_message()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut frame = Vec::new();
            encode_raft_batch(&messages, &mut frame).unwrap();
            let mut decoder = FrameDecoder::new(1 << 20);
            prop_assert_eq!(decoder.feed(&frame), frame.len());
            let (kind, payload) = decoder.next_frame().unwrap().unwrap();
            prop_assert_eq!(kind, FRAME_KIND_RAFT_BATCH);
            prop_assert_eq!(&decode_raft_batch(&payload).unwrap(), &messages);
            let shared = Bytes::copy_from_slice(&payload);
            prop_assert_eq!(&decode_raft_batch_shared(&shared).unwrap(), &messages);
            let cut = cut.index(payload.len());
            prop_assert!(decode_raft_batch(&payload[..cut]).is_err());
            let mut longer = payload.clone();
            longer.push(0);
            prop_assert!(decode_raft_batch(&longer).is_err());
        }

        #[test]
        fn a_built_batch_is_the_encoded_batch_and_a_lone_message_a_plain_frame(
            messages in vec((any::<u64>(), arb_message()), 1..6),
        ) {
            let mut batch = RaftBatch::new();
            for (group, message) in &messages {
                let before = batch.frame_bytes();
                let expected = batch.frame_bytes_with(message_payload_bytes(message));
                let grown = batch.push(*group, message);
                prop_assert_eq!(batch.frame_bytes(), expected);
                prop_assert_eq!(before + grown, expected);
            }
            prop_assert_eq!(batch.count() as usize, messages.len());
            let built = batch.finish().unwrap();
            let mut expected = Vec::new();
            if let [(group, message)] = messages.as_slice() {
                encode_message(*group, message, &mut Vec::new(), &mut expected).unwrap();
            } else {
                encode_raft_batch(&messages, &mut expected).unwrap();
            }
            prop_assert!(built == expected, "the built frame differs from the encoded one");
        }

        #[test]
        fn random_batch_and_beat_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
            let _ = decode_raft_batch(&bytes);
            let _ = decode_host_beat(&bytes);
        }
    }

    #[test]
    fn hostile_batch_counts_are_refused_before_allocating() {
        // A count over what the bytes left could hold.
        let mut payload = Vec::new();
        payload.extend_from_slice(&1000u32.to_le_bytes());
        payload.extend_from_slice(&[0u8; 64]);
        assert_eq!(
            decode_raft_batch(&payload),
            Err(MessageError::CountTooLarge {
                what: "batched messages",
                count: 1000,
                max: 64 / BATCH_ITEM_MIN_BYTES as u32,
            })
        );
        // A count over the cap, with bytes enough behind it.
        let over = MAX_MESSAGES_PER_BATCH + 1;
        let mut payload = over.to_le_bytes().to_vec();
        payload.resize(4 + over as usize * BATCH_ITEM_MIN_BYTES, 0);
        assert!(matches!(
            decode_raft_batch(&payload),
            Err(MessageError::CountTooLarge {
                what: "batched messages",
                max: MAX_MESSAGES_PER_BATCH,
                ..
            })
        ));
        // A message length past the end of the payload, and one that cuts a message short.
        let message = Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::TimeoutNow,
        };
        let mut payload = Vec::new();
        encode_raft_batch_payload(&[(4, message.clone())], &mut payload);
        let mut long = payload.clone();
        long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_raft_batch(&long),
            Err(MessageError::Codec(_))
        ));
        let mut short = payload.clone();
        short[4..8].copy_from_slice(&(MESSAGE_HEAD_BYTES as u32 - 1).to_le_bytes());
        assert!(decode_raft_batch(&short).is_err());
        // An empty batch decodes to nothing; a zero sender inside a batch is refused.
        assert_eq!(decode_raft_batch(&0u32.to_le_bytes()), Ok(Vec::new()));
        assert_eq!(decode_raft_batch(&payload), Ok(vec![(4, message)]));
        payload[16..24].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            decode_raft_batch(&payload),
            Err(MessageError::ZeroNodeId {
                field: "message.from"
            })
        );
    }

    #[test]
    fn host_beats_round_trip_and_refuse_a_zero_sender_and_every_cut() {
        let beat = HostBeat { from: 3, tick: 99 };
        let mut frame = Vec::new();
        encode_host_beat(&beat, &mut frame).unwrap();
        let mut decoder = FrameDecoder::new(1 << 10);
        assert_eq!(decoder.feed(&frame), frame.len());
        let (kind, payload) = decoder.next_frame().unwrap().unwrap();
        assert_eq!(kind, FRAME_KIND_HOST_BEAT);
        assert_eq!(payload.len(), HOST_BEAT_PAYLOAD_BYTES);
        assert_eq!(decode_host_beat(&payload), Ok(beat));
        for cut in 0..payload.len() {
            assert!(decode_host_beat(&payload[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = payload.clone();
        long.push(0);
        assert!(decode_host_beat(&long).is_err());
        let mut zero = payload.clone();
        zero[..8].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            decode_host_beat(&zero),
            Err(MessageError::ZeroNodeId {
                field: "host_beat.from"
            })
        );
    }
}

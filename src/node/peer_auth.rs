//! Peer authentication with a shared cluster secret: the challenge-response exchange that opens
//! every peer connection, as two small state machines ([`DialerHandshake`],
//! [`AcceptorHandshake`]) that take frames and return frames, with no I/O, so they are tested
//! here byte by byte and driven by `super::transport`.
//!
//! # Threat model
//!
//! An attacker on the network can connect to the peer port, record, replay, drop and inject
//! bytes. Without a secret (and without mutual TLS, see `super::peer_tls`) it can claim any
//! node id and have its Raft messages stepped into the core: a forged vote with a huge term
//! deposes the leader. With `--peer-secret-file`, a connection is handed to the core only once
//! its dialer has proved it knows the secret, over a nonce the acceptor just drew; so an
//! attacker without the secret cannot inject anything, and a recorded exchange cannot be
//! replayed (the other side's nonce differs every time). The dialer checks the acceptor's proof
//! before it sends anything, so an impostor acceptor learns no Raft traffic either, but the
//! frames themselves are neither encrypted nor integrity-protected after the exchange: an
//! attacker who can *modify* a live TCP stream (on path, not just on the network) can still
//! read and alter it. Mutual TLS covers that case; the two may be combined.
//!
//! # The exchange (protocol versions 3 and 4, layouts in `crate::wire::message`)
//!
//! | step | from     | frame       | carries                                        |
//! |------|----------|-------------|------------------------------------------------|
//! | 1    | dialer   | `Handshake` | cluster id, dialer id, acceptor id, mode, `Nd` |
//! | 2    | acceptor | `Challenge` | mode, `Na`, `MACa`                             |
//! | 3    | dialer   | `Proof`     | `MACd` (with a secret only)                    |
//!
//! `Nd` and `Na` are 32-byte nonces from the operating system's generator (`getrandom`), drawn
//! per connection. Both MACs are HMAC-SHA256 keyed by the secret over
//!
//! | size | field                                            |
//! |------|--------------------------------------------------|
//! | 29   | label: [`ACCEPTOR_LABEL`] for `MACa`, [`DIALER_LABEL`] for `MACd` |
//! | 8    | cluster id (u64 LE)                              |
//! | 8    | dialer id (u64 LE)                               |
//! | 8    | acceptor id (u64 LE)                             |
//! | 32   | `Nd`                                             |
//! | 32   | `Na`                                             |
//!
//! so a proof holds for one cluster, one direction, one pair of nodes and one connection only.
//! The distinct labels keep an acceptor's proof from being reflected back as a dialer's. MACs
//! are compared in constant time (`hmac`'s `verify_slice`).
//!
//! - The acceptor refuses, before it answers, a foreign cluster, a misdirected call, an unknown
//!   peer, or a mode other than its own (a node with a secret never talks to one without, in
//!   either direction). After the `Challenge`, the next frame must be a valid `Proof`; anything
//!   else closes the connection. Only then are Raft frames read from it.
//! - The dialer, with a secret, sends nothing after its `Handshake` until it has checked
//!   `MACa`; it then sends `Proof`, followed by its queued frames. Without a secret it sends
//!   frames right after the `Handshake`, as version 2 did, and reads the `Challenge` only to
//!   check the acceptor's mode.
//! - Both sides bound the exchange in time ([`HANDSHAKE_TIMEOUT`], enforced by the transport)
//!   and in bytes (frames before authentication are at most
//!   [`HANDSHAKE_FRAME_PAYLOAD_MAX`](crate::wire::message::HANDSHAKE_FRAME_PAYLOAD_MAX)).
//!
//! The secret file's content is the secret, less one trailing newline (`\n` or `\r\n`); an
//! empty secret or an unreadable file is refused at start with an error naming the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::raft::NodeId;
use crate::wire::message::{
    decode_challenge, decode_handshake, decode_proof, encode_challenge, encode_handshake,
    encode_proof, AuthMode, Challenge, Handshake, MessageError, Proof, FRAME_KIND_CHALLENGE,
    FRAME_KIND_HANDSHAKE, FRAME_KIND_PROOF, MAC_BYTES, NONCE_BYTES,
};

/// How long a connection may take from TCP connect (or accept) to authenticated before it is
/// closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Label of the acceptor's MAC input.
pub const ACCEPTOR_LABEL: &[u8; 29] = b"ketch peer v3 acceptor proof\0";
/// Label of the dialer's MAC input.
pub const DIALER_LABEL: &[u8; 29] = b"ketch peer v3 dialer proof\0\0\0";

type HmacSha256 = Hmac<Sha256>;

/// The cluster's shared peer secret. Its `Debug` shows only its length.
#[derive(Clone)]
pub struct PeerSecret {
    bytes: Vec<u8>,
}

impl fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerSecret({} bytes, redacted)", self.bytes.len())
    }
}

impl PeerSecret {
    /// A secret of `bytes`; an empty one is refused.
    pub fn new(bytes: Vec<u8>) -> Result<PeerSecret, PeerSecurityError> {
        if bytes.is_empty() {
            return Err(PeerSecurityError::new(None, "the peer secret is empty"));
        }
        Ok(PeerSecret { bytes })
    }

    /// The secret held in the file at `path`, less one trailing newline (`\n` or `\r\n`).
    /// Refuses an unreadable or empty file, naming it.
    pub fn from_file(path: &Path) -> Result<PeerSecret, PeerSecurityError> {
        let mut bytes = std::fs::read(path)
            .map_err(|e| PeerSecurityError::new(Some(path), format!("cannot read it: {e}")))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(PeerSecurityError::new(
                Some(path),
                "it holds no secret (empty, or only a newline)",
            ));
        }
        Ok(PeerSecret { bytes })
    }

    /// The MAC of one direction of one exchange.
    fn mac(&self, label: &[u8], ids: &ExchangeIds, nonces: &Nonces) -> [u8; MAC_BYTES] {
        self.keyed(label, ids, nonces)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `mac` is that MAC (constant-time comparison).
    fn verify(&self, label: &[u8], ids: &ExchangeIds, nonces: &Nonces, mac: &[u8]) -> bool {
        self.keyed(label, ids, nonces).verify_slice(mac).is_ok()
    }

    fn keyed(&self, label: &[u8], ids: &ExchangeIds, nonces: &Nonces) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.bytes).expect("HMAC takes any key length");
        mac.update(label);
        mac.update(&ids.cluster_id.to_le_bytes());
        mac.update(&ids.dialer.to_le_bytes());
        mac.update(&ids.acceptor.to_le_bytes());
        mac.update(&nonces.dialer);
        mac.update(&nonces.acceptor);
        mac
    }
}

/// A peer security setting that cannot be used: the file (if any) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSecurityError {
    /// The file at fault, if a file.
    pub path: Option<PathBuf>,
    /// What is wrong with it.
    pub reason: String,
}

impl PeerSecurityError {
    pub(crate) fn new(path: Option<&Path>, reason: impl Into<String>) -> Self {
        PeerSecurityError {
            path: path.map(Path::to_path_buf),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PeerSecurityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for PeerSecurityError {}

/// How a node's peer links are secured (see the module docs and `super::peer_tls`). The default
/// is neither: ids are taken on trust, and the node warns at start.
#[derive(Debug, Clone, Default)]
pub struct PeerSecurity {
    /// The shared secret both ends of every connection prove.
    pub secret: Option<Arc<PeerSecret>>,
    /// Mutual TLS on every peer connection.
    pub tls: Option<Arc<super::peer_tls::PeerTls>>,
}

impl PeerSecurity {
    /// Neither a secret nor TLS.
    pub fn is_open(&self) -> bool {
        self.secret.is_none() && self.tls.is_none()
    }
}

/// The ids one exchange is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExchangeIds {
    cluster_id: u64,
    dialer: NodeId,
    acceptor: NodeId,
}

#[derive(Debug, Clone, Copy)]
struct Nonces {
    dialer: [u8; NONCE_BYTES],
    acceptor: [u8; NONCE_BYTES],
}

/// A fresh nonce from the operating system's generator.
pub fn fresh_nonce() -> Result<[u8; NONCE_BYTES], String> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| format!("no random nonce: {e}"))?;
    Ok(nonce)
}

/// Why an exchange failed; the connection is then closed. `Display` is the line an operator
/// reads in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// A frame of the exchange did not decode, or another kind came in its place.
    Malformed(String),
    /// The peer speaks another protocol version.
    Version(MessageError),
    /// The dialer belongs to another cluster.
    ForeignCluster {
        /// The dialer's claimed id.
        from: NodeId,
        /// Its cluster.
        cluster_id: u64,
        /// Ours.
        ours: u64,
    },
    /// The dialer meant another node.
    Misdirected {
        /// The dialer.
        from: NodeId,
        /// The node it meant.
        to: NodeId,
    },
    /// The dialer is not a configured peer (or the check of its identity failed).
    NotAPeer {
        /// The dialer's claimed id.
        from: NodeId,
        /// Why.
        reason: String,
    },
    /// One side has a secret and the other has none.
    ModeMismatch {
        /// The other side's mode.
        theirs: AuthMode,
        /// Ours.
        ours: AuthMode,
    },
    /// The peer's MAC is wrong: it does not know our secret.
    WrongSecret {
        /// The peer.
        peer: NodeId,
    },
}

impl fmt::Display for HandshakeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeRefusal::Malformed(what) => write!(f, "malformed handshake: {what}"),
            HandshakeRefusal::Version(e) => write!(f, "{e}"),
            HandshakeRefusal::ForeignCluster {
                from,
                cluster_id,
                ours,
            } => write!(
                f,
                "node {from} belongs to cluster {cluster_id}, this is cluster {ours}"
            ),
            HandshakeRefusal::Misdirected { from, to } => write!(
                f,
                "node {from} dialed node {to} but reached another; check the peer addresses"
            ),
            HandshakeRefusal::NotAPeer { from, reason } => write!(f, "node {from}: {reason}"),
            HandshakeRefusal::ModeMismatch { theirs, ours } => write!(
                f,
                "the peer {} a peer secret and this node {}: give every node the same \
                 --peer-secret-file",
                mode_has(*theirs),
                mode_has(*ours)
            ),
            HandshakeRefusal::WrongSecret { peer } => write!(
                f,
                "node {peer} did not prove the peer secret (wrong MAC): the nodes' \
                 --peer-secret-file differ"
            ),
        }
    }
}

fn mode_has(mode: AuthMode) -> &'static str {
    match mode {
        AuthMode::None => "has no",
        AuthMode::Secret => "has",
    }
}

fn mode_of(secret: &Option<Arc<PeerSecret>>) -> AuthMode {
    if secret.is_some() {
        AuthMode::Secret
    } else {
        AuthMode::None
    }
}

fn malformed(e: MessageError) -> HandshakeRefusal {
    match e {
        MessageError::UnsupportedProtocolVersion { .. }
        | MessageError::BadHandshakeMagic { .. } => HandshakeRefusal::Version(e),
        e => HandshakeRefusal::Malformed(e.to_string()),
    }
}

/// The dialing side of one connection's exchange.
#[derive(Debug)]
pub struct DialerHandshake {
    ids: ExchangeIds,
    secret: Option<Arc<PeerSecret>>,
    nonce: [u8; NONCE_BYTES],
    /// The challenge was taken (successfully or not): nothing more is expected.
    done: bool,
}

impl DialerHandshake {
    /// The exchange of `dialer` calling `acceptor` in `cluster_id`, with `nonce` fresh from
    /// [`fresh_nonce`].
    pub fn new(
        cluster_id: u64,
        dialer: NodeId,
        acceptor: NodeId,
        secret: Option<Arc<PeerSecret>>,
        nonce: [u8; NONCE_BYTES],
    ) -> Self {
        DialerHandshake {
            ids: ExchangeIds {
                cluster_id,
                dialer,
                acceptor,
            },
            secret,
            nonce,
            done: false,
        }
    }

    /// The first frame to send.
    pub fn hello_frame(&self) -> Vec<u8> {
        let mut frame = Vec::new();
        encode_handshake(
            &Handshake {
                cluster_id: self.ids.cluster_id,
                from: self.ids.dialer,
                to: self.ids.acceptor,
                auth: mode_of(&self.secret),
                nonce: self.nonce,
            },
            &mut frame,
        )
        .expect("a handshake is far below the frame limit");
        frame
    }

    /// Whether other frames may follow the handshake at once (no secret: the acceptor waits
    /// for no proof), rather than after [`on_frame`](Self::on_frame) succeeds.
    pub fn ready_after_hello(&self) -> bool {
        self.secret.is_none()
    }

    /// Takes the acceptor's frame: `Ok(Some(proof frame))` to send before anything else,
    /// `Ok(None)` with nothing to send; either way the connection is then authenticated.
    /// Any frame after the first is refused.
    pub fn on_frame(
        &mut self,
        kind: u8,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, HandshakeRefusal> {
        if self.done {
            return Err(HandshakeRefusal::Malformed(format!(
                "the acceptor sent a frame of kind {kind} after its challenge"
            )));
        }
        self.done = true;
        if kind != FRAME_KIND_CHALLENGE {
            return Err(HandshakeRefusal::Malformed(format!(
                "the acceptor answered with a frame of kind {kind}, not a challenge"
            )));
        }
        let challenge = decode_challenge(payload).map_err(malformed)?;
        let ours = mode_of(&self.secret);
        if challenge.auth != ours {
            return Err(HandshakeRefusal::ModeMismatch {
                theirs: challenge.auth,
                ours,
            });
        }
        let Some(secret) = &self.secret else {
            return Ok(None);
        };
        let nonces = Nonces {
            dialer: self.nonce,
            acceptor: challenge.nonce,
        };
        if !secret.verify(ACCEPTOR_LABEL, &self.ids, &nonces, &challenge.mac) {
            return Err(HandshakeRefusal::WrongSecret {
                peer: self.ids.acceptor,
            });
        }
        let mut frame = Vec::new();
        encode_proof(
            &Proof {
                mac: secret.mac(DIALER_LABEL, &self.ids, &nonces),
            },
            &mut frame,
        )
        .expect("a proof is far below the frame limit");
        Ok(Some(frame))
    }
}

/// Where an acceptor is in its exchange.
#[derive(Debug, Clone, Copy)]
enum AcceptorState {
    AwaitHandshake,
    AwaitProof { ids: ExchangeIds, nonces: Nonces },
    Authenticated { peer: NodeId },
    Failed,
}

/// What an [`AcceptorHandshake`] asks of the transport after a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptorStep {
    /// Send `frame` (the challenge) to the dialer; `authenticated` is set if no proof is
    /// awaited (no secret), and names the peer.
    Reply {
        /// The challenge frame.
        frame: Vec<u8>,
        /// The peer, if the connection is authenticated from now on.
        authenticated: Option<NodeId>,
    },
    /// The dialer proved the secret: the connection is authenticated as this peer.
    Authenticated(NodeId),
}

/// The accepting side of one connection's exchange.
#[derive(Debug)]
pub struct AcceptorHandshake {
    cluster_id: u64,
    acceptor: NodeId,
    secret: Option<Arc<PeerSecret>>,
    nonce: [u8; NONCE_BYTES],
    state: AcceptorState,
}

impl AcceptorHandshake {
    /// The exchange of node `acceptor` of `cluster_id` on one accepted connection, with
    /// `nonce` fresh from [`fresh_nonce`].
    pub fn new(
        cluster_id: u64,
        acceptor: NodeId,
        secret: Option<Arc<PeerSecret>>,
        nonce: [u8; NONCE_BYTES],
    ) -> Self {
        AcceptorHandshake {
            cluster_id,
            acceptor,
            secret,
            nonce,
            state: AcceptorState::AwaitHandshake,
        }
    }

    /// The authenticated peer, once there is one.
    pub fn peer(&self) -> Option<NodeId> {
        match self.state {
            AcceptorState::Authenticated { peer } => Some(peer),
            _ => None,
        }
    }

    /// The peer that claimed to dial, authenticated or not (for logs).
    pub fn claimed_peer(&self) -> Option<NodeId> {
        match self.state {
            AcceptorState::AwaitProof { ids, .. } => Some(ids.dialer),
            AcceptorState::Authenticated { peer } => Some(peer),
            _ => None,
        }
    }

    /// Takes one frame of the exchange. `admit(from)` says whether the claimed dialer may
    /// connect at all (a configured peer, and, under TLS, the one its certificate names).
    /// Must not be called once [`peer`](Self::peer) is set; every error is final.
    pub fn on_frame(
        &mut self,
        kind: u8,
        payload: &[u8],
        admit: &mut dyn FnMut(NodeId) -> Result<(), String>,
    ) -> Result<AcceptorStep, HandshakeRefusal> {
        let state = std::mem::replace(&mut self.state, AcceptorState::Failed);
        match state {
            AcceptorState::AwaitHandshake => {
                if kind != FRAME_KIND_HANDSHAKE {
                    return Err(HandshakeRefusal::Malformed(format!(
                        "first frame has kind {kind}, not a handshake"
                    )));
                }
                let hs = decode_handshake(payload).map_err(malformed)?;
                if hs.cluster_id != self.cluster_id {
                    return Err(HandshakeRefusal::ForeignCluster {
                        from: hs.from,
                        cluster_id: hs.cluster_id,
                        ours: self.cluster_id,
                    });
                }
                if hs.to != self.acceptor {
                    return Err(HandshakeRefusal::Misdirected {
                        from: hs.from,
                        to: hs.to,
                    });
                }
                if hs.from == self.acceptor {
                    return Err(HandshakeRefusal::NotAPeer {
                        from: hs.from,
                        reason: "claims this node's own id".to_string(),
                    });
                }
                admit(hs.from).map_err(|reason| HandshakeRefusal::NotAPeer {
                    from: hs.from,
                    reason,
                })?;
                let ours = mode_of(&self.secret);
                if hs.auth != ours {
                    return Err(HandshakeRefusal::ModeMismatch {
                        theirs: hs.auth,
                        ours,
                    });
                }
                let ids = ExchangeIds {
                    cluster_id: self.cluster_id,
                    dialer: hs.from,
                    acceptor: self.acceptor,
                };
                let nonces = Nonces {
                    dialer: hs.nonce,
                    acceptor: self.nonce,
                };
                let (mac, authenticated) = match &self.secret {
                    Some(secret) => {
                        self.state = AcceptorState::AwaitProof { ids, nonces };
                        (secret.mac(ACCEPTOR_LABEL, &ids, &nonces), None)
                    }
                    None => {
                        self.state = AcceptorState::Authenticated { peer: hs.from };
                        ([0; MAC_BYTES], Some(hs.from))
                    }
                };
                let mut frame = Vec::new();
                encode_challenge(
                    &Challenge {
                        auth: ours,
                        nonce: self.nonce,
                        mac,
                    },
                    &mut frame,
                )
                .expect("a challenge is far below the frame limit");
                Ok(AcceptorStep::Reply {
                    frame,
                    authenticated,
                })
            }
            AcceptorState::AwaitProof { ids, nonces } => {
                if kind != FRAME_KIND_PROOF {
                    return Err(HandshakeRefusal::Malformed(format!(
                        "node {} sent a frame of kind {kind} before proving the peer secret",
                        ids.dialer
                    )));
                }
                let proof = decode_proof(payload).map_err(malformed)?;
                let secret = self
                    .secret
                    .as_ref()
                    .expect("a proof is awaited with a secret");
                if !secret.verify(DIALER_LABEL, &ids, &nonces, &proof.mac) {
                    return Err(HandshakeRefusal::WrongSecret { peer: ids.dialer });
                }
                self.state = AcceptorState::Authenticated { peer: ids.dialer };
                Ok(AcceptorStep::Authenticated(ids.dialer))
            }
            AcceptorState::Authenticated { peer } => {
                self.state = AcceptorState::Authenticated { peer };
                Err(HandshakeRefusal::Malformed(
                    "handshake frame after authentication".to_string(),
                ))
            }
            AcceptorState::Failed => Err(HandshakeRefusal::Malformed(
                "frame after a failed handshake".to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{FrameDecoder, HEADER_BYTES};
    use proptest::prelude::*;

    fn secret(text: &str) -> Option<Arc<PeerSecret>> {
        Some(Arc::new(PeerSecret::new(text.as_bytes().to_vec()).unwrap()))
    }

    fn admit_all(_: NodeId) -> Result<(), String> {
        Ok(())
    }

    /// The frame's (kind, payload).
    fn split(frame: &[u8]) -> (u8, Vec<u8>) {
        let mut decoder = FrameDecoder::new(1 << 10);
        assert_eq!(decoder.feed(frame), frame.len());
        decoder.next_frame().unwrap().expect("one whole frame")
    }

    /// The frames of one exchange: handshake, challenge, and the proof if any.
    type Recorded = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

    /// A full exchange between dialer 1 and acceptor 2 of cluster 7; returns the three frames.
    fn exchange(
        dialer_secret: Option<Arc<PeerSecret>>,
        acceptor_secret: Option<Arc<PeerSecret>>,
        nonces: ([u8; 32], [u8; 32]),
    ) -> Result<Recorded, HandshakeRefusal> {
        let mut dialer = DialerHandshake::new(7, 1, 2, dialer_secret, nonces.0);
        let mut acceptor = AcceptorHandshake::new(7, 2, acceptor_secret, nonces.1);
        let hello = dialer.hello_frame();
        let (kind, payload) = split(&hello);
        let step = acceptor.on_frame(kind, &payload, &mut admit_all)?;
        let AcceptorStep::Reply {
            frame: challenge,
            authenticated,
        } = step
        else {
            panic!("a handshake is answered with a challenge");
        };
        let (kind, payload) = split(&challenge);
        let proof = dialer.on_frame(kind, &payload)?;
        match &proof {
            Some(proof) => {
                assert_eq!(authenticated, None, "a proof is awaited");
                let (kind, payload) = split(proof);
                assert_eq!(
                    acceptor.on_frame(kind, &payload, &mut admit_all)?,
                    AcceptorStep::Authenticated(1)
                );
            }
            None => assert_eq!(authenticated, Some(1)),
        }
        assert_eq!(acceptor.peer(), Some(1));
        Ok((hello, challenge, proof))
    }

    #[test]
    fn the_same_secret_authenticates_both_ways_and_no_secret_is_open() {
        let (_, _, proof) =
            exchange(secret("s3cret"), secret("s3cret"), ([1; 32], [2; 32])).expect("same secret");
        assert!(proof.is_some());
        let (_, _, proof) = exchange(None, None, ([1; 32], [2; 32])).expect("no secret");
        assert!(proof.is_none());
    }

    #[test]
    fn a_wrong_secret_is_refused_by_the_dialer_and_by_the_acceptor() {
        // The dialer checks the acceptor's proof first.
        assert_eq!(
            exchange(secret("right"), secret("wrong"), ([1; 32], [2; 32])).unwrap_err(),
            HandshakeRefusal::WrongSecret { peer: 2 }
        );
        // A dialer that proves with another secret is refused by the acceptor.
        let mut acceptor = AcceptorHandshake::new(7, 2, secret("right"), [2; 32]);
        let dialer = DialerHandshake::new(7, 1, 2, secret("right"), [1; 32]);
        let (kind, payload) = split(&dialer.hello_frame());
        let AcceptorStep::Reply { frame, .. } =
            acceptor.on_frame(kind, &payload, &mut admit_all).unwrap()
        else {
            panic!("a challenge");
        };
        let (_, challenge) = split(&frame);
        let challenge = decode_challenge(&challenge).unwrap();
        let ids = ExchangeIds {
            cluster_id: 7,
            dialer: 1,
            acceptor: 2,
        };
        let nonces = Nonces {
            dialer: [1; 32],
            acceptor: challenge.nonce,
        };
        let forged = PeerSecret::new(b"wrong".to_vec())
            .unwrap()
            .mac(DIALER_LABEL, &ids, &nonces);
        let mut frame = Vec::new();
        encode_proof(&Proof { mac: forged }, &mut frame).unwrap();
        let (kind, payload) = split(&frame);
        assert_eq!(
            acceptor.on_frame(kind, &payload, &mut admit_all),
            Err(HandshakeRefusal::WrongSecret { peer: 1 })
        );
        assert_eq!(acceptor.peer(), None);
    }

    #[test]
    fn a_recorded_exchange_replayed_to_a_fresh_acceptor_is_refused() {
        let (hello, _challenge, proof) =
            exchange(secret("k"), secret("k"), ([1; 32], [2; 32])).unwrap();
        let proof = proof.unwrap();
        // The attacker replays the dialer's two frames; the acceptor drew a new nonce.
        let mut acceptor = AcceptorHandshake::new(7, 2, secret("k"), [3; 32]);
        let (kind, payload) = split(&hello);
        assert!(matches!(
            acceptor.on_frame(kind, &payload, &mut admit_all),
            Ok(AcceptorStep::Reply {
                authenticated: None,
                ..
            })
        ));
        let (kind, payload) = split(&proof);
        assert_eq!(
            acceptor.on_frame(kind, &payload, &mut admit_all),
            Err(HandshakeRefusal::WrongSecret { peer: 1 })
        );
        // And the recorded challenge, replayed to a dialer with a fresh nonce, fails too.
        let (_, challenge, _) = exchange(secret("k"), secret("k"), ([1; 32], [2; 32])).unwrap();
        let mut dialer = DialerHandshake::new(7, 1, 2, secret("k"), [4; 32]);
        let (kind, payload) = split(&challenge);
        assert_eq!(
            dialer.on_frame(kind, &payload),
            Err(HandshakeRefusal::WrongSecret { peer: 2 })
        );
    }

    #[test]
    fn a_proof_is_bound_to_its_direction_and_node_ids() {
        let key = PeerSecret::new(b"k".to_vec()).unwrap();
        let ids = ExchangeIds {
            cluster_id: 7,
            dialer: 1,
            acceptor: 2,
        };
        let nonces = Nonces {
            dialer: [1; 32],
            acceptor: [2; 32],
        };
        let mac = key.mac(ACCEPTOR_LABEL, &ids, &nonces);
        assert!(key.verify(ACCEPTOR_LABEL, &ids, &nonces, &mac));
        // Reflected as the dialer's proof.
        assert!(!key.verify(DIALER_LABEL, &ids, &nonces, &mac));
        // For another pair, cluster or nonce.
        for other in [
            ExchangeIds { dialer: 3, ..ids },
            ExchangeIds { acceptor: 3, ..ids },
            ExchangeIds {
                cluster_id: 8,
                ..ids
            },
            ExchangeIds {
                dialer: 2,
                acceptor: 1,
                ..ids
            },
        ] {
            assert!(
                !key.verify(ACCEPTOR_LABEL, &other, &nonces, &mac),
                "{other:?}"
            );
        }
        let swapped = Nonces {
            dialer: nonces.acceptor,
            acceptor: nonces.dialer,
        };
        assert!(!key.verify(ACCEPTOR_LABEL, &ids, &swapped, &mac));
        assert!(!key.verify(ACCEPTOR_LABEL, &ids, &nonces, &mac[..31]));
    }

    #[test]
    fn raft_frames_before_the_proof_and_mode_mismatches_are_refused() {
        let mut acceptor = AcceptorHandshake::new(7, 2, secret("k"), [2; 32]);
        let dialer = DialerHandshake::new(7, 1, 2, secret("k"), [1; 32]);
        let (kind, payload) = split(&dialer.hello_frame());
        acceptor.on_frame(kind, &payload, &mut admit_all).unwrap();
        let raft = crate::wire::message::FRAME_KIND_RAFT;
        assert!(matches!(
            acceptor.on_frame(raft, &[0; 40], &mut admit_all),
            Err(HandshakeRefusal::Malformed(_))
        ));
        assert_eq!(acceptor.peer(), None);
        // Once failed, failed for good.
        assert!(acceptor.on_frame(kind, &payload, &mut admit_all).is_err());

        assert_eq!(
            exchange(None, secret("k"), ([1; 32], [2; 32])).unwrap_err(),
            HandshakeRefusal::ModeMismatch {
                theirs: AuthMode::None,
                ours: AuthMode::Secret
            }
        );
        assert_eq!(
            exchange(secret("k"), None, ([1; 32], [2; 32])).unwrap_err(),
            HandshakeRefusal::ModeMismatch {
                theirs: AuthMode::Secret,
                ours: AuthMode::None
            }
        );
        // An unknown peer and a refused identity are refused before any challenge.
        let mut acceptor = AcceptorHandshake::new(7, 2, secret("k"), [2; 32]);
        let refusal = acceptor
            .on_frame(kind, &payload, &mut |_| {
                Err("not a configured peer".to_string())
            })
            .unwrap_err();
        assert!(
            refusal.to_string().contains("not a configured peer"),
            "{refusal}"
        );
    }

    #[test]
    fn secret_files_lose_one_trailing_newline_and_empty_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "abc\r\n").unwrap();
        assert_eq!(PeerSecret::from_file(&path).unwrap().bytes, b"abc");
        std::fs::write(&path, "abc\n\n").unwrap();
        assert_eq!(PeerSecret::from_file(&path).unwrap().bytes, b"abc\n");
        std::fs::write(&path, "\n").unwrap();
        let error = PeerSecret::from_file(&path).unwrap_err().to_string();
        assert!(
            error.contains("secret") && error.contains("holds no secret"),
            "{error}"
        );
        let missing = dir.path().join("missing");
        let error = PeerSecret::from_file(&missing).unwrap_err().to_string();
        assert!(
            error.contains("missing") && error.contains("cannot read"),
            "{error}"
        );
        assert!(!format!("{:?}", PeerSecret::new(b"abc".to_vec()).unwrap()).contains("abc"));
    }

    proptest! {
        #[test]
        fn truncated_or_random_handshake_input_never_panics(
            cut in 0usize..200,
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            kind in 0u8..8,
        ) {
            let (hello, challenge, proof) =
                exchange(secret("k"), secret("k"), ([1; 32], [2; 32])).unwrap();
            let proof = proof.unwrap();
            // Cut payloads of each step, and random payloads of any kind, are errors.
            for frame in [&hello, &challenge, &proof] {
                let payload = &frame[HEADER_BYTES..];
                let cut = cut.min(payload.len().saturating_sub(1));
                let mut acceptor = AcceptorHandshake::new(7, 2, secret("k"), [2; 32]);
                let mut dialer = DialerHandshake::new(7, 1, 2, secret("k"), [1; 32]);
                let _ = acceptor.on_frame(frame[3], &payload[..cut], &mut admit_all);
                prop_assert!(acceptor.peer().is_none());
                prop_assert!(dialer.on_frame(frame[3], &payload[..cut]).is_err());
            }
            let mut acceptor = AcceptorHandshake::new(7, 2, secret("k"), [2; 32]);
            let _ = acceptor.on_frame(kind, &bytes, &mut admit_all);
            let _ = acceptor.on_frame(kind, &bytes, &mut admit_all);
            prop_assert!(acceptor.peer().is_none());
            let mut dialer = DialerHandshake::new(7, 1, 2, secret("k"), [1; 32]);
            prop_assert!(dialer.on_frame(kind, &bytes).is_err());
        }
    }
}

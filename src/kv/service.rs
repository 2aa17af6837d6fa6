//! [`KvService`]: a node running the [`KvStateMachine`] plus its RESP server, started and
//! stopped as one. This is what `ketch serve` runs.
//!
//! The service installs the node's [`ProposalStamp`]: as leader, the node writes
//! `max(last stamp, clock)` into every write batch it logs (its [`Clock`], with
//! [`ServerConfig::clock_offset_ms`]), so log time is the leader's clock and never goes back
//! on one leader. It also runs the [`Reclaimer`] (active expiry while this node leads).
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use ketch::kv::{KvService, ServiceConfig};
//! use ketch::node::NodeConfig;
//!
//! let peers = BTreeMap::from([(1, "127.0.0.1:7001".parse().unwrap())]);
//! let node = NodeConfig::new(1, 42, peers, "127.0.0.1:7001".parse().unwrap());
//! let service = KvService::start(ServiceConfig::new(
//!     node,
//!     "./data-1",
//!     "127.0.0.1:6379".parse().unwrap(),
//! ))
//! .unwrap();
//! println!("RESP on {}", service.client_addr());
//! service.shutdown().unwrap();
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::clock::Clock;
use super::command::write_batch::stamp_leader_ms;
use super::reclaim::Reclaimer;
use super::server::{ClientListeners, Server, ServerConfig, TlsConfigError, TlsServerConfig};
use super::session_table::SessionConfig;
use super::state::{KvStateMachine, MAX_VALUE_BYTES_MAX};
use crate::node::{Node, NodeConfig, NodeError, ProposalStamp};

/// Everything a key-value node needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The Raft node (id, peers, timeouts...).
    pub node: NodeConfig,
    /// Where the node keeps its log and snapshots.
    pub data_dir: PathBuf,
    /// Where plaintext RESP clients connect (port 0: any free port, see
    /// [`KvService::client_addr`]); `None`: no plaintext listener (then `tls` is needed).
    pub client_addr: Option<SocketAddr>,
    /// Where and how TLS clients connect, if at all (see [`TlsServerConfig`]).
    pub tls: Option<TlsServerConfig>,
    /// Session bounds; must be the same on every node of the cluster.
    pub sessions: SessionConfig,
    /// RESP server limits and tuning. Its [`ServerConfig::max_value_bytes`] also sizes the
    /// node (its `max_proposal_bytes`, hence its peer frames) and the state machine's `APPEND`
    /// check: [`KvService::start`] derives them from it.
    pub server: ServerConfig,
}

impl ServiceConfig {
    /// A configuration with default session and server settings, plaintext clients only.
    pub fn new(node: NodeConfig, data_dir: impl Into<PathBuf>, client_addr: SocketAddr) -> Self {
        ServiceConfig {
            node,
            data_dir: data_dir.into(),
            client_addr: Some(client_addr),
            tls: None,
            sessions: SessionConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

/// Why the service could not start or stopped badly.
#[derive(Debug)]
pub enum ServiceError {
    /// The client address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: std::io::Error,
    },
    /// The TLS certificate, key or client CA cannot be used.
    Tls(TlsConfigError),
    /// Neither a plaintext nor a TLS client address was given.
    NoClientListener,
    /// The node failed to start or to stop.
    Node(NodeError),
    /// The RESP server failed.
    Server(std::io::Error),
    /// Both the server and the node failed while stopping.
    Both {
        /// The server's error.
        server: std::io::Error,
        /// The node's error.
        node: NodeError,
    },
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Bind { addr, error } => {
                write!(f, "cannot listen for clients on {addr}: {error}")
            }
            ServiceError::Tls(e) => write!(f, "{e}"),
            ServiceError::NoClientListener => {
                write!(f, "no client listener: give a plaintext or a TLS address")
            }
            ServiceError::Node(e) => write!(f, "{e}"),
            ServiceError::Server(e) => write!(f, "RESP server: {e}"),
            ServiceError::Both { server, node } => write!(f, "RESP server: {server}; node: {node}"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// A running key-value node: a [`Node`] with a [`KvStateMachine`] and a RESP server.
#[derive(Debug)]
pub struct KvService {
    node: Arc<Node>,
    server: Server,
    reclaimer: Reclaimer,
}

/// The leader's stamp: this node's clock, never below a stamp it gave before.
pub(super) fn leader_stamp(clock: Clock) -> ProposalStamp {
    let last_ms = AtomicU64::new(0);
    ProposalStamp(Arc::new(move |batch: &mut [u8]| {
        let now_ms = clock.now_ms();
        let stamp_ms = last_ms.fetch_max(now_ms, Ordering::AcqRel).max(now_ms);
        stamp_leader_ms(batch, stamp_ms);
    }))
}

/// The client listeners, bound before the node starts so that a bad address or TLS file
/// fails at once.
pub(super) fn bind_clients(
    plain: Option<SocketAddr>,
    tls: Option<&TlsServerConfig>,
) -> Result<ClientListeners, ServiceError> {
    let bind = |addr: SocketAddr| {
        std::net::TcpListener::bind(addr).map_err(|error| ServiceError::Bind { addr, error })
    };
    if plain.is_none() && tls.is_none() {
        return Err(ServiceError::NoClientListener);
    }
    let tls = match tls {
        Some(tls) => {
            let loaded = tls.load().map_err(ServiceError::Tls)?;
            Some((bind(tls.addr)?, loaded))
        }
        None => None,
    };
    Ok(ClientListeners {
        plain: plain.map(bind).transpose()?,
        tls,
    })
}

impl KvService {
    /// Loads the TLS files and binds the client addresses, starts the node (recovering from `data_dir`) and then the
    /// RESP server. The node's `max_proposal_bytes` is set from the server's value limit, and
    /// its `proposal_stamp` to the service's (replacing any given).
    pub fn start(mut config: ServiceConfig) -> Result<KvService, ServiceError> {
        let max_value_bytes = config.server.max_value_bytes;
        if max_value_bytes > MAX_VALUE_BYTES_MAX {
            return Err(ServiceError::Node(NodeError::Config(format!(
                "max value bytes {max_value_bytes} is above the maximum {MAX_VALUE_BYTES_MAX}"
            ))));
        }
        let shards_file = config.data_dir.join(super::sharded::SHARDS_FILE);
        if shards_file.exists() {
            return Err(ServiceError::Node(NodeError::Config(format!(
                "{} exists: this data directory holds a sharded node; start it with the \
                 --shards it was made with",
                shards_file.display()
            ))));
        }
        config.node.max_proposal_bytes = config.server.max_entry_bytes() as u64;
        config.node.proposal_stamp = Some(leader_stamp(Clock::with_offset_ms(
            config.server.clock_offset_ms,
        )));
        let listeners = bind_clients(config.client_addr, config.tls.as_ref())?;
        let members = config.node.peers.keys().copied().collect();
        let node = Node::start(
            config.node,
            &config.data_dir,
            KvStateMachine::new(config.sessions).with_max_value_bytes(max_value_bytes),
        )
        .map_err(ServiceError::Node)?;
        let node = Arc::new(node);
        let server = match Server::start(Arc::clone(&node) as _, listeners, members, config.server)
        {
            Ok(server) => server,
            Err(e) => {
                if let Ok(node) = Arc::try_unwrap(node) {
                    let _ = node.shutdown();
                }
                return Err(ServiceError::Server(e));
            }
        };
        let reclaimer = match Reclaimer::start(Arc::clone(&node) as _) {
            Ok(reclaimer) => reclaimer,
            Err(e) => {
                let _ = server.shutdown();
                if let Ok(node) = Arc::try_unwrap(node) {
                    let _ = node.shutdown();
                }
                return Err(ServiceError::Server(e));
            }
        };
        Ok(KvService {
            node,
            server,
            reclaimer,
        })
    }

    /// The address RESP clients connect to: the plaintext one, or the TLS one when there is
    /// no plaintext listener.
    pub fn client_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The address TLS clients connect to, if the service has a TLS listener.
    pub fn tls_client_addr(&self) -> Option<SocketAddr> {
        self.server.tls_addr()
    }

    /// The node (for [`Node::status`]).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Stops the RESP server (closing client connections), then the node. Returns every
    /// failure.
    pub fn shutdown(self) -> Result<(), ServiceError> {
        let KvService {
            node,
            server,
            reclaimer,
        } = self;
        reclaimer.stop();
        let server_result = server.shutdown();
        // The server and reclaim threads held the only other references; both were joined.
        let node_result = match Arc::try_unwrap(node) {
            Ok(node) => node.shutdown(),
            Err(_) => Err(NodeError::Threads(vec![
                "the node is still referenced after the RESP server stopped".to_string(),
            ])),
        };
        match (server_result, node_result) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(server), Ok(())) => Err(ServiceError::Server(server)),
            (Ok(()), Err(node)) => Err(ServiceError::Node(node)),
            (Err(server), Err(node)) => Err(ServiceError::Both { server, node }),
        }
    }
}

//! `ketch serve`: one node of the replicated key-value service, in the foreground.
//!
//! ```text
//! ketch serve --id 1 --data-dir /var/lib/ketch/1 --peer-addr 10.0.0.1:7001 \
//!     --client-addr 0.0.0.0:6380 --cluster 1=10.0.0.1:7001,2=10.0.0.2:7001,3=10.0.0.3:7001
//! ```
//!
//! - `--cluster` lists the peer addresses of the initial voters, this node included; the
//!   cluster id is derived from it unless `--cluster-id` is given (see
//!   [`cluster_spec`](super::cluster_spec)).
//! - `--peer-addr` is where this node listens for peers; it defaults to its own `--cluster`
//!   entry (give `0.0.0.0:PORT` to listen on every interface).
//! - `--client-addr` is where it listens for RESP clients; it defaults to loopback,
//!   `127.0.0.1:(6379 + id)`.
//! - `--metrics-addr` serves Prometheus metrics at `http://ADDR/metrics` (see
//!   [`crate::metrics`]); off unless given.
//! - `--cluster-client-addrs 1=HOST:PORT,2=HOST:PORT,...` names every node's RESP address as
//!   clients dial it, for Redis Cluster clients (`CLUSTER SLOTS` and the other `CLUSTER`
//!   replies, see [`crate::kv::cluster`]); give every node the same list. Nodes learn each
//!   other's peer addresses through the log, but not their client addresses: without the
//!   list, a node shows only itself (at the address the client reached it at), and so names
//!   no master unless it leads. A wildcard address (`0.0.0.0`) is refused: clients cannot
//!   dial it.
//!
//! # Client authentication
//!
//! - `--requirepass PASS` sets the password of user `default`: clients must `AUTH PASS`
//!   (or `HELLO 3 AUTH default PASS`) first. The password shows in `ps`; prefer
//!   `--requirepass-file FILE`, which reads it from a file (one trailing newline is not part
//!   of it; an empty or unreadable file stops the start, naming it).
//! - `--acl-file FILE` gives users and their rules, a subset of Redis' ACL file syntax (see
//!   [`crate::kv::acl`]); a bad line stops the start, naming the file, the line and the
//!   token. Every connection must authenticate unless the file's `default` is `on nopass`.
//!
//! The three exclude each other. Each node checks the clients connected to it, so every
//! node of a cluster needs the same flags.
//!
//! # Client TLS
//!
//! ```text
//! ketch serve ... --tls-client-addr 0.0.0.0:6390 --tls-cert server.pem --tls-key server.key \
//!     [--tls-client-ca clients-ca.pem] [--client-addr off]
//! ```
//!
//! `--tls-client-addr` adds a listener for RESP over TLS (`redis-cli --tls`); it needs
//! `--tls-cert` (PEM chain) and `--tls-key` (PEM key). With `--tls-client-ca`, clients must
//! present a certificate signed by that CA. The plaintext `--client-addr` keeps serving
//! unless it is given as `off`. A missing or unusable file stops the start with an error
//! naming it. Formats and the threat model: [`TlsServerConfig`].
//!
//! # Joining a running cluster
//!
//! ```text
//! ketch serve --id 4 --data-dir /var/lib/ketch/4 --peer-addr 10.0.0.4:7001 \
//!     --client-addr 0.0.0.0:6380 --cluster-id 4660 --join 1=10.0.0.1:7001,2=10.0.0.2:7001
//! ```
//!
//! `--join` (instead of `--cluster`) starts the node with an empty configuration: it votes for
//! no one and waits to be added, by `KETCH.ADDLEARNER 4 10.0.0.4:7001` sent to the leader. The
//! list names the current members' peer addresses: the node accepts connections only from
//! peers it knows and answers through them until its first configuration arrives (from then
//! on, addresses come from the log, see `crate::node::addresses`). `--cluster-id` is
//! required (decimal; the members' `ketch serve` prints it at start), and `--peer-addr`
//! (the address the others dial) too. Restarting it later with the same command line
//! recovers its configuration from its log.
//!
//! Starting again with the same command line restarts the node from its data directory. On
//! SIGTERM or SIGINT the node stops accepting clients, stops its threads and exits 0; what it
//! acknowledged was durable before the acknowledgement, so nothing acknowledged is lost. A
//! second signal during the stop exits at once (status 130).
//!
//! # Environment
//!
//! `KETCH_CLOCK_OFFSET_MS` (an integer, may be negative; default 0) shifts this node's clock
//! as the key-value service reads it (the leader's stamp that key expiry is decided on, the
//! clock reads carry, `TIME`): for tests and clock-skew drills. See
//! [`ServerConfig::clock_offset_ms`](crate::kv::ServerConfig::clock_offset_ms).
//!
//! # Peer security
//!
//! `--peer-secret-file FILE` makes every peer connection prove a shared secret (the file's
//! content less a trailing newline; see `crate::node::peer_auth`); `--peer-cert`, `--peer-key`
//! and `--peer-ca` (all three) put peer connections under mutual TLS, each node's certificate
//! naming it as DNS `node-<id>` (see `crate::node::peer_tls`). Either, both, or neither (the
//! node then warns that its peer port is open); every node of a cluster needs the same choice.
//!
//! Signals are received with `signal-hook` (a thread reads them from a self-pipe filled by a
//! minimal handler), which keeps this crate free of `unsafe` signal-handler code.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::cluster_spec::ClusterSpec;
use super::DEFAULT_CLIENT_PORT_BASE;
use crate::kv::acl::{read_password_file, Acl};
use crate::kv::server::load_acl_file;
use crate::kv::sharded::SHARDS_MAX;
use crate::kv::{
    KvService, ServerConfig, ServiceConfig, SessionConfig, ShardedService, TlsServerConfig,
    DEFAULT_MAX_VALUE_BYTES, MAX_VALUE_BYTES_MAX,
};
use crate::metrics::MetricsServer;
use crate::node::{NodeConfig, PeerSecret, PeerSecurity, PeerTls};
use crate::raft::NodeId;

/// `ketch serve` command-line arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Environment: KETCH_CLOCK_OFFSET_MS=N shifts this node's clock by N ms \
    (may be negative) wherever the key-value service reads it (the leader's stamp that key \
    expiry is decided on, reads, TIME): for tests and clock-skew drills."
)]
pub struct ServeArgs {
    /// This node's id: a key of the --cluster list.
    #[arg(long, value_name = "N")]
    pub id: NodeId,
    /// The data directory (created if missing; reused on restart).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Where to listen for peers [default: this node's --cluster entry].
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_addr: Option<String>,
    /// Where to listen for plaintext RESP clients, or `off` for none (then give
    /// --tls-client-addr) [default: 127.0.0.1:(6379 + id)].
    #[arg(long, value_name = "HOST:PORT|off")]
    pub client_addr: Option<String>,
    /// Where to listen for RESP clients over TLS [default: no TLS]. Needs --tls-cert and
    /// --tls-key.
    #[arg(long, value_name = "HOST:PORT", requires_all = ["tls_cert", "tls_key"])]
    pub tls_client_addr: Option<String>,
    /// The TLS listener's certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_client_addr")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS listener's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_client_addr")]
    pub tls_key: Option<PathBuf>,
    /// Require TLS clients to present a certificate signed by a CA in this file (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_client_addr")]
    pub tls_client_ca: Option<PathBuf>,
    /// Peer addresses of the initial voters, this node included: 1=HOST:PORT,2=HOST:PORT,...
    #[arg(
        long,
        value_name = "LIST",
        required_unless_present = "join",
        default_value = ""
    )]
    pub cluster: String,
    /// Join a running cluster instead (see the module docs): the current members' peer
    /// addresses, 1=HOST:PORT,2=HOST:PORT,... Needs --cluster-id and --peer-addr.
    #[arg(long, value_name = "LIST", conflicts_with = "cluster")]
    pub join: Option<String>,
    /// Cluster id [default: a hash of the --cluster list, the same on every node].
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<u64>,
    /// Largest value a write may leave, in bytes (SET, MSET's values together, APPEND's
    /// result); larger is refused with `-ERR value too large`. Must be the same on every node.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DEFAULT_MAX_VALUE_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(1..=MAX_VALUE_BYTES_MAX as u64)
    )]
    pub max_value_bytes: u64,
    /// How a linearizable read confirms that this node still leads. `read-index`: one
    /// heartbeat round to a quorum per batch of reads. `lease`: no round while a quorum
    /// acknowledged a heartbeat sent less than the election timeout minus a 20 ms allowance ago
    /// (280 ms); correct only while no node's clock runs more than 3 % slower than another's
    /// (the allowance also covers the 10 ms tick), and while the leader process is not frozen
    /// between reading its clock and answering (a SIGSTOP, a VM pause).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ReadModeArg::ReadIndex)]
    pub read_mode: ReadModeArg,
    /// Split the 16,384 hash slots into N equal ranges, each served by a Raft group of its
    /// own with a replica on every node, and shown to Redis Cluster clients as N shards
    /// (see `ketch::kv::sharded`). 1: one group holds every key. Must be the same on every
    /// node, and a data directory keeps the N it was made with.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(SHARDS_MAX))
    )]
    pub shards: u16,
    /// With --shards above 1, how a request for a key whose range another node leads is
    /// answered: `forward` it to the range's leader (any client works), or `redirect` with
    /// `-MOVED slot host:port`, as Redis Cluster does (cluster-aware clients only).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ClusterModeArg::Forward)]
    pub cluster_mode: ClusterModeArg,
    /// Serve Prometheus metrics at http://ADDR/metrics (see `ketch::metrics`) [default: off].
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Every node's RESP address as clients dial it, 1=HOST:PORT,2=HOST:PORT,..., shown to
    /// Redis Cluster clients (CLUSTER SLOTS, SHARDS, NODES); the same list on every node
    /// [default: none: other nodes are left out of those replies].
    #[arg(long, value_name = "LIST")]
    pub cluster_client_addrs: Option<String>,
    /// Password of user `default`: clients must AUTH first (visible in `ps`: prefer
    /// --requirepass-file).
    #[arg(
        long,
        value_name = "PASSWORD",
        conflicts_with_all = ["requirepass_file", "acl_file"]
    )]
    pub requirepass: Option<String>,
    /// As --requirepass, with the password read from FILE (less one trailing newline).
    #[arg(long, value_name = "FILE", conflicts_with = "acl_file")]
    pub requirepass_file: Option<PathBuf>,
    /// Client users and their rules, one `user NAME ...` line each (Redis ACL file syntax,
    /// a subset: see `ketch::kv::acl`).
    #[arg(long, value_name = "FILE")]
    pub acl_file: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Peer authentication (module docs); boxed so the command-line enum stays small.
    #[command(flatten)]
    pub peer_security: Box<PeerSecurityArgs>,
}

/// The peer security flags of `ketch serve` (see the module docs).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PeerSecurityArgs {
    /// Peers prove this shared secret (the file's content, less a trailing newline) at every
    /// connection; every node needs the same file.
    #[arg(long, value_name = "FILE")]
    pub peer_secret_file: Option<PathBuf>,
    /// Mutual TLS on peer connections: this node's certificate (PEM), naming it as DNS
    /// node-<id>. Needs --peer-key and --peer-ca.
    #[arg(long, value_name = "FILE")]
    pub peer_cert: Option<PathBuf>,
    /// The private key (PEM) of --peer-cert.
    #[arg(long, value_name = "FILE")]
    pub peer_key: Option<PathBuf>,
    /// The CA certificate(s) (PEM) peers' certificates must be signed by.
    #[arg(long, value_name = "FILE")]
    pub peer_ca: Option<PathBuf>,
}

impl PeerSecurityArgs {
    /// Loads the files the flags name, for node `id`.
    pub fn load(&self, id: NodeId) -> Result<PeerSecurity, ServeError> {
        let secret = match &self.peer_secret_file {
            Some(path) => {
                Some(Arc::new(PeerSecret::from_file(path).map_err(|e| {
                    ServeError::Usage(format!("--peer-secret-file {e}"))
                })?))
            }
            None => None,
        };
        let tls = match (&self.peer_cert, &self.peer_key, &self.peer_ca) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => Some(Arc::new(
                PeerTls::from_files(id, cert, key, ca)
                    .map_err(|e| ServeError::Usage(format!("peer TLS: {e}")))?,
            )),
            _ => {
                return Err(ServeError::Usage(
                    "--peer-cert, --peer-key and --peer-ca go together: give all three".to_string(),
                ))
            }
        };
        Ok(PeerSecurity { secret, tls })
    }
}

/// Why `ketch serve` could not start or stop cleanly.
#[derive(Debug)]
pub enum ServeError {
    /// A command-line value cannot be used.
    Usage(String),
    /// The node or its RESP server failed to start.
    Start(String),
    /// Signal handling could not be set up.
    Signals(std::io::Error),
    /// The node reported an error while stopping.
    Shutdown(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Usage(what) => write!(f, "{what}"),
            ServeError::Start(what) => write!(f, "cannot start: {what}"),
            ServeError::Signals(error) => write!(f, "cannot install signal handlers: {error}"),
            ServeError::Shutdown(what) => write!(f, "error while stopping: {what}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// The resolved configuration of one `ketch serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServePlan {
    /// This node.
    pub id: NodeId,
    /// Cluster id (given or derived).
    pub cluster_id: u64,
    /// Every voter's peer address.
    pub peers: std::collections::BTreeMap<NodeId, SocketAddr>,
    /// Where to listen for peers.
    pub peer_listen_addr: SocketAddr,
    /// Where to listen for plaintext RESP clients (`None`: `--client-addr off`).
    pub client_addr: Option<SocketAddr>,
    /// The TLS listener, if any.
    pub tls: Option<TlsServerConfig>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Start with an empty configuration and wait to be added (`--join`).
    pub join: bool,
    /// Where to serve `GET /metrics`, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// `--cluster-client-addrs`: each node's client address as clients dial it.
    pub cluster_client_addrs: std::collections::BTreeMap<NodeId, SocketAddr>,
}

impl ServeArgs {
    /// Checks and resolves the arguments.
    pub fn plan(&self) -> Result<ServePlan, ServeError> {
        if let Some(list) = &self.join {
            return self.join_plan(list);
        }
        let spec =
            ClusterSpec::parse(&self.cluster).map_err(|e| ServeError::Usage(e.to_string()))?;
        if !spec.peers.contains_key(&self.id) {
            return Err(ServeError::Usage(format!(
                "--id {} is not in --cluster {}",
                self.id, self.cluster
            )));
        }
        let peers = spec
            .resolve()
            .map_err(|e| ServeError::Usage(e.to_string()))?;
        let peer_listen_addr = match &self.peer_addr {
            Some(text) => resolve("--peer-addr", text)?,
            None => peers[&self.id],
        };
        let client_addr = match self.client_addr.as_deref() {
            Some(CLIENT_ADDR_OFF) => None,
            Some(text) => Some(resolve("--client-addr", text)?),
            None => {
                let port = u64::from(DEFAULT_CLIENT_PORT_BASE) + self.id - 1;
                let port = u16::try_from(port).map_err(|_| {
                    ServeError::Usage(format!(
                        "--id {} is too large for the default client port: give --client-addr",
                        self.id
                    ))
                })?;
                Some(SocketAddr::from(([127, 0, 0, 1], port)))
            }
        };
        Ok(ServePlan {
            id: self.id,
            cluster_id: self.cluster_id.unwrap_or_else(|| spec.derived_cluster_id()),
            peers,
            peer_listen_addr,
            tls: self.tls(client_addr)?,
            client_addr,
            data_dir: self.data_dir.clone(),
            join: false,
            metrics_addr: self.metrics_addr()?,
            cluster_client_addrs: self.cluster_client_addrs()?,
        })
    }

    fn join_plan(&self, list: &str) -> Result<ServePlan, ServeError> {
        let usage = |what: &str| ServeError::Usage(format!("--join needs {what}"));
        let spec = ClusterSpec::parse(list).map_err(|e| ServeError::Usage(e.to_string()))?;
        if spec.peers.contains_key(&self.id) {
            return Err(ServeError::Usage(format!(
                "--id {} is already in the --join list (a member restarts with its own \
                 command line)",
                self.id
            )));
        }
        let cluster_id = self.cluster_id.ok_or_else(|| usage("--cluster-id"))?;
        let peer_listen_addr = resolve(
            "--peer-addr",
            self.peer_addr
                .as_deref()
                .ok_or_else(|| usage("--peer-addr"))?,
        )?;
        let client_addr = match self
            .client_addr
            .as_deref()
            .ok_or_else(|| usage("--client-addr"))?
        {
            CLIENT_ADDR_OFF => None,
            text => Some(resolve("--client-addr", text)?),
        };
        let mut peers = spec
            .resolve()
            .map_err(|e| ServeError::Usage(e.to_string()))?;
        peers.insert(self.id, peer_listen_addr);
        Ok(ServePlan {
            id: self.id,
            cluster_id,
            peers,
            peer_listen_addr,
            tls: self.tls(client_addr)?,
            client_addr,
            data_dir: self.data_dir.clone(),
            join: true,
            metrics_addr: self.metrics_addr()?,
            cluster_client_addrs: self.cluster_client_addrs()?,
        })
    }

    /// The client users from `--requirepass`, `--requirepass-file` or `--acl-file` (module
    /// docs); without them, `default` needs no password.
    pub fn acl(&self) -> Result<Acl, ServeError> {
        if let Some(password) = &self.requirepass {
            if password.is_empty() {
                return Err(ServeError::Usage(
                    "--requirepass: the password is empty".into(),
                ));
            }
            return Ok(Acl::with_default_password(password.as_bytes()));
        }
        if let Some(path) = &self.requirepass_file {
            let password = read_password_file(path)
                .map_err(|e| ServeError::Usage(format!("--requirepass-file: {e}")))?;
            return Ok(Acl::with_default_password(&password));
        }
        if let Some(path) = &self.acl_file {
            return load_acl_file(path).map_err(|e| ServeError::Usage(format!("--acl-file: {e}")));
        }
        Ok(Acl::open())
    }

    /// The TLS listener from the `--tls-*` flags; checks that a node without a plaintext
    /// listener (`plain` `None`) has a TLS one.
    fn tls(&self, plain: Option<SocketAddr>) -> Result<Option<TlsServerConfig>, ServeError> {
        let Some(text) = &self.tls_client_addr else {
            if plain.is_none() {
                return Err(ServeError::Usage(
                    "--client-addr off needs --tls-client-addr: the node must serve clients \
                     somewhere"
                        .to_string(),
                ));
            }
            return Ok(None);
        };
        let addr = resolve("--tls-client-addr", text)?;
        let missing = |flag: &str| ServeError::Usage(format!("--tls-client-addr needs {flag}"));
        let cert = self.tls_cert.clone().ok_or_else(|| missing("--tls-cert"))?;
        let key = self.tls_key.clone().ok_or_else(|| missing("--tls-key"))?;
        if plain == Some(addr) {
            return Err(ServeError::Usage(format!(
                "--tls-client-addr {addr} is also the --client-addr"
            )));
        }
        let mut tls = TlsServerConfig::new(addr, cert, key);
        tls.client_ca_path = self.tls_client_ca.clone();
        Ok(Some(tls))
    }

    /// `--cluster-client-addrs` (module docs), resolved; empty without the flag.
    fn cluster_client_addrs(
        &self,
    ) -> Result<std::collections::BTreeMap<NodeId, SocketAddr>, ServeError> {
        let Some(text) = &self.cluster_client_addrs else {
            return Ok(std::collections::BTreeMap::new());
        };
        let usage = |entry: &str, reason: &str| {
            ServeError::Usage(format!("--cluster-client-addrs entry {entry:?}: {reason}"))
        };
        let addrs = ClusterSpec::parse(text)
            .and_then(|spec| spec.resolve())
            .map_err(|e| usage(&e.entry, &e.reason))?;
        if let Some((id, addr)) = addrs.iter().find(|(_, addr)| addr.ip().is_unspecified()) {
            return Err(usage(
                &format!("{id}={addr}"),
                "a wildcard address cannot be dialed: give the address clients reach the node at",
            ));
        }
        Ok(addrs)
    }

    fn metrics_addr(&self) -> Result<Option<SocketAddr>, ServeError> {
        self.metrics_addr
            .as_deref()
            .map(|text| resolve("--metrics-addr", text))
            .transpose()
    }
}

fn resolve(flag: &str, text: &str) -> Result<SocketAddr, ServeError> {
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            ServeError::Usage(format!("{flag} {text:?} is not a HOST:PORT that resolves"))
        })
}

/// The `--client-addr` value that turns the plaintext listener off.
pub const CLIENT_ADDR_OFF: &str = "off";

/// The environment variable that shifts the node's clock (module docs).
pub const CLOCK_OFFSET_ENV: &str = "KETCH_CLOCK_OFFSET_MS";

/// `KETCH_CLOCK_OFFSET_MS`, or 0 if unset.
fn clock_offset_from_env() -> Result<i64, ServeError> {
    match std::env::var(CLOCK_OFFSET_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(0),
        Ok(text) => text.trim().parse().map_err(|_| {
            ServeError::Usage(format!(
                "{CLOCK_OFFSET_ENV}={text:?} is not an integer number of milliseconds"
            ))
        }),
        Err(std::env::VarError::NotUnicode(_)) => Err(ServeError::Usage(format!(
            "{CLOCK_OFFSET_ENV} is not valid UTF-8"
        ))),
    }
}

/// Registers the node's status (each range group's, with shards) with the process's metrics
/// and serves them on `addr`.
fn start_metrics(addr: SocketAddr, service: &Running) -> Result<MetricsServer, ServeError> {
    let metrics = crate::metrics::global();
    match service {
        Running::Single(service) => metrics.add_node(Box::new(service.node().status_reader())),
        Running::Sharded(service) => {
            for reader in service.status_readers() {
                metrics.add_node(reader);
            }
        }
    }
    let server = MetricsServer::start(addr, metrics)
        .map_err(|e| ServeError::Start(format!("--metrics-addr {addr}: {e}")))?;
    eprintln!(
        "ketch serve: metrics on http://{}/metrics",
        server.local_addr()
    );
    Ok(server)
}

/// `--read-mode`: how linearizable reads confirm leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadModeArg {
    /// A heartbeat round to a quorum per batch of reads (Raft thesis §6.4).
    ReadIndex,
    /// A leader lease (thesis §6.4.1), bounded by the election timeout minus a drift allowance.
    Lease,
}

impl From<ReadModeArg> for crate::raft::ReadMode {
    fn from(mode: ReadModeArg) -> Self {
        match mode {
            ReadModeArg::ReadIndex => crate::raft::ReadMode::Safe,
            ReadModeArg::Lease => crate::raft::ReadMode::Lease,
        }
    }
}

impl ReadModeArg {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadModeArg::ReadIndex => "read-index",
            ReadModeArg::Lease => "lease",
        }
    }
}

/// `--cluster-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterModeArg {
    /// Forward to the range's leader.
    Forward,
    /// Answer `-MOVED`.
    Redirect,
}

impl From<ClusterModeArg> for crate::kv::ClusterMode {
    fn from(mode: ClusterModeArg) -> Self {
        match mode {
            ClusterModeArg::Forward => crate::kv::ClusterMode::Forward,
            ClusterModeArg::Redirect => crate::kv::ClusterMode::Redirect,
        }
    }
}

impl ClusterModeArg {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterModeArg::Forward => "forward",
            ClusterModeArg::Redirect => "redirect",
        }
    }
}

/// What `ketch serve` runs.
enum Running {
    Single(KvService),
    Sharded(ShardedService),
}

impl Running {
    fn client_addr(&self) -> SocketAddr {
        match self {
            Running::Single(service) => service.client_addr(),
            Running::Sharded(service) => service.client_addr(),
        }
    }

    fn tls_client_addr(&self) -> Option<SocketAddr> {
        match self {
            Running::Single(service) => service.tls_client_addr(),
            Running::Sharded(service) => service.tls_client_addr(),
        }
    }

    fn shutdown(self) -> Result<(), crate::kv::ServiceError> {
        match self {
            Running::Single(service) => service.shutdown(),
            Running::Sharded(service) => service.shutdown(),
        }
    }
}

/// Runs the node until SIGTERM or SIGINT, then stops it.
pub fn run(args: &ServeArgs) -> Result<(), ServeError> {
    super::logging::init_logging(args.verbose);
    let plan = args.plan()?;
    let acl = args.acl()?;
    // Installed before the node starts, so a signal during a slow start is not lost.
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(ServeError::Signals)?;
    let mut node = NodeConfig::new(
        plan.id,
        plan.cluster_id,
        plan.peers.clone(),
        plan.peer_listen_addr,
    );
    node.join = plan.join;
    node.raft.read_mode = args.read_mode.into();
    node.peer_security = args.peer_security.load(plan.id)?;
    let mut config = ServiceConfig {
        node,
        data_dir: plan.data_dir.clone(),
        client_addr: plan.client_addr,
        tls: plan.tls.clone(),
        sessions: SessionConfig::default(),
        server: ServerConfig::default(),
    };
    // The flag's range keeps it within usize.
    config.server.max_value_bytes = args.max_value_bytes as usize;
    config.server.clock_offset_ms = clock_offset_from_env()?;
    if acl.open_default().is_none() {
        eprintln!(
            "ketch serve: clients must authenticate ({} users)",
            acl.users().count()
        );
    }
    config.server.acl = std::sync::Arc::new(acl);
    config.server.cluster_client_addrs = plan.cluster_client_addrs.clone();
    config.server.cluster_mode = args.cluster_mode.into();
    let service = if args.shards > 1 {
        Running::Sharded(
            ShardedService::start(config, args.shards)
                .map_err(|e| ServeError::Start(e.to_string()))?,
        )
    } else {
        Running::Single(KvService::start(config).map_err(|e| ServeError::Start(e.to_string()))?)
    };
    let metrics_server = match plan.metrics_addr {
        Some(addr) => Some(start_metrics(addr, &service)?),
        None => None,
    };
    let resp = match (plan.client_addr, service.tls_client_addr()) {
        (Some(_), None) => service.client_addr().to_string(),
        (Some(_), Some(tls)) => format!("{} and TLS on {tls}", service.client_addr()),
        (None, Some(tls)) => format!("TLS on {tls} only"),
        (None, None) => "nothing".to_string(),
    };
    let shards = match args.shards {
        1 => String::new(),
        n => format!(", {n} shards"),
    };
    eprintln!(
        "ketch serve: node {} of cluster {:#x} (--cluster-id {}{shards}): RESP on {resp}, peers on {}, data in {}",
        plan.id,
        plan.cluster_id,
        plan.cluster_id,
        plan.peer_listen_addr,
        plan.data_dir.display()
    );
    let signal = signals.forever().next();
    log::info!("signal {signal:?}: stopping");
    let handle = signals.handle();
    // A second signal while stopping means "now": exit without waiting for the threads.
    let second = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            eprintln!("ketch serve: second signal: exiting at once");
            std::process::exit(130);
        }
    });
    let started = Instant::now();
    if let Some(server) = metrics_server {
        server.shutdown();
    }
    let result = service
        .shutdown()
        .map_err(|e| ServeError::Shutdown(e.to_string()));
    handle.close();
    let _ = second.join();
    eprintln!(
        "ketch serve: node {} stopped in {} ms",
        plan.id,
        started.elapsed().as_millis()
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(id: NodeId, cluster: &str) -> ServeArgs {
        ServeArgs {
            id,
            data_dir: PathBuf::from("d"),
            peer_addr: None,
            client_addr: None,
            tls_client_addr: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            cluster: cluster.to_string(),
            join: None,
            cluster_id: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES as u64,
            read_mode: ReadModeArg::ReadIndex,
            shards: 1,
            cluster_mode: ClusterModeArg::Forward,
            metrics_addr: None,
            cluster_client_addrs: None,
            requirepass: None,
            requirepass_file: None,
            acl_file: None,
            verbose: 0,
            peer_security: Box::default(),
        }
    }

    #[test]
    fn auth_flags_make_the_users() {
        let mut open = args(1, "1=127.0.0.1:7001");
        assert!(open.acl().unwrap().open_default().is_some());
        open.requirepass = Some("pw".into());
        let acl = open.acl().unwrap();
        assert!(acl.open_default().is_none());
        assert!(acl.user(b"default").unwrap().password_matches(b"pw"));
        open.requirepass = Some(String::new());
        assert!(open.acl().unwrap_err().to_string().contains("empty"));
        let dir = tempfile::tempdir().unwrap();
        let mut from_file = args(1, "1=127.0.0.1:7001");
        from_file.requirepass_file = Some(dir.path().join("missing"));
        let error = from_file.acl().unwrap_err().to_string();
        assert!(
            error.contains("--requirepass-file") && error.contains("missing"),
            "{error}"
        );
        let acl_path = dir.path().join("users.acl");
        std::fs::write(
            &acl_path,
            "user default off\nuser app on >pw ~app:* +@read +bogus\n",
        )
        .unwrap();
        let mut with_acl = args(1, "1=127.0.0.1:7001");
        with_acl.acl_file = Some(acl_path.clone());
        let error = with_acl.acl().unwrap_err().to_string();
        assert!(
            error.contains(&format!("{}:2:", acl_path.display())) && error.contains("`+bogus`"),
            "{error}"
        );
    }

    #[test]
    fn cluster_client_addrs_are_resolved_and_must_be_dialable() {
        let mut with = args(2, "1=127.0.0.1:7001,2=127.0.0.1:7002");
        assert!(with.plan().unwrap().cluster_client_addrs.is_empty());
        with.cluster_client_addrs = Some("2=127.0.0.1:6381, 1=localhost:6380".into());
        let addrs = with.plan().unwrap().cluster_client_addrs;
        assert_eq!(addrs[&1].port(), 6380);
        assert_eq!(addrs[&2], "127.0.0.1:6381".parse().unwrap());
        for (text, error) in [
            ("1=0.0.0.0:6380", "wildcard"),
            ("1=127.0.0.1:6380,1=127.0.0.1:6381", "twice"),
            ("1=nowhere", "HOST:PORT"),
        ] {
            with.cluster_client_addrs = Some(text.into());
            let message = with.plan().unwrap_err().to_string();
            assert!(
                message.starts_with("--cluster-client-addrs entry") && message.contains(error),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn defaults_come_from_the_cluster_list_and_the_id() {
        let plan = args(2, "1=127.0.0.1:7001,2=127.0.0.1:7002").plan().unwrap();
        assert_eq!(plan.peer_listen_addr, "127.0.0.1:7002".parse().unwrap());
        assert_eq!(plan.client_addr, Some("127.0.0.1:6381".parse().unwrap()));
        assert_eq!(plan.tls, None);
        let other = args(1, "1=127.0.0.1:7001,2=127.0.0.1:7002").plan().unwrap();
        assert_eq!(plan.cluster_id, other.cluster_id);
    }

    #[test]
    fn joining_needs_the_cluster_id_and_addresses_and_starts_empty() {
        let mut join = args(4, "");
        join.join = Some("1=127.0.0.1:7001,2=127.0.0.1:7002".to_string());
        assert!(join
            .plan()
            .unwrap_err()
            .to_string()
            .contains("--cluster-id"));
        join.cluster_id = Some(7);
        assert!(join.plan().unwrap_err().to_string().contains("--peer-addr"));
        join.peer_addr = Some("127.0.0.1:7004".to_string());
        join.client_addr = Some("127.0.0.1:6390".to_string());
        let plan = join.plan().unwrap();
        assert!(plan.join);
        assert_eq!(plan.cluster_id, 7);
        assert_eq!(plan.peers.len(), 3);
        assert_eq!(plan.peers[&4], "127.0.0.1:7004".parse().unwrap());
        join.id = 2;
        assert!(join.plan().unwrap_err().to_string().contains("already"));
    }

    #[test]
    fn peer_security_files_are_checked_and_the_tls_flags_go_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = PeerSecurityArgs::default();
        assert!(flags.load(1).unwrap().is_open());
        let secret = dir.path().join("secret");
        flags.peer_secret_file = Some(secret.clone());
        let error = flags.load(1).unwrap_err().to_string();
        assert!(
            error.contains("--peer-secret-file") && error.contains("secret"),
            "{error}"
        );
        std::fs::write(&secret, "\n").unwrap();
        let error = flags.load(1).unwrap_err().to_string();
        assert!(error.contains("holds no secret"), "{error}");
        std::fs::write(&secret, "s3cret\n").unwrap();
        assert!(flags.load(1).unwrap().secret.is_some());
        flags.peer_cert = Some(dir.path().join("cert.pem"));
        let error = flags.load(1).unwrap_err().to_string();
        assert!(error.contains("all three"), "{error}");
    }

    #[test]
    fn an_id_outside_the_list_is_refused() {
        let error = args(3, "1=127.0.0.1:7001,2=127.0.0.1:7002")
            .plan()
            .unwrap_err();
        assert!(error.to_string().contains("--id 3"), "{error}");
        let mut bad = args(1, "1=127.0.0.1:7001");
        bad.client_addr = Some("nowhere".to_string());
        assert!(bad
            .plan()
            .unwrap_err()
            .to_string()
            .contains("--client-addr"));
    }

    #[test]
    fn tls_flags_make_a_tls_listener_and_off_turns_plaintext_off() {
        let mut tls = args(1, "1=127.0.0.1:7001");
        tls.client_addr = Some("off".to_string());
        let error = tls.plan().unwrap_err().to_string();
        assert!(error.contains("--tls-client-addr"), "{error}");
        tls.tls_client_addr = Some("127.0.0.1:6390".to_string());
        let error = tls.plan().unwrap_err().to_string();
        assert!(error.contains("--tls-cert"), "{error}");
        tls.tls_cert = Some(PathBuf::from("cert.pem"));
        tls.tls_key = Some(PathBuf::from("key.pem"));
        tls.tls_client_ca = Some(PathBuf::from("ca.pem"));
        let plan = tls.plan().unwrap();
        assert_eq!(plan.client_addr, None);
        assert_eq!(
            plan.tls,
            Some(
                TlsServerConfig::new("127.0.0.1:6390".parse().unwrap(), "cert.pem", "key.pem")
                    .with_client_ca("ca.pem")
            )
        );
        tls.client_addr = Some("127.0.0.1:6390".to_string());
        assert!(tls.plan().unwrap_err().to_string().contains("also"));
    }
}

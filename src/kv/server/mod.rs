//! The RESP server: one thread, one mio `Poll`, many client connections, in front of a
//! [`Node`] running a [`KvStateMachine`](super::KvStateMachine). Connections speak RESP2
//! until they send `HELLO 3`, then RESP3.
//!
//! # Commands
//!
//! The key-value commands are those of the state machine's command table
//! (`state::commands`): strings (`GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX GETRANGE
//! SETRANGE STRLEN APPEND INCR DECR INCRBY DECRBY INCRBYFLOAT MGET MSET MSETNX`), keys (`DEL
//! UNLINK EXISTS TYPE RENAME RENAMENX KEYS SCAN RANDOMKEY DBSIZE FLUSHDB FLUSHALL TIME`),
//! hashes (`HSET HMSET HSETNX HGET HMGET HDEL HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN HINCRBY
//! HINCRBYFLOAT HSCAN`) and expiry (`EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME
//! PEXPIRETIME PERSIST`); `SET` takes `NX XX GET EX PX EXAT PXAT KEEPTTL`, and the `EXPIRE`
//! family `NX XX GT LT`. List, set and sorted-set commands are refused by name. Transactions
//! (`MULTI EXEC DISCARD WATCH UNWATCH`) are `transaction`'s. Besides them: `PING [msg]`,
//! `ECHO msg`, `SELECT 0`, `QUIT`, and the connection's and server's own commands, answered as
//! Redis 7 answers them (see `local_commands`, `info` and `command_table`):
//! `AUTH [user] password`, `HELLO [protover [AUTH user pass] [SETNAME name]]`,
//! `CLIENT ID|GETNAME|SETNAME|SETINFO|INFO|LIST|HELP`, `COMMAND [COUNT|INFO|DOCS|LIST]`,
//! `CONFIG GET pattern...`, `INFO [section...]`, and Redis Cluster's `CLUSTER KEYSLOT|MYID|
//! INFO|SLOTS|SHARDS|NODES|HELP`, `READONLY`, `READWRITE` (see [`cluster`](super::cluster)).
//! Unknown commands and wrong arity get Redis'
//! own error wording. Ketch answers as the Redis version [`REDIS_COMPAT_VERSION`].
//!
//! # RESP3
//!
//! After `HELLO 3`, replies use RESP3's types where Redis 7.0 does: nulls `_` (also inside
//! arrays, as `MGET` sends them), maps for `HELLO`, `CONFIG GET` and `HGETALL`, sets and maps
//! inside `COMMAND`'s entries, verbatim strings for `INFO`, `CLIENT INFO` and `CLIENT LIST`.
//! The state machine's replies are RESP2 bytes (they are results in the log and must not
//! depend on who asked); `resp3_reply` converts them per command on the connection, so the
//! log, the state machine and every replica are the same whichever protocol clients speak.
//! Push frames are never sent (there is no pub/sub or client tracking).
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
//! Runs the wrapped write (any write command: `SET`, `DEL`, `INCR`, `EXPIRE`, ...)
//! as sequence number `seq` (>= 1) of session `session` (32 hex digits, see
//! [`SessionId`](super::SessionId); its high 64 bits are its creation ms), telling the state
//! machine that the client has the results of every sequence number below `acked-below`. The
//! reply is the wrapped command's reply. A client that retries the same (session, seq) on any
//! node gets the first result back; the write is applied once. A session unknown to the
//! cluster that may have been dropped (expired or evicted) is refused with
//! `-ERR session expired or evicted; ...` (not applied: start a new session). This is what
//! `ketch::client` uses to carry its session across reconnects and nodes.
//!
//! Ordinary writes on a connection use a session the server makes for that connection (id
//! from this node's id and the clock) with sequence numbers it assigns, so a write the runtime
//! re-sends internally is still applied once.
//!
//! # Value size
//!
//! The value a write leaves may be at most [`ServerConfig::max_value_bytes`]: the value of a
//! `SET`, the values of an `MSET` together, the value an `APPEND` results in. `SET` and `MSET`
//! (and an `APPEND` whose argument alone is too large) are refused here before they are
//! proposed, with `-ERR value too large (N bytes; limit M)`; an `APPEND` is refused with the
//! same reply by the state machine when applied, since only the applied state knows the
//! result's size, and every replica decides alike. The node is given an entry limit that
//! holds the largest such write, and sizes its peer frames from it, so an accepted write can
//! always be replicated (see the frame size rule in `crate::node::transport`). The reply is an
//! `-ERR`, not a `-TRYAGAIN`: retrying the same command cannot succeed. The limit must be the
//! same on every node.
//!
//! # Error rule
//!
//! `-TRYAGAIN`: certainly not applied; `-TIMEOUT`: a write that may have been applied; `-ERR`:
//! the command's own error. [`error_reply`] says which failure gets which.
//!
//! # Parts
//!
//! - `connection_loop`: the thread: accepts, reads, writes and closes connections, and hands
//!   results back to them;
//! - `client_connection`: one client's connection: its requests in, its replies out in request
//!   order, and the ordering and consistency a pipeline gets;
//! - `parse`: what a request means (a write, a read, an admin or a local command) and Redis'
//!   wording for one that means nothing;
//! - `auth`: each connection's authentication (`AUTH`, `HELLO ... AUTH`) and the check of
//!   every request against its user's ACL rules, before it is batched or forwarded (users
//!   and rules: [`acl`](super::acl));
//! - `backend`: what the server is in front of: a node (one group) or a sharded service's
//!   groups, one lane each;
//! - `batching`: the writes of all connections go to each lane's group as one log entry per
//!   poll, the reads as one ReadIndex round;
//! - `local_commands`: what is answered without the node's state machine (`HELLO`, `CLIENT`,
//!   `CONFIG GET`, ...);
//! - `command_table`: every command as Redis 7 describes it (arity, flags, keys, ACL
//!   categories, docs, RESP3 reply shape), and `COMMAND`;
//! - `request_slot`: the Redis Cluster hash slot a request's keys address, or that they
//!   cross slots (`CROSSSLOT`);
//! - `info`: `INFO`'s sections;
//! - `resp3_reply`: RESP2 replies to RESP3 by reply shape;
//! - `client_stream`: a connection's bytes, in plaintext or TLS, for the loop;
//! - `tls_config`: the TLS listener's files and their loading;
//! - [`error_reply`]: the error rule.
//!
//! # Bounds
//!
//! | what                              | bound                                               |
//! |-----------------------------------|-----------------------------------------------------|
//! | connections                       | [`ServerConfig::connections_max`] (more: `-ERR max number of clients reached`, closed) |
//! | one request                       | [`Limits`](super::resp::Limits) (bulk, array, inline, request bytes); bulk and request bytes: [`ServerConfig::request_bytes_max`] (more: a protocol error, answered, then closed) |
//! | one value                         | [`ServerConfig::max_value_bytes`], 64 MiB by default (more: `-ERR value too large (N bytes; limit M)`) |
//! | one write batch (log entry)       | [`ServerConfig::batch_bytes_max`], or one write alone up to [`ServerConfig::max_entry_bytes`] |
//! | replies pending per connection    | [`ServerConfig::pipeline_replies_max`]: past it, the connection is not read |
//! | unsent output per connection      | [`ServerConfig::output_bytes_max`] (+ one reply): past it, not read |
//! | completions queued from the node  | one per batch in flight; batches in flight ≤ pending replies of all connections |
//! | failed authentication attempts    | [`AUTH_FAILURES_MAX`] per connection, then it is closed |
//! | idle connections                  | closed after [`ServerConfig::idle_timeout`] with nothing pending |
//! | TLS buffers per connection        | rustls' received-plaintext limit (16 KiB) and outgoing limit (64 KiB), on top of the above |
//!
//! A value of tens of MiB is not copied on the event loop thread, and it travels on a peer
//! connection apart from heartbeats and votes (`crate::node::transport`), so it causes no
//! election; it is still copied by each node's log writer and apply thread, and a 64 MiB `SET`
//! takes 2-3 s on a loaded 2-core machine.
//!
//! # TLS
//!
//! Besides (or instead of) the plaintext listener, the server may listen for TLS clients
//! ([`TlsServerConfig`]: certificate, key, optional client CA for mutual TLS). Both listeners
//! feed the same connection table, parser and dispatch: only the byte stream differs
//! (`client_stream`), so pipelining, backpressure, value sizes, RESP3 and the idle timeout
//! are the same. `CONFIG GET tls-port` says the TLS port (0 without one) and `port` / INFO's
//! `tcp_port` the plaintext one (0 when it is off), as Redis does. A connection that fails
//! TLS (plaintext on the TLS port, a bad handshake, a missing or untrusted client
//! certificate) is closed and logged with the client's address and rustls' reason, at most
//! 10 lines per 10 s.

mod auth;
mod backend;
mod batching;
mod client_connection;
mod client_stream;
mod command_table;
mod config;
mod connection_loop;
pub mod error_reply;
mod fan_out;
mod info;
mod local_commands;
mod parse;
pub(crate) mod request_slot;
mod resp3_reply;
mod tls_config;
mod transaction;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::kv::state::MAX_VALUE_BYTES_MAX;
use crate::raft::NodeId;
use batching::CompletionQueue;
use connection_loop::ConnectionLoop;

pub use auth::{load_acl_file, AUTH_FAILURES_MAX};
pub use backend::{Backend, ChangeDone, LaneRoute, ProposeDone, RangeCheck, ReadDone, RouteView};
pub use config::{ClusterMode, ServerConfig};
pub use local_commands::REDIS_COMPAT_VERSION;
pub use tls_config::{TlsConfigError, TlsServerConfig};

/// The sockets a [`Server`] accepts clients on: at least one of the two.
#[derive(Debug, Default)]
pub struct ClientListeners {
    /// Plaintext RESP.
    pub plain: Option<std::net::TcpListener>,
    /// RESP over TLS, with the configuration every TLS connection shares (from
    /// [`TlsServerConfig::load`]).
    pub tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
}

/// A running RESP server thread.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    plain_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    completions: Arc<CompletionQueue>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Serves RESP clients accepted on `listeners` in front of `backend` (a
    /// [`Node`](crate::node::Node), or a sharded service's groups). `members` is listed by
    /// `INFO`. The request parsing limits on bulk and request bytes are lowered to
    /// [`ServerConfig::request_bytes_max`] (from [`ServerConfig::max_value_bytes`]); the node's
    /// [`max_proposal_bytes`](crate::node::NodeConfig::max_proposal_bytes) must be at least
    /// [`ServerConfig::max_entry_bytes`] (as [`KvService`](super::KvService) sets it).
    ///
    /// # Panics
    ///
    /// If `max_value_bytes` is above [`MAX_VALUE_BYTES_MAX`], or a `_max` bound is 0.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `listeners` holds neither listener; any error setting them up.
    pub fn start(
        backend: Arc<dyn Backend>,
        listeners: ClientListeners,
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
        assert!(
            config.max_value_bytes <= MAX_VALUE_BYTES_MAX,
            "max_value_bytes must be at most {MAX_VALUE_BYTES_MAX}"
        );
        let mut config = config;
        let request_bytes_max = config.request_bytes_max();
        config.limits.bulk_bytes_max = config.limits.bulk_bytes_max.min(request_bytes_max);
        config.limits.request_bytes_max = config.limits.request_bytes_max.min(request_bytes_max);
        let plain_addr = match &listeners.plain {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                Some(listener.local_addr()?)
            }
            None => None,
        };
        let tls_addr = match &listeners.tls {
            Some((listener, _)) => {
                listener.set_nonblocking(true)?;
                Some(listener.local_addr()?)
            }
            None => None,
        };
        let local_addr = plain_addr.or(tls_addr).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no client listener: give a plaintext or a TLS one",
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let node_id = backend.id();
        let mut connection_loop =
            ConnectionLoop::new(backend, listeners, members, config, Arc::clone(&stop))?;
        let completions = connection_loop.completions();
        let thread = std::thread::Builder::new()
            .name(format!("ketch-{node_id}-resp"))
            .spawn(move || connection_loop.run())?;
        if let Some(addr) = plain_addr {
            log::info!("node {node_id}: RESP server listening on {addr}");
        }
        if let Some(addr) = tls_addr {
            log::info!("node {node_id}: RESP server listening for TLS clients on {addr}");
        }
        Ok(Server {
            local_addr,
            plain_addr,
            tls_addr,
            stop,
            completions,
            thread: Some(thread),
        })
    }

    /// The address clients connect to: the plaintext listener's, or the TLS listener's
    /// when there is no plaintext one.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plaintext listener's address, if there is one.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain_addr
    }

    /// The TLS listener's address, if there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
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
        self.completions.wake();
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

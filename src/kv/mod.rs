//! The replicated key-value service: a [`StateMachine`](crate::node::StateMachine) over string
//! keys, client sessions for exactly-once writes, and a RESP2 and RESP3 (Redis protocol) server.
//!
//! - [`resp`] is the RESP codec, RESP2 and RESP3 (requests, replies, both directions);
//! - [`command`] the replicated write-batch encoding (command words, version 2; typed
//!   operations, version 1) and the query-batch encoding;
//! - [`clock`] the [`Clock`] the service reads time from (with a per-node offset for tests);
//! - [`glob`] Redis' glob patterns (`KEYS`, `SCAN ... MATCH`);
//! - [`session_id`] the [`SessionId`] every write carries;
//! - [`session_table`] the state machine's sessions (Raft thesis §6.3): dedup, expiry, bounds;
//! - [`state`] the [`KvStateMachine`]: the command table, keys with deadlines and revisions,
//!   strings, expiry, snapshots, and the session table;
//! - [`reclaim`] the leader's periodic active-expiry proposals;
//! - [`server`] the RESP server: commands, `KETCH.WRITE` (explicit sessions), the error rule;
//! - [`admin`] the admin commands (`KETCH.ADDLEARNER`, `KETCH.MEMBERS`, ...);
//! - [`cluster`] the Redis Cluster surface: key slots, node ids, `CLUSTER SLOTS` and the
//!   other `CLUSTER` replies, one shard led by the Raft leader;
//! - [`service`] the [`KvService`] that starts a node and its server together.

pub mod acl;
pub mod admin;
pub mod clock;
pub mod cluster;
pub mod command;
pub mod glob;
pub mod reclaim;
pub mod resp;
pub mod server;
pub mod service;
pub mod session_id;
pub mod session_table;
pub mod sharded;
pub mod state;

pub use clock::Clock;
pub use server::{
    ClientListeners, ClusterMode, Server, ServerConfig, TlsConfigError, TlsServerConfig,
};
pub use service::{KvService, ServiceConfig, ServiceError};
pub use session_id::SessionId;
pub use session_table::SessionConfig;
pub use sharded::ShardedService;
pub use state::{
    value_too_large_text, KvStateMachine, DEFAULT_MAX_VALUE_BYTES, MAX_VALUE_BYTES_MAX,
};

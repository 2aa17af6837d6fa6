//! The replicated key-value service: a [`StateMachine`](crate::node::StateMachine) over string
//! keys, client sessions for exactly-once writes, and a RESP2 (Redis protocol) server.
//!
//! - [`resp`] is the RESP2 codec (requests, replies, both directions);
//! - [`command`] the replicated write-batch encoding and the query-batch encoding;
//! - [`session_id`] the [`SessionId`] every write carries;
//! - [`session_table`] the state machine's sessions (Raft thesis §6.3): dedup, expiry, bounds;
//! - [`kv_state_machine`] the [`KvStateMachine`]: keys, values, and the session table;
//! - [`server`] the RESP server: commands, `KETCH.WRITE` (explicit sessions), the error rule;
//! - [`admin`] the admin commands (`KETCH.ADDLEARNER`, `KETCH.MEMBERS`, ...);
//! - [`service`] the [`KvService`] that starts a node and its server together.

pub mod admin;
pub mod command;
pub mod glob;
pub mod kv_state_machine;
pub mod resp;
pub mod server;
pub mod service;
pub mod session_id;
pub mod session_table;

pub use kv_state_machine::{
    value_too_large_text, KvStateMachine, DEFAULT_MAX_VALUE_BYTES, MAX_VALUE_BYTES_MAX,
};
pub use server::{Server, ServerConfig};
pub use service::{KvService, ServiceConfig, ServiceError};
pub use session_id::SessionId;
pub use session_table::SessionConfig;

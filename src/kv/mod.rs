//! The replicated key-value service: a [`StateMachine`](crate::node::StateMachine) over string
//! keys, client sessions for exactly-once writes, and a RESP2 (Redis protocol) server.
//!
//! - [`resp`] is the RESP2 codec (requests, replies, both directions);
//! - [`command`] the replicated write-batch encoding and the query-batch encoding;
//! - [`session`] the client sessions (Raft thesis §6.3): dedup, expiry, bounds;
//! - [`state_machine`] the [`KvStateMachine`];
//! - [`server`] the RESP server: commands, `KETCH.WRITE` (explicit sessions), the error rule;
//! - [`admin`] the admin commands (`KETCH.ADDLEARNER`, `KETCH.MEMBERS`, ...);
//! - [`service`] the [`KvService`] that starts a node and its server together.

pub mod admin;
pub mod command;
pub mod resp;
pub mod server;
pub mod service;
pub mod session;
pub mod state_machine;

pub use server::{Server, ServerConfig};
pub use service::{KvService, ServiceConfig, ServiceError};
pub use session::{SessionConfig, SessionId};
pub use state_machine::KvStateMachine;

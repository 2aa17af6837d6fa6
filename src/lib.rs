//! Ketch: a Raft-replicated, durable log.
//!
//! The module docs are the source of truth for every format, byte by byte. The durable log's
//! (frames, segments, a `LogStore`, recovery, snapshot files) are in the `ketch-storage` crate
//! (its `record`, `segment`, `store`, `recovery` and `snapshot` modules); this crate's are in
//! `wire` (peer messages), `kv::command` (replicated commands), `kv::state::snapshot`
//! (key-value snapshots), `node::durable_state` (a node's data directory), `node::addresses`
//! (peer addresses) and `metrics` (every metric).
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod inspect;
pub mod kv;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod wire;

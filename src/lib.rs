//! Ketch: a Raft-replicated, durable log.
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod inspect;
pub mod kv;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod wire;

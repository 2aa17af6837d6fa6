//! Ketch: a Raft-replicated, durable log.
#![warn(missing_docs)]

pub mod raft;

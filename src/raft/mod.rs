//! The Raft protocol core.

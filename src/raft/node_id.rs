//! Server identity, on its own so that every other file of the core can name a server without
//! importing the messages (which carry memberships, which are built from quorums).

/// A node identifier; 0 is reserved to mean "none" in wire formats and is never a valid id.
pub type NodeId = u64;

/// Names a Raft group when several share a host (a `crate::node::Host`); the core never
/// reads it.
pub type GroupId = u64;

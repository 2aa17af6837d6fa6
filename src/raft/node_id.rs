//! Server and group identity, on their own so that every other file of the core can name a
//! server without importing the messages (which carry memberships, which are built from
//! quorums).

/// A node identifier; 0 is reserved to mean "none" in wire formats and is never a valid id.
pub type NodeId = u64;

/// Names a Raft group when several groups share a host (and its peer connections); the core
/// never reads it. A single-group node uses one fixed id for its only group.
pub type GroupId = u64;

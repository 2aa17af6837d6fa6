//! [`Request`]: what the API hands the event loop through its bounded inbox.

use std::net::SocketAddr;
use std::time::Instant;

use super::completion::{ProposeCompletion, ReadCompletion};
use super::membership_change::ChangeCompletion;
use crate::raft::{ConfChange, NodeId};

/// A request from an API caller to the loop.
#[derive(Debug)]
pub(crate) enum Request {
    /// Propose a command.
    Propose {
        /// The command.
        data: Vec<u8>,
        /// Where the result goes.
        done: ProposeCompletion,
        /// When the proposal times out (its submission plus the propose timeout).
        deadline: Instant,
    },
    /// A linearizable read.
    Read {
        /// The query.
        query: Vec<u8>,
        /// Where the answer goes.
        done: ReadCompletion,
        /// When the read times out (its submission plus the read timeout).
        deadline: Instant,
    },
    /// Test hook: drop every peer message in and out (a network partition of this node).
    SetIsolated(bool),
    /// A membership change (see `membership`).
    ChangeMembership {
        /// The change.
        change: ConfChange,
        /// The peer address of the node the change adds, if it adds one.
        peer_addr: Option<SocketAddr>,
        /// Where the answer goes.
        done: ChangeCompletion,
        /// When the change answers `Timeout`.
        deadline: Instant,
    },
    /// A leadership transfer to `target`.
    TransferLeader {
        /// The node to lead.
        target: NodeId,
        /// Where the answer goes.
        done: ChangeCompletion,
        /// When the transfer answers `Timeout`.
        deadline: Instant,
    },
}

//! [`HostRequest`]: what the host's API hands its event loop through the bounded inbox.

use std::sync::mpsc::SyncSender;
use std::time::Instant;

use super::status::GroupStatus;
use crate::node::completion::{ProposeCompletion, ReadCompletion};
use crate::node::membership_change::ChangeCompletion;
use crate::node::StateMachine;
use crate::raft::{ConfChange, Core, GroupId, NodeId};

/// A request from an API caller to the loop.
pub enum HostRequest {
    /// Start running a group whose catalog record is durable.
    Add {
        /// The group.
        group: GroupId,
        /// Its core, built from its durable state.
        core: Box<Core>,
        /// Its state machine, restored to `applied`.
        state_machine: Box<dyn StateMachine>,
        /// Index and term the state machine holds (its snapshot's).
        applied: (u64, u64),
        /// Answered once the loop runs the group.
        done: SyncSender<Result<(), String>>,
    },
    /// Stop running a group and delete its data (its tombstone is durable already).
    Remove {
        /// The group.
        group: GroupId,
        /// Answered once the removal is queued to the log writer.
        done: SyncSender<()>,
    },
    /// Propose a command to a group.
    Propose {
        /// The group.
        group: GroupId,
        /// The command.
        data: Vec<u8>,
        /// Where the result goes.
        done: ProposeCompletion,
        /// When the proposal times out.
        deadline: Instant,
    },
    /// A linearizable read of a group.
    Read {
        /// The group.
        group: GroupId,
        /// The query.
        query: Vec<u8>,
        /// Where the answer goes.
        done: ReadCompletion,
        /// When the read times out.
        deadline: Instant,
    },
    /// Where a group stands.
    Status {
        /// The group.
        group: GroupId,
        /// The answer (`None`: not on this host).
        done: SyncSender<Option<GroupStatus>>,
    },
    /// A membership change of a group.
    ChangeMembership {
        /// The group.
        group: GroupId,
        /// The change.
        change: ConfChange,
        /// Where the answer goes.
        done: ChangeCompletion,
        /// When the change answers `Timeout`.
        deadline: Instant,
    },
    /// A leadership transfer of a group to `target`.
    TransferLeader {
        /// The group.
        group: GroupId,
        /// The host to lead the group.
        target: NodeId,
        /// Where the answer goes.
        done: ChangeCompletion,
        /// When the transfer answers `Timeout`.
        deadline: Instant,
    },
}

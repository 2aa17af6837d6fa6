//! `Ready`: everything the core asks its driver to do, drained in one batch.

use super::membership::Membership;
use super::message::{Entry, HardState, Message, ReadState, SnapshotMeta};

/// The core asks the driver to snapshot the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Snapshot the state machine exactly as of this applied index.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// The membership at `index`, to store in the snapshot's metadata.
    pub membership: Membership,
}

/// A received snapshot chunk for the driver to write at `offset` of the incoming snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot the chunk belongs to. A chunk at offset 0 starts a new incoming snapshot,
    /// replacing any partial one.
    pub meta: SnapshotMeta,
    /// Byte offset of the chunk.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

/// One batch of work for the driver. See the module documentation of `crate::raft` for the
/// order in which the driver must carry it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    /// Hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// Drop every durable entry with index `>=` this before appending `entries`.
    pub truncate_from: Option<u64>,
    /// Entries to append durably, contiguous.
    pub entries: Vec<Entry>,
    /// Messages that may be sent at once.
    pub messages: Vec<Message>,
    /// Messages that may be sent only after this `Ready`'s hard state, truncation, entries and
    /// snapshot chunks are durable (vote grants, follower acknowledgements).
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in order.
    pub committed_entries: Vec<Entry>,
    /// Confirmed reads.
    pub read_states: Vec<ReadState>,
    /// A snapshot to build.
    pub snapshot_request: Option<SnapshotRequest>,
    /// Incoming snapshot chunks to write durably.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// A fully received snapshot to install (after writing this `Ready`'s chunks): replace the
    /// state machine by it, drop the whole durable log, then call `on_snapshot_installed`.
    pub snapshot_to_install: Option<SnapshotMeta>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Ready::default()
    }
}

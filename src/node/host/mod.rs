//! A host: one process running many Raft groups on a fixed set of threads, with one shared log
//! and one connection per peer host (the design's §6).
//!
//! Every group is the same pure core as a single-group [`Node`](crate::node::Node)'s; the host
//! only multiplexes them, so none of the protocol's safety is re-implemented here. A group's
//! replica on a host is the Raft node whose id is the host's id, and a group's members are
//! hosts.
//!
//! # Threads (fixed, whatever the number of groups)
//!
//! - **Event loop** (`event_loop`, one mio `Poll`): the peer listener and connections (the
//!   transport of `crate::node::transport`, shared with `Node`), every group's core and ticks,
//!   client requests, and the routing of every group's `Ready`. Each `Ready` is carried out
//!   as `crate::raft` requires, per group: messages at once, persistence to the writer, the
//!   persisted messages and `on_persisted` once the writer reports the item durable.
//! - **Log writer** (`log_writer`): owns the shared `LogStore`; every round of work items of
//!   every group becomes one store batch with one `fdatasync`, then "durable through item N".
//! - **Apply workers** (`apply`, `HostConfig::apply_workers`): a group always goes to worker
//!   `group id % workers`, so its commands apply in order.
//!
//! # Channels and their bounds
//!
//! | from → to      | what                        | bound                                        |
//! |----------------|-----------------------------|----------------------------------------------|
//! | API → loop     | proposals, reads, admin     | 8,192 requests; full → `Backpressure`         |
//! | loop → writer  | `PersistWork`, one message per pass | 16,384 items (`log_writer::WRITER_QUEUE_ITEMS`) |
//! | loop → apply   | `ApplyWork`, one message per worker per pass | 4,096 items per worker       |
//! | writer → loop  | durable-through counter     | a counter + waker                             |
//! | apply → loop   | applied indexes, snapshots  | a list drained every pass + waker             |
//! | loop → peer    | frames                      | `HostConfig::peer_queue_bytes_max` per lane   |
//! | loop → leader  | forwarded proposals waiting | 4,096 host-wide; over → `Backpressure`        |
//! | peer → loop    | proposals forwarded here    | 4,096 pending per peer host; over → `Backpressure` |
//! | loop → peer    | snapshot chunks over budget | one held per group and follower (`snapshot_pacing`) |
//!
//! Proposals waiting to commit are bounded host-wide by `HostConfig::max_pending_proposals`,
//! reads by `HostConfig::max_pending_reads`; each group's core bounds its own uncommitted bytes.
//! A group whose apply worker or the writer has no room keeps its `Ready` until there is.
//!
//! # Data directory
//!
//! | path                     | what                                                       |
//! |--------------------------|------------------------------------------------------------|
//! | `groups.catalog`         | groups held, with their first voters, and tombstones (`catalog`) |
//! | `log/`                   | the shared `LogStore`: every group's entries and hard state |
//! | `snapshots/<group id>/`  | a group's snapshot files, made on its first snapshot (`snapshots`) |
//!
//! A group's entries are stored as a `Node` stores them (see `crate::node::durable_state`: a
//! kind byte, then the data), under the group's id in the `LogStore`. A data directory of a
//! single-group `Node` is refused at start with a message saying so.
//!
//! # Lifecycle
//!
//! - `create_group` writes the group's catalog record durably before the group takes part in
//!   anything, so a restart brings it back with the same first voters, through the factory,
//!   restored from its newest snapshot and its log.
//! - `create_group_with_state` does the same for a group that starts from a given state: the
//!   state is written and synced as the group's snapshot at the given (index, term) first,
//!   then the catalog record, so a crash leaves no group (the leftover snapshot directory is
//!   cleared by the next creation of that id) or the whole one. Replicas created so from the
//!   same state are identical without any transfer; a voter created empty is behind them,
//!   cannot win an election, and receives the snapshot from the leader.
//! - `remove_group` writes the tombstone durably first; then the loop stops the group and the
//!   writer removes its log and snapshots. A crash in between is finished at the next start.
//!   Messages for a group the host does not hold are dropped and counted
//!   (`HostStatus::messages_unrouted`): they never create a group, so a removed one cannot come
//!   back from a late message, and its id is refused by `create_group`.
//! - A failed log write or fsync poisons the shared log: the loop stops every group at once and
//!   answers every waiting client truthfully (`LeaderLost` for an appended proposal, which may
//!   have been applied; `Stopped` for new ones, which were not), as `crate::node`'s table says.
//!
//! # Proposals on followers
//!
//! As on a `Node`, a group's replica that follows forwards a proposal to the group's leader
//! it knows, over the one connection to that leader's host, and waits for the result: the
//! same `crate::node::forward` state and the same table of answers (certainly not applied:
//! `NotLeader`, `Backpressure`; may have been applied: `LeaderLost`, `Timeout`; nothing
//! retried). Its bounds are host-wide: `FORWARDS_IN_FLIGHT_MAX` (4,096) forwards waiting over
//! all groups, and `FORWARDS_ACCEPTED_PER_PEER_MAX` (4,096) taken from each peer host over
//! all groups. A forward for a quiesced leader wakes its group, as a local proposal does; one
//! for a group the host does not hold is answered `NotLeader` with no hint and creates
//! nothing. Forwards keep flowing while the host's disk stalls (they hold up no leadership).
//! Those in flight when the host's log fails wait for their leader's answer (they never
//! touched this log); a stopped host forwards nothing new (`Stopped`).
//!
//! # Snapshot pacing
//!
//! Every InstallSnapshot chunk this host sends, over all groups and peers, draws its bytes
//! from one token bucket of `HostConfig::snapshot_bytes_per_sec` (64 MiB/s by default, 0:
//! unlimited), so replicas catching up from snapshots cannot take the network and the peers'
//! disks from every other group. A chunk over budget waits in the loop, in arrival order over
//! the host, and goes on a later pass once tokens allow (the loop's poll wakes for it); its
//! bytes are read from the snapshot file only then. The core's stop-and-wait (one chunk in
//! flight per follower) bounds what waits: a chunk the core sends again while its first copy
//! waits replaces it, so at most one per group and follower. Chunks of a group removed, or no
//! longer led here in their term, are dropped; so are all of them when the host stops or its
//! disk stalls (the cores send them again). Nothing else waits for the budget: heartbeats,
//! appends, votes and responses go at once, and chunks travel on the transport's bulk lane
//! in any case. `HostStatus::snapshot_bytes_sent`, `snapshot_chunks_delayed` and
//! `snapshot_chunks_held` show the budget at work.
//!
//! # Departures from a `Node`
//!
//! - No lease reads: a quiesced leader's clock stops, so every read is a ReadIndex round
//!   (`HostConfig` refuses `ReadMode::Lease`; see `crate::node::quiescence`).
//!
//! # Idle groups
//!
//! A group with nothing to do quiesces: no ticks, no heartbeats; host-to-host beats stand in
//! for them. The rules, and why check-quorum and ReadIndex stay correct, are in
//! `crate::node::quiescence`.

mod api;
mod apply;
mod catalog;
mod config;
mod event_loop;
mod log_writer;
mod outbox;
mod request;
mod snapshot_pacing;
mod snapshots;
mod status;

pub use api::{Group, Host, StateMachineFactory};
pub use config::HostConfig;
pub use log_writer::HostWriterStats;
pub use status::{GroupStatus, HostStatus};

use crate::raft::GroupId;

/// The apply worker of `group` among `workers`.
fn worker_of(group: GroupId, workers: usize) -> usize {
    (group % workers as u64) as usize
}

//! The Raft protocol core: a pure, deterministic state machine (Ongaro & Ousterhout, "In Search
//! of an Understandable Consensus Algorithm", cited as "Raft §n"; Ongaro's thesis, "thesis §n").
//!
//! # The contract
//!
//! The core, a [`Core`] per server, does no I/O and reads no clock: same inputs, same outputs.
//! Randomness (election jitter) comes from a splitmix64 generator seeded by `Config::seed` and
//! the node id.
//!
//! Inputs:
//! - [`Core::tick`]: one unit of logical time. Timeouts are counted in ticks.
//! - [`Core::step`]: a message from a peer. Malformed or inconsistent input is counted in
//!   [`Stats`] and dropped, never a panic.
//! - [`Core::propose`], [`Core::propose_conf_change`], [`Core::read_index`],
//!   [`Core::transfer_leader`].
//! - Completions from the driver: [`Core::on_persisted`], [`Core::on_applied`],
//!   [`Core::on_snapshot_built`], [`Core::on_snapshot_installed`].
//!
//! Output: [`Core::ready`] returns a [`Ready`]. After any input the driver calls `ready()`
//! (or checks [`Core::has_ready`]) and carries the batch out as follows:
//! 1. Send `messages` now, in any order, over any transport (loss, duplication and reordering
//!    are tolerated).
//! 2. Persist, in this order and in order with earlier `Ready`s: `truncate_from` (drop durable
//!    entries `>=` it), `entries`, `hard_state`, `snapshot_chunks` (write each at its offset
//!    of the incoming snapshot named by its metadata), then install `snapshot_to_install`
//!    (replace the state machine, drop the whole durable log, record the snapshot as the
//!    latest durable one). Persistence may be asynchronous and batched across `Ready`s, but
//!    must complete in order.
//! 3. Once everything in step 2 of this `Ready` (and thus of every earlier one) is durable,
//!    send `persisted_messages` (vote grants, candidates' vote requests, follower
//!    acknowledgements: "persist before you speak"), call `on_persisted(i, t)` with the last
//!    entry written (index `i`, term `t`), and `on_snapshot_installed(meta)` after an install.
//!    `on_persisted` is ignored if the entry at `i` no longer has term `t` (it was truncated
//!    meanwhile); Log Matching (Raft §5.3) makes `(i, t)` name a unique entry.
//! 4. Apply `committed_entries` in order and report `on_applied(last index)`. Committed entries
//!    are only handed out once durable locally, so a state machine is never ahead of its log.
//! 5. Answer `read_states` once the state machine has applied `ReadState::index`.
//! 6. On `snapshot_request`, snapshot the state machine as of exactly the requested index
//!    (the driver's applied index when it asked), make it durable, and call
//!    `on_snapshot_built(meta)`. The core then drops log entries up to it, keeping, within the
//!    snapshot threshold, entries replicating followers still need.
//! 7. `InstallSnapshot` messages leave the core with empty `data`: the driver fills `data` with
//!    bytes `[offset, offset + len)` of the snapshot file named by `meta` before sending (or
//!    drops the message if that snapshot is gone; the leader retries and, after the next
//!    snapshot, sends the newer one). The core never holds snapshot bytes.
//!
//! # Durable state and restarts
//!
//! A node is rebuilt with [`Core::new`] from [`DurableState`]: the hard state (term, vote,
//! commit), the latest snapshot's metadata (index, term, membership, size) and the durable
//! entries after it. The core keeps all entries after its latest snapshot in memory (the log is
//! bounded by `snapshot_threshold_entries` because the core requests a snapshot beyond it); the
//! driver's storage holds the durable copy. After a restart the applied index is the snapshot
//! index and committed entries are handed out again.
//!
//! # The message flow
//!
//! - Election (Raft §5.2, thesis §9.6): a follower whose randomized timeout in
//!   `[election_timeout_ticks, 2 * election_timeout_ticks)` expires becomes a pre-candidate
//!   and sends `PreVote` for `term + 1` without changing its term; with a quorum of grants it
//!   becomes candidate, increments its term, votes for itself and sends `Vote`. Votes go to
//!   candidates whose log is at least as up to date (Raft §5.4.1). With check-quorum, a node
//!   that heard from a leader within the election timeout ignores (pre-)vote requests.
//! - Replication (Raft §5.3): the new leader appends a no-op, then sends `Append` per follower
//!   progress (probe / replicate / snapshot, see `progress`). Followers answer after the
//!   entries are durable; rejections carry a hint for fast backtracking. The leader commits an
//!   index held by a quorum if its entry is of the current term (Raft §5.4.2), counting itself
//!   only up to its own durable index (etcd issue 14370); it may send entries before they are
//!   durable locally (thesis §10.2.1).
//! - Followers learn a new commit index from the next `Append` or `Heartbeat` (once per
//!   `heartbeat_interval_ticks`); the leader sends no extra message per commit advance.
//! - Heartbeats carry `min(commit, follower match)` and a round number that confirms
//!   leadership for reads (thesis §6.4, see `read_index`). A leader that hears from no quorum
//!   within an election timeout steps down (check-quorum, thesis §6.2).
//! - Snapshots (Raft §7): followers whose next entry is compacted receive `InstallSnapshot`
//!   chunks of `snapshot_chunk_bytes`, stop-and-wait; each chunk is acknowledged once durable.
//! - Leadership transfer (thesis §3.10): the leader stops accepting proposals, brings the
//!   target up to date, and sends `TimeoutNow`; it gives up after an election timeout.
//!
//! - Reads (thesis §6.4): see `read_index`. Lease reads assume every node's tick runs at the
//!   same rate within `lease_margin_ticks` per election timeout; they are off by default.
//!
//! # Membership changes (thesis §4)
//!
//! [`Core::propose_conf_change`] takes a [`ConfChange`] (add a learner, promote, demote,
//! remove, replace, or any target set) and returns the index of the configuration entry it
//! appended, or a [`ConfChangeError`]. Changes of voters use joint consensus (thesis §4.3, see
//! `conf_change`): the leader appends C_old,new, and once that commits appends C_new itself.
//! Elections, commitment, check-quorum and read confirmation use the latest configuration in
//! the node's log, committed or not; a truncated configuration entry reverts to the previous
//! one (`membership_log`). One change is in flight at a time: from the first entry until C_new
//! commits, further changes are refused with `ChangeInProgress`.
//!
//! - Learners receive the log but never vote or count. A learner becomes a voter only when its
//!   match index is within `Config::promote_max_lag_entries` of the leader's last index.
//! - Removing (or demoting) the leader: it keeps leading while C_new is uncommitted, without
//!   counting itself in C_new's majority; once C_new commits it transfers leadership to the
//!   most up-to-date voter of C_new (thesis §3.10) and steps down (if the transfer times out
//!   it steps down anyway and the voters elect a leader).
//! - A node that is not a voter never campaigns. A removed node learns it was removed when a
//!   committed configuration without it reaches it: the leader keeps replicating to removed
//!   nodes for `2 * election_timeout_ticks` after the change commits, and for as long again
//!   whenever a removed node contacts it (at most `MAX_DEPARTED_NODES` at a time). A node
//!   whose log holds its removal but not its commit sends a (harmless) pre-vote request to the
//!   voters of that configuration once per election timeout, to be contacted by the leader.
//!   A removed node whose log does not even hold the change keeps campaigning (pre-vote and
//!   check-quorum make that harmless) and learns when the leader hears it.
//!   [`Core::is_removed`] then turns true, and the runtime can stop the process. Node ids
//!   must not be reused after removal.
//! - A node joining a running cluster starts with an empty membership (`Membership::default()`
//!   in its snapshot metadata) and learns the configuration from the leader's log or snapshot;
//!   it builds no snapshot before it knows one.
//! - [`Core::membership`] is the configuration in force (latest in the log);
//!   [`Core::committed_membership`] the one in force at the commit index. Snapshot metadata
//!   carries the configuration in force at the snapshot index; a restarted node recovers the
//!   latest configuration from its snapshot and the configuration entries of its log.

mod conf_change;
mod config;
mod core;
mod error;
mod inflights;
mod log;
mod membership;
mod membership_log;
mod message;
mod node_id;
mod progress;
mod quorum;
mod rand;
mod read_index;
mod ready;
mod status;

pub use self::core::{Core, DurableState, MAX_DEPARTED_NODES};
pub use conf_change::{next_configuration, ConfChange};
pub use config::{Config, ConfigError, Fault, ReadMode};
pub use error::{ConfChangeError, ProposalRefused, ReadIndexRefused, TransferError};
pub use inflights::Inflights;
pub use log::{AppendOutcome, RaftLog};
pub use membership::Membership;
pub use membership_log::{entry_membership, MembershipEntry, MembershipLog};
pub use message::{Entry, EntryKind, HardState, Message, MessageBody, ReadState, SnapshotMeta};
pub use node_id::{GroupId, NodeId};
pub use progress::{Progress, ProgressState, SnapshotTransfer};
pub use quorum::{majority_index, majority_vote, JointConfig, VoteResult};
pub use rand::SplitMix64;
pub use read_index::{ReadIndexQueue, ReadRequest};
pub use ready::{Ready, SnapshotChunk, SnapshotRequest};
pub use status::{PeerProgress, Role, Stats, Status};

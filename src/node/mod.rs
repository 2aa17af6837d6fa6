//! The node runtime: the Raft core (`crate::raft`) driven by threads, sockets and disks.
//!
//! # Threads
//!
//! - **Event loop** (`event_loop`, one mio `Poll`): the peer listener and connections
//!   (`transport`), the core's ticks (the poll timeout), client requests from [`Node`], and the
//!   routing of every `Ready`. It never blocks on disk or on another thread.
//! - **Log writer** (`log_writer`): owns the `Wal` and incoming snapshots; takes every pending
//!   work item, writes them, ONE `fdatasync`, publishes "durable through item N".
//! - **Apply thread** (`apply`): applies committed entries to the [`StateMachine`], resolves
//!   proposals, answers reads, builds and restores snapshots.
//!
//! One thread owns each piece of state; the others send it work or read what it publishes
//! (counters, a list behind a lock, the loop's waker). The loop owns the core, the transport,
//! the waiting proposals and reads, and the address book; the writer owns the `Wal`; the apply
//! thread owns the state machine.
//!
//! # A proposal, end to end
//!
//! 1. `Node::submit_with` (`api`) wraps the caller's callback in a completion (`completion`)
//!    and puts a `Request::Propose` (`request`) in the loop's bounded inbox.
//! 2. The loop (`event_loop::proposals_and_reads`) proposes it to the core as leader, and keeps
//!    the completion among its waiting proposals by log index; a follower forwards it to the
//!    leader instead (`forward`) and keeps the completion until the leader's answer.
//! 3. The core's `Ready` (`event_loop::routing`): the appends go to the followers at once, the
//!    entry to the log writer (`log_writer`), which writes a round of work items with one
//!    fdatasync and reports "durable through item N" back to the loop.
//! 4. Once a quorum holds it (the leader counting itself only up to its own durable index),
//!    the core commits the entry and hands it out in a later `Ready`; the loop sends it to the
//!    apply thread together with the completion waiting on it.
//! 5. The apply thread (`apply`) applies it to the [`StateMachine`] and runs the completion
//!    with the result. Every failure on the way answers the completion once, with the error
//!    the table below gives.
//!
//! # Channels and their bounds
//!
//! | from → to         | what                    | bound                                       |
//! |-------------------|-------------------------|---------------------------------------------|
//! | API → loop        | proposals, reads        | `INBOX_REQUESTS` (8192); full → Backpressure |
//! | loop → writer     | `PersistWork`           | `WRITER_QUEUE_ITEMS` (4096) items            |
//! | loop → apply      | `ApplyWork`             | `APPLY_QUEUE_ITEMS` (1024) items             |
//! | writer → loop     | durable-through counter | a counter + `mio::Waker`: no queue           |
//! | apply → loop      | applied index, snapshots| a counter, a list of at most one build + waker |
//! | node → caller     | result / answer         | one `completion` callback per request        |
//! | loop → peer       | frames                  | `NodeConfig::peer_queue_bytes_max` per peer  |
//! | forwarded, sent   | proposals to the leader | `FORWARDS_IN_FLIGHT_MAX` (4096); over → Backpressure |
//! | forwarded, taken  | proposals from a peer   | `FORWARDS_ACCEPTED_PER_PEER_MAX` (4096) per peer |
//!
//! Pending proposals are bounded by `NodeConfig::max_pending_proposals`, pending reads by
//! `APPLY_QUEUE_ITEMS`.
//!
//! # Answers and timeouts
//!
//! Every request carries a `completion` callback that runs exactly once (see that module);
//! the blocking `propose`, `submit(..).wait()` and `read` are wrappers over `submit_with` and
//! `read_with`. Deadlines are enforced inside the node, since no caller may be waiting: the
//! loop times out proposals (`NodeConfig::propose_timeout` from submission) and reads waiting
//! for their read index; the apply thread times out reads waiting for their index to apply.
//! At shutdown, whatever is still pending answers `ShuttingDown`.
//!
//! # "Not applied" versus "may have been applied", path by path
//!
//! A caller retries a command answered "not applied" anywhere, so that answer is given only
//! for a command that never reached any log. Once the core appended a proposal, a leader may
//! have sent it to its followers before its own write was durable (thesis §10.2.1), so from
//! then on every failure answer is "may have been applied".
//!
//! | path                                                      | answer          | applied?  |
//! |-----------------------------------------------------------|-----------------|-----------|
//! | `Node::propose`/`submit`: inbox full                      | `Backpressure`  | no        |
//! | loop: too many proposals waiting                          | `Backpressure`  | no        |
//! | loop: larger than `NodeConfig::max_proposal_bytes`        | `Backpressure`  | no        |
//! | loop: not the leader, no leader known to forward to       | `NotLeader`     | no        |
//! | loop: the node had stopped participating on arrival       | `Stopped`       | no        |
//! | core refused it (transfer in progress, uncommitted bytes) | per the core    | no        |
//! | forwarded to the leader: see `forward`                    | per that table  |           |
//! | appended; the log write or fsync failed (log poisoned)    | `LeaderLost`    | maybe     |
//! | appended; the apply thread failed                         | `LeaderLost`    | maybe     |
//! | appended; another entry took its index (new leader)       | `LeaderLost`    | maybe     |
//! | appended; no result by the deadline                       | `Timeout`       | maybe     |
//! | appended or queued; the node shut down                    | `ShuttingDown`  | maybe     |
//!
//! The loop answers the pending proposals of a node that stops participating at the moment
//! it stops (`EventLoop::stop_participating`). A stopped node also stops claiming its role:
//! [`NodeStatus::role`] is never `Leader` and [`NodeStatus::leader`] is `None` while
//! [`NodeStatus::participating`] is false, even though the core, which knows nothing of disks,
//! still holds the role it had.
//!
//! # Proposals on followers
//!
//! A follower forwards a proposal to the leader it knows (`forward`: what each failure tells
//! the caller, certainly-not-applied versus may-have-been-applied); reads are answered locally
//! after a ReadIndex round with the leader.
//!
//! # The contract with the core, as carried out here
//!
//! 1. `messages` go to the transport at once (the leader's appends leave while its own write
//!    is in flight, thesis §10.2.1).
//! 2. Persistence (truncation, entries, hard state, snapshot chunks, install) becomes one
//!    numbered work item for the writer; the item's `persisted_messages`, last entry and
//!    install are kept by the loop until the writer reports the item durable, then the
//!    messages are sent, `on_persisted` and `on_snapshot_installed` called, and a restore is
//!    queued to the apply thread ahead of any later committed entries.
//! 3. Committed entries, snapshot requests and confirmed reads go to the apply thread, in
//!    order. Applied index and built snapshots come back through shared state and the waker.
//! 4. A writer or apply error stops participation: no more steps, ticks or messages; the error
//!    shows in [`NodeStatus::last_error`] and in `shutdown()`'s result.
//!
//! # Data directory
//!
//! See `durable_state` for the layout and how entries, hard state and membership are stored,
//! and `addresses` for how peer addresses are kept.

mod addresses;
mod api;
mod apply;
mod coalesce;
mod completion;
mod config;
mod disk_stall;
mod durable_state;
mod errors;
mod event_loop;
mod forward;
mod host;
mod log_writer;
mod membership_change;
mod peer_auth;
mod peer_tls;
pub mod quiescence;
mod refusal_log;
mod request;
pub(crate) mod socket_drain;
mod state_machine;
mod status;
mod transport;

pub use crate::raft::GroupId;
pub use api::{Node, Proposal};
pub use config::{NodeConfig, ProposalStamp, DEFAULT_MAX_PROPOSAL_BYTES};
pub use durable_state::StorageError;
pub use errors::{NodeError, ProposeError, ReadError};
pub use host::{
    Group, GroupStatus, Host, HostConfig, HostStatus, HostWriterStats, StateMachineFactory,
};
pub use log_writer::WriterStats;
pub use membership_change::ChangeError;
pub use peer_auth::{
    AcceptorHandshake, AcceptorStep, DialerHandshake, HandshakeRefusal, PeerSecret, PeerSecurity,
    PeerSecurityError, HANDSHAKE_TIMEOUT,
};
pub use peer_tls::{node_dns_name, PeerTls};
pub use state_machine::StateMachine;
pub use status::{MemberStatus, NodeStatus};
pub use transport::TransportStats;

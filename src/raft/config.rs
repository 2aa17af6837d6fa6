//! Configuration of a core, with validation.

use std::fmt;

use super::node_id::NodeId;

/// How read-index requests are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Thesis §6.4: confirm leadership with a heartbeat round to a quorum. Always safe.
    Safe,
    /// Thesis §6.4.1: rely on a lease (heartbeats acknowledged by a quorum within the last
    /// `election_timeout_ticks - lease_margin_ticks`). Correct only if clocks tick at bounded
    /// relative rates; requires `check_quorum` (leader stickiness is what stops other nodes
    /// from electing a new leader during the lease).
    Lease,
}

/// Deliberately broken behaviours, to prove that the simulator catches them. Never set outside
/// tests.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Commit entries of earlier terms by counting replicas (violates Raft §5.4.2, Figure 8),
    /// and skip the election no-op, which would otherwise mask the bug in most schedules (the
    /// paper's Figure 8 leaders append no such entry).
    CommitOldTermByCount,
    /// Answer read-index requests without confirming leadership.
    ReadWithoutHeartbeat,
    /// While joint, decide elections and commitment by the incoming voters alone (violates
    /// the joint rule of thesis §4.3).
    IgnoreOutgoingVoters,
}

/// Configuration of one core.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Base election timeout; the randomized timeout is in `[t, 2t)` (Raft §5.2).
    pub election_timeout_ticks: u32,
    /// Heartbeat interval; must be below the election timeout.
    pub heartbeat_interval_ticks: u32,
    /// Thesis §9.6 pre-vote: do not disrupt a cluster by bumping terms from a partition.
    pub pre_vote: bool,
    /// Thesis §6.2 check-quorum: a leader steps down if it has not heard from a quorum within
    /// an election timeout; followers that heard from a leader within it ignore vote requests.
    pub check_quorum: bool,
    /// How reads are confirmed.
    pub read_mode: ReadMode,
    /// Ticks subtracted from the election timeout to bound a lease (clock drift allowance).
    pub lease_margin_ticks: u32,
    /// Largest payload of one AppendEntries (at least one entry is always sent).
    pub max_message_bytes: u64,
    /// In-flight AppendEntries per follower in the Replicate state.
    pub max_inflight_messages: usize,
    /// In-flight payload bytes per follower in the Replicate state.
    pub max_inflight_bytes: u64,
    /// Cap on proposed but uncommitted payload bytes on a leader (backpressure).
    pub max_uncommitted_bytes: u64,
    /// Largest payload of committed entries handed out in one `Ready`.
    pub max_apply_bytes_per_ready: u64,
    /// Request a snapshot when this many applied entries follow the latest snapshot.
    pub snapshot_threshold_entries: u64,
    /// Size of an InstallSnapshot chunk.
    pub snapshot_chunk_bytes: u64,
    /// Pending read requests a leader holds before refusing new ones.
    pub max_pending_reads: usize,
    /// A learner is promoted to voter only if its match index is within this many entries of
    /// the leader's last index (thesis §4.2.1: a voter that must first catch up would stall
    /// commitment).
    pub promote_max_lag_entries: u64,
    /// Seed of the election-jitter generator (mixed with `id`).
    pub seed: u64,
    /// Test-only: a deliberate protocol bug.
    #[doc(hidden)]
    pub unsafe_fault: Option<Fault>,
}

impl Config {
    /// Defaults suited to a tick of about 100 ms on a LAN.
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            read_mode: ReadMode::Safe,
            lease_margin_ticks: 2,
            max_message_bytes: 1 << 20,
            max_inflight_messages: 256,
            max_inflight_bytes: 32 << 20,
            max_uncommitted_bytes: 64 << 20,
            max_apply_bytes_per_ready: 4 << 20,
            snapshot_threshold_entries: 100_000,
            snapshot_chunk_bytes: 1 << 20,
            max_pending_reads: 4096,
            promote_max_lag_entries: 1000,
            seed: 0,
            unsafe_fault: None,
        }
    }

    /// Checks every bound; the core refuses an invalid configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |reason: &str| {
            Err(ConfigError {
                reason: reason.to_string(),
            })
        };
        if self.id == 0 {
            return fail("id must be non-zero");
        }
        if self.heartbeat_interval_ticks == 0 {
            return fail("heartbeat_interval_ticks must be at least 1");
        }
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks {
            return fail("election_timeout_ticks must exceed heartbeat_interval_ticks");
        }
        if self.read_mode == ReadMode::Lease && !self.check_quorum {
            return fail("lease reads require check_quorum");
        }
        if self.read_mode == ReadMode::Lease
            && self.lease_margin_ticks >= self.election_timeout_ticks
        {
            return fail("lease_margin_ticks must be below election_timeout_ticks");
        }
        if self.max_message_bytes == 0
            || self.max_inflight_bytes == 0
            || self.max_apply_bytes_per_ready == 0
        {
            return fail("byte limits must be non-zero");
        }
        if self.max_inflight_messages == 0 {
            return fail("max_inflight_messages must be at least 1");
        }
        if self.max_uncommitted_bytes == 0 {
            return fail("max_uncommitted_bytes must be non-zero");
        }
        if self.snapshot_threshold_entries == 0 {
            return fail("snapshot_threshold_entries must be at least 1");
        }
        if self.snapshot_chunk_bytes == 0 {
            return fail("snapshot_chunk_bytes must be non-zero");
        }
        if self.max_pending_reads == 0 {
            return fail("max_pending_reads must be at least 1");
        }
        Ok(())
    }
}

/// Why a configuration (or initial state) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid raft configuration: {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_refused() {
        assert!(Config::new(1).validate().is_ok());
        assert!(Config::new(0).validate().is_err());
        let mut c = Config::new(1);
        c.read_mode = ReadMode::Lease;
        c.check_quorum = false;
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("check_quorum"));
        c.check_quorum = true;
        assert!(c.validate().is_ok());
        let mut c = Config::new(1);
        c.heartbeat_interval_ticks = 10;
        assert!(c.validate().is_err());
    }
}

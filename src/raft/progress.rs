//! The leader's view of one follower's replication (etcd's tracker/progress, thesis §10.2).
//!
//! Raft §5.3 keeps `next_index` and `match_index` per follower. The leader additionally tracks
//! how it talks to the follower:
//! - **Probe**: the leader does not know where the logs match; it sends one AppendEntries at a
//!   time and waits for the answer (or the next heartbeat response) before sending another.
//! - **Replicate**: the logs match up to `match_index`; the leader pipelines entries
//!   optimistically, advancing `next_index` as it sends, bounded by the in-flight window.
//! - **Snapshot**: the entries the follower needs are compacted; a snapshot is being sent in
//!   chunks, stop-and-wait, resumed from the follower's acknowledged offset.

use super::inflights::Inflights;
use super::message::SnapshotMeta;

/// How the leader currently replicates to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// One message in flight until a match is found.
    Probe,
    /// Optimistic pipelining within the in-flight window.
    Replicate,
    /// Waiting for a snapshot transfer to finish.
    Snapshot,
}

/// A snapshot being sent to a follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTransfer {
    /// The snapshot being sent.
    pub meta: SnapshotMeta,
    /// Bytes the follower acknowledged as durably received.
    pub acked_offset: u64,
    /// Ticks since the last acknowledgement; a chunk is resent after a heartbeat interval
    /// without progress (chunks may be lost).
    pub idle_ticks: u32,
    /// Whether the chunk at `acked_offset` has been sent and not yet acknowledged.
    pub chunk_in_flight: bool,
}

/// Replication state of one follower.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Raft §5.3 matchIndex: highest index known replicated on the follower.
    pub match_index: u64,
    /// Raft §5.3 nextIndex: next index to send.
    pub next_index: u64,
    /// How the leader sends to it.
    pub state: ProgressState,
    /// In Probe: a message has been sent and no answer received yet.
    pub probe_sent: bool,
    /// In Replicate: the in-flight window.
    pub inflights: Inflights,
    /// Check-quorum (thesis §6.2): heard from this follower in the current election timeout.
    pub recent_active: bool,
    /// In Snapshot: the transfer.
    pub snapshot: Option<SnapshotTransfer>,
    /// Whether the follower is a learner (never counted in quorums).
    pub is_learner: bool,
    /// In Replicate: heartbeat responses in a row that saw no match progress while messages
    /// were in flight (they may have been lost).
    pub stalled_heartbeats: u32,
    /// The match index at the previous heartbeat response.
    pub match_at_last_heartbeat: u64,
}

impl Progress {
    /// A fresh progress after an election: probe from just after the leader's last index.
    pub fn new(
        next_index: u64,
        max_inflight_messages: usize,
        max_inflight_bytes: u64,
        is_learner: bool,
    ) -> Self {
        Self {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight_messages, max_inflight_bytes),
            recent_active: false,
            snapshot: None,
            is_learner,
            stalled_heartbeats: 0,
            match_at_last_heartbeat: 0,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.state = state;
        self.probe_sent = false;
        self.inflights.reset();
        self.snapshot = None;
        self.stalled_heartbeats = 0;
    }

    /// Enters Probe, resuming from just after the match (or after a finished snapshot).
    pub fn become_probe(&mut self) {
        let resume_after = match &self.snapshot {
            Some(transfer) if self.state == ProgressState::Snapshot => {
                transfer.meta.index.max(self.match_index)
            }
            _ => self.match_index,
        };
        self.reset_state(ProgressState::Probe);
        self.next_index = resume_after + 1;
    }

    /// Enters Replicate: the match is known; pipeline from just after it.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_index = self.match_index + 1;
    }

    /// Enters Snapshot: send `meta` from offset 0.
    pub fn become_snapshot(&mut self, meta: SnapshotMeta) {
        self.reset_state(ProgressState::Snapshot);
        self.snapshot = Some(SnapshotTransfer {
            meta,
            acked_offset: 0,
            idle_ticks: 0,
            chunk_in_flight: false,
        });
    }

    /// The follower acknowledged entries up to `index`. Returns whether the match advanced.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index + 1);
        updated
    }

    /// Optimistically advances `next_index` after sending entries up to `last_index`.
    pub fn sent_entries(&mut self, last_index: u64, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if last_index >= self.next_index {
                    self.next_index = last_index + 1;
                    self.inflights.add(last_index, bytes);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    /// The follower rejected an append at `rejected` (its prev index); `match_hint` is the
    /// leader-side result of the conflict search. Returns false for a stale rejection.
    pub fn maybe_decrease_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // A rejection at or below the match is from an old, reordered message.
            if rejected <= self.match_index {
                return false;
            }
            self.next_index = self.match_index + 1;
            return true;
        }
        // In Probe only the answer to the latest probe counts.
        if self.next_index == 0 || self.next_index - 1 != rejected {
            return false;
        }
        self.next_index = (match_hint + 1).min(rejected).max(self.match_index + 1);
        self.probe_sent = false;
        true
    }

    /// Whether the leader must hold further appends.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_then_waits() {
        let mut p = Progress::new(11, 4, 1 << 20, false);
        assert!(!p.is_paused());
        p.sent_entries(15, 100);
        assert!(p.is_paused());
        assert_eq!(
            p.next_index, 11,
            "probe does not advance next optimistically"
        );
        // A stale rejection (not for next - 1) is ignored.
        assert!(!p.maybe_decrease_to(5, 2));
        assert!(p.maybe_decrease_to(10, 3));
        assert_eq!(p.next_index, 4);
        assert!(!p.is_paused());
    }

    #[test]
    fn replicate_pipelines_within_the_window() {
        let mut p = Progress::new(11, 2, 1 << 20, false);
        assert!(p.maybe_update(10));
        p.become_replicate();
        p.sent_entries(12, 10);
        p.sent_entries(14, 10);
        assert_eq!(p.next_index, 15);
        assert!(p.is_paused());
        assert!(p.maybe_update(12));
        p.inflights.free_up_to(12);
        assert!(!p.is_paused());
        assert!(
            !p.maybe_decrease_to(11, 0),
            "rejection below match is stale"
        );
        assert!(p.maybe_decrease_to(14, 0));
        assert_eq!(p.next_index, 13);
    }

    #[test]
    fn snapshot_then_probe_resumes_after_the_snapshot() {
        let mut p = Progress::new(3, 2, 1 << 20, false);
        p.become_snapshot(SnapshotMeta {
            index: 50,
            term: 2,
            ..SnapshotMeta::default()
        });
        assert!(p.is_paused());
        p.become_probe();
        assert_eq!(p.next_index, 51);
        assert_eq!(p.state, ProgressState::Probe);
    }
}

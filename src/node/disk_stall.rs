//! When a leader's disk counts as stalled, for `Node` and `Host` alike.
//!
//! A leader sends appends before its own write is durable (thesis §10.2.1), so a leader whose
//! disk hangs can look healthy to its followers: its heartbeats keep them from electing
//! anyone, while its log writer, and soon its bounded writer queue, stop every write. So once
//! the writer has made no progress for too long, the runtime sends nothing until it does,
//! and the followers elect a leader with a working disk.
//!
//! "Too long" is measured from the writer's last reported progress (an item made durable), not
//! from when the oldest waiting item was sent: the writer takes items in order, so a small
//! item sent right behind a 64 MiB entry waits for that entry's whole round and is not the
//! writer's to work on before it. And the bound grows with the bytes waiting, at the rate of
//! a slow but working disk ([`SLOW_DISK_BYTES_PER_SEC`]): a 64 MiB entry copied, written and
//! synced on a host busy replicating it may take seconds, and a busy disk is not a dead one.

use std::time::{Duration, Instant};

use crate::raft::{Entry, SnapshotChunk};

/// The throughput of a slow but working disk, copies on a loaded host included.
pub const SLOW_DISK_BYTES_PER_SEC: u64 = 16 << 20;

/// The extra time a slow but working disk needs for `pending_bytes`.
pub fn allowance(pending_bytes: u64) -> Duration {
    Duration::from_secs_f64(pending_bytes as f64 / SLOW_DISK_BYTES_PER_SEC as f64)
}

/// The bytes one persistence item asks the writer to write: its entries and snapshot chunks
/// (what [`allowance`] is for; hard states and truncations are too small to count).
pub fn write_bytes(entries: &[Entry], chunks: &[SnapshotChunk]) -> u64 {
    entries.iter().map(Entry::size_bytes).sum::<u64>()
        + chunks.iter().map(|c| c.data.len() as u64).sum::<u64>()
}

/// The writer's clock: when it last made progress, and the bytes it has waiting.
#[derive(Debug)]
pub struct WriterProgress {
    /// The `write_bytes` of every item sent and not yet durable.
    pending_bytes: u64,
    /// When the writer last reported an item durable (or the clock started).
    progress_at: Instant,
}

impl WriterProgress {
    /// A clock with nothing pending.
    pub fn new() -> Self {
        WriterProgress {
            pending_bytes: 0,
            progress_at: Instant::now(),
        }
    }

    /// An item of `bytes` was sent to the writer.
    pub fn sent(&mut self, bytes: u64) {
        self.pending_bytes += bytes;
    }

    /// An item of `bytes` sent earlier is durable.
    pub fn durable(&mut self, bytes: u64) {
        assert!(
            self.pending_bytes >= bytes,
            "pending write bytes below one pending write"
        );
        self.pending_bytes -= bytes;
        self.progress_at = Instant::now();
    }

    /// How long the writer has had the oldest waiting item, sent at `oldest_sent_at`, to work
    /// on.
    pub fn waited(&self, oldest_sent_at: Instant) -> Duration {
        oldest_sent_at.max(self.progress_at).elapsed()
    }

    /// Bytes sent and not yet durable.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// True if the oldest waiting item, sent at `oldest_sent_at`, has waited past `timeout`
    /// plus the allowance for every pending byte.
    pub fn stalled(&self, oldest_sent_at: Instant, timeout: Duration) -> bool {
        self.waited(oldest_sent_at) > timeout + allowance(self.pending_bytes)
    }
}

impl Default for WriterProgress {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_with_the_bytes_pending() {
        assert_eq!(allowance(0), Duration::ZERO);
        assert_eq!(allowance(64 << 20), Duration::from_secs(4));
    }

    #[test]
    fn an_item_behind_a_long_write_is_timed_from_that_write_s_completion() {
        let mut clock = WriterProgress::new();
        let long_ago = Instant::now() - Duration::from_secs(10);
        clock.sent(64 << 20);
        clock.sent(0);
        // Both items sent 10 s ago; the big one completes now.
        clock.progress_at = long_ago;
        assert!(
            clock.stalled(long_ago, Duration::from_secs(1)),
            "10 s > 1 s + 4 s"
        );
        clock.durable(64 << 20);
        assert!(!clock.stalled(long_ago, Duration::from_secs(1)));
        assert!(clock.waited(long_ago) < Duration::from_secs(1));
        assert_eq!(clock.pending_bytes(), 0);
    }

    #[test]
    #[should_panic(expected = "below one pending write")]
    fn durable_more_than_sent_is_a_bug() {
        let mut clock = WriterProgress::new();
        clock.sent(1);
        clock.durable(2);
    }
}

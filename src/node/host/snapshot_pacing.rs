//! Host-wide pacing of InstallSnapshot chunks: a token bucket of
//! `HostConfig::snapshot_bytes_per_sec`, and the chunks held back while it is empty.
//!
//! A lagging replica's catch-up must not take the host's network (or the peer's disk) from
//! everyone else, so every chunk this host sends, over all groups and peers, draws its bytes
//! from one bucket. Only chunks do: heartbeats, appends, votes and responses never wait here.
//!
//! # The bucket
//!
//! It holds up to `burst_bytes` and refills at `bytes_per_sec`. A chunk of `n` bytes may go
//! once the bucket holds `min(n, burst_bytes)`, and then takes all `n`: a chunk larger than
//! the burst waits for a full bucket and leaves it in debt, so any chunk size works and the
//! long-run rate still holds (over any interval `t`, at most `rate × t` plus one burst plus
//! one chunk). Arithmetic is in byte-nanoseconds, exact in integers.
//!
//! # Held chunks and their bound
//!
//! A chunk over budget, or behind another held chunk, is held in arrival order (FIFO over the
//! whole host, so no group or peer starves) and sent by a later [`SnapshotPacer::pop_ready`].
//! Held chunks carry no data: the host reads their bytes from the snapshot file when it
//! sends them. They are bounded by the core: a leader keeps one chunk in flight per
//! follower (stop-and-wait, `Core::send_snapshot_chunk`), and a chunk the core sends again
//! while its first copy is still held (its resend timer ran out, or it restarted the
//! transfer with a newer snapshot) replaces that copy in place. So at most one chunk is held
//! per group and follower, whatever the rate.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::raft::{GroupId, NodeId};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A token bucket of bytes, driven by the `Instant`s it is given.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    bytes_per_sec: u64,
    burst_bytes: u64,
    /// What the bucket lacks to be full, in byte-nanoseconds (bytes × 10⁹), as of `at`. It
    /// exceeds the burst when a chunk larger than the burst left the bucket in debt.
    deficit: u128,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst_bytes` refilled at `bytes_per_sec` (both above zero).
    pub fn new(bytes_per_sec: u64, burst_bytes: u64, now: Instant) -> TokenBucket {
        assert!(bytes_per_sec > 0, "a bucket needs a refill rate");
        assert!(burst_bytes > 0, "a bucket needs room for a byte");
        TokenBucket {
            bytes_per_sec,
            burst_bytes,
            deficit: 0,
            at: now,
        }
    }

    /// Takes `bytes` if the bucket allows them at `now`.
    pub fn try_take(&mut self, bytes: u64, now: Instant) -> bool {
        self.refill(now);
        if self.deficit > self.deficit_allowed(bytes) {
            return false;
        }
        self.deficit += u128::from(bytes) * NANOS_PER_SEC;
        true
    }

    /// How long from `now` until `bytes` may be taken (zero if they may now).
    pub fn wait_for(&mut self, bytes: u64, now: Instant) -> Duration {
        self.refill(now);
        let short = self.deficit.saturating_sub(self.deficit_allowed(bytes));
        // Rounded up: waking a nanosecond early would find the bucket still short.
        let nanos = short.div_ceil(u128::from(self.bytes_per_sec));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The largest deficit at which `bytes` may still be taken: the bucket must hold
    /// `min(bytes, burst_bytes)`.
    fn deficit_allowed(&self, bytes: u64) -> u128 {
        u128::from(self.burst_bytes - bytes.min(self.burst_bytes)) * NANOS_PER_SEC
    }

    fn refill(&mut self, now: Instant) {
        // An `Instant` before `at` (none from a monotonic clock) refills nothing.
        let elapsed = now.saturating_duration_since(self.at).as_nanos();
        self.deficit = self
            .deficit
            .saturating_sub(elapsed.saturating_mul(u128::from(self.bytes_per_sec)));
        self.at = self.at.max(now);
    }
}

/// Which transfer a chunk belongs to: its group and the follower it goes to.
pub type ChunkKey = (GroupId, NodeId);

/// The bucket, and the chunks (of any type `T`) waiting for it in arrival order.
#[derive(Debug)]
pub struct SnapshotPacer<T> {
    /// None: unlimited.
    bucket: Option<TokenBucket>,
    /// Keys of held chunks, oldest first; a key whose chunk was dropped is skipped.
    order: VecDeque<ChunkKey>,
    /// Held chunks and their sizes; at most one per key.
    held: HashMap<ChunkKey, (u64, T)>,
    /// Chunks that had to wait (a replacement of a held one is not counted again).
    chunks_delayed: u64,
}

impl<T> SnapshotPacer<T> {
    /// A pacer of `bytes_per_sec` (0: unlimited) with a burst of a tenth of a second of it:
    /// big enough that a fast link is not paced chunk by chunk, small enough that a transfer
    /// starting on an idle host does not go out at wire speed.
    pub fn new(bytes_per_sec: u64, now: Instant) -> SnapshotPacer<T> {
        let bucket = (bytes_per_sec > 0)
            .then(|| TokenBucket::new(bytes_per_sec, (bytes_per_sec / 10).max(1), now));
        SnapshotPacer {
            bucket,
            order: VecDeque::new(),
            held: HashMap::new(),
            chunks_delayed: 0,
        }
    }

    /// A chunk of `bytes` for `key`: given back if it may be sent now, held otherwise. One
    /// held for the same key already is replaced in place, keeping its turn.
    pub fn offer(&mut self, key: ChunkKey, bytes: u64, chunk: T, now: Instant) -> Option<T> {
        if let Some(held) = self.held.get_mut(&key) {
            *held = (bytes, chunk);
            return None;
        }
        let Some(bucket) = &mut self.bucket else {
            return Some(chunk);
        };
        // Behind held chunks a new one waits its turn, tokens or not: FIFO.
        if self.held.is_empty() && bucket.try_take(bytes, now) {
            return Some(chunk);
        }
        self.held.insert(key, (bytes, chunk));
        self.order.push_back(key);
        self.chunks_delayed += 1;
        debug_assert!(self.order.len() >= self.held.len());
        None
    }

    /// The oldest held chunk, with its key, if the bucket now allows it. Held chunks that
    /// `current` says are stale (their sender no longer leads in their term) are dropped on
    /// the way without spending tokens.
    pub fn pop_ready(
        &mut self,
        now: Instant,
        mut current: impl FnMut(ChunkKey, &T) -> bool,
    ) -> Option<(ChunkKey, T)> {
        let bucket = self.bucket.as_mut()?;
        while let Some(key) = self.order.front().copied() {
            let Some((bytes, chunk)) = self.held.get(&key) else {
                self.order.pop_front();
                continue;
            };
            if !current(key, chunk) {
                self.order.pop_front();
                self.held.remove(&key);
                continue;
            }
            if !bucket.try_take(*bytes, now) {
                return None;
            }
            self.order.pop_front();
            let (_, chunk) = self.held.remove(&key).expect("the key is held");
            return Some((key, chunk));
        }
        None
    }

    /// When the oldest held chunk may go (None if nothing is held).
    pub fn next_ready_at(&mut self, now: Instant) -> Option<Instant> {
        let bucket = self.bucket.as_mut()?;
        let bytes = self
            .order
            .iter()
            .find_map(|key| self.held.get(key).map(|(bytes, _)| *bytes))?;
        // Far enough never to overflow: a wait past it is as good as forever for a loop
        // that wakes every tick anyway.
        now.checked_add(bucket.wait_for(bytes, now))
    }

    /// Drops the held chunks of `group` (removed, or no longer led here).
    pub fn drop_group(&mut self, group: GroupId) {
        self.held.retain(|(held_group, _), _| *held_group != group);
        self.order.retain(|(held_group, _)| *held_group != group);
    }

    /// Drops every held chunk: the host sends no more (stopped, or its disk stalled).
    pub fn drop_all(&mut self) {
        self.held.clear();
        self.order.clear();
    }

    /// Chunks held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Chunks that had to wait for the bucket, since the start.
    pub fn chunks_delayed(&self) -> u64 {
        self.chunks_delayed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn a_full_bucket_gives_its_burst_then_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100 * KIB, 10 * KIB, start);
        assert!(bucket.try_take(10 * KIB, start));
        assert!(!bucket.try_take(1, start));
        // 100 KiB/s: 1 KiB per 10 ms.
        assert_eq!(bucket.wait_for(KIB, start), Duration::from_millis(10));
        assert!(!bucket.try_take(KIB, at(start, 9)));
        assert!(bucket.try_take(KIB, at(start, 10)));
        // A long idle time refills only up to the burst.
        assert!(bucket.try_take(10 * KIB, at(start, 10_000)));
        assert!(!bucket.try_take(1, at(start, 10_000)));
    }

    #[test]
    fn a_chunk_larger_than_the_burst_waits_for_a_full_bucket_and_leaves_it_in_debt() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100 * KIB, 10 * KIB, start);
        assert!(bucket.try_take(50 * KIB, start));
        // 50 KiB of debt: full again after 500 ms, and the next large chunk waits for that.
        assert_eq!(bucket.wait_for(50 * KIB, start), Duration::from_millis(500));
        assert_eq!(bucket.wait_for(10 * KIB, start), Duration::from_millis(500));
        // A chunk under the burst needs only its own size in the bucket: 41 KiB repaid.
        assert_eq!(bucket.wait_for(KIB, start), Duration::from_millis(410));
        assert!(!bucket.try_take(50 * KIB, at(start, 499)));
        assert!(bucket.try_take(50 * KIB, at(start, 500)));
    }

    #[test]
    fn the_long_run_rate_holds_for_any_chunk_size() {
        let start = Instant::now();
        for chunk in [100, 700, 4 * KIB, 64 * KIB, 1024 * KIB] {
            let mut bucket = TokenBucket::new(256 * KIB, 25 * KIB, start);
            let mut sent = 0;
            let mut now = start;
            // Sends as soon as the bucket allows, for 10 simulated seconds.
            while now < at(start, 10_000) {
                if bucket.try_take(chunk, now) {
                    sent += chunk;
                } else {
                    now += bucket.wait_for(chunk, now);
                }
            }
            let elapsed = now.duration_since(start).as_secs_f64();
            let allowed = 256.0 * KIB as f64 * elapsed + (25 * KIB + chunk) as f64;
            assert!(sent as f64 <= allowed, "chunk {chunk}: {sent} > {allowed}");
            assert!(
                sent as f64 >= 256.0 * KIB as f64 * elapsed - chunk as f64,
                "chunk {chunk}: {sent} bytes in {elapsed} s"
            );
        }
    }

    #[test]
    fn an_instant_before_the_last_one_refills_nothing() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(KIB, KIB, at(start, 1000));
        assert!(bucket.try_take(KIB, at(start, 1000)));
        assert!(!bucket.try_take(1, start));
        assert!(bucket.try_take(KIB, at(start, 2000)));
    }

    #[test]
    fn unlimited_sends_everything_at_once() {
        let start = Instant::now();
        let mut pacer = SnapshotPacer::new(0, start);
        for group in 0..100 {
            assert_eq!(pacer.offer((group, 2), 1 << 30, group, start), Some(group));
        }
        assert_eq!(pacer.held(), 0);
        assert_eq!(pacer.chunks_delayed(), 0);
        assert_eq!(pacer.next_ready_at(start), None);
    }

    #[test]
    fn chunks_over_budget_are_held_in_order_and_released_as_tokens_allow() {
        let start = Instant::now();
        // 100 KiB/s, a burst of 10 KiB; chunks of 10 KiB, one per 100 ms.
        let mut pacer = SnapshotPacer::new(100 * KIB, start);
        assert_eq!(pacer.offer((1, 2), 10 * KIB, "g1 a", start), Some("g1 a"));
        assert_eq!(pacer.offer((2, 2), 10 * KIB, "g2 a", start), None);
        assert_eq!(pacer.offer((3, 3), 10 * KIB, "g3 a", start), None);
        assert_eq!(pacer.held(), 2);
        assert_eq!(pacer.next_ready_at(start), Some(at(start, 100)));
        assert!(pacer.pop_ready(at(start, 99), |_, _| true).is_none());
        assert_eq!(
            pacer.pop_ready(at(start, 100), |_, _| true),
            Some(((2, 2), "g2 a"))
        );
        assert!(pacer.pop_ready(at(start, 100), |_, _| true).is_none());
        // A new chunk with tokens to spare still waits behind the held one.
        assert_eq!(pacer.offer((1, 2), KIB, "g1 b", at(start, 195)), None);
        assert_eq!(
            pacer.pop_ready(at(start, 200), |_, _| true),
            Some(((3, 3), "g3 a"))
        );
        assert_eq!(pacer.next_ready_at(at(start, 200)), Some(at(start, 210)));
        assert_eq!(
            pacer.pop_ready(at(start, 210), |_, _| true),
            Some(((1, 2), "g1 b"))
        );
        assert_eq!(pacer.held(), 0);
        assert_eq!(pacer.chunks_delayed(), 3);
        assert_eq!(pacer.next_ready_at(at(start, 210)), None);
    }

    #[test]
    fn a_chunk_sent_again_while_held_replaces_its_copy_and_keeps_its_turn() {
        let start = Instant::now();
        let mut pacer = SnapshotPacer::new(100 * KIB, start);
        assert!(pacer.offer((9, 2), 10 * KIB, "spend", start).is_some());
        assert!(pacer.offer((1, 2), 10 * KIB, "g1 first", start).is_none());
        assert!(pacer.offer((2, 2), 10 * KIB, "g2", start).is_none());
        // The core's resend timer ran out: the same transfer's chunk again, or a restart.
        assert!(pacer.offer((1, 2), 10 * KIB, "g1 again", start).is_none());
        assert_eq!(pacer.held(), 2, "one chunk per group and follower");
        assert_eq!(pacer.chunks_delayed(), 2);
        assert_eq!(
            pacer.pop_ready(at(start, 100), |_, _| true),
            Some(((1, 2), "g1 again"))
        );
        assert_eq!(
            pacer.pop_ready(at(start, 200), |_, _| true),
            Some(((2, 2), "g2"))
        );
    }

    #[test]
    fn a_dropped_groups_chunks_go_and_the_others_keep_their_order() {
        let start = Instant::now();
        let mut pacer = SnapshotPacer::new(100 * KIB, start);
        assert!(pacer.offer((9, 2), 10 * KIB, 0, start).is_some());
        for (n, key) in [(1, 2), (2, 2), (1, 3), (3, 2)].into_iter().enumerate() {
            assert!(pacer.offer(key, 10 * KIB, n, start).is_none());
        }
        pacer.drop_group(1);
        assert_eq!(pacer.held(), 2);
        assert_eq!(
            pacer.pop_ready(at(start, 100), |_, _| true),
            Some(((2, 2), 1))
        );
        assert_eq!(
            pacer.pop_ready(at(start, 200), |_, _| true),
            Some(((3, 2), 3))
        );
        assert_eq!(pacer.pop_ready(at(start, 10_000), |_, _| true), None);
        let later = at(start, 10_000);
        assert!(pacer.offer((4, 2), 10 * KIB, 4, later).is_some());
        assert!(pacer.offer((5, 2), 10 * KIB, 5, later).is_none());
        pacer.drop_all();
        assert_eq!(pacer.held(), 0);
        assert_eq!(pacer.next_ready_at(later), None);
    }

    #[test]
    fn stale_chunks_are_dropped_without_spending_tokens() {
        let start = Instant::now();
        let mut pacer = SnapshotPacer::new(100 * KIB, start);
        assert!(pacer.offer((9, 2), 10 * KIB, "spend", start).is_some());
        assert!(pacer.offer((1, 2), 10 * KIB, "stale", start).is_none());
        assert!(pacer.offer((2, 2), 10 * KIB, "current", start).is_none());
        let current = |_: ChunkKey, chunk: &&str| *chunk != "stale";
        assert_eq!(pacer.pop_ready(at(start, 50), current), None);
        assert_eq!(pacer.held(), 1);
        assert_eq!(
            pacer.pop_ready(at(start, 100), current),
            Some(((2, 2), "current"))
        );
    }
}

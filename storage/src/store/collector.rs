//! The collector: a background thread that copies live entries of mostly dead segments forward,
//! so that callers' writes do not.
//!
//! # Why a thread
//!
//! A rewrite round decodes and verifies up to `rewrite_bytes_per_round` of live frames of the
//! victim segment and encodes them again (the CRC covers the new segment's sequence number).
//! Run inside a caller's write, under the store's lock, that copy delays the caller and every
//! writer queued behind it, and its bytes join that caller's fdatasync. Measured on W5 (1,000
//! groups, 100 lagging, `benches/README.md`), the p99 batch latency followed the round size:
//! about 610 us at 64 KiB per round, 541 us at 4 KiB, 486 us with no rewrite at all (but then
//! the disk grew to 4.6 times the live bytes). So the rounds moved here.
//!
//! # A round
//!
//! 1. **Plan, under the lock** ([`LogStore::plan_rewrite`]): the policy's victim (see the
//!    [store documentation](super)) and up to `rewrite_bytes_per_round` of its live entries,
//!    with the victim's map (an `Arc`: sealed segments are never written again, and a segment
//!    is recycled only when no one else holds its map).
//! 2. **Copy, without the lock** ([`super::gc::RewritePlan::copy`]): decode and verify each
//!    frame, encode its rewritten-entry frame for the active segment of the plan.
//! 3. **Commit, under the lock** ([`LogStore::commit_rewrite`]): keep only the copies whose
//!    entry is still at the location copied from (a group may have compacted, truncated,
//!    replaced its entries or been removed meanwhile, or another round moved them), then append
//!    those as one unsynced batch and move them in the index. A roll since the plan means
//!    encoding again for the new segment. Crash safety is that of any rewrite: a
//!    rewritten-entry record only moves an entry, so after a crash either the old or the new
//!    location holds it, both valid; dropping stale copies before they are written is what
//!    keeps a move from placing an old entry over a newer one at recovery.
//!
//! # Yielding to callers
//!
//! The collector runs one round per shared fdatasync: after a round it waits until a caller's
//! sync has made the round durable before it plans the next, so each group commit carries at
//! most one round's bytes and the collector never syncs while callers do. Only when no sync
//! covers its round within [`IDLE_SYNC_WAIT`] (no caller is syncing) does it lead one itself.
//! Freeing is unchanged: a segment left without live entries goes after the sync that made its
//! last entry's move durable, in whoever led that sync.
//!
//! The collector sleeps while the policy asks for nothing; a caller's write that finds a victim
//! wakes it. If it still falls behind (the files exceed the rewrite trigger by more than
//! [`super::gc::BACKSTOP_SEGMENTS`] more segments), callers' writes run a round inline again,
//! as before this thread existed, which bounds the disk whatever the collector's pace.
//!
//! # Errors
//!
//! A failed write or sync poisons the store as in any write, and the collector ends. Damage in
//! the victim (a frame that does not verify) is logged, naming group, file, offset and index,
//! and the segment is skipped by the policy from then on; reads of the damaged entries report
//! it.
//!
//! # Lifetime
//!
//! Started at open (not for a read-only store, nor with `rewrite_bytes_per_round` 0, which
//! leaves rewriting to [`LogStore::gc`]); dropping the store stops and joins it before the
//! segment preparer. It works through its own handle on the store's state (the same lock and
//! condvars; see `Role` in the store module).

use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{LogStore, State};
use crate::error::{Error, Result};

/// Longest the collector waits for a caller's sync to make its round durable before it syncs
/// itself: the time a round stays unsynced on a store no caller syncs.
const IDLE_SYNC_WAIT: Duration = Duration::from_millis(20);

/// Longest the collector sleeps without work before it looks at the policy again. Writers wake
/// it as soon as there is work; this bounds a wake-up that went missing.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// What the collector and the writers share under the store's lock.
#[derive(Debug, Default)]
pub(crate) struct CollectorState {
    /// The collector sleeps until a writer finds work (writers notify only then).
    pub idle: bool,
    /// Set by the store's drop: the collector ends.
    pub stop: bool,
}

/// The running collector thread.
#[derive(Debug)]
pub(crate) struct Collector {
    thread: JoinHandle<()>,
}

impl Collector {
    /// Starts the collector on `handle`, the store's [`super::Role::CollectorHandle`].
    pub(super) fn start(handle: LogStore) -> Result<Collector> {
        let dir = handle.dir.clone();
        let thread = std::thread::Builder::new()
            .name("ketch-store-gc".into())
            .spawn(move || handle.collect())
            .map_err(|e| Error::io("spawn the garbage collector thread for", dir, e))?;
        Ok(Collector { thread })
    }

    /// Tells the thread to stop and waits for it.
    pub(super) fn stop(self, state: &Mutex<State>, wake: &Condvar, synced: &Condvar) {
        state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .collector
            .stop = true;
        wake.notify_all();
        synced.notify_all();
        if self.thread.join().is_err() {
            log::error!("the log store's garbage collector panicked");
        }
    }
}

impl LogStore {
    /// The collector's loop. Bounded: every pass sleeps, waits for a sync, leads one, runs a
    /// round, or ends; it ends once the store is dropped or poisoned.
    fn collect(&self) {
        let budget_bytes = self.store_options.rewrite_bytes_per_round;
        // The collector's last batch, and when it was written.
        let mut pending: Option<(u64, Instant)> = None;
        let mut state = self.lock();
        loop {
            if state.collector.stop || state.poisoned.is_some() {
                return;
            }
            if let Some((ticket, written_at)) = pending {
                if state.synced_through >= ticket {
                    pending = None;
                    continue;
                }
                let waited = written_at.elapsed();
                if waited < IDLE_SYNC_WAIT || state.sync_in_progress {
                    // A caller's sync will carry it.
                    let timeout = IDLE_SYNC_WAIT
                        .saturating_sub(waited)
                        .max(IDLE_SYNC_WAIT / 4);
                    state = self
                        .synced
                        .wait_timeout(state, timeout)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                    continue;
                }
                // No caller is syncing: make the round durable, so that its victim can go.
                if self.wait_durable(state, ticket).is_err() {
                    return;
                }
                state = self.lock();
                continue;
            }
            let Some(plan) = self.plan_rewrite(&mut state, budget_bytes) else {
                state.collector.idle = true;
                state = self
                    .collector_wake
                    .wait_timeout(state, IDLE_RECHECK)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                state.collector.idle = false;
                continue;
            };
            let victim = plan.victim();
            drop(state);
            let copy = plan.copy();
            state = self.lock();
            if state.collector.stop {
                return;
            }
            match copy.and_then(|copy| self.commit_rewrite(&mut state, copy)) {
                Ok(Some((ticket, _bytes))) => pending = Some((ticket, Instant::now())),
                Ok(None) => {}
                Err(error) => self.note_unreadable(&mut state, victim, &error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use super::super::{Role, StoreBatch, StoreOptions};
    use super::*;
    use crate::entry::{Entry, HardState};
    use crate::options::Options;

    /// Every group's `(first, last, hard state, entries)`.
    type Contents = BTreeMap<u64, (u64, u64, HardState, Vec<Entry>)>;

    fn contents(store: &LogStore) -> Contents {
        store
            .groups()
            .into_iter()
            .map(|group| {
                let (first, last) = (store.first_index(group), store.last_index(group));
                let entries = store.entries(group, first..last + 1).unwrap();
                (group, (first, last, store.hard_state(group), entries))
            })
            .collect()
    }

    fn small() -> Options {
        Options {
            segment_size_bytes: 64 << 10,
            prepare_segments_ahead: false,
            ..Options::default()
        }
    }

    /// No collector: the test runs the phases of a round itself.
    fn by_hand() -> StoreOptions {
        StoreOptions {
            rewrite_bytes_per_round: 0,
            ..StoreOptions::default()
        }
    }

    /// The store's files as they are now, reopened elsewhere: what a crash would leave if
    /// everything written so far reached the disk.
    fn crash_image(store: &LogStore) -> Contents {
        let image = tempfile::tempdir().unwrap();
        store.with_files_still(|| {
            for entry in std::fs::read_dir(store.dir()).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), image.path().join(entry.file_name())).unwrap();
            }
        });
        contents(&LogStore::open_with(image.path(), small(), by_hand()).unwrap())
    }

    /// Groups 2, 3 and 4 write a few entries into the first segment, then group 1 fills and
    /// compacts several segments: the first segment is mostly dead, and its few live entries
    /// are a rewrite victim.
    fn pinned_store(dir: &Path, store_options: StoreOptions) -> LogStore {
        let store = LogStore::open_with(dir, small(), store_options).unwrap();
        let mut batch = StoreBatch::new();
        for group in 2..=4u64 {
            let entries = (1..=6)
                .map(|index| Entry::new(index, 1, vec![group as u8; 100]))
                .collect();
            batch.append(group, entries);
            batch.set_hard_state(
                group,
                HardState {
                    term: 1,
                    vote: group,
                    commit: 3,
                },
            );
        }
        store.write(batch, true).unwrap();
        for index in 1..=300u64 {
            let mut batch = StoreBatch::new();
            batch.append(1, vec![Entry::new(index, 1, vec![index as u8; 1000])]);
            store.write(batch, false).unwrap();
            if index > 10 {
                store.compact_prefix(1, index - 10).unwrap();
            }
        }
        store.sync().unwrap();
        store
    }

    fn first_segment(dir: &Path) -> std::path::PathBuf {
        dir.join(super::super::format::store_segment_file_name(1))
    }

    #[test]
    fn stale_copies_are_dropped_and_a_crash_at_any_phase_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = pinned_store(dir.path(), by_hand());
        let plan = store.plan_rewrite(&mut store.lock(), 1 << 20).unwrap();
        assert_eq!(plan.victim(), 1, "the mostly dead first segment");
        let copy = plan.copy().unwrap();
        assert_eq!(copy.entries(), 18, "groups 2, 3 and 4, six entries each");

        // Between the copy and the commit: group 2 compacts past two of its copies, group 3
        // replaces entries 4.. (a Raft conflict), group 4 is removed.
        let mut batch = StoreBatch::new();
        batch.compact_prefix(2, 3);
        batch.append(3, vec![Entry::new(4, 2, b"newer".to_vec())]);
        batch.remove_group(4);
        store.write(batch, false).unwrap();
        let expected = contents(&store);
        assert_eq!(expected[&3].3[3].data, b"newer");
        assert_eq!(
            crash_image(&store),
            expected,
            "a crash between copy and commit"
        );

        let committed = store.commit_rewrite(&mut store.lock(), copy).unwrap();
        let (_, bytes) = committed.expect("some copies are still current");
        let frame_bytes = |group: u64, index: u64| {
            let state = store.lock();
            let (seq, offset) = state.groups[&group].location(index).unwrap();
            (seq, state.segments[&seq].frame_bytes_at(offset))
        };
        // Kept: group 2's entries 3..=6, group 3's 1..=3.
        let mut kept_bytes = 0;
        for (group, indices) in [(2u64, 3..=6u64), (3, 1..=3)] {
            for index in indices {
                let (seq, bytes) = frame_bytes(group, index);
                assert!(seq > 1, "group {group} entry {index} moved forward");
                kept_bytes += bytes;
            }
        }
        assert_eq!(bytes, kept_bytes, "only the current copies were written");
        assert!(
            frame_bytes(3, 4).0 > 1,
            "group 3's newer entry 4 stays where it was written"
        );
        assert_eq!(contents(&store), expected);
        assert_eq!(
            crash_image(&store),
            expected,
            "a crash after the commit, before a sync"
        );

        store.sync().unwrap();
        assert!(
            !first_segment(dir.path()).exists(),
            "the first segment is freed once the moves are durable"
        );
        drop(store);
        let store = LogStore::open_with(dir.path(), small(), by_hand()).unwrap();
        assert_eq!(contents(&store), expected, "after a clean reopen");
        store.verify().unwrap();
    }

    #[test]
    fn a_copy_across_a_roll_is_encoded_for_the_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let store = pinned_store(dir.path(), by_hand());
        let plan = store.plan_rewrite(&mut store.lock(), 1 << 20).unwrap();
        let copy = plan.copy().unwrap();
        let active_before = store.lock().active().seq;
        // Enough of group 1 to roll.
        for index in 301..=400u64 {
            let mut batch = StoreBatch::new();
            batch.append(1, vec![Entry::new(index, 1, vec![7; 1000])]);
            store.write(batch, false).unwrap();
        }
        assert!(store.lock().active().seq > active_before);
        store
            .commit_rewrite(&mut store.lock(), copy)
            .unwrap()
            .unwrap();
        {
            let state = store.lock();
            let active = state.active().seq;
            assert_eq!(state.groups[&2].location(1).unwrap().0, active);
        }
        let expected = contents(&store);
        store.sync().unwrap();
        drop(store);
        let store = LogStore::open_with(dir.path(), small(), by_hand()).unwrap();
        assert_eq!(contents(&store), expected);
        store.verify().unwrap();
    }

    #[test]
    fn the_collector_moves_a_pinned_segments_entries_without_a_caller_copying() {
        let dir = tempfile::tempdir().unwrap();
        // Written with no rewriting at all, so that the first segment stays pinned.
        let expected = contents(&pinned_store(dir.path(), by_hand()));
        assert!(first_segment(dir.path()).exists());
        // Reopened with the collector; a sparse segment is a victim, and the store is never
        // over its trigger, so no caller's write copies anything.
        let store = LogStore::open_with(
            dir.path(),
            small(),
            StoreOptions {
                rewrite_trigger_ratio: 1000.0,
                rewrite_live_fraction_max: 0.5,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        // One write, which only wakes the collector.
        let mut batch = StoreBatch::new();
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: 5,
        };
        batch.set_hard_state(1, hard_state);
        store.write(batch, false).unwrap();
        let mut expected = expected;
        expected.get_mut(&1).unwrap().2 = hard_state;
        // Generous for a loaded machine: the collector needs a few rounds and one sync.
        let deadline = Instant::now() + Duration::from_secs(60);
        while first_segment(dir.path()).exists() {
            assert!(
                Instant::now() < deadline,
                "the collector never freed the first segment: {:?}",
                store.stats()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = store.stats();
        assert!(stats.rewritten_bytes > 0, "{stats:?}");
        assert_eq!(
            stats.rewritten_inline_bytes, 0,
            "no caller copied: {stats:?}"
        );
        assert_eq!(contents(&store), expected);
        drop(store);
        let store = LogStore::open_with(dir.path(), small(), by_hand()).unwrap();
        assert_eq!(contents(&store), expected, "after reopen");
        store.verify().unwrap();
    }

    #[test]
    fn the_collector_stops_when_the_store_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = pinned_store(dir.path(), StoreOptions::default());
        assert!(matches!(store.role, Role::Owner { collector: Some(_) }));
        let state = Arc::downgrade(&store.state);
        drop(store);
        // The collector's handle held the state too: gone, so the thread has ended.
        assert!(
            state.upgrade().is_none(),
            "the collector outlived its store"
        );
        let store = LogStore::open_with(dir.path(), small(), by_hand()).unwrap();
        assert!(matches!(store.role, Role::Owner { collector: None }));
        store.verify().unwrap();
    }
}

//! Group commit: many threads append, concurrent appenders share one fdatasync.
//!
//! Each append is written (under a mutex) and gets a ticket, the count of batches written so far.
//! Then it waits until the *synced-through* watermark reaches its ticket. If no sync is running, the
//! waiter becomes the sync leader: it notes the current write count, releases the mutex, runs one
//! fdatasync, and raises the watermark to that count, which covers every batch written before the
//! sync began, including those of threads that arrived while the previous sync ran. Batches form
//! by themselves: while one fdatasync runs, the next group queues up.
//!
//! One refinement keeps groups whole: a new leader first waits (on a condvar, never spinning)
//! until as many batches are pending as the previous sync covered, for at most half that sync's
//! duration. Otherwise a closed loop of N appenders settles into alternating groups of 1 and
//! N - 1: the first appender released by a sync finds no sync running and syncs alone while the
//! rest are still waking up. With 8 appenders (`cargo bench --bench wal -- group_commit`,
//! alternating runs): 0.235 fdatasyncs per entry and 15.7-16.7 k appends/s without the wait,
//! 0.134-0.141 and 18.2-29.5 k/s with it. Waking the gathering leader only when its group is
//! complete (not at every arrival) then took it to 0.125-0.128 fdatasyncs per entry, and in a
//! standalone 8-thread loop from
//! 19.5-22.1 k/s to 22.5-26.4 k/s, alternating runs. Waking the waiters after releasing the mutex
//! (not under it) added 13-40 % more in alternating criterion runs. A lone appender never waits
//! (its last group was 1).
//!
//! A failed fdatasync poisons the log: the leader and every waiter get an error, and so does every
//! later call. Nothing is retried.

use std::ops::RangeInclusive;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::wal::{Wal, WriteBatch};

/// Longest a sync leader waits for its group to gather (see `GroupCommit::gather`); a stalled
/// disk makes `last_sync` huge, and this keeps the wait short anyway.
const GATHER_MAX: Duration = Duration::from_millis(1);

/// Counters of a [`GroupCommit`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Batches made durable through this handle.
    pub batches: u64,
    /// fdatasync calls those batches needed.
    pub syncs: u64,
}

#[derive(Debug)]
struct Shared {
    wal: Wal,
    /// Batches written through this handle.
    written: u64,
    /// Every batch up to this count is durable.
    synced_through: u64,
    sync_in_progress: bool,
    /// Batches the last sync made durable: the size of the group the next leader gathers.
    last_group: u64,
    /// How long the last fdatasync took: bounds how long a leader gathers.
    last_sync: Duration,
    /// A leader is waiting on `appended` for its group to fill.
    leader_gathering: bool,
    /// Callers waiting on `synced`.
    waiting_for_sync: usize,
    /// Cap on a leader's gathering wait ([`GATHER_MAX`]; tests lengthen it).
    gather_max: Duration,
    stats: GroupCommitStats,
}

/// A thread-safe handle on a [`Wal`] whose appends return once durable, sharing fdatasyncs
/// among concurrent callers.
///
/// ```
/// use std::sync::Arc;
/// use ketch_storage::{GroupCommit, Options, Wal};
/// # let dir = tempfile::tempdir().unwrap();
/// let log = Arc::new(GroupCommit::new(Wal::open(dir.path(), Options::default()).unwrap()));
/// let writers: Vec<_> = (0..4)
///     .map(|n| {
///         let log = Arc::clone(&log);
///         std::thread::spawn(move || log.append(1, &[format!("from {n}").as_bytes()]).unwrap())
///     })
///     .collect();
/// for writer in writers {
///     let indices = writer.join().unwrap(); // durable when append returned
///     assert_eq!(indices.start(), indices.end());
/// }
/// assert_eq!(log.with_wal(|wal| wal.last_index()), 4);
/// ```
#[derive(Debug)]
pub struct GroupCommit {
    shared: Mutex<Shared>,
    synced: Condvar,
    appended: Condvar,
}

impl GroupCommit {
    /// Wraps an open log.
    pub fn new(wal: Wal) -> Self {
        GroupCommit {
            shared: Mutex::new(Shared {
                wal,
                written: 0,
                synced_through: 0,
                sync_in_progress: false,
                last_group: 0,
                last_sync: Duration::ZERO,
                leader_gathering: false,
                waiting_for_sync: 0,
                gather_max: GATHER_MAX,
                stats: GroupCommitStats::default(),
            }),
            synced: Condvar::new(),
            appended: Condvar::new(),
        }
    }

    /// Appends `payloads` as entries of `term` at the next indices and returns once they are
    /// durable. Returns the indices they got.
    pub fn append(&self, term: u64, payloads: &[&[u8]]) -> Result<RangeInclusive<u64>> {
        if payloads.is_empty() {
            return Err(Error::misuse("append of an empty batch"));
        }
        let mut shared = self.lock();
        let first = shared.wal.last_index() + 1;
        let entries: Vec<Entry> = payloads
            .iter()
            .enumerate()
            .map(|(offset, data)| Entry::new(first + offset as u64, term, data.to_vec()))
            .collect();
        shared.wal.append(&entries)?;
        let ticket = self.written(&mut shared);
        self.wait_durable(shared, ticket)?;
        Ok(first..=first + payloads.len() as u64 - 1)
    }

    /// Writes a batch (which must fit the log, as for [`Wal::write`]) and returns once it is
    /// durable.
    pub fn write(&self, batch: &WriteBatch<'_>) -> Result<()> {
        let mut shared = self.lock();
        shared.wal.write(batch)?;
        let ticket = self.written(&mut shared);
        self.wait_durable(shared, ticket)
    }

    /// Runs `f` on the log under the lock: reads, compaction, statistics.
    pub fn with_wal<R>(&self, f: impl FnOnce(&mut Wal) -> R) -> R {
        f(&mut self.lock().wal)
    }

    /// Counters so far.
    pub fn stats(&self) -> GroupCommitStats {
        self.lock().stats
    }

    /// Returns the log.
    pub fn into_inner(self) -> Wal {
        self.shared
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .wal
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave the Wal half-updated in a way that matters:
        // its index changes only after a write succeeded. Keep serving.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a written batch and returns its ticket.
    fn written(&self, shared: &mut Shared) -> u64 {
        shared.written += 1;
        // Wake the gathering leader only once its group is complete: waking it on every arrival
        // costs a context switch per appender for a check that fails, and with 8 appenders on 2
        // cores that alone was a tenth of the throughput.
        if shared.leader_gathering && shared.written - shared.synced_through >= shared.last_group {
            self.appended.notify_one();
        }
        shared.written
    }

    /// Called by a new sync leader: waits until as many batches are pending as the last sync
    /// covered, for at most half that sync's duration (and at most `gather_max`).
    ///
    /// Without this, groups alternate between one batch and all the rest: the first caller
    /// released by a sync appends and, finding no sync running, syncs its batch alone while the
    /// others are still waking up. Waiting for the group the last sync had (its appenders are
    /// on their way back) lets one sync cover them all. A lone appender never waits (its last
    /// group was 1), and when callers go away the group shrinks to what arrived in time, so at
    /// most one sync per drop in load pays the bounded wait.
    fn gather<'a>(&'a self, mut shared: MutexGuard<'a, Shared>) -> MutexGuard<'a, Shared> {
        if shared.last_group <= 1 {
            return shared;
        }
        let deadline = Instant::now() + (shared.last_sync / 2).min(shared.gather_max);
        // Bounded by the deadline.
        while shared.written - shared.synced_through < shared.last_group {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            shared.leader_gathering = true;
            shared = self
                .appended
                .wait_timeout(shared, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            shared.leader_gathering = false;
        }
        shared
    }

    fn wait_durable<'a>(&'a self, mut shared: MutexGuard<'a, Shared>, ticket: u64) -> Result<()> {
        loop {
            if let Some(cause) = &shared.wal.poisoned {
                return Err(Error::Poisoned {
                    cause: cause.clone(),
                });
            }
            if shared.synced_through >= ticket {
                shared.stats.batches += 1;
                return Ok(());
            }
            if shared.sync_in_progress {
                shared.waiting_for_sync += 1;
                shared = self
                    .synced
                    .wait(shared)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                shared.waiting_for_sync -= 1;
                continue;
            }
            // Become the sync leader for everything written so far.
            shared.sync_in_progress = true;
            shared = self.gather(shared);
            let sync_through = shared.written;
            let active = shared.wal.chain.active();
            let file = std::sync::Arc::clone(&active.file);
            let path = active.path.clone();
            let faults = shared.wal.fault_injector();
            drop(shared);
            let started = Instant::now();
            // An injected stall waits here, unlocked, like a slow fdatasync: appenders keep
            // appending and queue for the next sync meanwhile.
            let result = match faults.and_then(|faults| faults.before_sync()) {
                Some(error) => Err(error),
                None => file.sync_data(),
            };
            let took = started.elapsed();
            shared = self.lock();
            shared.last_sync = took;
            shared.sync_in_progress = false;
            shared.stats.syncs += 1;
            shared.wal.stats.syncs += 1;
            let outcome = match result {
                Ok(()) => {
                    debug_assert!(sync_through >= shared.synced_through);
                    debug_assert!(sync_through >= ticket, "the leader's own batch is covered");
                    shared.last_group = sync_through - shared.synced_through;
                    shared.synced_through = sync_through;
                    shared.stats.batches += 1;
                    Ok(())
                }
                Err(e) => {
                    shared.wal.poison(Error::io("fdatasync", path, e));
                    let cause = shared.wal.poisoned.clone().expect("just poisoned");
                    Err(Error::Poisoned { cause })
                }
            };
            // Wake the waiters only after releasing the mutex: each must retake it, and woken
            // while the leader still held it, they queued on it and then woke one another one
            // by one. A lone appender has nobody to wake: skip the futex system call.
            let wake = shared.waiting_for_sync > 0;
            drop(shared);
            if wake {
                self.synced.notify_all();
            }
            return outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn open(dir: &std::path::Path) -> GroupCommit {
        GroupCommit::new(Wal::open(dir, crate::Options::default()).unwrap())
    }

    #[test]
    fn a_leader_gathers_the_group_the_last_sync_had() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(open(dir.path()));
        {
            let mut shared = log.lock();
            shared.last_group = 2;
            shared.last_sync = Duration::from_secs(60);
            // Long enough that only the second append can end the wait in this test's time.
            shared.gather_max = Duration::from_secs(30);
        }
        let started = Instant::now();
        let second = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                log.append(1, &[b"second"]).unwrap()
            })
        };
        let first = log.append(1, &[b"first"]).unwrap();
        let second = second.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gather ran out"
        );
        assert_ne!(first, second);
        let stats = log.stats();
        assert_eq!(stats.batches, 2);
        assert_eq!(stats.syncs, 1, "both appends must share one fdatasync");
        assert_eq!(log.lock().last_group, 2);
    }

    #[test]
    fn a_lone_appender_waits_at_most_once_and_the_group_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        {
            let mut shared = log.lock();
            shared.last_group = 8;
            shared.last_sync = Duration::from_millis(40);
            shared.gather_max = Duration::from_secs(30);
        }
        let started = Instant::now();
        log.append(1, &[b"alone"]).unwrap();
        // Waited for a group that never came, half the last sync's duration (a lower bound: a
        // loaded machine only makes it longer).
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(
            log.lock().last_group,
            1,
            "the group shrinks to what arrived"
        );
        // From now on nothing to gather: each append is its own group.
        for n in 0..5u8 {
            log.append(1, &[&[n]]).unwrap();
            assert_eq!(log.lock().last_group, 1);
        }
        assert_eq!(log.stats().syncs, 6);
        assert_eq!(log.with_wal(|wal| wal.last_index()), 6);
    }
}

//! Group commit: many threads append, concurrent appenders share one fdatasync.
//!
//! Each append is written (under a mutex) and gets a ticket, the count of batches written so far.
//! Then it waits until the *synced-through* watermark reaches its ticket. If no sync is running, the
//! waiter becomes the sync leader: it notes the current write count, releases the mutex, runs one
//! fdatasync, and raises the watermark to that count, which covers every batch written before the
//! sync began, including those of threads that arrived while the previous sync ran. Batches form
//! by themselves: while one fdatasync runs, the next group queues up. There are no timers.
//!
//! A failed fdatasync poisons the log: the leader and every waiter get an error, and so does every
//! later call. Nothing is retried.

use std::ops::RangeInclusive;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::{Entry, Error, Result, Wal, WriteBatch};

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
                stats: GroupCommitStats::default(),
            }),
            synced: Condvar::new(),
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
        shared.written += 1;
        let ticket = shared.written;
        self.wait_durable(shared, ticket)?;
        Ok(first..=first + payloads.len() as u64 - 1)
    }

    /// Writes a batch (which must fit the log, as for [`Wal::write`]) and returns once it is
    /// durable.
    pub fn write(&self, batch: &WriteBatch<'_>) -> Result<()> {
        let mut shared = self.lock();
        shared.wal.write(batch)?;
        shared.written += 1;
        let ticket = shared.written;
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
                shared = self
                    .synced
                    .wait(shared)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            // Become the sync leader for everything written so far.
            shared.sync_in_progress = true;
            let sync_through = shared.written;
            let active = shared.wal.active();
            let file = std::sync::Arc::clone(&active.file);
            let path = active.path.clone();
            let injected = shared.wal.injected_sync_failure();
            drop(shared);
            let result = match injected {
                Some(error) => Err(error),
                None => file.sync_data(),
            };
            shared = self.lock();
            shared.sync_in_progress = false;
            shared.stats.syncs += 1;
            shared.wal.stats.syncs += 1;
            match result {
                Ok(()) => {
                    debug_assert!(sync_through >= shared.synced_through);
                    shared.synced_through = sync_through;
                }
                Err(e) => {
                    shared.wal.poison(Error::io("fdatasync", path, e));
                }
            }
            self.synced.notify_all();
        }
    }
}

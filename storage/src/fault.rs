//! Fault injection for tests: make the log's writes and fsyncs fail, tear a write, or stall
//! every fsync, on demand.
//!
//! A [`FaultInjector`] is passed in [`crate::Options::fault_injector`]; production code leaves it
//! `None` and pays one branch per write and per sync. Each failure fires once, after a chosen
//! number of successful operations, and then disarms itself.
//!
//! A stall ([`FaultInjector::stall_syncs`]) is different: it stays armed until
//! [`FaultInjector::clear`], and every sync meanwhile waits before its real `fdatasync`, as on a
//! disk that has stopped answering. The wait of one sync is bounded by the stall duration, so a
//! test that forgets to clear can be slowed but never hung; `clear` also ends the waits already
//! in progress at once. The data is untouched: a stalled sync delays durability, it loses
//! nothing. [`crate::GroupCommit`] runs the stall outside its mutex, as a real slow fdatasync
//! runs: appends keep queueing behind it, and their waiters wait for the next sync.
//!
//! ```
//! use std::sync::Arc;
//! use ketch_storage::{Entry, Error, FaultInjector, Options, Wal};
//! # let dir = tempfile::tempdir().unwrap();
//! let faults = Arc::new(FaultInjector::default());
//! let options = Options { fault_injector: Some(Arc::clone(&faults)), ..Options::default() };
//! let mut wal = Wal::open(dir.path(), options).unwrap();
//! faults.fail_sync_after(0);
//! wal.append(&[Entry::new(1, 1, b"x".to_vec())]).unwrap();
//! assert!(matches!(wal.sync(), Err(Error::Io { .. })));
//! assert!(matches!(wal.sync(), Err(Error::Poisoned { .. }))); // never retried
//! ```
//!
//! A stalled disk:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use ketch_storage::{Entry, FaultInjector, Options, Wal};
//! # let dir = tempfile::tempdir().unwrap();
//! let faults = Arc::new(FaultInjector::default());
//! let options = Options { fault_injector: Some(Arc::clone(&faults)), ..Options::default() };
//! let mut wal = Wal::open(dir.path(), options).unwrap();
//! faults.stall_syncs(Duration::from_millis(50));
//! wal.append(&[Entry::new(1, 1, b"x".to_vec())]).unwrap();
//! let started = Instant::now();
//! wal.sync().unwrap(); // slow, but it succeeds
//! assert!(started.elapsed() >= Duration::from_millis(50));
//! faults.clear();
//! ```

use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

const DISARMED: i64 = -1;
/// `sync_stall_nanos` when no stall is armed.
const NO_STALL: u64 = 0;

/// Test hooks that make writes and syncs fail, or syncs stall.
#[derive(Debug)]
pub struct FaultInjector {
    syncs_until_failure: AtomicI64,
    writes_until_failure: AtomicI64,
    write_failure_enospc: AtomicUsize,
    /// Bytes of the failing write that still reach the file (a torn write); usize::MAX: none.
    torn_keep_bytes: AtomicUsize,
    /// How long each sync waits before its fdatasync; `NO_STALL`: not at all. Read without the
    /// lock on every sync; changed under `stall_lock` so that a waiting sync sees `clear`.
    sync_stall_nanos: AtomicU64,
    /// Counts `clear` calls: a waiting sync stops when it changes, even if a new stall was
    /// armed before that sync woke up.
    stall_clears: AtomicU64,
    stall_lock: Mutex<()>,
    /// Signalled by `clear`: stalled syncs stop waiting.
    stall_cleared: Condvar,
}

impl Default for FaultInjector {
    fn default() -> Self {
        FaultInjector {
            syncs_until_failure: AtomicI64::new(DISARMED),
            writes_until_failure: AtomicI64::new(DISARMED),
            write_failure_enospc: AtomicUsize::new(0),
            torn_keep_bytes: AtomicUsize::new(usize::MAX),
            sync_stall_nanos: AtomicU64::new(NO_STALL),
            stall_clears: AtomicU64::new(0),
            stall_lock: Mutex::new(()),
            stall_cleared: Condvar::new(),
        }
    }
}

/// Writes `bytes` through `write`, unless an armed write failure fires: then only the bytes it
/// keeps reach `write`, and its error is returned.
pub(crate) fn write(
    faults: Option<&FaultInjector>,
    bytes: &[u8],
    write: impl FnOnce(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    match faults.map_or(WriteFault::None, |faults| faults.before_write(bytes.len())) {
        WriteFault::None => write(bytes),
        WriteFault::Fail { keep, error } => write(&bytes[..keep]).and(Err(error)),
    }
}

/// What the injector decided for one write.
#[derive(Debug)]
enum WriteFault {
    /// Write normally.
    None,
    /// Write the first `keep` bytes, then fail with `error`.
    Fail { keep: usize, error: io::Error },
}

impl FaultInjector {
    /// Longest wait of one stalled sync: a longer stall asked for is cut to this, so a test
    /// that never clears its stall is slow rather than hung.
    pub const SYNC_STALL_MAX: Duration = Duration::from_secs(60);

    /// The sync after `successes` more successful syncs fails with EIO.
    pub fn fail_sync_after(&self, successes: u64) {
        self.syncs_until_failure
            .store(successes as i64, Ordering::SeqCst);
    }

    /// The write after `successes` more successful writes fails with EIO (or ENOSPC when
    /// `disk_full`), after `keep_bytes` of it reached the file (0: none of it).
    ///
    /// The writes counted are those of batches and footers, and the 16 KiB zero-fill writes of a
    /// segment prepared on the caller's thread (at open, or at a roll when no background
    /// preparation is ready), not those of the background preparer, which run at no moment a
    /// test could choose.
    pub fn fail_write_after(&self, successes: u64, keep_bytes: usize, disk_full: bool) {
        self.write_failure_enospc
            .store(disk_full as usize, Ordering::SeqCst);
        self.torn_keep_bytes.store(keep_bytes, Ordering::SeqCst);
        self.writes_until_failure
            .store(successes as i64, Ordering::SeqCst);
    }

    /// Every following sync waits `per_sync` before its real fdatasync (and before any armed
    /// sync failure fires), until [`FaultInjector::clear`]. At most [`Self::SYNC_STALL_MAX`]; a zero
    /// duration disarms the stall. Syncs already waiting keep their own deadline.
    pub fn stall_syncs(&self, per_sync: Duration) {
        let nanos = per_sync.min(Self::SYNC_STALL_MAX).as_nanos() as u64;
        let _guard = self.lock_stall();
        self.sync_stall_nanos.store(nanos, Ordering::SeqCst);
    }

    /// True while a sync stall is armed.
    pub fn syncs_stalled(&self) -> bool {
        self.sync_stall_nanos.load(Ordering::SeqCst) != NO_STALL
    }

    /// Disarms every fault, and releases the syncs a stall holds at once.
    pub fn clear(&self) {
        self.syncs_until_failure.store(DISARMED, Ordering::SeqCst);
        self.writes_until_failure.store(DISARMED, Ordering::SeqCst);
        let _guard = self.lock_stall();
        self.sync_stall_nanos.store(NO_STALL, Ordering::SeqCst);
        self.stall_clears.fetch_add(1, Ordering::SeqCst);
        self.stall_cleared.notify_all();
    }

    fn lock_stall(&self) -> std::sync::MutexGuard<'_, ()> {
        // The lock guards no data, only the hand-off between `clear` and waiting syncs.
        self.stall_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits as an armed stall asks: until its duration has passed or `clear` was called.
    /// Bounded by the duration read at the start: each wake-up either ends the wait or waits
    /// only for the rest of it.
    fn wait_out_stall(&self) {
        if self.sync_stall_nanos.load(Ordering::SeqCst) == NO_STALL {
            return;
        }
        let mut guard = self.lock_stall();
        // Read again under the lock: a `clear` in between must not be missed.
        let nanos = self.sync_stall_nanos.load(Ordering::SeqCst);
        if nanos == NO_STALL {
            return;
        }
        let deadline = Instant::now() + Duration::from_nanos(nanos);
        let clears = self.stall_clears.load(Ordering::SeqCst);
        while self.stall_clears.load(Ordering::SeqCst) == clears {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            guard = self
                .stall_cleared
                .wait_timeout(guard, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn fires(counter: &AtomicI64) -> bool {
        let mut current = counter.load(Ordering::SeqCst);
        loop {
            if current == DISARMED {
                return false;
            }
            let next = if current == 0 { DISARMED } else { current - 1 };
            match counter.compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return current == 0,
                Err(actual) => current = actual,
            }
        }
    }

    /// Called before every fdatasync of a segment: waits out an armed stall, then returns the
    /// injected failure, if one fires.
    pub(crate) fn before_sync(&self) -> Option<io::Error> {
        self.wait_out_stall();
        Self::fires(&self.syncs_until_failure)
            .then(|| io::Error::other("injected fdatasync failure (EIO)"))
    }

    fn before_write(&self, len: usize) -> WriteFault {
        if !Self::fires(&self.writes_until_failure) {
            return WriteFault::None;
        }
        let error = if self.write_failure_enospc.load(Ordering::SeqCst) == 1 {
            io::Error::from_raw_os_error(28) // ENOSPC
        } else {
            io::Error::other("injected write failure (EIO)")
        };
        WriteFault::Fail {
            keep: self.torn_keep_bytes.load(Ordering::SeqCst).min(len),
            error,
        }
    }
}

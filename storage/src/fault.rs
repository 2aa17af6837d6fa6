//! Fault injection for tests: make the log's writes and fsyncs fail, or tear a write, on demand.
//!
//! A [`FaultInjector`] is passed in [`crate::Options::fault_injector`]; production code leaves it
//! `None` and pays one branch per write. Each fault fires once, after a chosen number of
//! successful operations, and then disarms itself.
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

use std::io;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

const DISARMED: i64 = -1;

/// Test hooks that make writes and syncs fail.
#[derive(Debug)]
pub struct FaultInjector {
    syncs_until_failure: AtomicI64,
    writes_until_failure: AtomicI64,
    write_failure_enospc: AtomicUsize,
    /// Bytes of the failing write that still reach the file (a torn write); usize::MAX: none.
    torn_keep_bytes: AtomicUsize,
}

impl Default for FaultInjector {
    fn default() -> Self {
        FaultInjector {
            syncs_until_failure: AtomicI64::new(DISARMED),
            writes_until_failure: AtomicI64::new(DISARMED),
            write_failure_enospc: AtomicUsize::new(0),
            torn_keep_bytes: AtomicUsize::new(usize::MAX),
        }
    }
}

/// What the injector decided for one write.
#[derive(Debug)]
pub(crate) enum WriteFault {
    /// Write normally.
    None,
    /// Write the first `keep` bytes, then fail with `error`.
    Fail { keep: usize, error: io::Error },
}

impl FaultInjector {
    /// The sync after `successes` more successful syncs fails with EIO.
    pub fn fail_sync_after(&self, successes: u64) {
        self.syncs_until_failure
            .store(successes as i64, Ordering::SeqCst);
    }

    /// The write after `successes` more successful writes fails with EIO (or ENOSPC when
    /// `disk_full`), after `keep_bytes` of it reached the file (0: none of it).
    pub fn fail_write_after(&self, successes: u64, keep_bytes: usize, disk_full: bool) {
        self.write_failure_enospc
            .store(disk_full as usize, Ordering::SeqCst);
        self.torn_keep_bytes.store(keep_bytes, Ordering::SeqCst);
        self.writes_until_failure
            .store(successes as i64, Ordering::SeqCst);
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        self.syncs_until_failure.store(DISARMED, Ordering::SeqCst);
        self.writes_until_failure.store(DISARMED, Ordering::SeqCst);
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

    pub(crate) fn before_sync(&self) -> Option<io::Error> {
        Self::fires(&self.syncs_until_failure)
            .then(|| io::Error::other("injected fdatasync failure (EIO)"))
    }

    pub(crate) fn before_write(&self, len: usize) -> WriteFault {
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

//! Options for [`crate::Wal::open`], and what recovery does with damage.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fault::FaultInjector;

/// What recovery does with damage found at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Any damage, even a torn last batch, is an error.
    Strict,
    /// A torn, partly written or zero-filled tail of the last segment is cut off (what a crash
    /// during a write leaves); anything else is an error. The default.
    #[default]
    TolerateTornTail,
    /// Keep the longest valid prefix of the log, whatever was damaged, and report what was dropped
    /// in [`crate::Wal::recovery_report`]. Segment files after the damage are renamed to
    /// `*.wal.salvaged`, never deleted.
    Salvage,
}

/// Options for [`crate::Wal::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Size at which segments roll. Default 64 MiB. At least 64 KiB; at most 1 GiB (offsets in the
    /// footer are 32-bit).
    pub segment_size_bytes: u64,
    /// What to do with damage found at open.
    pub recovery_mode: RecoveryMode,
    /// Prepare (zero-fill and sync) the next segment on a background thread so that rolling over
    /// does not stall appends. Default true.
    pub prepare_segments_ahead: bool,
    /// Open without writing anything: no repair, no new segments; writes are refused. For
    /// inspection tools.
    pub read_only: bool,
    /// How many compacted segment files to keep for reuse instead of deleting them. Reusing a
    /// file means appends overwrite blocks already written (the fast fdatasync path) without the
    /// disk bandwidth of zero-filling a new file, and spares the filesystem the discards of
    /// deleting. Default 2.
    pub spare_segments_max: usize,
    /// Test hook: make writes and fsyncs fail on demand. `None` in production.
    pub fault_injector: Option<Arc<FaultInjector>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size_bytes: 64 << 20,
            recovery_mode: RecoveryMode::default(),
            prepare_segments_ahead: true,
            read_only: false,
            spare_segments_max: 2,
            fault_injector: None,
        }
    }
}

impl Options {
    /// Refuses options the log cannot work with.
    pub(crate) fn validate(&self) -> Result<()> {
        let min = 64 << 10;
        let max = 1 << 30;
        if self.segment_size_bytes < min || self.segment_size_bytes > max {
            return Err(Error::misuse(format!(
                "segment_size_bytes must be between {min} and {max}, got {}",
                self.segment_size_bytes
            )));
        }
        Ok(())
    }
}

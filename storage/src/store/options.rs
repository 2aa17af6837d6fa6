//! The knobs of a [`crate::LogStore`] beyond the [`crate::Options`] it shares with a `Wal`:
//! garbage collection's thresholds and how much one rewrite round may copy.

use crate::error::{Error, Result};

/// Options for [`crate::LogStore::open_with`]. See [the module documentation](crate::store) for
/// the garbage-collection policy they steer.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Rewrite starts once the store's segment files take more than this many times the live
    /// bytes on disk, plus one segment. Default 1.25: with the active segment and one spare,
    /// that keeps a steady many-group workload under twice its live bytes (see the module
    /// documentation).
    pub rewrite_trigger_ratio: f64,
    /// A sealed segment whose live bytes are below this fraction of its size is rewritten even
    /// when the store as a whole is under `rewrite_trigger_ratio`: a few live entries should not
    /// pin a whole file. Default 0.1.
    pub rewrite_live_fraction_max: f64,
    /// At most this many bytes of live entries are copied forward in one round of the
    /// background collector (one round per shared fdatasync; see [the module
    /// documentation](crate::store)), and in one round of the backstop, which callers' writes
    /// run only when the collector has fallen behind. Bounds what one group commit carries for
    /// garbage collection: the copies join a caller's fdatasync. Default 16 KiB. 0 disables
    /// rewriting outside [`crate::LogStore::gc`] (no collector thread is started).
    pub rewrite_bytes_per_round: u64,
    /// A group appears in [`crate::LogStore::compaction_hints`] when its oldest live entry sits
    /// in one of the segments that rewriting would copy. Hints are listed at most this many at a
    /// time. Default 64.
    pub compaction_hints_max: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            rewrite_trigger_ratio: 1.25,
            rewrite_live_fraction_max: 0.1,
            rewrite_bytes_per_round: 16 << 10,
            compaction_hints_max: 64,
        }
    }
}

impl StoreOptions {
    /// Refuses options the store cannot work with.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.rewrite_trigger_ratio.is_finite() && self.rewrite_trigger_ratio >= 1.0) {
            return Err(Error::misuse(format!(
                "rewrite_trigger_ratio must be a finite number of at least 1, got {}",
                self.rewrite_trigger_ratio
            )));
        }
        if !(0.0..=1.0).contains(&self.rewrite_live_fraction_max) {
            return Err(Error::misuse(format!(
                "rewrite_live_fraction_max must be between 0 and 1, got {}",
                self.rewrite_live_fraction_max
            )));
        }
        Ok(())
    }
}

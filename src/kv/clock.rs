//! [`Clock`]: the wall clock as the key-value layer reads it, shifted by a per-node offset.
//!
//! Every place the key-value service reads the time for replicated meaning goes through one
//! [`Clock`]: the leader's stamp on write batches (the log time that key expiry is decided
//! on), the serving node's clock in query batches (reads hide keys past their deadline by it),
//! and `TIME`. The offset exists for tests and clock-skew drills: every node of an in-process
//! test cluster shares one machine clock, and an offset gives one of them a clock of its own
//! (`ServerConfig::clock_offset_ms`, or `KETCH_CLOCK_OFFSET_MS` for `ketch serve`).
//!
//! Session ids keep plain wall time ([`session_id::wall_clock_ms`](super::session_id)): their
//! creation ms only orders sessions for eviction and is compared against log time with the
//! session idle bound (minutes), far above any offset a drill uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in ms since the Unix epoch, plus a fixed offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// The machine's clock shifted by `offset_ms` (negative: behind).
    pub fn with_offset_ms(offset_ms: i64) -> Self {
        Clock { offset_ms }
    }

    /// The offset this clock adds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// Now, in ms since the Unix epoch, offset included (0 if that would be before 1970).
    pub fn now_ms(&self) -> u64 {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        wall_ms.saturating_add(self.offset_ms).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_shifts_the_clock() {
        let plain = Clock::default().now_ms();
        let ahead = Clock::with_offset_ms(10_000).now_ms();
        let behind = Clock::with_offset_ms(-10_000).now_ms();
        assert!(ahead >= plain + 10_000, "{ahead} vs {plain}");
        assert!(ahead < plain + 11_000, "{ahead} vs {plain}");
        assert!(behind + 10_000 >= plain, "{behind} vs {plain}");
        assert_eq!(Clock::with_offset_ms(i64::MIN).now_ms(), 0);
    }
}

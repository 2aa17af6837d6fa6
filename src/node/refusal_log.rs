//! Rate-limited logging of refused peer connections: at most one line per peer address per
//! [`REFUSAL_LOG_INTERVAL`], with the number of lines held back since. The address is the
//! remote IP for an accepted connection (port 0: a refused peer redials from a new port every
//! time), and the peer's configured address for a dialed one.
//!
//! A node with a wrong secret redials every second or so, on two lanes, forever; an attacker
//! may connect far faster. Either would flood the log, hiding the one line an operator needs.
//! Lines held back are reported on the next line for that address, or by
//! [`RefusalLog::sweep`] once the interval has passed quietly. Bounded: at most
//! [`REFUSAL_LOG_ADDRESSES_MAX`] addresses are tracked; past that, further addresses share one
//! entry (so a flood from many addresses still logs one line per interval).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Shortest time between two logged refusals of one address.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Most addresses tracked at once.
pub const REFUSAL_LOG_ADDRESSES_MAX: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    logged_at: Instant,
    suppressed: u64,
}

/// The refusals logged recently, per address; owned by the event loop thread.
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// `None` is the shared entry of addresses beyond the bound.
    entries: HashMap<Option<SocketAddr>, Entry>,
}

impl RefusalLog {
    /// Logs `line` (a warning) unless a line for `addr` was logged within the interval, in
    /// which case it is counted and held back. Returns whether it was logged.
    pub fn refused(&mut self, now: Instant, addr: SocketAddr, line: &str) -> bool {
        let mut key = Some(addr);
        if !self.entries.contains_key(&key) && self.entries.len() >= REFUSAL_LOG_ADDRESSES_MAX {
            self.sweep(now);
            if self.entries.len() >= REFUSAL_LOG_ADDRESSES_MAX {
                key = None;
            }
        }
        match self.entries.get_mut(&key) {
            Some(entry) if now.duration_since(entry.logged_at) < REFUSAL_LOG_INTERVAL => {
                entry.suppressed += 1;
                false
            }
            Some(entry) => {
                let held = std::mem::take(&mut entry.suppressed);
                entry.logged_at = now;
                log::warn!("{line}{}", held_back(held));
                true
            }
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        logged_at: now,
                        suppressed: 0,
                    },
                );
                log::warn!("{line}");
                true
            }
        }
    }

    /// Forgets addresses whose interval has passed, logging how many lines each held back.
    pub fn sweep(&mut self, now: Instant) {
        self.entries.retain(|ip, entry| {
            if now.duration_since(entry.logged_at) < REFUSAL_LOG_INTERVAL {
                return true;
            }
            if entry.suppressed > 0 {
                let who = match ip {
                    Some(addr) if addr.port() == 0 => addr.ip().to_string(),
                    Some(addr) => addr.to_string(),
                    None => "other addresses".to_string(),
                };
                log::warn!(
                    "peer connections from {who}: {} more refused{}",
                    entry.suppressed,
                    " (lines held back by the rate limit)"
                );
            }
            false
        });
    }

    /// Addresses tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.entries.len()
    }
}

fn held_back(count: u64) -> String {
    if count == 0 {
        String::new()
    } else {
        format!(" ({count} more refused since the last line, not logged)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_address_per_interval_and_the_bound_holds() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        let a: SocketAddr = "10.0.0.1:0".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:0".parse().unwrap();
        assert!(log.refused(start, a, "first"));
        assert!(!log.refused(start + Duration::from_secs(1), a, "held"));
        assert!(log.refused(start + Duration::from_secs(1), b, "other address"));
        assert!(log.refused(start + REFUSAL_LOG_INTERVAL, a, "again"));
        log.sweep(start + REFUSAL_LOG_INTERVAL * 3);
        assert_eq!(log.tracked(), 0);
        for i in 0..(REFUSAL_LOG_ADDRESSES_MAX as u32 + 10) {
            log.refused(start, SocketAddr::from((i.to_be_bytes(), 0)), "flood");
        }
        assert_eq!(log.tracked(), REFUSAL_LOG_ADDRESSES_MAX + 1);
        // Past the bound, new addresses share one entry: one line, the rest held back.
        assert!(!log.refused(start, "192.0.2.9:0".parse().unwrap(), "shared"));
    }
}

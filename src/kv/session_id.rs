//! Session ids: the name every write carries so that it is applied once (see `session_table`).
//!
//! A [`SessionId`] is 128 bits: the high 64 are the **creation time** in ms since the Unix
//! epoch (the creator's clock), the low 64 a nonce (the creating node's id in the top 16 bits
//! and 48 random bits, or any random bits for a client-made id). Its text form is 32 lowercase
//! hex digits. The creation time is what lets the session table tell a new session from one
//! it may have dropped.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A client session's id: creation ms (high 64 bits) and a nonce (low 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u128);

impl SessionId {
    /// The id with this creation time and nonce.
    pub fn new(created_ms: u64, nonce: u64) -> Self {
        SessionId((u128::from(created_ms) << 64) | u128::from(nonce))
    }

    /// A fresh id created now by `creator` (a node id, or any 16 bits for a client): the
    /// current wall clock, the creator in the nonce's top 16 bits and 48 random bits.
    pub fn generate(creator: u16) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now_ms = wall_clock_ms();
        // RandomState is seeded from the OS per process; hashing a counter with it gives
        // distinct, unpredictable bits without a random-number dependency.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u64(now_ms);
        let random = hasher.finish() & ((1 << 48) - 1);
        SessionId::new(now_ms, (u64::from(creator) << 48) | random)
    }

    /// When the session was created (the creator's clock), in ms since the Unix epoch.
    pub fn created_ms(self) -> u64 {
        (self.0 >> 64) as u64
    }
}

/// Milliseconds since the Unix epoch by this machine's clock (0 if the clock is before 1970).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Why a session id's text form is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdParseError(pub String);

impl fmt::Display for SessionIdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid session id {:?}: expected 32 hex digits", self.0)
    }
}

impl std::error::Error for SessionIdParseError {}

impl FromStr for SessionId {
    type Err = SessionIdParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SessionIdParseError(text.to_string()));
        }
        u128::from_str_radix(text, 16)
            .map(SessionId)
            .map_err(|_| SessionIdParseError(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_print_and_parse() {
        let id = SessionId::new(1_700_000_000_000, 0xabcd);
        assert_eq!(id.created_ms(), 1_700_000_000_000);
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
        assert!("xyz".parse::<SessionId>().is_err());
        assert!("g".repeat(32).parse::<SessionId>().is_err());
        let (a, b) = (SessionId::generate(3), SessionId::generate(3));
        assert_ne!(a, b);
        assert_eq!((a.0 as u64) >> 48, 3);
    }
}

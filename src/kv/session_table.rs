//! The state machine's session table: exactly-once writes (Raft thesis §6.3).
//!
//! A client that times out cannot tell whether its write was applied; retrying it blindly
//! could apply it twice. So every write carries a **session id** and a **sequence number**,
//! and the state machine remembers, per session, the results of recent sequence numbers: a
//! write whose (session, seq) was already applied gets the saved result back without being
//! applied again, on whichever node it is retried.
//!
//! Sessions are named by a [`SessionId`] (its creation time and a nonce, see `session_id`) and
//! are not registered: the first write of an unknown session creates it, unless the session
//! might have existed and been dropped (below).
//!
//! # What the state machine keeps, and its bounds
//!
//! Per session: the log time of its last write, the client's acknowledgement watermark (every
//! result below it has reached the client, so none of them is kept), and the results of at
//! most [`SessionConfig::results_per_session_max`] sequence numbers at or above the watermark.
//! When more are outstanding, the lowest is forgotten, and a later write with a sequence
//! number at or below a forgotten one is refused (it may have been applied).
//!
//! The table holds at most [`SessionConfig::sessions_max`] sessions; the least recently used
//! is evicted past that. A session idle for more than [`SessionConfig::idle_expiry_ms`] of
//! **log time** expires. Log time is the largest proposer clock seen in the log (see
//! `command`): every replica computes the same value, so expiry is deterministic.
//!
//! # Detecting a dropped session
//!
//! When a session is expired or evicted, the table raises `dropped_created_below` past the
//! session's creation time. A write for an unknown session created before that mark may
//! belong to a dropped session whose write was already applied, so it is refused ("session
//! expired", certainly not applied: the client must start a new session). A session created
//! after the mark cannot have been dropped, so its first write creates it. The cost of the
//! rule: under eviction pressure, a brand-new session whose creator's clock lags the mark is
//! refused too (the client retries with a new id; nothing is applied twice).
//!
//! Worst-case memory: `sessions_max × results_per_session_max` results, each a small RESP
//! reply (writes answer `+OK`, an integer or nil; never a stored value).
//!
//! Every node must use the same [`SessionConfig`]: it shapes what the state machine does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};

use super::session_id::SessionId;

/// Session table bounds and expiry; must be identical on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session with no write for this long (log time) expires.
    pub idle_expiry_ms: u64,
    /// Most sessions kept; the least recently used is evicted beyond.
    pub sessions_max: usize,
    /// Most unacknowledged results kept per session.
    pub results_per_session_max: usize,
}

impl Default for SessionConfig {
    /// One hour idle expiry, 16 384 sessions, 1024 results each.
    fn default() -> Self {
        SessionConfig {
            idle_expiry_ms: 3_600_000,
            sessions_max: 16_384,
            results_per_session_max: 1024,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Session {
    last_active_ms: u64,
    /// The client has every result below this sequence number.
    acked_below: u64,
    /// Results of sequence numbers at or below this were dropped for room (0: none).
    forgotten_through: u64,
    /// Results of applied writes at or above `acked_below`, by sequence number.
    results: BTreeMap<u64, Vec<u8>>,
}

/// What to do with a write, as decided by its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Apply it, then [`SessionTable::record`] its result.
    Apply,
    /// Already applied: answer with this saved result (a RESP reply).
    Duplicate(Vec<u8>),
    /// Do not apply it; answer with this error text (without `-` and `\r\n`).
    Refuse(String),
}

/// The error text for a write whose session is unknown and may have been dropped.
pub const SESSION_EXPIRED_TEXT: &str =
    "ERR session expired or evicted; the write was not applied: use a new session";

/// The sessions of a state machine. Deterministic: same calls, same state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTable {
    config: SessionConfig,
    /// Largest proposer clock seen in the log.
    log_time_ms: u64,
    /// Unknown sessions created before this may have been dropped.
    dropped_created_below: u64,
    sessions: HashMap<SessionId, Session>,
    /// (last active ms, id) of every session: the first is the least recently used.
    by_activity: BTreeSet<(u64, SessionId)>,
}

impl SessionTable {
    /// An empty table.
    pub fn new(config: SessionConfig) -> Self {
        assert!(config.sessions_max >= 1, "sessions_max must be at least 1");
        assert!(
            config.results_per_session_max >= 1,
            "results_per_session_max must be at least 1"
        );
        SessionTable {
            config,
            log_time_ms: 0,
            dropped_created_below: 0,
            sessions: HashMap::new(),
            by_activity: BTreeSet::new(),
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True if no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The log time: the largest proposer clock applied so far.
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    /// True if `session` is held.
    pub fn contains(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// Moves log time forward to `proposer_ms` (never back) and expires idle sessions.
    pub fn advance_log_time(&mut self, proposer_ms: u64) {
        self.log_time_ms = self.log_time_ms.max(proposer_ms);
        while let Some(&(last_active_ms, id)) = self.by_activity.first() {
            if last_active_ms.saturating_add(self.config.idle_expiry_ms) >= self.log_time_ms {
                break;
            }
            self.drop_session(id);
        }
    }

    fn drop_session(&mut self, id: SessionId) {
        let session = self
            .sessions
            .remove(&id)
            .expect("every indexed session is held");
        let removed = self.by_activity.remove(&(session.last_active_ms, id));
        assert!(removed, "a held session must be indexed");
        self.dropped_created_below = self
            .dropped_created_below
            .max(id.created_ms().saturating_add(1));
    }

    /// Decides what to do with write `seq` of `session`, creating the session if it is new,
    /// taking the client's watermark into account, and marking the session active.
    pub fn admit(&mut self, id: SessionId, seq: u64, acked_below: u64) -> Admission {
        debug_assert!(seq >= 1);
        let now_ms = self.log_time_ms;
        if let Some(session) = self.sessions.get(&id) {
            let moved = self.by_activity.remove(&(session.last_active_ms, id));
            debug_assert!(moved);
        } else if id.created_ms() < self.dropped_created_below {
            return Admission::Refuse(SESSION_EXPIRED_TEXT.to_string());
        }
        let session = self.sessions.entry(id).or_default();
        session.last_active_ms = now_ms;
        self.by_activity.insert((now_ms, id));
        // The watermark only moves forward; results below it will never be asked for again.
        if acked_below > session.acked_below {
            session.acked_below = acked_below;
            session.results = session.results.split_off(&acked_below);
        }
        if let Some(result) = session.results.get(&seq) {
            return Admission::Duplicate(result.clone());
        }
        if seq < session.acked_below {
            return Admission::Refuse(
                "ERR sequence number below the session's acknowledged watermark; not applied"
                    .to_string(),
            );
        }
        if seq <= session.forgotten_through {
            return Admission::Refuse(format!(
                "ERR result of sequence number {seq} no longer held (more than {} writes \
                 unacknowledged in the session); the write may have been applied",
                self.config.results_per_session_max
            ));
        }
        Admission::Apply
    }

    /// Records the result of write `seq` of `session`, just applied after
    /// [`SessionTable::admit`] said [`Admission::Apply`]; enforces the bounds.
    pub fn record(&mut self, id: SessionId, seq: u64, result: &[u8]) {
        let limit = self.config.results_per_session_max;
        let session = self
            .sessions
            .get_mut(&id)
            .expect("record follows a successful admit");
        session.results.insert(seq, result.to_vec());
        while session.results.len() > limit {
            let (oldest, _) = session.results.pop_first().expect("non-empty");
            session.forgotten_through = session.forgotten_through.max(oldest);
        }
        while self.sessions.len() > self.config.sessions_max {
            let &(_, lru) = self.by_activity.first().expect("non-empty");
            self.drop_session(lru);
        }
    }

    /// Writes the table (see [`SessionTable::read_from`] for the format).
    ///
    /// Format (little endian): log_time_ms u64, dropped_created_below u64, session count u64,
    /// then per session (in id order, so equal tables write equal bytes): id u128,
    /// last_active_ms u64, acked_below u64, forgotten_through u64, result count u32, then
    /// per result: seq u64, length u32, bytes.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.log_time_ms.to_le_bytes())?;
        out.write_all(&self.dropped_created_below.to_le_bytes())?;
        out.write_all(&(self.sessions.len() as u64).to_le_bytes())?;
        let mut ids: Vec<&SessionId> = self.sessions.keys().collect();
        ids.sort();
        for id in ids {
            let session = &self.sessions[id];
            out.write_all(&id.0.to_le_bytes())?;
            out.write_all(&session.last_active_ms.to_le_bytes())?;
            out.write_all(&session.acked_below.to_le_bytes())?;
            out.write_all(&session.forgotten_through.to_le_bytes())?;
            out.write_all(&(session.results.len() as u32).to_le_bytes())?;
            for (seq, result) in &session.results {
                out.write_all(&seq.to_le_bytes())?;
                out.write_all(&(result.len() as u32).to_le_bytes())?;
                out.write_all(result)?;
            }
        }
        Ok(())
    }

    /// Reads a table written by [`SessionTable::write_to`]; the configuration is this
    /// node's. Rejects counts beyond the configured bounds (a corrupt or foreign snapshot).
    pub fn read_from(config: SessionConfig, input: &mut dyn Read) -> io::Result<Self> {
        let mut table = SessionTable::new(config);
        table.log_time_ms = read_u64(input)?;
        table.dropped_created_below = read_u64(input)?;
        let count = read_u64(input)?;
        if count > config.sessions_max as u64 {
            return Err(invalid(format!(
                "snapshot holds {count} sessions, above sessions_max {}",
                config.sessions_max
            )));
        }
        for _ in 0..count {
            let id = SessionId(read_u128(input)?);
            let mut session = Session {
                last_active_ms: read_u64(input)?,
                acked_below: read_u64(input)?,
                forgotten_through: read_u64(input)?,
                results: BTreeMap::new(),
            };
            let results = read_u32(input)?;
            if results as usize > config.results_per_session_max {
                return Err(invalid(format!(
                    "snapshot session {id} holds {results} results, above the limit {}",
                    config.results_per_session_max
                )));
            }
            for _ in 0..results {
                let seq = read_u64(input)?;
                let len = read_u32(input)?;
                session
                    .results
                    .insert(seq, read_exact_vec(input, len as usize)?);
            }
            table.by_activity.insert((session.last_active_ms, id));
            if table.sessions.insert(id, session).is_some() {
                return Err(invalid(format!("snapshot holds session {id} twice")));
            }
        }
        Ok(table)
    }
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

pub(crate) fn read_u32(input: &mut dyn Read) -> io::Result<u32> {
    let mut bytes = [0; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

pub(crate) fn read_u64(input: &mut dyn Read) -> io::Result<u64> {
    let mut bytes = [0; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

fn read_u128(input: &mut dyn Read) -> io::Result<u128> {
    let mut bytes = [0; 16];
    input.read_exact(&mut bytes)?;
    Ok(u128::from_le_bytes(bytes))
}

/// Reads `len` bytes without trusting `len` for the allocation: a corrupt length fails at
/// the end of the input instead of allocating gigabytes first.
pub(crate) fn read_exact_vec(input: &mut dyn Read, len: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len.min(1 << 20));
    let read = input.take(len as u64).read_to_end(&mut bytes)?;
    if read != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("expected {len} bytes, got {read}"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            idle_expiry_ms: 1000,
            sessions_max: 3,
            results_per_session_max: 4,
        }
    }

    fn apply(table: &mut SessionTable, id: SessionId, seq: u64, acked: u64) -> Admission {
        let admission = table.admit(id, seq, acked);
        if admission == Admission::Apply {
            table.record(id, seq, format!(":{seq}\r\n").as_bytes());
        }
        admission
    }

    #[test]
    fn duplicates_get_the_saved_result() {
        let mut table = SessionTable::new(config());
        let id = SessionId::new(10, 1);
        table.advance_log_time(10);
        assert_eq!(apply(&mut table, id, 1, 0), Admission::Apply);
        assert_eq!(apply(&mut table, id, 2, 0), Admission::Apply);
        assert_eq!(
            apply(&mut table, id, 1, 0),
            Admission::Duplicate(b":1\r\n".to_vec())
        );
        // Acknowledged below 2: seq 1's result is dropped, and a retry of it is refused.
        assert_eq!(
            apply(&mut table, id, 2, 2),
            Admission::Duplicate(b":2\r\n".to_vec())
        );
        assert!(
            matches!(apply(&mut table, id, 1, 2), Admission::Refuse(t) if t.contains("watermark"))
        );
    }

    #[test]
    fn the_window_is_bounded_and_forgotten_results_are_refused() {
        let mut table = SessionTable::new(config());
        let id = SessionId::new(10, 1);
        for seq in 1..=6 {
            assert_eq!(apply(&mut table, id, seq, 0), Admission::Apply);
        }
        assert_eq!(table.sessions[&id].results.len(), 4);
        assert!(
            matches!(apply(&mut table, id, 2, 0), Admission::Refuse(t) if t.contains("may have been applied"))
        );
        assert_eq!(
            apply(&mut table, id, 3, 0),
            Admission::Duplicate(b":3\r\n".to_vec())
        );
    }

    #[test]
    fn idle_sessions_expire_in_log_time_and_are_refused_afterwards() {
        let mut table = SessionTable::new(config());
        let old = SessionId::new(100, 1);
        table.advance_log_time(100);
        assert_eq!(apply(&mut table, old, 1, 0), Admission::Apply);
        table.advance_log_time(1100);
        assert!(table.contains(old), "idle exactly the expiry: kept");
        table.advance_log_time(1101);
        assert!(!table.contains(old));
        // A retry of the old session's write must not apply again.
        assert_eq!(
            apply(&mut table, old, 1, 0),
            Admission::Refuse(SESSION_EXPIRED_TEXT.to_string())
        );
        // A session created after the dropped one's creation is new, and accepted.
        assert_eq!(
            apply(&mut table, SessionId::new(101, 2), 1, 0),
            Admission::Apply
        );
        // Log time never goes back.
        table.advance_log_time(5);
        assert_eq!(table.log_time_ms(), 1101);
    }

    #[test]
    fn the_table_is_bounded_by_evicting_the_least_recently_used() {
        let mut table = SessionTable::new(config());
        let ids: Vec<SessionId> = (0..4).map(|i| SessionId::new(10 + i, i)).collect();
        for (t, id) in ids.iter().enumerate() {
            table.advance_log_time(20 + t as u64);
            assert_eq!(apply(&mut table, *id, 1, 0), Admission::Apply);
            if t == 2 {
                // Touch the first so the second is the least recently used.
                table.advance_log_time(23);
                assert_eq!(apply(&mut table, ids[0], 2, 0), Admission::Apply);
            }
        }
        assert_eq!(table.len(), 3);
        assert!(table.contains(ids[0]) && !table.contains(ids[1]));
        assert_eq!(
            apply(&mut table, ids[1], 1, 0),
            Admission::Refuse(SESSION_EXPIRED_TEXT.to_string())
        );
    }

    #[test]
    fn snapshot_round_trip_preserves_everything() {
        let mut table = SessionTable::new(config());
        table.advance_log_time(50);
        for i in 0..3 {
            let id = SessionId::new(40 + i, i);
            for seq in 1..=3 {
                apply(&mut table, id, seq, 1);
            }
        }
        let mut bytes = Vec::new();
        table.write_to(&mut bytes).unwrap();
        let restored = SessionTable::read_from(config(), &mut &bytes[..]).unwrap();
        assert_eq!(restored, table);
        // Every truncation fails cleanly.
        for cut in 0..bytes.len() {
            assert!(SessionTable::read_from(config(), &mut &bytes[..cut]).is_err());
        }
        // A smaller table bound refuses the snapshot instead of silently dropping sessions.
        let small = SessionConfig {
            sessions_max: 2,
            ..config()
        };
        assert!(SessionTable::read_from(small, &mut &bytes[..]).is_err());
    }
}

//! [`KvStateMachine`]: binary-safe keys to values (strings and hashes), with deadlines, revisions and
//! client sessions.
//!
//! Commands are write batches and queries are query batches (`command`); every result is a
//! list of RESP2 replies, byte for byte what the client receives, with Redis 7's wording for
//! errors. The state machine is the one place that says what a command means: a write batch
//! carries command words, and [`commands`] maps each name to its handler.
//!
//! # Time
//!
//! Nothing here reads a clock. Log time is the largest leader ms seen in the log (the
//! leader stamps every batch, see `command`); expiry at apply is decided on log time only,
//! so every replica computes the same state from the same log. A query carries the serving
//! node's clock, and reads use the larger of it and log time, so a read on the leader never
//! returns a key past its deadline by the leader's clock, even before a later entry moves log
//! time past it.
//!
//! # Clock assumptions
//!
//! - A deadline is an absolute time in ms. A relative TTL (`EX`, `EXPIRE`) is added to log time
//!   when its entry applies, so it counts from the leader's clock when the leader logged it.
//! - Log time never goes back: a leader's stamps never decrease (a clock stepped back on the
//!   leader stalls them instead), and a new leader whose clock is behind the old one's cannot
//!   undo time already in the log. A key therefore never comes back after it expired.
//! - A new leader whose clock is ahead of the old one's by `d` ms expires keys up to `d` ms
//!   early by the old leader's clock. A read served through a follower uses that follower's
//!   clock with log time, so a follower whose clock is behind the leader's by `d` ms may
//!   return a key up to `d` ms after its deadline by the leader's clock. Ketch, like Redis
//!   after a failover, assumes the nodes' clocks agree (NTP) to well below the TTLs in use.
//! - Tests shift one node's clock with `ServerConfig::clock_offset_ms`
//!   (`KETCH_CLOCK_OFFSET_MS` for `ketch serve`).
//!
//! # Active expiry
//!
//! Every applied write batch removes up to [`RECLAIM_PER_BATCH`] keys past their deadline,
//! and a reclaim item (proposed by the leader's service, see `reclaim`) removes up to its
//! bound and answers how many keys with a deadline are left.
//!
//! # Version 1 entries
//!
//! A version 1 write batch (an old log) is mapped to the command words its operations stand
//! for and run by the same handlers, with its proposer ms as the stamp. What it changes gets
//! revision [`V1_REVISION`], not the entry's index, so that replicas that restored a version 1
//! snapshot (which has no revisions) and replicas that applied the entries agree.
//!
//! # Parts
//!
//! - [`keyspace`]: keys in a replica-independent order, deadlines, revisions, reclaim, the
//!   memory cost per key;
//! - [`value`]: the value types and the one type check (`WRONGTYPE`);
//! - [`commands`]: the command table (names, arity, read or write);
//! - [`strings`], [`hashes`], [`keys`], [`expiry`]: the commands;
//! - [`snapshot`]: the snapshot formats (version 2, and version 1 read).

pub mod commands;
pub mod expiry;
pub mod hashes;
pub mod keys;
pub mod keyspace;
pub mod snapshot;
pub mod stored_key;
pub mod strings;
pub mod value;

use std::io::{self, BufReader, BufWriter, Read, Write};

use self::commands::{run_read, run_write, Exec};
use self::keyspace::Keyspace;
use super::command::{
    decode_write_batch, push_result, AnyWriteBatch, Operation, Query, QueryBatch,
};
use super::resp::{write_array_header, write_error, write_integer};
use super::session_id::SessionId;
use super::session_table::{Admission, SessionConfig, SessionTable};
use crate::node::StateMachine;

/// Redis' reply to INCR on a value that is not a 64-bit integer.
pub const NOT_AN_INTEGER_TEXT: &str = "ERR value is not an integer or out of range";
/// Redis' reply to an INCRBY that would overflow.
pub const OVERFLOW_TEXT: &str = "ERR increment or decrement would overflow";

/// Default largest value (64 MiB): see [`KvStateMachine::with_max_value_bytes`].
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 << 20;
/// The highest value limit a node accepts (the peer frame format bounds an entry below
/// 256 MiB).
pub const MAX_VALUE_BYTES_MAX: usize = 128 << 20;
/// Expired keys every applied write batch removes, at most.
pub const RECLAIM_PER_BATCH: usize = 32;
/// The revision of what a version 1 entry changes (see the module docs).
pub const V1_REVISION: u64 = 1;

/// The error reply, without `-` and `\r\n`, to a write whose value would exceed `limit`
/// bytes: a `-ERR`, since the same command can never succeed.
pub fn value_too_large_text(bytes: usize, limit: usize) -> String {
    format!("ERR value too large ({bytes} bytes; limit {limit})")
}

/// The key-value state machine.
#[derive(Debug)]
pub struct KvStateMachine {
    keys: Keyspace,
    sessions: SessionTable,
    session_config: SessionConfig,
    max_value_bytes: usize,
    /// Scratch buffer for one reply, reused across writes.
    reply: Vec<u8>,
}

impl KvStateMachine {
    /// An empty store with these session bounds (identical on every node).
    pub fn new(session_config: SessionConfig) -> Self {
        KvStateMachine {
            keys: Keyspace::default(),
            sessions: SessionTable::new(session_config),
            session_config,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            reply: Vec::with_capacity(64),
        }
    }

    /// Refuses a write whose resulting value would exceed `max_value_bytes` (default
    /// [`DEFAULT_MAX_VALUE_BYTES`]) — an `APPEND` or `SETRANGE` growing a value — with
    /// [`value_too_large_text`], leaving the value as it was. Only the applied state knows the
    /// result's size, so the refusal happens here, alike on every replica: like the session
    /// bounds, it must be the same on every node. (Values given whole, as in `SET`, are
    /// checked by the server before they are proposed.)
    pub fn with_max_value_bytes(mut self, max_value_bytes: usize) -> Self {
        self.max_value_bytes = max_value_bytes;
        self
    }

    /// Number of stored keys (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys (for tests and inspection).
    pub fn keyspace(&self) -> &Keyspace {
        &self.keys
    }

    /// The session table (for tests and inspection).
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// Moves the keys for which `moves` holds into a new state machine, which also gets a
    /// copy of the session table (so that a write retried after the split is still answered
    /// once, by either side) and the same bounds. What a range split hands its new group.
    pub fn split_off(&mut self, moves: impl Fn(&[u8]) -> bool) -> KvStateMachine {
        KvStateMachine {
            keys: self.keys.split_off(moves),
            sessions: self.sessions.clone(),
            session_config: self.session_config,
            max_value_bytes: self.max_value_bytes,
            reply: Vec::with_capacity(64),
        }
    }

    /// The log time: the largest leader stamp applied, ms.
    pub fn log_time_ms(&self) -> u64 {
        self.sessions.log_time_ms()
    }

    /// Runs one item (already admitted), its reply in `self.reply`.
    fn execute(&mut self, revision: u64, operation: &Operation<'_>) {
        let now_ms = self.sessions.log_time_ms();
        let mut exec = Exec {
            now_ms,
            clock_ms: now_ms,
            index: revision,
            max_value_bytes: self.max_value_bytes,
            out: &mut self.reply,
        };
        match operation {
            Operation::Command(argv) => run_write(&mut self.keys, &mut exec, argv),
            Operation::Transaction { watches, commands } => {
                let changed = watches
                    .iter()
                    .any(|(key, seen)| self.keys.revision(key, now_ms) != *seen);
                if changed {
                    exec.out.extend_from_slice(b"*-1\r\n");
                    return;
                }
                write_array_header(exec.out, commands.len());
                for argv in commands {
                    run_write(&mut self.keys, &mut exec, argv);
                }
            }
            Operation::Reclaim { keys_max } => {
                self.keys.reclaim(now_ms, *keys_max as usize);
                write_integer(exec.out, self.keys.volatile_len() as i64);
            }
        }
    }

    /// Admits, runs and records one item, appending its result to `results`.
    fn apply_item(
        &mut self,
        revision: u64,
        session: SessionId,
        seq: u64,
        acked_below: u64,
        operation: &Operation<'_>,
        results: &mut Vec<u8>,
    ) {
        self.reply.clear();
        if matches!(operation, Operation::Reclaim { .. }) {
            // No session: nothing to deduplicate (a replayed reclaim is harmless).
            self.execute(revision, operation);
        } else {
            match self.sessions.admit(session, seq, acked_below) {
                Admission::Apply => {
                    self.execute(revision, operation);
                    self.sessions.record(session, seq, &self.reply);
                }
                Admission::Duplicate(saved) => self.reply.extend_from_slice(&saved),
                Admission::Refuse(text) => write_error(&mut self.reply, &text),
            }
        }
        push_result(results, &self.reply);
    }
}

/// Parses a value as Redis does for INCR: an optional `-`, decimal digits, no leading zeros
/// or `+`, no spaces, within i64.
pub fn parse_redis_integer(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || text == "-0"
    {
        return None;
    }
    text.parse().ok()
}

impl StateMachine for KvStateMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let batch = match decode_write_batch(command) {
            Ok(batch) => batch,
            Err(e) => {
                // Every replica decodes the same bytes the same way, so skipping stays
                // deterministic; the proposer gets an empty result and reports it.
                log::error!("kv: log entry {index} is not a write batch: {e}");
                return Vec::new();
            }
        };
        let mut results;
        match batch {
            AnyWriteBatch::V1(batch) => {
                self.sessions.advance_log_time(batch.proposer_ms);
                results = Vec::with_capacity(batch.writes.len() * 12);
                for write in &batch.writes {
                    let argv = write.operation.to_argv();
                    let argv: Vec<&[u8]> = argv.iter().map(|w| &w[..]).collect();
                    self.apply_item(
                        V1_REVISION,
                        write.session,
                        write.seq,
                        write.acked_below,
                        &Operation::Command(argv),
                        &mut results,
                    );
                }
            }
            AnyWriteBatch::V2(batch) => {
                self.sessions.advance_log_time(batch.leader_ms);
                results = Vec::with_capacity(batch.writes.len() * 12);
                for write in &batch.writes {
                    self.apply_item(
                        index,
                        write.session,
                        write.seq,
                        write.acked_below,
                        &write.operation,
                        &mut results,
                    );
                }
            }
        }
        self.keys
            .reclaim(self.sessions.log_time_ms(), RECLAIM_PER_BATCH);
        results
    }

    fn query(&mut self, query: &[u8]) -> Vec<u8> {
        let batch = match QueryBatch::decode(query) {
            Ok(batch) => batch,
            Err(e) => {
                log::error!("kv: {e}");
                return Vec::new();
            }
        };
        let now_ms = self.sessions.log_time_ms().max(batch.clock_ms);
        let mut results = Vec::with_capacity(batch.queries.len() * 16);
        let mut reply = Vec::with_capacity(64);
        for query in &batch.queries {
            reply.clear();
            match query {
                Query::Command(argv) => {
                    let mut exec = Exec {
                        now_ms,
                        clock_ms: batch.clock_ms,
                        index: 0,
                        max_value_bytes: self.max_value_bytes,
                        out: &mut reply,
                    };
                    run_read(&self.keys, &mut exec, argv);
                }
                Query::Revisions(keys) => {
                    write_array_header(&mut reply, keys.len());
                    for key in keys {
                        write_integer(&mut reply, self.keys.revision(key, now_ms) as i64);
                    }
                }
                Query::KeyspaceCounts => {
                    write_array_header(&mut reply, 2);
                    write_integer(&mut reply, self.keys.len() as i64);
                    write_integer(&mut reply, self.keys.volatile_len() as i64);
                }
            }
            push_result(&mut results, &reply);
        }
        results
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(256 << 10, out);
        snapshot::write_v2(&self.sessions, &self.keys, &mut out)?;
        out.flush()
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut input = BufReader::with_capacity(256 << 10, input);
        let (sessions, keys) = snapshot::read(self.session_config, &mut input)?;
        if cfg!(debug_assertions) {
            keys.check_invariants();
        }
        self.keys = keys;
        self.sessions = sessions;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

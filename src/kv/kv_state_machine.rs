//! [`KvStateMachine`]: binary-safe string keys to byte values, with client sessions.
//!
//! Commands are write batches and queries are query batches (`command`); every result is a
//! list of RESP2 replies, byte for byte what the client receives, with Redis' wording for
//! errors (`ERR value is not an integer or out of range`). The proposer's clock in a batch only
//! moves the sessions' log time; nothing here reads a clock, so every replica computes the
//! same state from the same log.
//!
//! # Snapshot format, version 1
//!
//! Written straight to the runtime's snapshot stream (which compresses and checksums it):
//!
//! | size | field                                                           |
//! |------|-----------------------------------------------------------------|
//! | 8    | magic `KETCHKV1`                                                |
//! |      | the session table (`SessionTable::write_to`)                    |
//! | 8    | key count (u64)                                                 |
//! |      | per key: key length u32, key, value length u32, value           |
//! | 8    | magic `KVEND001`: a snapshot cut short is detected              |

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};

use super::command::{decode_queries, push_result, Operation, Query, SetCondition, WriteBatch};
use super::resp::{write_array_header, write_bulk, write_error, write_integer, write_nil};
use super::session_table::{
    read_exact_vec, read_u32, read_u64, Admission, SessionConfig, SessionTable,
};
use crate::node::StateMachine;

const SNAPSHOT_MAGIC: &[u8; 8] = b"KETCHKV1";
const SNAPSHOT_END_MAGIC: &[u8; 8] = b"KVEND001";

/// Redis' reply to INCR on a value that is not a 64-bit integer.
pub const NOT_AN_INTEGER_TEXT: &str = "ERR value is not an integer or out of range";
/// Redis' reply to an INCRBY that would overflow.
pub const OVERFLOW_TEXT: &str = "ERR increment or decrement would overflow";

/// Default largest value (64 MiB): see [`KvStateMachine::with_max_value_bytes`].
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 << 20;
/// The highest value limit a node accepts (the peer frame format bounds an entry below
/// 256 MiB).
pub const MAX_VALUE_BYTES_MAX: usize = 128 << 20;

/// The error reply, without `-` and `\r\n`, to a write whose value would exceed `limit`
/// bytes: a `-ERR`, since the same command can never succeed.
pub fn value_too_large_text(bytes: usize, limit: usize) -> String {
    format!("ERR value too large ({bytes} bytes; limit {limit})")
}

/// The key-value state machine.
#[derive(Debug)]
pub struct KvStateMachine {
    data: HashMap<Vec<u8>, Vec<u8>>,
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
            data: HashMap::new(),
            sessions: SessionTable::new(session_config),
            session_config,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            reply: Vec::with_capacity(64),
        }
    }

    /// Refuses an `APPEND` whose result would exceed `max_value_bytes` (default
    /// [`DEFAULT_MAX_VALUE_BYTES`]), with [`value_too_large_text`], leaving the value as it
    /// was. Only the applied state knows the result's size, so the refusal happens here, alike
    /// on every replica: like the session bounds, it must be the same on every node. (`SET`
    /// and `MSET` are checked by the server before they are proposed.)
    pub fn with_max_value_bytes(mut self, max_value_bytes: usize) -> Self {
        self.max_value_bytes = max_value_bytes;
        self
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if there are no keys.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The session table (for tests and inspection).
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// Applies one operation, appending its RESP reply to `out`.
    fn execute(
        data: &mut HashMap<Vec<u8>, Vec<u8>>,
        max_value_bytes: usize,
        operation: &Operation<'_>,
        out: &mut Vec<u8>,
    ) {
        match operation {
            Operation::Set {
                key,
                value,
                condition,
            } => {
                let exists = data.contains_key(*key);
                let allowed = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => !exists,
                    SetCondition::IfPresent => exists,
                };
                if allowed {
                    match data.get_mut(*key) {
                        Some(old) => {
                            old.clear();
                            old.extend_from_slice(value);
                        }
                        None => {
                            data.insert(key.to_vec(), value.to_vec());
                        }
                    }
                    out.extend_from_slice(b"+OK\r\n");
                } else {
                    write_nil(out);
                }
            }
            Operation::Del { keys } => {
                let removed = keys
                    .iter()
                    .filter(|key| data.remove(**key).is_some())
                    .count();
                write_integer(out, removed as i64);
            }
            Operation::Append { key, value } => {
                let current = data.get(*key).map_or(0, Vec::len);
                let resulting = current.saturating_add(value.len());
                if resulting > max_value_bytes {
                    write_error(out, &value_too_large_text(resulting, max_value_bytes));
                    return;
                }
                let len = match data.get_mut(*key) {
                    Some(old) => {
                        old.extend_from_slice(value);
                        old.len()
                    }
                    None => {
                        data.insert(key.to_vec(), value.to_vec());
                        value.len()
                    }
                };
                write_integer(out, len as i64);
            }
            Operation::IncrBy { key, delta } => {
                let current = match data.get(*key) {
                    None => Some(0),
                    Some(value) => parse_redis_integer(value),
                };
                match current {
                    None => write_error(out, NOT_AN_INTEGER_TEXT),
                    Some(current) => match current.checked_add(*delta) {
                        None => write_error(out, OVERFLOW_TEXT),
                        Some(next) => {
                            data.insert(key.to_vec(), next.to_string().into_bytes());
                            write_integer(out, next);
                        }
                    },
                }
            }
            Operation::MSet { pairs } => {
                for (key, value) in pairs {
                    data.insert(key.to_vec(), value.to_vec());
                }
                out.extend_from_slice(b"+OK\r\n");
            }
        }
    }

    fn answer(&self, query: &Query<'_>, out: &mut Vec<u8>) {
        match query {
            Query::Get { key } => match self.data.get(*key) {
                Some(value) => write_bulk(out, value),
                None => write_nil(out),
            },
            Query::MGet { keys } => {
                write_array_header(out, keys.len());
                for key in keys {
                    match self.data.get(*key) {
                        Some(value) => write_bulk(out, value),
                        None => write_nil(out),
                    }
                }
            }
            Query::Exists { keys } => {
                let count = keys.iter().filter(|k| self.data.contains_key(**k)).count();
                write_integer(out, count as i64);
            }
            Query::DbSize => write_integer(out, self.data.len() as i64),
        }
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
        let batch = match WriteBatch::decode(command) {
            Ok(batch) => batch,
            Err(e) => {
                // Every replica decodes the same bytes the same way, so skipping stays
                // deterministic; the proposer gets an empty result and reports it.
                log::error!("kv: log entry {index} is not a write batch: {e}");
                return Vec::new();
            }
        };
        self.sessions.advance_log_time(batch.proposer_ms);
        let mut results = Vec::with_capacity(batch.writes.len() * 12);
        for write in &batch.writes {
            self.reply.clear();
            match self
                .sessions
                .admit(write.session, write.seq, write.acked_below)
            {
                Admission::Apply => {
                    Self::execute(
                        &mut self.data,
                        self.max_value_bytes,
                        &write.operation,
                        &mut self.reply,
                    );
                    self.sessions.record(write.session, write.seq, &self.reply);
                }
                Admission::Duplicate(saved) => self.reply.extend_from_slice(&saved),
                Admission::Refuse(text) => write_error(&mut self.reply, &text),
            }
            push_result(&mut results, &self.reply);
        }
        results
    }

    fn query(&mut self, query: &[u8]) -> Vec<u8> {
        let queries = match decode_queries(query) {
            Ok(queries) => queries,
            Err(e) => {
                log::error!("kv: {e}");
                return Vec::new();
            }
        };
        let mut results = Vec::with_capacity(queries.len() * 16);
        let mut reply = Vec::with_capacity(64);
        for query in &queries {
            reply.clear();
            self.answer(query, &mut reply);
            push_result(&mut results, &reply);
        }
        results
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(256 << 10, out);
        out.write_all(SNAPSHOT_MAGIC)?;
        self.sessions.write_to(&mut out)?;
        out.write_all(&(self.data.len() as u64).to_le_bytes())?;
        for (key, value) in &self.data {
            out.write_all(&(key.len() as u32).to_le_bytes())?;
            out.write_all(key)?;
            out.write_all(&(value.len() as u32).to_le_bytes())?;
            out.write_all(value)?;
        }
        out.write_all(SNAPSHOT_END_MAGIC)?;
        out.flush()
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut input = BufReader::with_capacity(256 << 10, input);
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a key-value snapshot (magic {magic:?})"),
            ));
        }
        let sessions = SessionTable::read_from(self.session_config, &mut input)?;
        let count = read_u64(&mut input)?;
        let mut data = HashMap::with_capacity(count.min(1 << 20) as usize);
        for _ in 0..count {
            let key_len = read_u32(&mut input)? as usize;
            let key = read_exact_vec(&mut input, key_len)?;
            let value_len = read_u32(&mut input)? as usize;
            let value = read_exact_vec(&mut input, value_len)?;
            if data.insert(key, value).is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "snapshot holds a key twice",
                ));
            }
        }
        input.read_exact(&mut magic)?;
        if &magic != SNAPSHOT_END_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "key-value snapshot does not end with its end marker",
            ));
        }
        self.data = data;
        self.sessions = sessions;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::command::{
        split_results, QueryBatchEncoder, Write as KvWrite, WriteBatchEncoder,
    };
    use crate::kv::session_id::SessionId;
    use crate::kv::session_table::SESSION_EXPIRED_TEXT;

    struct Harness {
        sm: KvStateMachine,
        session: SessionId,
        seq: u64,
        index: u64,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                sm: KvStateMachine::new(SessionConfig::default()),
                session: SessionId::new(1, 1),
                seq: 0,
                index: 0,
            }
        }

        fn write(&mut self, operation: Operation<'_>) -> String {
            self.seq += 1;
            self.write_as(self.session, self.seq, 0, 1000, operation)
        }

        fn write_as(
            &mut self,
            session: SessionId,
            seq: u64,
            acked_below: u64,
            proposer_ms: u64,
            operation: Operation<'_>,
        ) -> String {
            let mut encoder = WriteBatchEncoder::new(proposer_ms);
            encoder.push(&KvWrite {
                session,
                seq,
                acked_below,
                operation,
            });
            self.index += 1;
            let result = self.sm.apply(self.index, &encoder.finish());
            let replies = split_results(&result, 1).unwrap();
            String::from_utf8(replies[0].to_vec()).unwrap()
        }

        fn query(&mut self, query: Query<'_>) -> String {
            let mut encoder = QueryBatchEncoder::new();
            encoder.push(&query);
            let result = self.sm.query(&encoder.finish());
            String::from_utf8(split_results(&result, 1).unwrap()[0].to_vec()).unwrap()
        }
    }

    fn set<'a>(key: &'a [u8], value: &'a [u8], condition: SetCondition) -> Operation<'a> {
        Operation::Set {
            key,
            value,
            condition,
        }
    }

    #[test]
    fn every_command_answers_like_redis() {
        let mut h = Harness::new();
        assert_eq!(h.query(Query::Get { key: b"k" }), "$-1\r\n");
        assert_eq!(h.write(set(b"k", b"v", SetCondition::Always)), "+OK\r\n");
        assert_eq!(h.query(Query::Get { key: b"k" }), "$1\r\nv\r\n");
        assert_eq!(h.write(set(b"k", b"w", SetCondition::IfAbsent)), "$-1\r\n");
        assert_eq!(h.write(set(b"k", b"w", SetCondition::IfPresent)), "+OK\r\n");
        assert_eq!(h.write(set(b"n", b"x", SetCondition::IfPresent)), "$-1\r\n");
        assert_eq!(h.write(set(b"n", b"x", SetCondition::IfAbsent)), "+OK\r\n");
        assert_eq!(h.query(Query::Get { key: b"k" }), "$1\r\nw\r\n");
        assert_eq!(
            h.write(Operation::Append {
                key: b"k",
                value: b"xyz"
            }),
            ":4\r\n"
        );
        assert_eq!(
            h.write(Operation::Append {
                key: b"new",
                value: b"ab"
            }),
            ":2\r\n"
        );
        assert_eq!(
            h.write(Operation::IncrBy {
                key: b"c",
                delta: 1
            }),
            ":1\r\n"
        );
        assert_eq!(
            h.write(Operation::IncrBy {
                key: b"c",
                delta: -11
            }),
            ":-10\r\n"
        );
        assert_eq!(
            h.write(Operation::IncrBy {
                key: b"k",
                delta: 1
            }),
            format!("-{NOT_AN_INTEGER_TEXT}\r\n")
        );
        assert_eq!(
            h.write(set(b"big", b"9223372036854775807", SetCondition::Always)),
            "+OK\r\n"
        );
        assert_eq!(
            h.write(Operation::IncrBy {
                key: b"big",
                delta: 1
            }),
            format!("-{OVERFLOW_TEXT}\r\n")
        );
        assert_eq!(
            h.write(Operation::MSet {
                pairs: vec![(b"a", b"1"), (b"b", b"2")]
            }),
            "+OK\r\n"
        );
        assert_eq!(
            h.query(Query::MGet {
                keys: vec![b"a", b"zz", b"b"]
            }),
            "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            h.query(Query::Exists {
                keys: vec![b"a", b"a", b"zz"]
            }),
            ":2\r\n"
        );
        // k n new c big a b
        assert_eq!(h.query(Query::DbSize), ":7\r\n");
        assert_eq!(
            h.write(Operation::Del {
                keys: vec![b"a", b"zz", b"b"]
            }),
            ":2\r\n"
        );
        assert_eq!(h.query(Query::DbSize), ":5\r\n");
    }

    #[test]
    fn redis_integer_parsing_is_strict() {
        for (text, expected) in [
            ("0", Some(0)),
            ("-12", Some(-12)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("+1", None),
            (" 1", None),
            ("01", None),
            ("-0", None),
            ("", None),
            ("1.0", None),
        ] {
            assert_eq!(parse_redis_integer(text.as_bytes()), expected, "{text:?}");
        }
    }

    #[test]
    fn a_duplicate_write_is_applied_once() {
        let mut h = Harness::new();
        let session = SessionId::new(5, 9);
        let incr = || Operation::IncrBy {
            key: b"c",
            delta: 1,
        };
        assert_eq!(h.write_as(session, 1, 0, 100, incr()), ":1\r\n");
        assert_eq!(h.write_as(session, 2, 0, 100, incr()), ":2\r\n");
        // A retry of seq 1 gets its original answer; the counter is unchanged.
        assert_eq!(h.write_as(session, 1, 0, 100, incr()), ":1\r\n");
        assert_eq!(h.query(Query::Get { key: b"c" }), "$1\r\n2\r\n");
        // The same seq in another session is a different write.
        assert_eq!(
            h.write_as(SessionId::new(5, 10), 1, 0, 100, incr()),
            ":3\r\n"
        );
    }

    #[test]
    fn an_expired_session_is_refused_and_nothing_applies() {
        let mut h = Harness::new();
        let config = SessionConfig::default();
        let session = SessionId::new(100, 1);
        assert_eq!(
            h.write_as(
                session,
                1,
                0,
                100,
                Operation::IncrBy {
                    key: b"c",
                    delta: 1
                }
            ),
            ":1\r\n"
        );
        // Another session's write moves log time past the expiry.
        let later = 100 + config.idle_expiry_ms + 1;
        h.write_as(
            SessionId::new(later, 2),
            1,
            0,
            later,
            set(b"x", b"y", SetCondition::Always),
        );
        assert_eq!(
            h.write_as(
                session,
                1,
                0,
                later,
                Operation::IncrBy {
                    key: b"c",
                    delta: 1
                }
            ),
            format!("-{SESSION_EXPIRED_TEXT}\r\n")
        );
        assert_eq!(h.query(Query::Get { key: b"c" }), "$1\r\n1\r\n");
    }

    #[test]
    fn malformed_commands_and_queries_give_empty_results() {
        let mut h = Harness::new();
        assert!(h.sm.apply(1, b"\x01garbage").is_empty());
        assert!(h.sm.query(b"").is_empty());
        assert!(h.sm.is_empty());
    }

    #[test]
    fn snapshot_restore_round_trips_data_and_sessions() {
        let mut h = Harness::new();
        let session = SessionId::new(1, 77);
        for i in 0..100u32 {
            let key = format!("key{i}");
            h.write_as(
                session,
                u64::from(i) + 1,
                0,
                50,
                set(key.as_bytes(), &i.to_le_bytes(), SetCondition::Always),
            );
        }
        h.write_as(
            session,
            101,
            0,
            50,
            Operation::IncrBy {
                key: b"n",
                delta: 5,
            },
        );
        let mut bytes = Vec::new();
        h.sm.snapshot(&mut bytes).unwrap();

        let mut restored = Harness::new();
        restored.sm.restore(&mut &bytes[..]).unwrap();
        assert_eq!(restored.sm.data, h.sm.data);
        assert_eq!(restored.sm.sessions(), h.sm.sessions());
        // The restored session still deduplicates.
        assert_eq!(
            restored.write_as(
                session,
                101,
                0,
                50,
                Operation::IncrBy {
                    key: b"n",
                    delta: 5
                }
            ),
            ":5\r\n"
        );
        assert_eq!(restored.query(Query::Get { key: b"n" }), "$1\r\n5\r\n");

        for cut in [0, 7, 8, bytes.len() / 2, bytes.len() - 1] {
            let mut broken = Harness::new();
            assert!(
                broken.sm.restore(&mut &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}

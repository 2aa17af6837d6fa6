//! The replicated command encoding (writes) and the read query encoding.
//!
//! Writes travel through the Raft log as a **write batch**: one or more writes, each with its
//! own client session and sequence number, so the server can put many clients' writes in one
//! log entry; each is deduplicated on its own. Reads never enter the log: they are **query
//! batches** answered by the state machine after a ReadIndex round. All integers are little
//! endian. A `bytes` field is a u32 length followed by that many bytes.
//!
//! # Write batch, version 1
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0      | 1    | version = 1                                                    |
//! | 1      | 8    | proposer wall-clock ms (u64): the clock of the node that proposed it |
//! | 9      | 4    | write count N (u32, 1..=[`WRITES_PER_BATCH_MAX`])               |
//! | 13     |      | N writes                                                       |
//!
//! Each write:
//!
//! | size | field                                                                        |
//! |------|------------------------------------------------------------------------------|
//! | 16   | session id (u128; high 64 bits: the session's creation ms, see `session_id`) |
//! | 8    | sequence number (u64, >= 1)                                                  |
//! | 8    | acknowledged-below watermark (u64): the client has every result below it     |
//! | 1    | operation tag                                                                |
//! |      | operation body                                                               |
//!
//! | tag | operation | body                                                              |
//! |-----|-----------|-------------------------------------------------------------------|
//! | 1   | SET       | condition (u8: 0 always, 1 NX, 2 XX), key bytes, value bytes      |
//! | 2   | DEL       | key count (u32, >= 1), that many key bytes                        |
//! | 3   | APPEND    | key bytes, value bytes                                            |
//! | 4   | INCRBY    | key bytes, delta (i64)                                            |
//! | 5   | MSET      | pair count (u32, >= 1), that many (key bytes, value bytes)        |
//!
//! The state machine's result for a write batch is N results in order, each a u32 length and
//! one RESP2 reply (the exact bytes the client receives, e.g. `+OK\r\n`, `:3\r\n`).
//!
//! The proposer's clock is only used for session expiry, and only as "log time": the largest
//! proposer ms seen in the log so far. Every replica sees the same log, hence the same times.
//!
//! # Query batch, version 1
//!
//! | offset | size | field                                        |
//! |--------|------|----------------------------------------------|
//! | 0      | 1    | version = 1                                  |
//! | 1      | 4    | query count N (u32, 1..=[`QUERIES_PER_BATCH_MAX`]) |
//! | 5      |      | N queries: tag (u8), body                    |
//!
//! | tag | query  | body                                 |
//! |-----|--------|--------------------------------------|
//! | 1   | GET    | key bytes                            |
//! | 2   | MGET   | key count (u32, >= 1), key bytes each |
//! | 3   | EXISTS | key count (u32, >= 1), key bytes each |
//! | 4   | DBSIZE | nothing                              |
//!
//! The answer has the same shape as a write batch's result: N × (u32 length, RESP2 reply).
//!
//! Decoding checks every length against the remaining bytes and rejects unknown versions and
//! tags, zero counts and trailing bytes with a [`DecodeError`] naming the field and offset.

use std::fmt;

use super::session_id::SessionId;

/// The only write batch and query batch version.
pub const FORMAT_VERSION: u8 = 1;
/// Most writes in one batch.
pub const WRITES_PER_BATCH_MAX: u32 = 4096;
/// Most queries in one batch.
pub const QUERIES_PER_BATCH_MAX: u32 = 4096;

const TAG_SET: u8 = 1;
const TAG_DEL: u8 = 2;
const TAG_APPEND: u8 = 3;
const TAG_INCRBY: u8 = 4;
const TAG_MSET: u8 = 5;

const TAG_GET: u8 = 1;
const TAG_MGET: u8 = 2;
const TAG_EXISTS: u8 = 3;
const TAG_DBSIZE: u8 = 4;

/// SET's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// Always set.
    Always,
    /// `NX`: only if the key does not exist.
    IfAbsent,
    /// `XX`: only if the key exists.
    IfPresent,
}

/// A write operation, borrowing its keys and values from the encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<'a> {
    /// `SET key value [NX|XX]`.
    Set {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
        /// NX / XX.
        condition: SetCondition,
    },
    /// `DEL key...`.
    Del {
        /// The keys, at least one.
        keys: Vec<&'a [u8]>,
    },
    /// `APPEND key value`.
    Append {
        /// The key.
        key: &'a [u8],
        /// The bytes appended.
        value: &'a [u8],
    },
    /// `INCRBY key delta` (and `INCR`, delta 1).
    IncrBy {
        /// The key.
        key: &'a [u8],
        /// The increment.
        delta: i64,
    },
    /// `MSET key value [key value...]`.
    MSet {
        /// The pairs, at least one.
        pairs: Vec<(&'a [u8], &'a [u8])>,
    },
}

/// One write of a batch: who sent it and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write<'a> {
    /// The client session.
    pub session: SessionId,
    /// The sequence number within the session (>= 1).
    pub seq: u64,
    /// The client has the results of every sequence number below this.
    pub acked_below: u64,
    /// The operation.
    pub operation: Operation<'a>,
}

/// A decoded write batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch<'a> {
    /// The proposer's wall clock, in ms since the Unix epoch.
    pub proposer_ms: u64,
    /// The writes, at least one.
    pub writes: Vec<Write<'a>>,
}

/// A read query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query<'a> {
    /// `GET key`.
    Get {
        /// The key.
        key: &'a [u8],
    },
    /// `MGET key...`.
    MGet {
        /// The keys.
        keys: Vec<&'a [u8]>,
    },
    /// `EXISTS key...`.
    Exists {
        /// The keys.
        keys: Vec<&'a [u8]>,
    },
    /// `DBSIZE`.
    DbSize,
}

/// Why bytes are not a valid write batch, query batch or result list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was being decoded (e.g. "write batch").
    pub what: &'static str,
    /// The field that failed.
    pub field: &'static str,
    /// Its offset in the input.
    pub offset: usize,
    /// Why.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed {}: {} at offset {}: {}",
            self.what, self.field, self.offset, self.reason
        )
    }
}

impl std::error::Error for DecodeError {}

/// A bounds-checked reader over encoded bytes.
struct Cursor<'a> {
    input: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn error(&self, field: &'static str, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            what: self.what,
            field,
            offset: self.at,
            reason: reason.into(),
        }
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.input.len() - self.at < len {
            return Err(self.error(
                field,
                format!("needs {len} bytes, {} left", self.input.len() - self.at),
            ));
        }
        let bytes = &self.input[self.at..self.at + len];
        self.at += len;
        Ok(bytes)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let bytes = self.take(8, field)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn u128(&mut self, field: &'static str) -> Result<u128, DecodeError> {
        let bytes = self.take(16, field)?;
        Ok(u128::from_le_bytes(bytes.try_into().expect("16 bytes")))
    }

    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }

    /// A count of at least 1 whose items need at least `item_bytes_min` bytes each, so a
    /// forged count cannot make the decoder allocate beyond the input's size.
    fn count(&mut self, field: &'static str, item_bytes_min: usize) -> Result<usize, DecodeError> {
        let count = self.u32(field)? as usize;
        if count == 0 {
            return Err(self.error(field, "count is zero"));
        }
        if count.saturating_mul(item_bytes_min) > self.input.len() - self.at {
            return Err(self.error(field, format!("count {count} exceeds the input")));
        }
        Ok(count)
    }

    fn keys(&mut self, field: &'static str) -> Result<Vec<&'a [u8]>, DecodeError> {
        let count = self.count(field, 4)?;
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            keys.push(self.bytes(field)?);
        }
        Ok(keys)
    }

    fn version(&mut self) -> Result<(), DecodeError> {
        let version = self.u8("version")?;
        if version != FORMAT_VERSION {
            self.at -= 1;
            return Err(self.error("version", format!("unknown version {version}")));
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.at != self.input.len() {
            return Err(self.error(
                "end",
                format!("{} trailing bytes", self.input.len() - self.at),
            ));
        }
        Ok(())
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl Operation<'_> {
    /// The bytes of the values this operation writes (`SET`, `APPEND`: its value; `MSET`: all
    /// its values; others: none), what the value limit is checked against before proposing.
    pub fn value_bytes(&self) -> usize {
        match self {
            Operation::Set { value, .. } | Operation::Append { value, .. } => value.len(),
            Operation::MSet { pairs } => pairs.iter().map(|(_, value)| value.len()).sum(),
            Operation::Del { .. } | Operation::IncrBy { .. } => 0,
        }
    }

    /// The bytes of this operation's tag and body in a write (see the module docs).
    pub fn encoded_bytes(&self) -> usize {
        const LEN: usize = 4;
        let body = match self {
            Operation::Set { key, value, .. } => 1 + LEN + key.len() + LEN + value.len(),
            Operation::Del { keys } => LEN + keys.iter().map(|k| LEN + k.len()).sum::<usize>(),
            Operation::Append { key, value } => LEN + key.len() + LEN + value.len(),
            Operation::IncrBy { key, .. } => LEN + key.len() + 8,
            Operation::MSet { pairs } => {
                LEN + pairs
                    .iter()
                    .map(|(k, v)| 2 * LEN + k.len() + v.len())
                    .sum::<usize>()
            }
        };
        1 + body
    }
}

impl Write<'_> {
    /// The bytes [`WriteBatchEncoder::push`] adds for this write, computed without encoding.
    pub fn encoded_bytes(&self) -> usize {
        16 + 8 + 8 + self.operation.encoded_bytes()
    }
}

impl<'a> WriteBatch<'a> {
    /// Decodes a write batch.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor {
            input,
            at: 0,
            what: "write batch",
        };
        cursor.version()?;
        let proposer_ms = cursor.u64("proposer_ms")?;
        // The smallest write, a DEL or APPEND of empty strings: 16 + 8 + 8 + 1 + 8 bytes.
        let count = cursor.count("write count", 41)?;
        if count > WRITES_PER_BATCH_MAX as usize {
            return Err(cursor.error("write count", format!("{count} writes, above the limit")));
        }
        let mut writes = Vec::with_capacity(count);
        for _ in 0..count {
            let session = SessionId(cursor.u128("session")?);
            let seq = cursor.u64("seq")?;
            if seq == 0 {
                return Err(cursor.error("seq", "sequence numbers start at 1"));
            }
            let acked_below = cursor.u64("acked_below")?;
            let operation = match cursor.u8("operation tag")? {
                TAG_SET => {
                    let condition = match cursor.u8("set condition")? {
                        0 => SetCondition::Always,
                        1 => SetCondition::IfAbsent,
                        2 => SetCondition::IfPresent,
                        other => {
                            return Err(cursor.error("set condition", format!("unknown {other}")))
                        }
                    };
                    Operation::Set {
                        key: cursor.bytes("key")?,
                        value: cursor.bytes("value")?,
                        condition,
                    }
                }
                TAG_DEL => Operation::Del {
                    keys: cursor.keys("keys")?,
                },
                TAG_APPEND => Operation::Append {
                    key: cursor.bytes("key")?,
                    value: cursor.bytes("value")?,
                },
                TAG_INCRBY => Operation::IncrBy {
                    key: cursor.bytes("key")?,
                    delta: cursor.u64("delta")? as i64,
                },
                TAG_MSET => {
                    let count = cursor.count("pairs", 8)?;
                    let mut pairs = Vec::with_capacity(count);
                    for _ in 0..count {
                        pairs.push((cursor.bytes("key")?, cursor.bytes("value")?));
                    }
                    Operation::MSet { pairs }
                }
                other => {
                    cursor.at -= 1;
                    return Err(cursor.error("operation tag", format!("unknown tag {other}")));
                }
            };
            writes.push(Write {
                session,
                seq,
                acked_below,
                operation,
            });
        }
        cursor.finish()?;
        Ok(WriteBatch {
            proposer_ms,
            writes,
        })
    }

    /// Encodes the batch.
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = WriteBatchEncoder::new(self.proposer_ms);
        for write in &self.writes {
            encoder.push(write);
        }
        encoder.finish()
    }
}

/// Builds a write batch incrementally (the server appends writes as requests arrive).
#[derive(Debug)]
pub struct WriteBatchEncoder {
    buf: Vec<u8>,
    count: u32,
}

impl WriteBatchEncoder {
    /// An empty batch stamped with the proposer's clock.
    pub fn new(proposer_ms: u64) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.push(FORMAT_VERSION);
        buf.extend_from_slice(&proposer_ms.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        WriteBatchEncoder { buf, count: 0 }
    }

    /// Writes in the batch so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// True if no write was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded bytes so far.
    pub fn encoded_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends a write.
    pub fn push(&mut self, write: &Write<'_>) {
        assert!(self.count < WRITES_PER_BATCH_MAX, "write batch full");
        assert!(write.seq >= 1, "sequence numbers start at 1");
        let out = &mut self.buf;
        out.extend_from_slice(&write.session.0.to_le_bytes());
        out.extend_from_slice(&write.seq.to_le_bytes());
        out.extend_from_slice(&write.acked_below.to_le_bytes());
        match &write.operation {
            Operation::Set {
                key,
                value,
                condition,
            } => {
                out.push(TAG_SET);
                out.push(match condition {
                    SetCondition::Always => 0,
                    SetCondition::IfAbsent => 1,
                    SetCondition::IfPresent => 2,
                });
                put_bytes(out, key);
                put_bytes(out, value);
            }
            Operation::Del { keys } => {
                assert!(!keys.is_empty(), "DEL needs a key");
                out.push(TAG_DEL);
                out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
                for key in keys {
                    put_bytes(out, key);
                }
            }
            Operation::Append { key, value } => {
                out.push(TAG_APPEND);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            Operation::IncrBy { key, delta } => {
                out.push(TAG_INCRBY);
                put_bytes(out, key);
                out.extend_from_slice(&delta.to_le_bytes());
            }
            Operation::MSet { pairs } => {
                assert!(!pairs.is_empty(), "MSET needs a pair");
                out.push(TAG_MSET);
                out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
                for (key, value) in pairs {
                    put_bytes(out, key);
                    put_bytes(out, value);
                }
            }
        }
        self.count += 1;
    }

    /// The encoded batch (at least one write must have been pushed).
    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.count > 0, "empty write batch");
        self.buf[9..13].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Decodes a query batch.
pub fn decode_queries(input: &[u8]) -> Result<Vec<Query<'_>>, DecodeError> {
    let mut cursor = Cursor {
        input,
        at: 0,
        what: "query batch",
    };
    cursor.version()?;
    let count = cursor.count("query count", 1)?;
    if count > QUERIES_PER_BATCH_MAX as usize {
        return Err(cursor.error("query count", format!("{count} queries, above the limit")));
    }
    let mut queries = Vec::with_capacity(count);
    for _ in 0..count {
        queries.push(match cursor.u8("query tag")? {
            TAG_GET => Query::Get {
                key: cursor.bytes("key")?,
            },
            TAG_MGET => Query::MGet {
                keys: cursor.keys("keys")?,
            },
            TAG_EXISTS => Query::Exists {
                keys: cursor.keys("keys")?,
            },
            TAG_DBSIZE => Query::DbSize,
            other => {
                cursor.at -= 1;
                return Err(cursor.error("query tag", format!("unknown tag {other}")));
            }
        });
    }
    cursor.finish()?;
    Ok(queries)
}

/// Builds a query batch incrementally.
#[derive(Debug)]
pub struct QueryBatchEncoder {
    buf: Vec<u8>,
    count: u32,
}

impl Default for QueryBatchEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl QueryBatchEncoder {
    /// An empty batch.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.push(FORMAT_VERSION);
        buf.extend_from_slice(&0u32.to_le_bytes());
        QueryBatchEncoder { buf, count: 0 }
    }

    /// Queries so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// True if no query was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded bytes so far.
    pub fn encoded_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends a query.
    pub fn push(&mut self, query: &Query<'_>) {
        assert!(self.count < QUERIES_PER_BATCH_MAX, "query batch full");
        let out = &mut self.buf;
        let mut keys = |tag: u8, keys: &[&[u8]]| {
            assert!(!keys.is_empty(), "a multi-key query needs a key");
            out.push(tag);
            out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
            for key in keys {
                put_bytes(out, key);
            }
        };
        match query {
            Query::Get { key } => {
                out.push(TAG_GET);
                put_bytes(out, key);
            }
            Query::MGet { keys: k } => keys(TAG_MGET, k),
            Query::Exists { keys: k } => keys(TAG_EXISTS, k),
            Query::DbSize => out.push(TAG_DBSIZE),
        }
        self.count += 1;
    }

    /// The encoded batch (at least one query must have been pushed).
    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.count > 0, "empty query batch");
        self.buf[1..5].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Appends one result (a RESP reply) to a result list.
pub fn push_result(out: &mut Vec<u8>, reply: &[u8]) {
    put_bytes(out, reply);
}

/// Splits a result list (a batch's answer) into its RESP replies, checking there are exactly
/// `expected` of them.
pub fn split_results(input: &[u8], expected: usize) -> Result<Vec<&[u8]>, DecodeError> {
    let mut cursor = Cursor {
        input,
        at: 0,
        what: "result list",
    };
    let mut replies = Vec::with_capacity(expected.min(QUERIES_PER_BATCH_MAX as usize));
    while cursor.at < input.len() {
        if replies.len() == expected {
            return Err(cursor.error("result", format!("more than {expected} results")));
        }
        replies.push(cursor.bytes("result")?);
    }
    if replies.len() != expected {
        return Err(cursor.error(
            "result",
            format!("{} results, expected {expected}", replies.len()),
        ));
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..12)
    }

    #[derive(Debug, Clone)]
    enum OwnedOp {
        Set(Vec<u8>, Vec<u8>, u8),
        Del(Vec<Vec<u8>>),
        Append(Vec<u8>, Vec<u8>),
        IncrBy(Vec<u8>, i64),
        MSet(Vec<(Vec<u8>, Vec<u8>)>),
    }

    fn arb_op() -> impl Strategy<Value = OwnedOp> {
        prop_oneof![
            (arb_key(), arb_key(), 0u8..3).prop_map(|(k, v, c)| OwnedOp::Set(k, v, c)),
            proptest::collection::vec(arb_key(), 1..4).prop_map(OwnedOp::Del),
            (arb_key(), arb_key()).prop_map(|(k, v)| OwnedOp::Append(k, v)),
            (arb_key(), any::<i64>()).prop_map(|(k, d)| OwnedOp::IncrBy(k, d)),
            proptest::collection::vec((arb_key(), arb_key()), 1..4).prop_map(OwnedOp::MSet),
        ]
    }

    fn borrow(op: &OwnedOp) -> Operation<'_> {
        match op {
            OwnedOp::Set(key, value, c) => Operation::Set {
                key,
                value,
                condition: [
                    SetCondition::Always,
                    SetCondition::IfAbsent,
                    SetCondition::IfPresent,
                ][*c as usize],
            },
            OwnedOp::Del(keys) => Operation::Del {
                keys: keys.iter().map(|k| &k[..]).collect(),
            },
            OwnedOp::Append(key, value) => Operation::Append { key, value },
            OwnedOp::IncrBy(key, delta) => Operation::IncrBy { key, delta: *delta },
            OwnedOp::MSet(pairs) => Operation::MSet {
                pairs: pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect(),
            },
        }
    }

    proptest! {
        #[test]
        fn write_batches_round_trip_and_every_truncation_fails(
            proposer_ms in any::<u64>(),
            writes in proptest::collection::vec(
                (any::<u128>(), 1u64.., any::<u64>(), arb_op()), 1..6),
        ) {
            let batch = WriteBatch {
                proposer_ms,
                writes: writes
                    .iter()
                    .map(|(s, seq, acked, op)| Write {
                        session: SessionId(*s),
                        seq: *seq,
                        acked_below: *acked,
                        operation: borrow(op),
                    })
                    .collect(),
            };
            let bytes = batch.encode();
            let computed: usize = batch.writes.iter().map(Write::encoded_bytes).sum();
            prop_assert_eq!(13 + computed, bytes.len(), "encoded_bytes matches the encoding");
            prop_assert_eq!(&WriteBatch::decode(&bytes).unwrap(), &batch);
            for cut in 0..bytes.len() {
                prop_assert!(WriteBatch::decode(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(WriteBatch::decode(&longer).is_err());
        }

        #[test]
        fn decoders_never_panic(input in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = WriteBatch::decode(&input);
            let _ = decode_queries(&input);
            let _ = split_results(&input, 3);
        }

        #[test]
        fn query_batches_round_trip(keys in proptest::collection::vec(arb_key(), 1..5)) {
            let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
            let queries = vec![
                Query::Get { key: refs[0] },
                Query::MGet { keys: refs.clone() },
                Query::Exists { keys: refs.clone() },
                Query::DbSize,
            ];
            let mut encoder = QueryBatchEncoder::new();
            for query in &queries {
                encoder.push(query);
            }
            let bytes = encoder.finish();
            prop_assert_eq!(decode_queries(&bytes).unwrap(), queries);
            for cut in 0..bytes.len() {
                prop_assert!(decode_queries(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn decode_errors_name_the_field_and_offset() {
        let mut bytes = WriteBatch {
            proposer_ms: 7,
            writes: vec![Write {
                session: SessionId(1),
                seq: 1,
                acked_below: 0,
                operation: Operation::IncrBy {
                    key: b"k",
                    delta: 1,
                },
            }],
        }
        .encode();
        bytes[0] = 9;
        let error = WriteBatch::decode(&bytes).unwrap_err();
        assert_eq!((error.field, error.offset), ("version", 0));
        bytes[0] = FORMAT_VERSION;
        bytes[13 + 32] = 77;
        let error = WriteBatch::decode(&bytes).unwrap_err();
        assert_eq!((error.field, error.offset), ("operation tag", 45));
        assert!(error.to_string().contains("unknown tag 77"), "{error}");
        // A forged huge count is refused before allocating.
        let mut forged = vec![FORMAT_VERSION];
        forged.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_queries(&forged).unwrap_err().field, "query count");
    }

    #[test]
    fn results_split_exactly() {
        let mut out = Vec::new();
        push_result(&mut out, b"+OK\r\n");
        push_result(&mut out, b":1\r\n");
        assert_eq!(
            split_results(&out, 2).unwrap(),
            vec![&b"+OK\r\n"[..], b":1\r\n"]
        );
        assert!(split_results(&out, 1).is_err());
        assert!(split_results(&out, 3).is_err());
        assert!(split_results(&out[..out.len() - 1], 2).is_err());
    }
}

//! Write batch version 1: typed operations (SET, DEL, APPEND, INCRBY, MSET), the format of
//! logs written before version 2. Kept so that old logs still decode and apply exactly as
//! before: the state machine maps each operation to the command words it stands for
//! ([`Operation::to_argv`]) and runs them like any version 2 command. Nothing proposes
//! version 1 any more; [`WriteBatchEncoder`] stays for tests that write old logs.
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0      | 1    | version = 1                                                    |
//! | 1      | 8    | proposer wall-clock ms (u64)                                   |
//! | 9      | 4    | write count N (u32, 1..=[`WRITES_PER_BATCH_MAX`])               |
//! | 13     |      | N writes                                                       |
//!
//! Each write:
//!
//! | size | field                                                                        |
//! |------|------------------------------------------------------------------------------|
//! | 16   | session id (u128)                                                            |
//! | 8    | sequence number (u64, >= 1)                                                  |
//! | 8    | acknowledged-below watermark (u64)                                           |
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

use super::{put_bytes, BatchBuffer, Cursor, DecodeError, WRITES_PER_BATCH_MAX};
use crate::kv::session_id::SessionId;

/// This format's version byte.
pub const FORMAT_VERSION: u8 = 1;

const TAG_SET: u8 = 1;
const TAG_DEL: u8 = 2;
const TAG_APPEND: u8 = 3;
const TAG_INCRBY: u8 = 4;
const TAG_MSET: u8 = 5;

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

impl Operation<'_> {
    /// The command words this operation stands for: what the state machine runs for it.
    /// `INCRBY` carries its delta in decimal, as a client would send it.
    pub fn to_argv(&self) -> Vec<Vec<u8>> {
        let mut argv: Vec<Vec<u8>> = Vec::new();
        match self {
            Operation::Set {
                key,
                value,
                condition,
            } => {
                argv.extend([b"SET".to_vec(), key.to_vec(), value.to_vec()]);
                match condition {
                    SetCondition::Always => {}
                    SetCondition::IfAbsent => argv.push(b"NX".to_vec()),
                    SetCondition::IfPresent => argv.push(b"XX".to_vec()),
                }
            }
            Operation::Del { keys } => {
                argv.push(b"DEL".to_vec());
                argv.extend(keys.iter().map(|k| k.to_vec()));
            }
            Operation::Append { key, value } => {
                argv.extend([b"APPEND".to_vec(), key.to_vec(), value.to_vec()]);
            }
            Operation::IncrBy { key, delta } => {
                argv.extend([
                    b"INCRBY".to_vec(),
                    key.to_vec(),
                    delta.to_string().into_bytes(),
                ]);
            }
            Operation::MSet { pairs } => {
                argv.push(b"MSET".to_vec());
                for (key, value) in pairs {
                    argv.push(key.to_vec());
                    argv.push(value.to_vec());
                }
            }
        }
        argv
    }

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
        let mut cursor = Cursor::new(input, "write batch");
        cursor.version(FORMAT_VERSION)?;
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
    batch: BatchBuffer,
}

impl WriteBatchEncoder {
    /// An empty batch stamped with the proposer's clock.
    pub fn new(proposer_ms: u64) -> Self {
        WriteBatchEncoder {
            batch: BatchBuffer::new(
                FORMAT_VERSION,
                proposer_ms,
                WRITES_PER_BATCH_MAX,
                "write batch",
            ),
        }
    }

    /// Appends a write.
    pub fn push(&mut self, write: &Write<'_>) {
        assert!(write.seq >= 1, "sequence numbers start at 1");
        let out = self.batch.item();
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
    }

    /// The encoded batch (at least one write must have been pushed).
    pub fn finish(self) -> Vec<u8> {
        self.batch.finish()
    }
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
    }
}

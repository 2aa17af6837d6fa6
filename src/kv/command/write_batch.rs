//! Write batch version 2: items of command words (see the format table in [`super`]), and
//! [`decode_write_batch`], which reads either version.

use super::v1;
use super::{
    put_bytes, BatchBuffer, Cursor, DecodeError, ARGV_WORDS_MAX, FORMAT_VERSION,
    WRITES_PER_BATCH_MAX,
};
use crate::kv::session_id::SessionId;

const KIND_COMMAND: u8 = 1;
const KIND_TRANSACTION: u8 = 2;
const KIND_RECLAIM: u8 = 3;

/// What one item of a write batch does, borrowing its words from the encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<'a> {
    /// One write command: its words, name first.
    Command(Vec<&'a [u8]>),
    /// `MULTI ... EXEC`: runs the commands atomically, unless a watched key's revision
    /// changed (then nothing runs and the reply is a null array).
    Transaction {
        /// `WATCH`ed keys with the revision the client saw (0: absent).
        watches: Vec<(&'a [u8], u64)>,
        /// The queued commands, in order.
        commands: Vec<Vec<&'a [u8]>>,
    },
    /// Active expiry: removes up to `keys_max` keys past their deadline.
    Reclaim {
        /// Most keys removed (>= 1).
        keys_max: u32,
    },
}

/// One item of a batch: who sent it and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write<'a> {
    /// The client session (0 for a reclaim).
    pub session: SessionId,
    /// The sequence number within the session (>= 1; 0 for a reclaim).
    pub seq: u64,
    /// The client has the results of every sequence number below this.
    pub acked_below: u64,
    /// The operation.
    pub operation: Operation<'a>,
}

impl<'a> Write<'a> {
    /// A reclaim item (no session), see the module docs of [`super`].
    pub fn reclaim(keys_max: u32) -> Write<'static> {
        assert!(keys_max >= 1, "a reclaim removes at least one key");
        Write {
            session: SessionId(0),
            seq: 0,
            acked_below: 0,
            operation: Operation::Reclaim { keys_max },
        }
    }

    /// The bytes [`WriteBatchEncoder::push`] adds for this item, computed without encoding.
    pub fn encoded_bytes(&self) -> usize {
        16 + 8 + 8 + self.operation.encoded_bytes()
    }
}

fn argv_bytes(argv: &[&[u8]]) -> usize {
    4 + argv.iter().map(|word| 4 + word.len()).sum::<usize>()
}

fn put_argv(out: &mut Vec<u8>, argv: &[&[u8]]) {
    assert!(!argv.is_empty(), "a command has a name");
    out.extend_from_slice(&(argv.len() as u32).to_le_bytes());
    for word in argv {
        put_bytes(out, word);
    }
}

impl Operation<'_> {
    /// The bytes of this operation's kind and body in an item.
    pub fn encoded_bytes(&self) -> usize {
        1 + match self {
            Operation::Command(argv) => argv_bytes(argv),
            Operation::Transaction { watches, commands } => {
                4 + watches.iter().map(|(k, _)| 4 + k.len() + 8).sum::<usize>()
                    + 4
                    + commands.iter().map(|argv| argv_bytes(argv)).sum::<usize>()
            }
            Operation::Reclaim { .. } => 4,
        }
    }
}

impl<'a> Cursor<'a> {
    fn argv(&mut self) -> Result<Vec<&'a [u8]>, DecodeError> {
        let count = self.count("argv count", 4)?;
        if count > ARGV_WORDS_MAX as usize {
            return Err(self.error("argv count", format!("{count} words, above the limit")));
        }
        let mut argv = Vec::with_capacity(count);
        for _ in 0..count {
            argv.push(self.bytes("argv word")?);
        }
        Ok(argv)
    }

    /// A count that may be 0, each item needing at least `item_bytes_min` bytes.
    fn count_or_zero(
        &mut self,
        field: &'static str,
        item_bytes_min: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.u32(field)? as usize;
        if count.saturating_mul(item_bytes_min) > self.remaining() {
            return Err(self.error(field, format!("count {count} exceeds the input")));
        }
        Ok(count)
    }
}

/// A decoded write batch, version 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch<'a> {
    /// The leader's clock when it logged the batch, in ms since the Unix epoch.
    pub leader_ms: u64,
    /// The items, at least one.
    pub writes: Vec<Write<'a>>,
}

/// A write batch of either version, as found in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyWriteBatch<'a> {
    /// Version 1 (typed operations).
    V1(v1::WriteBatch<'a>),
    /// Version 2 (command words).
    V2(WriteBatch<'a>),
}

/// Decodes a write batch of version 1 or 2.
pub fn decode_write_batch(input: &[u8]) -> Result<AnyWriteBatch<'_>, DecodeError> {
    match input.first() {
        Some(&v1::FORMAT_VERSION) => v1::WriteBatch::decode(input).map(AnyWriteBatch::V1),
        _ => WriteBatch::decode(input).map(AnyWriteBatch::V2),
    }
}

impl<'a> WriteBatch<'a> {
    /// Decodes a version 2 write batch.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(input, "write batch");
        cursor.version(FORMAT_VERSION)?;
        let leader_ms = cursor.u64("leader_ms")?;
        // The smallest item, a reclaim: 16 + 8 + 8 + 1 + 4 bytes.
        let count = cursor.count("item count", 37)?;
        if count > WRITES_PER_BATCH_MAX as usize {
            return Err(cursor.error("item count", format!("{count} items, above the limit")));
        }
        let mut writes = Vec::with_capacity(count);
        for _ in 0..count {
            let session = SessionId(cursor.u128("session")?);
            let seq = cursor.u64("seq")?;
            let acked_below = cursor.u64("acked_below")?;
            let operation = match cursor.u8("kind")? {
                KIND_COMMAND => Operation::Command(cursor.argv()?),
                KIND_TRANSACTION => {
                    let count = cursor.count_or_zero("watch count", 12)?;
                    let mut watches = Vec::with_capacity(count);
                    for _ in 0..count {
                        watches.push((cursor.bytes("watched key")?, cursor.u64("revision")?));
                    }
                    let count = cursor.count_or_zero("command count", 8)?;
                    let mut commands = Vec::with_capacity(count);
                    for _ in 0..count {
                        commands.push(cursor.argv()?);
                    }
                    Operation::Transaction { watches, commands }
                }
                KIND_RECLAIM => {
                    let keys_max = cursor.u32("reclaim keys")?;
                    if keys_max == 0 {
                        cursor.at -= 4;
                        return Err(cursor.error("reclaim keys", "zero"));
                    }
                    Operation::Reclaim { keys_max }
                }
                other => {
                    cursor.at -= 1;
                    return Err(cursor.error("kind", format!("unknown kind {other}")));
                }
            };
            let reclaim = matches!(operation, Operation::Reclaim { .. });
            if reclaim && (session.0 != 0 || seq != 0 || acked_below != 0) {
                return Err(cursor.error("session", "a reclaim has no session"));
            }
            if !reclaim && seq == 0 {
                return Err(cursor.error("seq", "sequence numbers start at 1"));
            }
            writes.push(Write {
                session,
                seq,
                acked_below,
                operation,
            });
        }
        cursor.finish()?;
        Ok(WriteBatch { leader_ms, writes })
    }

    /// Encodes the batch.
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = WriteBatchEncoder::new(self.leader_ms);
        for write in &self.writes {
            encoder.push(write);
        }
        encoder.finish()
    }
}

/// Builds a version 2 write batch incrementally (the server appends writes as requests
/// arrive).
#[derive(Debug)]
pub struct WriteBatchEncoder {
    batch: BatchBuffer,
}

impl WriteBatchEncoder {
    /// An empty batch stamped with the proposer's clock (the leader overwrites it).
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

    /// Items in the batch so far.
    pub fn len(&self) -> u32 {
        self.batch.len()
    }

    /// True if no item was added.
    pub fn is_empty(&self) -> bool {
        self.batch.len() == 0
    }

    /// Encoded bytes so far.
    pub fn encoded_bytes(&self) -> usize {
        self.batch.encoded_bytes()
    }

    /// Appends an item.
    pub fn push(&mut self, write: &Write<'_>) {
        let out = self.batch.item();
        out.extend_from_slice(&write.session.0.to_le_bytes());
        out.extend_from_slice(&write.seq.to_le_bytes());
        out.extend_from_slice(&write.acked_below.to_le_bytes());
        match &write.operation {
            Operation::Command(argv) => {
                assert!(write.seq >= 1, "sequence numbers start at 1");
                out.push(KIND_COMMAND);
                put_argv(out, argv);
            }
            Operation::Transaction { watches, commands } => {
                assert!(write.seq >= 1, "sequence numbers start at 1");
                out.push(KIND_TRANSACTION);
                out.extend_from_slice(&(watches.len() as u32).to_le_bytes());
                for (key, revision) in watches {
                    put_bytes(out, key);
                    out.extend_from_slice(&revision.to_le_bytes());
                }
                out.extend_from_slice(&(commands.len() as u32).to_le_bytes());
                for argv in commands {
                    put_argv(out, argv);
                }
            }
            Operation::Reclaim { keys_max } => {
                assert!(
                    write.seq == 0 && write.session.0 == 0,
                    "a reclaim has no session"
                );
                out.push(KIND_RECLAIM);
                out.extend_from_slice(&keys_max.to_le_bytes());
            }
        }
    }

    /// The encoded batch (at least one item must have been pushed).
    pub fn finish(self) -> Vec<u8> {
        self.batch.finish()
    }
}

/// Writes `stamp_ms` as the leader ms of a version 2 write batch; false (bytes untouched) if
/// `batch` is not one. What the key-value service's [`ProposalStamp`](crate::node::ProposalStamp)
/// does.
pub fn stamp_leader_ms(batch: &mut [u8], stamp_ms: u64) -> bool {
    if batch.len() < 13 || batch[0] != FORMAT_VERSION {
        return false;
    }
    batch[1..9].copy_from_slice(&stamp_ms.to_le_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_word() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..10)
    }

    fn arb_argv() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(arb_word(), 1..5)
    }

    #[derive(Debug, Clone)]
    enum OwnedOp {
        Command(Vec<Vec<u8>>),
        Transaction(Vec<(Vec<u8>, u64)>, Vec<Vec<Vec<u8>>>),
        Reclaim(u32),
    }

    fn arb_op() -> impl Strategy<Value = OwnedOp> {
        prop_oneof![
            arb_argv().prop_map(OwnedOp::Command),
            (
                proptest::collection::vec((arb_word(), any::<u64>()), 0..3),
                proptest::collection::vec(arb_argv(), 0..3)
            )
                .prop_map(|(w, c)| OwnedOp::Transaction(w, c)),
            (1u32..).prop_map(OwnedOp::Reclaim),
        ]
    }

    fn refs(argv: &[Vec<u8>]) -> Vec<&[u8]> {
        argv.iter().map(|w| &w[..]).collect()
    }

    fn write_of(session: u128, seq: u64, acked: u64, op: &OwnedOp) -> Write<'_> {
        match op {
            OwnedOp::Command(argv) => Write {
                session: SessionId(session),
                seq,
                acked_below: acked,
                operation: Operation::Command(refs(argv)),
            },
            OwnedOp::Transaction(watches, commands) => Write {
                session: SessionId(session),
                seq,
                acked_below: acked,
                operation: Operation::Transaction {
                    watches: watches.iter().map(|(k, r)| (&k[..], *r)).collect(),
                    commands: commands.iter().map(|c| refs(c)).collect(),
                },
            },
            OwnedOp::Reclaim(keys_max) => Write::reclaim(*keys_max),
        }
    }

    proptest! {
        #[test]
        fn v2_batches_round_trip_and_every_truncation_fails(
            leader_ms in any::<u64>(),
            writes in proptest::collection::vec(
                (any::<u128>(), 1u64.., any::<u64>(), arb_op()), 1..6),
        ) {
            let batch = WriteBatch {
                leader_ms,
                writes: writes
                    .iter()
                    .map(|(s, seq, acked, op)| write_of(*s, *seq, *acked, op))
                    .collect(),
            };
            let bytes = batch.encode();
            let computed: usize = batch.writes.iter().map(Write::encoded_bytes).sum();
            prop_assert_eq!(13 + computed, bytes.len(), "encoded_bytes matches the encoding");
            prop_assert_eq!(&WriteBatch::decode(&bytes).unwrap(), &batch);
            prop_assert_eq!(decode_write_batch(&bytes).unwrap(), AnyWriteBatch::V2(batch.clone()));
            for cut in 0..bytes.len() {
                prop_assert!(decode_write_batch(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(decode_write_batch(&longer).is_err());
            let mut stamped = bytes.clone();
            prop_assert!(stamp_leader_ms(&mut stamped, 77));
            prop_assert_eq!(WriteBatch::decode(&stamped).unwrap().leader_ms, 77);
            prop_assert_eq!(&stamped[9..], &bytes[9..]);
        }

        #[test]
        fn decoders_never_panic(input in proptest::collection::vec(any::<u8>(), 0..160)) {
            let _ = decode_write_batch(&input);
            let mut v2 = input.clone();
            if !v2.is_empty() {
                v2[0] = FORMAT_VERSION;
            }
            let _ = decode_write_batch(&v2);
        }
    }

    #[test]
    fn decode_errors_name_the_field_and_offset() {
        let argv: Vec<&[u8]> = vec![b"INCR", b"k"];
        let mut bytes = WriteBatch {
            leader_ms: 7,
            writes: vec![Write {
                session: SessionId(1),
                seq: 1,
                acked_below: 0,
                operation: Operation::Command(argv),
            }],
        }
        .encode();
        bytes[13 + 32] = 77;
        let error = decode_write_batch(&bytes).unwrap_err();
        assert_eq!((error.field, error.offset), ("kind", 45));
        assert!(error.to_string().contains("unknown kind 77"), "{error}");
        bytes[0] = 9;
        let error = decode_write_batch(&bytes).unwrap_err();
        assert_eq!((error.field, error.offset), ("version", 0));
        // A v1 batch is not stamped: its bytes stay as they were logged.
        let mut v1_bytes = vec![v1::FORMAT_VERSION; 20];
        assert!(!stamp_leader_ms(&mut v1_bytes, 5));
        assert_eq!(v1_bytes, vec![v1::FORMAT_VERSION; 20]);
        // A reclaim with a session is refused.
        let mut reclaim = WriteBatchEncoder::new(1);
        reclaim.push(&Write::reclaim(3));
        let mut reclaim = reclaim.finish();
        reclaim[13] = 1;
        assert_eq!(decode_write_batch(&reclaim).unwrap_err().field, "session");
    }
}

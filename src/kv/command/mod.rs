//! The replicated command encoding (writes) and the read query encoding.
//!
//! Writes travel through the Raft log as a **write batch**: one or more items, each with its
//! own client session and sequence number, so the server can put many clients' writes in one
//! log entry; each is deduplicated on its own. Reads never enter the log: they are **query
//! batches** answered by the state machine after a ReadIndex round. All integers are little
//! endian. A `bytes` field is a u32 length followed by that many bytes; an `argv` is a u32
//! word count (>= 1) followed by that many `bytes` (a command's words as the client sent
//! them, name first).
//!
//! Version 2 carries command words, not typed operations: the state machine is the one place
//! that defines what every command means, and a MULTI block is just several argv lists.
//! Version 1 (typed SET/DEL/APPEND/INCRBY/MSET, see [`v1`]) still decodes, for old logs.
//!
//! # Write batch, version 2 ([`write_batch`])
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0      | 1    | version = 2                                                    |
//! | 1      | 8    | leader ms (u64): overwritten by the leader when it logs the batch |
//! | 9      | 4    | item count N (u32, 1..=[`WRITES_PER_BATCH_MAX`])                |
//! | 13     |      | N items                                                        |
//!
//! Each item:
//!
//! | size | field                                                                        |
//! |------|------------------------------------------------------------------------------|
//! | 16   | session id (u128; high 64 bits: the session's creation ms, see `session_id`) |
//! | 8    | sequence number (u64, >= 1; 0 for a reclaim)                                 |
//! | 8    | acknowledged-below watermark (u64): the client has every result below it     |
//! | 1    | kind                                                                         |
//! |      | body                                                                         |
//!
//! | kind | item        | body                                                            |
//! |------|-------------|-----------------------------------------------------------------|
//! | 1    | command     | argv                                                            |
//! | 2    | transaction | watch count W (u32, may be 0), W × (key bytes, revision u64), command count C (u32, may be 0), C × argv |
//! | 3    | reclaim     | most keys to reclaim (u32, >= 1)                                |
//!
//! A reclaim (active expiry, proposed by the leader) belongs to no session: its session id is
//! 0, its seq 0 and its acked-below 0, and the state machine neither admits nor records it
//! (replaying one is harmless: it only removes keys already past their deadline).
//!
//! The leader ms field is the **leader's** clock: the proposer writes its own, and the leader
//! overwrites it (`NodeConfig::proposal_stamp`) with a value that never decreases on that
//! node, before appending the entry. The state machine's log time is the largest leader ms
//! seen so far; every replica sees the same log, hence the same times, so key expiry and
//! session expiry are decided alike everywhere without any replica reading its own clock.
//!
//! The result of a write batch is N results in order, each a u32 length and one RESP2 reply
//! (the exact bytes the client receives, e.g. `+OK\r\n`, `:3\r\n`). A transaction's reply is
//! `*-1` if a watched key's revision changed, else an array of its C replies (errors stay
//! errors inside the array, as Redis' `EXEC`). A reclaim's reply is the integer number of keys
//! with a deadline left after it.
//!
//! # Query batch, version 2 ([`query_batch`])
//!
//! | offset | size | field                                        |
//! |--------|------|----------------------------------------------|
//! | 0      | 1    | version = 2                                  |
//! | 1      | 8    | serving node's clock ms (u64)                |
//! | 9      | 4    | query count N (u32, 1..=[`QUERIES_PER_BATCH_MAX`]) |
//! | 13     |      | N queries: kind (u8), body                   |
//!
//! | kind | query     | body                                                          |
//! |------|-----------|---------------------------------------------------------------|
//! | 1    | command   | argv of a read command                                        |
//! | 2    | revisions | key count (u32, >= 1), key bytes each: for `WATCH`            |
//! | 3    | keyspace  | none: for `INFO keyspace`                                     |
//!
//! The answer has the same shape as a write batch's result: N × (u32 length, RESP2 reply). A
//! revisions query answers an array of integers, one per key: the log index of the key's last
//! change, 0 if absent or expired. A keyspace query answers `[keys, keys with a deadline]`,
//! both counting expired keys not reclaimed yet, as Redis' `INFO keyspace` does. The clock
//! hides keys whose deadline has passed by the serving node's clock even before the log time
//! gets there, so a read on the leader never returns a key past its deadline by the leader's
//! clock. Query batches never persist, so
//! version 1 query batches are no longer read.
//!
//! Decoding checks every length against the remaining bytes and rejects unknown versions and
//! kinds, zero counts and trailing bytes with a [`DecodeError`] naming the field and offset.

pub mod query_batch;
pub mod v1;
pub mod write_batch;

use std::fmt;

pub use query_batch::{Query, QueryBatch, QueryBatchEncoder};
pub use write_batch::{
    decode_write_batch, AnyWriteBatch, Operation, Write, WriteBatch, WriteBatchEncoder,
};

/// The version of write batches and query batches written now.
pub const FORMAT_VERSION: u8 = 2;
/// Most items in one write batch.
pub const WRITES_PER_BATCH_MAX: u32 = 4096;
/// Most queries in one batch.
pub const QUERIES_PER_BATCH_MAX: u32 = 4096;
/// Most words in one argv (a request holds at most this many, see `resp::Limits`).
pub const ARGV_WORDS_MAX: u32 = 1 << 20;

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

/// The frame every batch format shares: version byte, a u64 clock, a u32 item count patched
/// in at the end, then the items. The encoders of each format wrap it and add their items.
#[derive(Debug)]
pub(crate) struct BatchBuffer {
    buf: Vec<u8>,
    count: u32,
    items_max: u32,
    what: &'static str,
}

impl BatchBuffer {
    /// An empty batch of `what` ("write batch") in `version`, stamped with `clock_ms`.
    pub(crate) fn new(version: u8, clock_ms: u64, items_max: u32, what: &'static str) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.push(version);
        buf.extend_from_slice(&clock_ms.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        BatchBuffer {
            buf,
            count: 0,
            items_max,
            what,
        }
    }

    /// Items so far.
    pub(crate) fn len(&self) -> u32 {
        self.count
    }

    /// Encoded bytes so far.
    pub(crate) fn encoded_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Counts one more item and returns the buffer to append it to.
    pub(crate) fn item(&mut self) -> &mut Vec<u8> {
        assert!(self.count < self.items_max, "{} full", self.what);
        self.count += 1;
        &mut self.buf
    }

    /// The encoded batch; at least one item must have been added.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        assert!(self.count > 0, "empty {}", self.what);
        self.buf[9..13].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// A bounds-checked reader over encoded bytes.
pub(crate) struct Cursor<'a> {
    input: &'a [u8],
    pub(crate) at: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(input: &'a [u8], what: &'static str) -> Self {
        Cursor { input, at: 0, what }
    }

    pub(crate) fn error(&self, field: &'static str, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            what: self.what,
            field,
            offset: self.at,
            reason: reason.into(),
        }
    }

    pub(crate) fn take(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
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

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let bytes = self.take(8, field)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    pub(crate) fn u128(&mut self, field: &'static str) -> Result<u128, DecodeError> {
        let bytes = self.take(16, field)?;
        Ok(u128::from_le_bytes(bytes.try_into().expect("16 bytes")))
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }

    /// A count of at least 1 whose items need at least `item_bytes_min` bytes each, so a
    /// forged count cannot make the decoder allocate beyond the input's size.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        item_bytes_min: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.u32(field)? as usize;
        if count == 0 {
            return Err(self.error(field, "count is zero"));
        }
        if count.saturating_mul(item_bytes_min) > self.input.len() - self.at {
            return Err(self.error(field, format!("count {count} exceeds the input")));
        }
        Ok(count)
    }

    /// A count (at least 1) then that many byte strings.
    pub(crate) fn keys(&mut self, field: &'static str) -> Result<Vec<&'a [u8]>, DecodeError> {
        let count = self.count(field, 4)?;
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            keys.push(self.bytes(field)?);
        }
        Ok(keys)
    }

    pub(crate) fn version(&mut self, expected: u8) -> Result<(), DecodeError> {
        let version = self.u8("version")?;
        if version != expected {
            self.at -= 1;
            return Err(self.error("version", format!("unknown version {version}")));
        }
        Ok(())
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.at != self.input.len() {
            return Err(self.error(
                "end",
                format!("{} trailing bytes", self.input.len() - self.at),
            ));
        }
        Ok(())
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.input.len() - self.at
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one result (a RESP reply) to a result list.
pub fn push_result(out: &mut Vec<u8>, reply: &[u8]) {
    put_bytes(out, reply);
}

/// Splits a result list (a batch's answer) into its RESP replies, checking there are exactly
/// `expected` of them.
pub fn split_results(input: &[u8], expected: usize) -> Result<Vec<&[u8]>, DecodeError> {
    let mut cursor = Cursor::new(input, "result list");
    let mut replies = Vec::with_capacity(expected.min(QUERIES_PER_BATCH_MAX as usize));
    while cursor.remaining() > 0 {
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

//! The state machine's snapshot: written straight to the runtime's snapshot stream (which
//! compresses and checksums it), key by key, never built in memory.
//!
//! # Version 2
//!
//! | size | field                                                           |
//! |------|-----------------------------------------------------------------|
//! | 8    | magic `KETCHKV2`                                                |
//! |      | the session table (`SessionTable::write_to`, log time included) |
//! | 8    | key count (u64)                                                 |
//! |      | per key, in (hash, key) order: type tag u8, key length u32, key, the value as its tag says, deadline ms u64 (0: none), revision u64 |
//! | 8    | magic `KVEND002`: a snapshot cut short is detected              |
//!
//! | tag | value                                                                  |
//! |-----|------------------------------------------------------------------------|
//! | 1   | string: length u32, bytes                                              |
//! | 2   | hash: field count u64 (>= 1), then per field in (field hash, field) order: field length u32, field, value length u32, value |
//!
//! A type tag is not a new version: a reader that does not know a tag refuses the snapshot
//! (`unknown type tag`) rather than misreading it, and every version 2 reader knows tags 1
//! and 2 (tag 2 was added before version 2 was released).
//!
//! Keys past their deadline but not reclaimed yet are written too: the snapshot is the state
//! as applied, and reclaim is part of the log.
//!
//! # Version 1 (read only)
//!
//! | size | field                                                           |
//! |------|-----------------------------------------------------------------|
//! | 8    | magic `KETCHKV1`                                                |
//! |      | the session table                                               |
//! | 8    | key count (u64)                                                 |
//! |      | per key: key length u32, key, value length u32, value           |
//! | 8    | magic `KVEND001`                                                |
//!
//! Version 1 keys are strings without deadlines, restored at revision
//! [`V1_REVISION`](super::V1_REVISION), the revision a version 1 log entry gives what it
//! changes, so a replica that restored a version 1 snapshot and one that applied the same
//! version 1 entries agree.

use std::io::{self, Read, Write};

use super::hashes::Hash;
use super::keyspace::Keyspace;
use super::value::Value;
use super::V1_REVISION;
use crate::kv::session_table::{read_exact_vec, read_u32, read_u64, SessionConfig, SessionTable};

const MAGIC_V1: &[u8; 8] = b"KETCHKV1";
const END_V1: &[u8; 8] = b"KVEND001";
const MAGIC_V2: &[u8; 8] = b"KETCHKV2";
const END_V2: &[u8; 8] = b"KVEND002";
const TAG_STRING: u8 = 1;
const TAG_HASH: u8 = 2;

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

/// Writes a version 2 snapshot.
pub fn write_v2(sessions: &SessionTable, keys: &Keyspace, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(MAGIC_V2)?;
    sessions.write_to(out)?;
    out.write_all(&(keys.len() as u64).to_le_bytes())?;
    let mut written = 0u64;
    for (key, entry) in keys.iter_stored() {
        let tag = match &entry.value {
            Value::String(_) => TAG_STRING,
            Value::Hash(_) => TAG_HASH,
        };
        out.write_all(&[tag])?;
        write_bytes(out, key)?;
        match &entry.value {
            Value::String(value) => write_bytes(out, value)?,
            Value::Hash(hash) => {
                assert!(!hash.is_empty(), "a stored hash has fields");
                out.write_all(&(hash.len() as u64).to_le_bytes())?;
                for (field, value) in hash.iter() {
                    write_bytes(out, field)?;
                    write_bytes(out, value)?;
                }
            }
        }
        out.write_all(&entry.deadline_ms().unwrap_or(0).to_le_bytes())?;
        out.write_all(&entry.revision.to_le_bytes())?;
        written += 1;
    }
    assert_eq!(
        written,
        keys.len() as u64,
        "the key count matches the keys written"
    );
    out.write_all(END_V2)
}

/// Writes a length-prefixed byte string.
fn write_bytes(out: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).expect("keys, fields and values are below 4 GiB");
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

fn read_bytes(input: &mut dyn Read) -> io::Result<Vec<u8>> {
    let len = read_u32(input)? as usize;
    read_exact_vec(input, len)
}

/// A hash's fields (tag 2): a count >= 1, distinct fields.
fn read_hash(input: &mut dyn Read, n: u64) -> io::Result<Hash> {
    let count = read_u64(input)?;
    if count == 0 {
        return Err(invalid(format!("key {n}: an empty hash")));
    }
    let mut hash = Hash::default();
    for _ in 0..count {
        let field = read_bytes(input)?;
        let value = read_bytes(input)?;
        if !hash.insert(&field, value) {
            return Err(invalid(format!("key {n}: a hash holds a field twice")));
        }
    }
    Ok(hash)
}

/// Reads a snapshot of version 1 or 2.
pub fn read(config: SessionConfig, input: &mut dyn Read) -> io::Result<(SessionTable, Keyspace)> {
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    let v2 = match &magic {
        MAGIC_V2 => true,
        MAGIC_V1 => false,
        _ => {
            return Err(invalid(format!(
                "not a key-value snapshot (magic {magic:?})"
            )))
        }
    };
    let sessions = SessionTable::read_from(config, input)?;
    let count = read_u64(input)?;
    let mut keys = Keyspace::default();
    for n in 0..count {
        let mut tag = [TAG_STRING];
        if v2 {
            input.read_exact(&mut tag)?;
        }
        let key = read_bytes(input)?;
        let value = match tag[0] {
            TAG_STRING => Value::String(read_bytes(input)?),
            TAG_HASH => Value::Hash(read_hash(input, n)?),
            other => return Err(invalid(format!("key {n}: unknown type tag {other}"))),
        };
        let (deadline, revision) = if v2 {
            let deadline = read_u64(input)?;
            (Some(deadline).filter(|&d| d != 0), read_u64(input)?)
        } else {
            (None, V1_REVISION)
        };
        if keys.get(&key, 0).is_some() {
            return Err(invalid("snapshot holds a key twice"));
        }
        keys.set(&key, value, deadline, revision);
    }
    input.read_exact(&mut magic)?;
    if &magic != if v2 { END_V2 } else { END_V1 } {
        return Err(invalid(
            "key-value snapshot does not end with its end marker",
        ));
    }
    Ok((sessions, keys))
}

/// Writes a version 1 snapshot, as the version 1 code did (tests of old snapshots).
#[cfg(test)]
pub fn write_v1(
    sessions: &SessionTable,
    pairs: &[(Vec<u8>, Vec<u8>)],
    out: &mut dyn Write,
) -> io::Result<()> {
    out.write_all(MAGIC_V1)?;
    sessions.write_to(out)?;
    out.write_all(&(pairs.len() as u64).to_le_bytes())?;
    for (key, value) in pairs {
        out.write_all(&(key.len() as u32).to_le_bytes())?;
        out.write_all(key)?;
        out.write_all(&(value.len() as u32).to_le_bytes())?;
        out.write_all(value)?;
    }
    out.write_all(END_V1)
}

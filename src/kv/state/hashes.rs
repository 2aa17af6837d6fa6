//! Hash commands, with Redis 7.0's replies and error texts: `HSET HMSET HSETNX HGET HMGET
//! HDEL HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN HINCRBY HINCRBYFLOAT HSCAN`.
//!
//! # Order
//!
//! A [`Hash`] keeps its fields in a `BTreeMap` under (FNV-1a hash of the field, field), the
//! keyspace's order applied to fields: `HGETALL`, `HKEYS`, `HVALS`, `HSCAN` and snapshots list
//! fields in an order that depends only on the set of fields, so replicas that applied the
//! same log answer alike. (Redis lists a small hash in insertion order and a large one in its
//! table's order; a client may rely on neither.) The order makes an `HSCAN` cursor a plain
//! integer, as `SCAN`'s is: cursor `c` means "fields whose hash is >= c", so a field present
//! for the whole scan is returned at least once, and a scan ends with 0. One `HSCAN` visits
//! about `COUNT` fields (default 10, at most `SCAN_COUNT_MAX`), never splitting fields of one
//! hash value; Redis answers a small (listpack) hash whole whatever `COUNT` says, which this
//! matches for hashes of at most `COUNT` fields. `HSCAN` takes `MATCH` (on fields) and
//! `COUNT`, not `TYPE` (a syntax error, as in Redis) nor `NOVALUES` (Redis 7.4).
//!
//! # Memory per field
//!
//! Beyond the field and value bytes: the map's slot (key: hash 8 + `Vec` 24; value: `Vec`
//! 24), B-tree node slack (about a third of a slot on average), and an allocator header for
//! each of the field and the value (about 16 each, none for an empty one): roughly 110 bytes
//! per field. Redis packs a small hash into one listpack (a few bytes per field); Ketch does
//! not, so many small hashes cost more here than in Redis.
//!
//! # Value limit
//!
//! A field's value is a value: the server refuses, before proposing, an `HSET`/`HMSET` whose
//! values together (as `MSET`'s) or an `HSETNX` whose value exceed the value limit
//! (`value_too_large_text`). The state machine never grows a field's value beyond what was
//! given (`HINCRBY`/`HINCRBYFLOAT` results are short), so it need not check again. A hash as
//! a whole is not bounded by the value limit, as the keyspace is not: each command that grows
//! it is bounded by the proposal size, and its fields are written to snapshots one by one.
//!
//! # Floats
//!
//! `HINCRBYFLOAT` reads, computes and prints as `INCRBYFLOAT` does (see `strings`): `f64`,
//! shortest round-trip text, no exponent. Where Redis' `long double` still holds the result
//! (`1e308 + 1e308`), Ketch answers `ERR increment would produce NaN or Infinity`.
//!
//! `HDEL` removing a hash's last field removes the key (a hash is never empty); writes that
//! change a hash in place keep its deadline.

use std::collections::BTreeMap;

use super::commands::{arity_error_text, Exec};
use super::keys::{parse_cursor, ScanOptions};
use super::keyspace::{key_hash, Keyspace};
use super::strings::parse_float;
use super::value::{Value, WrongType};
use super::{parse_redis_integer, NOT_AN_INTEGER_TEXT, OVERFLOW_TEXT};
use crate::kv::resp::{write_array_header, write_bulk, write_integer, write_nil};

/// Redis' reply to `HINCRBY` on a field that does not hold a 64-bit integer.
pub const HASH_NOT_AN_INTEGER_TEXT: &str = "ERR hash value is not an integer";
/// Redis' reply to `HINCRBYFLOAT` on a field that does not hold a float.
pub const HASH_NOT_A_FLOAT_TEXT: &str = "ERR hash value is not a float";

/// A hash: fields to values, in (field hash, field) order (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hash {
    fields: BTreeMap<(u64, Vec<u8>), Vec<u8>>,
}

/// One page of an `HSCAN`.
#[derive(Debug)]
pub struct HashScanPage<'a> {
    /// The cursor to continue from (0: done).
    pub next_cursor: u64,
    /// Fields visited, with their values.
    pub fields: Vec<(&'a [u8], &'a [u8])>,
}

impl Hash {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True if there are no fields (never true of a stored hash).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field's value.
    pub fn get(&self, field: &[u8]) -> Option<&Vec<u8>> {
        // The lookup key owns the field: a `Borrow` form of a tuple key is not available.
        self.fields.get(&(key_hash(field), field.to_vec()))
    }

    /// Sets a field; true if it is new.
    pub fn insert(&mut self, field: &[u8], value: Vec<u8>) -> bool {
        self.fields
            .insert((key_hash(field), field.to_vec()), value)
            .is_none()
    }

    /// Removes a field; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        self.fields
            .remove(&(key_hash(field), field.to_vec()))
            .is_some()
    }

    /// Every field and value, in (field hash, field) order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|((_, field), value)| (&field[..], &value[..]))
    }

    /// Bytes of fields and values.
    pub fn payload_bytes(&self) -> usize {
        self.iter().map(|(f, v)| f.len() + v.len()).sum()
    }

    /// Visits about `count` fields from `cursor`, never splitting fields of one hash value.
    pub fn scan(&self, cursor: u64, count: usize) -> HashScanPage<'_> {
        let mut fields = Vec::new();
        let mut last_hash = None;
        for (visited, ((hash, field), value)) in
            self.fields.range((cursor, Vec::new())..).enumerate()
        {
            if visited >= count.max(1) && last_hash != Some(*hash) {
                return HashScanPage {
                    next_cursor: *hash,
                    fields,
                };
            }
            last_hash = Some(*hash);
            fields.push((&field[..], &value[..]));
        }
        HashScanPage {
            next_cursor: 0,
            fields,
        }
    }
}

/// The live hash at `key`: `Ok(None)` if absent.
fn read_hash<'k>(
    keys: &'k Keyspace,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<&'k Hash>, WrongType> {
    keys.get(key, now_ms).map(|e| e.value.as_hash()).transpose()
}

/// The live hash at `key` to change (created empty if absent, the caller then stores it), or
/// [`WrongType`]. Calls `change` with the hash; stores a new hash only if it is not empty,
/// and marks an existing one changed at `ex.index` if `change` says it changed it.
fn change_hash<T>(
    keys: &mut Keyspace,
    ex: &mut Exec<'_>,
    key: &[u8],
    change: impl FnOnce(&mut Hash, &mut Exec<'_>) -> (T, bool),
) -> Result<T, WrongType> {
    let index = ex.index;
    match keys.get_live_mut(key, ex.now_ms) {
        Some(entry) => {
            let hash = entry.value.as_hash_mut()?;
            let (result, changed) = change(hash, ex);
            let empty = hash.is_empty();
            if changed {
                entry.revision = index;
            }
            if empty {
                keys.remove(key, ex.now_ms);
            }
            Ok(result)
        }
        None => {
            let mut hash = Hash::default();
            let (result, _) = change(&mut hash, ex);
            if !hash.is_empty() {
                keys.set(key, Value::Hash(hash), None, index);
            }
            Ok(result)
        }
    }
}

fn hset_pairs(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]], name: &str) -> Option<i64> {
    if argv.len() % 2 == 1 {
        ex.error(&arity_error_text(name));
        return None;
    }
    let added = change_hash(keys, ex, argv[1], |hash, _| {
        let added = argv[2..]
            .chunks_exact(2)
            .filter(|pair| hash.insert(pair[0], pair[1].to_vec()))
            .count();
        (added as i64, true)
    });
    match added {
        Ok(added) => Some(added),
        Err(WrongType) => {
            ex.wrong_type();
            None
        }
    }
}

pub(super) fn hset(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    if let Some(added) = hset_pairs(keys, ex, argv, "hset") {
        write_integer(ex.out, added);
    }
}

pub(super) fn hmset(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    if hset_pairs(keys, ex, argv, "hmset").is_some() {
        ex.ok();
    }
}

pub(super) fn hsetnx(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let (field, value) = (argv[2], argv[3]);
    let set = change_hash(keys, ex, argv[1], |hash, _| {
        if hash.get(field).is_some() {
            (false, false)
        } else {
            (hash.insert(field, value.to_vec()), true)
        }
    });
    match set {
        Ok(set) => write_integer(ex.out, i64::from(set)),
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn hget(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match read_hash(keys, argv[1], ex.now_ms) {
        Ok(hash) => match hash.and_then(|h| h.get(argv[2])) {
            Some(value) => write_bulk(ex.out, value),
            None => write_nil(ex.out),
        },
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn hmget(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let Ok(hash) = read_hash(keys, argv[1], ex.now_ms) else {
        return ex.wrong_type();
    };
    write_array_header(ex.out, argv.len() - 2);
    for field in &argv[2..] {
        match hash.and_then(|h| h.get(field)) {
            Some(value) => write_bulk(ex.out, value),
            None => write_nil(ex.out),
        }
    }
}

pub(super) fn hdel(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let key = argv[1];
    let index = ex.index;
    let Some(entry) = keys.get_live_mut(key, ex.now_ms) else {
        return write_integer(ex.out, 0);
    };
    let Ok(hash) = entry.value.as_hash_mut() else {
        return ex.wrong_type();
    };
    let removed = argv[2..].iter().filter(|field| hash.remove(field)).count();
    let empty = hash.is_empty();
    if removed > 0 {
        entry.revision = index;
    }
    if empty {
        keys.remove(key, ex.now_ms);
    }
    write_integer(ex.out, removed as i64);
}

/// What `HGETALL`, `HKEYS` and `HVALS` list of each field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    Both,
    Fields,
    Values,
}

fn list(keys: &Keyspace, ex: &mut Exec<'_>, key: &[u8], listing: Listing) {
    let hash = match read_hash(keys, key, ex.now_ms) {
        Ok(hash) => hash,
        Err(WrongType) => return ex.wrong_type(),
    };
    let len = hash.map_or(0, Hash::len);
    let per_field = if listing == Listing::Both { 2 } else { 1 };
    write_array_header(ex.out, len * per_field);
    for (field, value) in hash.into_iter().flat_map(Hash::iter) {
        if listing != Listing::Values {
            write_bulk(ex.out, field);
        }
        if listing != Listing::Fields {
            write_bulk(ex.out, value);
        }
    }
}

pub(super) fn hgetall(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    list(keys, ex, argv[1], Listing::Both);
}

pub(super) fn hkeys(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    list(keys, ex, argv[1], Listing::Fields);
}

pub(super) fn hvals(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    list(keys, ex, argv[1], Listing::Values);
}

pub(super) fn hlen(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match read_hash(keys, argv[1], ex.now_ms) {
        Ok(hash) => write_integer(ex.out, hash.map_or(0, Hash::len) as i64),
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn hexists(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match read_hash(keys, argv[1], ex.now_ms) {
        Ok(hash) => {
            let found = hash.and_then(|h| h.get(argv[2])).is_some();
            write_integer(ex.out, i64::from(found));
        }
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn hstrlen(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match read_hash(keys, argv[1], ex.now_ms) {
        Ok(hash) => {
            let len = hash.and_then(|h| h.get(argv[2])).map_or(0, Vec::len);
            write_integer(ex.out, len as i64);
        }
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn hincrby(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    // Redis reads the increment before it looks at the key.
    let Some(delta) = parse_redis_integer(argv[3]) else {
        return ex.error(NOT_AN_INTEGER_TEXT);
    };
    let field = argv[2];
    let result = change_hash(keys, ex, argv[1], |hash, _| {
        let current = match hash.get(field) {
            None => 0,
            Some(value) => match parse_redis_integer(value) {
                Some(current) => current,
                None => return (Err(HASH_NOT_AN_INTEGER_TEXT), false),
            },
        };
        let Some(next) = current.checked_add(delta) else {
            return (Err(OVERFLOW_TEXT), false);
        };
        hash.insert(field, next.to_string().into_bytes());
        (Ok(next), true)
    });
    match result {
        Ok(Ok(next)) => write_integer(ex.out, next),
        Ok(Err(text)) => ex.error(text),
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn hincrbyfloat(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let Some(delta) = parse_float(argv[3]) else {
        return ex.error("ERR value is not a valid float");
    };
    if delta.is_infinite() {
        return ex.error("ERR value is NaN or Infinity");
    }
    let field = argv[2];
    let result = change_hash(keys, ex, argv[1], |hash, _| {
        let current = match hash.get(field) {
            None => 0.0,
            Some(value) => match parse_float(value) {
                Some(current) => current,
                None => return (Err(HASH_NOT_A_FLOAT_TEXT), false),
            },
        };
        let next = current + delta;
        if !next.is_finite() {
            return (Err("ERR increment would produce NaN or Infinity"), false);
        }
        // Rust's Display is the shortest round-trip text and never uses an exponent.
        let text = format!("{next}").into_bytes();
        hash.insert(field, text.clone());
        (Ok(text), true)
    });
    match result {
        Ok(Ok(text)) => write_bulk(ex.out, &text),
        Ok(Err(text)) => ex.error(text),
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn hscan(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let Some(cursor) = parse_cursor(argv[2]) else {
        return ex.error("ERR invalid cursor");
    };
    // Redis answers an absent key before it reads the options.
    let hash = match read_hash(keys, argv[1], ex.now_ms) {
        Ok(Some(hash)) => hash,
        Ok(None) => {
            write_array_header(ex.out, 2);
            write_bulk(ex.out, b"0");
            return write_array_header(ex.out, 0);
        }
        Err(WrongType) => return ex.wrong_type(),
    };
    let options = match ScanOptions::parse(&argv[3..], false) {
        Ok(options) => options,
        Err(text) => return ex.error(text),
    };
    let page = hash.scan(cursor, options.count);
    let matched: Vec<(&[u8], &[u8])> = page
        .fields
        .into_iter()
        .filter(|(field, _)| options.matches(field))
        .collect();
    write_array_header(ex.out, 2);
    write_bulk(ex.out, page.next_cursor.to_string().as_bytes());
    write_array_header(ex.out, matched.len() * 2);
    for (field, value) in matched {
        write_bulk(ex.out, field);
        write_bulk(ex.out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn order_depends_only_on_the_fields() {
        let (mut forward, mut backward) = (Hash::default(), Hash::default());
        for i in 0..200u32 {
            forward.insert(&i.to_le_bytes(), vec![1]);
        }
        for i in (0..200u32).rev() {
            backward.insert(&i.to_le_bytes(), vec![1]);
        }
        assert_eq!(forward, backward);
        assert!(forward.iter().eq(backward.iter()));
        assert_eq!(forward.payload_bytes(), 200 * 5);
    }

    #[test]
    fn a_scan_returns_every_field_present_throughout_despite_changes() {
        let mut hash = Hash::default();
        for i in 0..300u32 {
            hash.insert(format!("f{i}").as_bytes(), b"v".to_vec());
        }
        let (mut seen, mut cursor, mut pages) = (BTreeSet::new(), 0, 0);
        loop {
            let page = hash.scan(cursor, 7);
            assert!(page.fields.len() <= 9, "COUNT bounds a page");
            seen.extend(page.fields.iter().map(|(f, _)| f.to_vec()));
            cursor = page.next_cursor;
            pages += 1;
            // Churn between pages: remove some fields, add others.
            hash.remove(format!("f{}", 250 + pages).as_bytes());
            hash.insert(format!("new{pages}").as_bytes(), b"v".to_vec());
            if cursor == 0 {
                break;
            }
        }
        for i in 0..250u32 {
            assert!(seen.contains(format!("f{i}").as_bytes()), "f{i} missed");
        }
        assert!(pages >= 300 / 9, "{pages} pages");
    }
}

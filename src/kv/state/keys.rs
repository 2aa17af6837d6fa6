//! Key commands, with Redis 7.0's replies: `DEL UNLINK EXISTS TYPE RENAME RENAMENX KEYS SCAN
//! RANDOMKEY DBSIZE FLUSHDB FLUSHALL TIME`.
//!
//! `UNLINK` is `DEL` (values are freed at apply either way). `FLUSHDB`/`FLUSHALL` take
//! `ASYNC`/`SYNC` and ignore them. `RANDOMKEY` answers the first live key at or after a hash
//! derived from the time it runs at, so every replica answers alike (it need not be
//! uniformly random). `TIME` is the serving node's clock (its offset included) as the query
//! carried it, so its microseconds are the clock's milliseconds times 1000. `KEYS` walks every
//! key (as in Redis, its cost is the keyspace's); `SCAN` visits about `COUNT` keys per call
//! (default 10, see `keyspace` for the cursor).

use super::commands::Exec;
use super::keyspace::{key_hash, Keyspace};
use super::strings::SYNTAX_ERROR_TEXT;
use super::{parse_redis_integer, NOT_AN_INTEGER_TEXT};
use crate::kv::glob::glob_match;
use crate::kv::resp::{write_array_header, write_bulk, write_integer, write_nil, write_simple};

pub(super) fn del(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let removed = argv[1..]
        .iter()
        .filter(|key| keys.remove(key, ex.now_ms).is_some())
        .count();
    write_integer(ex.out, removed as i64);
}

pub(super) fn exists(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let count = argv[1..]
        .iter()
        .filter(|key| keys.get(key, ex.now_ms).is_some())
        .count();
    write_integer(ex.out, count as i64);
}

pub(super) fn type_of(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let name = keys
        .get(argv[1], ex.now_ms)
        .map_or("none", |entry| entry.value.type_name());
    write_simple(ex.out, name);
}

/// Moves `from` to `to` with its deadline; false if `nx` and `to` exists. `from` must be live.
fn rename_generic(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]], nx: bool) {
    let (from, to) = (argv[1], argv[2]);
    if keys.get_live_mut(from, ex.now_ms).is_none() {
        return ex.error("ERR no such key");
    }
    if from == to {
        return if nx {
            write_integer(ex.out, 0)
        } else {
            ex.ok()
        };
    }
    if nx && keys.get_live_mut(to, ex.now_ms).is_some() {
        return write_integer(ex.out, 0);
    }
    let entry = keys.remove(from, ex.now_ms).expect("checked live above");
    let deadline = entry.deadline_ms();
    keys.set(to, entry.value, deadline, ex.index);
    if nx {
        write_integer(ex.out, 1);
    } else {
        ex.ok();
    }
}

pub(super) fn rename(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    rename_generic(keys, ex, argv, false);
}

pub(super) fn renamenx(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    rename_generic(keys, ex, argv, true);
}

pub(super) fn keys(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let pattern = argv[1];
    let all = pattern == b"*";
    let matched: Vec<&[u8]> = keys
        .iter_live(ex.now_ms)
        .map(|(key, _)| key)
        .filter(|key| all || glob_match(pattern, key, false))
        .collect();
    write_array_header(ex.out, matched.len());
    for key in matched {
        write_bulk(ex.out, key);
    }
}

/// Most keys one `SCAN` visits whatever `COUNT` says: bounds a call's work and reply.
pub const SCAN_COUNT_MAX: usize = 100_000;

/// The options of `SCAN` and `HSCAN` (`TYPE` is `SCAN`'s only).
pub(super) struct ScanOptions<'a> {
    /// Keys (or fields) to visit, at most [`SCAN_COUNT_MAX`].
    pub(super) count: usize,
    /// `MATCH` glob.
    pub(super) pattern: Option<&'a [u8]>,
    /// `TYPE` name.
    pub(super) type_name: Option<&'a [u8]>,
}

impl<'a> ScanOptions<'a> {
    /// Parses the words after the cursor as Redis does; the error text if they are wrong.
    pub(super) fn parse(words: &[&'a [u8]], allow_type: bool) -> Result<Self, &'static str> {
        let mut options = ScanOptions {
            count: 10,
            pattern: None,
            type_name: None,
        };
        let mut pairs = words.chunks(2);
        for pair in &mut pairs {
            let [word, value] = pair else {
                return Err(SYNTAX_ERROR_TEXT);
            };
            if word.eq_ignore_ascii_case(b"count") {
                match parse_redis_integer(value) {
                    None => return Err(NOT_AN_INTEGER_TEXT),
                    Some(n) if n < 1 => return Err(SYNTAX_ERROR_TEXT),
                    Some(n) => options.count = (n as u64).min(SCAN_COUNT_MAX as u64) as usize,
                }
            } else if word.eq_ignore_ascii_case(b"match") {
                options.pattern = Some(value);
            } else if allow_type && word.eq_ignore_ascii_case(b"type") {
                options.type_name = Some(value);
            } else {
                return Err(SYNTAX_ERROR_TEXT);
            }
        }
        Ok(options)
    }

    /// Whether `name` passes `MATCH`.
    pub(super) fn matches(&self, name: &[u8]) -> bool {
        self.pattern
            .is_none_or(|p| p == b"*" || glob_match(p, name, false))
    }
}

/// A `SCAN`/`HSCAN` cursor: an unsigned integer.
pub(super) fn parse_cursor(word: &[u8]) -> Option<u64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

pub(super) fn scan(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let Some(cursor) = parse_cursor(argv[1]) else {
        return ex.error("ERR invalid cursor");
    };
    let options = match ScanOptions::parse(&argv[2..], true) {
        Ok(options) => options,
        Err(text) => return ex.error(text),
    };
    let page = keys.scan(cursor, options.count, ex.now_ms);
    let matched: Vec<&[u8]> = page
        .keys
        .iter()
        .filter(|(key, entry)| {
            options.matches(key)
                && options
                    .type_name
                    .is_none_or(|t| t.eq_ignore_ascii_case(entry.value.type_name().as_bytes()))
        })
        .map(|(key, _)| *key)
        .collect();
    write_array_header(ex.out, 2);
    write_bulk(ex.out, page.next_cursor.to_string().as_bytes());
    write_array_header(ex.out, matched.len());
    for key in matched {
        write_bulk(ex.out, key);
    }
}

pub(super) fn randomkey(keys: &Keyspace, ex: &mut Exec<'_>, _argv: &[&[u8]]) {
    let seed = key_hash(&ex.now_ms.to_le_bytes());
    match keys.some_key(seed, ex.now_ms) {
        Some(key) => write_bulk(ex.out, key),
        None => write_nil(ex.out),
    }
}

pub(super) fn dbsize(keys: &Keyspace, ex: &mut Exec<'_>, _argv: &[&[u8]]) {
    write_integer(ex.out, keys.len() as i64);
}

pub(super) fn flush(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match argv.len() {
        1 => {}
        2 if argv[1].eq_ignore_ascii_case(b"async") || argv[1].eq_ignore_ascii_case(b"sync") => {}
        _ => return ex.error(SYNTAX_ERROR_TEXT),
    }
    keys.clear();
    ex.ok();
}

pub(super) fn time(_keys: &Keyspace, ex: &mut Exec<'_>, _argv: &[&[u8]]) {
    let seconds = ex.clock_ms / 1000;
    let micros = (ex.clock_ms % 1000) * 1000;
    write_array_header(ex.out, 2);
    write_bulk(ex.out, seconds.to_string().as_bytes());
    write_bulk(ex.out, micros.to_string().as_bytes());
}

//! String commands, with Redis 7.0's replies and error texts: `GET SET SETNX SETEX PSETEX
//! GETSET GETDEL GETEX GETRANGE SETRANGE STRLEN APPEND INCR DECR INCRBY DECRBY INCRBYFLOAT
//! MGET MSET MSETNX`.
//!
//! Commands that change a value in place (`APPEND`, `SETRANGE`, the `INCR` family) keep its
//! deadline; commands that replace it (`SET` without `KEEPTTL`, `GETSET`, `MSET`) clear it,
//! as in Redis. The largest value a write may leave is the state machine's value limit
//! (`value_too_large_text`), checked here for what only the applied state knows (`APPEND`,
//! `SETRANGE` growth).
//!
//! `INCRBYFLOAT` computes in `f64` and prints the shortest text that reads back as the same
//! `f64`, never in exponent form; Redis computes in `long double` and prints up to 17
//! decimals, so results differ where the two precisions do (`10.6 + 1e20` is
//! `100000000000000000000` here, `100000000000000000008` in Redis on x86). Input is read by
//! Rust's float syntax (no hexadecimal floats, which `strtold` takes).

use super::commands::{arity_error_text, Exec};
use super::expiry::{relative_or_absolute_deadline, ExpireUnit};
use super::keyspace::Keyspace;
use super::value::{Value, WrongType};
use super::{parse_redis_integer, value_too_large_text, NOT_AN_INTEGER_TEXT, OVERFLOW_TEXT};
use crate::kv::resp::{write_array_header, write_bulk, write_integer, write_nil};

/// Redis' syntax error.
pub const SYNTAX_ERROR_TEXT: &str = "ERR syntax error";

/// The live string at `key`: `Ok(None)` if absent.
fn read_string<'k>(
    keys: &'k Keyspace,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<&'k Vec<u8>>, WrongType> {
    keys.get(key, now_ms)
        .map(|e| e.value.as_string())
        .transpose()
}

pub(super) fn get(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match read_string(keys, argv[1], ex.now_ms) {
        Ok(Some(value)) => write_bulk(ex.out, value),
        Ok(None) => write_nil(ex.out),
        Err(WrongType) => ex.wrong_type(),
    }
}

/// `SET` / `GETEX` options, as Redis' `parseExtendedStringArgumentsOrReply` reads them.
#[derive(Debug, Default)]
struct SetOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// The expiry word and its argument.
    expire: Option<(ExpireUnit, &'a [u8])>,
}

fn parse_set_options<'a>(words: &[&'a [u8]], getex: bool) -> Result<SetOptions<'a>, ()> {
    let mut options = SetOptions::default();
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        let has_next = i + 1 < words.len();
        let is = |name: &str| word.eq_ignore_ascii_case(name.as_bytes());
        let expire_unit = [
            ("ex", ExpireUnit::RelativeSeconds),
            ("px", ExpireUnit::RelativeMs),
            ("exat", ExpireUnit::AbsoluteSeconds),
            ("pxat", ExpireUnit::AbsoluteMs),
        ]
        .into_iter()
        .find(|(name, _)| is(name))
        .map(|(_, unit)| unit);
        if !getex && is("nx") && !options.xx {
            options.nx = true;
        } else if !getex && is("xx") && !options.nx {
            options.xx = true;
        } else if !getex && is("get") {
            options.get = true;
        } else if !getex && is("keepttl") && options.expire.is_none() {
            options.keepttl = true;
        } else if getex && is("persist") && options.expire.is_none() {
            options.persist = true;
        } else if let Some(unit) = expire_unit.filter(|unit| {
            has_next
                && !options.keepttl
                && !options.persist
                && options.expire.is_none_or(|(other, _)| other == *unit)
        }) {
            options.expire = Some((unit, words[i + 1]));
            i += 1;
        } else {
            return Err(());
        }
        i += 1;
    }
    Ok(options)
}

pub(super) fn set(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let Ok(options) = parse_set_options(&argv[3..], false) else {
        return ex.error(SYNTAX_ERROR_TEXT);
    };
    let deadline = match options.expire {
        None => None,
        Some((unit, arg)) => match relative_or_absolute_deadline(arg, unit, ex.now_ms, "set") {
            Ok(deadline) => Some(deadline),
            Err(text) => return ex.error(&text),
        },
    };
    set_with(keys, ex, argv[1], argv[2], &options, deadline);
}

fn set_with(
    keys: &mut Keyspace,
    ex: &mut Exec<'_>,
    key: &[u8],
    value: &[u8],
    options: &SetOptions<'_>,
    deadline: Option<u64>,
) {
    let (found, old_deadline) = match keys.get_live_mut(key, ex.now_ms) {
        None => (false, None),
        Some(entry) => {
            if options.get {
                match entry.value.as_string() {
                    Ok(old) => write_bulk(ex.out, old),
                    Err(WrongType) => return ex.wrong_type(),
                }
            }
            (true, entry.deadline_ms())
        }
    };
    if options.get && !found {
        write_nil(ex.out);
    }
    if (options.nx && found) || (options.xx && !found) {
        if !options.get {
            write_nil(ex.out);
        }
        return;
    }
    let deadline = if options.keepttl {
        old_deadline
    } else {
        deadline
    };
    keys.set(key, Value::String(value.to_vec()), deadline, ex.index);
    if !options.get {
        ex.ok();
    }
}

pub(super) fn setnx(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    if keys.get_live_mut(argv[1], ex.now_ms).is_some() {
        return write_integer(ex.out, 0);
    }
    keys.set(argv[1], Value::String(argv[2].to_vec()), None, ex.index);
    write_integer(ex.out, 1);
}

fn setex_with(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]], unit: ExpireUnit) {
    let name = if unit == ExpireUnit::RelativeSeconds {
        "setex"
    } else {
        "psetex"
    };
    match relative_or_absolute_deadline(argv[2], unit, ex.now_ms, name) {
        Ok(deadline) => {
            keys.set(
                argv[1],
                Value::String(argv[3].to_vec()),
                Some(deadline),
                ex.index,
            );
            ex.ok();
        }
        Err(text) => ex.error(&text),
    }
}

pub(super) fn setex(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    setex_with(keys, ex, argv, ExpireUnit::RelativeSeconds);
}

pub(super) fn psetex(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    setex_with(keys, ex, argv, ExpireUnit::RelativeMs);
}

pub(super) fn getset(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let options = SetOptions {
        get: true,
        ..SetOptions::default()
    };
    set_with(keys, ex, argv[1], argv[2], &options, None);
}

pub(super) fn getdel(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match keys.get_live_mut(argv[1], ex.now_ms) {
        None => write_nil(ex.out),
        Some(entry) => match entry.value.as_string() {
            Ok(value) => {
                write_bulk(ex.out, value);
                keys.remove(argv[1], ex.now_ms);
            }
            Err(WrongType) => ex.wrong_type(),
        },
    }
}

pub(super) fn getex(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let Ok(options) = parse_set_options(&argv[2..], true) else {
        return ex.error(SYNTAX_ERROR_TEXT);
    };
    let key = argv[1];
    let Some(entry) = keys.get_live_mut(key, ex.now_ms) else {
        return write_nil(ex.out);
    };
    if entry.value.as_string().is_err() {
        return ex.wrong_type();
    }
    let deadline = match options.expire {
        None => None,
        Some((unit, arg)) => match relative_or_absolute_deadline(arg, unit, ex.now_ms, "getex") {
            Ok(deadline) => Some(deadline),
            Err(text) => return ex.error(&text),
        },
    };
    let had_deadline = entry.deadline_ms().is_some();
    write_bulk(ex.out, entry.value.as_string().expect("checked above"));
    match deadline {
        Some(deadline) if deadline <= ex.now_ms => {
            keys.remove(key, ex.now_ms);
        }
        Some(deadline) => keys.set_deadline(key, Some(deadline), ex.index),
        None if options.persist && had_deadline => keys.set_deadline(key, None, ex.index),
        None => {}
    }
}

/// Redis' `GETRANGE` index rules over a string of `len` bytes: the byte range, possibly
/// empty.
fn range_of(start: i64, end: i64, len: usize) -> std::ops::Range<usize> {
    let len_i = len as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return 0..0;
    }
    let mut start = if start < 0 { len_i + start } else { start };
    let mut end = if end < 0 { len_i + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len_i {
        end = len_i - 1;
    }
    if start > end {
        return 0..0;
    }
    start as usize..end as usize + 1
}

pub(super) fn getrange(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let (Some(start), Some(end)) = (parse_redis_integer(argv[2]), parse_redis_integer(argv[3]))
    else {
        return ex.error(NOT_AN_INTEGER_TEXT);
    };
    match read_string(keys, argv[1], ex.now_ms) {
        Ok(None) => write_bulk(ex.out, b""),
        Ok(Some(value)) => write_bulk(ex.out, &value[range_of(start, end, value.len())]),
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn setrange(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let Some(offset) = parse_redis_integer(argv[2]) else {
        return ex.error(NOT_AN_INTEGER_TEXT);
    };
    if offset < 0 {
        return ex.error("ERR offset is out of range");
    }
    let (key, patch) = (argv[1], argv[3]);
    let offset = offset as usize;
    let index = ex.index;
    let too_large = |ex: &mut Exec<'_>| {
        let needed = offset.saturating_add(patch.len());
        if needed > ex.max_value_bytes {
            ex.error(&value_too_large_text(needed, ex.max_value_bytes));
            true
        } else {
            false
        }
    };
    match keys.get_live_mut(key, ex.now_ms) {
        None => {
            if patch.is_empty() {
                return write_integer(ex.out, 0);
            }
            if too_large(ex) {
                return;
            }
            let mut value = vec![0u8; offset];
            value.extend_from_slice(patch);
            let len = value.len();
            keys.set(key, Value::String(value), None, index);
            write_integer(ex.out, len as i64);
        }
        Some(entry) => {
            let Ok(value) = entry.value.as_string_mut() else {
                return ex.wrong_type();
            };
            if patch.is_empty() {
                return write_integer(ex.out, value.len() as i64);
            }
            if too_large(ex) {
                return;
            }
            let end = offset + patch.len();
            if value.len() < end {
                value.resize(end, 0);
            }
            value[offset..end].copy_from_slice(patch);
            let len = value.len();
            entry.revision = index;
            write_integer(ex.out, len as i64);
        }
    }
}

pub(super) fn strlen(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match read_string(keys, argv[1], ex.now_ms) {
        Ok(value) => write_integer(ex.out, value.map_or(0, |v| v.len()) as i64),
        Err(WrongType) => ex.wrong_type(),
    }
}

pub(super) fn append(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let (key, tail) = (argv[1], argv[2]);
    let limit = ex.max_value_bytes;
    let index = ex.index;
    match keys.get_live_mut(key, ex.now_ms) {
        None => {
            if tail.len() > limit {
                return ex.error(&value_too_large_text(tail.len(), limit));
            }
            keys.set(key, Value::String(tail.to_vec()), None, index);
            write_integer(ex.out, tail.len() as i64);
        }
        Some(entry) => {
            let Ok(value) = entry.value.as_string_mut() else {
                return ex.wrong_type();
            };
            let resulting = value.len().saturating_add(tail.len());
            if resulting > limit {
                return ex.error(&value_too_large_text(resulting, limit));
            }
            value.extend_from_slice(tail);
            entry.revision = index;
            write_integer(ex.out, resulting as i64);
        }
    }
}

/// Replaces a live string in place (keeping its deadline) or creates it without one.
fn store_in_place(keys: &mut Keyspace, key: &[u8], now_ms: u64, index: u64, value: Vec<u8>) {
    match keys.get_live_mut(key, now_ms) {
        Some(entry) => {
            entry.value = Value::String(value);
            entry.revision = index;
        }
        None => keys.set(key, Value::String(value), None, index),
    }
}

fn incr_by(keys: &mut Keyspace, ex: &mut Exec<'_>, key: &[u8], delta: i64) {
    let current = match read_string(keys, key, ex.now_ms) {
        Err(WrongType) => return ex.wrong_type(),
        Ok(None) => 0,
        Ok(Some(value)) => match parse_redis_integer(value) {
            Some(current) => current,
            None => return ex.error(NOT_AN_INTEGER_TEXT),
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return ex.error(OVERFLOW_TEXT);
    };
    store_in_place(
        keys,
        key,
        ex.now_ms,
        ex.index,
        next.to_string().into_bytes(),
    );
    write_integer(ex.out, next);
}

pub(super) fn incr(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    incr_by(keys, ex, argv[1], 1);
}

pub(super) fn decr(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    incr_by(keys, ex, argv[1], -1);
}

pub(super) fn incrby(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match parse_redis_integer(argv[2]) {
        Some(delta) => incr_by(keys, ex, argv[1], delta),
        None => ex.error(NOT_AN_INTEGER_TEXT),
    }
}

pub(super) fn decrby(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    match parse_redis_integer(argv[2]) {
        None => ex.error(NOT_AN_INTEGER_TEXT),
        Some(delta) => match delta.checked_neg() {
            Some(delta) => incr_by(keys, ex, argv[1], delta),
            None => ex.error("ERR decrement would overflow"),
        },
    }
}

/// A float as Redis' `string2ld` accepts it (no spaces, no NaN), in Rust's float syntax.
pub(super) fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.trim() != text {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| !f.is_nan())
}

pub(super) fn incrbyfloat(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    const NOT_A_FLOAT: &str = "ERR value is not a valid float";
    let current = match read_string(keys, argv[1], ex.now_ms) {
        Err(WrongType) => return ex.wrong_type(),
        Ok(None) => 0.0,
        Ok(Some(value)) => match parse_float(value) {
            Some(current) => current,
            None => return ex.error(NOT_A_FLOAT),
        },
    };
    let Some(delta) = parse_float(argv[2]) else {
        return ex.error(NOT_A_FLOAT);
    };
    let next = current + delta;
    if !next.is_finite() {
        return ex.error("ERR increment would produce NaN or Infinity");
    }
    // Rust's Display is the shortest round-trip text and never uses an exponent.
    let text = format!("{next}").into_bytes();
    write_bulk(ex.out, &text);
    store_in_place(keys, argv[1], ex.now_ms, ex.index, text);
}

pub(super) fn mget(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    write_array_header(ex.out, argv.len() - 1);
    for key in &argv[1..] {
        match read_string(keys, key, ex.now_ms) {
            Ok(Some(value)) => write_bulk(ex.out, value),
            Ok(None) | Err(WrongType) => write_nil(ex.out),
        }
    }
}

fn pairs_ok(ex: &mut Exec<'_>, argv: &[&[u8]], name: &str) -> bool {
    if argv.len() % 2 == 0 {
        ex.error(&arity_error_text(name));
        return false;
    }
    true
}

pub(super) fn mset(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    if !pairs_ok(ex, argv, "mset") {
        return;
    }
    for pair in argv[1..].chunks_exact(2) {
        keys.set(pair[0], Value::String(pair[1].to_vec()), None, ex.index);
    }
    ex.ok();
}

pub(super) fn msetnx(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    if !pairs_ok(ex, argv, "msetnx") {
        return;
    }
    let any_exists = argv[1..]
        .chunks_exact(2)
        .any(|pair| keys.get(pair[0], ex.now_ms).is_some());
    if any_exists {
        return write_integer(ex.out, 0);
    }
    for pair in argv[1..].chunks_exact(2) {
        keys.set(pair[0], Value::String(pair[1].to_vec()), None, ex.index);
    }
    write_integer(ex.out, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_follows_redis_index_rules() {
        let len = "Hello World".len();
        assert_eq!(range_of(0, 4, len), 0..5);
        assert_eq!(range_of(-3, -1, len), 8..11);
        assert_eq!(range_of(0, -1, len), 0..11);
        assert_eq!(range_of(10, 100, len), 10..11);
        assert_eq!(range_of(5, 3, len), 0..0);
        assert_eq!(range_of(-1, -5, len), 0..0);
        assert_eq!(range_of(-100, 2, len), 0..3);
        assert_eq!(range_of(0, 0, 0), 0..0);
    }

    #[test]
    fn floats_parse_like_string2ld() {
        assert_eq!(parse_float(b"10.5"), Some(10.5));
        assert_eq!(parse_float(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b""), None);
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b"abc"), None);
    }
}

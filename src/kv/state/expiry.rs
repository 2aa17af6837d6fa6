//! Expiry commands, with Redis 7.0's rules: `EXPIRE PEXPIRE EXPIREAT PEXPIREAT` (with
//! `NX|XX|GT|LT`), `TTL PTTL EXPIRETIME PEXPIRETIME PERSIST`, and the deadline arithmetic
//! `SET`/`SETEX`/`GETEX` share.
//!
//! Relative times become absolute at apply: log time + ttl, so every replica stores the same
//! deadline. A deadline already past (`EXPIRE k -1`, `EXPIREAT k 1`) deletes the key, as
//! Redis does. For `GT`/`LT` a key without a deadline counts as an infinite one (`GT` never
//! applies to it, `LT` always does), as in Redis 7.

use super::commands::Exec;
use super::keyspace::Keyspace;
use super::{parse_redis_integer, NOT_AN_INTEGER_TEXT};
use crate::kv::resp::write_integer;

/// The unit and base of an expiry argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireUnit {
    /// `EX`, `EXPIRE`, `SETEX`: seconds from now.
    RelativeSeconds,
    /// `PX`, `PEXPIRE`, `PSETEX`: ms from now.
    RelativeMs,
    /// `EXAT`, `EXPIREAT`: Unix seconds.
    AbsoluteSeconds,
    /// `PXAT`, `PEXPIREAT`: Unix ms.
    AbsoluteMs,
}

impl ExpireUnit {
    fn ms_per_unit(self) -> i64 {
        match self {
            ExpireUnit::RelativeSeconds | ExpireUnit::AbsoluteSeconds => 1000,
            ExpireUnit::RelativeMs | ExpireUnit::AbsoluteMs => 1,
        }
    }

    fn base_ms(self, now_ms: u64) -> i64 {
        match self {
            ExpireUnit::RelativeSeconds | ExpireUnit::RelativeMs => now_ms as i64,
            ExpireUnit::AbsoluteSeconds | ExpireUnit::AbsoluteMs => 0,
        }
    }
}

fn invalid_expire_text(command: &str) -> String {
    format!("ERR invalid expire time in '{command}' command")
}

/// The deadline an expiry argument of `SET`/`SETEX`/`PSETEX`/`GETEX` names (Redis'
/// `getExpireMillisecondsOrReply`: it must be positive and not overflow), or the error text.
pub fn relative_or_absolute_deadline(
    arg: &[u8],
    unit: ExpireUnit,
    now_ms: u64,
    command: &str,
) -> Result<u64, String> {
    let value = parse_redis_integer(arg).ok_or_else(|| NOT_AN_INTEGER_TEXT.to_string())?;
    let per_unit = unit.ms_per_unit();
    if value <= 0 || value > i64::MAX / per_unit {
        return Err(invalid_expire_text(command));
    }
    match (value * per_unit).checked_add(unit.base_ms(now_ms)) {
        Some(deadline) if deadline > 0 => Ok(deadline as u64),
        _ => Err(invalid_expire_text(command)),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(words: &[&[u8]]) -> Result<ExpireFlags, String> {
    let mut flags = ExpireFlags::default();
    for word in words {
        match word.to_ascii_lowercase().as_slice() {
            b"nx" => flags.nx = true,
            b"xx" => flags.xx = true,
            b"gt" => flags.gt = true,
            b"lt" => flags.lt = true,
            _ => {
                return Err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(word)
                ))
            }
        }
    }
    if flags.nx && (flags.xx || flags.gt || flags.lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if flags.gt && flags.lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    Ok(flags)
}

fn expire_generic(
    keys: &mut Keyspace,
    ex: &mut Exec<'_>,
    argv: &[&[u8]],
    unit: ExpireUnit,
    command: &str,
) {
    let flags = match parse_expire_flags(&argv[3..]) {
        Ok(flags) => flags,
        Err(text) => return ex.error(&text),
    };
    let Some(mut when) = parse_redis_integer(argv[2]) else {
        return ex.error(NOT_AN_INTEGER_TEXT);
    };
    let per_unit = unit.ms_per_unit();
    if per_unit > 1 {
        if when > i64::MAX / per_unit || when < i64::MIN / per_unit {
            return ex.error(&invalid_expire_text(command));
        }
        when *= per_unit;
    }
    let base = unit.base_ms(ex.now_ms);
    if when > i64::MAX - base {
        return ex.error(&invalid_expire_text(command));
    }
    when += base;
    let key = argv[1];
    let Some(entry) = keys.get_live_mut(key, ex.now_ms) else {
        return write_integer(ex.out, 0);
    };
    let current = entry.deadline_ms().map(|d| d as i64);
    let refused = (flags.nx && current.is_some())
        || (flags.xx && current.is_none())
        || (flags.gt && current.is_none_or(|current| when <= current))
        || (flags.lt && current.is_some_and(|current| when >= current));
    if refused {
        return write_integer(ex.out, 0);
    }
    if when <= ex.now_ms as i64 {
        keys.remove(key, ex.now_ms);
    } else {
        keys.set_deadline(key, Some(when as u64), ex.index);
    }
    write_integer(ex.out, 1);
}

pub(super) fn expire(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    expire_generic(keys, ex, argv, ExpireUnit::RelativeSeconds, "expire");
}

pub(super) fn pexpire(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    expire_generic(keys, ex, argv, ExpireUnit::RelativeMs, "pexpire");
}

pub(super) fn expireat(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    expire_generic(keys, ex, argv, ExpireUnit::AbsoluteSeconds, "expireat");
}

pub(super) fn pexpireat(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    expire_generic(keys, ex, argv, ExpireUnit::AbsoluteMs, "pexpireat");
}

/// Redis' `ttlGenericCommand`: -2 absent, -1 no deadline, else the remaining (or absolute)
/// time, seconds rounded to nearest.
fn ttl_generic(keys: &Keyspace, ex: &mut Exec<'_>, key: &[u8], in_ms: bool, absolute: bool) {
    let Some(entry) = keys.get(key, ex.now_ms) else {
        return write_integer(ex.out, -2);
    };
    let Some(deadline) = entry.deadline_ms() else {
        return write_integer(ex.out, -1);
    };
    let ms = if absolute {
        deadline as i64
    } else {
        (deadline as i64 - ex.now_ms as i64).max(0)
    };
    // i128: Redis rounds a deadline near i64::MAX without overflowing.
    let seconds = ((i128::from(ms) + 500) / 1000) as i64;
    write_integer(ex.out, if in_ms { ms } else { seconds });
}

pub(super) fn ttl(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    ttl_generic(keys, ex, argv[1], false, false);
}

pub(super) fn pttl(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    ttl_generic(keys, ex, argv[1], true, false);
}

pub(super) fn expiretime(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    ttl_generic(keys, ex, argv[1], false, true);
}

pub(super) fn pexpiretime(keys: &Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    ttl_generic(keys, ex, argv[1], true, true);
}

pub(super) fn persist(keys: &mut Keyspace, ex: &mut Exec<'_>, argv: &[&[u8]]) {
    let had_deadline = keys
        .get_live_mut(argv[1], ex.now_ms)
        .is_some_and(|entry| entry.deadline_ms().is_some());
    if had_deadline {
        keys.set_deadline(argv[1], None, ex.index);
    }
    write_integer(ex.out, i64::from(had_deadline));
}

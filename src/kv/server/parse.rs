//! What a request means: [`kind_of`] sorts it by how it is served (a write, a read, an
//! explicit-session write, an admin or a local command), and the parsers turn its words into
//! an operation or a query of `command`, or into the error reply, worded as Redis words it.

use std::fmt::Write as _;

use super::config::ServerConfig;
use crate::kv::admin::is_admin;
use crate::kv::command::{Operation, Query, SetCondition, Write as KvWrite};
use crate::kv::kv_state_machine::{parse_redis_integer, value_too_large_text, NOT_AN_INTEGER_TEXT};
use crate::kv::session_id::SessionId;

/// How a request is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Write,
    Read,
    Explicit,
    Admin,
    Local,
}

pub(super) fn kind_of(name: &[u8]) -> Kind {
    let mut buf = [0u8; 16];
    match upper(name, &mut buf) {
        Some(b"SET" | b"DEL" | b"APPEND" | b"INCR" | b"DECR" | b"INCRBY" | b"DECRBY" | b"MSET") => {
            Kind::Write
        }
        Some(b"GET" | b"MGET" | b"EXISTS" | b"DBSIZE") => Kind::Read,
        Some(b"KETCH.WRITE") => Kind::Explicit,
        Some(name) if is_admin(name) => Kind::Admin,
        _ => Kind::Local,
    }
}

/// Upper-cases a command name into `buf`; `None` if too long to be one we know.
pub(super) fn upper<'b>(name: &[u8], buf: &'b mut [u8; 16]) -> Option<&'b [u8]> {
    if name.len() > buf.len() {
        return None;
    }
    for (out, byte) in buf.iter_mut().zip(name) {
        *out = byte.to_ascii_uppercase();
    }
    Some(&buf[..name.len()])
}

pub(super) fn arity_error(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// Redis 7's wording: `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
pub(super) fn unknown_command_text(args: &[Vec<u8>]) -> String {
    let name = String::from_utf8_lossy(&args[0]);
    let name: String = name.chars().take(128).collect();
    let mut rest = String::new();
    for arg in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let arg = String::from_utf8_lossy(arg);
        let arg: String = arg.chars().take(room).collect();
        let _ = write!(rest, "'{arg}' ");
    }
    format!("ERR unknown command '{name}', with args beginning with: {rest}")
}

fn parse_u64_arg(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses a write command (name and arguments) into an operation, or the error reply text.
/// `Ok(None)` if the command is not a write.
pub(super) fn parse_write(args: &[Vec<u8>]) -> Result<Option<Operation<'_>>, String> {
    let mut buf = [0u8; 16];
    let Some(name) = upper(&args[0], &mut buf) else {
        return Ok(None);
    };
    let argc = args.len();
    let operation = match name {
        b"SET" => {
            if argc < 3 {
                return Err(arity_error("set"));
            }
            let mut condition = SetCondition::Always;
            for option in &args[3..] {
                let mut obuf = [0u8; 16];
                match upper(option, &mut obuf) {
                    Some(b"NX") if condition == SetCondition::Always => {
                        condition = SetCondition::IfAbsent
                    }
                    Some(b"XX") if condition == SetCondition::Always => {
                        condition = SetCondition::IfPresent
                    }
                    Some(b"KEEPTTL") => {}
                    Some(b"EX" | b"PX" | b"EXAT" | b"PXAT") => {
                        return Err("ERR key expiry (EX/PX/EXAT/PXAT) is not supported by ketch"
                            .to_string())
                    }
                    Some(b"GET") => {
                        return Err("ERR SET ... GET is not supported by ketch".to_string())
                    }
                    _ => return Err("ERR syntax error".to_string()),
                }
            }
            Operation::Set {
                key: &args[1],
                value: &args[2],
                condition,
            }
        }
        b"DEL" => {
            if argc < 2 {
                return Err(arity_error("del"));
            }
            Operation::Del {
                keys: args[1..].iter().map(|k| &k[..]).collect(),
            }
        }
        b"APPEND" => {
            if argc != 3 {
                return Err(arity_error("append"));
            }
            Operation::Append {
                key: &args[1],
                value: &args[2],
            }
        }
        b"INCR" | b"DECR" => {
            if argc != 2 {
                return Err(arity_error(if name == b"INCR" { "incr" } else { "decr" }));
            }
            Operation::IncrBy {
                key: &args[1],
                delta: if name == b"INCR" { 1 } else { -1 },
            }
        }
        b"INCRBY" | b"DECRBY" => {
            let incr = name == b"INCRBY";
            if argc != 3 {
                return Err(arity_error(if incr { "incrby" } else { "decrby" }));
            }
            let Some(delta) = parse_redis_integer(&args[2]) else {
                return Err(NOT_AN_INTEGER_TEXT.to_string());
            };
            let delta = if incr {
                delta
            } else {
                delta
                    .checked_neg()
                    .ok_or_else(|| "ERR decrement would overflow".to_string())?
            };
            Operation::IncrBy {
                key: &args[1],
                delta,
            }
        }
        b"MSET" => {
            if argc < 3 || argc % 2 == 0 {
                return Err(arity_error("mset"));
            }
            Operation::MSet {
                pairs: args[1..]
                    .chunks_exact(2)
                    .map(|pair| (&pair[0][..], &pair[1][..]))
                    .collect(),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(operation))
}

/// Parses a read command into a query, or the error reply text; `Ok(None)` if not a read.
pub(super) fn parse_read(args: &[Vec<u8>]) -> Result<Option<Query<'_>>, String> {
    let mut buf = [0u8; 16];
    let Some(name) = upper(&args[0], &mut buf) else {
        return Ok(None);
    };
    let argc = args.len();
    let query = match name {
        b"GET" => {
            if argc != 2 {
                return Err(arity_error("get"));
            }
            Query::Get { key: &args[1] }
        }
        b"MGET" | b"EXISTS" => {
            let mget = name == b"MGET";
            if argc < 2 {
                return Err(arity_error(if mget { "mget" } else { "exists" }));
            }
            let keys = args[1..].iter().map(|k| &k[..]).collect();
            if mget {
                Query::MGet { keys }
            } else {
                Query::Exists { keys }
            }
        }
        b"DBSIZE" => {
            if argc != 1 {
                return Err(arity_error("dbsize"));
            }
            Query::DbSize
        }
        _ => return Ok(None),
    };
    Ok(Some(query))
}

/// Parses `KETCH.WRITE <session> <seq> <acked-below> <write command> [args...]`.
pub(super) fn parse_explicit_write(args: &[Vec<u8>]) -> Result<KvWrite<'_>, String> {
    if args.len() < 5 {
        return Err(arity_error("ketch.write"));
    }
    let session = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|text| text.parse::<SessionId>().ok())
        .ok_or_else(|| "ERR KETCH.WRITE: the session id must be 32 hex digits".to_string())?;
    let seq = parse_u64_arg(&args[2])
        .filter(|&seq| seq >= 1)
        .ok_or_else(|| "ERR KETCH.WRITE: seq must be an integer >= 1".to_string())?;
    let acked_below = parse_u64_arg(&args[3])
        .ok_or_else(|| "ERR KETCH.WRITE: acked-below must be a non-negative integer".to_string())?;
    match parse_write(&args[4..])? {
        Some(operation) => Ok(KvWrite {
            session,
            seq,
            acked_below,
            operation,
        }),
        None => Err(
            "ERR KETCH.WRITE wraps a write: SET, DEL, APPEND, INCR, INCRBY, DECR, DECRBY or MSET"
                .to_string(),
        ),
    }
}

/// The refusal of a write too large to propose, if it is: a value over
/// [`ServerConfig::max_value_bytes`] (`value too large`), or keys that make the write encode
/// past what one log entry may hold (`command too large`). Checked before the write takes a
/// sequence number, so a refused write leaves no gap in its session.
pub(super) fn size_refusal(operation: &Operation<'_>, config: &ServerConfig) -> Option<String> {
    let value_bytes = operation.value_bytes();
    if value_bytes > config.max_value_bytes {
        return Some(value_too_large_text(value_bytes, config.max_value_bytes));
    }
    // The session fields every write carries, then the operation.
    let encoded = 32 + operation.encoded_bytes();
    if encoded > config.write_bytes_max() {
        return Some(format!(
            "ERR command too large ({encoded} bytes encoded; limit {})",
            config.write_bytes_max()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn write_commands_parse_like_redis() {
        assert_eq!(
            parse_write(&args(&["set", "k", "v", "nx"])).unwrap(),
            Some(Operation::Set {
                key: b"k",
                value: b"v",
                condition: SetCondition::IfAbsent
            })
        );
        assert_eq!(
            parse_write(&args(&["SET", "k", "v", "NX", "XX"])).unwrap_err(),
            "ERR syntax error"
        );
        assert!(parse_write(&args(&["SET", "k", "v", "EX", "10"]))
            .unwrap_err()
            .contains("not supported"));
        assert_eq!(
            parse_write(&args(&["SET", "k"])).unwrap_err(),
            "ERR wrong number of arguments for 'set' command"
        );
        assert_eq!(
            parse_write(&args(&["MSET", "a", "1", "b"])).unwrap_err(),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            parse_write(&args(&["INCRBY", "k", "x"])).unwrap_err(),
            NOT_AN_INTEGER_TEXT
        );
        assert_eq!(
            parse_write(&args(&["DECRBY", "k", "-9223372036854775808"])).unwrap_err(),
            "ERR decrement would overflow"
        );
        assert_eq!(
            parse_write(&args(&["decr", "k"])).unwrap(),
            Some(Operation::IncrBy {
                key: b"k",
                delta: -1
            })
        );
        assert_eq!(parse_write(&args(&["GET", "k"])).unwrap(), None);
    }

    #[test]
    fn explicit_writes_carry_their_session() {
        let id = SessionId::new(5, 6);
        let text = id.to_string();
        let request = args(&["KETCH.WRITE", &text, "3", "2", "INCR", "c"]);
        let KvWrite {
            session,
            seq,
            acked_below: acked,
            operation: op,
        } = parse_explicit_write(&request).unwrap();
        assert_eq!((session, seq, acked), (id, 3, 2));
        assert_eq!(
            op,
            Operation::IncrBy {
                key: b"c",
                delta: 1
            }
        );
        assert!(
            parse_explicit_write(&args(&["KETCH.WRITE", &text, "0", "0", "INCR", "c"])).is_err()
        );
        assert!(
            parse_explicit_write(&args(&["KETCH.WRITE", "zz", "1", "0", "INCR", "c"])).is_err()
        );
        assert!(
            parse_explicit_write(&args(&["KETCH.WRITE", &text, "1", "0", "GET", "c"]))
                .unwrap_err()
                .contains("wraps a write")
        );
    }

    #[test]
    fn unknown_commands_are_worded_like_redis_7() {
        assert_eq!(
            unknown_command_text(&args(&["foo", "a", "b"])),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            unknown_command_text(&args(&["foo"])),
            "ERR unknown command 'foo', with args beginning with: "
        );
    }
}

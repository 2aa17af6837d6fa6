//! What a request means: [`kind_of`] sorts it by how it is served (a write, a read, an
//! explicit-session write, an admin or a local command) from the state machine's command
//! table (`state::commands`), and the parsers turn its words into a write item or a query of
//! `command`, or into the error reply, worded as Redis words it. Arity is checked here, before
//! proposing; everything else a command's arguments may get wrong is answered when applied,
//! by the one place that defines the command. List, set and sorted-set commands are
//! classified as reads so that `parse_read` refuses them without reaching the node.

use std::fmt::Write as _;

use super::config::ServerConfig;
use crate::kv::admin::is_admin;
use crate::kv::command::{Operation, Query, Write as KvWrite};
use crate::kv::session_id::SessionId;
use crate::kv::state::commands::{arity_error_text, lookup, unsupported_text};
use crate::kv::state::value_too_large_text;

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
    if let Some(spec) = lookup(name) {
        return if spec.is_write() {
            Kind::Write
        } else {
            Kind::Read
        };
    }
    if unsupported_text(name).is_some() {
        // Answered by `parse_read` with the refusal, without reaching the node.
        return Kind::Read;
    }
    let mut buf = [0u8; 16];
    match upper(name, &mut buf) {
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
    arity_error_text(name)
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

fn words(args: &[Vec<u8>]) -> Vec<&[u8]> {
    args.iter().map(|word| &word[..]).collect()
}

/// Parses a write command into the item that carries it (its words), or the error reply text
/// for a wrong number of arguments. `Ok(None)` if the command is not a write. Everything else
/// (syntax, integers, types) is answered by the state machine when applied.
pub(super) fn parse_write(args: &[Vec<u8>]) -> Result<Option<Operation<'_>>, String> {
    let Some(spec) = lookup(&args[0]).filter(|spec| spec.is_write()) else {
        return Ok(None);
    };
    let pairs = matches!(spec.name, "mset" | "msetnx");
    if !spec.arity_ok(args.len()) || (pairs && args.len() % 2 == 0) {
        return Err(arity_error(spec.name));
    }
    Ok(Some(Operation::Command(words(args))))
}

/// Parses a read command into a query, or the error reply text (wrong arity, or a list, set
/// or sorted-set command); `Ok(None)` if not a read.
pub(super) fn parse_read(args: &[Vec<u8>]) -> Result<Option<Query<'_>>, String> {
    if let Some(text) = unsupported_text(&args[0]) {
        return Err(text);
    }
    let Some(spec) = lookup(&args[0]).filter(|spec| !spec.is_write()) else {
        return Ok(None);
    };
    if !spec.arity_ok(args.len()) {
        return Err(arity_error(spec.name));
    }
    Ok(Some(Query::Command(words(args))))
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
        None => {
            Err("ERR KETCH.WRITE wraps a write command (SET, DEL, INCR, EXPIRE, ...)".to_string())
        }
    }
}

/// The refusal of a write too large to propose, if it is: a value over
/// [`ServerConfig::max_value_bytes`] (`value too large`), or keys that make the write encode
/// past what one log entry may hold (`command too large`). Checked before the write takes a
/// sequence number, so a refused write leaves no gap in its session.
pub(super) fn size_refusal(operation: &Operation<'_>, config: &ServerConfig) -> Option<String> {
    let value_bytes = value_bytes(operation);
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

/// The bytes of the values a write command gives whole (the value of `SET`, `SETNX`,
/// `SETEX`, `PSETEX`, `GETSET`, `APPEND`, `SETRANGE`, `HSETNX`; the values of
/// `MSET`/`MSETNX`, and the field values of `HSET`/`HMSET`, together); 0 for others.
fn value_bytes(operation: &Operation<'_>) -> usize {
    let argv = match operation {
        Operation::Command(argv) => argv,
        Operation::Transaction { commands, .. } => {
            return commands
                .iter()
                .map(|argv| value_bytes(&Operation::Command(argv.clone())))
                .sum()
        }
        Operation::Reclaim { .. } => return 0,
    };
    let Some(spec) = argv.first().and_then(|name| lookup(name)) else {
        return 0;
    };
    let at = |i: usize| argv.get(i).map_or(0, |word| word.len());
    match spec.name {
        "set" | "setnx" | "getset" | "append" => at(2),
        "setex" | "psetex" | "setrange" => at(3),
        "mset" | "msetnx" => argv.iter().skip(2).step_by(2).map(|w| w.len()).sum(),
        "hsetnx" => at(3),
        "hset" | "hmset" => argv.iter().skip(3).step_by(2).map(|w| w.len()).sum(),
        _ => 0,
    }
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
            Some(Operation::Command(vec![b"set", b"k", b"v", b"nx"]))
        );
        assert_eq!(
            parse_write(&args(&["SET", "k"])).unwrap_err(),
            "ERR wrong number of arguments for 'set' command"
        );
        assert_eq!(
            parse_write(&args(&["MSET", "a", "1", "b"])).unwrap_err(),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            parse_write(&args(&["expire", "k"])).unwrap_err(),
            "ERR wrong number of arguments for 'expire' command"
        );
        assert_eq!(parse_write(&args(&["GET", "k"])).unwrap(), None);
        assert_eq!(kind_of(b"getex"), Kind::Write);
        assert_eq!(kind_of(b"HSET"), Kind::Write);
        assert_eq!(kind_of(b"hincrbyfloat"), Kind::Write);
        assert_eq!(kind_of(b"hdel"), Kind::Write);
        assert_eq!(kind_of(b"HGETALL"), Kind::Read);
        assert_eq!(kind_of(b"hscan"), Kind::Read);
        assert_eq!(kind_of(b"TTL"), Kind::Read);
        assert_eq!(kind_of(b"ping"), Kind::Local);
        assert_eq!(kind_of(b"lpush"), Kind::Read);
        assert_eq!(
            parse_read(&args(&["LPUSH", "l", "a"])).unwrap_err(),
            "ERR 'lpush' is not supported by ketch (lists, sets and sorted sets are not implemented)"
        );
        assert_eq!(
            parse_read(&args(&["get"])).unwrap_err(),
            "ERR wrong number of arguments for 'get' command"
        );
    }

    #[test]
    fn values_are_measured_before_proposing() {
        let config = ServerConfig {
            max_value_bytes: 4,
            ..ServerConfig::default()
        };
        let check = |words: &[&str]| {
            let request = args(words);
            size_refusal(&parse_write(&request).unwrap().unwrap(), &config)
        };
        assert_eq!(check(&["SET", "k", "1234"]), None);
        assert_eq!(
            check(&["SET", "k", "12345"]),
            Some(value_too_large_text(5, 4))
        );
        assert_eq!(
            check(&["SETEX", "k", "10", "12345"]),
            Some(value_too_large_text(5, 4))
        );
        assert_eq!(
            check(&["MSET", "a", "123", "b", "45"]),
            Some(value_too_large_text(5, 4))
        );
        assert_eq!(check(&["DEL", "a-long-key-name"]), None);
        assert_eq!(check(&["HSET", "h", "a-long-field", "1234"]), None);
        assert_eq!(
            check(&["HSET", "h", "a", "123", "b", "45"]),
            Some(value_too_large_text(5, 4))
        );
        assert_eq!(
            check(&["HMSET", "h", "a", "12345"]),
            Some(value_too_large_text(5, 4))
        );
        assert_eq!(
            check(&["HSETNX", "h", "a", "12345"]),
            Some(value_too_large_text(5, 4))
        );
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
        assert_eq!(op, Operation::Command(vec![b"INCR", b"c"]));
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

//! Commands over the whole keyspace when it is split over many lanes (groups): which ones,
//! which lanes they go to, and how their parts make one reply.
//!
//! With one lane none of this applies: every command goes to lane 0. With many:
//!
//! | command                  | lanes                       | reply                          |
//! |--------------------------|-----------------------------|--------------------------------|
//! | `DBSIZE`                 | those this node leads       | the sum                        |
//! | `KEYS pattern`           | those this node leads       | the arrays joined              |
//! | `RANDOMKEY`              | those this node leads       | one of the keys found, at random |
//! | `INFO` (keyspace)        | those this node leads       | the counts summed              |
//! | `FLUSHALL`, `FLUSHDB`    | every lane                  | `+OK`, or the first error      |
//! | `SCAN`                   | refused (not yet)           |                                |
//!
//! Reads cover the ranges this node leads, as a Redis Cluster master answers for its own
//! slots: cluster clients (redis-py's `RedisCluster.dbsize()`, `keys()`) send them to every
//! master and add the replies up, which counts each key once. A node that leads nothing
//! answers as an empty master (`:0`, an empty array). Leadership is the node's latest view
//! (see `kv::sharded`): while a leader changes, a key may be counted by the old and the new
//! leader, or by neither, for a moment. Flushes are writes: each lane's goes to its group's
//! leader, so one `FLUSHALL` empties every range, as it empties a whole Redis.

use crate::kv::resp::{Limits, Reply, ReplyParser};

/// How the parts of a fanned-out command make its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Combine {
    /// Integers, summed (`DBSIZE`).
    Sum,
    /// Arrays, joined in lane order (`KEYS`).
    Join,
    /// One of the non-null bulk strings, at random; null if none (`RANDOMKEY`).
    AnyNonNull,
    /// Arrays of two integers, summed element-wise (`INFO`'s key counts).
    PairSum,
    /// `+OK` if every part is; else the first error (`FLUSHALL`).
    AllOk,
    /// Refused before it was sent: answered already, nothing to combine.
    Refused,
}

/// Which lanes a fanned-out command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lanes {
    /// Those this node leads.
    Led,
    /// All of them.
    All,
}

/// The error for a command that cannot run over many lanes yet.
pub(super) const SCAN_REFUSAL: &str =
    "ERR SCAN over more than one shard is not supported yet: use KEYS, or SCAN a --shards 1 node";

/// What a keyless command does over many lanes: `Some(Ok(..))` if it fans out,
/// `Some(Err(text))` if it is refused, `None` if it goes to lane 0 as any keyless command.
pub(super) fn fan_out(name: &[u8]) -> Option<Result<(Lanes, Combine), &'static str>> {
    let is = |word: &str| name.eq_ignore_ascii_case(word.as_bytes());
    if is("dbsize") {
        Some(Ok((Lanes::Led, Combine::Sum)))
    } else if is("keys") {
        Some(Ok((Lanes::Led, Combine::Join)))
    } else if is("randomkey") {
        Some(Ok((Lanes::Led, Combine::AnyNonNull)))
    } else if is("flushall") || is("flushdb") {
        Some(Ok((Lanes::All, Combine::AllOk)))
    } else if is("scan") {
        Some(Err(SCAN_REFUSAL))
    } else {
        None
    }
}

impl Combine {
    /// The reply made of `parts` (RESP2, as the state machine writes them; none: the reply
    /// of a node that leads nothing).
    pub(super) fn apply(self, parts: &[Vec<u8>]) -> Vec<u8> {
        if let Some(error) = parts.iter().find(|part| part.first() == Some(&b'-')) {
            return error.clone();
        }
        let parsed: Vec<Option<Reply>> = parts.iter().map(|part| parse(part)).collect();
        match self {
            Combine::Sum => {
                let sum: i64 = parsed
                    .iter()
                    .map(|reply| match reply {
                        Some(Reply::Integer(n)) => *n,
                        _ => 0,
                    })
                    .sum();
                format!(":{sum}\r\n").into_bytes()
            }
            Combine::PairSum => {
                let (mut keys, mut expires) = (0i64, 0i64);
                for reply in parsed.iter().flatten() {
                    if let Reply::Array(Some(items)) = reply {
                        if let [Reply::Integer(k), Reply::Integer(e)] = &items[..] {
                            keys += k;
                            expires += e;
                        }
                    }
                }
                format!("*2\r\n:{keys}\r\n:{expires}\r\n").into_bytes()
            }
            Combine::Join => {
                let mut count = 0usize;
                let mut body = Vec::new();
                for part in parts {
                    if let Some((n, rest)) = array_header(part) {
                        count += n;
                        body.extend_from_slice(rest);
                    }
                }
                let mut out = format!("*{count}\r\n").into_bytes();
                out.extend_from_slice(&body);
                out
            }
            Combine::AnyNonNull => {
                let found: Vec<&Vec<u8>> = parts
                    .iter()
                    .zip(&parsed)
                    .filter(|(_, reply)| matches!(reply, Some(Reply::Bulk(Some(_)))))
                    .map(|(part, _)| part)
                    .collect();
                if found.is_empty() {
                    b"$-1\r\n".to_vec()
                } else {
                    found[pick(found.len())].clone()
                }
            }
            Combine::AllOk => b"+OK\r\n".to_vec(),
            Combine::Refused => unreachable!("a refused command has no parts"),
        }
    }
}

fn parse(part: &[u8]) -> Option<Reply> {
    match ReplyParser::new(Limits::default()).parse(part) {
        Ok(Some((reply, _))) => Some(reply),
        _ => None,
    }
}

/// An array reply's element count and the bytes after its header.
fn array_header(part: &[u8]) -> Option<(usize, &[u8])> {
    let rest = part.strip_prefix(b"*")?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let count: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((count, &rest[end + 2..]))
}

/// An index below `n` (n > 0) that varies from call to call; `RANDOMKEY` needs no more.
fn pick(n: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos as usize % n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn parts_combine_as_one_redis_would_answer() {
        assert_eq!(Combine::Sum.apply(&parts(&[":3\r\n", ":4\r\n"])), b":7\r\n");
        assert_eq!(Combine::Sum.apply(&[]), b":0\r\n");
        assert_eq!(
            Combine::Join.apply(&parts(&[
                "*1\r\n$1\r\na\r\n",
                "*0\r\n",
                "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"
            ])),
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(Combine::Join.apply(&[]), b"*0\r\n");
        assert_eq!(
            Combine::PairSum.apply(&parts(&["*2\r\n:5\r\n:1\r\n", "*2\r\n:2\r\n:0\r\n"])),
            b"*2\r\n:7\r\n:1\r\n"
        );
        assert_eq!(
            Combine::AnyNonNull.apply(&parts(&["$-1\r\n", "$1\r\nk\r\n", "$-1\r\n"])),
            b"$1\r\nk\r\n"
        );
        assert_eq!(Combine::AnyNonNull.apply(&parts(&["$-1\r\n"])), b"$-1\r\n");
        assert_eq!(
            Combine::AllOk.apply(&parts(&["+OK\r\n", "+OK\r\n"])),
            b"+OK\r\n"
        );
    }

    #[test]
    fn an_error_in_any_part_is_the_reply() {
        let failed = parts(&[":3\r\n", "-TRYAGAIN no leader\r\n", "-TIMEOUT x\r\n"]);
        for combine in [
            Combine::Sum,
            Combine::Join,
            Combine::AllOk,
            Combine::PairSum,
        ] {
            assert_eq!(combine.apply(&failed), b"-TRYAGAIN no leader\r\n");
        }
    }

    #[test]
    fn which_commands_fan_out() {
        assert_eq!(fan_out(b"DBSIZE"), Some(Ok((Lanes::Led, Combine::Sum))));
        assert_eq!(fan_out(b"flushall"), Some(Ok((Lanes::All, Combine::AllOk))));
        assert_eq!(fan_out(b"scan"), Some(Err(SCAN_REFUSAL)));
        assert_eq!(fan_out(b"GET"), None);
        assert_eq!(fan_out(b"TIME"), None);
    }
}

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
//! | `SCAN cursor ...`        | one lane per call (below)   | the lane's page, its cursor re-encoded |
//!
//! Reads cover the ranges this node leads, as a Redis Cluster master answers for its own
//! slots: cluster clients (redis-py's `RedisCluster.dbsize()`, `keys()`) send them to every
//! master and add the replies up, which counts each key once. A node that leads nothing
//! answers as an empty master (`:0`, an empty array). Leadership is the node's latest view
//! (see `kv::sharded`): while a leader changes, a key may be counted by the old and the new
//! leader, or by neither, for a moment. Flushes are writes: each lane's goes to its group's
//! leader, so one `FLUSHALL` empties every range, as it empties a whole Redis.
//!
//! # SCAN over lanes
//!
//! A node's `SCAN` walks the lanes it leads, one lane at a time, in lane order, and each call
//! is one page of one lane's keyspace ([`ScanCursor`]):
//!
//! - cursor 0 starts at the first lane this node leads (a node that leads none answers an
//!   empty, finished scan, as an empty master);
//! - a lane's own cursor is a key hash (see `Keyspace::scan`); its pages end between hash
//!   windows of `SCAN_WINDOW_BITS` bits, so the hash without those bits loses nothing, and
//!   the client's cursor is `((lane + 1) << 53) | (hash >> 11)`, below 2^64 for up to 2,047
//!   lanes (the service allows 1,024);
//! - when a lane's scan ends, the cursor moves to the next lane this node leads (by its view
//!   when the page was asked for), and 0 once there is none.
//!
//! Redis' guarantee holds per lane: a key present for the whole scan is returned at least
//! once by the node that led its lane when the scan entered that lane. A lane entered is
//! finished even if its leadership moves meanwhile (its pages are read through the group's
//! leader). As with Redis Cluster during a failover, a range whose leadership moves from a
//! node not yet scanned to one already past it is missed by a scan over every master; scans
//! that must see everything run again after `CLUSTER SLOTS` is stable, or use `KEYS` per node.

use crate::kv::resp::{Limits, Reply, ReplyParser};
use crate::kv::state::keyspace::SCAN_WINDOW_BITS;

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
}

/// Which lanes a fanned-out command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lanes {
    /// Those this node leads.
    Led,
    /// All of them.
    All,
}

/// What a keyless command does over many lanes: `Some(..)` if it fans out, `None` if it
/// goes to lane 0 as any keyless command (`SCAN` is served by [`ScanCursor`] instead).
pub(super) fn fan_out(name: &[u8]) -> Option<(Lanes, Combine)> {
    let is = |word: &str| name.eq_ignore_ascii_case(word.as_bytes());
    if is("dbsize") {
        Some((Lanes::Led, Combine::Sum))
    } else if is("keys") {
        Some((Lanes::Led, Combine::Join))
    } else if is("randomkey") {
        Some((Lanes::Led, Combine::AnyNonNull))
    } else if is("flushall") || is("flushdb") {
        Some((Lanes::All, Combine::AllOk))
    } else {
        None
    }
}

/// Where a `SCAN` over many lanes is: a lane and a key hash in its keyspace (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ScanCursor {
    /// The lane.
    pub lane: usize,
    /// The lane's own cursor: a key hash, of which a client's cursor keeps the bits above
    /// [`SCAN_WINDOW_BITS`] (the lane's pages end between windows, so that loses nothing).
    pub hash: u64,
}

/// Where the lane sits in a client's cursor.
const LANE_SHIFT: u32 = 64 - SCAN_WINDOW_BITS;

impl ScanCursor {
    /// The cursor a client sends back, never 0.
    pub(super) fn encode(self) -> u64 {
        assert!(
            (self.lane as u64) + 1 < (1 << SCAN_WINDOW_BITS),
            "lane {} does not fit a SCAN cursor",
            self.lane
        );
        ((self.lane as u64 + 1) << LANE_SHIFT) | (self.hash >> SCAN_WINDOW_BITS)
    }

    /// A client's cursor, other than 0; `None` if no [`ScanCursor::encode`] makes it.
    pub(super) fn decode(cursor: u64) -> Option<ScanCursor> {
        let lane = (cursor >> LANE_SHIFT).checked_sub(1)? as usize;
        Some(ScanCursor {
            lane,
            hash: (cursor & ((1 << LANE_SHIFT) - 1)) << SCAN_WINDOW_BITS,
        })
    }

    /// A lane's `SCAN` reply with its cursor replaced by the client's: this lane again, the
    /// start of `next_lane`, or 0. An error, or a reply not shaped as a `SCAN` reply, is
    /// returned as it is.
    pub(super) fn client_reply(lane: usize, next_lane: Option<usize>, reply: &[u8]) -> Vec<u8> {
        let Some((hash, rest)) = split_scan_reply(reply) else {
            return reply.to_vec();
        };
        let cursor = if hash != 0 {
            ScanCursor { lane, hash }.encode()
        } else {
            next_lane.map_or(0, |lane| ScanCursor { lane, hash: 0 }.encode())
        };
        let cursor = cursor.to_string();
        let mut out = format!("*2\r\n${}\r\n{cursor}\r\n", cursor.len()).into_bytes();
        out.extend_from_slice(rest);
        out
    }
}

/// A `SCAN` reply's cursor and what follows it (the keys' array).
fn split_scan_reply(reply: &[u8]) -> Option<(u64, &[u8])> {
    let rest = reply.strip_prefix(b"*2\r\n$")?;
    let end = rest.iter().position(|&b| b == b'\r')?;
    let len: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let body = rest.get(end + 2..)?;
    let cursor = std::str::from_utf8(body.get(..len)?).ok()?.parse().ok()?;
    let tail = body.get(len..)?.strip_prefix(b"\r\n")?;
    Some((cursor, tail))
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
        assert_eq!(fan_out(b"DBSIZE"), Some((Lanes::Led, Combine::Sum)));
        assert_eq!(fan_out(b"flushall"), Some((Lanes::All, Combine::AllOk)));
        assert_eq!(fan_out(b"scan"), None);
        assert_eq!(fan_out(b"GET"), None);
        assert_eq!(fan_out(b"TIME"), None);
    }

    #[test]
    fn scan_cursors_round_trip_and_never_read_as_zero() {
        for lane in [0usize, 1, 15, 1023, 2046] {
            for hash in [
                0u64,
                1 << SCAN_WINDOW_BITS,
                u64::MAX >> SCAN_WINDOW_BITS << SCAN_WINDOW_BITS,
            ] {
                let cursor = ScanCursor { lane, hash };
                let encoded = cursor.encode();
                assert_ne!(encoded, 0);
                assert_eq!(ScanCursor::decode(encoded), Some(cursor));
            }
        }
        assert_eq!(
            ScanCursor::decode(12345),
            None,
            "no lane: not a cursor of ours"
        );
    }

    #[test]
    fn a_lane_reply_gets_the_client_cursor() {
        let keys = "*2\r\n$1\r\na\r\n$1\r\nb\r\n";
        let hash = 7u64 << 40;
        let reply = format!("*2\r\n${}\r\n{hash}\r\n{keys}", hash.to_string().len());
        let out = ScanCursor::client_reply(3, Some(5), reply.as_bytes());
        let (cursor, rest) = split_scan_reply(&out).unwrap();
        assert_eq!(
            ScanCursor::decode(cursor),
            Some(ScanCursor { lane: 3, hash })
        );
        assert_eq!(rest, keys.as_bytes());
        // The lane is done: on to the next lane, or done.
        let done = format!("*2\r\n$1\r\n0\r\n{keys}");
        let (cursor, _) =
            split_scan_reply(&ScanCursor::client_reply(3, Some(5), done.as_bytes())).unwrap();
        assert_eq!(
            ScanCursor::decode(cursor),
            Some(ScanCursor { lane: 5, hash: 0 })
        );
        let (cursor, _) =
            split_scan_reply(&ScanCursor::client_reply(3, None, done.as_bytes())).unwrap();
        assert_eq!(cursor, 0);
        assert_eq!(
            ScanCursor::client_reply(3, None, b"-ERR x\r\n"),
            b"-ERR x\r\n"
        );
    }
}

//! The state machine against Redis 7.0's replies (each expected reply was checked on a
//! `redis-server` 7.0), sessions, transactions, expiry, reclaim, snapshots and determinism.

use super::*;
use crate::kv::command::v1::{
    Operation as V1Operation, SetCondition, Write as V1Write, WriteBatchEncoder as V1Encoder,
};
use crate::kv::command::{split_results, QueryBatchEncoder, Write as KvWrite, WriteBatchEncoder};
use crate::kv::session_table::SESSION_EXPIRED_TEXT;
use proptest::prelude::*;

struct Harness {
    sm: KvStateMachine,
    session: SessionId,
    seq: u64,
    index: u64,
    /// The leader stamp of the next write and the clock of the next query.
    now_ms: u64,
}

impl Harness {
    fn new() -> Self {
        Harness {
            sm: KvStateMachine::new(SessionConfig::default()),
            session: SessionId::new(1, 1),
            seq: 0,
            index: 0,
            now_ms: 1_000_000,
        }
    }

    fn apply_one(&mut self, write: &KvWrite<'_>, leader_ms: u64) -> String {
        let mut encoder = WriteBatchEncoder::new(leader_ms);
        encoder.push(write);
        self.index += 1;
        let result = self.sm.apply(self.index, &encoder.finish());
        let replies = split_results(&result, 1).unwrap();
        String::from_utf8_lossy(replies[0]).into_owned()
    }

    fn item(&mut self, operation: Operation<'_>) -> String {
        self.seq += 1;
        let write = KvWrite {
            session: self.session,
            seq: self.seq,
            acked_below: 0,
            operation,
        };
        self.apply_one(&write, self.now_ms)
    }

    /// A write command, applied at log time `now_ms`.
    fn w(&mut self, words: &[&str]) -> String {
        self.item(Operation::Command(
            words.iter().map(|w| w.as_bytes()).collect(),
        ))
    }

    /// A read command, answered with the query clock `now_ms`.
    fn r(&mut self, words: &[&str]) -> String {
        self.query(Query::Command(words.iter().map(|w| w.as_bytes()).collect()))
    }

    fn query(&mut self, query: Query<'_>) -> String {
        let mut encoder = QueryBatchEncoder::new(self.now_ms);
        encoder.push(&query);
        let result = self.sm.query(&encoder.finish());
        String::from_utf8_lossy(split_results(&result, 1).unwrap()[0]).into_owned()
    }

    fn snapshot(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.sm.snapshot(&mut bytes).unwrap();
        bytes
    }
}

fn err(text: &str) -> String {
    format!("-{text}\r\n")
}

#[test]
fn string_commands_answer_like_redis() {
    let mut h = Harness::new();
    assert_eq!(h.r(&["GET", "k"]), "$-1\r\n");
    assert_eq!(h.w(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(h.r(&["get", "k"]), "$1\r\nv\r\n");
    assert_eq!(h.w(&["SET", "k", "w", "NX"]), "$-1\r\n");
    assert_eq!(h.w(&["SET", "k", "w", "XX"]), "+OK\r\n");
    assert_eq!(h.w(&["SET", "n", "x", "XX"]), "$-1\r\n");
    assert_eq!(h.w(&["SET", "k", "v", "NX", "XX"]), err("ERR syntax error"));
    assert_eq!(h.w(&["SET", "k", "v", "EX"]), err("ERR syntax error"));
    assert_eq!(
        h.w(&["SET", "k", "v", "EX", "1", "PX", "1"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.w(&["SET", "k", "v", "KEEPTTL", "EX", "1"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.w(&["SET", "k", "v", "EX", "0"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        h.w(&["SET", "k", "v", "EX", "9223372036854775807"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        h.w(&["SET", "k", "v", "EX", "abc"]),
        err(NOT_AN_INTEGER_TEXT)
    );
    assert_eq!(h.w(&["SET", "k", "old2", "GET"]), "$1\r\nw\r\n");
    assert_eq!(h.w(&["SET", "g", "new", "GET"]), "$-1\r\n");
    assert_eq!(h.w(&["SET", "g", "x", "NX", "GET"]), "$3\r\nnew\r\n");
    assert_eq!(h.r(&["GET", "g"]), "$3\r\nnew\r\n");
    assert_eq!(h.w(&["SETNX", "g", "y"]), ":0\r\n");
    assert_eq!(h.w(&["SETNX", "h", "y"]), ":1\r\n");
    assert_eq!(h.w(&["GETSET", "h", "z"]), "$1\r\ny\r\n");
    assert_eq!(h.w(&["GETSET", "none", "z"]), "$-1\r\n");
    assert_eq!(h.w(&["GETDEL", "none"]), "$1\r\nz\r\n");
    assert_eq!(h.w(&["GETDEL", "none"]), "$-1\r\n");
    assert_eq!(h.w(&["APPEND", "k", "xyz"]), ":7\r\n");
    assert_eq!(h.w(&["APPEND", "new", "ab"]), ":2\r\n");
    assert_eq!(h.r(&["STRLEN", "k"]), ":7\r\n");
    assert_eq!(h.r(&["STRLEN", "nothing"]), ":0\r\n");
    assert_eq!(h.w(&["SET", "s", "Hello World"]), "+OK\r\n");
    assert_eq!(h.r(&["GETRANGE", "s", "0", "4"]), "$5\r\nHello\r\n");
    assert_eq!(h.r(&["GETRANGE", "s", "-3", "-1"]), "$3\r\nrld\r\n");
    assert_eq!(h.r(&["GETRANGE", "s", "5", "3"]), "$0\r\n\r\n");
    assert_eq!(h.r(&["GETRANGE", "nothing", "0", "3"]), "$0\r\n\r\n");
    assert_eq!(h.r(&["GETRANGE", "s", "x", "3"]), err(NOT_AN_INTEGER_TEXT));
    assert_eq!(h.w(&["SETRANGE", "s", "6", "Redis"]), ":11\r\n");
    assert_eq!(h.r(&["GET", "s"]), "$11\r\nHello Redis\r\n");
    assert_eq!(h.w(&["SETRANGE", "pad", "3", "ab"]), ":5\r\n");
    assert_eq!(h.r(&["GET", "pad"]), "$5\r\n\0\0\0ab\r\n");
    assert_eq!(h.w(&["SETRANGE", "empty", "3", ""]), ":0\r\n");
    assert_eq!(h.r(&["EXISTS", "empty"]), ":0\r\n");
    assert_eq!(
        h.w(&["SETRANGE", "s", "-1", "x"]),
        err("ERR offset is out of range")
    );
    assert_eq!(h.w(&["INCR", "c"]), ":1\r\n");
    assert_eq!(h.w(&["INCRBY", "c", "-11"]), ":-10\r\n");
    assert_eq!(h.w(&["DECR", "c"]), ":-11\r\n");
    assert_eq!(h.w(&["DECRBY", "c", "4"]), ":-15\r\n");
    assert_eq!(h.w(&["INCRBY", "c", "x"]), err(NOT_AN_INTEGER_TEXT));
    assert_eq!(
        h.w(&["DECRBY", "c", "-9223372036854775808"]),
        err("ERR decrement would overflow")
    );
    assert_eq!(h.w(&["INCR", "k"]), err(NOT_AN_INTEGER_TEXT));
    assert_eq!(h.w(&["SET", "big", "9223372036854775807"]), "+OK\r\n");
    assert_eq!(h.w(&["INCR", "big"]), err(OVERFLOW_TEXT));
    assert_eq!(h.w(&["SET", "f", "10.5"]), "+OK\r\n");
    assert_eq!(h.w(&["INCRBYFLOAT", "f", "0.1"]), "$4\r\n10.6\r\n");
    assert_eq!(h.w(&["INCRBYFLOAT", "f2", "5.0e3"]), "$4\r\n5000\r\n");
    assert_eq!(
        h.w(&["INCRBYFLOAT", "f", "abc"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        h.w(&["INCRBYFLOAT", "k", "1"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        h.w(&["INCRBYFLOAT", "f", "inf"]),
        err("ERR increment would produce NaN or Infinity")
    );
    assert_eq!(h.w(&["MSET", "a", "1", "b", "2"]), "+OK\r\n");
    assert_eq!(
        h.w(&["MSET", "a", "1", "b"]),
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(h.w(&["MSETNX", "a", "9", "zz", "9"]), ":0\r\n");
    assert_eq!(h.r(&["EXISTS", "zz"]), ":0\r\n");
    assert_eq!(h.w(&["MSETNX", "y1", "9", "y2", "9"]), ":1\r\n");
    assert_eq!(
        h.r(&["MGET", "a", "zz", "b"]),
        "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
    );
    assert_eq!(h.r(&["EXISTS", "a", "a", "zz"]), ":2\r\n");
    assert_eq!(h.w(&["DEL", "a", "zz", "b"]), ":2\r\n");
    assert_eq!(h.w(&["UNLINK", "y1", "y2"]), ":2\r\n");
    assert_eq!(
        h.r(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        h.w(&["NOSUCH", "a"]),
        err("ERR unknown command 'NOSUCH', with args beginning with: ")
    );
}

#[test]
fn key_commands_answer_like_redis() {
    let mut h = Harness::new();
    assert_eq!(h.r(&["RANDOMKEY"]), "$-1\r\n");
    assert_eq!(h.r(&["TYPE", "a"]), "+none\r\n");
    assert_eq!(h.w(&["RENAME", "a", "b"]), err("ERR no such key"));
    assert_eq!(h.w(&["RENAMENX", "a", "b"]), err("ERR no such key"));
    assert_eq!(h.w(&["MSET", "a", "1", "b", "2"]), "+OK\r\n");
    assert_eq!(h.r(&["TYPE", "a"]), "+string\r\n");
    assert_eq!(h.w(&["RENAME", "a", "a"]), "+OK\r\n");
    assert_eq!(h.w(&["RENAMENX", "a", "a"]), ":0\r\n");
    assert_eq!(h.w(&["RENAMENX", "a", "b"]), ":0\r\n");
    assert_eq!(h.w(&["PEXPIRE", "a", "5000"]), ":1\r\n");
    assert_eq!(h.w(&["RENAMENX", "a", "c"]), ":1\r\n");
    assert_eq!(h.r(&["PTTL", "c"]), ":5000\r\n", "RENAMENX carries the TTL");
    assert_eq!(h.w(&["RENAME", "c", "b"]), "+OK\r\n");
    assert_eq!(h.r(&["PTTL", "b"]), ":5000\r\n", "RENAME carries the TTL");
    assert_eq!(h.r(&["GET", "b"]), "$1\r\n1\r\n");
    assert_eq!(h.r(&["DBSIZE"]), ":1\r\n");
    assert_eq!(h.r(&["RANDOMKEY"]), "$1\r\nb\r\n");
    for i in 0..20 {
        h.w(&["SET", &format!("user:{i}"), "v"]);
    }
    let keys = h.r(&["KEYS", "user:1*"]);
    assert!(keys.starts_with("*11\r\n"), "{keys}");
    assert_eq!(h.r(&["KEYS", "nomatch*"]), "*0\r\n");
    assert_eq!(h.r(&["SCAN", "abc"]), err("ERR invalid cursor"));
    assert_eq!(h.r(&["SCAN", "0", "COUNT", "0"]), err("ERR syntax error"));
    assert_eq!(h.r(&["SCAN", "0", "COUNT"]), err("ERR syntax error"));
    assert_eq!(h.r(&["SCAN", "0", "foo"]), err("ERR syntax error"));
    assert_eq!(
        h.r(&["SCAN", "0", "COUNT", "1000", "TYPE", "hash"]),
        "*2\r\n$1\r\n0\r\n*0\r\n"
    );
    // A full scan with small pages returns every key exactly once (nothing changed).
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    loop {
        let reply = h.r(&["SCAN", &cursor, "MATCH", "user:*", "COUNT", "3"]);
        let lines: Vec<&str> = reply.split("\r\n").collect();
        cursor = lines[2].to_string();
        seen.extend(lines[4..].iter().skip(1).step_by(2).map(|s| s.to_string()));
        if cursor == "0" {
            break;
        }
    }
    seen.retain(|s| !s.is_empty());
    seen.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("user:{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(h.w(&["FLUSHDB", "foo"]), err("ERR syntax error"));
    assert_eq!(h.w(&["FLUSHALL", "ASYNC"]), "+OK\r\n");
    assert_eq!(h.r(&["DBSIZE"]), ":0\r\n");
    h.now_ms = 1_796_176_022_805;
    assert_eq!(
        h.r(&["TIME"]),
        "*2\r\n$10\r\n1796176022\r\n$6\r\n805000\r\n"
    );
}

#[test]
fn expiry_commands_answer_like_redis_on_log_time() {
    let mut h = Harness::new();
    let t0 = h.now_ms;
    assert_eq!(h.w(&["EXPIRE", "k", "10"]), ":0\r\n");
    assert_eq!(h.w(&["SET", "k", "v", "EX", "10"]), "+OK\r\n");
    assert_eq!(h.r(&["TTL", "k"]), ":10\r\n");
    assert_eq!(h.r(&["PTTL", "k"]), ":10000\r\n");
    assert_eq!(h.r(&["PEXPIRETIME", "k"]), format!(":{}\r\n", t0 + 10_000));
    assert_eq!(
        h.r(&["EXPIRETIME", "k"]),
        format!(":{}\r\n", (t0 + 10_000 + 500) / 1000)
    );
    assert_eq!(h.r(&["TTL", "nokey"]), ":-2\r\n");
    h.w(&["SET", "p", "v"]);
    assert_eq!(h.r(&["TTL", "p"]), ":-1\r\n");
    assert_eq!(h.r(&["EXPIRETIME", "p"]), ":-1\r\n");
    // NX / XX / GT / LT, Redis 7 rules (a key without a TTL is an infinite one).
    assert_eq!(h.w(&["EXPIRE", "k", "20", "NX"]), ":0\r\n");
    assert_eq!(h.w(&["EXPIRE", "p", "20", "XX"]), ":0\r\n");
    assert_eq!(h.w(&["EXPIRE", "p", "20", "GT"]), ":0\r\n");
    assert_eq!(h.w(&["EXPIRE", "k", "5", "GT"]), ":0\r\n");
    assert_eq!(h.w(&["EXPIRE", "k", "20", "GT"]), ":1\r\n");
    assert_eq!(h.w(&["EXPIRE", "k", "30", "LT"]), ":0\r\n");
    assert_eq!(h.w(&["EXPIRE", "k", "15", "LT"]), ":1\r\n");
    assert_eq!(h.r(&["TTL", "k"]), ":15\r\n");
    assert_eq!(h.w(&["PEXPIRE", "p", "20000", "LT"]), ":1\r\n");
    assert_eq!(
        h.w(&["EXPIRE", "k", "10", "NX", "XX"]),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        h.w(&["EXPIRE", "k", "10", "GT", "LT"]),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(
        h.w(&["EXPIRE", "k", "10", "foo"]),
        err("ERR Unsupported option foo")
    );
    assert_eq!(
        h.w(&["EXPIRE", "k", "9223372036854775807"]),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        h.w(&["PEXPIREAT", "k", "9223372036854775807"]),
        ":1\r\n",
        "an absolute deadline at the top of the range is valid"
    );
    assert_eq!(h.r(&["EXPIRETIME", "k"]), ":9223372036854776\r\n");
    assert_eq!(h.w(&["PERSIST", "k"]), ":1\r\n");
    assert_eq!(h.w(&["PERSIST", "k"]), ":0\r\n");
    assert_eq!(h.r(&["TTL", "k"]), ":-1\r\n");
    // A past deadline deletes the key.
    assert_eq!(h.w(&["EXPIRE", "k", "-1"]), ":1\r\n");
    assert_eq!(h.r(&["EXISTS", "k"]), ":0\r\n");
    assert_eq!(h.w(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(h.w(&["EXPIREAT", "k", "1"]), ":1\r\n");
    assert_eq!(h.r(&["EXISTS", "k"]), ":0\r\n");
    // SETEX / PSETEX / GETEX.
    assert_eq!(
        h.w(&["SETEX", "k", "-1", "v"]),
        err("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(
        h.w(&["PSETEX", "k", "0", "v"]),
        err("ERR invalid expire time in 'psetex' command")
    );
    assert_eq!(h.w(&["SETEX", "k", "100", "v"]), "+OK\r\n");
    assert_eq!(h.w(&["SET", "k", "w", "KEEPTTL"]), "+OK\r\n");
    assert_eq!(h.r(&["TTL", "k"]), ":100\r\n");
    assert_eq!(h.w(&["SET", "k", "w"]), "+OK\r\n");
    assert_eq!(h.r(&["TTL", "k"]), ":-1\r\n", "SET clears the TTL");
    assert_eq!(h.w(&["GETEX", "nokey", "EX", "0"]), "$-1\r\n");
    assert_eq!(
        h.w(&["GETEX", "k", "PERSIST", "EX", "1"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.w(&["GETEX", "k", "EX", "0"]),
        err("ERR invalid expire time in 'getex' command")
    );
    assert_eq!(h.w(&["GETEX", "k", "PX", "1500"]), "$1\r\nw\r\n");
    assert_eq!(h.r(&["PTTL", "k"]), ":1500\r\n");
    assert_eq!(h.w(&["GETEX", "k", "PERSIST"]), "$1\r\nw\r\n");
    assert_eq!(h.r(&["PTTL", "k"]), ":-1\r\n");
    assert_eq!(h.w(&["GETEX", "k", "PXAT", "5"]), "$1\r\nw\r\n");
    assert_eq!(
        h.r(&["EXISTS", "k"]),
        ":0\r\n",
        "GETEX with a past deadline deletes"
    );
    // INCR and APPEND keep the TTL.
    assert_eq!(h.w(&["SET", "c", "1", "PX", "3000"]), "+OK\r\n");
    assert_eq!(h.w(&["INCR", "c"]), ":2\r\n");
    assert_eq!(h.w(&["APPEND", "c", "0"]), ":2\r\n");
    assert_eq!(h.r(&["PTTL", "c"]), ":3000\r\n");
}

#[test]
fn keys_expire_by_log_time_at_apply_and_by_the_query_clock_in_reads() {
    let mut h = Harness::new();
    let t0 = h.now_ms;
    h.w(&["SET", "k", "v", "PX", "100"]);
    // The query clock alone hides the key (a read on the leader past the deadline).
    h.now_ms = t0 + 100;
    assert_eq!(h.r(&["GET", "k"]), "$-1\r\n");
    assert_eq!(h.r(&["DBSIZE"]), ":1\r\n", "stored until reclaimed");
    // A query clock behind log time does not resurrect it.
    h.now_ms = t0 + 200;
    h.w(&["SET", "other", "x"]);
    h.now_ms = t0;
    assert_eq!(h.r(&["GET", "k"]), "$-1\r\n");
    assert_eq!(
        h.r(&["DBSIZE"]),
        ":1\r\n",
        "the write batch reclaimed the expired key"
    );
    // At apply, only log time counts: a stamp before the deadline sees the key.
    h.now_ms = t0 + 1000;
    h.w(&["SET", "j", "v", "PX", "500"]);
    h.now_ms = t0 + 1499;
    assert_eq!(h.w(&["GET", "j"]), "$1\r\nv\r\n");
    assert_eq!(h.w(&["SET", "j2", "v", "NX"]), "+OK\r\n");
}

#[test]
fn reclaim_items_remove_expired_keys_and_count_what_is_left() {
    let mut h = Harness::new();
    let t0 = h.now_ms;
    for i in 0..100 {
        h.w(&["SET", &format!("k{i}"), "v", "PX", &format!("{}", 10 + i)]);
    }
    h.w(&["SET", "forever", "v"]);
    h.w(&["SET", "later", "v", "EX", "1000"]);
    assert_eq!(h.sm.keyspace().volatile_len(), 101);
    h.now_ms = t0 + 60;
    let left = h.apply_one(&KvWrite::reclaim(1000), h.now_ms);
    // k0..k50 (deadlines t0+10..=t0+60) are gone, then up to 32 more... none are due yet.
    assert_eq!(left, format!(":{}\r\n", 101 - 51));
    h.now_ms = t0 + 10_000;
    let left = h.apply_one(&KvWrite::reclaim(10), h.now_ms);
    // The batch's own 32 after the item's 10.
    assert_eq!(left, format!(":{}\r\n", 50 - 10));
    assert_eq!(h.sm.keyspace().volatile_len(), 50 - 10 - 32);
    h.sm.keyspace().check_invariants();
}

#[test]
fn transactions_run_atomically_unless_a_watched_key_changed() {
    let mut h = Harness::new();
    h.w(&["SET", "k", "1"]);
    let revisions = h.query(Query::Revisions(vec![b"k", b"absent"]));
    let index = h.index;
    assert_eq!(revisions, format!("*2\r\n:{index}\r\n:0\r\n"));
    let exec = |h: &mut Harness, watched: u64| {
        h.item(Operation::Transaction {
            watches: vec![(b"k", watched), (b"absent", 0)],
            commands: vec![
                vec![b"INCR", b"k"],
                vec![b"INCR", b"nonint"],
                vec![b"GET", b"k"],
                vec![b"SET", b"nonint", b"x"],
                vec![b"INCR", b"nonint"],
            ],
        })
    };
    assert_eq!(
        exec(&mut h, index),
        format!("*5\r\n:2\r\n:1\r\n$1\r\n2\r\n+OK\r\n-{NOT_AN_INTEGER_TEXT}\r\n")
    );
    // k changed (by the transaction itself): the same watch now aborts, nothing runs.
    assert_eq!(exec(&mut h, index), "*-1\r\n");
    assert_eq!(h.r(&["GET", "k"]), "$1\r\n2\r\n");
}

#[test]
fn a_duplicate_write_is_applied_once_and_an_expired_session_refused() {
    let mut h = Harness::new();
    let session = SessionId::new(5, 9);
    let incr = |seq| KvWrite {
        session,
        seq,
        acked_below: 0,
        operation: Operation::Command(vec![b"INCR", b"c"]),
    };
    assert_eq!(h.apply_one(&incr(1), 100), ":1\r\n");
    assert_eq!(h.apply_one(&incr(2), 100), ":2\r\n");
    assert_eq!(h.apply_one(&incr(1), 100), ":1\r\n");
    assert_eq!(h.r(&["GET", "c"]), "$1\r\n2\r\n");
    let later = 100 + SessionConfig::default().idle_expiry_ms + 1;
    h.now_ms = later;
    h.session = SessionId::new(later, 2);
    h.w(&["SET", "x", "y"]);
    assert_eq!(h.apply_one(&incr(3), later), err(SESSION_EXPIRED_TEXT));
    assert_eq!(h.r(&["GET", "c"]), "$1\r\n2\r\n");
}

#[test]
fn malformed_commands_and_queries_give_empty_results() {
    let mut h = Harness::new();
    assert!(h.sm.apply(1, b"\x02garbage").is_empty());
    assert!(h.sm.apply(1, b"\x01garbage").is_empty());
    assert!(h.sm.query(b"").is_empty());
    assert!(h.sm.is_empty());
}

/// The replies version 1 entries got from the version 1 state machine.
#[test]
fn version_1_batches_apply_exactly_as_before() {
    let mut sm = KvStateMachine::new(SessionConfig::default());
    let session = SessionId::new(1, 1);
    let ops: Vec<(V1Operation<'_>, &str)> = vec![
        (
            V1Operation::Set {
                key: b"k",
                value: b"v",
                condition: SetCondition::Always,
            },
            "+OK\r\n",
        ),
        (
            V1Operation::Set {
                key: b"k",
                value: b"w",
                condition: SetCondition::IfAbsent,
            },
            "$-1\r\n",
        ),
        (
            V1Operation::Set {
                key: b"n",
                value: b"x",
                condition: SetCondition::IfPresent,
            },
            "$-1\r\n",
        ),
        (
            V1Operation::Append {
                key: b"k",
                value: b"xyz",
            },
            ":4\r\n",
        ),
        (
            V1Operation::IncrBy {
                key: b"c",
                delta: -11,
            },
            ":-11\r\n",
        ),
        (
            V1Operation::IncrBy {
                key: b"k",
                delta: 1,
            },
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            V1Operation::MSet {
                pairs: vec![(b"a", b"1"), (b"b", b"2")],
            },
            "+OK\r\n",
        ),
        (
            V1Operation::Del {
                keys: vec![b"a", b"zz", b"k"],
            },
            ":2\r\n",
        ),
    ];
    let mut encoder = V1Encoder::new(500);
    for (seq, (operation, _)) in ops.iter().enumerate() {
        encoder.push(&V1Write {
            session,
            seq: seq as u64 + 1,
            acked_below: 0,
            operation: operation.clone(),
        });
    }
    let result = sm.apply(7, &encoder.finish());
    let replies = split_results(&result, ops.len()).unwrap();
    for ((_, expected), reply) in ops.iter().zip(replies) {
        assert_eq!(String::from_utf8_lossy(reply), *expected);
    }
    assert_eq!(sm.log_time_ms(), 500);
    assert_eq!(sm.keyspace().revision(b"b", 0), V1_REVISION);
    assert_eq!(sm.len(), 2, "c and b");
}

#[test]
fn snapshots_round_trip_deadlines_revisions_and_sessions() {
    let mut h = Harness::new();
    for i in 0..100u32 {
        h.w(&[
            "SET",
            &format!("key{i}"),
            &i.to_string(),
            "PX",
            &format!("{}", 1000 + i),
        ]);
    }
    h.w(&["INCRBY", "n", "5"]);
    let bytes = h.snapshot();
    assert_eq!(&bytes[..8], b"KETCHKV2");
    let mut restored = Harness::new();
    restored.sm.restore(&mut &bytes[..]).unwrap();
    assert_eq!(restored.sm.keyspace(), h.sm.keyspace());
    assert_eq!(restored.sm.sessions(), h.sm.sessions());
    assert_eq!(
        restored.snapshot(),
        bytes,
        "a restored state snapshots identically"
    );
    // The restored session still deduplicates.
    restored.index = h.index;
    restored.seq = h.seq - 1;
    assert_eq!(restored.w(&["INCRBY", "n", "5"]), ":5\r\n");
    assert_eq!(restored.r(&["PTTL", "key7"]), ":1007\r\n");
    for cut in [0, 7, 8, bytes.len() / 2, bytes.len() - 1] {
        let mut broken = Harness::new();
        assert!(
            broken.sm.restore(&mut &bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_version_1_snapshot_restores() {
    let sessions = SessionTable::new(SessionConfig::default());
    let pairs = vec![
        (b"alpha".to_vec(), b"1".to_vec()),
        (b"beta".to_vec(), vec![0, 1, 2]),
    ];
    let mut bytes = Vec::new();
    snapshot::write_v1(&sessions, &pairs, &mut bytes).unwrap();
    // The exact bytes the version 1 writer produced for this state.
    let mut expected = b"KETCHKV1".to_vec();
    expected.extend_from_slice(&[0; 24]); // log time, dropped-below, session count
    expected.extend_from_slice(&2u64.to_le_bytes());
    expected.extend_from_slice(b"\x05\0\0\0alpha\x01\0\0\x001");
    expected.extend_from_slice(b"\x04\0\0\0beta\x03\0\0\0\x00\x01\x02");
    expected.extend_from_slice(b"KVEND001");
    assert_eq!(bytes, expected);
    let mut h = Harness::new();
    h.sm.restore(&mut &bytes[..]).unwrap();
    assert_eq!(h.r(&["GET", "alpha"]), "$1\r\n1\r\n");
    assert_eq!(h.r(&["STRLEN", "beta"]), ":3\r\n");
    assert_eq!(h.r(&["TTL", "beta"]), ":-1\r\n");
    assert_eq!(h.sm.keyspace().revision(b"alpha", 0), V1_REVISION);
}

fn arb_command() -> impl Strategy<Value = Vec<String>> {
    let key = (0..6u8).prop_map(|k| format!("k{k}"));
    prop_oneof![
        (key.clone(), 0..100u32).prop_map(|(k, v)| vec!["SET".into(), k, v.to_string()]),
        (key.clone(), 1..50u32).prop_map(|(k, ms)| vec![
            "SET".into(),
            k,
            "v".into(),
            "PX".into(),
            ms.to_string()
        ]),
        (key.clone(), -5..50i32).prop_map(|(k, ms)| vec!["PEXPIRE".into(), k, ms.to_string()]),
        key.clone().prop_map(|k| vec!["INCR".into(), k]),
        key.clone()
            .prop_map(|k| vec!["APPEND".into(), k, "x".into()]),
        key.clone().prop_map(|k| vec!["DEL".into(), k]),
        key.clone().prop_map(|k| vec!["PERSIST".into(), k]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["RENAME".into(), a, b]),
        key.prop_map(|k| vec!["GETEX".into(), k, "PX".into(), "7".into()]),
        Just(vec!["RANDOMKEY".to_string()]),
        Just(vec![
            "SCAN".to_string(),
            "0".into(),
            "COUNT".into(),
            "2".into()
        ]),
    ]
}

proptest! {
    /// Two replicas applying the same log, one of them restarted from a snapshot midway,
    /// give identical replies and identical snapshots: no iteration order or clock leaks.
    #[test]
    fn replicas_applying_the_same_log_agree(
        log in proptest::collection::vec(
            (proptest::collection::vec(arb_command(), 1..4), 0..30u64, any::<bool>()),
            1..40),
        restart_at in 0..40usize,
    ) {
        let mut a = KvStateMachine::new(SessionConfig::default());
        let mut b = KvStateMachine::new(SessionConfig::default());
        let session = SessionId::new(1, 1);
        let mut seq = 0;
        let mut leader_ms = 1_000u64;
        for (index, (commands, advance_ms, reclaim)) in log.iter().enumerate() {
            if index == restart_at {
                let mut bytes = Vec::new();
                b.snapshot(&mut bytes).unwrap();
                b = KvStateMachine::new(SessionConfig::default());
                b.restore(&mut &bytes[..]).unwrap();
            }
            leader_ms += advance_ms;
            let mut encoder = WriteBatchEncoder::new(leader_ms);
            for words in commands {
                seq += 1;
                encoder.push(&KvWrite {
                    session,
                    seq,
                    acked_below: seq,
                    operation: Operation::Command(words.iter().map(|w| w.as_bytes()).collect()),
                });
            }
            if *reclaim {
                encoder.push(&KvWrite::reclaim(2));
            }
            let batch = encoder.finish();
            let index = index as u64 + 1;
            prop_assert_eq!(a.apply(index, &batch), b.apply(index, &batch));
            a.keyspace().check_invariants();
        }
        let (mut sa, mut sb) = (Vec::new(), Vec::new());
        a.snapshot(&mut sa).unwrap();
        b.snapshot(&mut sb).unwrap();
        prop_assert_eq!(sa, sb);
    }
}

mod hashes;

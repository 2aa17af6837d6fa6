//! Hash commands against Redis 7.0's replies (each expected reply was checked on a
//! `redis-server` 7.0.15), the `WRONGTYPE` matrix, snapshots and determinism with hashes.

use super::*;
use std::collections::BTreeMap;

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

/// A RESP2 array of bulk strings.
fn bulks(items: &[&str]) -> String {
    let mut out = format!("*{}\r\n", items.len());
    for item in items {
        out.push_str(&format!("${}\r\n{item}\r\n", item.len()));
    }
    out
}

#[test]
fn hash_commands_answer_like_redis() {
    let mut h = Harness::new();
    assert_eq!(h.w(&["HSET", "h", "f", "v"]), ":1\r\n");
    assert_eq!(h.w(&["HSET", "h", "f", "v2", "g", "w"]), ":1\r\n");
    let arity = |name: &str| {
        err(&format!(
            "ERR wrong number of arguments for '{name}' command"
        ))
    };
    assert_eq!(h.w(&["HSET", "h", "a"]), arity("hset"));
    assert_eq!(h.w(&["HSET", "h", "a", "b", "c"]), arity("hset"));
    assert_eq!(h.w(&["HSET", "h"]), arity("hset"));
    assert_eq!(h.w(&["HMSET", "h", "a", "b"]), "+OK\r\n");
    assert_eq!(h.w(&["HMSET", "h", "a"]), arity("hmset"));
    assert_eq!(h.w(&["HSETNX", "x"]), arity("hsetnx"));
    assert_eq!(h.r(&["HGET", "h"]), arity("hget"));
    assert_eq!(h.w(&["HDEL", "h"]), arity("hdel"));
    assert_eq!(h.w(&["HINCRBY", "h", "a"]), arity("hincrby"));
    assert_eq!(h.r(&["HSCAN", "h"]), arity("hscan"));
    assert_eq!(h.r(&["HGET", "h", "f"]), "$2\r\nv2\r\n");
    assert_eq!(h.r(&["HGET", "h", "nope"]), "$-1\r\n");
    assert_eq!(h.r(&["HGET", "nokey", "f"]), "$-1\r\n");
    assert_eq!(
        h.r(&["HMGET", "h", "f", "nope", "g"]),
        "*3\r\n$2\r\nv2\r\n$-1\r\n$1\r\nw\r\n"
    );
    assert_eq!(h.r(&["HMGET", "nokey", "a"]), "*1\r\n$-1\r\n");
    assert_eq!(h.r(&["HLEN", "h"]), ":3\r\n");
    assert_eq!(h.w(&["HDEL", "h", "nope"]), ":0\r\n");
    assert_eq!(h.w(&["HDEL", "h", "f", "g", "nope"]), ":2\r\n");
    assert_eq!(h.r(&["HGETALL", "h"]), bulks(&["a", "b"]));
    assert_eq!(h.r(&["HKEYS", "h"]), bulks(&["a"]));
    assert_eq!(h.r(&["HVALS", "h"]), bulks(&["b"]));
    for listing in ["HGETALL", "HKEYS", "HVALS"] {
        assert_eq!(h.r(&[listing, "nokey"]), "*0\r\n");
    }
    assert_eq!(h.r(&["HLEN", "h"]), ":1\r\n");
    assert_eq!(h.r(&["HLEN", "nokey"]), ":0\r\n");
    assert_eq!(h.r(&["HEXISTS", "h", "a"]), ":1\r\n");
    assert_eq!(h.r(&["HEXISTS", "h", "zz"]), ":0\r\n");
    assert_eq!(h.r(&["HEXISTS", "nokey", "zz"]), ":0\r\n");
    assert_eq!(h.r(&["HSTRLEN", "h", "a"]), ":1\r\n");
    assert_eq!(h.r(&["HSTRLEN", "h", "zz"]), ":0\r\n");
    assert_eq!(h.r(&["HSTRLEN", "nokey", "zz"]), ":0\r\n");
    assert_eq!(h.w(&["HDEL", "h", "a"]), ":1\r\n");
    assert_eq!(
        h.r(&["EXISTS", "h"]),
        ":0\r\n",
        "the last HDEL removed the key"
    );
    assert_eq!(h.r(&["TYPE", "h"]), "+none\r\n");
    assert_eq!(h.w(&["HDEL", "h", "a"]), ":0\r\n");

    assert_eq!(h.w(&["HSET", "h", "n", "10"]), ":1\r\n");
    assert_eq!(h.r(&["TYPE", "h"]), "+hash\r\n");
    assert_eq!(h.w(&["HINCRBY", "h", "n", "5"]), ":15\r\n");
    assert_eq!(h.w(&["HINCRBY", "h", "new", "-3"]), ":-3\r\n");
    assert_eq!(h.w(&["HINCRBY", "h", "n", "x"]), err(NOT_AN_INTEGER_TEXT));
    assert_eq!(h.w(&["HSET", "h", "s", "abc"]), ":1\r\n");
    assert_eq!(
        h.w(&["HINCRBY", "h", "s", "1"]),
        err("ERR hash value is not an integer")
    );
    assert_eq!(h.w(&["HSET", "h", "big", "9223372036854775807"]), ":1\r\n");
    assert_eq!(h.w(&["HINCRBY", "h", "big", "1"]), err(OVERFLOW_TEXT));
    assert_eq!(
        h.w(&["HINCRBY", "h", "n", "9223372036854775807"]),
        err(OVERFLOW_TEXT)
    );
    assert_eq!(h.w(&["HSET", "h", "z", "007"]), ":1\r\n");
    assert_eq!(
        h.w(&["HINCRBY", "h", "z", "1"]),
        err("ERR hash value is not an integer")
    );
    assert_eq!(h.w(&["HSET", "h", "m", "1"]), ":1\r\n");
    assert_eq!(
        h.w(&["HINCRBY", "h", "m", "-9223372036854775808"]),
        ":-9223372036854775807\r\n"
    );
    assert_eq!(
        h.w(&["HINCRBY", "h", "m", "-1"]),
        ":-9223372036854775808\r\n"
    );
    assert_eq!(h.w(&["HINCRBYFLOAT", "h", "n", "1.5"]), "$4\r\n16.5\r\n");
    assert_eq!(
        h.w(&["HINCRBYFLOAT", "h", "s", "1"]),
        err("ERR hash value is not a float")
    );
    assert_eq!(
        h.w(&["HINCRBYFLOAT", "h", "n", "abc"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(h.w(&["HINCRBYFLOAT", "h", "nf", "10.5"]), "$4\r\n10.5\r\n");
    assert_eq!(
        h.w(&["HINCRBYFLOAT", "h", "nf", "inf"]),
        err("ERR value is NaN or Infinity")
    );
    assert_eq!(h.w(&["HSET", "h", "i", "5.0e3"]), ":1\r\n");
    assert_eq!(h.w(&["HINCRBYFLOAT", "h", "i", "200"]), "$4\r\n5200\r\n");
    assert_eq!(h.w(&["HINCRBY", "h", "i", "1"]), ":5201\r\n");
    assert_eq!(h.w(&["HSET", "h", "inf", "inf"]), ":1\r\n");
    assert_eq!(
        h.w(&["HINCRBYFLOAT", "h", "inf", "1"]),
        err("ERR increment would produce NaN or Infinity")
    );
    assert_eq!(h.w(&["HSET", "h", "t", "1.10"]), ":1\r\n");
    assert_eq!(h.w(&["HINCRBYFLOAT", "h", "t", "0"]), "$3\r\n1.1\r\n");
    assert_eq!(h.w(&["HSET", "h", "t", "3"]), ":0\r\n");
    assert_eq!(h.w(&["HINCRBYFLOAT", "h", "t", "0.1"]), "$3\r\n3.1\r\n");
    assert_eq!(h.w(&["HINCRBYFLOAT", "h", "t", "-3.1"]), "$1\r\n0\r\n");
    assert_eq!(h.w(&["HINCRBYFLOAT", "h", "t", "1e3"]), "$4\r\n1000\r\n");
    assert_eq!(h.w(&["HSETNX", "h", "i", "1"]), ":0\r\n");
    assert_eq!(h.w(&["HSETNX", "h", "j", "1"]), ":1\r\n");
    assert_eq!(h.w(&["HSETNX", "new", "j", "1"]), ":1\r\n");
    assert_eq!(h.r(&["HGETALL", "new"]), bulks(&["j", "1"]));
    // A failed increment on an absent key leaves no empty hash behind.
    assert_eq!(
        h.w(&["HINCRBY", "absent", "f", "x"]),
        err(NOT_AN_INTEGER_TEXT)
    );
    assert_eq!(h.r(&["EXISTS", "absent"]), ":0\r\n");
}

#[test]
fn hscan_answers_like_redis_and_bounds_its_work() {
    let mut h = Harness::new();
    h.w(&["HSET", "h", "j", "1"]);
    h.w(&["HSET", "h", "k", "2"]);
    assert_eq!(h.r(&["HSCAN", "h", "x"]), err("ERR invalid cursor"));
    assert_eq!(
        h.r(&["HSCAN", "h", "18446744073709551616"]),
        err("ERR invalid cursor")
    );
    assert_eq!(
        h.r(&["HSCAN", "h", "0", "COUNT", "0"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.r(&["HSCAN", "h", "0", "COUNT", "x"]),
        err(NOT_AN_INTEGER_TEXT)
    );
    assert_eq!(h.r(&["HSCAN", "h", "0", "MATCH"]), err("ERR syntax error"));
    assert_eq!(
        h.r(&["HSCAN", "h", "0", "foo", "bar"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.r(&["HSCAN", "h", "0", "TYPE", "string"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.r(&["HSCAN", "h", "0", "NOVALUES"]),
        err("ERR syntax error")
    );
    let empty = "*2\r\n$1\r\n0\r\n*0\r\n";
    assert_eq!(h.r(&["HSCAN", "nokey", "0"]), empty);
    assert_eq!(
        h.r(&["HSCAN", "nokey", "0", "COUNT", "0"]),
        empty,
        "Redis answers an absent key before it reads the options"
    );
    assert_eq!(
        h.r(&["HSCAN", "h", "0", "MATCH", "j*"]),
        "*2\r\n$1\r\n0\r\n*2\r\n$1\r\nj\r\n$1\r\n1\r\n"
    );
    // A large hash is walked about COUNT fields at a time, every field once.
    let fields: Vec<String> = (0..250).map(|i| format!("f{i}")).collect();
    for chunk in fields.chunks(50) {
        let mut words = vec!["HSET", "big"];
        for field in chunk {
            words.extend([field.as_str(), "v"]);
        }
        assert_eq!(h.w(&words), ":50\r\n");
    }
    let (mut cursor, mut seen, mut pages) = ("0".to_string(), Vec::new(), 0);
    loop {
        let reply = h.r(&["HSCAN", "big", &cursor, "COUNT", "20"]);
        let lines: Vec<&str> = reply.split("\r\n").collect();
        cursor = lines[2].to_string();
        let items: usize = lines[3][1..].parse().unwrap();
        assert!(items <= 2 * 22, "page of {items} items");
        seen.extend(
            lines[4..]
                .chunks(4)
                .filter(|c| c.len() == 4)
                .map(|c| c[1].to_string()),
        );
        pages += 1;
        if cursor == "0" {
            break;
        }
    }
    assert!(pages >= 250 / 22, "{pages} pages");
    seen.sort();
    let mut expected = fields.clone();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn wrong_types_answer_like_redis() {
    let mut h = Harness::new();
    h.w(&["SET", "s", "str"]);
    h.w(&["HSET", "h", "f", "v"]);
    // Hash commands on a string.
    for words in [
        &["HSET", "s", "a", "b"][..],
        &["HMSET", "s", "a", "b"],
        &["HSETNX", "s", "a", "1"],
        &["HDEL", "s", "a"],
        &["HINCRBY", "s", "a", "1"],
        &["HINCRBYFLOAT", "s", "a", "1"],
    ] {
        assert_eq!(h.w(words), WRONGTYPE, "{words:?}");
    }
    for words in [
        &["HGET", "s", "a"][..],
        &["HMGET", "s", "a"],
        &["HGETALL", "s"],
        &["HKEYS", "s"],
        &["HVALS", "s"],
        &["HLEN", "s"],
        &["HEXISTS", "s", "a"],
        &["HSTRLEN", "s", "a"],
        &["HSCAN", "s", "0"],
        &["HSCAN", "s", "0", "COUNT", "0"],
    ] {
        assert_eq!(h.r(words), WRONGTYPE, "{words:?}");
    }
    // Argument errors come first where Redis checks them first.
    assert_eq!(
        h.w(&["HSET", "s", "a", "b", "c"]),
        err("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(h.w(&["HINCRBY", "s", "a", "x"]), err(NOT_AN_INTEGER_TEXT));
    assert_eq!(
        h.w(&["HINCRBYFLOAT", "s", "a", "inf"]),
        err("ERR value is NaN or Infinity")
    );
    assert_eq!(h.r(&["HSCAN", "s", "x"]), err("ERR invalid cursor"));
    // String commands on a hash.
    for words in [
        &["APPEND", "h", "x"][..],
        &["INCR", "h"],
        &["DECR", "h"],
        &["INCRBY", "h", "1"],
        &["DECRBY", "h", "1"],
        &["INCRBYFLOAT", "h", "1"],
        &["SETRANGE", "h", "0", "x"],
        &["GETSET", "h", "x"],
        &["GETDEL", "h"],
        &["GETEX", "h"],
        &["SET", "h", "x", "GET"],
    ] {
        assert_eq!(h.w(words), WRONGTYPE, "{words:?}");
    }
    for words in [
        &["GET", "h"][..],
        &["GETRANGE", "h", "0", "1"],
        &["STRLEN", "h"],
    ] {
        assert_eq!(h.r(words), WRONGTYPE, "{words:?}");
    }
    assert_eq!(
        h.r(&["MGET", "h", "s", "nokey"]),
        "*3\r\n$-1\r\n$3\r\nstr\r\n$-1\r\n"
    );
    assert_eq!(h.w(&["SETNX", "h", "5"]), ":0\r\n");
    assert_eq!(h.w(&["MSETNX", "h", "5"]), ":0\r\n");
    assert_eq!(
        h.r(&["HGETALL", "h"]),
        bulks(&["f", "v"]),
        "nothing changed it"
    );
    // Key commands carry a hash as they carry a string.
    assert_eq!(h.r(&["TYPE", "h"]), "+hash\r\n");
    assert_eq!(h.r(&["TYPE", "s"]), "+string\r\n");
    assert_eq!(h.w(&["EXPIRE", "h", "100"]), ":1\r\n");
    assert_eq!(h.r(&["TTL", "h"]), ":100\r\n");
    assert_eq!(h.w(&["RENAME", "h", "h2"]), "+OK\r\n");
    assert_eq!(h.r(&["TYPE", "h2"]), "+hash\r\n");
    assert_eq!(h.r(&["HGETALL", "h2"]), bulks(&["f", "v"]));
    assert_eq!(h.r(&["TTL", "h2"]), ":100\r\n");
    assert_eq!(
        h.r(&["SCAN", "0", "TYPE", "hash"]),
        "*2\r\n$1\r\n0\r\n*1\r\n$2\r\nh2\r\n"
    );
    assert_eq!(
        h.r(&["SCAN", "0", "TYPE", "HASH"]),
        "*2\r\n$1\r\n0\r\n*1\r\n$2\r\nh2\r\n"
    );
    assert_eq!(
        h.r(&["SCAN", "0", "TYPE", "string"]),
        "*2\r\n$1\r\n0\r\n*1\r\n$1\r\ns\r\n"
    );
    // SET replaces a hash whatever it held, and drops its deadline.
    assert_eq!(h.w(&["SET", "h2", "x"]), "+OK\r\n");
    assert_eq!(h.r(&["TYPE", "h2"]), "+string\r\n");
    assert_eq!(h.r(&["TTL", "h2"]), ":-1\r\n");
}

#[test]
fn a_hash_expires_keeps_its_deadline_when_changed_and_revises_its_key() {
    let mut h = Harness::new();
    h.w(&["HSET", "h", "a", "1"]);
    let created = h.sm.keyspace().revision(b"h", 0);
    h.w(&["PEXPIRE", "h", "500"]);
    h.w(&["HSET", "h", "b", "2"]);
    h.w(&["HINCRBY", "h", "a", "1"]);
    h.w(&["HDEL", "h", "b"]);
    assert_eq!(
        h.r(&["PTTL", "h"]),
        ":500\r\n",
        "changes in place keep the deadline"
    );
    let changed = h.sm.keyspace().revision(b"h", 0);
    assert!(changed > created);
    // Writes that change nothing leave the revision (a WATCH on the key holds).
    h.w(&["HSETNX", "h", "a", "9"]);
    h.w(&["HDEL", "h", "nope"]);
    h.w(&["HINCRBY", "h", "a", "x"]);
    assert_eq!(h.sm.keyspace().revision(b"h", 0), changed);
    h.now_ms += 500;
    assert_eq!(h.r(&["HGET", "h", "a"]), "$-1\r\n");
    assert_eq!(h.r(&["HLEN", "h"]), ":0\r\n");
    assert_eq!(
        h.w(&["HSETNX", "h", "a", "9"]),
        ":1\r\n",
        "an expired hash is absent"
    );
    assert_eq!(h.r(&["PTTL", "h"]), ":-1\r\n");
}

#[test]
fn snapshots_round_trip_hashes_with_deadlines() {
    let mut h = Harness::new();
    for i in 0..40u32 {
        let key = format!("hash{i}");
        for f in 0..=i % 5 {
            h.w(&["HSET", &key, &format!("field{f}"), &format!("{i}.{f}")]);
        }
        if i % 2 == 0 {
            h.w(&["PEXPIRE", &key, &format!("{}", 1000 + i)]);
        }
    }
    h.w(&["SET", "plain", "v", "PX", "777"]);
    h.w(&["HSET", "bin", "\0\u{1}", ""]);
    let bytes = h.snapshot();
    let mut restored = Harness::new();
    restored.sm.restore(&mut &bytes[..]).unwrap();
    assert_eq!(restored.sm.keyspace(), h.sm.keyspace());
    assert_eq!(
        restored.snapshot(),
        bytes,
        "a restored state snapshots identically"
    );
    assert_eq!(restored.r(&["PTTL", "hash4"]), ":1004\r\n");
    assert_eq!(restored.r(&["PTTL", "hash5"]), ":-1\r\n");
    assert_eq!(restored.r(&["HGET", "hash9", "field4"]), "$3\r\n9.4\r\n");
    assert_eq!(restored.r(&["HSTRLEN", "bin", "\0\u{1}"]), ":0\r\n");
    assert_eq!(restored.r(&["TYPE", "plain"]), "+string\r\n");
    for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 9] {
        let mut broken = Harness::new();
        assert!(
            broken.sm.restore(&mut &bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_snapshot_with_an_unknown_type_tag_or_an_empty_hash_is_refused() {
    let mut h = Harness::new();
    h.w(&["HSET", "h", "f", "v"]);
    let bytes = h.snapshot();
    // The only key's tag follows the magic, the session table and the key count.
    let key_at = bytes.len() - 8 - (1 + 4 + 1 + 8 + 4 + 1 + 4 + 1 + 8 + 8);
    assert_eq!(bytes[key_at], 2, "tag 2: a hash");
    let mut unknown = bytes.clone();
    unknown[key_at] = 9;
    let error = Harness::new().sm.restore(&mut &unknown[..]).unwrap_err();
    assert!(error.to_string().contains("unknown type tag 9"), "{error}");
    let mut empty = bytes[..key_at + 1 + 4 + 1].to_vec();
    empty.extend_from_slice(&0u64.to_le_bytes());
    empty.extend_from_slice(&bytes[bytes.len() - 8 - 16..]);
    let error = Harness::new().sm.restore(&mut &empty[..]).unwrap_err();
    assert!(error.to_string().contains("empty hash"), "{error}");
}

/// A model of one key's hash: HSET/HDEL/HGETALL/HLEN/EXISTS agree with a `BTreeMap`.
#[derive(Debug, Clone)]
enum ModelOp {
    Set(Vec<(u8, u8)>),
    Del(Vec<u8>),
}

fn arb_model_op() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        proptest::collection::vec((0..8u8, 0..4u8), 1..4).prop_map(ModelOp::Set),
        proptest::collection::vec(0..8u8, 1..4).prop_map(ModelOp::Del),
    ]
}

fn parse_bulks(reply: &str) -> Vec<String> {
    let lines: Vec<&str> = reply.split("\r\n").collect();
    let count: usize = lines[0][1..].parse().unwrap();
    (0..count).map(|i| lines[2 + 2 * i].to_string()).collect()
}

proptest! {
    #[test]
    fn hset_hdel_hgetall_agree_with_a_model(ops in proptest::collection::vec(arb_model_op(), 1..40)) {
        let mut h = Harness::new();
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        for op in ops {
            match op {
                ModelOp::Set(pairs) => {
                    let mut words = vec!["HSET".to_string(), "h".into()];
                    let mut added = std::collections::BTreeSet::new();
                    for (f, v) in &pairs {
                        words.push(format!("f{f}"));
                        words.push(format!("v{v}"));
                        if !model.contains_key(&format!("f{f}")) {
                            added.insert(*f);
                        }
                    }
                    for (f, v) in &pairs {
                        model.insert(format!("f{f}"), format!("v{v}"));
                    }
                    let words: Vec<&str> = words.iter().map(String::as_str).collect();
                    prop_assert_eq!(h.w(&words), format!(":{}\r\n", added.len()));
                }
                ModelOp::Del(fields) => {
                    let mut words = vec!["HDEL".to_string(), "h".into()];
                    let mut removed = 0;
                    for f in &fields {
                        words.push(format!("f{f}"));
                        if model.remove(&format!("f{f}")).is_some() {
                            removed += 1;
                        }
                    }
                    let words: Vec<&str> = words.iter().map(String::as_str).collect();
                    prop_assert_eq!(h.w(&words), format!(":{removed}\r\n"));
                }
            }
            let all = parse_bulks(&h.r(&["HGETALL", "h"]));
            let pairs: BTreeMap<String, String> =
                all.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            prop_assert_eq!(pairs.len() * 2, all.len(), "no field twice");
            prop_assert_eq!(&pairs, &model);
            prop_assert_eq!(h.r(&["HLEN", "h"]), format!(":{}\r\n", model.len()));
            let exists = if model.is_empty() { ":0\r\n" } else { ":1\r\n" };
            prop_assert_eq!(h.r(&["EXISTS", "h"]), exists);
            // HKEYS and HVALS list in HGETALL's order.
            let fields: Vec<String> = all.iter().step_by(2).cloned().collect();
            let values: Vec<String> = all.iter().skip(1).step_by(2).cloned().collect();
            prop_assert_eq!(parse_bulks(&h.r(&["HKEYS", "h"])), fields);
            prop_assert_eq!(parse_bulks(&h.r(&["HVALS", "h"])), values);
        }
    }
}

fn arb_hash_command() -> impl Strategy<Value = Vec<String>> {
    let key = (0..4u8).prop_map(|k| format!("k{k}"));
    let field = (0..5u8).prop_map(|f| format!("f{f}"));
    prop_oneof![
        (key.clone(), field.clone(), 0..100u32).prop_map(|(k, f, v)| vec![
            "HSET".into(),
            k,
            f,
            v.to_string()
        ]),
        (key.clone(), field.clone()).prop_map(|(k, f)| vec!["HDEL".into(), k, f]),
        (key.clone(), field.clone()).prop_map(|(k, f)| vec!["HINCRBY".into(), k, f, "3".into()]),
        (key.clone(), field.clone()).prop_map(|(k, f)| vec![
            "HINCRBYFLOAT".into(),
            k,
            f,
            "0.5".into()
        ]),
        (key.clone(), field).prop_map(|(k, f)| vec!["HSETNX".into(), k, f, "x".into()]),
        key.clone().prop_map(|k| vec!["HGETALL".into(), k]),
        key.clone()
            .prop_map(|k| vec!["HSCAN".into(), k, "0".into(), "COUNT".into(), "2".into()]),
        (key.clone(), 1..50u32).prop_map(|(k, ms)| vec!["PEXPIRE".into(), k, ms.to_string()]),
        (key.clone(), 0..100u32).prop_map(|(k, v)| vec!["SET".into(), k, v.to_string()]),
        (key.clone(), key).prop_map(|(a, b)| vec!["RENAME".into(), a, b]),
    ]
}

proptest! {
    /// Two replicas applying the same log of hash commands, one restarted from a snapshot
    /// midway, give identical replies and identical snapshots.
    #[test]
    fn replicas_applying_the_same_hash_log_agree(
        log in proptest::collection::vec(
            (proptest::collection::vec(arb_hash_command(), 1..4), 0..30u64),
            1..40),
        restart_at in 0..40usize,
    ) {
        let mut a = KvStateMachine::new(SessionConfig::default());
        let mut b = KvStateMachine::new(SessionConfig::default());
        let session = SessionId::new(1, 1);
        let mut seq = 0;
        let mut leader_ms = 1_000u64;
        for (index, (commands, advance_ms)) in log.iter().enumerate() {
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
            let batch = encoder.finish();
            let index = index as u64 + 1;
            prop_assert_eq!(a.apply(index, &batch), b.apply(index, &batch));
            a.keyspace().check_invariants();
            for (_, entry) in a.keyspace().iter_stored() {
                if let Ok(hash) = entry.value.as_hash() {
                    prop_assert!(!hash.is_empty(), "a stored hash has fields");
                }
            }
        }
        let (mut sa, mut sb) = (Vec::new(), Vec::new());
        a.snapshot(&mut sa).unwrap();
        b.snapshot(&mut sb).unwrap();
        prop_assert_eq!(sa, sb);
    }
}

//! Which Redis Cluster hash slot a request addresses.
//!
//! # The rule
//!
//! A request's keys are found as Redis 7 finds them for `COMMAND GETKEYS` (and for its
//! cluster redirection): from the command's key specs in the [command
//! table](super::command_table), or its subcommand's when the table lists subcommands. Each
//! spec begins at an argument index and takes a range of arguments from there (up to a last
//! key relative to the beginning, or counted from the end, every `key_step`, or a `limit`th
//! of the rest). A spec that does not fit the arguments (too few of them) makes the whole
//! request keyless, as in Redis: the arity check answers such a request, not the slot check.
//!
//! Each key's slot is [`key_slot`] (CRC16 of the key or of its `{hash tag}`). A request is
//! [`RequestSlot::Slot`] when all its keys share one slot, [`RequestSlot::CrossSlot`] when
//! they do not (answered with [`CROSSSLOT_ERROR`]), and [`RequestSlot::NoKeys`] when it names
//! none: keyless commands (`PING`, `DBSIZE`, `KEYS`, `SCAN`, `FLUSHALL`, `CLUSTER ...`,
//! `MULTI`, `EXEC`, ...) and names the table does not know. `KETCH.WRITE <session> <seq>
//! <acked-below> <command> [args...]` addresses the slot of the command it wraps.
//!
//! # Why slots, not slot ranges
//!
//! The answer depends only on the keys' slots, never on which range or group of slots a
//! node serves. A multi-key request whose keys are in two slots is refused even when one
//! group happens to hold both: were it accepted, a later split of that range between groups
//! would turn the same request into a refusal, and a client that worked would stop working.
//! Redis Cluster gives the same guarantee the same way (its `CROSSSLOT` compares slots).

use super::command_table::{lookup, BeginSearch, CommandSpec, FindKeys};
use crate::kv::cluster::key_slot;

/// The hash slot a request's keys map to (Redis Cluster's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestSlot {
    /// The command names no key (PING, DBSIZE, KEYS, SCAN, FLUSHALL, INFO, CLUSTER ...,
    /// unknown commands).
    NoKeys,
    /// Every key is in this slot.
    Slot(u16),
    /// Keys in different slots.
    CrossSlot,
}

/// Redis Cluster's reply to a [`RequestSlot::CrossSlot`] request (without the leading `-`).
pub(super) const CROSSSLOT_ERROR: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// The slot `request` (name first, any case) addresses (module docs).
pub(crate) fn request_slot(request: &[Vec<u8>]) -> RequestSlot {
    let Some(keys) = request_keys(request) else {
        return RequestSlot::NoKeys;
    };
    let mut slots = keys.into_iter().map(key_slot);
    let Some(first) = slots.next() else {
        return RequestSlot::NoKeys;
    };
    if slots.all(|slot| slot == first) {
        RequestSlot::Slot(first)
    } else {
        RequestSlot::CrossSlot
    }
}

/// The keys of `request` in argument order (repeats kept), or `None` if it names none or
/// its key specs do not fit its arguments.
fn request_keys(request: &[Vec<u8>]) -> Option<Vec<&[u8]>> {
    let name = request.first()?;
    // One level only: the wrapped command is a plain write (parse refuses anything else),
    // and a nested wrapper is then just a keyless name, with no recursion on hostile input.
    let request = if name.eq_ignore_ascii_case(b"ketch.write") {
        request.get(4..).filter(|wrapped| !wrapped.is_empty())?
    } else {
        request
    };
    let spec = command_spec(request)?;
    let positions = key_positions(spec, request.len())?;
    Some(
        positions
            .into_iter()
            .map(|at| request[at].as_slice())
            .collect(),
    )
}

/// The table's entry for `request`: its subcommand's when the command has subcommands, as
/// Redis looks up `parent|sub` before finding keys.
fn command_spec(request: &[Vec<u8>]) -> Option<&'static CommandSpec> {
    let spec = lookup(request.first()?)?;
    if spec.subcommands.is_empty() {
        return Some(spec);
    }
    let sub = request.get(1)?;
    spec.subcommands.iter().find(|candidate| {
        candidate
            .name
            .split_once('|')
            .is_some_and(|(_, name)| name.as_bytes().eq_ignore_ascii_case(sub))
    })
}

/// The argument positions of `spec`'s keys in a request of `argc` words, as Redis 7's
/// `getKeysUsingKeySpecs` finds them; `None` if some spec is out of bounds for `argc`.
fn key_positions(spec: &CommandSpec, argc: usize) -> Option<Vec<usize>> {
    let argc = i64::try_from(argc).ok()?;
    let mut positions = Vec::new();
    for key_spec in spec.key_specs {
        // Irrefutable on purpose: a new kind of spec in the table must be taught here too.
        let BeginSearch::Index(first) = key_spec.begin_search;
        let FindKeys::Range {
            last_key,
            key_step: step,
            limit,
        } = key_spec.find_keys;
        let last = if last_key >= 0 {
            first.checked_add(last_key)?
        } else if limit == 0 {
            argc.checked_add(last_key)?
        } else {
            // Redis: keys in the first 1/limit of the arguments after `first`.
            let rest = argc.checked_sub(first)?.checked_div(limit)?;
            first.checked_add(rest)?.checked_add(last_key)?
        };
        // `step < 1` would never end; Redis' own table has no such spec.
        if first < 1 || step < 1 || first >= argc || last >= argc || last < first {
            return None;
        }
        let mut at = first;
        while at <= last {
            positions.push(usize::try_from(at).ok()?);
            at = at.checked_add(step)?;
        }
    }
    Some(positions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|word| word.as_bytes().to_vec()).collect()
    }

    fn slot_of(words: &[&str]) -> RequestSlot {
        request_slot(&request(words))
    }

    const SESSION: &str = "0000018c2f4a3b1d0001a2b3c4d5e6f7";

    #[test]
    fn single_key_commands_address_the_key_slot() {
        assert_eq!(
            slot_of(&["SET", "foo", "bar"]),
            RequestSlot::Slot(key_slot(b"foo"))
        );
        assert_eq!(slot_of(&["get", "foo"]), RequestSlot::Slot(12182));
        assert_eq!(
            slot_of(&["SET", "{user1000}.following", "x", "EX", "10"]),
            RequestSlot::Slot(key_slot(b"user1000"))
        );
        assert_eq!(slot_of(&["GeT", "foo"]), slot_of(&["GET", "foo"]));
    }

    #[test]
    fn mset_keys_share_a_slot_only_with_a_hash_tag() {
        assert_eq!(
            slot_of(&["MSET", "{user}a", "1", "{user}b", "2"]),
            RequestSlot::Slot(key_slot(b"user"))
        );
        assert_eq!(
            slot_of(&["MSET", "a", "1", "b", "2"]),
            RequestSlot::CrossSlot
        );
        // The values are not keys: only `a` counts.
        assert_eq!(
            slot_of(&["MSET", "a", "b", "a", "c"]),
            RequestSlot::Slot(key_slot(b"a"))
        );
        assert_eq!(
            slot_of(&["MSETNX", "{t}1", "v", "{t}2", "w"]),
            RequestSlot::Slot(key_slot(b"t"))
        );
    }

    #[test]
    fn multi_key_commands_take_every_key() {
        for name in ["DEL", "EXISTS", "MGET", "UNLINK", "WATCH"] {
            assert_eq!(
                slot_of(&[name, "{x}1", "{x}2", "{x}3"]),
                RequestSlot::Slot(key_slot(b"x")),
                "{name}"
            );
            assert_eq!(
                slot_of(&[name, "{x}1", "{x}2", "{y}3"]),
                RequestSlot::CrossSlot,
                "{name}"
            );
            assert_eq!(
                slot_of(&[name, "a", "a"]),
                RequestSlot::Slot(key_slot(b"a")),
                "{name}"
            );
        }
        assert_eq!(slot_of(&["RENAME", "a", "b"]), RequestSlot::CrossSlot);
        assert_eq!(
            slot_of(&["RENAME", "{a}1", "{a}2"]),
            RequestSlot::Slot(key_slot(b"a"))
        );
        // HMGET's fields are not keys.
        assert_eq!(
            slot_of(&["HMGET", "h", "a", "b"]),
            RequestSlot::Slot(key_slot(b"h"))
        );
    }

    #[test]
    fn ketch_write_addresses_the_wrapped_command() {
        assert_eq!(
            slot_of(&["KETCH.WRITE", SESSION, "5", "4", "SET", "foo", "bar"]),
            RequestSlot::Slot(key_slot(b"foo"))
        );
        assert_eq!(
            slot_of(&[
                "ketch.write",
                SESSION,
                "5",
                "4",
                "MSET",
                "{u}a",
                "1",
                "{u}b",
                "2"
            ]),
            RequestSlot::Slot(key_slot(b"u"))
        );
        assert_eq!(
            slot_of(&["KETCH.WRITE", SESSION, "5", "4", "MSET", "a", "1", "b", "2"]),
            RequestSlot::CrossSlot
        );
        assert_eq!(
            slot_of(&["KETCH.WRITE", SESSION, "5", "4"]),
            RequestSlot::NoKeys
        );
        assert_eq!(
            slot_of(&["KETCH.WRITE", SESSION, "5", "4", "FLUSHALL"]),
            RequestSlot::NoKeys
        );
        // The session words are never keys, whatever they look like.
        assert_eq!(
            slot_of(&["KETCH.WRITE", "a", "b", "c", "SET", "d", "e"]),
            RequestSlot::Slot(key_slot(b"d"))
        );
    }

    #[test]
    fn keyless_and_unknown_requests_name_no_keys() {
        for words in [
            &[][..],
            &["PING"],
            &["PING", "hello"],
            &["DBSIZE"],
            &["KEYS", "*"],
            &["SCAN", "0"],
            &["FLUSHALL"],
            &["INFO", "keyspace"],
            &["CLUSTER", "KEYSLOT", "foo"],
            &["CLUSTER"],
            &["CLIENT", "NOSUCH", "x"],
            &["MULTI"],
            &["EXEC"],
            &["DISCARD"],
            &["NOSUCHCOMMAND", "foo"],
            &["KETCH.MEMBERS"],
        ] {
            assert_eq!(slot_of(words), RequestSlot::NoKeys, "{words:?}");
        }
        assert_eq!(
            request_slot(&[vec![0xff, 0xfe], b"k".to_vec()]),
            RequestSlot::NoKeys
        );
    }

    #[test]
    fn too_few_arguments_name_no_keys() {
        assert_eq!(slot_of(&["GET"]), RequestSlot::NoKeys);
        assert_eq!(slot_of(&["MSET"]), RequestSlot::NoKeys);
        assert_eq!(slot_of(&["RENAME", "a"]), RequestSlot::NoKeys);
        assert_eq!(slot_of(&["WATCH"]), RequestSlot::NoKeys);
    }

    #[test]
    fn crossslot_error_is_redis_wording() {
        assert!(CROSSSLOT_ERROR.starts_with("CROSSSLOT "));
    }

    /// Every entry that declares legacy keys also has key specs, so that finding keys from
    /// the specs alone misses none.
    #[test]
    fn legacy_key_positions_agree_with_key_specs() {
        fn check(spec: &CommandSpec) {
            assert_eq!(
                spec.first_key != 0,
                !spec.key_specs.is_empty(),
                "{}",
                spec.name
            );
            spec.subcommands.iter().for_each(check);
        }
        super::super::command_table::COMMANDS.iter().for_each(check);
    }

    fn word() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..6),
            Just(b"{t}a".to_vec()),
            Just(b"{t}b".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"99999999999999999999".to_vec()),
        ]
    }

    fn command_name() -> impl Strategy<Value = Vec<u8>> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        for spec in super::super::command_table::COMMANDS {
            names.push(spec.name.as_bytes().to_vec());
            names.push(spec.name.to_ascii_uppercase().into_bytes());
        }
        prop_oneof![
            proptest::sample::select(names),
            proptest::collection::vec(any::<u8>(), 0..8)
        ]
    }

    proptest! {
        /// Never panics, and a slot it names is that of some argument.
        #[test]
        fn any_request_is_answered(
            name in command_name(),
            wrap in any::<bool>(),
            args in proptest::collection::vec(word(), 0..10),
        ) {
            let mut request = Vec::new();
            if wrap {
                request.extend(self::request(&["KETCH.WRITE", SESSION, "1", "0"]));
            }
            request.push(name);
            request.extend(args);
            if let RequestSlot::Slot(slot) = request_slot(&request) {
                prop_assert!(request.iter().any(|word| key_slot(word) == slot));
            }
            let keys = request_keys(&request).unwrap_or_default();
            prop_assert!(keys.len() < request.len());
        }
    }
}

/// The key extraction against Redis itself: `COMMAND GETKEYS` of a real `redis-server`.
#[cfg(test)]
mod redis_reference {
    use super::*;
    use crate::kv::resp::{encode_request, Limits, Reply, ReplyParser};
    use std::io::{ErrorKind, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A `redis-server` listening on a Unix socket only (no port to pick or collide on),
    /// killed on drop.
    struct RedisServer {
        child: Child,
        stream: UnixStream,
        buffer: Vec<u8>,
        _dir: tempfile::TempDir,
    }

    impl RedisServer {
        /// `None` if `redis-server` is not installed.
        fn start() -> Option<RedisServer> {
            let dir = tempfile::tempdir().expect("temp dir");
            let socket = dir.path().join("redis.sock");
            let spawned = Command::new("redis-server")
                .args(["--port", "0", "--save", "", "--appendonly", "no"])
                .arg("--unixsocket")
                .arg(&socket)
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(error) if error.kind() == ErrorKind::NotFound => return None,
                Err(error) => panic!("spawn redis-server: {error}"),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let stream = loop {
                match UnixStream::connect(&socket) {
                    Ok(stream) => break stream,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(error) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("redis-server does not listen on {socket:?} within 10 s: {error}");
                    }
                }
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("read timeout");
            Some(RedisServer {
                child,
                stream,
                buffer: Vec::new(),
                _dir: dir,
            })
        }

        fn call(&mut self, words: &[Vec<u8>]) -> Reply {
            let mut out = Vec::new();
            encode_request(&mut out, words);
            self.stream.write_all(&out).expect("write to redis-server");
            let parser = ReplyParser::new(Limits::unbounded());
            loop {
                if let Some((reply, used)) = parser.parse(&self.buffer).expect("a reply") {
                    self.buffer.drain(..used);
                    return reply;
                }
                let mut chunk = [0u8; 4096];
                let read = self
                    .stream
                    .read(&mut chunk)
                    .expect("read from redis-server");
                assert!(read > 0, "redis-server closed the connection");
                self.buffer.extend_from_slice(&chunk[..read]);
            }
        }

        /// `COMMAND GETKEYS` of `request`: `None` where Redis finds no keys (an error).
        fn getkeys(&mut self, request: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
            let mut words = vec![b"COMMAND".to_vec(), b"GETKEYS".to_vec()];
            words.extend_from_slice(request);
            match self.call(&words) {
                Reply::Error(_) => None,
                Reply::Array(Some(keys)) => Some(
                    keys.into_iter()
                        .map(|key| match key {
                            Reply::Bulk(Some(key)) => key,
                            other => panic!("GETKEYS {request:?}: key {other:?}"),
                        })
                        .collect(),
                ),
                other => panic!("GETKEYS {request:?}: {other:?}"),
            }
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Every command or subcommand of the table that takes no subcommand itself.
    fn leaves() -> Vec<&'static CommandSpec> {
        fn add(spec: &'static CommandSpec, out: &mut Vec<&'static CommandSpec>) {
            if spec.subcommands.is_empty() {
                out.push(spec);
            }
            spec.subcommands.iter().for_each(|sub| add(sub, out));
        }
        let mut out = Vec::new();
        super::super::command_table::COMMANDS
            .iter()
            .for_each(|spec| add(spec, &mut out));
        out
    }

    /// Requests of `spec` with every argument count its arity allows up to four past the
    /// least, in two spellings: distinct keys (slots differ) and one hash tag (one slot).
    fn requests(spec: &CommandSpec) -> Vec<Vec<Vec<u8>>> {
        let name: Vec<Vec<u8>> = spec
            .name
            .split('|')
            .map(|word| word.to_ascii_uppercase().into_bytes())
            .collect();
        let least = usize::try_from(spec.arity.unsigned_abs()).expect("arity");
        let counts = if spec.arity > 0 {
            least..=least
        } else {
            least..=least + 4
        };
        let mut out = Vec::new();
        for count in counts {
            for tag in ["", "{t}"] {
                let mut request = name.clone();
                while request.len() < count {
                    request.push(format!("{tag}w{}", request.len()).into_bytes());
                }
                out.push(request);
            }
        }
        out
    }

    #[test]
    fn keys_are_those_of_redis_command_getkeys() {
        let Some(mut redis) = RedisServer::start() else {
            eprintln!(
                "note: redis-server is not installed; skipping the COMMAND GETKEYS comparison"
            );
            return;
        };
        let mut compared_with_keys = 0;
        for spec in leaves() {
            // Ketch's own commands are unknown to Redis; KETCH.WRITE is tested above.
            if spec.name.starts_with("ketch.") {
                continue;
            }
            for request in requests(spec) {
                let expected = redis.getkeys(&request);
                let found = request_keys(&request)
                    .filter(|keys| !keys.is_empty())
                    .map(|keys| keys.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
                assert_eq!(found, expected, "keys of {:?}", words_text(&request));
                let expected_slot = match expected.as_deref() {
                    None | Some([]) => RequestSlot::NoKeys,
                    Some([first, rest @ ..]) => {
                        let slot = key_slot(first);
                        if rest.iter().all(|key| key_slot(key) == slot) {
                            RequestSlot::Slot(slot)
                        } else {
                            RequestSlot::CrossSlot
                        }
                    }
                };
                assert_eq!(
                    request_slot(&request),
                    expected_slot,
                    "slot of {:?}",
                    words_text(&request)
                );
                if expected.is_some() {
                    compared_with_keys += 1;
                }
            }
        }
        // The table's keyed commands (strings, keys, expiry, hashes, WATCH) all took part.
        assert!(
            compared_with_keys >= 100,
            "only {compared_with_keys} requests had keys"
        );
    }

    fn words_text(request: &[Vec<u8>]) -> Vec<String> {
        request
            .iter()
            .map(|word| String::from_utf8_lossy(word).into_owned())
            .collect()
    }
}

//! Three-node key-value clusters (`KvService`, and `ShardedService` in the last test) in one
//! process, spoken to over RESP2 (and, in
//! the last section, RESP3 after `HELLO 3`) with plain `std::net::TcpStream`s: every reply is
//! checked byte for byte.
//!
//! Reproduce one test with `cargo test --release --test kv_service <name> -- --nocapture`.
//! `cargo test --release --test kv_service redis_benchmark -- --ignored --nocapture` runs
//! `redis-benchmark` against an in-process cluster and prints its report (no assertion on
//! speed).

#[path = "harness/ports.rs"]
mod ports;
#[path = "harness/seeded.rs"]
mod seeded;
#[path = "harness/set_outcomes.rs"]
mod set_outcomes;
#[path = "harness/watchdog.rs"]
mod watchdog;
use seeded::{env_u64, next_random};
use set_outcomes::Told;
use watchdog::watchdog;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketch::kv::cluster::key_slot;
use ketch::kv::resp::{encode_request, Frame, Limits, Reply, ReplyParser, Resp3Parser};
use ketch::kv::sharded::{replace_command, RoutingTable, META_GROUP};
use ketch::kv::{KvService, ServiceConfig, SessionId, ShardedService};
use ketch::node::NodeConfig;
use ketch::raft::Role;
use ketch_storage::FaultInjector;

struct KvCluster {
    services: BTreeMap<u64, KvService>,
    _root: tempfile::TempDir,
}

impl KvCluster {
    fn start(size: u64, tweak: impl Fn(&mut ServiceConfig)) -> KvCluster {
        let root = tempfile::tempdir().unwrap();
        let peers = ports::node_addrs(size);
        let mut services = BTreeMap::new();
        for (&id, &addr) in &peers {
            let mut node = NodeConfig::new(id, 11, peers.clone(), addr);
            // These tests check the service, not failover, and run in parallel (7 clusters of
            // 3 nodes on 2 cores): 1-2 s elections and a 5 s disk-stall bound keep a starved
            // thread from causing a leader change that a test would see as -TIMEOUT.
            node.raft.election_timeout_ticks = 100;
            node.disk_stall_timeout = Duration::from_secs(5);
            let mut config = ServiceConfig::new(
                node,
                root.path().join(format!("node-{id}")),
                "127.0.0.1:0".parse().unwrap(),
            );
            tweak(&mut config);
            services.insert(id, KvService::start(config).unwrap());
        }
        let cluster = KvCluster {
            services,
            _root: root,
        };
        cluster.leader();
        cluster
    }

    /// Waits until every node knows the same leader, and returns it.
    fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let statuses: Vec<_> = self.services.values().map(|s| s.node().status()).collect();
            let leaders: Vec<_> = statuses
                .iter()
                .filter(|s| s.role == Role::Leader)
                .map(|s| s.id)
                .collect();
            if let [leader] = leaders[..] {
                if statuses.iter().all(|s| s.leader == Some(leader)) {
                    return leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {statuses:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn follower(&self) -> u64 {
        let leader = self.leader();
        *self.services.keys().find(|&&id| id != leader).unwrap()
    }

    fn connect(&self, id: u64) -> Client {
        Client::connect(self.services[&id].client_addr())
    }

    fn shutdown(self) {
        for (id, service) in self.services {
            service
                .shutdown()
                .unwrap_or_else(|e| panic!("node {id}: {e}"));
        }
    }
}

struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
    parser: ReplyParser,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buffer: Vec::new(),
            parser: ReplyParser::new(Limits::default()),
        }
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut bytes = Vec::new();
        encode_request(&mut bytes, args);
        self.stream.write_all(&bytes).unwrap();
    }

    /// The next reply, as the exact bytes received.
    fn reply_bytes(&mut self) -> Vec<u8> {
        loop {
            if let Some((_, used)) = self.parser.parse(&self.buffer).unwrap() {
                return self.buffer.drain(..used).collect();
            }
            let mut chunk = [0u8; 16 << 10];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("reply within the timeout");
            assert!(n > 0, "connection closed while waiting for a reply");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    fn reply(&mut self) -> Reply {
        let bytes = self.reply_bytes();
        self.parser.parse(&bytes).unwrap().unwrap().0
    }

    /// Sends a command and returns its reply as text (exact bytes, lossy UTF-8).
    fn call(&mut self, words: &[&str]) -> String {
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        self.send(&args);
        String::from_utf8_lossy(&self.reply_bytes()).into_owned()
    }

    /// Like `call`, retrying while the answer is `-TRYAGAIN` (certainly not applied).
    fn call_retrying(&mut self, words: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self.call(words);
            if !answer.starts_with("-TRYAGAIN") || Instant::now() > deadline {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads until the server closes the connection; returns what arrived before.
    fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buffer);
        self.stream
            .read_to_end(&mut rest)
            .expect("server closes within the timeout");
        rest
    }
}

#[test]
fn every_command_replies_with_redis_bytes_on_leader_and_follower() {
    let done = watchdog("every_command", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |_| {});
    let leader = cluster.leader();
    let follower = cluster.follower();
    for (round, id) in [leader, follower].into_iter().enumerate() {
        let mut c = cluster.connect(id);
        let k = |name: &str| format!("{name}-{round}");
        let (key, counter, list) = (k("key"), k("counter"), k("appended"));
        assert_eq!(c.call(&["PING"]), "+PONG\r\n");
        assert_eq!(c.call(&["ping", "hi"]), "$2\r\nhi\r\n");
        assert_eq!(c.call(&["ECHO", "a\r\nb"]), "$4\r\na\r\nb\r\n");
        assert_eq!(c.call(&["GET", &key]), "$-1\r\n");
        assert_eq!(c.call_retrying(&["SET", &key, "v1"]), "+OK\r\n");
        assert_eq!(c.call(&["GET", &key]), "$2\r\nv1\r\n");
        assert_eq!(c.call(&["SET", &key, "v2", "NX"]), "$-1\r\n");
        assert_eq!(c.call(&["SET", &key, "v2", "xx"]), "+OK\r\n");
        assert_eq!(c.call(&["SET", &k("absent"), "v", "XX"]), "$-1\r\n");
        assert_eq!(
            c.call(&["SET", &key, "v", "NX", "XX"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(c.call(&["SET", &key, "v2", "EX", "100"]), "+OK\r\n");
        assert_eq!(c.call(&["TTL", &key]), ":100\r\n");
        assert_eq!(c.call(&["GET", &key]), "$2\r\nv2\r\n");
        assert_eq!(c.call(&["APPEND", &list, "ab"]), ":2\r\n");
        assert_eq!(c.call(&["APPEND", &list, "cde"]), ":5\r\n");
        assert_eq!(c.call(&["GET", &list]), "$5\r\nabcde\r\n");
        assert_eq!(c.call(&["INCR", &counter]), ":1\r\n");
        assert_eq!(c.call(&["INCRBY", &counter, "41"]), ":42\r\n");
        assert_eq!(c.call(&["DECR", &counter]), ":41\r\n");
        assert_eq!(c.call(&["DECRBY", &counter, "-9"]), ":50\r\n");
        assert_eq!(
            c.call(&["INCR", &list]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            c.call(&["INCRBY", &counter, "1.5"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(c.call(&["MSET", &k("m1"), "1", &k("m2"), "2"]), "+OK\r\n");
        assert_eq!(
            c.call(&["MGET", &k("m1"), &k("none"), &k("m2")]),
            "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            c.call(&["EXISTS", &k("m1"), &k("m1"), &k("none")]),
            ":2\r\n"
        );
        assert_eq!(c.call(&["DEL", &k("m1"), &k("m2"), &k("none")]), ":2\r\n");
        // key, appended, counter per round.
        assert_eq!(c.call(&["DBSIZE"]), format!(":{}\r\n", 3 * (round + 1)));
        assert_eq!(
            c.call(&["GETX", "a", "b"]),
            "-ERR unknown command 'GETX', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            c.call(&["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            c.call(&["MSET", "a"]),
            "-ERR wrong number of arguments for 'mset' command\r\n"
        );
        assert!(c
            .call(&["COMMAND", "DOCS", "get"])
            .starts_with("*2\r\n$3\r\nget\r\n*8\r\n$7\r\nsummary\r\n"));
        assert_eq!(
            c.call(&["CONFIG", "GET", "appendonly"]),
            "*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n"
        );
        assert_eq!(c.call(&["CONFIG", "GET", "nosuch"]), "*0\r\n");
        let info = c.call(&["INFO"]);
        let role = if id == leader { "leader" } else { "follower" };
        assert!(info.contains(&format!("role:{role}\r\n")), "{info}");
        assert!(info.contains(&format!("leader_id:{leader}\r\n")), "{info}");
        assert!(info.contains("members:1,2,3\r\n"), "{info}");
        assert!(info.contains("applied_index:"), "{info}");
        assert!(info.contains("fsyncs:"), "{info}");
        // Inline commands, as typed into telnet.
        c.stream.write_all(b"PING\r\nECHO \"x y\"\n").unwrap();
        assert_eq!(c.reply_bytes(), b"+PONG\r\n");
        assert_eq!(c.reply_bytes(), b"$3\r\nx y\r\n");
        assert_eq!(c.call(&["QUIT"]), "+OK\r\n");
        assert!(c.read_to_close().is_empty());
    }
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn a_thousand_pipelined_commands_in_one_write_are_answered_in_order() {
    let done = watchdog("pipelining", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |_| {});
    for id in [cluster.leader(), cluster.follower()] {
        let mut c = cluster.connect(id);
        // SET k_i, then GET k_i right behind it, then INCR: the GET must see its own write.
        let mut bytes = Vec::new();
        for i in 0..334 {
            let key = format!("p{id}-{i}");
            let value = format!("value-{i}");
            encode_request(&mut bytes, &[b"SET", key.as_bytes(), value.as_bytes()]);
            encode_request(&mut bytes, &[b"GET", key.as_bytes()]);
            encode_request(&mut bytes, &[&b"INCR"[..], format!("n{id}").as_bytes()]);
        }
        // 1002 commands in one write.
        c.stream.write_all(&bytes).unwrap();
        for i in 0..334 {
            let value = format!("value-{i}");
            assert_eq!(c.reply(), Reply::Simple("OK".into()), "SET {i}");
            assert_eq!(c.reply(), Reply::Bulk(Some(value.into_bytes())), "GET {i}");
            assert_eq!(c.reply(), Reply::Integer(i + 1), "INCR {i}");
        }
    }
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

/// Reads stop at a short read and wait for the socket's next event: requests split across
/// writes, many small ones one after another, and a request sent with the connection's write
/// half closed must all still be answered, and the half-closed connection closed.
#[test]
fn requests_in_pieces_and_behind_a_half_close_are_answered_and_the_connection_closed() {
    let done = watchdog("pieces and half-close", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |_| {});
    let leader = cluster.leader();
    let mut c = cluster.connect(leader);
    let mut bytes = Vec::new();
    encode_request(&mut bytes, &[&b"SET"[..], b"piece", b"together"]);
    for chunk in bytes.chunks(3) {
        c.stream.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.reply(), Reply::Simple("OK".into()));
    for i in 0..200 {
        c.send(&[&b"GET"[..], b"piece"]);
        assert_eq!(
            c.reply(),
            Reply::Bulk(Some(b"together".to_vec())),
            "GET {i}"
        );
    }
    for round in 0..50 {
        let mut c = cluster.connect(leader);
        c.send(&[&b"GET"[..], b"piece"]);
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(
            c.reply(),
            Reply::Bulk(Some(b"together".to_vec())),
            "round {round}"
        );
        let mut rest = Vec::new();
        // The read timeout (15 s) fails this if the server never sees the close.
        c.stream
            .read_to_end(&mut rest)
            .unwrap_or_else(|e| panic!("round {round}: the server did not close: {e}"));
        assert!(rest.is_empty(), "round {round}: {rest:?}");
    }
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn writes_on_a_follower_are_read_linearizably_everywhere() {
    let done = watchdog("follower", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |_| {});
    let follower = cluster.follower();
    let mut writer = cluster.connect(follower);
    for i in 0..50 {
        assert_eq!(
            writer.call_retrying(&["SET", "shared", &i.to_string()]),
            "+OK\r\n"
        );
        // Once the write is acknowledged, every node's linearizable read sees it.
        for id in cluster.services.keys() {
            let mut reader = cluster.connect(*id);
            assert_eq!(
                reader.call_retrying(&["GET", "shared"]),
                format!("${}\r\n{i}\r\n", i.to_string().len()),
                "node {id} after write {i}"
            );
            if i > 3 {
                break;
            }
        }
    }
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn malformed_input_gets_an_error_and_a_close_while_others_carry_on() {
    let done = watchdog("malformed", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |config| {
        config.server.limits.bulk_bytes_max = 1024;
    });
    let leader = cluster.leader();
    let mut good = cluster.connect(leader);
    assert_eq!(good.call_retrying(&["SET", "k", "v"]), "+OK\r\n");
    let cases: [(&[u8], &[u8]); 4] = [
        (
            b"*1\r\n$x\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n+PING\r\n",
            b"-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*-5x\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        // A bulk above the configured limit is refused from its header alone.
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (input, expected) in cases {
        let mut bad = cluster.connect(leader);
        // A valid command first: its reply must come before the error.
        bad.stream.write_all(b"PING\r\n").unwrap();
        bad.stream.write_all(input).unwrap();
        let mut received = bad.read_to_close();
        assert!(received.starts_with(b"+PONG\r\n"), "{received:?}");
        received.drain(..7);
        assert_eq!(
            String::from_utf8_lossy(&received),
            String::from_utf8_lossy(expected)
        );
        assert_eq!(good.call(&["GET", "k"]), "$1\r\nv\r\n");
    }
    // At the limit is accepted.
    let value = "x".repeat(1024);
    assert_eq!(good.call_retrying(&["SET", "big", &value]), "+OK\r\n");
    assert_eq!(good.call(&["GET", "big"]), format!("$1024\r\n{value}\r\n"));
    // Half a command, then the client goes away: nothing breaks.
    let mut partial = cluster.connect(leader);
    partial.stream.write_all(b"*3\r\n$3\r\nSET\r\n$1").unwrap();
    drop(partial);
    assert_eq!(good.call(&["PING"]), "+PONG\r\n");
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn an_explicit_session_write_retried_on_another_node_applies_once() {
    let done = watchdog("explicit_session", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |_| {});
    let leader = cluster.leader();
    let follower = cluster.follower();
    let session = SessionId::generate(900).to_string();
    let mut first = cluster.connect(follower);
    let mut second = cluster.connect(leader);
    let write = |seq: &str, acked: &str| {
        vec![
            "KETCH.WRITE".to_string(),
            session.clone(),
            seq.to_string(),
            acked.to_string(),
            "INCR".to_string(),
            "once".to_string(),
        ]
    };
    let words = write("1", "0");
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_eq!(first.call_retrying(&words), ":1\r\n");
    // The same (session, seq) on another node: the saved result, not a second increment.
    assert_eq!(second.call_retrying(&words), ":1\r\n");
    assert_eq!(first.call(&["GET", "once"]), "$1\r\n1\r\n");
    let next = write("2", "2");
    let next: Vec<&str> = next.iter().map(String::as_str).collect();
    assert_eq!(second.call_retrying(&next), ":2\r\n");
    assert_eq!(first.call_retrying(&next), ":2\r\n");
    // Seq 1 is acknowledged now: a late duplicate of it is refused, not applied.
    assert!(second
        .call(&words)
        .starts_with("-ERR sequence number below"));
    assert_eq!(second.call(&["GET", "once"]), "$1\r\n2\r\n");
    // A malformed session id is refused without touching the store.
    assert!(second
        .call(&["KETCH.WRITE", "nothex", "1", "0", "INCR", "once"])
        .starts_with("-ERR KETCH.WRITE"));
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn a_restarted_cluster_keeps_data_and_sessions_through_snapshots() {
    let done = watchdog("restart", Duration::from_secs(180));
    let root = tempfile::tempdir().unwrap();
    let peers = ports::node_addrs(3);
    let start_all = || {
        let mut services = BTreeMap::new();
        for (&id, &addr) in &peers {
            let mut node = NodeConfig::new(id, 12, peers.clone(), addr);
            node.raft.snapshot_threshold_entries = 20;
            let config = ServiceConfig::new(
                node,
                root.path().join(format!("node-{id}")),
                "127.0.0.1:0".parse().unwrap(),
            );
            services.insert(id, KvService::start(config).unwrap());
        }
        let cluster = KvCluster {
            services,
            _root: tempfile::tempdir().unwrap(),
        };
        cluster.leader();
        cluster
    };
    let session = SessionId::generate(901).to_string();
    let cluster = start_all();
    let mut c = cluster.connect(cluster.leader());
    for i in 0..100 {
        assert_eq!(
            c.call_retrying(&["SET", &format!("k{i}"), &format!("v{i}")]),
            "+OK\r\n"
        );
    }
    assert_eq!(
        c.call_retrying(&["KETCH.WRITE", &session, "1", "0", "INCR", "n"]),
        ":1\r\n"
    );
    for i in 100..140 {
        assert_eq!(c.call_retrying(&["SET", &format!("k{i}"), "x"]), "+OK\r\n");
    }
    drop(c);
    cluster.shutdown();

    let cluster = start_all();
    let mut c = cluster.connect(cluster.follower());
    assert_eq!(c.call_retrying(&["DBSIZE"]), ":141\r\n");
    assert_eq!(c.call_retrying(&["GET", "k7"]), "$2\r\nv7\r\n");
    // The session survived the snapshot and restart: the retry is answered, not re-applied.
    assert_eq!(
        c.call_retrying(&["KETCH.WRITE", &session, "1", "0", "INCR", "n"]),
        ":1\r\n"
    );
    assert_eq!(c.call_retrying(&["GET", "n"]), "$1\r\n1\r\n");
    drop(c);
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn a_slow_reader_is_not_read_from_and_idle_clients_are_closed() {
    let done = watchdog("slow_reader", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |config| {
        config.server.idle_timeout = Some(Duration::from_secs(3));
    });
    let leader = cluster.leader();
    let mut setup = cluster.connect(leader);
    assert_eq!(setup.call_retrying(&["SET", "k", "v"]), "+OK\r\n");
    drop(setup);

    // A client that sends 64 KiB ECHOs and never reads the replies. Unbounded buffering
    // would take all 2000 (128 MiB); with backpressure the server stops reading, the socket
    // buffers fill and the client's writes block.
    let mut slow = cluster.connect(leader);
    slow.stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let payload = vec![b'e'; 64 << 10];
    let mut request = Vec::new();
    encode_request(&mut request, &[&b"ECHO"[..], &payload]);
    let mut sent = 0;
    while sent < 2000 {
        if slow.stream.write_all(&request).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(
        sent < 2000,
        "the server kept reading from a client that reads nothing"
    );
    // Meanwhile other clients are served. (A fresh connection: filling the slow reader's
    // buffers can take longer than the 3 s idle timeout on a loaded machine, and a client
    // idle that long is rightly closed.)
    let mut other = cluster.connect(leader);
    assert_eq!(other.call_retrying(&["GET", "k"]), "$1\r\nv\r\n");
    drop(other);

    // Idle clients are closed after the idle timeout: a silent one, and the slow reader (no
    // input and nothing awaited for that long). The slow reader's close may be a reset, as
    // the server drops the requests it never read; either way it must not time out.
    let mut silent = cluster.connect(leader);
    assert!(silent.read_to_close().is_empty());
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match slow.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                break;
            }
        }
    }
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

/// Not a pass/fail test: starts a cluster, runs `redis-benchmark` against the leader and a
/// follower, prints the reports.
/// A value of `len` bytes that differs from a value of another length.
fn big_value(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (len % 253) as u8)
        .collect()
}

/// Sends `SET key value` and returns the reply's exact bytes as text.
fn set_bytes(client: &mut Client, key: &str, value: &[u8]) -> String {
    client.send(&[b"SET", key.as_bytes(), value]);
    String::from_utf8_lossy(&client.reply_bytes()).into_owned()
}

/// Every node answers `GET key` with `value`.
fn assert_everywhere(cluster: &KvCluster, key: &str, value: &[u8]) {
    let mut expected = format!("${}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(value);
    expected.extend_from_slice(b"\r\n");
    for &id in cluster.services.keys() {
        let mut client = cluster.connect(id);
        client.send(&[b"GET", key.as_bytes()]);
        let got = client.reply_bytes();
        assert!(
            got == expected,
            "node {id}: GET {key}: {} bytes, not the {} expected",
            got.len(),
            expected.len()
        );
    }
}

/// A small SET on every node succeeds within one second: replication is not wedged.
fn assert_writes_flow(cluster: &KvCluster, round: &str) {
    for &id in cluster.services.keys() {
        let mut client = cluster.connect(id);
        let started = Instant::now();
        let key = format!("after-{round}-{id}");
        assert_eq!(client.call(&["SET", &key, "v"]), "+OK\r\n", "node {id}");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "node {id}: a SET after {round} took {took:?}"
        );
    }
}

#[test]
fn values_of_megabytes_replicate_through_leader_and_follower_and_writes_keep_flowing() {
    let done = watchdog("big_values", Duration::from_secs(240));
    let cluster = KvCluster::start(3, |_| {});
    let leader = cluster.leader();
    let follower = cluster.follower();
    // 3 MB is past the peer frame limit a 1 MiB message bound gave; 20 MiB is far past it.
    for (len, via) in [
        (3_000_000, leader),
        (3_000_000, follower),
        (20 << 20, leader),
        (20 << 20, follower),
    ] {
        let key = format!("big-{len}-{via}");
        let value = big_value(len);
        let mut client = cluster.connect(via);
        assert_eq!(set_bytes(&mut client, &key, &value), "+OK\r\n", "{key}");
        assert_everywhere(&cluster, &key, &value);
        assert_writes_flow(&cluster, &key);
    }
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn values_over_the_limit_are_refused_before_or_at_apply_and_nothing_wedges() {
    let done = watchdog("value_limit", Duration::from_secs(180));
    const LIMIT: usize = 1 << 20;
    let cluster = KvCluster::start(3, |config| config.server.max_value_bytes = LIMIT);
    let leader = cluster.leader();
    let follower = cluster.follower();
    let too_large = |n: usize| format!("-ERR value too large ({n} bytes; limit {LIMIT})\r\n");
    for via in [leader, follower] {
        let mut client = cluster.connect(via);
        let at_limit = format!("at-limit-{via}");
        let value = big_value(LIMIT);
        assert_eq!(set_bytes(&mut client, &at_limit, &value), "+OK\r\n");
        assert_everywhere(&cluster, &at_limit, &value);
        // One byte over, and far over (still parsed: the request bound sits above the limit).
        for len in [LIMIT + 1, LIMIT + (LIMIT / 2)] {
            let key = format!("over-{len}-{via}");
            assert_eq!(
                set_bytes(&mut client, &key, &big_value(len)),
                too_large(len)
            );
            assert_eq!(client.call(&["GET", &key]), "$-1\r\n");
        }
        // MSET: the values together.
        let half = big_value(LIMIT / 2 + 1);
        client.send(&[b"MSET", b"m1", &half, b"m2", &half]);
        assert_eq!(
            String::from_utf8_lossy(&client.reply_bytes()),
            too_large(2 * half.len())
        );
        assert_eq!(client.call(&["EXISTS", "m1", "m2"]), ":0\r\n");
        // APPEND: the size it would result in, refused at apply on every replica alike.
        let appended = format!("appended-{via}");
        let start = big_value(LIMIT - 10);
        assert_eq!(set_bytes(&mut client, &appended, &start), "+OK\r\n");
        client.send(&[b"APPEND", appended.as_bytes(), b"0123456789"]);
        assert_eq!(
            String::from_utf8_lossy(&client.reply_bytes()),
            format!(":{LIMIT}\r\n")
        );
        client.send(&[b"APPEND", appended.as_bytes(), b"x"]);
        assert_eq!(
            String::from_utf8_lossy(&client.reply_bytes()),
            too_large(LIMIT + 1)
        );
        let mut expected = start.clone();
        expected.extend_from_slice(b"0123456789");
        assert_everywhere(&cluster, &appended, &expected);
        assert_writes_flow(&cluster, &format!("refusals-{via}"));
    }
    // Far past the request bound: a protocol error from the header alone, answered, then the
    // connection closes.
    let mut client = cluster.connect(leader);
    let header = format!("*3\r\n$3\r\nSET\r\n$4\r\nhuge\r\n${}\r\n", 3 * LIMIT);
    client.stream.write_all(header.as_bytes()).unwrap();
    let received = client.read_to_close();
    assert_eq!(
        String::from_utf8_lossy(&received),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_writes_flow(&cluster, "protocol-error");
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
#[ignore]
fn redis_benchmark() {
    let cluster = KvCluster::start(3, |_| {});
    let leader = cluster.leader();
    let follower = cluster.follower();
    let requests = std::env::var("KV_BENCH_REQUESTS").unwrap_or_else(|_| "100000".into());
    for (id, name) in [(leader, "leader"), (follower, "follower")] {
        let port = cluster.services[&id].client_addr().port().to_string();
        for (tests, pipeline) in [("set", "1"), ("set", "16"), ("get", "1"), ("get", "16")] {
            let output = std::process::Command::new("redis-benchmark")
                .args([
                    "-p", &port, "-t", tests, "-n", &requests, "-c", "50", "-d", "256", "-r",
                    "100000", "-P", pipeline, "-q",
                ])
                .output()
                .expect("redis-benchmark is installed");
            // redis-benchmark 7 exits at the first error reply: success means none.
            assert!(
                output.status.success(),
                "redis-benchmark failed: {output:?}"
            );
            println!(
                "{name} {tests} -P {pipeline}: {}{}",
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    cluster.shutdown();
}

/// The value each key gets in the disk-failure runs: 1-17 KiB.
fn value_of(key: &str) -> Vec<u8> {
    set_outcomes::value_of(key, 1 << 10, 16 << 10)
}

/// Pipelines windows of SETs of fresh keys to `addr` until `stop`, recording each reply.
fn spawn_set_writer(
    addr: SocketAddr,
    writer: u64,
    stop: &Arc<AtomicBool>,
    told_keys: &Arc<Mutex<Vec<(String, Told)>>>,
) -> std::thread::JoinHandle<()> {
    let stop = Arc::clone(stop);
    let told_keys = Arc::clone(told_keys);
    std::thread::spawn(move || {
        let client = std::cell::RefCell::new(Client::connect(addr));
        set_outcomes::write_until(
            writer,
            &stop,
            &told_keys,
            value_of,
            |args| client.borrow_mut().send(args),
            || client.borrow_mut().reply_bytes(),
        );
    })
}

/// One run through the service: RESP clients pipeline SETs at the leader and at a follower;
/// the leader's log fails (fsync or ENOSPC) under that load. Every key answered `-TRYAGAIN`
/// must be absent in the end, every `+OK` present with its value.
fn service_leader_disk_failure_run(seed: u64) {
    let mut random = seed;
    let faults: Arc<Mutex<BTreeMap<u64, Arc<FaultInjector>>>> = Arc::default();
    let cluster = KvCluster::start(3, |config| {
        let injector = Arc::new(FaultInjector::default());
        config.node.wal.fault_injector = Some(Arc::clone(&injector));
        faults.lock().unwrap().insert(config.node.id, injector);
    });
    let leader = cluster.leader();
    let follower = cluster.follower();
    let stop = Arc::new(AtomicBool::new(false));
    let told_keys: Arc<Mutex<Vec<(String, Told)>>> = Arc::default();
    let mut writers: Vec<_> = (0..3)
        .map(|w| {
            spawn_set_writer(
                cluster.services[&leader].client_addr(),
                w,
                &stop,
                &told_keys,
            )
        })
        .collect();
    writers.push(spawn_set_writer(
        cluster.services[&follower].client_addr(),
        3,
        &stop,
        &told_keys,
    ));
    let acked_before_fault = 20 + (next_random(&mut random) % 100) as usize;
    let deadline = Instant::now() + Duration::from_secs(20);
    while told_keys
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t == Told::Ok)
        .count()
        < acked_before_fault
    {
        assert!(Instant::now() < deadline, "no writes acknowledged");
        std::thread::sleep(Duration::from_millis(5));
    }
    let successes = next_random(&mut random) % 8;
    let disk_full = next_random(&mut random) % 2 == 0;
    let injector = Arc::clone(&faults.lock().unwrap()[&leader]);
    if disk_full {
        injector.fail_write_after(successes, 0, true);
    } else {
        injector.fail_sync_after(successes);
    }
    eprintln!(
        "seed {seed:#x}: node {leader}'s log fails ({}) after {successes} more operations",
        if disk_full { "ENOSPC" } else { "fsync" }
    );
    let mut info_client = cluster.connect(leader);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = info_client.call(&["INFO"]);
        if info.contains("participating:0\r\n") {
            assert!(info.contains("role:stopped\r\n"), "{info}");
            assert!(info.contains("leader_id:none\r\n"), "{info}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader never stopped: {info}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.join().unwrap();
    }
    // A marker acknowledged by the survivors' leader commits everything that leader kept.
    let mut reader = cluster.connect(follower);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.call(&["SET", "marker", "x"]) != "+OK\r\n" {
        assert!(
            Instant::now() < deadline,
            "seed {seed:#x}: the survivors commit nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let told_keys = told_keys.lock().unwrap().clone();
    let tally = set_outcomes::check_answers(seed, &told_keys, value_of, |key| {
        reader.call(&["GET", key]).into_bytes()
    });
    eprintln!("seed {seed:#x}: {tally:?}");
    for (id, service) in cluster.services {
        let result = service.shutdown();
        if id == leader {
            assert!(
                result.is_err(),
                "the failed node's shutdown reports its error"
            );
        } else {
            result.unwrap_or_else(|e| panic!("node {id}: {e}"));
        }
    }
}

/// The same rule as `node_cluster`'s disk-failure test, through the RESP service: no SET
/// answered `-TRYAGAIN` may be applied. `KETCH_FAULT_RUNS` sets the number of seeded runs
/// (default 3), `KETCH_FAULT_SEED` the first seed.
#[test]
fn a_leader_whose_disk_fails_under_load_answers_tryagain_only_for_what_never_applied() {
    let runs = env_u64("KETCH_FAULT_RUNS", 3);
    let first_seed = env_u64("KETCH_FAULT_SEED", 0x15d1);
    let done = watchdog(
        "service_leader_disk_failure",
        Duration::from_secs(90 + 40 * runs),
    );
    for run in 0..runs {
        service_leader_disk_failure_run(first_seed + run);
    }
    done.store(true, Ordering::Release);
}

// ---------------------------------------------------------------------------------------
// RESP3 and the connection's own commands: HELLO, CLIENT, INFO sections, CONFIG GET.

/// A connection that reads replies as RESP3 (which includes RESP2).
struct Resp3Client {
    stream: TcpStream,
    buffer: Vec<u8>,
    parser: Resp3Parser,
}

impl Resp3Client {
    fn connect(addr: SocketAddr) -> Resp3Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        Resp3Client {
            stream,
            buffer: Vec::new(),
            parser: Resp3Parser::new(Limits::default()),
        }
    }

    fn send(&mut self, words: &[&str]) {
        let mut bytes = Vec::new();
        encode_request(&mut bytes, words);
        self.stream.write_all(&bytes).unwrap();
    }

    /// The next reply: its exact bytes and what they parse to.
    fn reply(&mut self) -> (Vec<u8>, Frame) {
        loop {
            if let Some((frame, used)) = self.parser.parse(&self.buffer).unwrap() {
                return (self.buffer.drain(..used).collect(), frame);
            }
            let mut chunk = [0u8; 16 << 10];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("reply within the timeout");
            assert!(n > 0, "connection closed while waiting for a reply");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    fn call(&mut self, words: &[&str]) -> (String, Frame) {
        self.send(words);
        let (bytes, frame) = self.reply();
        (String::from_utf8_lossy(&bytes).into_owned(), frame)
    }

    /// Like `call`, retrying while the answer is `-TRYAGAIN` (certainly not applied).
    fn call_retrying(&mut self, words: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (answer, _) = self.call(words);
            if !answer.starts_with("-TRYAGAIN") || Instant::now() > deadline {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The value under bulk-string key `key` of a RESP3 map.
fn map_get<'a>(frame: &'a Frame, key: &str) -> &'a Frame {
    let Frame::Map(pairs) = frame else {
        panic!("not a map: {frame:?}")
    };
    pairs
        .iter()
        .find(|(k, _)| *k == Frame::bulk(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in {frame:?}"))
}

fn verbatim_text(frame: &Frame) -> String {
    match frame {
        Frame::Verbatim { format, text } => {
            assert_eq!(format, b"txt");
            String::from_utf8(text.clone()).unwrap()
        }
        other => panic!("not a verbatim string: {other:?}"),
    }
}

#[test]
fn hello_3_gives_a_map_nulls_and_verbatim_text_on_leader_and_follower() {
    let done = watchdog("hello_3", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |_| {});
    let leader = cluster.leader();
    let follower = cluster.follower();
    for (id, role) in [(leader, "master"), (follower, "replica")] {
        let addr = cluster.services[&id].client_addr();
        let mut c = Resp3Client::connect(addr);
        let key = format!("resp3-{id}");
        // RESP2 until HELLO 3; a pipeline switches between its replies.
        c.send(&["GET", &key]);
        c.send(&["HELLO", "3"]);
        c.send(&["GET", &key]);
        assert_eq!(c.reply().0, b"$-1\r\n");
        let (bytes, hello) = c.reply();
        assert!(
            bytes.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
            "{bytes:?}"
        );
        assert_eq!(map_get(&hello, "version"), &Frame::bulk("7.0.15"));
        assert_eq!(map_get(&hello, "proto"), &Frame::Integer(3));
        assert_eq!(map_get(&hello, "mode"), &Frame::bulk("standalone"));
        assert_eq!(map_get(&hello, "role"), &Frame::bulk(role));
        assert_eq!(map_get(&hello, "modules"), &Frame::Array(Vec::new()));
        let Frame::Integer(hello_id) = map_get(&hello, "id") else {
            panic!("{hello:?}")
        };
        assert_eq!(c.reply().0, b"_\r\n");
        // Nulls inside arrays too; other replies keep their RESP2 bytes.
        assert_eq!(c.call_retrying(&["SET", &key, "1"]), "+OK\r\n");
        assert_eq!(
            c.call(&["MGET", &key, "resp3-none"]).0,
            "*2\r\n$1\r\n1\r\n_\r\n"
        );
        assert_eq!(c.call(&["SET", &key, "2", "NX"]).0, "_\r\n");
        assert_eq!(c.call(&["INCR", &key]).0, ":2\r\n");
        assert_eq!(
            c.call(&["HELLO", "4"]).0,
            "-NOPROTO unsupported protocol version\r\n"
        );
        // Names, per connection.
        assert_eq!(c.call(&["CLIENT", "GETNAME"]).0, "_\r\n");
        assert_eq!(c.call(&["CLIENT", "SETNAME", "first"]).0, "+OK\r\n");
        assert_eq!(c.call(&["CLIENT", "GETNAME"]).0, "$5\r\nfirst\r\n");
        assert_eq!(c.call(&["CLIENT", "ID"]).1, Frame::Integer(*hello_id));
        assert_eq!(
            c.call(&["CLIENT", "SETINFO", "LIB-NAME", "ketch-test"]).0,
            "+OK\r\n"
        );
        let mut other = Resp3Client::connect(addr);
        assert_eq!(other.call(&["CLIENT", "SETNAME", "second"]).0, "+OK\r\n");
        assert_eq!(other.call(&["CLIENT", "GETNAME"]).0, "$6\r\nsecond\r\n");
        let list = verbatim_text(&c.call(&["CLIENT", "LIST"]).1);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 2, "{list}");
        assert!(
            lines[0].starts_with(&format!("id={hello_id} addr=127.0.0.1:")),
            "{list}"
        );
        assert!(lines[0].contains(" name=first "), "{list}");
        assert!(lines[0].contains(" cmd=client|list "), "{list}");
        assert!(
            lines[0].ends_with(" resp=3 lib-name=ketch-test lib-ver="),
            "{list}"
        );
        assert!(
            lines[1].contains(" name=second ") && lines[1].contains(" resp=2 "),
            "{list}"
        );
        // CONFIG GET is a map; INFO a verbatim string with the key count.
        assert_eq!(
            c.call(&["CONFIG", "GET", "appendonly"]).0,
            "%1\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n"
        );
        let (bytes, info) = c.call(&["INFO"]);
        assert!(bytes.starts_with("="), "{bytes}");
        let info = verbatim_text(&info);
        assert!(
            info.starts_with("# Server\r\nredis_version:7.0.15\r\n"),
            "{info}"
        );
        let redis_role = if id == leader { "master" } else { "slave" };
        assert!(
            info.contains(&format!("\r\nrole:{redis_role}\r\n")),
            "{info}"
        );
        let raft_role = if id == leader { "leader" } else { "follower" };
        assert!(
            info.contains(&format!("\r\nraft_role:{raft_role}\r\n")),
            "{info}"
        );
        assert!(info.contains("\r\nconnected_clients:2\r\n"), "{info}");
        let Frame::Integer(keys) = c.call(&["DBSIZE"]).1 else {
            panic!()
        };
        assert!(keys >= 1);
        let keyspace = verbatim_text(&c.call(&["INFO", "keyspace"]).1);
        assert_eq!(
            keyspace,
            format!("# Keyspace\r\ndb0:keys={keys},expires=0,avg_ttl=0\r\n")
        );
    }
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn info_selects_sections_like_redis_7() {
    let done = watchdog("info_sections", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |_| {});
    let mut c = cluster.connect(cluster.leader());
    let headers = |info: &str| -> Vec<String> {
        info.lines()
            .filter(|line| line.starts_with("# "))
            .map(|line| line.to_string())
            .collect()
    };
    let body = |reply: Reply| match reply {
        Reply::Bulk(Some(text)) => String::from_utf8(text).unwrap(),
        other => panic!("{other:?}"),
    };
    let all = [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Modules",
        "# Errorstats",
        "# Cluster",
        "# Keyspace",
    ];
    for words in [
        &["INFO"][..],
        &["INFO", "default"],
        &["info", "ALL"],
        &["INFO", "everything"],
    ] {
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        c.send(&args);
        let info = body(c.reply());
        assert_eq!(headers(&info), all, "{words:?}: {info}");
        assert!(info.contains("\r\n\r\n# Clients\r\n"), "{info}");
    }
    c.send(&[b"INFO", b"server", b"CLIENTS"]);
    let info = body(c.reply());
    assert_eq!(headers(&info), ["# Server", "# Clients"], "{info}");
    assert!(info.contains(&format!(
        "\r\ntcp_port:{}\r\n",
        cluster.services[&cluster.leader()].client_addr().port()
    )));
    assert!(info.contains("\r\nredis_mode:standalone\r\n"), "{info}");
    assert!(info.contains(&format!("\r\nprocess_id:{}\r\n", std::process::id())));
    assert_eq!(c.call(&["INFO", "nosuch"]), "$0\r\n\r\n");
    // The keyspace count is the node's.
    assert_eq!(
        c.call_retrying(&["MSET", "ks-a", "1", "ks-b", "2"]),
        "+OK\r\n"
    );
    assert_eq!(c.call_retrying(&["EXPIRE", "ks-b", "1000"]), ":1\r\n");
    let keyspace = "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n";
    assert_eq!(
        c.call(&["INFO", "keyspace"]),
        format!("${}\r\n{keyspace}\r\n", keyspace.len())
    );
    // CONFIG GET with a glob, each parameter once.
    let max = c.call(&["CONFIG", "GET", "*max*", "maxclients"]);
    assert!(max.starts_with("*8\r\n"), "{max}");
    assert!(
        max.contains("$10\r\nmaxclients\r\n$5\r\n10000\r\n"),
        "{max}"
    );
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

// ---------------------------------------------------------------------------------------------
// Expiry: the leader's clock decides (leader stamp), TTLs count down, reclaim without reads.
// ---------------------------------------------------------------------------------------------

/// Node 1's clock runs 10 s ahead of the others'; node 1 is made leader.
const LEADER_AHEAD_MS: i64 = 10_000;

/// `TTL key` as a number (panics on anything else).
fn ttl_of(c: &mut Client, command: &str, key: &str) -> i64 {
    let reply = c.call(&[command, key]);
    reply
        .strip_prefix(':')
        .and_then(|r| r.strip_suffix("\r\n"))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{command} {key}: {reply:?}"))
}

#[test]
fn a_key_set_with_ex_on_a_follower_expires_by_the_leaders_clock() {
    let done = watchdog("leader_clock", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |config| {
        if config.node.id == 1 {
            config.server.clock_offset_ms = LEADER_AHEAD_MS;
        }
    });
    let leader = cluster.leader();
    if leader != 1 {
        let mut c = cluster.connect(leader);
        assert_eq!(c.call(&["KETCH.TRANSFER", "1"]), "+OK\r\n");
    }
    assert_eq!(cluster.leader(), 1);
    let follower = cluster.follower();
    let mut at_follower = cluster.connect(follower);
    let mut at_leader = cluster.connect(1);
    assert_eq!(
        at_follower.call_retrying(&["SET", "k", "v", "EX", "3"]),
        "+OK\r\n"
    );
    // A write the leader stamps itself moves log time to the leader's clock. Had the
    // follower's clock stamped the SET, its deadline (follower time + 3 s) would already be
    // 7 s behind log time and the key gone.
    assert_eq!(at_leader.call_retrying(&["SET", "other", "x"]), "+OK\r\n");
    for c in [&mut at_follower, &mut at_leader] {
        assert_eq!(c.call(&["GET", "k"]), "$1\r\nv\r\n");
        let ttl = ttl_of(c, "PTTL", "k");
        assert!((1_000..=3_000).contains(&ttl), "PTTL {ttl}");
    }
    // By the follower's own clock the key has 13 s to live; by the leader's, 3 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Log time moves with the leader's stamps (this write, and its reclaims).
        assert_eq!(at_leader.call_retrying(&["SET", "other", "x"]), "+OK\r\n");
        if at_follower.call(&["GET", "k"]) == "$-1\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key outlived the leader's deadline"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(at_leader.call(&["GET", "k"]), "$-1\r\n");
    assert_eq!(at_follower.call(&["TTL", "k"]), ":-2\r\n");
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

#[test]
fn ttls_count_down_and_expired_keys_are_reclaimed_without_reads() {
    let done = watchdog("reclaim", Duration::from_secs(120));
    let cluster = KvCluster::start(3, |_| {});
    let follower = cluster.follower();
    let mut c = cluster.connect(follower);
    assert_eq!(
        c.call_retrying(&["SET", "slow", "v", "EX", "100"]),
        "+OK\r\n"
    );
    let first = ttl_of(&mut c, "PTTL", "slow");
    assert!((99_000..=100_000).contains(&first), "PTTL {first}");
    std::thread::sleep(Duration::from_millis(1_200));
    let second = ttl_of(&mut c, "PTTL", "slow");
    assert!(second <= first - 1_000, "PTTL {first} then {second}");
    assert!(ttl_of(&mut c, "TTL", "slow") <= 99);
    // Keys nobody reads again: reclaim items remove them (DBSIZE counts stored keys).
    const KEYS: usize = 200;
    for i in 0..KEYS {
        c.send(&[
            b"SET",
            format!("short:{i}").as_bytes(),
            b"v",
            b"PX",
            b"2000",
        ]);
    }
    for _ in 0..KEYS {
        assert_eq!(c.reply_bytes(), b"+OK\r\n");
    }
    assert_eq!(c.call(&["DBSIZE"]), format!(":{}\r\n", KEYS + 1));
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in cluster.services.keys() {
        let mut at = cluster.connect(*id);
        loop {
            if at.call(&["DBSIZE"]) == ":1\r\n" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "expired keys were not reclaimed on node {id}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(c.call(&["GET", "slow"]), "$1\r\nv\r\n");
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

// ---------------------------------------------------------------------------------------------
// Hashes: written through a follower, read on every node, refused over the value limit.
// ---------------------------------------------------------------------------------------------

#[test]
fn hashes_written_through_a_follower_read_alike_on_every_node() {
    let done = watchdog("hashes", Duration::from_secs(120));
    const LIMIT: usize = 1024;
    let cluster = KvCluster::start(3, |config| config.server.max_value_bytes = LIMIT);
    let follower = cluster.follower();
    let mut c = cluster.connect(follower);
    assert_eq!(
        c.call_retrying(&["HSET", "h", "f", "v", "n", "1"]),
        ":2\r\n"
    );
    assert_eq!(c.call(&["HSET", "h", "f", "w"]), ":0\r\n");
    assert_eq!(c.call(&["HMSET", "h", "g", "x"]), "+OK\r\n");
    assert_eq!(c.call(&["HINCRBY", "h", "n", "41"]), ":42\r\n");
    assert_eq!(c.call(&["HINCRBYFLOAT", "h", "n", "0.5"]), "$4\r\n42.5\r\n");
    assert_eq!(c.call(&["HSETNX", "h", "g", "y"]), ":0\r\n");
    assert_eq!(
        c.call(&["HINCRBY", "h", "f", "1"]),
        "-ERR hash value is not an integer\r\n"
    );
    assert_eq!(c.call(&["SET", "s", "str"]), "+OK\r\n");
    let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    assert_eq!(c.call(&["HSET", "s", "a", "b"]), wrongtype);
    assert_eq!(c.call(&["GET", "h"]), wrongtype);
    assert_eq!(c.call(&["EXPIRE", "h", "100"]), ":1\r\n");
    // A field's value is bounded like a string value, before it is proposed.
    let over = "x".repeat(LIMIT + 1);
    assert_eq!(
        c.call(&["HSET", "h", "big", &over]),
        format!(
            "-ERR value too large ({} bytes; limit {LIMIT})\r\n",
            LIMIT + 1
        )
    );
    // The acknowledged writes are applied on every node, one reply each (a ReadIndex read).
    let mut replies = Vec::new();
    for id in cluster.services.keys() {
        let mut at = cluster.connect(*id);
        assert_eq!(at.call(&["TYPE", "h"]), "+hash\r\n");
        assert_eq!(at.call(&["HLEN", "h"]), ":3\r\n");
        assert_eq!(
            at.call(&["HMGET", "h", "f", "n", "big"]),
            "*3\r\n$1\r\nw\r\n$4\r\n42.5\r\n$-1\r\n"
        );
        assert_eq!(at.call(&["HEXISTS", "h", "g"]), ":1\r\n");
        assert_eq!(at.call(&["HSTRLEN", "h", "n"]), ":4\r\n");
        assert_eq!(at.call(&["HGETALL", "s"]), wrongtype);
        let ttl = ttl_of(&mut at, "TTL", "h");
        assert!((90..=100).contains(&ttl), "TTL {ttl}");
        replies.push((
            at.call(&["HGETALL", "h"]),
            at.call(&["HKEYS", "h"]),
            at.call(&["HSCAN", "h", "0", "COUNT", "1"]),
        ));
    }
    assert!(
        replies.windows(2).all(|w| w[0] == w[1]),
        "every node lists fields in one order: {replies:?}"
    );
    let (all, _, _) = &replies[0];
    for part in [
        "$1\r\nf\r\n$1\r\nw\r\n",
        "$1\r\ng\r\n$1\r\nx\r\n",
        "$1\r\nn\r\n$4\r\n42.5\r\n",
    ] {
        assert!(all.starts_with("*6\r\n") && all.contains(part), "{all}");
    }
    // The last HDEL removes the key, on every node.
    assert_eq!(c.call(&["HDEL", "h", "f", "g", "nope"]), ":2\r\n");
    assert_eq!(c.call(&["HDEL", "h", "n"]), ":1\r\n");
    for id in cluster.services.keys() {
        let mut at = cluster.connect(*id);
        assert_eq!(at.call(&["EXISTS", "h"]), ":0\r\n", "node {id}");
        assert_eq!(at.call(&["HGETALL", "h"]), "*0\r\n", "node {id}");
    }
    cluster.shutdown();
    done.store(true, Ordering::Release);
}

/// A key in range `range` of `table`.
fn key_in_range(table: &RoutingTable, range: usize, tag: &str) -> String {
    let route = &table.ranges()[range];
    (0..)
        .map(|i| format!("{tag}{i}"))
        .find(|key| (route.first..=route.last).contains(&key_slot(key.as_bytes())))
        .expect("some key hashes into every range")
}

/// Replaces the routing table through the meta group (proposed on `service`'s host, which
/// forwards to the meta group's leader), then waits until every node routes by it.
fn replace_table(services: &BTreeMap<u64, ShardedService>, next: &RoutingTable) {
    let service = services.values().next().unwrap();
    let meta = service.host().group(META_GROUP).expect("the meta group");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = service.routing_table().epoch();
        match meta.propose(replace_command(seen, next)) {
            Ok(reply) => {
                assert_eq!(reply, b"+OK\r\n", "{}", String::from_utf8_lossy(&reply));
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "meta proposal: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    while services.values().any(|s| *s.routing_table() != *next) {
        assert!(
            Instant::now() < deadline,
            "a node did not apply the new table"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The routing table through the meta group, and the range check that keeps a stale table
/// from ever being served: a table naming another group for a range, or another epoch, gets
/// `-TRYAGAIN` (not applied) for that range's keys from every node, and keys of other ranges
/// go on being served; once the table is right again, the range's keys are as they were.
#[test]
fn a_route_the_range_group_does_not_hold_is_refused_never_served() {
    let _watchdog = watchdog("stale_route", Duration::from_secs(120));
    let root = tempfile::tempdir().unwrap();
    let peers = ports::node_addrs(3);
    let start = || -> BTreeMap<u64, ShardedService> {
        let start_one = |(&id, &addr): (&u64, &SocketAddr)| {
            let mut node = NodeConfig::new(id, 12, peers.clone(), addr);
            node.raft.election_timeout_ticks = 100;
            let config = ServiceConfig::new(
                node,
                root.path().join(format!("node-{id}")),
                "127.0.0.1:0".parse().unwrap(),
            );
            (id, ShardedService::start(config, 4).unwrap())
        };
        peers.iter().map(start_one).collect()
    };
    let mut services = start();
    let bootstrap = (*services[&1].routing_table()).clone();
    assert_eq!(bootstrap.epoch(), 1);
    assert_eq!(bootstrap.ranges().len(), 4);
    let (k0, k1) = (
        key_in_range(&bootstrap, 0, "a"),
        key_in_range(&bootstrap, 1, "b"),
    );
    let mut clients: Vec<Client> = services
        .values()
        .map(|s| Client::connect(s.client_addr()))
        .collect();
    assert_eq!(clients[0].call_retrying(&["SET", &k0, "before"]), "+OK\r\n");
    assert_eq!(clients[1].call_retrying(&["SET", &k1, "one"]), "+OK\r\n");

    // Range 0 named as group 2's (group 2 serves range 1), and then at an epoch range 0's
    // group is not at: both stale, both refused.
    let mut wrong_group = bootstrap.ranges().to_vec();
    wrong_group[0].group = 2;
    wrong_group[1].group = 1;
    let mut wrong_epoch = bootstrap.ranges().to_vec();
    wrong_epoch[0].epoch = 2;
    for (epoch, ranges) in [(2, wrong_group), (3, wrong_epoch)] {
        replace_table(&services, &RoutingTable::new(epoch, ranges).unwrap());
        let mut stale: Vec<Vec<&str>> = vec![vec!["GET", &k0], vec!["SET", &k0, "after"]];
        if epoch == 2 {
            // Range 1 named as group 1's, which serves range 0.
            stale.push(vec!["GET", &k1]);
        }
        for client in &mut clients {
            for command in &stale {
                let answer = client.call(command);
                assert!(
                    answer.starts_with("-TRYAGAIN not applied: this group serves slots"),
                    "table epoch {epoch}: {command:?} answered {answer:?}"
                );
            }
            assert_eq!(
                client.call(&["CLUSTER", "KEYSLOT", &k0]).as_bytes()[0],
                b':'
            );
        }
        // A range the table still has right is served (range 2's keys).
        let k2 = key_in_range(&bootstrap, 2, &format!("c{epoch}"));
        assert_eq!(clients[2].call_retrying(&["SET", &k2, "x"]), "+OK\r\n");
    }

    // The table right again: the refused SET never applied.
    let mut back = bootstrap.ranges().to_vec();
    back[0].epoch = 1;
    replace_table(&services, &RoutingTable::new(4, back).unwrap());
    for client in &mut clients {
        assert_eq!(client.call_retrying(&["GET", &k0]), "$6\r\nbefore\r\n");
        assert_eq!(client.call_retrying(&["GET", &k1]), "$3\r\none\r\n");
    }
    // A change decided on an old epoch is refused by the meta group.
    let meta = services[&1].host().group(META_GROUP).unwrap();
    let stale = meta
        .propose(replace_command(
            1,
            &RoutingTable::new(5, bootstrap.ranges().to_vec()).unwrap(),
        ))
        .unwrap();
    assert!(stale.starts_with(b"-ERR routing table change decided on epoch 1"));
    // Each host's table survives a restart (from the meta group's log).
    for (id, service) in std::mem::take(&mut services) {
        service
            .shutdown()
            .unwrap_or_else(|e| panic!("node {id}: {e}"));
    }
    services = start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while services.values().any(|s| s.routing_table().epoch() != 4) {
        assert!(Instant::now() < deadline, "the table did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = Client::connect(services[&2].client_addr());
    assert_eq!(client.call_retrying(&["GET", &k0]), "$6\r\nbefore\r\n");
    for (id, service) in services {
        service
            .shutdown()
            .unwrap_or_else(|e| panic!("node {id}: {e}"));
    }
}

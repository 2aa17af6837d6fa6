//! Redis Cluster clients against a 3-node cluster of real `ketch serve` processes started
//! with `--cluster-client-addrs`: every node answers as one shard owning all 16,384 slots,
//! led by the Raft leader (see `ketch::kv::cluster`).
//!
//! - The slot map on every node names the leader as the master at its RESP address and the
//!   other nodes as replicas (`CLUSTER SLOTS`, `SHARDS`, `NODES`, `MYID`, `INFO`);
//!   `redis-cli -c` sets and gets through a follower; `redis-benchmark` runs SET and GET to
//!   the end at the master the map names; redis-py's `RedisCluster` sets, gets and mgets keys of many slots
//!   (RESP3 and RESP2) and agrees with `CLUSTER KEYSLOT` on 1,000 random keys.
//! - With a real `redis-server --cluster-enabled yes` (three of them: a master owning every
//!   slot and two replicas) beside it: `CLUSTER KEYSLOT` of 1,000 random keys byte for byte,
//!   the shapes of `CLUSTER SLOTS` and `SHARDS` in RESP2 and RESP3 (ids and numbers aside),
//!   `CLUSTER INFO`'s field names, `CLUSTER NODES`' master line, `READONLY`, `READWRITE`,
//!   `COMMAND INFO` of both, the errors, `CLUSTER HELP`, and `redis-benchmark --cluster`,
//!   which refuses both one-shard clusters alike (it needs two masters with slots).
//! - After kill -9 of the leader, once a new one is elected, `CLUSTER SLOTS` names it on
//!   both survivors, and a `RedisCluster` writer that was writing all along keeps writing
//!   (losing no acknowledged SET); with one node left, it answers `cluster_state:fail` and
//!   an empty slot map.
//!
//! redis-cli, redis-benchmark, redis-server and redis-py (`KETCH_PYTHON`) parts are skipped
//! with a notice when the tool is missing, unless `KETCH_REQUIRE_REDIS_TOOLS` is set.
//! Reproduce with `KETCH_PYTHON=target/compat-venv/bin/python cargo test --release --test
//! e2e_redis_cluster -- --nocapture`.

#[path = "e2e/redis_py_writer.rs"]
mod redis_py_writer;
#[path = "e2e/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ketch::kv::resp::{Limits, Reply, ReplyParser};
use redis_py_writer::{cluster_script, python, skip, Writer};
use support::{free_consecutive_ports, run_tool, RawConnection, RedisServer, TestCluster};

/// A 3-node cluster whose nodes know each other's client addresses, with a leader.
fn start_cluster() -> TestCluster {
    let mut cluster = TestCluster::new_stopped(3, None);
    let list = cluster.cluster_client_addrs_arg();
    for id in 1..=3 {
        cluster
            .extra_args
            .insert(id, vec!["--cluster-client-addrs".into(), list.clone()]);
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_ready(Duration::from_secs(60));
    cluster
}

fn open(addr: SocketAddr) -> RawConnection {
    let connection = RawConnection::open(addr);
    connection
        .stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    connection
}

fn call(addr: SocketAddr, words: &[&str]) -> Vec<u8> {
    let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    open(addr).call(&words)
}

fn parse(bytes: &[u8]) -> Reply {
    let (reply, used) = ReplyParser::new(Limits::default())
        .parse(bytes)
        .expect("a RESP2 reply")
        .expect("a whole reply");
    assert_eq!(used, bytes.len());
    reply
}

fn bulk_text(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// A `CLUSTER SLOTS` node `[ip, port, id, {}]` as its address and id.
fn slots_node(reply: &Reply) -> (SocketAddr, String) {
    let Reply::Array(Some(fields)) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(fields.len(), 4, "{fields:?}");
    let Reply::Integer(port) = fields[1] else {
        panic!("{fields:?}")
    };
    let addr = format!("{}:{port}", bulk_text(&fields[0])).parse().unwrap();
    (addr, bulk_text(&fields[2]))
}

/// A `CLUSTER SLOTS` node: its address and id.
type SlotsNode = (SocketAddr, String);

/// The slot map `addr` answers: `None` for an empty one, else the master and the replicas.
fn slot_map(addr: SocketAddr) -> Option<(SlotsNode, Vec<SlotsNode>)> {
    let Reply::Array(Some(ranges)) = parse(&call(addr, &["CLUSTER", "SLOTS"])) else {
        panic!("CLUSTER SLOTS is not an array")
    };
    if ranges.is_empty() {
        return None;
    }
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let Reply::Array(Some(range)) = &ranges[0] else {
        panic!("{ranges:?}")
    };
    assert_eq!(
        (&range[0], &range[1]),
        (&Reply::Integer(0), &Reply::Integer(16383))
    );
    let master = slots_node(&range[2]);
    let replicas = range[3..].iter().map(slots_node).collect();
    Some((master, replicas))
}

/// Waits until `check` holds, polling every 50 ms; fails with `what` past `limit`.
fn wait_until(what: &str, limit: Duration, cluster: &TestCluster, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every running node's slot map names `leader` as master and the other
/// running nodes as replicas.
fn wait_for_map_led_by(cluster: &TestCluster, leader: u64) {
    let running: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|&id| cluster.is_running(id))
        .collect();
    let leader_addr = cluster.node(leader).client_addr;
    let replicas: BTreeSet<SocketAddr> = running
        .iter()
        .filter(|&&id| id != leader)
        .map(|&id| cluster.node(id).client_addr)
        .collect();
    for &via in &running {
        let mut last = None;
        wait_until(
            &format!("node {via}'s CLUSTER SLOTS names node {leader} and its replicas"),
            Duration::from_secs(30),
            cluster,
            || {
                last = slot_map(cluster.node(via).client_addr);
                last.as_ref().is_some_and(|((master, _), rest)| {
                    *master == leader_addr
                        && rest.iter().map(|(addr, _)| *addr).collect::<BTreeSet<_>>() == replicas
                })
            },
        );
    }
}

#[test]
fn cluster_clients_follow_the_slot_map_to_the_leader() {
    let done = support::watchdog("cluster_clients", Duration::from_secs(240));
    let cluster = start_cluster();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let follower = cluster.follower_of(leader);
    wait_for_map_led_by(&cluster, leader);

    // Ids: the same node has the same id on every node, and MYID is its own.
    let ((_, leader_name), replicas) = slot_map(cluster.node(follower).client_addr).unwrap();
    let names: BTreeSet<String> = replicas
        .iter()
        .map(|(_, name)| name.clone())
        .chain([leader_name.clone()])
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for node in &cluster.nodes {
        let myid = bulk_text(&parse(&call(node.client_addr, &["CLUSTER", "MYID"])));
        assert_eq!(myid.len(), 40);
        assert!(names.contains(&myid), "{myid} not in {names:?}");
        let ((_, master_name), _) = slot_map(node.client_addr).unwrap();
        assert_eq!(master_name, leader_name);
    }

    // SHARDS: one shard, the leader first as master at its RESP address.
    let shards = parse(&call(
        cluster.node(follower).client_addr,
        &["CLUSTER", "SHARDS"],
    ));
    let Reply::Array(Some(shards)) = shards else {
        panic!("{shards:?}")
    };
    assert_eq!(shards.len(), 1);
    let Reply::Array(Some(shard)) = &shards[0] else {
        panic!()
    };
    assert_eq!(bulk_text(&shard[0]), "slots");
    assert_eq!(bulk_text(&shard[2]), "nodes");
    let Reply::Array(Some(shard_nodes)) = &shard[3] else {
        panic!()
    };
    assert_eq!(shard_nodes.len(), 3);
    let field = |node: &Reply, name: &str| -> Reply {
        let Reply::Array(Some(pairs)) = node else {
            panic!()
        };
        let at = pairs
            .chunks(2)
            .position(|pair| bulk_text(&pair[0]) == name)
            .unwrap_or_else(|| panic!("no {name} in {pairs:?}"));
        pairs[2 * at + 1].clone()
    };
    let leader_port = i64::from(cluster.node(leader).client_addr.port());
    assert_eq!(bulk_text(&field(&shard_nodes[0], "role")), "master");
    assert_eq!(bulk_text(&field(&shard_nodes[0], "id")), leader_name);
    assert_eq!(field(&shard_nodes[0], "port"), Reply::Integer(leader_port));
    assert_eq!(bulk_text(&field(&shard_nodes[0], "ip")), "127.0.0.1");
    for node in &shard_nodes[1..] {
        assert_eq!(bulk_text(&field(node, "role")), "replica");
        assert_eq!(bulk_text(&field(node, "health")), "online");
    }

    // NODES: three master lines, the asking node's marked myself, only the leader's with
    // the slots.
    let nodes_text = bulk_text(&parse(&call(
        cluster.node(follower).client_addr,
        &["CLUSTER", "NODES"],
    )));
    let lines: Vec<&str> = nodes_text.lines().collect();
    assert_eq!(lines.len(), 3, "{nodes_text}");
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(fields[2].split(',').any(|flag| flag == "master"), "{line}");
        let is_leader = fields[0] == leader_name;
        assert_eq!(fields.last() == Some(&"0-16383"), is_leader, "{line}");
        if is_leader {
            assert!(
                fields[1].starts_with(&format!("{}@", cluster.node(leader).client_addr)),
                "{line}"
            );
        }
        let is_me = fields[1].starts_with(&format!("{}@", cluster.node(follower).client_addr));
        assert_eq!(fields[2].contains("myself"), is_me, "{line}");
    }
    let info = bulk_text(&parse(&call(
        cluster.node(follower).client_addr,
        &["CLUSTER", "INFO"],
    )));
    for line in [
        "cluster_state:ok",
        "cluster_slots_assigned:16384",
        "cluster_known_nodes:3",
        "cluster_size:1",
    ] {
        assert!(info.contains(&format!("{line}\r\n")), "{info}");
    }

    redis_cli_through_a_follower(&cluster, follower);
    redis_benchmark_at_the_slot_master(&cluster, follower);
    redis_py_cluster_workload(&cluster);
    done.store(true, Ordering::Release);
}

fn redis_cli(port: u16, words: &[&str]) -> Option<String> {
    let mut args = vec![
        "-c".to_string(),
        "-h".to_string(),
        "127.0.0.1".to_string(),
        "-p".to_string(),
        port.to_string(),
    ];
    args.extend(words.iter().map(|w| w.to_string()));
    match run_tool("redis-cli", &args, Duration::from_secs(30)) {
        Ok(run) => {
            assert!(run.status.success(), "redis-cli {args:?}: {}", run.stderr);
            Some(run.stdout.trim_end().to_string())
        }
        Err(e) => {
            skip("redis-cli -c", &format!("redis-cli does not run: {e}"));
            None
        }
    }
}

fn redis_cli_through_a_follower(cluster: &TestCluster, follower: u64) {
    let port = cluster.node(follower).client_addr.port();
    for (key, value) in [("k", "v"), ("{user1000}.following", "a"), ("foo", "bar")] {
        let Some(reply) = redis_cli(port, &["SET", key, value]) else {
            return;
        };
        assert_eq!(reply, "OK", "SET {key}");
        assert_eq!(redis_cli(port, &["GET", key]).unwrap(), value, "GET {key}");
    }
    assert_eq!(
        redis_cli(port, &["CLUSTER", "KEYSLOT", "foo"]).unwrap(),
        "12182"
    );
}

/// `redis-benchmark ARGS -h 127.0.0.1 -p PORT -t set,get -n 2000 -c 10 -q`, or `None` (with
/// a notice) without redis-benchmark.
fn redis_benchmark(flags: &[&str], addr: SocketAddr) -> Option<support::ToolRun> {
    let port = addr.port().to_string();
    let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    args.extend(
        [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "set,get",
            "-n",
            "2000",
            "-c",
            "10",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    match run_tool("redis-benchmark", &args, Duration::from_secs(120)) {
        Ok(run) => Some(run),
        Err(e) => {
            skip(
                "redis-benchmark",
                &format!("redis-benchmark does not run: {e}"),
            );
            None
        }
    }
}

/// `redis-benchmark --cluster` needs at least two masters with slots: it refuses a
/// one-shard cluster, a real Redis one as well ("Invalid cluster: 1 node(s)"). So it is
/// checked against a real one in `replies_match_redis_server_in_cluster_mode`; here it runs
/// as a user runs it on a one-shard cluster, against the master `CLUSTER SLOTS` names.
fn redis_benchmark_at_the_slot_master(cluster: &TestCluster, via: u64) {
    let ((master, _), _) = slot_map(cluster.node(via).client_addr).expect("a slot map");
    let Some(run) = redis_benchmark(&[], master) else {
        return;
    };
    let context = format!(
        "redis-benchmark at {master}:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(run.status.success(), "{context}");
    assert!(
        !run.stdout.contains("ERR") && !run.stderr.contains("rror"),
        "{context}"
    );
    // `-q` prints `SET: 1234.56 requests per second, p50=...`, after progress lines ended
    // by carriage returns.
    for test in ["SET", "GET"] {
        let rate: f64 = run
            .stdout
            .split(['\r', '\n'])
            .filter_map(|line| line.trim().strip_prefix(&format!("{test}: ")))
            .filter_map(|rest| rest.split(' ').next()?.parse().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no {test} rate: {context}"));
        assert!(rate > 0.0, "{test}: {rate}: {context}");
        eprintln!("redis-benchmark at the slot master {master}: {test} {rate} requests/s");
    }
}

fn redis_py_cluster_workload(cluster: &TestCluster) {
    let Some(python) = python() else {
        return;
    };
    let mut args = vec![
        "-B".to_string(),
        cluster_script().display().to_string(),
        "workload".to_string(),
    ];
    // Started from one follower only: the map must lead it to the leader.
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    args.push(
        cluster
            .node(cluster.follower_of(leader))
            .client_addr
            .to_string(),
    );
    let run = run_tool(&python, &args, Duration::from_secs(120)).expect("run KETCH_PYTHON");
    let context = format!("redis-py workload:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.status.success(), "{context}\n{}", cluster.logs());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{context}");
    assert!(
        lines[0].starts_with("ok resp3 set/get/mget in "),
        "{context}"
    );
    assert!(
        lines[1].starts_with("ok resp2 set/get/mget in "),
        "{context}"
    );
    assert_eq!(
        lines[2], "ok scan_iter returned the 600 keys once each",
        "{context}"
    );
    assert_eq!(lines[3], "ok keyslot agrees for 1000 keys", "{context}");
    assert_eq!(
        lines[4],
        format!("ok one primary {}", cluster.node(leader).client_addr),
        "{context}"
    );
}

#[test]
fn the_slot_map_follows_a_new_leader_after_kill9() {
    let done = support::watchdog("slot_map_failover", Duration::from_secs(300));
    let mut cluster = start_cluster();
    let old_leader = cluster.wait_for_leader(Duration::from_secs(30));
    wait_for_map_led_by(&cluster, old_leader);
    let dir = tempfile::tempdir().unwrap();
    let writer = python().map(|python| Writer::start(&python, &cluster, dir.path()));
    if let Some(writer) = &writer {
        wait_until(
            "the writer's first 50 SETs",
            Duration::from_secs(60),
            &cluster,
            || writer.acked() >= 50,
        );
    }

    cluster.kill9(old_leader);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(60));
    assert_ne!(new_leader, old_leader);
    wait_for_map_led_by(&cluster, new_leader);
    let old_addr = cluster.node(old_leader).client_addr;
    let nodes_text = bulk_text(&parse(&call(
        cluster.node(new_leader).client_addr,
        &["CLUSTER", "NODES"],
    )));
    let old_line = nodes_text
        .lines()
        .find(|line| line.contains(&format!(" {old_addr}@")))
        .unwrap_or_else(|| panic!("the old leader is not listed: {nodes_text}"));
    assert!(
        old_line.contains(" master,fail? ") && old_line.ends_with(" disconnected"),
        "{old_line}"
    );

    if let Some(writer) = writer {
        let before = writer.acked();
        wait_until(
            "50 more SETs through the new leader",
            Duration::from_secs(90),
            &cluster,
            || writer.acked() >= before + 50,
        );
        let summary = writer.stop(&cluster);
        eprintln!("redis-py writer across the failover: {summary}");
        let acked: usize = summary
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("writer said {summary:?}"));
        assert!(acked >= before + 50, "{summary}");
        assert!(summary.ends_with(" lost 0"), "{summary}");
    }

    // One node left: no leader, so no master to name.
    let last = cluster.follower_of(new_leader);
    let last = if last == old_leader {
        cluster
            .nodes
            .iter()
            .map(|n| n.id)
            .find(|&id| id != old_leader && id != new_leader)
            .unwrap()
    } else {
        last
    };
    cluster.kill9(new_leader);
    let last_addr = cluster.node(last).client_addr;
    wait_until(
        "the last node says cluster_state:fail",
        Duration::from_secs(60),
        &cluster,
        || {
            bulk_text(&parse(&call(last_addr, &["CLUSTER", "INFO"])))
                .starts_with("cluster_state:fail\r\n")
        },
    );
    assert_eq!(call(last_addr, &["CLUSTER", "SLOTS"]), b"*0\r\n");
    assert_eq!(call(last_addr, &["CLUSTER", "SHARDS"]), b"*0\r\n");
    let nodes_text = bulk_text(&parse(&call(last_addr, &["CLUSTER", "NODES"])));
    assert!(!nodes_text.contains("0-16383"), "{nodes_text}");
    done.store(true, Ordering::Release);
}

/// Three real `redis-server --cluster-enabled yes`: the first owns every slot, the other
/// two replicate it. Killed on drop.
struct RedisClusterReference {
    addrs: Vec<SocketAddr>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl RedisClusterReference {
    /// `None` (with a notice) without redis-server.
    fn start() -> Option<RedisClusterReference> {
        if !RedisServer::available() {
            skip(
                "the comparison with redis-server",
                "redis-server is not installed",
            );
            return None;
        }
        // Built first, so that a failure below still kills what was started.
        let mut reference = RedisClusterReference {
            addrs: Vec::new(),
            children: Vec::new(),
            _dir: tempfile::tempdir().unwrap(),
        };
        let dir = reference._dir.path().to_path_buf();
        // Client ports, then cluster bus ports (`cluster-port`, Redis 7).
        let base = free_consecutive_ports(6);
        for i in 0..3u16 {
            let port = base + i;
            let log = std::fs::File::create(dir.join(format!("redis-{port}.log"))).unwrap();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-port", &(base + 3 + i).to_string()])
                .arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{port}.conf")))
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn redis-server");
            support::register_pid(child.id());
            reference.children.push(child);
            reference
                .addrs
                .push(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let wait = |what: &str, check: &mut dyn FnMut() -> bool| {
            while !check() {
                assert!(Instant::now() < deadline, "redis-server cluster: {what}");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        for &addr in &reference.addrs {
            wait("PING", &mut || support::ping(addr));
        }
        let master = reference.addrs[0];
        assert_eq!(
            call(master, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
            b"+OK\r\n"
        );
        for i in 1..3u16 {
            let (port, bus) = ((base + i).to_string(), (base + 3 + i).to_string());
            assert_eq!(
                call(master, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus]),
                b"+OK\r\n"
            );
        }
        let master_id = bulk_text(&parse(&call(master, &["CLUSTER", "MYID"])));
        for &replica in &reference.addrs[1..] {
            wait("the replicas learn the master", &mut || {
                call(replica, &["CLUSTER", "REPLICATE", &master_id]) == b"+OK\r\n"
            });
        }
        wait("two replicas in sync and cluster_state:ok", &mut || {
            bulk_text(&parse(&call(master, &["CLUSTER", "INFO"])))
                .starts_with("cluster_state:ok\r\n")
                && matches!(slot_map(master), Some((_, replicas)) if replicas.len() == 2)
        });
        Some(reference)
    }
}

impl Drop for RedisClusterReference {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            support::forget_pid(child.id());
        }
    }
}

/// A RESP2 or RESP3 reply's shape: its types and sizes, with integers written `:n` and
/// 40-hex-digit ids `<id>` (they differ between servers), other strings kept.
fn shape(bytes: &[u8]) -> String {
    fn line<'a>(bytes: &'a [u8], at: &mut usize) -> &'a str {
        let end = *at
            + bytes[*at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("a CRLF");
        let text = std::str::from_utf8(&bytes[*at..end]).expect("UTF-8");
        *at = end + 2;
        text
    }
    fn one(bytes: &[u8], at: &mut usize, out: &mut String) {
        let header = line(bytes, at);
        let (kind, rest) = header.split_at(1);
        match kind {
            ":" => out.push_str(":n"),
            "$" | "=" => {
                let len: usize = rest.parse().expect("a length");
                let text = String::from_utf8_lossy(&bytes[*at..*at + len]).into_owned();
                *at += len + 2;
                let is_id = text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit());
                out.push_str(kind);
                out.push_str(if is_id { "<id>" } else { &text });
            }
            "*" | "~" | "%" => {
                let count: usize = rest.parse().expect("a count");
                let items = if kind == "%" { 2 * count } else { count };
                out.push_str(&format!("{kind}{count}["));
                for i in 0..items {
                    if i > 0 {
                        out.push(',');
                    }
                    one(bytes, at, out);
                }
                out.push(']');
            }
            _ => out.push_str(header),
        }
    }
    let (mut at, mut out) = (0, String::new());
    one(bytes, &mut at, &mut out);
    assert_eq!(at, bytes.len(), "one reply");
    out
}

/// The replies of `commands` on one connection (`HELLO 3` first for RESP3).
fn replies(addr: SocketAddr, resp3: bool, commands: &[&[&str]]) -> Vec<Vec<u8>> {
    let mut connection = open(addr);
    if resp3 {
        connection.send_command(&[b"HELLO", b"3"]);
        connection.read_resp3_reply_bytes();
    }
    commands
        .iter()
        .map(|words| {
            let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
            connection.send_command(&words);
            connection.read_resp3_reply_bytes()
        })
        .collect()
}

/// A small deterministic generator (xorshift64*), so a failure repeats.
struct Keys(u64);

impl Keys {
    fn next_key(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcxyz019{}:._-";
        let mut next = || {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let len = (next() % 13) as usize;
        (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

#[test]
fn replies_match_redis_server_in_cluster_mode() {
    let done = support::watchdog("cluster_vs_redis_server", Duration::from_secs(240));
    let Some(reference) = RedisClusterReference::start() else {
        return;
    };
    let cluster = start_cluster();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    wait_for_map_led_by(&cluster, leader);
    let ketch = cluster.node(cluster.follower_of(leader)).client_addr;
    let redis = reference.addrs[0];

    // CLUSTER KEYSLOT, byte for byte, for the rule's corner cases and 1,000 random keys.
    let mut keys: Vec<String> = [
        "",
        "foo",
        "{user1000}.following",
        "{user1000}.followers",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{bar",
        "bar}",
        "{}",
        "{}{x}",
        "a{b}c{d}",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    let mut generator = Keys(0x9e37_79b9_7f4a_7c15);
    keys.extend((0..1000).map(|_| generator.next_key()));
    let commands: Vec<Vec<&str>> = keys
        .iter()
        .map(|key| vec!["CLUSTER", "KEYSLOT", key.as_str()])
        .collect();
    let commands: Vec<&[&str]> = commands.iter().map(|c| &c[..]).collect();
    let ours = replies(ketch, false, &commands);
    let theirs = replies(redis, false, &commands);
    for ((key, ours), theirs) in keys.iter().zip(&ours).zip(&theirs) {
        assert_eq!(
            String::from_utf8_lossy(ours),
            String::from_utf8_lossy(theirs),
            "CLUSTER KEYSLOT {key:?}"
        );
    }

    // Shapes of the slot map and the shards (a master and two replicas on both sides), and
    // the replies that are the same byte for byte.
    let same_shape: &[&[&str]] = &[
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
        &["CLUSTER", "MYID"],
    ];
    let same_bytes: &[&[&str]] = &[
        &["READONLY"],
        &["READWRITE"],
        &["READONLY", "x"],
        &["CLUSTER"],
        &["CLUSTER", "nosuch"],
        &["CLUSTER", "KEYSLOT"],
        &["CLUSTER", "KEYSLOT", "a", "b"],
        &["CLUSTER", "MYID", "x"],
        &["CLUSTER", "INFO", "x"],
        &["CLUSTER", "SLOTS", "x"],
        &["COMMAND", "INFO", "readonly", "readwrite"],
        &["COMMAND", "DOCS", "readonly"],
    ];
    for resp3 in [false, true] {
        let (ours, theirs) = (
            replies(ketch, resp3, same_shape),
            replies(redis, resp3, same_shape),
        );
        for ((command, ours), theirs) in same_shape.iter().zip(&ours).zip(&theirs) {
            assert_eq!(shape(ours), shape(theirs), "{command:?} (RESP3: {resp3})");
        }
        let (ours, theirs) = (
            replies(ketch, resp3, same_bytes),
            replies(redis, resp3, same_bytes),
        );
        for ((command, ours), theirs) in same_bytes.iter().zip(&ours).zip(&theirs) {
            assert_eq!(
                String::from_utf8_lossy(ours),
                String::from_utf8_lossy(theirs),
                "{command:?} (RESP3: {resp3})"
            );
        }
        // INFO and NODES: the same type (a verbatim string in RESP3).
        for command in [&["CLUSTER", "INFO"][..], &["CLUSTER", "NODES"]] {
            let ours = replies(ketch, resp3, &[command]).remove(0);
            let theirs = replies(redis, resp3, &[command]).remove(0);
            assert_eq!(ours[0], theirs[0], "{command:?} (RESP3: {resp3})");
        }
    }

    // CLUSTER INFO: our fields are Redis' (those of a node that has exchanged no message
    // types yet), in its order.
    let field_names = |addr| -> Vec<String> {
        bulk_text(&parse(&call(addr, &["CLUSTER", "INFO"])))
            .lines()
            .filter_map(|line| Some(line.split_once(':')?.0.to_string()))
            .collect()
    };
    let (ours, theirs) = (field_names(ketch), field_names(redis));
    let mut theirs_in_order = theirs.iter();
    for name in &ours {
        assert!(
            theirs_in_order.any(|theirs| theirs == name),
            "CLUSTER INFO field {name} is not Redis' or not in its order: {theirs:?}"
        );
    }
    let extra: Vec<&String> = theirs.iter().filter(|name| !ours.contains(name)).collect();
    assert!(
        extra
            .iter()
            .all(|name| name.starts_with("cluster_stats_messages_")
                && (name.ends_with("_sent") || name.ends_with("_received"))),
        "Redis fields Ketch leaves out: {extra:?}"
    );

    // CLUSTER NODES: the master's line has the same fields, flags and slot range.
    let master_line = |addr: SocketAddr, via: SocketAddr| -> Vec<String> {
        let text = bulk_text(&parse(&call(via, &["CLUSTER", "NODES"])));
        let line = text
            .lines()
            .find(|line| line.contains(" 0-16383"))
            .unwrap_or_else(|| panic!("no master line: {text}"))
            .to_string();
        assert!(line.contains(&format!(" {addr}@")), "{line}");
        line.split(' ').map(str::to_string).collect()
    };
    let ours = master_line(
        cluster.node(leader).client_addr,
        cluster.node(leader).client_addr,
    );
    let theirs = master_line(redis, redis);
    assert_eq!(ours.len(), theirs.len(), "{ours:?} / {theirs:?}");
    for at in [2, 3, 7, 8] {
        assert_eq!(ours[at], theirs[at], "field {at}: {ours:?} / {theirs:?}");
    }

    // redis-benchmark --cluster reads both nodes' CLUSTER NODES alike: one master with
    // slots, which it refuses (it needs two or more).
    let last_line = |addr| -> Option<(bool, String)> {
        let run = redis_benchmark(&["--cluster"], addr)?;
        let text = format!("{}{}", run.stdout, run.stderr);
        Some((
            run.status.success(),
            text.trim_end().lines().last()?.to_string(),
        ))
    };
    if let Some(theirs) = last_line(redis) {
        assert_eq!(theirs, (false, "Invalid cluster: 1 node(s).".to_string()));
        assert_eq!(last_line(ketch), Some(theirs));
    }

    // CLUSTER HELP: Redis' lines for what is served, in its order.
    let help = |addr| -> Vec<Vec<u8>> {
        let Reply::Array(Some(lines)) = parse(&call(addr, &["CLUSTER", "HELP"])) else {
            panic!()
        };
        lines
            .into_iter()
            .map(|line| match line {
                Reply::Simple(text) => text.into_bytes(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let theirs = help(redis);
    let mut theirs_in_order = theirs.iter();
    for line in help(ketch) {
        assert!(
            theirs_in_order.any(|theirs| *theirs == line),
            "CLUSTER HELP line {:?} is not Redis' or not in its order",
            String::from_utf8_lossy(&line)
        );
    }
    done.store(true, Ordering::Release);
}

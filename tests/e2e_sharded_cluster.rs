//! Redis Cluster clients against a 3-node cluster of real `ketch serve --shards 16`
//! processes started with `--cluster-client-addrs`: 16 Raft groups per process, each serving
//! one of 16 equal slot ranges, each range's master its group's leader (see
//! `ketch::kv::sharded`).
//!
//! - Every node's `CLUSTER SLOTS` has 16 ranges covering the 16,384 slots once, each with a
//!   master; `CLUSTER INFO` says `cluster_state:ok` with every slot assigned; `CLUSTER NODES`
//!   has three `master` lines (no `slave`) whose ranges cover the slots once. Leaderships are
//!   handed to their preferred hosts at bootstrap, so every host leads at least 3 ranges.
//! - `MSET` of keys in two slots answers `-CROSSSLOT`, of keys with one hash tag `OK`;
//!   200 keys of many slots set through one node read back through each other node (a node
//!   forwards what it does not lead); `redis-cli -c` sets and gets through each node;
//!   `redis-benchmark --cluster` (SET and GET, 20,000 requests, 20 clients) runs to the end
//!   with no error; redis-py's `RedisCluster` runs `redis_py_cluster.py workload` and routes
//!   slots to all three hosts, its three primaries; its `scan_iter` over them returns every
//!   key once.
//! - With `--cluster-mode redirect`, the Rust client (slot-aware) sets and reads back 500
//!   keys of many slots with no `-MOVED` reaching the caller, and mostly without a retry;
//!   `ketch admin shards` lists the 16 ranges, each with its group, range epoch and leader.
//! - kill -9 of a node leading ranges while a `RedisCluster` writer writes keys of many
//!   slots, and its restart 5 s later: every range has a leader again on every node, and the
//!   writer reads back every SET it had acknowledged.
//!
//! The tests take turns (each runs a cluster of 48 groups; two at once would overload a small
//! machine and slow elections). redis-cli, redis-benchmark and redis-py (`KETCH_PYTHON`) parts
//! are skipped with a notice when the tool is missing, unless `KETCH_REQUIRE_REDIS_TOOLS` is
//! set. Reproduce with `KETCH_PYTHON=target/compat-venv/bin/python cargo test --release --test
//! e2e_sharded_cluster -- --nocapture`.

#[path = "e2e/redis_py_writer.rs"]
mod redis_py_writer;
#[path = "e2e/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ketch::client::Client;
use ketch::kv::cluster::key_slot;
use ketch::kv::resp::{Limits, Reply, ReplyParser};
use redis_py_writer::{cluster_script, python, skip, Writer};
use support::{run_tool, RawConnection, TestCluster};

const SHARDS: u16 = 16;
const SLOTS: u32 = 16_384;

/// Held by each test while it runs (module docs).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A 3-node cluster of 16 shards whose nodes know each other's client addresses, with a
/// node leading at least one range.
fn start_cluster() -> TestCluster {
    start_cluster_with(&[])
}

/// [`start_cluster`] with `extra` arguments for every `ketch serve`.
fn start_cluster_with(extra: &[&str]) -> TestCluster {
    let mut cluster = TestCluster::new_stopped(3, None);
    let args = cluster.sharded_args(SHARDS);
    for id in 1..=3 {
        cluster.extra_args.insert(
            id,
            args.iter()
                .cloned()
                .chain(extra.iter().map(|a| a.to_string()))
                .collect(),
        );
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

fn call_on(connection: &mut RawConnection, words: &[&str]) -> Vec<u8> {
    let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    connection.call(&words)
}

fn call(addr: SocketAddr, words: &[&str]) -> Vec<u8> {
    call_on(&mut open(addr), words)
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

fn integer(reply: &Reply) -> i64 {
    match reply {
        Reply::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// One `CLUSTER SLOTS` entry: its first and last slot and its master's address.
type SlotRange = (u16, u16, SocketAddr);

/// The ranges of `addr`'s `CLUSTER SLOTS`, sorted, with their masters.
fn slot_ranges(addr: SocketAddr) -> Vec<SlotRange> {
    let reply = parse(&call(addr, &["CLUSTER", "SLOTS"]));
    let Reply::Array(Some(entries)) = reply else {
        panic!("CLUSTER SLOTS is not an array: {reply:?}")
    };
    let mut ranges: Vec<SlotRange> = entries
        .iter()
        .map(|entry| {
            let Reply::Array(Some(fields)) = entry else {
                panic!("{entry:?}")
            };
            assert!(fields.len() >= 3, "{fields:?}");
            let Reply::Array(Some(master)) = &fields[2] else {
                panic!("{fields:?}")
            };
            let master = format!("{}:{}", bulk_text(&master[0]), integer(&master[1]))
                .parse()
                .expect("a master address");
            let first = u16::try_from(integer(&fields[0])).expect("a slot");
            let last = u16::try_from(integer(&fields[1])).expect("a slot");
            (first, last, master)
        })
        .collect();
    ranges.sort();
    ranges
}

/// True if `ranges` are the 16 equal ranges, in order, covering every slot once.
fn is_full_map(ranges: &[SlotRange]) -> bool {
    ranges.len() == usize::from(SHARDS)
        && ranges.iter().enumerate().all(|(i, &(first, last, _))| {
            let i = i as u32;
            u32::from(first) == i * SLOTS / u32::from(SHARDS)
                && u32::from(last) == (i + 1) * SLOTS / u32::from(SHARDS) - 1
        })
}

/// How many ranges each master leads.
fn leader_counts(ranges: &[SlotRange]) -> BTreeMap<SocketAddr, usize> {
    let mut counts = BTreeMap::new();
    for &(_, _, master) in ranges {
        *counts.entry(master).or_insert(0) += 1;
    }
    counts
}

/// Waits until `check` holds, polling every 100 ms; fails with `what` past `limit`.
fn wait_until(what: &str, limit: Duration, cluster: &TestCluster, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every running node's `CLUSTER SLOTS` has a master for each of the 16 ranges.
fn wait_for_full_maps(cluster: &TestCluster, limit: Duration) {
    for node in cluster.nodes.iter().filter(|n| cluster.is_running(n.id)) {
        let mut last = Vec::new();
        wait_until(
            &format!(
                "node {}'s CLUSTER SLOTS has 16 ranges with masters",
                node.id
            ),
            limit,
            cluster,
            || {
                last = slot_ranges(node.client_addr);
                is_full_map(&last)
            },
        );
    }
}

/// Waits until node 1's map shows every host leading at least 3 ranges (placement at
/// bootstrap hands range `i` to host `i mod 3 + 1`, so 6, 5 and 5), and at least two hosts
/// within 10 s; returns the counts.
fn wait_for_spread_leaders(cluster: &TestCluster) -> BTreeMap<SocketAddr, usize> {
    let via = cluster.node(1).client_addr;
    let started = Instant::now();
    let mut counts = BTreeMap::new();
    wait_until(
        "two hosts lead ranges",
        Duration::from_secs(10),
        cluster,
        || {
            counts = leader_counts(&slot_ranges(via));
            counts.len() >= 2
        },
    );
    let deadline = started + Duration::from_secs(20);
    loop {
        let ranges = slot_ranges(via);
        counts = leader_counts(&ranges);
        let spread = is_full_map(&ranges)
            && cluster
                .nodes
                .iter()
                .all(|n| counts.get(&n.client_addr).is_some_and(|&c| c >= 3));
        if spread {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every host leads 3 ranges within 20 s: {counts:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "ranges led by each host after {:?}: {counts:?}",
        started.elapsed()
    );
    counts
}

/// The slots a `CLUSTER NODES` slot field names: `a-b` or a single `a`.
fn nodes_field_slots(field: &str) -> (u16, u16) {
    let parse = |s: &str| s.parse::<u16>().unwrap_or_else(|_| panic!("slot {field}"));
    match field.split_once('-') {
        Some((a, b)) => (parse(a), parse(b)),
        None => (parse(field), parse(field)),
    }
}

/// Checks `text`, the `CLUSTER NODES` of the node at `me`, whose `CLUSTER SLOTS` gave
/// `counts`: its form (panics), and whether each line's slots are the ranges `counts` gives
/// its host (returns that).
fn check_nodes_text(
    cluster: &TestCluster,
    me: SocketAddr,
    counts: &BTreeMap<SocketAddr, usize>,
    text: &str,
) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{me}:\n{text}");
    let mut covered = vec![0u8; SLOTS as usize];
    let mut agrees = true;
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(fields.len() >= 8, "{line}");
        let flags: Vec<&str> = fields[2].split(',').collect();
        assert!(flags.contains(&"master"), "{line}");
        assert!(!flags.contains(&"slave"), "{line}");
        assert_eq!(fields[7], "connected", "{line}");
        let is_me = fields[1].starts_with(&format!("{me}@"));
        assert_eq!(flags.contains(&"myself"), is_me, "{line}");
        let host = cluster
            .nodes
            .iter()
            .find(|n| fields[1].starts_with(&format!("{}@", n.client_addr)))
            .unwrap_or_else(|| panic!("an unknown address: {line}"));
        let mut slots = 0;
        for field in &fields[8..] {
            let (first, last) = nodes_field_slots(field);
            for slot in first..=last {
                covered[usize::from(slot)] += 1;
            }
            slots += usize::from(last - first) + 1;
        }
        let ranges = counts.get(&host.client_addr).copied().unwrap_or(0);
        agrees &= slots == ranges * (SLOTS / u32::from(SHARDS)) as usize;
    }
    agrees && covered.iter().all(|&c| c == 1)
}

#[test]
fn sixteen_shards_answer_as_a_redis_cluster() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let done = support::watchdog("sixteen_shards", Duration::from_secs(240));
    let started = Instant::now();
    let cluster = start_cluster();
    wait_for_full_maps(&cluster, Duration::from_secs(30));
    wait_for_spread_leaders(&cluster);

    // Every node names the same masters (each reads its own replicas' view of the leaders,
    // refreshed every 25 ms, so they agree once no leadership moves).
    let reference = slot_ranges(cluster.node(1).client_addr);
    for node in &cluster.nodes[1..] {
        let mut last = Vec::new();
        wait_until(
            &format!("node {}'s CLUSTER SLOTS agrees with node 1's", node.id),
            Duration::from_secs(10),
            &cluster,
            || {
                last = slot_ranges(node.client_addr);
                last == reference
            },
        );
    }

    for node in &cluster.nodes {
        let info = bulk_text(&parse(&call(node.client_addr, &["CLUSTER", "INFO"])));
        for line in [
            "cluster_state:ok",
            "cluster_slots_assigned:16384",
            "cluster_slots_ok:16384",
            "cluster_known_nodes:3",
            "cluster_size:3",
        ] {
            assert!(
                info.contains(&format!("{line}\r\n")),
                "node {}: {line}:\n{info}",
                node.id
            );
        }
    }

    // NODES: one master line per host (no replica lines: every host masters some ranges and
    // replicates the others), the ranges it leads at its end, together every slot once.
    for node in &cluster.nodes {
        // Read again if a leadership moved between the two reads.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let counts = leader_counts(&slot_ranges(node.client_addr));
            let text = bulk_text(&parse(&call(node.client_addr, &["CLUSTER", "NODES"])));
            if check_nodes_text(&cluster, node.client_addr, &counts, &text) {
                eprintln!("node {}'s CLUSTER NODES:\n{text}", node.id);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {}'s CLUSTER NODES does not cover the slots once as its CLUSTER SLOTS \
                 ({counts:?}) within 10 s:\n{text}",
                node.id
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    cross_slot_and_hash_tags(&cluster);
    any_key_through_any_node(&cluster);
    redis_cli_through_each_node(&cluster);
    redis_benchmark_cluster(&cluster);
    redis_py_cluster_workload(&cluster);
    eprintln!(
        "sixteen_shards_answer_as_a_redis_cluster: {:?}",
        started.elapsed()
    );
    done.store(true, Ordering::Release);
}

#[test]
fn the_slot_aware_client_needs_no_forwarding_in_redirect_mode() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let done = support::watchdog("slot_aware_client", Duration::from_secs(180));
    let cluster = start_cluster_with(&["--cluster-mode", "redirect"]);
    wait_for_full_maps(&cluster, Duration::from_secs(30));
    wait_for_spread_leaders(&cluster);
    let mut client = Client::connect_with(&cluster.client_addrs(), support::test_client_options())
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", cluster.logs()));
    let mut ranges = std::collections::BTreeSet::new();
    for i in 0..500 {
        let key = format!("slot-aware:{i}");
        // The 16 ranges are equal: 1,024 slots each.
        ranges.insert(u32::from(key_slot(key.as_bytes())) / (SLOTS / u32::from(SHARDS)));
        client
            .set(&key, i.to_string())
            .unwrap_or_else(|e| panic!("SET {key}: {e}\n{}", cluster.logs()));
        let value = client
            .get(&key)
            .unwrap_or_else(|e| panic!("GET {key}: {e}\n{}", cluster.logs()));
        assert_eq!(value, Some(i.to_string().into_bytes()), "{key}");
    }
    let stats = client.stats();
    eprintln!("slot-aware client over 16 shards: {stats:?}");
    assert_eq!(ranges.len(), usize::from(SHARDS));
    // One connection per host reaches every range's master directly; a refusal during a
    // leadership change may replace one.
    assert!((3..=6).contains(&stats.connections_opened), "{stats:?}");
    // A leadership moving during the run costs a redirect or two, not one per command.
    assert!(stats.retries < 20, "{stats:?}");

    // `ketch admin shards` prints the same 16 ranges, each with a leader.
    let args = vec![
        "admin".to_string(),
        "--addrs".to_string(),
        cluster.node(2).client_addr.to_string(),
        "shards".to_string(),
    ];
    let run = run_tool(env!("CARGO_BIN_EXE_ketch"), &args, Duration::from_secs(30))
        .expect("run ketch admin shards");
    let context = format!("ketch admin shards:\n{}{}", run.stdout, run.stderr);
    assert!(run.status.success(), "{context}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("cluster_state:ok  cluster_current_epoch:"),
        "{context}"
    );
    assert!(lines[0].ends_with("  routing_epoch:1"), "{context}");
    assert_eq!(lines.len(), 1 + usize::from(SHARDS), "{context}");
    assert!(
        lines[1].starts_with("RANGE 0-1023  GROUP 1  EPOCH 1  LEADER "),
        "{context}"
    );
    assert!(
        lines[16].starts_with("RANGE 15360-16383  GROUP 16  EPOCH 1  LEADER "),
        "{context}"
    );
    assert!(
        lines[1..].iter().all(|l| !l.contains("LEADER -")),
        "{context}"
    );
    eprintln!("{}", run.stdout);
    done.store(true, Ordering::Release);
}

/// Keys of two slots in one command are refused as Redis Cluster refuses them; keys sharing a
/// hash tag are one slot and go together.
fn cross_slot_and_hash_tags(cluster: &TestCluster) {
    assert_ne!(key_slot(b"a"), key_slot(b"b"));
    let mut connection = open(cluster.node(2).client_addr);
    assert_eq!(
        call_on(&mut connection, &["MSET", "a", "1", "b", "2"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    assert_eq!(
        call_on(&mut connection, &["MSET", "{u}a", "1", "{u}b", "2"]),
        b"+OK\r\n"
    );
    assert_eq!(
        call_on(&mut connection, &["MGET", "{u}a", "{u}b"]),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        call_on(&mut connection, &["DEL", "{u}a", "{u}b"]),
        b":2\r\n"
    );
}

/// 200 keys over every range, set through node 1 (which forwards those of the ranges it does
/// not lead), read back through nodes 2 and 3 (which forward or ReadIndex-confirm theirs).
fn any_key_through_any_node(cluster: &TestCluster) {
    let keys: Vec<String> = (0..200).map(|i| format!("spread:{i}")).collect();
    let ranges: std::collections::BTreeSet<u32> = keys
        .iter()
        .map(|k| u32::from(key_slot(k.as_bytes())) * u32::from(SHARDS) / SLOTS)
        .collect();
    assert_eq!(ranges.len(), usize::from(SHARDS), "keys in every range");
    let mut writer = open(cluster.node(1).client_addr);
    for key in &keys {
        assert_eq!(
            call_on(&mut writer, &["SET", key, &format!("value of {key}")]),
            b"+OK\r\n",
            "SET {key} through node 1"
        );
    }
    for id in [2, 3] {
        let mut reader = open(cluster.node(id).client_addr);
        for key in &keys {
            let value = format!("value of {key}");
            assert_eq!(
                call_on(&mut reader, &["GET", key]),
                format!("${}\r\n{value}\r\n", value.len()).into_bytes(),
                "GET {key} through node {id}"
            );
        }
    }
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

fn redis_cli_through_each_node(cluster: &TestCluster) {
    for node in &cluster.nodes {
        let port = node.client_addr.port();
        let Some(reply) = redis_cli(port, &["SET", "foo", "bar"]) else {
            return;
        };
        assert_eq!(reply, "OK", "SET foo through node {}", node.id);
        assert_eq!(
            redis_cli(port, &["GET", "foo"]).unwrap(),
            "bar",
            "GET foo through node {}",
            node.id
        );
    }
}

/// `redis-benchmark --cluster` reads `CLUSTER NODES`, connects to every master and sends each
/// key to its slot's master: it refuses a one-shard cluster, so this is its first run against
/// Ketch.
fn redis_benchmark_cluster(cluster: &TestCluster) {
    let port = cluster.node(1).client_addr.port().to_string();
    let args: Vec<String> = [
        "--cluster",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "set,get",
        "-n",
        "20000",
        "-c",
        "20",
        "-d",
        "64",
        "-r",
        "10000",
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = match run_tool("redis-benchmark", &args, Duration::from_secs(150)) {
        Ok(run) => run,
        Err(e) => {
            skip(
                "redis-benchmark --cluster",
                &format!("redis-benchmark does not run: {e}"),
            );
            return;
        }
    };
    let context = format!(
        "redis-benchmark {args:?}:\n{}\n{}\n{}",
        run.stdout,
        run.stderr,
        cluster.logs()
    );
    assert!(run.status.success(), "{context}");
    for output in [&run.stdout, &run.stderr] {
        assert!(
            !output.contains("Error") && !output.contains("ERR") && !output.contains("error"),
            "{context}"
        );
    }
    // `-q` prints `SET: 1234.56 requests per second, p50=...`, after progress lines ended
    // by carriage returns.
    for test in ["SET", "GET"] {
        let line = run
            .stdout
            .split(['\r', '\n'])
            .map(str::trim)
            .rfind(|line| line.starts_with(&format!("{test}: ")) && line.contains("per second"))
            .unwrap_or_else(|| panic!("no {test} rate: {context}"));
        let rate: f64 = line[test.len() + 2..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {test} rate in {line:?}"));
        assert!(rate > 0.0, "{line}");
        eprintln!("redis-benchmark --cluster: {line}");
    }
}

fn redis_py_cluster_workload(cluster: &TestCluster) {
    let Some(python) = python() else {
        return;
    };
    // Started from node 2 only: the slot map must lead it to the three masters.
    let args = vec![
        "-B".to_string(),
        cluster_script().display().to_string(),
        "workload".to_string(),
        "--masters".to_string(),
        "3".to_string(),
        cluster.node(2).client_addr.to_string(),
    ];
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
    // Each host masters ranges in redis-py's routing table, and is one of its primaries (the
    // nodes it sends DBSIZE, KEYS and SCAN to), though it also replicates other ranges.
    let mut addrs: Vec<String> = cluster
        .client_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    addrs.sort();
    assert_eq!(
        lines[4],
        format!("ok 3 slot masters, the primaries: {}", addrs.join(" ")),
        "{context}"
    );
    eprintln!("redis-py RedisCluster: {}", lines.join("; "));
}

#[test]
fn kill9_of_a_node_loses_no_acknowledged_write() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let done = support::watchdog("sharded_kill9", Duration::from_secs(240));
    let started = Instant::now();
    let mut cluster = start_cluster();
    wait_for_full_maps(&cluster, Duration::from_secs(30));
    let counts = wait_for_spread_leaders(&cluster);
    // Node 2 leads ranges (every host does, once spread): its groups must fail over.
    let victim = 2;
    assert!(counts[&cluster.node(victim).client_addr] >= 1, "{counts:?}");

    let Some(python) = python() else {
        done.store(true, Ordering::Release);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::start(&python, &cluster, dir.path());
    wait_until(
        "the writer's first 100 SETs",
        Duration::from_secs(60),
        &cluster,
        || writer.acked() >= 100,
    );

    let at_kill = writer.acked();
    cluster.kill9(victim);
    std::thread::sleep(Duration::from_secs(5));
    let while_down = writer.acked() - at_kill;
    // The survivors elected leaders for the victim's ranges meanwhile.
    wait_for_full_maps(&cluster, Duration::from_secs(30));
    let victim_addr = cluster.node(victim).client_addr;
    for node in cluster.nodes.iter().filter(|n| n.id != victim) {
        let ranges = slot_ranges(node.client_addr);
        assert!(
            ranges.iter().all(|&(_, _, master)| master != victim_addr),
            "node {} still names the killed node a master: {ranges:?}",
            node.id
        );
    }

    cluster.spawn(victim);
    wait_until(
        "the restarted node answers PING",
        Duration::from_secs(30),
        &cluster,
        || support::ping(victim_addr),
    );
    wait_for_full_maps(&cluster, Duration::from_secs(30));
    let at_restart = writer.acked();
    let restarted = Instant::now();
    wait_until(
        "100 more SETs after the restart",
        Duration::from_secs(60),
        &cluster,
        || writer.acked() >= at_restart + 100 && restarted.elapsed() >= Duration::from_secs(3),
    );
    let summary = writer.stop(&cluster);
    eprintln!(
        "redis-py writer: {at_kill} acked before the kill, {while_down} in the 5 s down; \
         at the end: {summary}"
    );
    assert!(summary.ends_with(" lost 0"), "{summary}");
    let acked: usize = summary
        .split(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("writer said {summary:?}"));
    assert!(acked >= at_restart + 100, "{summary}");
    // After the writer's reads, still every range led, on every node.
    wait_for_full_maps(&cluster, Duration::from_secs(10));
    eprintln!(
        "kill9_of_a_node_loses_no_acknowledged_write: {:?}",
        started.elapsed()
    );
    done.store(true, Ordering::Release);
}

//! Prometheus metrics of real `ketch serve` processes: three nodes started with
//! `--metrics-addr`, scraped over real HTTP requests on TCP, written to over RESP.
//!
//! Checks: the fixed names are exported; `has_leader` is 1 on every node; SETs move
//! `proposals_committed_total`, the fsync histogram and `kv_commands_total{cmd="set"}`; the
//! fsync histogram's count equals INFO's `fsyncs:` on the same node once writes stop; other
//! paths get 404. A `--shards 4` cluster's nodes export their range groups: `is_leader`
//! counts the ranges each leads, and the counters follow writes on every node. The scrape is also parsed by the Python `prometheus_client` parser (a real
//! Prometheus text-format parser) from `KETCH_PYTHON`; without it that part prints a notice
//! and is skipped, unless `KETCH_REQUIRE_REDIS_TOOLS` is set (CI sets both). Reproduce with
//! `KETCH_PYTHON=target/compat-venv/bin/python cargo test --release --test e2e_metrics --
//! --nocapture`.

#[path = "e2e/support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{free_consecutive_ports, RawConnection, TestCluster};

const FSYNC: &str = "ketch_disk_wal_fsync_duration_seconds";
const COMMITTED: &str = "ketch_server_proposals_committed_total";
const HAS_LEADER: &str = "ketch_server_has_leader";
const LEADER_CHANGES: &str = "ketch_server_leader_changes_seen_total";

/// One HTTP/1.1 request over a fresh connection: (status line, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {answer:?}"));
    let status = head.lines().next().unwrap_or("").to_string();
    (status, body.to_string())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "scrape of {addr}");
    body
}

/// The value of the sample named exactly `series` (name plus labels as printed), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a numeric sample"))
}

fn must(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// INFO's `fsyncs:` field.
fn info_fsyncs(addr: SocketAddr) -> f64 {
    let mut conn = RawConnection::open(addr);
    let reply = String::from_utf8(conn.call(&[b"INFO"])).expect("INFO is text");
    reply
        .lines()
        .find_map(|l| l.strip_prefix("fsyncs:"))
        .unwrap_or_else(|| panic!("no fsyncs: in INFO:\n{reply}"))
        .trim()
        .parse()
        .expect("fsyncs is a number")
}

/// Waits until a scrape, INFO and a second scrape agree on the fsync count (no write in
/// between), then returns it; panics with the last readings after `limit`.
fn agreeing_fsync_count(metrics: SocketAddr, client: SocketAddr, limit: Duration) -> f64 {
    let deadline = Instant::now() + limit;
    loop {
        let before = must(&scrape(metrics), &format!("{FSYNC}_count"));
        let info = info_fsyncs(client);
        let after = must(&scrape(metrics), &format!("{FSYNC}_count"));
        if before == info && info == after {
            return info;
        }
        // The histogram is observed as each sync ends; INFO reads the status the event loop
        // publishes, at most one loop pass later, so within one reading INFO may trail.
        assert!(
            before <= after,
            "the fsync count went down: {before} then {after}"
        );
        assert!(
            Instant::now() < deadline,
            "fsync histogram count and INFO fsyncs disagree: scrape {before}, INFO {info}, \
             scrape {after}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Python parser's view of `text`: one line per sample, `name<TAB>type<TAB>sample
/// name<TAB>labels as JSON<TAB>value`; `Err` says why it could not run.
fn parse_with_prometheus_client(text: &str) -> Result<Vec<Vec<String>>, String> {
    let python = std::env::var("KETCH_PYTHON")
        .map_err(|_| "KETCH_PYTHON is not set (a Python with prometheus_client)".to_string())?;
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in f.samples:\n\
        \x20       print('\\t'.join([f.name, f.type, s.name, json.dumps(s.labels, sort_keys=True), repr(float(s.value))]))\n";
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("KETCH_PYTHON={python} does not run: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .map_err(|e| format!("writing to the parser: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the parser: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'prometheus_client'") {
        return Err(format!(
            "KETCH_PYTHON={python} cannot import prometheus_client"
        ));
    }
    // From here on a failure is the exporter's: the parser ran and refused the text.
    assert!(
        output.status.success(),
        "prometheus_client refused the scrape: {stderr}\n{text}"
    );
    Ok(String::from_utf8(output.stdout)
        .expect("parser output is text")
        .lines()
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect())
}

fn check_with_prometheus_client(text: &str) {
    let required = std::env::var_os("KETCH_REQUIRE_REDIS_TOOLS").is_some();
    let rows = match parse_with_prometheus_client(text) {
        Ok(rows) => rows,
        Err(why) => {
            assert!(!required, "KETCH_REQUIRE_REDIS_TOOLS is set but {why}");
            eprintln!("e2e_metrics: skipping the prometheus_client parse: {why}");
            return;
        }
    };
    let family_type = |family: &str| {
        rows.iter()
            .find(|row| row[0] == family)
            .map(|row| row[1].clone())
            .unwrap_or_else(|| panic!("prometheus_client found no family {family}"))
    };
    // The parser names counter families without `_total`.
    assert_eq!(family_type(FSYNC), "histogram");
    assert_eq!(family_type("ketch_server_proposals_committed"), "counter");
    assert_eq!(family_type(HAS_LEADER), "gauge");
    assert_eq!(family_type("ketch_server_leader_changes_seen"), "counter");
    assert_eq!(family_type("ketch_network_peer_sent_bytes"), "counter");
    let value = |name: &str, labels: &str| -> f64 {
        rows.iter()
            .find(|row| row[2] == name && row[3] == labels)
            .unwrap_or_else(|| panic!("prometheus_client found no sample {name} {labels}"))[4]
            .parse()
            .expect("a float")
    };
    assert_eq!(
        value(&format!("{FSYNC}_count"), "{}"),
        must(text, &format!("{FSYNC}_count"))
    );
    assert_eq!(value(COMMITTED, "{}"), must(text, COMMITTED));
    assert_eq!(
        value("ketch_kv_commands_total", "{\"cmd\": \"set\"}"),
        must(text, "ketch_kv_commands_total{cmd=\"set\"}")
    );
    let buckets = rows
        .iter()
        .filter(|row| row[2] == format!("{FSYNC}_bucket"))
        .count();
    assert_eq!(buckets, 33, "32 bounds and +Inf");
}

#[test]
fn three_nodes_export_prometheus_metrics_that_follow_writes() {
    let done = support::watchdog("e2e_metrics", Duration::from_secs(90));
    let mut cluster = TestCluster::new_stopped(3, None);
    let base = free_consecutive_ports(3);
    let metrics_addr = |id: u64| SocketAddr::from(([127, 0, 0, 1], base + id as u16 - 1));
    for id in 1..=3 {
        cluster.extra_args.insert(
            id,
            vec!["--metrics-addr".into(), metrics_addr(id).to_string()],
        );
        cluster.spawn(id);
    }
    let leader = cluster.wait_ready(Duration::from_secs(30));
    let follower = cluster.follower_of(leader);
    let leader_client = cluster.node(leader).client_addr;

    // Every node knows the leader: a follower may learn it a heartbeat after the leader.
    for id in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = scrape(metrics_addr(id));
            for name in [FSYNC, COMMITTED, HAS_LEADER, LEADER_CHANGES] {
                assert!(
                    text.contains(&format!("# TYPE {name} ")),
                    "node {id} does not export {name}:\n{text}"
                );
            }
            if must(&text, HAS_LEADER) == 1.0 {
                assert!(must(&text, LEADER_CHANGES) >= 1.0, "node {id}:\n{text}");
                let is_leader = must(&text, "ketch_server_is_leader");
                assert_eq!(is_leader, f64::from(id == leader), "node {id}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} has no leader:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let before = scrape(metrics_addr(leader));
    let follower_before = scrape(metrics_addr(follower));
    const SETS: usize = 50;
    let mut conn = RawConnection::open(leader_client);
    for i in 0..SETS {
        let key = format!("metrics-key-{i}");
        let reply = conn.call(&[b"SET", key.as_bytes(), b"value"]);
        assert_eq!(reply, b"+OK\r\n", "SET {key}");
    }
    // Replication to the follower completes shortly after the leader's answers.
    std::thread::sleep(Duration::from_millis(500));
    let after = scrape(metrics_addr(leader));
    let grew = |before: &str, after: &str, series: &str| must(after, series) - must(before, series);
    assert!(
        grew(&before, &after, COMMITTED) >= SETS as f64,
        "{COMMITTED} grew by less than {SETS}:\n{after}"
    );
    assert!(grew(&before, &after, &format!("{FSYNC}_count")) >= 1.0);
    assert!(grew(&before, &after, &format!("{FSYNC}_sum")) > 0.0);
    assert!(grew(&before, &after, "ketch_disk_wal_write_entries_total") >= SETS as f64);
    assert_eq!(
        grew(&before, &after, "ketch_kv_commands_total{cmd=\"set\"}"),
        SETS as f64
    );
    assert!(must(&after, "ketch_kv_client_connections") >= 1.0);
    let to_follower = format!("ketch_network_peer_sent_bytes_total{{To=\"{follower}\"}}");
    assert!(grew(&before, &after, &to_follower) > 0.0, "{after}");
    assert!(must(&after, "ketch_network_peer_round_trip_time_seconds_count") >= 1.0);
    let follower_after = scrape(metrics_addr(follower));
    assert!(
        grew(&follower_before, &follower_after, COMMITTED) >= SETS as f64,
        "the follower's commit index did not follow:\n{follower_after}"
    );
    drop(conn);

    // Writes have stopped: the histogram and the log's own count agree on each node.
    for id in [leader, follower] {
        let count = agreeing_fsync_count(
            metrics_addr(id),
            cluster.node(id).client_addr,
            Duration::from_secs(10),
        );
        assert!(count >= 1.0, "node {id} reports no fsync");
    }

    check_with_prometheus_client(&scrape(metrics_addr(leader)));

    let (status, _) = http_get(metrics_addr(leader), "/not-metrics");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    done.store(true, Ordering::Release);
}

/// With `--shards 4`, each node's series cover its range groups: `is_leader` counts the
/// ranges it leads (4 over the three nodes), `has_leader` is 1 once every range has a leader,
/// and writes through a slot-aware client move every node's commit counter, its fsync
/// histogram (whose count equals INFO's `fsyncs:` once writes stop) and the write-entry
/// counter.
#[test]
fn a_sharded_node_exports_its_range_groups() {
    let done = support::watchdog("e2e_metrics_sharded", Duration::from_secs(90));
    let mut cluster = TestCluster::new_stopped(3, None);
    let base = free_consecutive_ports(3);
    let metrics_addr = |id: u64| SocketAddr::from(([127, 0, 0, 1], base + id as u16 - 1));
    let args = cluster.sharded_args(4);
    for id in 1..=3 {
        let metrics = ["--metrics-addr".to_string(), metrics_addr(id).to_string()];
        cluster
            .extra_args
            .insert(id, args.iter().cloned().chain(metrics).collect());
        cluster.spawn(id);
    }
    cluster.wait_ready(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    let texts = loop {
        let texts: Vec<String> = (1..=3).map(|id| scrape(metrics_addr(id))).collect();
        let led: f64 = texts
            .iter()
            .map(|t| must(t, "ketch_server_is_leader"))
            .sum();
        if led == 4.0 && texts.iter().all(|t| must(t, HAS_LEADER) == 1.0) {
            break texts;
        }
        assert!(
            Instant::now() < deadline,
            "ranges led {led} (4 expected), has_leader {:?}",
            texts
                .iter()
                .map(|t| must(t, HAS_LEADER))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut client = cluster.client_starting_at(1);
    const SETS: usize = 200;
    for i in 0..SETS {
        let key = format!("sharded-metrics-{i}");
        client
            .set(key.as_bytes(), b"value")
            .unwrap_or_else(|e| panic!("SET {key}: {e}"));
    }
    std::thread::sleep(Duration::from_millis(500));
    for (id, before) in (1..=3).zip(&texts) {
        let after = scrape(metrics_addr(id));
        let grew = |series: &str| must(&after, series) - must(before, series);
        // Every node holds a replica of every range: all of them commit every write.
        assert!(grew(COMMITTED) >= SETS as f64, "node {id}:\n{after}");
        assert!(
            grew("ketch_disk_wal_write_entries_total") >= 1.0,
            "node {id}"
        );
        assert!(grew(&format!("{FSYNC}_count")) >= 1.0, "node {id}");
        let count = agreeing_fsync_count(
            metrics_addr(id),
            cluster.node(id).client_addr,
            Duration::from_secs(10),
        );
        assert!(count >= 1.0, "node {id} reports no fsync");
    }
    check_with_prometheus_client(&scrape(metrics_addr(1)));
    done.store(true, Ordering::Release);
}

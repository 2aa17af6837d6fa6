//! `redis-benchmark` (the Redis project's load generator) against a local 3-node cluster of
//! `ketch serve` processes: it must run to the end with no error reply. One test runs SET and
//! GET under load (pipelined on the leader, one at a time through a follower); the other runs
//! redis-benchmark's default test list, restricted to the tests Ketch supports
//! ([`DEFAULT_TESTS_SUPPORTED`]).
//!
//! Skipped with a notice when `redis-benchmark` is not installed, unless
//! `KETCH_REQUIRE_REDIS_TOOLS` is set (CI sets it after installing `redis-tools`).
//! Reproduce with `cargo test --release --test e2e_redis_benchmark -- --nocapture`.

#[path = "e2e/support.rs"]
mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::TestCluster;

/// The tests of redis-benchmark's default list (Redis 7.0: PING_INLINE, PING_MBULK, SET, GET,
/// INCR, LPUSH, RPUSH, LPOP, RPOP, SADD, HSET, SPOP, ZADD, ZPOPMIN, LRANGE_100, LRANGE_300,
/// LRANGE_500, LRANGE_600, MSET) that Ketch serves, as `-t` names. Skipped: LPUSH, RPUSH,
/// LPOP, RPOP and the LRANGE_* tests (lists), SADD and SPOP (sets), ZADD and ZPOPMIN (sorted
/// sets): Ketch has no such types and refuses them.
const DEFAULT_TESTS_SUPPORTED: &[&str] = &[
    "ping_inline",
    "ping_mbulk",
    "set",
    "get",
    "incr",
    "hset",
    "mset",
];

/// True if `redis-benchmark` runs; if not, fails when `KETCH_REQUIRE_REDIS_TOOLS` is set and
/// prints a notice otherwise.
fn redis_benchmark_available() -> bool {
    let available = Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("KETCH_REQUIRE_REDIS_TOOLS").is_none(),
            "KETCH_REQUIRE_REDIS_TOOLS is set but redis-benchmark is not installed"
        );
        eprintln!("SKIPPED: redis-benchmark not installed (apt-get install redis-tools)");
    }
    available
}

/// Fails if redis-benchmark's output mentions an error.
fn assert_no_error(stdout: &str, stderr: &str, context: &str) {
    for text in [stdout, stderr] {
        assert!(
            !text.contains("ERR") && !text.contains("Error") && !text.contains("error"),
            "redis-benchmark reported an error: {context}"
        );
    }
}

/// Runs `redis-benchmark` with `args`, killing it past `limit`; its stdout and stderr.
fn run_benchmark(args: &[String], limit: Duration) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new("redis-benchmark")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start redis-benchmark");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "redis-benchmark {args:?} still running after {limit:?}; output so far:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "redis-benchmark {args:?}: {status}\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// The requests per second of each test in `redis-benchmark --csv` output
/// (`"SET","12345.67",...` lines after a header line).
fn parse_csv_rates(stdout: &str) -> Vec<(String, f64)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(|f| f.trim_matches('"'));
            let test = fields.next()?.to_string();
            let rate: f64 = fields.next()?.parse().ok()?;
            Some((test, rate))
        })
        .collect()
}

#[test]
fn redis_benchmark_set_and_get_complete_without_errors() {
    if !redis_benchmark_available() {
        return;
    }
    let done = support::watchdog("redis_benchmark", Duration::from_secs(85));
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let follower = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != leader)
        .unwrap();
    // On the leader, pipelined; on a follower (forwarding), one request at a time.
    for (node, pipeline, requests) in [(leader, 16, 20_000), (follower, 1, 2_000)] {
        let port = cluster.node(node).client_addr.port().to_string();
        let args: Vec<String> = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "set,get",
            "-n",
            &requests.to_string(),
            "-c",
            "20",
            "-d",
            "256",
            "-r",
            "10000",
            "-P",
            &pipeline.to_string(),
            "--csv",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (stdout, stderr) = run_benchmark(&args, Duration::from_secs(60));
        let context = format!(
            "node {node} -P {pipeline}:\n{stdout}\n{stderr}\n{}",
            cluster.logs()
        );
        assert_no_error(&stdout, &stderr, &context);
        let rates = parse_csv_rates(&stdout);
        for test in ["SET", "GET"] {
            let rate = rates.iter().find(|(t, _)| t == test).map(|(_, r)| *r);
            assert!(
                rate.is_some_and(|r| r > 0.0),
                "no {test} rate in the output: {context}"
            );
        }
        eprintln!("redis-benchmark node {node} -P {pipeline}: {rates:?}");
    }
    // The benchmark's keys really are in the store.
    let mut client = cluster.client_starting_at(follower);
    assert!(client.dbsize().unwrap() > 0);
    done.store(true, Ordering::Release);
}

#[test]
fn redis_benchmark_default_tests_that_ketch_supports_complete_without_errors() {
    if !redis_benchmark_available() {
        return;
    }
    let done = support::watchdog("redis_benchmark_default_tests", Duration::from_secs(85));
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let port = cluster.node(leader).client_addr.port().to_string();
    let tests = DEFAULT_TESTS_SUPPORTED.join(",");
    // Small: this checks that every test runs cleanly, not how fast.
    let args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        &tests,
        "-n",
        "2000",
        "-c",
        "10",
        "-r",
        "1000",
        "-P",
        "8",
        "--csv",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (stdout, stderr) = run_benchmark(&args, Duration::from_secs(60));
    let context = format!("{stdout}\n{stderr}\n{}", cluster.logs());
    assert_no_error(&stdout, &stderr, &context);
    let rates = parse_csv_rates(&stdout);
    for test in DEFAULT_TESTS_SUPPORTED {
        let name = test.to_uppercase();
        // MSET's line is "MSET (10 keys)".
        let rate = rates
            .iter()
            .find(|(t, _)| t == &name || t.starts_with(&format!("{name} ")))
            .map(|(_, r)| *r);
        assert!(
            rate.is_some_and(|r| r > 0.0),
            "no {name} rate in the output: {context}"
        );
    }
    eprintln!("redis-benchmark default tests on node {leader}: {rates:?}");
    done.store(true, Ordering::Release);
}

//! End-to-end: values of megabytes on real `ketch serve` processes. A value larger than the
//! core's message bound must still reach every node (an entry a peer refuses to receive would
//! be resent forever and stop every later write), and one over the value limit must be
//! refused with a non-retryable error; after each, a small write succeeds within a second on
//! every node.
//!
//! Reproduce one with `cargo test --release --test e2e_big_values <name> -- --nocapture`; a
//! failing test prints the tail of every node's log.

#[path = "e2e/support.rs"]
mod support;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use support::{RawConnection, TestCluster};

/// Each test moves hundreds of MiB through three processes: run one at a time, so that on a
/// small machine they measure their own cluster, not the starvation of three at once.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    // A test that failed while holding it poisons it; the next still runs.
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// A value of `len` bytes that differs from a value of another length.
fn big_value(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (len % 253) as u8)
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A connection with room for a reply of 64 MiB on a loaded machine.
fn open(cluster: &TestCluster, id: u64) -> RawConnection {
    let connection = RawConnection::open(cluster.node(id).client_addr);
    connection
        .stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    connection
}

/// Every node answers `GET key` with `value`.
fn assert_everywhere(cluster: &TestCluster, key: &str, value: &[u8]) {
    let mut expected = format!("${}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(value);
    expected.extend_from_slice(b"\r\n");
    for node in &cluster.nodes {
        let got = open(cluster, node.id).call(&[b"GET", key.as_bytes()]);
        assert!(
            got == expected,
            "node {}: GET {key}: {} bytes ({:?}...), not the {} expected\n{}",
            node.id,
            got.len(),
            text(&got[..got.len().min(80)]),
            expected.len(),
            cluster.logs()
        );
    }
}

/// A small SET on every node succeeds within one second: replication is not wedged.
fn assert_writes_flow(cluster: &TestCluster, round: &str) {
    for node in &cluster.nodes {
        let mut connection = open(cluster, node.id);
        let key = format!("after-{round}-{}", node.id);
        let started = Instant::now();
        let reply = connection.call(&[b"SET", key.as_bytes(), b"v"]);
        let took = started.elapsed();
        assert_eq!(
            text(&reply),
            "+OK\r\n",
            "node {}\n{}",
            node.id,
            cluster.logs()
        );
        assert!(
            took < Duration::from_secs(1),
            "node {}: a SET after {round} took {took:?}\n{}",
            node.id,
            cluster.logs()
        );
    }
}

fn start(max_value_bytes: Option<u64>) -> TestCluster {
    let mut cluster = TestCluster::new_stopped(3, None);
    cluster.max_value_bytes = max_value_bytes;
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_ready(Duration::from_secs(30));
    cluster
}

/// SETs each `(length, through)` value, checks that every node has it, and that a small
/// write succeeds right after on every node.
fn set_and_check(cluster: &TestCluster, writes: &[(usize, u64)]) {
    for &(len, via) in writes {
        let key = format!("big-{len}-{via}");
        let value = big_value(len);
        let reply = open(cluster, via).call(&[b"SET", key.as_bytes(), &value]);
        assert_eq!(text(&reply), "+OK\r\n", "{key}\n{}", cluster.logs());
        assert_everywhere(cluster, &key, &value);
        assert_writes_flow(cluster, &key);
    }
}

#[test]
fn three_megabytes_replicate_and_65_mib_is_refused_without_wedging() {
    let _serial = one_at_a_time();
    let done = support::watchdog("big_values", Duration::from_secs(180));
    let cluster = start(None);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let follower = cluster.follower_of(leader);
    // Through the leader, and through a follower (forwarded to the leader).
    set_and_check(&cluster, &[(3_000_000, leader), (3_000_000, follower)]);
    for via in [leader, follower] {
        let len = 65 << 20;
        let key = format!("over-{via}");
        let reply = open(&cluster, via).call(&[b"SET", key.as_bytes(), &big_value(len)]);
        assert_eq!(
            text(&reply),
            format!("-ERR value too large ({len} bytes; limit {})\r\n", 64 << 20),
            "{}",
            cluster.logs()
        );
        assert_eq!(
            text(&open(&cluster, via).call(&[b"GET", key.as_bytes()])),
            "$-1\r\n"
        );
        assert_writes_flow(&cluster, &key);
    }
    done.store(true, std::sync::atomic::Ordering::Release);
}

/// The largest value the default limit admits, through the leader and through a follower
/// (forwarded): tens of MiB on the wire while heartbeats must keep flowing, so no node may
/// start an election meanwhile.
#[test]
fn a_64_mib_value_replicates_through_leader_and_follower() {
    let _serial = one_at_a_time();
    let done = support::watchdog("value_64_mib", Duration::from_secs(300));
    let cluster = start(None);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let follower = cluster.follower_of(leader);
    set_and_check(&cluster, &[(64 << 20, leader), (64 << 20, follower)]);
    done.store(true, std::sync::atomic::Ordering::Release);
}

#[test]
fn the_max_value_bytes_flag_sets_the_limit_on_every_node() {
    let _serial = one_at_a_time();
    let done = support::watchdog("max_value_flag", Duration::from_secs(120));
    const LIMIT: usize = 1 << 20;
    let cluster = start(Some(LIMIT as u64));
    for node in &cluster.nodes {
        let mut connection = open(&cluster, node.id);
        let key = format!("at-limit-{}", node.id);
        let value = big_value(LIMIT);
        assert_eq!(
            text(&connection.call(&[b"SET", key.as_bytes(), &value])),
            "+OK\r\n"
        );
        assert_everywhere(&cluster, &key, &value);
        assert_eq!(
            text(&connection.call(&[b"SET", b"over", &big_value(LIMIT + 1)])),
            format!(
                "-ERR value too large ({} bytes; limit {LIMIT})\r\n",
                LIMIT + 1
            )
        );
        assert_eq!(
            text(&connection.call(&[b"APPEND", key.as_bytes(), b"x"])),
            format!(
                "-ERR value too large ({} bytes; limit {LIMIT})\r\n",
                LIMIT + 1
            )
        );
        assert_everywhere(&cluster, &key, &value);
    }
    assert_writes_flow(&cluster, "refusals");
    done.store(true, std::sync::atomic::Ordering::Release);
}

//! Key expiry across a leader failure, with real `ketch serve` processes.
//!
//! Keys are written with `SET key value PX ttl` (TTLs spread over a few seconds), then the
//! leader is killed with SIGKILL while some deadlines are still ahead. On the new leader every
//! key is read again and again until every deadline has passed, and each read is checked
//! against the window its deadline must lie in:
//!
//! - the deadline is at least `sent + ttl` (the leader stamps the entry no earlier than the
//!   client sent it) and at most `acked + ttl` (no later than the reply came back);
//! - a key read as present by a read that started after `acked + ttl` was readable after its
//!   deadline: a failure;
//! - a key read as absent by a read that ended before `sent + ttl` vanished before its
//!   deadline: a failure.
//!
//! Every node runs on this machine's clock, so the leader's clock and the test's agree; the
//! per-node clock offset (`KETCH_CLOCK_OFFSET_MS`) is what makes a skewed clock testable, and
//! the in-process suite uses it. Reproduce with
//! `cargo test --release --test e2e_expiry_failover -- --nocapture`.

#[path = "e2e/support.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{RawConnection, TestCluster};

/// Keys written before the kill.
const KEYS: u64 = 120;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// One key's deadline window, by the machine clock.
struct Written {
    key: String,
    value: String,
    /// The deadline is no earlier than this.
    earliest: u64,
    /// The deadline is no later than this.
    latest: u64,
}

#[test]
fn no_key_outlives_its_deadline_or_vanishes_before_it_across_a_leader_kill() {
    let done = support::watchdog("expiry_failover", Duration::from_secs(120));
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let mut connection = RawConnection::open(cluster.node(leader).client_addr);

    // TTLs from 1.5 s to 7.5 s: some deadlines pass before the kill, some during the
    // election, most on the new leader.
    let mut written = Vec::new();
    for i in 0..KEYS {
        let key = format!("ttl:{i}");
        let value = format!("v{i}");
        let ttl = 1_500 + i * 50;
        let sent = now_ms();
        let reply = connection.call(&[
            b"SET",
            key.as_bytes(),
            value.as_bytes(),
            b"PX",
            ttl.to_string().as_bytes(),
        ]);
        let acked = now_ms();
        assert_eq!(reply, b"+OK\r\n", "SET {key} PX {ttl}\n{}", cluster.logs());
        written.push(Written {
            key,
            value,
            earliest: sent + ttl,
            latest: acked + ttl,
        });
    }
    // Keys without a TTL must survive everything.
    for i in 0..10 {
        let reply = connection.call(&[b"SET", format!("keep:{i}").as_bytes(), b"x"]);
        assert_eq!(reply, b"+OK\r\n");
    }
    drop(connection);

    cluster.kill9(leader);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(20));
    assert_ne!(new_leader, leader);
    let mut connection = RawConnection::open(cluster.node(new_leader).client_addr);

    let last_deadline = written.iter().map(|w| w.latest).max().expect("keys");
    let mut reads = 0u64;
    let mut seen_present = 0u64;
    let mut seen_absent = 0u64;
    let mut failures = Vec::new();
    while now_ms() <= last_deadline + 300 && failures.len() < 10 {
        for w in &written {
            let started = now_ms();
            let reply = connection.call(&[b"GET", w.key.as_bytes()]);
            let ended = now_ms();
            reads += 1;
            if reply.starts_with(b"-") {
                // A leader that is still settling may refuse a read; only answers count.
                continue;
            }
            let present = reply != b"$-1\r\n";
            if present {
                seen_present += 1;
                let expected = format!("${}\r\n{}\r\n", w.value.len(), w.value);
                if reply != expected.as_bytes() {
                    failures.push(format!(
                        "{}: read {:?}, expected {expected:?}",
                        w.key,
                        String::from_utf8_lossy(&reply)
                    ));
                }
                if started > w.latest {
                    failures.push(format!(
                        "{} readable at {started} ms, after its deadline (<= {} ms)",
                        w.key, w.latest
                    ));
                }
            } else {
                seen_absent += 1;
                if ended < w.earliest {
                    failures.push(format!(
                        "{} absent at {ended} ms, before its deadline (>= {} ms)",
                        w.key, w.earliest
                    ));
                }
            }
        }
    }
    for i in 0..10 {
        let reply = connection.call(&[b"GET", format!("keep:{i}").as_bytes()]);
        assert_eq!(reply, b"$1\r\nx\r\n", "keep:{i} must outlive every TTL");
    }
    let dbsize = connection.call(&[b"DBSIZE"]);
    eprintln!(
        "expiry failover: {reads} reads on the new leader ({seen_present} present, \
         {seen_absent} absent); DBSIZE afterwards {}",
        String::from_utf8_lossy(&dbsize).trim()
    );
    assert!(
        failures.is_empty(),
        "expiry violations:\n{}\n{}",
        failures.join("\n"),
        cluster.logs()
    );
    // The test can fail: both outcomes must have been observed on the new leader.
    assert!(seen_present > 0, "no key was read before its deadline");
    assert!(seen_absent > 0, "no key was read after its deadline");
    done.store(true, Ordering::Release);
}

/// Expired keys are reclaimed without being read: DBSIZE (which counts live keys) drops to the
/// keys without a TTL, and so does INFO's Keyspace count, which counts stored keys.
#[test]
fn expired_keys_are_reclaimed_without_reads() {
    let done = support::watchdog("expiry_reclaim", Duration::from_secs(60));
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let mut connection = RawConnection::open(cluster.node(leader).client_addr);
    for i in 0..500 {
        let reply =
            connection.call(&[b"SET", format!("short:{i}").as_bytes(), b"v", b"PX", b"200"]);
        assert_eq!(reply, b"+OK\r\n");
    }
    assert_eq!(connection.call(&[b"SET", b"long", b"v"]), b"+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    let follower = cluster.follower_of(leader);
    let mut follower_connection = RawConnection::open(cluster.node(follower).client_addr);
    loop {
        let keyspace =
            String::from_utf8_lossy(&follower_connection.call(&[b"INFO", b"keyspace"])).to_string();
        if keyspace.contains("db0:keys=1,") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired keys still stored on node {follower} after 15 s: {keyspace}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(connection.call(&[b"DBSIZE"]), b":1\r\n");
    done.store(true, Ordering::Release);
}

//! End-to-end tests of the replicated key-value service: real `ketch serve` processes on
//! loopback, talked to over RESP, killed with SIGKILL and stopped with SIGTERM.
//!
//! Reproduce one with `cargo test --release --test e2e_service <name> -- --nocapture`; a
//! failing test prints the tail of every node's log.

#[path = "e2e/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketch::client::{ClientError, Reply};
use support::{RawConnection, TestCluster};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_command_pipelining_follower_forwarding_and_malformed_input() {
    let done = support::watchdog("every_command", Duration::from_secs(80));
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let follower = cluster.follower_of(leader);

    // Byte-exact replies, every command sent to a follower (writes and linearizable reads are
    // forwarded to the leader).
    let mut raw = RawConnection::open(cluster.node(follower).client_addr);
    let exact: &[(&[&[u8]], &[u8])] = &[
        (&[b"PING"], b"+PONG\r\n"),
        (&[b"PING", b"hi"], b"$2\r\nhi\r\n"),
        (&[b"ECHO", b"hello"], b"$5\r\nhello\r\n"),
        (&[b"SET", b"k", b"v1"], b"+OK\r\n"),
        (&[b"GET", b"k"], b"$2\r\nv1\r\n"),
        (&[b"SET", b"k", b"v2", b"NX"], b"$-1\r\n"),
        (&[b"SET", b"k", b"v3", b"XX"], b"+OK\r\n"),
        (&[b"SET", b"absent", b"x", b"XX"], b"$-1\r\n"),
        (&[b"SET", b"fresh", b"x", b"NX"], b"+OK\r\n"),
        (&[b"GET", b"k"], b"$2\r\nv3\r\n"),
        (&[b"GET", b"missing"], b"$-1\r\n"),
        (&[b"APPEND", b"k", b"++"], b":4\r\n"),
        (&[b"APPEND", b"new", b"abc"], b":3\r\n"),
        (&[b"INCR", b"n"], b":1\r\n"),
        (&[b"INCRBY", b"n", b"41"], b":42\r\n"),
        (&[b"INCRBY", b"n", b"-2"], b":40\r\n"),
        (&[b"EXISTS", b"k", b"n", b"missing", b"k"], b":3\r\n"),
        (&[b"MSET", b"a", b"1", b"b", b"2"], b"+OK\r\n"),
        (
            &[b"MGET", b"a", b"missing", b"b"],
            b"*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n",
        ),
        (&[b"DEL", b"a", b"missing", b"b"], b":2\r\n"),
        // k, fresh, new, n.
        (&[b"DBSIZE"], b":4\r\n"),
    ];
    for (args, expected) in exact {
        let reply = raw.call(args);
        let shown: Vec<String> = args.iter().map(|a| text(a)).collect();
        assert_eq!(text(&reply), text(expected), "reply to {shown:?}");
    }
    // Errors worded as Redis words them.
    let errors: &[(&[&[u8]], &str)] = &[
        (
            &[b"INCR", b"k"],
            "-ERR value is not an integer or out of range",
        ),
        (&[b"NOSUCHCOMMAND", b"x"], "-ERR unknown command"),
        (
            &[b"GET"],
            "-ERR wrong number of arguments for 'get' command",
        ),
        (
            &[b"SET", b"k"],
            "-ERR wrong number of arguments for 'set' command",
        ),
        (
            &[b"MSET", b"a"],
            "-ERR wrong number of arguments for 'mset' command",
        ),
    ];
    for (args, prefix) in errors {
        let reply = text(&raw.call(args));
        assert!(reply.starts_with(prefix), "{:?}: {reply:?}", text(args[0]));
    }
    // INFO reports the role, term and leader.
    let info = cluster.info(follower).expect("INFO from the follower");
    assert_eq!(info.role, "follower");
    assert_eq!(info.leader, Some(leader));
    assert!(info.term >= 1);

    // A write on a follower is visible in a linearizable read on the leader at once.
    let mut on_leader = RawConnection::open(cluster.node(leader).client_addr);
    assert_eq!(raw.call(&[b"SET", b"via-follower", b"1"]), b"+OK\r\n");
    assert_eq!(on_leader.call(&[b"GET", b"via-follower"]), b"$1\r\n1\r\n");

    // Pipelining: 1000 writes then 1000 reads in one write to the follower; replies in order.
    let mut batch = Vec::new();
    for i in 0..1000 {
        ketch::kv::resp::encode_request(
            &mut batch,
            &[
                b"SET".as_slice(),
                format!("p{i}").as_bytes(),
                format!("v{i}").as_bytes(),
            ],
        );
    }
    for i in 0..1000 {
        ketch::kv::resp::encode_request(
            &mut batch,
            &[b"GET".as_slice(), format!("p{i}").as_bytes()],
        );
    }
    raw.send(&batch);
    for i in 0..1000 {
        assert_eq!(raw.read_reply_bytes(), b"+OK\r\n", "pipelined SET {i}");
    }
    for i in 0..1000 {
        let value = format!("v{i}");
        let expected = format!("${}\r\n{value}\r\n", value.len());
        assert_eq!(text(&raw.read_reply_bytes()), expected, "pipelined GET {i}");
    }

    // The client: every method, through a follower first.
    let mut client = cluster.client_starting_at(follower);
    client.ping().unwrap();
    client.set("c:str", "hello").unwrap();
    assert_eq!(client.get("c:str").unwrap(), Some(b"hello".to_vec()));
    assert_eq!(client.append("c:str", " world").unwrap(), 11);
    assert_eq!(client.incr("c:n").unwrap(), 1);
    assert_eq!(client.incrby("c:n", 9).unwrap(), 10);
    client.mset(&[("c:a", "1"), ("c:b", "2")]).unwrap();
    assert_eq!(
        client.mget(&["c:a", "c:zz", "c:b"]).unwrap(),
        vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]
    );
    assert_eq!(client.exists(&["c:a", "c:zz"]).unwrap(), 1);
    assert_eq!(client.del(&["c:a", "c:zz"]).unwrap(), 1);
    let keys_before = client.dbsize().unwrap();
    client.set("c:one-more", "x").unwrap();
    assert_eq!(client.dbsize().unwrap(), keys_before + 1);
    assert!(client.info().unwrap().contains("role:"));
    match client.incr("c:str") {
        Err(ClientError::Server { message, .. }) => {
            assert!(
                message.starts_with("ERR value is not an integer"),
                "{message}"
            )
        }
        other => panic!("INCR of a string: {other:?}"),
    }
    assert_eq!(
        client.command(&["SET", "c:str", "again", "NX"]).unwrap(),
        Reply::Bulk(None)
    );
    let results = client.pipeline(&[vec!["INCR", "c:p"], vec!["INCR", "c:p"], vec!["GET", "c:p"]]);
    assert_eq!(
        results.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![
            Reply::Integer(1),
            Reply::Integer(2),
            Reply::Bulk(Some(b"2".to_vec()))
        ]
    );

    // Malformed input: an error reply and the connection closed; others unaffected.
    let mut bad = RawConnection::open(cluster.node(follower).client_addr);
    bad.send(b"*2\r\n$3\r\nGET\r\n$abc\r\n");
    assert!(
        bad.closed_by_peer(),
        "malformed bulk length: connection not closed"
    );
    assert!(
        text(bad.pending_input()).starts_with("-ERR Protocol error"),
        "{:?}",
        text(bad.pending_input())
    );
    let mut oversize = RawConnection::open(cluster.node(leader).client_addr);
    oversize.send(b"*1\r\n$1073741824\r\n");
    assert!(
        oversize.closed_by_peer(),
        "oversize bulk: connection not closed"
    );
    assert!(text(oversize.pending_input()).starts_with("-ERR Protocol error"));
    let mut garbage = RawConnection::open(cluster.node(leader).client_addr);
    garbage.send(b"*-5\r\n\x00\xff\r\n*1\r\n:12\r\n");
    assert!(garbage.closed_by_peer(), "garbage: connection not closed");
    assert_eq!(raw.call(&[b"GET", b"k"]), b"$4\r\nv3++\r\n");
    assert_eq!(on_leader.call(&[b"PING"]), b"+PONG\r\n");

    done.store(true, Ordering::Release);
}

#[test]
fn serve_refuses_bad_command_lines_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("d");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--id", "4", "--cluster", "1=127.0.0.1:1,2=127.0.0.1:2"],
            "--id 4",
        ),
        (&["--id", "1", "--cluster", "1=127.0.0.1"], "1=127.0.0.1"),
        (
            &["--id", "1", "--cluster", "1=127.0.0.1:1,1=127.0.0.1:2"],
            "listed twice",
        ),
    ];
    for (args, needle) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ketch"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(*args)
            .output()
            .expect("run ketch serve");
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr {stderr:?} lacks {needle:?}"
        );
    }
}

/// What one writer thread saw.
#[derive(Default)]
struct WriterTally {
    incr_acked: u64,
    incr_maybe: u64,
    incr_not_applied: u64,
    /// Key → value of every SET acknowledged.
    sets_acked: BTreeMap<String, String>,
    errors: Vec<String>,
    /// Writes the client sent again after they may have been applied.
    resent_maybe_applied: u64,
}

#[test]
fn leader_kill9_during_writes_loses_no_acknowledged_write_and_applies_each_incr_once() {
    let done = support::watchdog("leader_kill9", Duration::from_secs(85));
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let stop = Arc::new(AtomicBool::new(false));
    let acked_total = Arc::new(AtomicU64::new(0));
    let tallies = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    // Half the writers talk to the leader first (their connection dies with it: writes in
    // flight must be retried elsewhere and applied once), half to a follower (forwarded
    // writes in flight when the leader dies).
    for w in 0..4u64 {
        let first = if w % 2 == 0 {
            leader
        } else {
            cluster.follower_of(leader)
        };
        let mut client = cluster.client_starting_at(first);
        let stop = Arc::clone(&stop);
        let acked_total = Arc::clone(&acked_total);
        let tallies = Arc::clone(&tallies);
        writers.push(std::thread::spawn(move || {
            let mut tally = WriterTally::default();
            // Bounded: stops at the flag or after 100 000 operations.
            for i in 0..50_000u64 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                match client.incr("counter") {
                    Ok(_) => tally.incr_acked += 1,
                    Err(e) if e.is_maybe_applied() => tally.incr_maybe += 1,
                    Err(e) if e.is_not_applied() => tally.incr_not_applied += 1,
                    Err(e) => tally.errors.push(e.to_string()),
                }
                let (key, value) = (format!("w{w}:{i}"), format!("{w}-{i}"));
                match client.set(&key, &value) {
                    Ok(()) => {
                        tally.sets_acked.insert(key, value);
                    }
                    Err(e) if e.is_maybe_applied() || e.is_not_applied() => {}
                    Err(e) => tally.errors.push(e.to_string()),
                }
                acked_total.fetch_add(1, Ordering::Relaxed);
            }
            tally.resent_maybe_applied = client.stats().writes_resent_maybe_applied;
            tallies.lock().unwrap().push(tally);
        }));
    }
    let wait_for_progress = |target: u64, what: &str, cluster: &TestCluster| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked_total.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "writers stuck {what} at {} rounds\n{}",
                acked_total.load(Ordering::Relaxed),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for_progress(200, "before the kill", &cluster);
    cluster.kill9(leader);
    let at_kill = acked_total.load(Ordering::Relaxed);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(20));
    assert_ne!(new_leader, leader);
    wait_for_progress(at_kill + 200, "after the kill", &cluster);
    // The killed node restarts from its directory and rejoins while writes go on.
    cluster.spawn(leader);
    let rejoined = acked_total.load(Ordering::Relaxed);
    wait_for_progress(rejoined + 100, "after the restart", &cluster);
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.join().expect("writer thread");
    }
    let tallies = std::mem::take(&mut *tallies.lock().unwrap());
    let errors: Vec<&String> = tallies.iter().flat_map(|t| &t.errors).collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:?}");
    let incr_acked: u64 = tallies.iter().map(|t| t.incr_acked).sum();
    let incr_maybe: u64 = tallies.iter().map(|t| t.incr_maybe).sum();
    let mut client = cluster.client_starting_at(new_leader);
    let counter: u64 = String::from_utf8(client.get("counter").unwrap().expect("counter exists"))
        .unwrap()
        .parse()
        .unwrap();
    // Exactly once: every acknowledged INCR counted once, and none twice; an INCR that ran
    // out of retries (MaybeApplied) counts at most once.
    assert!(
        counter >= incr_acked && counter <= incr_acked + incr_maybe,
        "counter {counter}, acknowledged INCRs {incr_acked}, maybe applied {incr_maybe}"
    );
    assert_eq!(
        incr_maybe, 0,
        "the retry budget (30 s) outlasts one failover: no INCR should end MaybeApplied"
    );
    assert_eq!(
        counter, incr_acked,
        "each acknowledged INCR applied exactly once"
    );
    // The case the sessions exist for did happen: writes in flight on the killed leader were
    // sent again elsewhere after they may have been applied.
    let resent: u64 = tallies.iter().map(|t| t.resent_maybe_applied).sum();
    assert!(
        resent >= 1,
        "no write was in flight on the leader when it was killed"
    );
    // Every acknowledged SET is present, read through the restarted node too.
    let mut on_restarted = cluster.client_starting_at(leader);
    for tally in &tallies {
        let keys: Vec<&String> = tally.sets_acked.keys().collect();
        for chunk in keys.chunks(500) {
            let values = on_restarted.mget(chunk).unwrap();
            for (key, value) in chunk.iter().zip(values) {
                assert_eq!(
                    value.as_deref(),
                    Some(tally.sets_acked[*key].as_bytes()),
                    "acknowledged SET {key} lost"
                );
            }
        }
    }
    eprintln!(
        "leader_kill9: {incr_acked} INCRs acknowledged, counter {counter}, {} SETs checked, \
         {resent} writes resent after maybe being applied",
        tallies.iter().map(|t| t.sets_acked.len()).sum::<usize>()
    );
    done.store(true, Ordering::Release);
}

#[test]
fn whole_cluster_sigterm_is_prompt_and_a_restart_keeps_every_acknowledged_write() {
    let done = support::watchdog("whole_cluster_restart", Duration::from_secs(85));
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let mut client = cluster.client_starting_at(leader);
    let mut acked = BTreeMap::new();
    for i in 0..300u32 {
        let (key, value) = (format!("r{i}"), format!("value-{i}"));
        client.set(&key, &value).unwrap();
        acked.insert(key, value);
    }
    for _ in 0..50 {
        client.incr("restarts:counter").unwrap();
    }
    // A writer keeps writing while the cluster stops: what it got acknowledged must survive.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let mut client = cluster.client_starting_at(leader);
        std::thread::spawn(move || {
            let mut acked = BTreeMap::new();
            // Bounded: until the flag, at most 100 000 writes.
            for i in 0..100_000u32 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let (key, value) = (format!("late{i}"), format!("late-value-{i}"));
                if client.set(&key, &value).is_ok() {
                    acked.insert(key, value);
                }
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for id in 1..=3 {
        cluster.send_sigterm(id);
    }
    let sent = Instant::now();
    for id in 1..=3 {
        let status = cluster.wait_exit(id, Duration::from_secs(10));
        let status = status.unwrap_or_else(|| {
            panic!(
                "node {id} still running 10 s after SIGTERM\n{}",
                cluster.logs()
            )
        });
        assert!(
            status.success(),
            "node {id} exited with {status}\n{}",
            cluster.logs()
        );
    }
    let stop_time = sent.elapsed();
    assert!(
        stop_time < Duration::from_secs(10),
        "stopping took {stop_time:?}"
    );
    stop.store(true, Ordering::Release);
    // Same command lines, same directories. The writer's last SET, in flight across the
    // restart, is retried by its client until the cluster answers.
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_ready(Duration::from_secs(30));
    let late_acked = writer.join().expect("writer");
    let mut client = cluster.client_starting_at(1);
    for (key, value) in acked.iter().chain(late_acked.iter()) {
        assert_eq!(
            client.get(key).unwrap().as_deref(),
            Some(value.as_bytes()),
            "acknowledged {key} lost over the restart\n{}",
            cluster.logs()
        );
    }
    assert_eq!(
        client.get("restarts:counter").unwrap(),
        Some(b"50".to_vec())
    );
    eprintln!(
        "whole_cluster_restart: stopped in {stop_time:?}; {} + {} writes kept",
        acked.len(),
        late_acked.len()
    );
    done.store(true, Ordering::Release);
}

/// SIGKILLs the nodes of a `ketch cluster` when dropped (they are gone already on success).
struct NodesGuard(Vec<u32>);

impl NodesGuard {
    /// The nodes stopped and were reaped: their pids may be reused, never signal them.
    fn disarm(mut self) {
        for &pid in &self.0 {
            support::forget_pid(pid);
        }
        self.0.clear();
    }
}

impl Drop for NodesGuard {
    fn drop(&mut self) {
        support::kill_pids(&self.0);
    }
}

#[test]
fn ketch_cluster_starts_reports_a_leader_stops_on_sigint_and_restarts_from_its_data() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let done = support::watchdog("ketch_cluster", Duration::from_secs(85));
    let dir = tempfile::tempdir().unwrap();
    // Six consecutive free ports: three for RESP, three for peers.
    let client_port = support::free_consecutive_ports(6);
    let peer_port = client_port + 3;
    let addrs: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.1:{}", client_port + i))
        .collect();
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ketch"))
            .args(["cluster", "--nodes", "3", "--data-dir"])
            .arg(dir.path())
            .args(["--client-port", &client_port.to_string()])
            .args(["--peer-port", &peer_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ketch cluster");
        // Lines until the first leader report (bounded by the watchdog).
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.iter().any(|l: &String| l.starts_with("leader: node")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no leader line from ketch cluster; output: {seen:#?}"),
            }
        }
        for addr in &addrs {
            assert!(
                seen.iter().any(|l| l.contains(&format!("RESP {addr}"))),
                "{addr} not printed: {seen:#?}"
            );
        }
        // The nodes' pids, so that neither the watchdog nor a failing assertion leaves
        // them running.
        let pids: Vec<u32> = seen
            .iter()
            .filter_map(|l| l.split("pid ").nth(1))
            .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .filter_map(|digits| digits.parse().ok())
            .collect();
        assert_eq!(pids.len(), 3, "three node pids printed: {seen:#?}");
        for &pid in &pids {
            support::register_pid(pid);
        }
        support::register_pid(child.id());
        (NodesGuard(pids), child, lines_rx)
    };
    let stop = |mut child: std::process::Child| {
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ketch cluster still running 20 s after SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        support::forget_pid(child.id());
        assert!(status.success(), "ketch cluster exited with {status}");
    };
    let (nodes, child, _lines) = start();
    let mut client =
        ketch::client::Client::connect_with(&addrs, support::test_client_options()).unwrap();
    client.set("kept", "across restarts").unwrap();
    stop(child);
    nodes.disarm();
    // Every node stopped with the supervisor: nothing answers any more.
    for addr in &addrs {
        assert!(
            !support::ping(addr.parse().unwrap()),
            "{addr} still answers"
        );
    }
    let (_nodes, child, _lines) = start();
    let mut client =
        ketch::client::Client::connect_with(&addrs, support::test_client_options()).unwrap();
    assert_eq!(
        client.get("kept").unwrap(),
        Some(b"across restarts".to_vec())
    );
    stop(child);
    done.store(true, Ordering::Release);
}

#[test]
fn ketch_bench_measures_set_get_and_incr_without_failures() {
    let done = support::watchdog("ketch_bench", Duration::from_secs(80));
    let cluster = TestCluster::start(3);
    let addrs = cluster
        .client_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for (op, pipeline) in [("set", "1"), ("get", "1"), ("set", "8"), ("incr", "4")] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ketch"))
            .args([
                "bench",
                "--addrs",
                &addrs,
                "--op",
                op,
                "--pipeline",
                pipeline,
            ])
            .args(["--clients", "4", "--requests", "400", "--keyspace", "50"])
            .output()
            .expect("run ketch bench");
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "ketch bench --op {op}: {}\n{stdout}\n{}",
            output.status,
            text(&output.stderr)
        );
        assert!(stdout.contains(" ops/s over "), "{stdout}");
        assert!(stdout.contains("latency ms: p50 "), "{stdout}");
        assert!(
            stdout.contains("failed: 0 not applied, 0 maybe applied, 0 error replies"),
            "{stdout}"
        );
    }
    // 400 INCRs on counter:0..49, each applied exactly once.
    let mut client = cluster.client_starting_at(1);
    let keys: Vec<String> = (0..50).map(|n| format!("counter:{n}")).collect();
    let total: u64 = client
        .mget(&keys)
        .unwrap()
        .into_iter()
        .flatten()
        .map(|v| text(&v).parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 400);
    done.store(true, Ordering::Release);
}

//! Process-level faults against real `ketch serve` clusters, checked with the simulator's
//! linearizability checker on histories recorded from real RESP clients.
//!
//! - `kill9_loop_under_load_is_linearizable`: SIGKILL of random nodes (the leader on every
//!   other round) and restarts, and every third round a SIGSTOP/SIGCONT pause of the leader
//!   longer than an election timeout, in a loop, under appends, puts and reads from several
//!   clients.
//! - `paused_leader_serves_no_stale_read_and_loses_no_write`: SIGSTOP of the leader for longer
//!   than an election timeout; requests that reached it while it was paused are answered only
//!   after it resumes, and must be neither stale reads nor writes that are later lost.
//!
//! Reproduce with `cargo test --release --test e2e_faults <name> -- --nocapture`;
//! `KETCH_FAULT_ROUNDS` sets the kill loop's rounds (default 4), `KETCH_FAULT_SEED` its seed.
//!
//! Soak mode: `KETCH_SOAK_SECS=N` keeps the loop going for N seconds (rounds beyond the
//! default), with fresh keys every other round so the checker's work stays bounded per key,
//! and prints a summary; e.g. `KETCH_SOAK_SECS=3600 cargo test --release --test e2e_faults
//! kill9 -- --nocapture`.

#[path = "e2e/recorder.rs"]
mod recorder;
#[path = "e2e/support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketch::client::{Client, ClientOptions};
use ketch_history::{check, CheckLimits, Op};
use nix::sys::signal::Signal;
use recorder::{env_u64, next_random, Recorder};
use support::{RawConnection, TestCluster};

const KEYS: u64 = 6;

/// Seconds of soak requested with `KETCH_SOAK_SECS` (0: the default, short run).
fn soak_secs() -> u64 {
    env_u64("KETCH_SOAK_SECS", 0)
}

fn fault_client_options() -> ClientOptions {
    ClientOptions {
        // Short enough that a client stuck on a dead node moves on within the round.
        io_timeout: Duration::from_secs(3),
        retry_time_max: Duration::from_secs(10),
        ..support::test_client_options()
    }
}

#[test]
fn kill9_loop_under_load_is_linearizable() {
    let soak = Duration::from_secs(soak_secs());
    let done = support::watchdog("kill9_loop", Duration::from_secs(170) + soak * 2);
    let rounds = env_u64("KETCH_FAULT_ROUNDS", 4);
    let seed = env_u64("KETCH_FAULT_SEED", 0x6b37);
    eprintln!("kill9 loop: {rounds} rounds, soak {soak:?}, KETCH_FAULT_SEED={seed}");
    let started = Instant::now();
    // Keys are renamed every other round, so each key's history spans about two rounds.
    let key_epoch = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut cluster = TestCluster::start(3);
    let recorder = Recorder::new();
    let stop = Arc::new(AtomicBool::new(false));
    let addrs = cluster.client_addrs();
    let workers: Vec<_> = (1..=4u64)
        .map(|client_id| {
            let recorder = recorder.clone();
            let stop = Arc::clone(&stop);
            let key_epoch = Arc::clone(&key_epoch);
            let ops_max = if soak.is_zero() { 5_000 } else { u64::MAX };
            let mut addrs = addrs.clone();
            let nodes = addrs.len();
            addrs.rotate_left(client_id as usize % nodes);
            std::thread::spawn(move || {
                let mut client =
                    Client::connect_with(&addrs, fault_client_options()).expect("connect a client");
                let mut random = seed ^ client_id.wrapping_mul(0x1234_5678_9ABC);
                // Bounded: until the flag, at most 5,000 operations per client (soak: until
                // the flag, which the soak deadline sets).
                for seq in 0..ops_max {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let epoch = key_epoch.load(Ordering::Acquire);
                    let key = format!("k{epoch}.{}", next_random(&mut random) % KEYS).into_bytes();
                    // Distinct, delimited values let the checker tell which unknown writes
                    // took effect (see ketch_history).
                    let value = format!("<{client_id}.{seq}>").into_bytes();
                    let op = match next_random(&mut random) % 4 {
                        0 | 1 => Op::Append { key, value },
                        2 => Op::Put { key, value },
                        _ => Op::Get { key },
                    };
                    recorder.run(client_id, &mut client, op);
                }
            })
        })
        .collect();

    let mut random = seed;
    let mut round = 0;
    let (mut kills, mut pauses) = (0, 0);
    // Bounded: `rounds`, or until the soak time has passed.
    while round < rounds || started.elapsed() < soak {
        std::thread::sleep(Duration::from_millis(1200));
        key_epoch.store(round / 2, Ordering::Release);
        if round % 3 == 2 {
            let leader = cluster.wait_for_leader(Duration::from_secs(20));
            eprintln!("round {round}: SIGSTOP leader {leader} past the election timeout");
            cluster.send_signal(leader, Signal::SIGSTOP);
            std::thread::sleep(Duration::from_millis(
                1000 + next_random(&mut random) % 1000,
            ));
            cluster.send_signal(leader, Signal::SIGCONT);
            pauses += 1;
        } else {
            let victim = if round % 2 == 0 {
                cluster.wait_for_leader(Duration::from_secs(20))
            } else {
                1 + next_random(&mut random) % 3
            };
            eprintln!("round {round}: kill -9 node {victim}");
            cluster.kill9(victim);
            std::thread::sleep(Duration::from_millis(400 + next_random(&mut random) % 800));
            cluster.spawn(victim);
            kills += 1;
        }
        round += 1;
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    for worker in workers {
        worker.join().expect("client thread");
    }

    // Every acknowledged append must be in the final values, read linearizably.
    cluster.wait_ready(Duration::from_secs(30));
    let mut reader = Client::connect_with(&addrs, support::test_client_options()).unwrap();
    let last_epoch = key_epoch.load(Ordering::Acquire);
    for epoch in 0..=last_epoch {
        for key in 0..KEYS {
            let key = format!("k{epoch}.{key}").into_bytes();
            recorder.run(99, &mut reader, Op::Get { key });
        }
    }
    let history = recorder.history.lock().unwrap();
    let completed = history.len();
    let result = check(&history, CheckLimits::default());
    eprintln!(
        "summary: {round} rounds ({kills} kill -9, {pauses} leader pauses) in {:?}; \
         {completed} operations recorded; checker: {result}",
        started.elapsed()
    );
    assert!(completed > 200, "too few operations ran: {completed}");
    assert!(
        result.is_ok(),
        "client history under kill -9 is not linearizable (KETCH_FAULT_SEED={seed}): {result}\n{}",
        cluster.logs()
    );
    done.store(true, Ordering::Release);
}

fn reply_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn paused_leader_serves_no_stale_read_and_loses_no_write() {
    let done = support::watchdog("paused_leader", Duration::from_secs(120));
    let cluster = TestCluster::start(3);
    let old_leader = cluster.wait_for_leader(Duration::from_secs(20));
    let others: Vec<u64> = (1..=3).filter(|&id| id != old_leader).collect();
    let mut client = cluster.client_starting_at(others[0]);
    client.set("paused:k", "old").unwrap();

    // Connections to the leader opened before the pause: what they send while it is stopped
    // waits in the kernel and is the first thing it reads when it resumes.
    let leader_addr = cluster.node(old_leader).client_addr;
    let mut reader = RawConnection::open(leader_addr);
    let mut writer = RawConnection::open(leader_addr);
    assert_eq!(reply_text(&reader.call(&[b"PING"])), "+PONG\r\n");
    assert_eq!(reply_text(&writer.call(&[b"PING"])), "+PONG\r\n");

    cluster.send_signal(old_leader, Signal::SIGSTOP);
    // A new leader among the others (the paused one cannot answer INFO).
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        let found = others
            .iter()
            .copied()
            .find(|&id| cluster.info(id).is_some_and(|view| view.role == "leader"));
        if let Some(id) = found {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader while node {old_leader} is paused"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut client = Client::connect_with(
        &[cluster.node(new_leader).client_addr],
        support::test_client_options(),
    )
    .unwrap();
    client.set("paused:k", "new").unwrap();

    reader.send_command(&[b"GET", b"paused:k"]);
    writer.send_command(&[b"SET", b"paused:w", b"from-paused-leader"]);
    cluster.send_signal(old_leader, Signal::SIGCONT);

    let read = reply_text(&reader.read_reply_bytes());
    assert!(
        read == "$3\r\nnew\r\n" || read.starts_with('-'),
        "the resumed old leader answered a read with {read:?}: a stale read (the write of \
         \"new\" had been acknowledged before the read was sent)\n{}",
        cluster.logs()
    );
    let written = reply_text(&writer.read_reply_bytes());
    eprintln!("resumed old leader: read -> {read:?}, write -> {written:?}");
    if written == "+OK\r\n" {
        // Acknowledged: it must be durable in the cluster, whoever leads.
        let mut check_client = cluster.client_starting_at(new_leader);
        assert_eq!(
            check_client.get("paused:w").unwrap().as_deref(),
            Some(&b"from-paused-leader"[..]),
            "a write acknowledged by the resumed old leader was lost\n{}",
            cluster.logs()
        );
    } else {
        assert!(
            written.starts_with('-'),
            "unexpected reply to the write: {written:?}"
        );
    }
    // And the cluster, with the old leader back as a member, still serves both.
    let mut client = cluster.client_starting_at(old_leader);
    client.set("paused:after", "1").unwrap();
    assert_eq!(
        client.get("paused:k").unwrap().as_deref(),
        Some(&b"new"[..])
    );
    done.store(true, Ordering::Release);
}

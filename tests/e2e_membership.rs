//! End-to-end membership changes with real `ketch serve` processes: grow a 3-node cluster
//! with two nodes started with `--join`, promote them, remove two original voters (the leader
//! among them) while a client writes continuously, SIGKILL a node during a change, and check
//! that no acknowledged write was lost and the final cluster serves reads and writes.
//!
//! Reproduce with `cargo test --release --test e2e_membership -- --nocapture`; a failing
//! test prints the tail of every node's log.

#[path = "e2e/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketch::client::{Client, ClientError};
use support::{RawConnection, TestCluster};

/// One member as `KETCH.MEMBERS` lists it: id → (role, match index if the leader knows it).
type Members = BTreeMap<u64, (String, Option<u64>)>;

/// Parses a `KETCH.MEMBERS` reply (array of [id, addr, role, match]).
fn parse_members(reply: &[u8]) -> Members {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut members = Members::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "*4" && lines.get(i + 1).is_some_and(|l| l.starts_with(':')) {
            let id: u64 = lines[i + 1][1..].parse().expect("member id");
            let mut j = i + 2;
            j += if lines[j] == "$-1" { 1 } else { 2 };
            let role = lines[j + 1].to_string();
            let match_index = lines[j + 2]
                .strip_prefix(':')
                .map(|m| m.parse().expect("match"));
            members.insert(id, (role, match_index));
            i = j + 2;
        }
        i += 1;
    }
    members
}

/// The leader's member list.
fn members(cluster: &TestCluster) -> (u64, Members) {
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let reply = RawConnection::open(cluster.node(leader).client_addr).call(&[b"KETCH.MEMBERS"]);
    (leader, parse_members(&reply))
}

/// Sends `command` to the leader until it answers `+OK` or `done` holds for the leader's
/// member list (a change answered `-TIMEOUT` may have been applied; refusals such as "not
/// caught up" or "change in progress" are retried).
fn change(cluster: &TestCluster, command: &[&str], done: impl Fn(&Members) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (leader, list) = members(cluster);
        if done(&list) {
            return;
        }
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        let reply = RawConnection::open(cluster.node(leader).client_addr).call(&args);
        if reply == b"+OK\r\n" {
            assert!(done(&members(cluster).1), "{command:?} answered +OK");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{command:?} not done: last reply {:?}\n{}",
            String::from_utf8_lossy(&reply),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn voters(list: &Members) -> BTreeSet<u64> {
    list.iter()
        .filter(|(_, (role, _))| role == "voter")
        .map(|(id, _)| *id)
        .collect()
}

/// Writes `w<i>` = `<i>` until told to stop; returns the acknowledged indexes.
fn writer(mut client: Client, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<u64>>>) {
    let mut i = 0u64;
    while !stop.load(Ordering::Acquire) {
        i += 1;
        match client.set(format!("w{i}"), i.to_string()) {
            Ok(()) => acked.lock().unwrap().push(i),
            // Not acknowledged: nothing to check.
            Err(ClientError::NotApplied { .. } | ClientError::MaybeApplied { .. }) => {}
            Err(e) => panic!("write {i}: {e}"),
        }
    }
}

/// Waits for `count` more acknowledged writes (writes keep flowing through every change).
fn wait_acked(cluster: &TestCluster, acked: &Mutex<Vec<u64>>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let start = acked.lock().unwrap().len();
    while acked.lock().unwrap().len() < start + count {
        assert!(
            Instant::now() < deadline,
            "writes stalled\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn grow_promote_remove_the_leader_under_writes_and_a_kill() {
    let watchdog = support::watchdog("membership", Duration::from_secs(150));
    let mut cluster = TestCluster::start(3);
    let first_leader = cluster.wait_for_leader(Duration::from_secs(20));
    let other = (1..=3).find(|&id| id != first_leader).unwrap();
    let stays = (1..=3)
        .find(|&id| id != first_leader && id != other)
        .unwrap();

    let new_a = cluster.add_joining_node();
    let new_b = cluster.add_joining_node();
    cluster.spawn(new_a);
    cluster.spawn(new_b);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let client = cluster.client_starting_at(stays);
    let writer = {
        let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
        std::thread::spawn(move || writer(client, stop, acked))
    };
    wait_acked(&cluster, &acked, 50);

    // A follower refuses admin changes, certainly not applied, naming the leader.
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let refused =
        RawConnection::open(cluster.node(follower).client_addr).call(&[b"KETCH.PROMOTE", b"2"]);
    assert!(
        refused.starts_with(b"-TRYAGAIN not applied: not the leader"),
        "{}",
        String::from_utf8_lossy(&refused)
    );

    for id in [new_a, new_b] {
        let addr = cluster.node(id).peer_addr.to_string();
        let id_text = id.to_string();
        change(&cluster, &["KETCH.ADDLEARNER", &id_text, &addr], |m| {
            m.contains_key(&id)
        });
    }
    let (_, list) = members(&cluster);
    assert_eq!(list[&new_a].0, "learner");
    assert_eq!(list[&new_b].0, "learner");
    wait_acked(&cluster, &acked, 50);
    for id in [new_a, new_b] {
        let id_text = id.to_string();
        change(&cluster, &["KETCH.PROMOTE", &id_text], |m| {
            voters(m).contains(&id)
        });
    }
    assert_eq!(voters(&members(&cluster).1).len(), 5);
    wait_acked(&cluster, &acked, 50);

    // Remove a non-leader original voter, and SIGKILL a new voter while that change is in
    // flight (both halves of the joint configuration keep a majority without it).
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let remove_first = if leader == other { stays } else { other };
    let mut raw = RawConnection::open(cluster.node(leader).client_addr);
    raw.send_command(&[b"KETCH.REMOVE", remove_first.to_string().as_bytes()]);
    cluster.kill9(new_a);
    let reply = raw.read_reply_bytes();
    let now_voters = voters(&members(&cluster).1);
    if reply != b"+OK\r\n" {
        // May have been applied: finish it.
        let id_text = remove_first.to_string();
        change(&cluster, &["KETCH.REMOVE", &id_text], |m| {
            !m.contains_key(&remove_first)
        });
    } else {
        assert!(!now_voters.contains(&remove_first), "{now_voters:?}");
    }
    // The killed node restarts with its --join command line and recovers its configuration.
    cluster.spawn(new_a);
    wait_acked(&cluster, &acked, 50);

    // Remove the leader itself, an original voter (moved there with KETCH.TRANSFER if a new
    // node leads): it hands over after the change commits.
    let originals_left: BTreeSet<u64> = (1..=3).filter(|&id| id != remove_first).collect();
    let mut leader = cluster.wait_for_leader(Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !originals_left.contains(&leader) {
        let target = *originals_left.iter().next().unwrap();
        let reply = RawConnection::open(cluster.node(leader).client_addr)
            .call(&[b"KETCH.TRANSFER", target.to_string().as_bytes()]);
        assert!(
            Instant::now() < deadline,
            "transfer to {target}: {}\n{}",
            String::from_utf8_lossy(&reply),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
        leader = cluster.wait_for_leader(Duration::from_secs(20));
    }
    let leader_text = leader.to_string();
    change(&cluster, &["KETCH.REMOVE", &leader_text], |m| {
        !m.contains_key(&leader)
    });
    // The removed leader hands over: another node leads soon after.
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let (new_leader, list) = members(&cluster);
        if new_leader != leader {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "removed leader {leader} still leads\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut expected: BTreeSet<u64> = originals_left.clone();
    expected.remove(&leader);
    expected.extend([new_a, new_b]);
    assert_eq!(voters(&list), expected, "{list:?}");
    assert_eq!(list.len(), 3, "no learners left: {list:?}");
    wait_acked(&cluster, &acked, 50);

    stop.store(true, Ordering::Release);
    writer.join().expect("writer thread");

    // No acknowledged write lost, read through the final cluster.
    let final_voters = voters(&members(&cluster).1);
    let first = *final_voters.iter().next().unwrap();
    let mut client = cluster.client_starting_at(first);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 250,
        "only {} writes acknowledged",
        acked.len()
    );
    for i in &acked {
        let value = client
            .get(format!("w{i}"))
            .expect("read an acknowledged write");
        assert_eq!(value, Some(i.to_string().into_bytes()), "write w{i} lost");
    }
    client
        .set("final", "yes")
        .expect("the final cluster takes writes");
    assert_eq!(client.get("final").unwrap(), Some(b"yes".to_vec()));

    // The original voter that stays restarts (SIGKILL, same --cluster command line): it
    // recovers the configuration and the new members' addresses from its data directory,
    // and with one new voter down, the cluster needs it to commit.
    let original = *final_voters
        .iter()
        .find(|id| **id <= 3)
        .expect("an original stays");
    cluster.kill9(original);
    cluster.spawn(original);
    let down = if final_voters.contains(&new_a) {
        new_a
    } else {
        new_b
    };
    cluster.kill9(down);
    client
        .set("after-restart", "yes")
        .expect("two of three voters, one restarted, commit");
    assert_eq!(client.get("after-restart").unwrap(), Some(b"yes".to_vec()));
    // The first removed node learned its removal and stopped.
    let deadline = Instant::now() + Duration::from_secs(20);
    let removed_line = format!("node {remove_first}: removed from the cluster");
    while !std::fs::read_to_string(&cluster.node(remove_first).log_path)
        .unwrap_or_default()
        .contains(&removed_line)
    {
        assert!(
            Instant::now() < deadline,
            "node {remove_first} never learned its removal\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "membership: {} acknowledged writes checked; final voters {final_voters:?}",
        acked.len()
    );
    watchdog.store(true, Ordering::Release);
}

/// Runs `ketch admin --addrs <every node's RESP address> <action...>`; returns (success,
/// stdout + stderr).
fn ketch_admin(cluster: &TestCluster, action: &[&str]) -> (bool, String) {
    let addrs: Vec<String> = cluster
        .client_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ketch"))
        .arg("admin")
        .arg("--addrs")
        .arg(addrs.join(","))
        .args(action)
        .output()
        .expect("run ketch admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs a `ketch admin` change until it succeeds or `done` holds for the leader's member
/// list (a `-TIMEOUT` may have been applied; "change in progress" refusals are retried).
fn admin_change(cluster: &TestCluster, action: &[&str], done: impl Fn(&Members) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (ok, text) = ketch_admin(cluster, action);
        if ok {
            assert!(text.contains("OK"), "{action:?}: {text}");
            let list = members(cluster).1;
            assert!(done(&list), "{action:?} answered OK; members {list:?}");
            return;
        }
        if done(&members(cluster).1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ketch admin {action:?} not done: {text}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn demote_a_voter_to_learner_and_promote_it_back_with_ketch_admin_under_writes() {
    let watchdog = support::watchdog("demote", Duration::from_secs(120));
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let demoted = (1..=3).find(|&id| id != leader).unwrap();
    let stays = (1..=3).find(|&id| id != leader && id != demoted).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let client = cluster.client_starting_at(stays);
    let writer = {
        let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
        std::thread::spawn(move || writer(client, stop, acked))
    };
    wait_acked(&cluster, &acked, 30);

    // Over RESP on a follower: refused, certainly not applied.
    let refused = RawConnection::open(cluster.node(demoted).client_addr)
        .call(&[b"KETCH.DEMOTE", leader.to_string().as_bytes()]);
    assert!(
        refused.starts_with(b"-TRYAGAIN not applied: not the leader"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
    // Demoting a node that is no voter is refused by the leader (not applied).
    let not_member =
        RawConnection::open(cluster.node(leader).client_addr).call(&[b"KETCH.DEMOTE", b"99"]);
    assert!(
        not_member.starts_with(b"-ERR ") && not_member.ends_with(b"not applied\r\n"),
        "{}",
        String::from_utf8_lossy(&not_member)
    );

    let id_text = demoted.to_string();
    admin_change(&cluster, &["demote", &id_text], |m| {
        m.get(&demoted).is_some_and(|(role, _)| role == "learner")
    });
    let (_, list) = members(&cluster);
    assert_eq!(voters(&list).len(), 2, "{list:?}");
    assert_eq!(list.len(), 3, "the demoted node stays a member: {list:?}");
    // Writes still commit, and the learner keeps replicating.
    wait_acked(&cluster, &acked, 50);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = members(&cluster);
        let leader_last = list.values().filter_map(|(_, m)| *m).max().unwrap_or(0);
        if list[&demoted].1.is_some_and(|m| m + 50 >= leader_last) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "learner {demoted} does not replicate: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    admin_change(&cluster, &["promote", &id_text], |m| {
        voters(m).contains(&demoted)
    });
    assert_eq!(voters(&members(&cluster).1).len(), 3);
    wait_acked(&cluster, &acked, 50);
    stop.store(true, Ordering::Release);
    writer.join().expect("writer thread");

    let acked = acked.lock().unwrap().clone();
    let mut client = cluster.client_starting_at(stays);
    for i in &acked {
        let value = client
            .get(format!("w{i}"))
            .expect("read an acknowledged write");
        assert_eq!(value, Some(i.to_string().into_bytes()), "write w{i} lost");
    }
    watchdog.store(true, Ordering::Release);
}

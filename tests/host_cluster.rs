//! Three hosts of many Raft groups in one process, over loopback TCP with real data directories
//! (`ketch::node::Host`).
//!
//! Each test arms a watchdog that aborts the process if it runs past its bound. Reproduce one
//! with `cargo test --release --test host_cluster <name> -- --nocapture`.

#[path = "harness/ports.rs"]
mod ports;
#[path = "harness/watchdog.rs"]
mod watchdog;
use watchdog::watchdog;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketch::node::{Group, GroupId, Host, HostConfig, ProposeError, StateMachine};
use ketch::raft::Role;
use ketch_storage::FaultInjector;

/// Tells the watchdog the test ended (when dropped, panicking or not).
struct Finished(Arc<AtomicBool>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A map of keys to values; `key=value` sets and answers the previous value, a query is a key.
#[derive(Default)]
struct Map {
    values: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl StateMachine for Map {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let at = command.iter().position(|b| *b == b'=').expect("key=value");
        let (key, value) = (&command[..at], &command[at + 1..]);
        self.values
            .insert(key.to_vec(), value.to_vec())
            .unwrap_or_default()
    }

    fn query(&mut self, query: &[u8]) -> Vec<u8> {
        self.values.get(query).cloned().unwrap_or_default()
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        for (key, value) in &self.values {
            out.write_all(&(key.len() as u32).to_le_bytes())?;
            out.write_all(key)?;
            out.write_all(&(value.len() as u32).to_le_bytes())?;
            out.write_all(value)?;
        }
        Ok(())
    }

    fn restore(&mut self, input: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        self.values.clear();
        let mut at = 0;
        let take = |at: &mut usize| {
            let len = u32::from_le_bytes(bytes[*at..*at + 4].try_into().unwrap()) as usize;
            let piece = bytes[*at + 4..*at + 4 + len].to_vec();
            *at += 4 + len;
            piece
        };
        while at < bytes.len() {
            let key = take(&mut at);
            let value = take(&mut at);
            self.values.insert(key, value);
        }
        Ok(())
    }
}

struct Hosts {
    addrs: BTreeMap<u64, SocketAddr>,
    dirs: BTreeMap<u64, PathBuf>,
    hosts: BTreeMap<u64, Host>,
    snapshot_threshold_entries: u64,
    /// Each host's log fault injector (disarmed unless a test arms it).
    faults: BTreeMap<u64, Arc<FaultInjector>>,
    /// What a test changes in every host's configuration (a disk-stall bound, timeouts).
    tune: Box<dyn Fn(&mut HostConfig) + Send + Sync>,
    _root: tempfile::TempDir,
}

impl Hosts {
    fn new(count: u64, snapshot_threshold_entries: u64) -> Hosts {
        Self::with_config(count, snapshot_threshold_entries, |_| {})
    }

    fn with_config(
        count: u64,
        snapshot_threshold_entries: u64,
        tune: impl Fn(&mut HostConfig) + Send + Sync + 'static,
    ) -> Hosts {
        let root = tempfile::tempdir().unwrap();
        let addrs = ports::node_addrs(count);
        let dirs = addrs
            .keys()
            .map(|id| (*id, root.path().join(format!("host-{id}"))))
            .collect();
        let mut hosts = Hosts {
            addrs,
            dirs,
            hosts: BTreeMap::new(),
            snapshot_threshold_entries,
            faults: (1..=count)
                .map(|id| (id, Arc::new(FaultInjector::default())))
                .collect(),
            tune: Box::new(tune),
            _root: root,
        };
        for id in 1..=count {
            hosts.start(id);
        }
        hosts
    }

    fn config(&self, id: u64) -> HostConfig {
        let mut config = HostConfig::new(id, 77, self.addrs.clone(), self.addrs[&id]);
        config.raft.snapshot_threshold_entries = self.snapshot_threshold_entries;
        config.log.fault_injector = Some(Arc::clone(&self.faults[&id]));
        (self.tune)(&mut config);
        config
    }

    fn start(&mut self, id: u64) {
        let host = Host::start(self.config(id), &self.dirs[&id], |_group| Map::default())
            .expect("host starts");
        self.hosts.insert(id, host);
    }

    fn stop(&mut self, id: u64) {
        let host = self.hosts.remove(&id).expect("running");
        host.shutdown().expect("clean shutdown");
    }

    fn create_groups(&self, groups: impl Iterator<Item = GroupId> + Clone) {
        let voters: Vec<u64> = self.addrs.keys().copied().collect();
        for host in self.hosts.values() {
            for group in groups.clone() {
                host.create_group(group, &voters).expect("group created");
            }
        }
    }

    /// The leader of every group in `groups` once each has exactly one, as the running hosts
    /// see it.
    fn leaders(&self, groups: &[GroupId], within: Duration) -> HashMap<GroupId, u64> {
        let deadline = Instant::now() + within;
        loop {
            let mut leaders = HashMap::new();
            for group in groups {
                let leading: Vec<u64> = self
                    .hosts
                    .iter()
                    .filter(|(_, host)| {
                        host.group(*group)
                            .and_then(|g| g.status())
                            .is_some_and(|s| s.role == Role::Leader)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                if leading.len() == 1 {
                    leaders.insert(*group, leading[0]);
                }
            }
            if leaders.len() == groups.len() {
                return leaders;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {} groups have one leader after {within:?}",
                leaders.len(),
                groups.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn group(&self, host: u64, group: GroupId) -> Group {
        self.hosts[&host].group(group).expect("group on host")
    }

    /// Proposes `key=value` to `group` at its leader, retrying while leadership moves; returns
    /// once acknowledged.
    fn write(&self, group: GroupId, key: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let command = format!("{key}={value}").into_bytes();
        loop {
            let leaders = self.leaders(&[group], Duration::from_secs(20));
            match self.group(leaders[&group], group).propose(command.clone()) {
                Ok(_) => return,
                Err(ProposeError::NotLeader { .. } | ProposeError::Backpressure) => {}
                Err(e) => panic!("group {group}: writing {key}: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "group {group}: no write of {key}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn many_groups_elect_leaders_commit_and_read_on_every_host() {
    let _done = Finished(watchdog(
        "many_groups_elect_leaders_commit_and_read_on_every_host",
        Duration::from_secs(120),
    ));
    let hosts = Hosts::new(3, 10_000);
    let groups: Vec<GroupId> = (1..=200).collect();
    hosts.create_groups(groups.iter().copied());
    let leaders = hosts.leaders(&groups, Duration::from_secs(30));
    for group in &groups {
        hosts.write(*group, "k", &format!("v{group}"));
    }
    // Every host answers every group's read with that group's own value: no group sees
    // another's commands.
    for (host_id, host) in &hosts.hosts {
        for group in &groups {
            let answer = host.group(*group).unwrap().read(b"k".to_vec());
            assert_eq!(
                answer.as_deref(),
                Ok(format!("v{group}").as_bytes()),
                "group {group} on host {host_id}"
            );
        }
    }
    let status = hosts.hosts[&1].status();
    assert_eq!(status.groups, 200);
    assert!(status.participating);
    let led: usize = hosts.hosts.values().map(|h| h.status().leaders).sum();
    assert_eq!(led, groups.len(), "{leaders:?}");
    // One flush covers many groups' writes: far fewer fsyncs than groups written.
    assert!(
        status.writer.groups_per_round_sum > status.writer.fsyncs,
        "{status:?}"
    );
}

#[test]
fn a_restarted_host_brings_back_every_group_and_loses_nothing_acknowledged() {
    let _done = Finished(watchdog(
        "a_restarted_host_brings_back_every_group_and_loses_nothing_acknowledged",
        Duration::from_secs(120),
    ));
    // A low snapshot threshold: some groups restart from a snapshot plus a log suffix.
    let mut hosts = Hosts::new(3, 16);
    let groups: Vec<GroupId> = (10..40).collect();
    hosts.create_groups(groups.iter().copied());
    hosts.leaders(&groups, Duration::from_secs(30));
    for round in 0..30 {
        for group in &groups {
            hosts.write(
                *group,
                &format!("k{}", round % 5),
                &format!("{group}-{round}"),
            );
        }
    }
    for id in [1, 2, 3] {
        hosts.stop(id);
        hosts.start(id);
        assert_eq!(hosts.hosts[&id].groups(), groups, "host {id} after restart");
        hosts.leaders(&groups, Duration::from_secs(30));
    }
    for group in &groups {
        hosts.write(*group, "after", "restart");
    }
    for (host_id, host) in &hosts.hosts {
        for group in &groups {
            let g = host.group(*group).unwrap();
            for key in 0..5 {
                let expected = format!("{group}-{}", 25 + key);
                assert_eq!(
                    g.read(format!("k{key}").into_bytes()).as_deref(),
                    Ok(expected.as_bytes()),
                    "group {group} key k{key} on host {host_id}"
                );
            }
        }
    }
}

#[test]
fn a_removed_group_never_comes_back() {
    let _done = Finished(watchdog(
        "a_removed_group_never_comes_back",
        Duration::from_secs(120),
    ));
    let mut hosts = Hosts::new(3, 10_000);
    let groups: Vec<GroupId> = (1..=5).collect();
    hosts.create_groups(groups.iter().copied());
    hosts.leaders(&groups, Duration::from_secs(30));
    hosts.write(3, "k", "v");
    // Removed on one host first: the others keep sending it messages, which are dropped.
    hosts.hosts[&1].remove_group(3).unwrap();
    assert!(hosts.hosts[&1].group(3).is_none());
    std::thread::sleep(Duration::from_millis(500));
    assert!(hosts.hosts[&1].status().messages_unrouted > 0);
    let refused = hosts.hosts[&1].create_group(3, &[1, 2, 3]).unwrap_err();
    assert!(refused.to_string().contains("removed"), "{refused}");
    hosts.stop(1);
    hosts.start(1);
    assert!(hosts.hosts[&1].group(3).is_none());
    assert_eq!(hosts.hosts[&1].groups(), vec![1, 2, 4, 5]);
    assert!(!hosts.dirs[&1].join("snapshots/3").exists());
    // The others still hold it.
    assert!(hosts.hosts[&2].group(3).is_some());
}

#[test]
fn killing_a_host_fails_over_every_group_it_led_and_loses_nothing() {
    let _done = Finished(watchdog(
        "killing_a_host_fails_over_every_group_it_led_and_loses_nothing",
        Duration::from_secs(120),
    ));
    let mut hosts = Hosts::new(3, 10_000);
    let groups: Vec<GroupId> = (1..=60).collect();
    hosts.create_groups(groups.iter().copied());
    let leaders = hosts.leaders(&groups, Duration::from_secs(30));
    for group in &groups {
        hosts.write(*group, "k", "before");
    }
    let victim = leaders[&1];
    let led: Vec<GroupId> = leaders
        .iter()
        .filter(|(_, leader)| **leader == victim)
        .map(|(group, _)| *group)
        .collect();
    assert!(!led.is_empty());
    hosts.stop(victim);
    let started = Instant::now();
    let after = hosts.leaders(&groups, Duration::from_secs(30));
    eprintln!(
        "{} groups led by host {victim} have new leaders after {:?}",
        led.len(),
        started.elapsed()
    );
    assert!(after.values().all(|leader| *leader != victim));
    for group in &groups {
        let leader = after[group];
        let g = hosts.group(leader, *group);
        assert_eq!(
            g.read(b"k".to_vec()).as_deref(),
            Ok(&b"before"[..]),
            "group {group}"
        );
        hosts.write(*group, "k", "after");
    }
    hosts.start(victim);
    hosts.leaders(&groups, Duration::from_secs(30));
    for group in &groups {
        let g = hosts.group(victim, *group);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if g.read(b"k".to_vec()).as_deref() == Ok(&b"after"[..]) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "group {group} on the restarted host"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_node_data_directory_is_refused() {
    let _done = Finished(watchdog(
        "a_node_data_directory_is_refused",
        Duration::from_secs(30),
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000001-0000000000000001.wal"), b"").unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = HostConfig::new(1, 1, [(1, addr)].into_iter().collect(), addr);
    let error = Host::start(config, dir.path(), |_| Map::default()).unwrap_err();
    assert!(error.to_string().contains("single-group node"), "{error}");
}

/// Waits until `done` holds, polling; panics with `what` after `within`.
fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_groups_quiesce_wake_on_demand_and_fail_over_when_their_leaders_host_dies() {
    let _done = Finished(watchdog(
        "idle_groups_quiesce_wake_on_demand_and_fail_over_when_their_leaders_host_dies",
        Duration::from_secs(240),
    ));
    let mut hosts = Hosts::new(3, 10_000);
    let groups: Vec<GroupId> = (1..=100).collect();
    hosts.create_groups(groups.iter().copied());
    hosts.leaders(&groups, Duration::from_secs(30));
    for group in &groups {
        hosts.write(*group, "k", "v1");
    }
    // Idle: every replica of every group quiesces (leaders and followers).
    wait_until(Duration::from_secs(20), "all replicas quiesced", || {
        hosts
            .hosts
            .values()
            .all(|h| h.status().quiesced == groups.len())
    });
    // A write wakes its group and commits; the group quiesces again afterwards.
    hosts.write(7, "k", "v2");
    assert_eq!(
        hosts.group(1, 7).read(b"k".to_vec()).as_deref(),
        Ok(&b"v2"[..])
    );
    // The host leading the most groups dies while they sleep: its followers hear its host
    // go silent, wake, and elect new leaders.
    wait_until(
        Duration::from_secs(20),
        "all replicas quiesced again",
        || {
            hosts
                .hosts
                .values()
                .all(|h| h.status().quiesced == groups.len())
        },
    );
    let leaders = hosts.leaders(&groups, Duration::from_secs(5));
    let victim = (1..=3)
        .max_by_key(|id| leaders.values().filter(|l| *l == id).count())
        .unwrap();
    hosts.stop(victim);
    let started = Instant::now();
    let after = hosts.leaders(&groups, Duration::from_secs(30));
    eprintln!(
        "quiesced groups have new leaders {:?} after their leader's host stopped",
        started.elapsed()
    );
    assert!(after.values().all(|l| *l != victim));
    for group in &groups {
        let expected: &[u8] = if *group == 7 { b"v2" } else { b"v1" };
        assert_eq!(
            hosts
                .group(after[group], *group)
                .read(b"k".to_vec())
                .as_deref(),
            Ok(expected),
            "group {group}"
        );
    }
    // Every group now has a follower on the stopped host that lags (the new leaders' first
    // entries, the writes below): the groups quiesce all the same.
    for group in &groups {
        hosts.write(*group, "k", "v3");
    }
    wait_until(
        Duration::from_secs(30),
        "every group quiesced on the surviving hosts, with a follower on a lost host",
        || {
            hosts
                .hosts
                .values()
                .all(|h| h.status().quiesced == groups.len())
        },
    );
    // The host comes back: its replicas catch up and every group quiesces again, on all three.
    hosts.start(victim);
    wait_until(
        Duration::from_secs(60),
        "the restarted host's replicas caught up and every replica quiesced",
        || {
            groups.iter().all(|group| {
                let leader = hosts.group(after[group], *group).status();
                let back = hosts.group(victim, *group).status();
                matches!((leader, back), (Some(l), Some(b))
                    if b.applied == l.last_index && b.last_index == l.last_index)
            }) && hosts
                .hosts
                .values()
                .all(|h| h.status().quiesced == groups.len())
        },
    );
    for group in &groups {
        assert_eq!(
            hosts.group(victim, *group).read(b"k".to_vec()).as_deref(),
            Ok(&b"v3"[..]),
            "group {group} read through the restarted host"
        );
    }
}

#[test]
fn a_thousand_groups_are_created_and_each_commits() {
    let _done = Finished(watchdog(
        "a_thousand_groups_are_created_and_each_commits",
        Duration::from_secs(240),
    ));
    let hosts = Hosts::new(3, 10_000);
    let groups: Vec<GroupId> = (1..=1000).collect();
    let started = Instant::now();
    hosts.create_groups(groups.iter().copied());
    let leaders = hosts.leaders(&groups, Duration::from_secs(120));
    eprintln!("1,000 groups created and led after {:?}", started.elapsed());
    for group in &groups {
        hosts.write(*group, "k", &group.to_string());
    }
    for group in groups.iter().step_by(97) {
        assert_eq!(
            hosts
                .group(leaders[group], *group)
                .read(b"k".to_vec())
                .as_deref(),
            Ok(group.to_string().as_bytes())
        );
    }
    for host in hosts.hosts.values() {
        assert_eq!(host.status().groups, 1000);
    }
}

#[test]
fn one_groups_membership_changes_while_the_others_run() {
    use ketch::raft::ConfChange;
    let _done = Finished(watchdog(
        "one_groups_membership_changes_while_the_others_run",
        Duration::from_secs(120),
    ));
    let hosts = Hosts::new(3, 10_000);
    let groups: Vec<GroupId> = (1..=20).collect();
    hosts.create_groups(groups.iter().copied());
    let leaders = hosts.leaders(&groups, Duration::from_secs(30));
    // Group 5 drops one follower to become a two-voter group.
    let leader = leaders[&5];
    let dropped = (1..=3).find(|id| *id != leader).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    hosts
        .group(leader, 5)
        .change_membership(ConfChange::Remove(dropped), move |r| {
            let _ = tx.send(r);
        });
    let writer = std::thread::scope(|scope| {
        let writes = scope.spawn(|| {
            for round in 0..20 {
                for group in &groups {
                    hosts.write(*group, "k", &format!("{round}"));
                }
            }
        });
        let changed = rx.recv_timeout(Duration::from_secs(30)).expect("an answer");
        writes.join().unwrap();
        changed
    });
    writer.expect("membership change of group 5");
    let status = hosts.group(leader, 5).status().unwrap();
    assert!(!status.membership.voters.contains(&dropped), "{status:?}");
    for group in &groups {
        let leaders = hosts.leaders(&[*group], Duration::from_secs(10));
        assert_eq!(
            hosts
                .group(leaders[group], *group)
                .read(b"k".to_vec())
                .as_deref(),
            Ok(&b"19"[..]),
            "group {group}"
        );
    }
}

/// A host whose disk stalls (every fsync takes seconds) sends nothing, host beats included:
/// the groups it led elect leaders on the other hosts and take writes while the stall lasts,
/// and once its disk recovers it catches up, with nothing acknowledged lost.
#[test]
fn a_host_with_a_stalled_disk_hands_over_its_groups_and_catches_up() {
    let _done = Finished(watchdog(
        "a_host_with_a_stalled_disk_hands_over_its_groups_and_catches_up",
        Duration::from_secs(120),
    ));
    let stall_bound = Duration::from_millis(300);
    let hosts = Hosts::with_config(3, 10_000, move |config| {
        config.disk_stall_timeout = stall_bound;
    });
    let groups: Vec<GroupId> = (1..=12).collect();
    hosts.create_groups(groups.iter().copied());
    let leaders = hosts.leaders(&groups, Duration::from_secs(30));
    for group in &groups {
        hosts.write(*group, "k", "before");
    }
    let victim = leaders[&1];
    let led: Vec<GroupId> = groups
        .iter()
        .copied()
        .filter(|group| leaders[group] == victim)
        .collect();
    assert!(!hosts.hosts[&victim].status().disk_stalled);

    hosts.faults[&victim].stall_syncs(stall_bound * 5);
    // Writes at the victim's leaders give its writer work it cannot finish.
    for group in &led {
        hosts.group(victim, *group).submit(b"k=during".to_vec());
    }
    wait_until(
        Duration::from_secs(10),
        "the victim reports its disk stalled",
        || hosts.hosts[&victim].status().disk_stalled,
    );
    // The others elect leaders for the victim's groups and take writes meanwhile.
    let healthy: Vec<u64> = hosts
        .addrs
        .keys()
        .copied()
        .filter(|id| *id != victim)
        .collect();
    for group in &led {
        wait_until(
            Duration::from_secs(15),
            "a healthy host leads the group",
            || {
                healthy.iter().any(|id| {
                    hosts
                        .group(*id, *group)
                        .status()
                        .is_some_and(|s| s.role == Role::Leader)
                })
            },
        );
    }
    for group in &groups {
        hosts.write(*group, "k", "after");
    }
    assert!(hosts.faults[&victim].syncs_stalled());
    assert!(
        led.iter()
            .all(|group| { hosts.leaders(&[*group], Duration::from_secs(15))[group] != victim }),
        "a group still led by the stalled host"
    );

    hosts.faults[&victim].clear();
    wait_until(
        Duration::from_secs(15),
        "the victim's writes complete again",
        || !hosts.hosts[&victim].status().disk_stalled,
    );
    for group in &groups {
        let g = hosts.group(victim, *group);
        wait_until(Duration::from_secs(15), "the victim catches up", || {
            g.read(b"k".to_vec()).as_deref() == Ok(&b"after"[..])
        });
    }
}

/// Elections of 3-6 s (300-600 ticks of 10 ms): a test whose premise is that leadership
/// stays put must hold on a loaded machine, where the test thread alone can be descheduled
/// for longer than the default 300 ms.
fn slow_elections(config: &mut HostConfig) {
    config.raft.election_timeout_ticks = 300;
}

/// A host other than `leader` whose replica of `group` follows `leader`.
fn follower_of(hosts: &Hosts, group: GroupId, leader: u64) -> u64 {
    let follower = *hosts
        .hosts
        .keys()
        .find(|id| **id != leader)
        .expect("another host");
    wait_until(
        Duration::from_secs(10),
        "the follower knows the leader",
        || {
            hosts
                .group(follower, group)
                .status()
                .is_some_and(|s| s.leader == Some(leader))
        },
    );
    follower
}

/// Answers of `submit_with` calls, by the number each call was given.
type Answers = Arc<std::sync::Mutex<Vec<(u64, Result<Vec<u8>, ProposeError>)>>>;

fn answer_into(answers: &Answers, n: u64) -> impl FnOnce(Result<Vec<u8>, ProposeError>) {
    let answers = Arc::clone(answers);
    move |result| answers.lock().unwrap().push((n, result))
}

#[test]
fn a_proposal_on_a_follower_is_forwarded_applied_once_and_answered_with_its_result() {
    let _done = Finished(watchdog(
        "a_proposal_on_a_follower_is_forwarded_applied_once_and_answered_with_its_result",
        Duration::from_secs(120),
    ));
    let hosts = Hosts::with_config(3, 10_000, slow_elections);
    let groups: Vec<GroupId> = (1..=4).collect();
    hosts.create_groups(groups.iter().copied());
    let leaders = hosts.leaders(&groups, Duration::from_secs(60));
    for group in &groups {
        let leader = leaders[group];
        let follower = follower_of(&hosts, *group, leader);
        let on_leader = hosts.group(leader, *group);
        let on_follower = hosts.group(follower, *group);
        let before = on_leader.status().unwrap().last_index;
        // The answer is the leader's state machine's: the value each write replaced.
        assert_eq!(
            on_follower.propose(b"k=v1".to_vec()),
            Ok(Vec::new()),
            "group {group}"
        );
        assert_eq!(
            on_follower.propose(b"k=v2".to_vec()),
            Ok(b"v1".to_vec()),
            "group {group}"
        );
        let answers = Answers::default();
        for n in 0..50 {
            on_follower.submit_with(
                format!("n{n}={group}").into_bytes(),
                answer_into(&answers, n),
            );
        }
        wait_until(Duration::from_secs(20), "every forward answered", || {
            answers.lock().unwrap().len() == 50
        });
        for (n, answer) in answers.lock().unwrap().iter() {
            assert_eq!(answer, &Ok(Vec::new()), "group {group}, forward {n}");
        }
        // One entry per proposal at the (unchanged) leader: each applied once, none retried.
        assert_eq!(
            on_leader.status().unwrap().last_index,
            before + 52,
            "group {group}"
        );
        assert_eq!(
            on_leader.read(b"k".to_vec()).as_deref(),
            Ok(&b"v2"[..]),
            "group {group}"
        );
        assert_eq!(
            on_leader.read(b"n49".to_vec()),
            Ok(group.to_string().into_bytes()),
            "group {group}"
        );
    }
    for (id, host) in &hosts.hosts {
        assert_eq!(host.status().forwards_in_flight, 0, "host {id}");
    }
}

#[test]
fn a_forward_for_a_group_the_leaders_host_does_not_hold_is_certainly_not_applied() {
    let _done = Finished(watchdog(
        "a_forward_for_a_group_the_leaders_host_does_not_hold_is_certainly_not_applied",
        Duration::from_secs(120),
    ));
    let hosts = Hosts::with_config(3, 10_000, slow_elections);
    hosts.create_groups([1, 2].into_iter());
    let leader = hosts.leaders(&[1, 2], Duration::from_secs(60))[&1];
    let follower = follower_of(&hosts, 1, leader);
    hosts.hosts[&leader].remove_group(1).unwrap();
    let received_before = hosts.hosts[&leader].status().transport.forwards_received;
    // The follower still takes the removed replica for the leader (for an election timeout,
    // 3 s or more), so it forwards; the leader's host answers without creating the group.
    let answer = hosts.group(follower, 1).propose(b"k=v".to_vec());
    assert_eq!(answer, Err(ProposeError::NotLeader { leader_hint: None }));
    // (The leader's host publishes its counters every few milliseconds.)
    wait_until(Duration::from_secs(5), "the proposal was forwarded", || {
        hosts.hosts[&leader].status().transport.forwards_received > received_before
    });
    assert!(hosts.hosts[&leader].group(1).is_none());
    assert_eq!(hosts.hosts[&leader].groups(), vec![2]);
}

/// The Host version of `node_cluster`'s isolated-leader forward test: forwards in flight at a
/// leader whose host stops answer only "may have been applied".
#[test]
fn forwards_in_flight_when_the_leaders_host_stops_may_have_been_applied_never_certainly_not() {
    let _done = Finished(watchdog(
        "forwards_in_flight_when_the_leaders_host_stops_may_have_been_applied_never_certainly_not",
        Duration::from_secs(120),
    ));
    let mut hosts = Hosts::with_config(3, 10_000, slow_elections);
    hosts.create_groups([1].into_iter());
    let leader = hosts.leaders(&[1], Duration::from_secs(60))[&1];
    let follower = follower_of(&hosts, 1, leader);
    let third = *hosts
        .hosts
        .keys()
        .find(|id| **id != leader && **id != follower)
        .unwrap();
    hosts.write(1, "k", "before");
    // Without the third host, a commit needs the leader's own write, which stalls: the
    // forwards stay pending at the leader until its host stops.
    hosts.stop(third);
    hosts.faults[&leader].stall_syncs(Duration::from_secs(2));
    let answers = Answers::default();
    let on_follower = hosts.group(follower, 1);
    for n in 0..20 {
        on_follower.submit_with(format!("k{n}=v").into_bytes(), answer_into(&answers, n));
    }
    wait_until(
        Duration::from_secs(10),
        "every forward pending at the leader",
        || hosts.hosts[&leader].status().pending_proposals == 20,
    );
    assert_eq!(hosts.hosts[&follower].status().forwards_in_flight, 20);
    assert!(answers.lock().unwrap().is_empty());
    hosts.stop(leader);
    wait_until(Duration::from_secs(20), "every forward answered", || {
        answers.lock().unwrap().len() == 20
    });
    let answers = answers.lock().unwrap();
    let mut numbers: Vec<u64> = answers.iter().map(|(n, _)| *n).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..20).collect::<Vec<_>>(), "each answered once");
    for (n, answer) in answers.iter() {
        assert!(
            matches!(
                answer,
                Err(ProposeError::LeaderLost | ProposeError::Timeout)
            ),
            "forward {n}, in flight when the leader's host stopped, answered {answer:?}; it \
             must say 'may have been applied'"
        );
    }
    assert_eq!(hosts.hosts[&follower].status().forwards_in_flight, 0);
}

#[test]
fn a_forward_to_a_quiesced_group_wakes_it_and_commits() {
    let _done = Finished(watchdog(
        "a_forward_to_a_quiesced_group_wakes_it_and_commits",
        Duration::from_secs(120),
    ));
    let hosts = Hosts::new(3, 10_000);
    let groups: Vec<GroupId> = (1..=10).collect();
    hosts.create_groups(groups.iter().copied());
    hosts.leaders(&groups, Duration::from_secs(30));
    for group in &groups {
        hosts.write(*group, "k", "v1");
    }
    let all_quiesced = || {
        hosts
            .hosts
            .values()
            .all(|h| h.status().quiesced == groups.len())
    };
    wait_until(
        Duration::from_secs(20),
        "all replicas quiesced",
        &all_quiesced,
    );
    let leader = hosts.leaders(&[3], Duration::from_secs(5))[&3];
    let follower = follower_of(&hosts, 3, leader);
    assert_eq!(
        hosts.group(follower, 3).propose(b"k=v2".to_vec()),
        Ok(b"v1".to_vec())
    );
    assert_eq!(
        hosts.group(leader, 3).read(b"k".to_vec()).as_deref(),
        Ok(&b"v2"[..])
    );
    // Nothing is left waiting that would keep the group awake.
    wait_until(
        Duration::from_secs(20),
        "all replicas quiesced again",
        &all_quiesced,
    );
    for (id, host) in &hosts.hosts {
        assert_eq!(host.status().forwards_in_flight, 0, "host {id}");
    }
}

/// Moves `group`'s leadership to host `target`, retrying a transfer that times out on a
/// loaded machine.
fn lead_from(hosts: &Hosts, group: GroupId, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leader = hosts.leaders(&[group], Duration::from_secs(20))[&group];
        if leader == target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group}: leadership does not move to host {target}"
        );
        let (done, answer) = std::sync::mpsc::channel();
        hosts
            .group(leader, group)
            .transfer_leadership(target, move |result| {
                let _ = done.send(result);
            });
        let _ = answer.recv_timeout(Duration::from_secs(10));
    }
}

/// A replica created after its group compacted its log catches up from the leader's snapshot
/// (about 1 MiB in 64 KiB chunks) at the leader host's snapshot budget of 256 KiB/s: the
/// transfer takes at least about size / rate. Meanwhile the other groups led from the same
/// host, with replicas on the same follower host, keep committing with no election: chunks
/// wait for the budget, their heartbeats and appends do not. The new replica ends with the
/// leader's state.
#[test]
fn a_lagging_replica_catches_up_by_a_paced_snapshot_while_other_groups_commit() {
    let _done = Finished(watchdog(
        "a_lagging_replica_catches_up_by_a_paced_snapshot_while_other_groups_commit",
        Duration::from_secs(240),
    ));
    const RATE_BYTES_PER_SEC: u64 = 256 << 10;
    const VALUE_BYTES: usize = 16 << 10;
    const KEYS: usize = 64;
    let hosts = Hosts::with_config(3, 16, |config| {
        slow_elections(config);
        config.snapshot_bytes_per_sec = RATE_BYTES_PER_SEC;
        config.raft.snapshot_chunk_bytes = 64 << 10;
    });
    let busy: Vec<GroupId> = (1..=4).collect();
    hosts.create_groups(busy.iter().copied());
    // Created on hosts 1 and 2 only, a quorum of its three voters: host 3's replica comes
    // later, with nothing, after the log it needs is compacted away.
    let lagging: GroupId = 9;
    for id in [1, 2] {
        hosts.hosts[&id].create_group(lagging, &[1, 2, 3]).unwrap();
    }
    let sender = hosts.leaders(&[lagging], Duration::from_secs(30))[&lagging];
    // Random bytes: the snapshot file is compressed, and its size on the wire is the point.
    let value = |key: usize| -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ key as u64;
        (0..VALUE_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    };
    for key in 0..KEYS {
        let mut command = format!("k{key}=").into_bytes();
        command.extend(value(key));
        let written = hosts.group(sender, lagging).propose(command);
        assert!(written.is_ok(), "k{key}: {written:?}");
    }
    // Enough small writes after them that the newest snapshot holds every large value.
    for n in 0..20 {
        hosts.write(lagging, "tail", &n.to_string());
    }
    let target = hosts.group(sender, lagging).status().unwrap().commit;
    for group in &busy {
        lead_from(&hosts, *group, sender);
        hosts.write(*group, "k", "before");
    }
    let terms_of = |group: GroupId, on: &[u64]| -> Vec<u64> {
        on.iter()
            .map(|id| hosts.group(*id, group).status().unwrap().term)
            .collect()
    };
    let busy_terms: Vec<Vec<u64>> = busy.iter().map(|g| terms_of(*g, &[1, 2, 3])).collect();
    let lagging_terms = terms_of(lagging, &[1, 2]);
    let before = hosts.hosts[&sender].status();

    let started = Instant::now();
    hosts.hosts[&3].create_group(lagging, &[1, 2, 3]).unwrap();
    let caught_up = AtomicBool::new(false);
    let commits_during: Vec<u64> = std::thread::scope(|scope| {
        let writers: Vec<_> = busy
            .iter()
            .map(|group| {
                let g = hosts.group(sender, *group);
                let caught_up = &caught_up;
                scope.spawn(move || {
                    let mut commits = 0;
                    while !caught_up.load(Ordering::Acquire) {
                        let command = format!("k={commits}").into_bytes();
                        if let Err(e) = g.propose(command) {
                            panic!("group {}: a write during the transfer: {e}", g.id());
                        }
                        commits += 1;
                    }
                    commits
                })
            })
            .collect();
        wait_until(
            Duration::from_secs(120),
            "the new replica applies the snapshot",
            || {
                hosts
                    .group(3, lagging)
                    .status()
                    .is_some_and(|s| s.applied >= target)
            },
        );
        caught_up.store(true, Ordering::Release);
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let took = started.elapsed();
    let after = hosts.hosts[&sender].status();
    let ideal = Duration::from_secs_f64((KEYS * VALUE_BYTES) as f64 / RATE_BYTES_PER_SEC as f64);
    eprintln!(
        "{} snapshot bytes in {took:?} (ideal {ideal:?}), {} chunks delayed; commits of the \
         other groups meanwhile: {commits_during:?}",
        after.snapshot_bytes_sent - before.snapshot_bytes_sent,
        after.snapshot_chunks_delayed - before.snapshot_chunks_delayed,
    );
    assert!(
        after.snapshot_bytes_sent - before.snapshot_bytes_sent >= (KEYS * VALUE_BYTES) as u64,
        "the replica caught up by a snapshot of every value: {before:?} then {after:?}"
    );
    assert!(
        after.snapshot_chunks_delayed > before.snapshot_chunks_delayed,
        "{after:?}"
    );
    assert!(
        took >= ideal.mul_f64(0.6),
        "{took:?} for {ideal:?} at the rate"
    );
    for (group, commits) in busy.iter().zip(&commits_during) {
        assert!(*commits >= 3, "group {group} committed {commits} meanwhile");
    }
    for (group, terms) in busy.iter().zip(&busy_terms) {
        assert_eq!(
            &terms_of(*group, &[1, 2, 3]),
            terms,
            "group {group}: an election"
        );
    }
    assert_eq!(
        terms_of(lagging, &[1, 2]),
        lagging_terms,
        "the lagging group"
    );
    let replica = hosts.group(3, lagging);
    for key in 0..KEYS {
        assert_eq!(
            replica.read(format!("k{key}").into_bytes()).as_deref(),
            Ok(&value(key)[..]),
            "k{key} on the new replica"
        );
    }
    assert_eq!(replica.read(b"tail".to_vec()).as_deref(), Ok(&b"19"[..]));
    wait_until(Duration::from_secs(10), "no chunk left waiting", || {
        hosts.hosts[&sender].status().snapshot_chunks_held == 0
    });
}

/// A group created from a state on two hosts starts there as identical replicas at the
/// state's index, with nothing sent; the third host, which creates it empty, cannot lead it
/// and is sent the state by snapshot. Writes apply on top of the state on every host, a
/// repeated call returns the group without writing a state again, and restarts bring the
/// group back from its snapshot and log.
#[test]
fn a_group_created_with_a_state_starts_from_it_and_an_empty_voter_gets_it_by_snapshot() {
    let _finished = Finished(watchdog("created_with_state", Duration::from_secs(120)));
    let mut hosts = Hosts::new(3, 1000);
    let group: GroupId = 7;
    let voters = [1, 2, 3];
    let mut initial = Map::default();
    initial.values.insert(b"a".to_vec(), b"1".to_vec());
    initial.values.insert(b"b".to_vec(), b"2".to_vec());
    let mut state = Vec::new();
    initial.snapshot(&mut state).unwrap();
    let refused = hosts.hosts[&1].create_group_with_state(group, &voters, 0, 5, &mut |_| Ok(()));
    assert!(refused.is_err(), "index 0 is refused");
    for id in [1, 2] {
        hosts.hosts[&id]
            .create_group_with_state(group, &voters, 5, 5, &mut |out| out.write_all(&state))
            .expect("created with the state");
        let status = hosts.group(id, group).status().expect("status");
        assert_eq!(
            (status.commit, status.last_index),
            (5, 5),
            "host {id} starts at the state's index"
        );
    }
    hosts.hosts[&3]
        .create_group(group, &voters)
        .expect("created empty");
    let leader = hosts.leaders(&[group], Duration::from_secs(20))[&group];
    assert_ne!(leader, 3, "the empty replica cannot win an election");
    hosts.write(group, "c", "3");
    let read = |hosts: &Hosts, id: u64, key: &str| hosts.group(id, group).read(key.into());
    for id in 1..=3 {
        wait_until(Duration::from_secs(20), "the state on every host", || {
            ["a", "b", "c"]
                .iter()
                .zip(["1", "2", "3"])
                .all(|(key, value)| read(&hosts, id, key).is_ok_and(|v| v == value.as_bytes()))
        });
        let status = hosts.group(id, group).status().expect("status");
        assert!(status.applied >= 6, "host {id} applied {}", status.applied);
    }
    hosts.hosts[&1]
        .create_group_with_state(group, &voters, 5, 5, &mut |_| panic!("state written twice"))
        .expect("the existing group's handle");
    for id in [1, 3] {
        hosts.stop(id);
        hosts.start(id);
    }
    hosts.write(group, "d", "4");
    for id in 1..=3 {
        wait_until(Duration::from_secs(20), "the state after restarts", || {
            ["a", "c", "d"]
                .iter()
                .zip(["1", "3", "4"])
                .all(|(key, value)| read(&hosts, id, key).is_ok_and(|v| v == value.as_bytes()))
        });
    }
}

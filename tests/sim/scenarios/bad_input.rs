//! Bad peer input, scripted: inconsistent messages are counted and dropped, and arbitrary ones
//! never panic the core.

use ketch::raft::{
    ConfChange, Entry, EntryKind, Membership, Message, MessageBody, NodeId, SnapshotMeta,
    SplitMix64,
};

use super::{core, elect, followers, LIVENESS_BOUND_TICKS};
use crate::cluster::{Cluster, RunReport, SimConfig};

/// A forged append of an entry that contradicts the committed log, and a heartbeat from a
/// second leader of the same term, are counted as inconsistent and change nothing.
pub fn inconsistent_input_is_counted_not_fatal(seed: u64) -> RunReport {
    let mut c = Cluster::new(SimConfig::lockstep(3), seed);
    let leader = elect(&mut c);
    core(&mut c, leader).propose(b"a".to_vec()).unwrap();
    c.tick_all(2);
    let f = followers(&c, leader);
    let (follower, other) = (f[0], f[1]);
    let term = core(&mut c, follower).term();
    let commit = core(&mut c, follower).log().commit();
    assert!(commit >= 2);
    let bogus = Message {
        from: leader,
        to: follower,
        term,
        body: MessageBody::Append {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![Entry {
                term: 0,
                index: 1,
                kind: EntryKind::Normal,
                data: b"evil".to_vec().into(),
            }],
            leader_commit: 1,
        },
    };
    core(&mut c, follower).step(bogus);
    assert_eq!(core(&mut c, follower).stats().inconsistent_messages, 1);
    assert_eq!(core(&mut c, follower).log().commit(), commit);
    // A message claiming a second leader in the same term is refused too.
    core(&mut c, follower).step(Message {
        from: other,
        to: follower,
        term,
        body: MessageBody::Heartbeat {
            commit: 100,
            round: 1,
        },
    });
    assert_eq!(core(&mut c, follower).stats().inconsistent_messages, 2);
    c.finish(LIVENESS_BOUND_TICKS)
}

/// Ten rounds of 200 arbitrary messages (ids, terms and indices near 0, near `u64::MAX` and
/// in between; configuration entries that are valid, joint or garbage), stepped into the
/// cores of a fresh cluster, elected or not, with the odd tick and membership change between
/// them. Only "no panic" is checked: against forgeries no safety property holds, so the
/// messages and `Ready`s bypass the driver, and the run ends without `Cluster::finish`.
pub fn arbitrary_peer_messages_never_panic(seed: u64) -> RunReport {
    let mut rng = SplitMix64::new(seed);
    let mut report = RunReport::default();
    for round in 0..10 {
        let mut c = Cluster::new(SimConfig::lockstep(3), seed);
        if round % 2 == 0 {
            elect(&mut c);
            c.tick_all(2);
        }
        for _ in 0..200 {
            let to = rng.range(1, 4);
            let message = random_message(&mut rng, to);
            let node = core(&mut c, to);
            node.step(message);
            if rng.range(0, 10) == 0 {
                node.tick();
            }
            if rng.range(0, 20) == 0 {
                let change = match rng.range(0, 3) {
                    0 => ConfChange::AddLearner(rng.range(1, 6)),
                    1 => ConfChange::Promote(rng.range(1, 6)),
                    _ => ConfChange::Remove(rng.range(1, 6)),
                };
                let _ = node.propose_conf_change(change);
            }
            let ready = node.ready();
            if let Some(last) = ready.entries.last() {
                node.on_persisted(last.index, last.term);
            }
            if let Some(last) = ready.committed_entries.last() {
                node.on_applied(last.index);
            }
        }
        report.add(&c.report);
    }
    report
}

fn random_message(rng: &mut SplitMix64, to: NodeId) -> Message {
    let small = |rng: &mut SplitMix64| match rng.range(0, 4) {
        0 => 0,
        1 => rng.range(0, 8),
        2 => u64::MAX - rng.range(0, 2),
        _ => rng.range(0, 1 << 20),
    };
    let from = rng.range(0, 6);
    let term = small(rng);
    let body = match rng.range(0, 13) {
        0 => MessageBody::PreVote {
            last_log_index: small(rng),
            last_log_term: small(rng),
        },
        1 => MessageBody::PreVoteResponse {
            granted: rng.range(0, 2) == 0,
        },
        2 => MessageBody::Vote {
            last_log_index: small(rng),
            last_log_term: small(rng),
            leadership_transfer: rng.range(0, 2) == 0,
        },
        3 => MessageBody::VoteResponse {
            granted: rng.range(0, 2) == 0,
        },
        4 => {
            let prev_log_index = small(rng);
            let count = rng.range(0, 4);
            let entries = (0..count)
                .map(|k| Entry {
                    term: small(rng),
                    index: if rng.range(0, 4) == 0 {
                        small(rng)
                    } else {
                        prev_log_index.wrapping_add(k + 1)
                    },
                    kind: if rng.range(0, 3) == 0 {
                        EntryKind::ConfChange
                    } else {
                        EntryKind::Normal
                    },
                    // Sometimes a valid configuration (possibly without this node),
                    // sometimes bytes that are not one.
                    data: match rng.range(0, 3) {
                        0 => Membership::with_voters(1..=rng.range(1, 5)).encode(),
                        1 => {
                            let mut joint = Membership::with_voters([1, 2, 4]);
                            joint.outgoing_voters = [1, 2, 3].into_iter().collect();
                            joint.encode()
                        }
                        _ => vec![1, 2, 3],
                    }
                    .into(),
                })
                .collect();
            MessageBody::Append {
                prev_log_index,
                prev_log_term: small(rng),
                entries,
                leader_commit: small(rng),
            }
        }
        5 => MessageBody::AppendResponse {
            success: rng.range(0, 2) == 0,
            index: small(rng),
            reject_hint_index: small(rng),
            reject_hint_term: small(rng),
        },
        6 => MessageBody::Heartbeat {
            commit: small(rng),
            round: small(rng),
        },
        7 => MessageBody::HeartbeatResponse { round: small(rng) },
        8 => MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: small(rng),
                term: small(rng),
                membership: Membership::with_voters([1, 2, 3]),
                size_bytes: small(rng),
            },
            offset: small(rng),
            len: rng.range(0, 3),
            data: vec![0; rng.range(0, 3) as usize],
            done: rng.range(0, 2) == 0,
        },
        9 => MessageBody::InstallSnapshotResponse {
            snapshot_index: small(rng),
            next_offset: small(rng),
            done: rng.range(0, 2) == 0,
            rejected: rng.range(0, 2) == 0,
        },
        10 => MessageBody::TimeoutNow,
        11 => MessageBody::ReadIndex { ctx: small(rng) },
        _ => MessageBody::ReadIndexResponse {
            ctx: small(rng),
            index: small(rng),
        },
    };
    Message {
        from,
        to,
        term,
        body,
    }
}

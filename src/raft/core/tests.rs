//! Tests of one core fed by hand. What takes a cluster is tested by the simulator's scripted
//! scenarios (`tests/sim`, in lockstep), so that one driver serves every cluster test; none of
//! them needs the core's private state.

use crate::raft::{
    Config, Core, DurableState, Entry, EntryKind, HardState, Membership, Message, MessageBody,
    NodeId, SnapshotMeta,
};

fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.seed = 42;
    c.snapshot_threshold_entries = 1_000_000;
    c
}

fn conf_entry(index: u64, term: u64, membership: &Membership) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::ConfChange,
        data: bytes::Bytes::from(membership.encode()),
    }
}

#[test]
fn truncated_configuration_entry_reverts_and_restart_recovers_the_latest() {
    let three = Membership::with_voters([1, 2, 3]);
    let mut four = three.clone();
    four.learners.insert(4);
    let state = DurableState {
        snapshot: SnapshotMeta {
            membership: three.clone(),
            ..SnapshotMeta::default()
        },
        ..DurableState::default()
    };
    let mut node = Core::new(config(2), state.clone()).unwrap();
    let append = |from, term, entries: Vec<Entry>| Message {
        from,
        to: 2,
        term,
        body: MessageBody::Append {
            prev_log_index: 0,
            prev_log_term: 0,
            entries,
            leader_commit: 0,
        },
    };
    node.step(append(1, 1, vec![conf_entry(1, 1, &four)]));
    assert_eq!(node.membership(), &four, "in force once appended");
    assert_eq!(node.committed_membership(), &three);
    let ready = node.ready();
    let mut durable = state.clone();
    durable.entries = ready.entries.clone();
    let restarted = Core::new(config(2), durable).unwrap();
    assert_eq!(restarted.membership(), &four, "recovered from the log");
    // A leader of term 2 overwrites index 1: the configuration before it is back.
    node.step(append(
        3,
        2,
        vec![Entry {
            term: 2,
            index: 1,
            kind: EntryKind::Noop,
            data: bytes::Bytes::from(Vec::new()),
        }],
    ));
    assert_eq!(node.membership(), &three);
    assert_eq!(node.ready().truncate_from, Some(1));
    // A malformed configuration entry is refused, not applied.
    let mut bad = conf_entry(2, 2, &four);
    bad.data.truncate(3);
    let before = node.stats().inconsistent_messages;
    node.step(Message {
        from: 3,
        to: 2,
        term: 2,
        body: MessageBody::Append {
            prev_log_index: 1,
            prev_log_term: 2,
            entries: vec![bad],
            leader_commit: 0,
        },
    });
    assert_eq!(node.stats().inconsistent_messages, before + 1);
    assert_eq!(node.log().last_index(), 1);
}

#[test]
fn a_snapshot_carries_the_configuration_at_its_index_not_a_later_one() {
    let three = Membership::with_voters([1, 2, 3]);
    let mut four = three.clone();
    four.learners.insert(4);
    let normal = |index| Entry {
        term: 1,
        index,
        kind: EntryKind::Normal,
        data: bytes::Bytes::from(vec![1]),
    };
    let durable = DurableState {
        hard_state: HardState {
            term: 1,
            vote: Some(1),
            commit: 3,
        },
        snapshot: SnapshotMeta {
            membership: three.clone(),
            ..SnapshotMeta::default()
        },
        entries: vec![normal(1), normal(2), normal(3), conf_entry(4, 1, &four)],
    };
    let mut cfg = config(2);
    cfg.snapshot_threshold_entries = 3;
    let mut node = Core::new(cfg, durable).unwrap();
    assert_eq!(node.membership(), &four);
    let ready = node.ready();
    assert_eq!(ready.committed_entries.len(), 3);
    node.on_applied(3);
    let request = node.ready().snapshot_request.expect("threshold reached");
    assert_eq!(request.index, 3);
    assert_eq!(request.membership, three, "the configuration in force at 3");
    node.on_snapshot_built(SnapshotMeta {
        index: request.index,
        term: request.term,
        membership: request.membership,
        size_bytes: 10,
    });
    assert_eq!(
        node.membership(),
        &four,
        "the later entry is still in force"
    );
    assert_eq!(node.committed_membership(), &three);
}

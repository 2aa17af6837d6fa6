//! Property test: random interleavings of append, truncate_suffix, compact_prefix, hard state,
//! sync and reopen, checked against a simple in-memory model of the log.

use std::collections::BTreeMap;

use ketch_storage::{Entry, HardState, Options, Wal};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Append { count: u8, data_len: u16 },
    Truncate { back: u16 },
    Compact { forward: u16 },
    HardState { term: u8 },
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u8..40, 0u16..600).prop_map(|(count, data_len)| Step::Append { count, data_len }),
        2 => (0u16..120).prop_map(|back| Step::Truncate { back }),
        1 => (0u16..150).prop_map(|forward| Step::Compact { forward }),
        1 => any::<u8>().prop_map(|term| Step::HardState { term }),
        1 => Just(Step::Reopen),
    ]
}

/// What the log must hold.
struct Model {
    first_index: u64,
    entries: BTreeMap<u64, (u64, Vec<u8>)>,
    hard_state: HardState,
}

impl Model {
    fn last_index(&self) -> u64 {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.first_index - 1)
            .max(self.first_index - 1)
    }
}

fn options() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        ..Options::default()
    }
}

fn check(wal: &Wal, model: &Model) {
    assert_eq!(wal.first_index(), model.first_index);
    assert_eq!(wal.last_index(), model.last_index());
    assert_eq!(wal.hard_state(), model.hard_state);
    let read = wal
        .entries(wal.first_index()..wal.last_index() + 1)
        .unwrap();
    let expected: Vec<Entry> = model
        .entries
        .range(model.first_index..)
        .map(|(index, (term, data))| Entry::new(*index, *term, data.clone()))
        .collect();
    assert_eq!(read, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(steps in proptest::collection::vec(step(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), options()).unwrap();
        let mut model = Model { first_index: 1, entries: BTreeMap::new(), hard_state: HardState::default() };
        let mut term = 1u64;
        for step in steps {
            match step {
                Step::Append { count, data_len } => {
                    let lo = model.last_index() + 1;
                    let batch: Vec<Entry> = (lo..lo + count as u64)
                        .map(|i| Entry::new(i, term, vec![(i % 251) as u8; data_len as usize]))
                        .collect();
                    wal.append(&batch).unwrap();
                    for entry in batch {
                        model.entries.insert(entry.index, (entry.term, entry.data));
                    }
                }
                Step::Truncate { back } => {
                    let last = model.last_index();
                    let from = last.saturating_sub(back as u64).max(model.first_index);
                    wal.truncate_suffix(from).unwrap();
                    model.entries.retain(|index, _| *index < from);
                    term += 1;
                }
                Step::Compact { forward } => {
                    let to = model.first_index + forward as u64;
                    wal.compact_prefix(to).unwrap();
                    if to > model.first_index {
                        model.first_index = to;
                        model.entries.retain(|index, _| *index >= to);
                    }
                }
                Step::HardState { term: t } => {
                    let hard_state = HardState { term: t as u64, vote: t as u64 % 5, commit: model.last_index() };
                    wal.set_hard_state(hard_state).unwrap();
                    model.hard_state = hard_state;
                }
                Step::Reopen => {
                    wal.sync().unwrap();
                    drop(wal);
                    wal = Wal::open(dir.path(), options()).unwrap();
                    prop_assert!(wal.recovery_report().torn_tail.is_none());
                }
            }
            check(&wal, &model);
        }
        wal.sync().unwrap();
        wal.verify().unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), options()).unwrap();
        check(&wal, &model);
        wal.verify().unwrap();
    }
}

//! `LogStore` against an in-memory model: random interleavings of appends (with Raft
//! conflicts), truncations, hard states, compactions, removals, garbage collection, clean
//! reopens and crashes (the directory put back as it was at the last sync) over several groups.
//! After every step the store must equal the model; after a crash, the model's durable state.

use std::collections::BTreeMap;
use std::path::Path;

use ketch_storage::{Entry, Error, HardState, LogStore, Options, StoreBatch, StoreOptions};
use proptest::prelude::*;

const GROUPS: u64 = 6;

#[derive(Debug, Clone, PartialEq)]
struct Group {
    first: u64,
    last: u64,
    entries: BTreeMap<u64, Entry>,
    hard_state: HardState,
}

impl Default for Group {
    /// An unknown group: first index 1, last 0.
    fn default() -> Group {
        Group {
            first: 1,
            last: 0,
            entries: BTreeMap::new(),
            hard_state: HardState::default(),
        }
    }
}

type Model = BTreeMap<u64, Group>;

fn data(group: u64, index: u64, term: u64, size: usize) -> Vec<u8> {
    let mut bytes = format!("g{group} i{index} t{term} ").into_bytes();
    bytes.resize(size.max(bytes.len()), (index % 251) as u8);
    bytes
}

fn range_of(model: &Model, group: u64) -> (u64, u64, bool) {
    model
        .get(&group)
        .map_or((1, 0, false), |g| (g.first, g.last, true))
}

/// One op of a batch, applied to the model (mirroring the store's documented semantics) and
/// added to the batch. `pick` chooses among valid arguments.
fn add_op(model: &mut Model, batch: &mut StoreBatch, group: u64, kind: u8, pick: u16, term: u64) {
    let (first, last, exists) = range_of(model, group);
    let span = last + 2 - first; // choices in first..=last + 1
    match kind % 6 {
        0..=2 => {
            let start = if last < first {
                first + (pick % 3) as u64
            } else if pick % 4 != 0 {
                last + 1
            } else {
                first + pick as u64 % span // a Raft conflict, or an append at the end
            };
            let count = 1 + (pick / 7 % 4) as u64;
            let size = 200 + (pick as usize * 37) % 5000;
            let entries: Vec<Entry> = (start..start + count)
                .map(|index| Entry::new(index, term, data(group, index, term, size)))
                .collect();
            let g = model.entry(group).or_default();
            if g.last < g.first {
                g.first = start;
            }
            g.entries.split_off(&start);
            for entry in &entries {
                g.entries.insert(entry.index, entry.clone());
            }
            g.last = start + count - 1;
            batch.append(group, entries);
        }
        3 => {
            let from = first + pick as u64 % span;
            if exists && from <= last {
                let g = model.get_mut(&group).unwrap();
                g.entries.split_off(&from);
                g.last = from - 1;
            }
            batch.truncate_suffix(group, from);
        }
        4 => {
            let hard_state = HardState {
                term,
                vote: pick as u64 % 4,
                commit: last,
            };
            model.entry(group).or_default().hard_state = hard_state;
            batch.set_hard_state(group, hard_state);
        }
        _ => {
            // Mostly small steps, sometimes past the end (a snapshot beyond the log).
            let to = first + pick as u64 % (span + 2) / 4 + (pick % 16 == 0) as u64 * span;
            if to > first {
                let g = model.entry(group).or_default();
                g.entries = g.entries.split_off(&to);
                g.first = to;
                g.last = g.last.max(to - 1);
            }
            batch.compact_prefix(group, to);
        }
    }
}

fn check(store: &LogStore, model: &Model, step: usize) {
    assert_eq!(
        store.groups(),
        model.keys().copied().collect::<Vec<_>>(),
        "groups after step {step}"
    );
    for group in 0..GROUPS + 1 {
        let expected = model.get(&group).cloned().unwrap_or_default();
        assert_eq!(
            store.first_index(group),
            expected.first,
            "first of {group} after step {step}"
        );
        assert_eq!(
            store.last_index(group),
            expected.last,
            "last of {group} after step {step}"
        );
        assert_eq!(
            store.hard_state(group),
            expected.hard_state,
            "hard state of {group}, step {step}"
        );
        let read = store
            .entries(group, expected.first..expected.last + 1)
            .unwrap_or_else(|e| panic!("reading group {group} after step {step}: {e}"));
        let wanted: Vec<Entry> = expected.entries.values().cloned().collect();
        assert_eq!(read, wanted, "entries of group {group} after step {step}");
        if expected.first > 1 {
            assert!(matches!(
                store.entries(group, expected.first - 1..expected.first),
                Err(Error::OutOfRange { .. })
            ));
        }
    }
}

fn options() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        prepare_segments_ahead: false,
        spare_segments_max: 1,
        ..Options::default()
    }
}

fn store_options(pick: u8) -> StoreOptions {
    StoreOptions {
        // Sometimes rewrite in the background collector (in small or large rounds), sometimes
        // never (only through gc).
        rewrite_bytes_per_round: [0, 4096, 1 << 20][pick as usize % 3],
        rewrite_live_fraction_max: 0.3,
        ..StoreOptions::default()
    }
}

fn copy_dir(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name(), std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

fn restore_dir(dir: &Path, files: &[(std::ffi::OsString, Vec<u8>)]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Runs a history; returns the most segments the store had at once, and rewrite activity.
fn run(actions: &[(u8, u8, u16, u16)], gc_pick: u8) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        Some(LogStore::open_with(dir.path(), options(), store_options(gc_pick)).unwrap());
    let mut model = Model::new();
    let mut durable_model = Model::new();
    // Nothing runs yet: no write has woken the collector.
    let mut durable_files = copy_dir(dir.path());
    let mut term = 1u64;
    let (mut max_segments, mut rewritten) = (0u64, 0u64);
    for (step, &(kind, a, b, c)) in actions.iter().enumerate() {
        term += (a % 3 == 0) as u64;
        let s = store.as_ref().unwrap();
        match kind % 40 {
            0..=19 | 36..=39 => {
                let mut batch = StoreBatch::new();
                let ops = 1 + a % 4;
                for op in 0..ops {
                    let group = (b as u64 + op as u64 * 3) % GROUPS;
                    add_op(
                        &mut model,
                        &mut batch,
                        group,
                        (c >> (op * 3)) as u8,
                        b ^ c.rotate_left(op as u32),
                        term,
                    );
                }
                let sync = a % 2 == 0;
                s.write(batch, sync).unwrap();
                if sync {
                    durable_model = model.clone();
                    durable_files = s.with_files_still(|| copy_dir(dir.path()));
                }
            }
            20..=22 => {
                // A gap: refused, nothing written.
                let group = b as u64 % GROUPS;
                let (first, last, _) = range_of(&model, group);
                if last >= first {
                    let mut batch = StoreBatch::new();
                    batch.append(
                        group % GROUPS + GROUPS,
                        vec![Entry::new(1, term, b"x".to_vec())],
                    );
                    batch.append(group, vec![Entry::new(last + 2, term, b"gap".to_vec())]);
                    assert!(matches!(s.write(batch, true), Err(Error::Misuse { .. })));
                }
            }
            23..=26 => {
                let group = b as u64 % GROUPS;
                let (first, last, _) = range_of(&model, group);
                let to = first + c as u64 % (last + 3 - first);
                if to > first {
                    let g = model.entry(group).or_default();
                    g.entries = g.entries.split_off(&to);
                    g.first = to;
                    g.last = g.last.max(to - 1);
                }
                s.compact_prefix(group, to).unwrap();
            }
            27..=28 => {
                if c % 3 == 0 {
                    let group = b as u64 % GROUPS;
                    model.remove(&group);
                    s.remove_group(group).unwrap();
                }
            }
            29..=31 => {
                s.sync().unwrap();
                durable_model = model.clone();
                durable_files = s.with_files_still(|| copy_dir(dir.path()));
            }
            32..=33 => {
                s.gc().unwrap();
                durable_model = model.clone();
                durable_files = s.with_files_still(|| copy_dir(dir.path()));
            }
            34 => {
                let before = s.stats();
                drop(store.take());
                store = Some(
                    LogStore::open_with(dir.path(), options(), store_options(gc_pick)).unwrap(),
                );
                let after = store.as_ref().unwrap().stats();
                assert_eq!(
                    (after.live_entries, after.live_bytes),
                    (before.live_entries, before.live_bytes),
                    "live entries and bytes after a reopen at step {step}"
                );
            }
            _ => {
                // A crash: only what the last sync made durable is left.
                drop(store.take());
                restore_dir(dir.path(), &durable_files);
                model = durable_model.clone();
                store = Some(
                    LogStore::open_with(dir.path(), options(), store_options(gc_pick)).unwrap(),
                );
            }
        }
        check(store.as_ref().unwrap(), &model, step);
        let stats = store.as_ref().unwrap().stats();
        max_segments = max_segments.max(stats.segments);
        rewritten += stats.rewritten_bytes;
    }
    let stats = store.as_ref().unwrap().stats();
    let live: u64 = model.values().map(|g| g.entries.len() as u64).sum();
    assert_eq!(stats.live_entries, live, "live entry count");
    (max_segments, rewritten)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_store_equals_the_model(
        actions in prop::collection::vec(any::<(u8, u8, u16, u16)>(), 1..120),
        gc_pick in any::<u8>(),
    ) {
        run(&actions, gc_pick);
    }
}

#[test]
fn a_long_history_crosses_many_segments() {
    let mut actions = Vec::new();
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..1500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        actions.push((x as u8, (x >> 8) as u8, (x >> 16) as u16, (x >> 32) as u16));
    }
    for gc_pick in 0..3 {
        let (max_segments, rewritten) = run(&actions, gc_pick);
        assert!(
            max_segments >= 2,
            "the history must cross segments: {max_segments}"
        );
        if gc_pick > 0 {
            assert!(rewritten > 0, "the history must rewrite");
        }
    }
}

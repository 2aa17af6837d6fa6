//! Crash test with real processes for `LogStore`: a child writes to many groups from three
//! threads (each group has one writer thread), with synced appends, Raft conflicts (an append
//! below the end, with a new term) and compactions, and reports each synced write once it
//! returned. The parent kills it with SIGKILL at random moments, reopens the store, and checks
//! every reported entry with its content, and that no entry a synced conflict replaced came back.
//!
//! `KETCH_CRASH_ROUNDS` sets the number of kill rounds (default 12); `KETCH_CRASH_SEED` replays one
//! seed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketch_storage::{Entry, LogStore, Options, StoreBatch};

mod support;

use support::Rng;

const CHILD_DIR_VAR: &str = "KETCH_STORE_CRASH_CHILD_DIR";
const CHILD_SEED_VAR: &str = "KETCH_STORE_CRASH_CHILD_SEED";
const THREADS: u64 = 3;
const GROUPS_PER_THREAD: u64 = 10;

fn options() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        ..Options::default()
    }
}

fn data_for(group: u64, index: u64, term: u64) -> Vec<u8> {
    let len = ((index ^ term ^ group).wrapping_mul(0x9E37_79B9) % 500) as usize;
    (0..len)
        .map(|i| (index as usize + i * 7 + term as usize + group as usize) as u8)
        .collect()
}

fn last_term(store: &LogStore, group: u64) -> u64 {
    let last = store.last_index(group);
    if last < store.first_index(group) {
        return 1;
    }
    store.entries(group, last..last + 1).unwrap()[0].term
}

/// The child: runs only when the parent re-executes this test binary with the variables set.
#[test]
fn store_crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_VAR).unwrap().parse().unwrap();
    let store = Arc::new(LogStore::open(&dir, options()).unwrap());
    println!("KETCH OPEN");
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed ^ (thread + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let mut terms: BTreeMap<u64, u64> = BTreeMap::new();
                loop {
                    let group = thread + THREADS * rng.below(GROUPS_PER_THREAD);
                    let term = *terms
                        .entry(group)
                        .or_insert_with(|| last_term(&store, group));
                    let (first, last) = (store.first_index(group), store.last_index(group));
                    let choice = rng.below(10);
                    let (lo, term, sync) = match choice {
                        0..=6 => (last + 1, term, true),
                        7 if last > first => {
                            let back = 1 + rng.below((last - first).min(5));
                            (last - back + 1, term + 1, true)
                        }
                        8 => {
                            let to = first + rng.below(last + 2 - first);
                            store.compact_prefix(group, to).unwrap();
                            continue;
                        }
                        _ => (last + 1, term, false),
                    };
                    terms.insert(group, term);
                    let hi = lo + rng.below(4);
                    let mut batch = StoreBatch::new();
                    batch.append(
                        group,
                        (lo..=hi)
                            .map(|index| Entry::new(index, term, data_for(group, index, term)))
                            .collect(),
                    );
                    store.write(batch, sync).unwrap();
                    if sync {
                        println!("KETCH D {group} {lo} {hi} {term}");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// What the parent knows of a group: its entries' terms from `first`.
#[derive(Clone, Debug, Default)]
struct Known {
    first: u64,
    terms: Vec<u64>,
}

impl Known {
    fn last(&self) -> u64 {
        self.first + self.terms.len() as u64 - 1
    }
}

fn check_and_reload(dir: &Path, known: &mut BTreeMap<u64, Known>, context: &str) {
    if let Some(keep) = std::env::var_os("KETCH_CRASH_KEEP") {
        let keep = Path::new(&keep);
        let _ = std::fs::remove_dir_all(keep);
        std::fs::create_dir_all(keep).unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), keep.join(entry.file_name())).unwrap();
        }
    }
    let store = LogStore::open(dir, options()).unwrap();
    for (group, expected) in known.iter() {
        let (first, last) = (store.first_index(*group), store.last_index(*group));
        let entries = store.entries(*group, first..last + 1).unwrap();
        // The child may have been killed after a synced write returned and before it reported
        // it: one unreported Raft conflict may end a group, replacing its suffix with entries
        // of a higher term. Anything else that differs from what was reported is a bug.
        let mut conflict_term: Option<u64> = None;
        for entry in &entries {
            assert_eq!(
                entry.data,
                data_for(*group, entry.index, entry.term),
                "{context}: content of group {group} entry {}",
                entry.index
            );
            if let Some(term) = conflict_term {
                assert!(
                    entry.term >= term,
                    "{context}: group {group} entry {} has term {} after a conflict of term {term}",
                    entry.index,
                    entry.term
                );
                continue;
            }
            if entry.index < expected.first || entry.index > expected.last() {
                continue;
            }
            let term = expected.terms[(entry.index - expected.first) as usize];
            if term == 0 || entry.term == term {
                continue;
            }
            assert!(
                entry.term > term,
                "{context}: group {group} entry {} has term {}, the synced one had {term}: a \
                 replaced entry came back (recovered {first}..={last} terms {:?}, expected from \
                 {}: {:?})",
                entry.index,
                entry.term,
                entries.iter().map(|e| e.term).collect::<Vec<_>>(),
                expected.first,
                expected.terms
            );
            conflict_term = Some(entry.term);
        }
        assert!(
            last >= expected.last() || expected.terms.is_empty() || conflict_term.is_some(),
            "{context}: group {group} ends at {last}, synced entries reach {}",
            expected.last()
        );
    }
    known.clear();
    for group in store.groups() {
        let (first, last) = (store.first_index(group), store.last_index(group));
        let terms = store
            .entries(group, first..last + 1)
            .unwrap()
            .iter()
            .map(|entry| entry.term)
            .collect();
        known.insert(group, Known { first, terms });
    }
}

#[test]
fn sigkill_never_loses_synced_entries_or_resurrects_replaced_ones() {
    let rounds: u64 = std::env::var("KETCH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed = support::seed_from_env("KETCH_CRASH_SEED");
    eprintln!(
        "store crash test seed {seed} (replay: KETCH_CRASH_SEED={seed} cargo test -p \
         ketch-storage --test store_crash)"
    );
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut known: BTreeMap<u64, Known> = BTreeMap::new();
    let started = Instant::now();
    let mut reported = 0;
    let mut history: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for round in 0..rounds {
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!("stopping after {round} rounds: time budget spent");
            break;
        }
        let lines = support::run_child_and_kill(
            "store_crash_child",
            &[
                (CHILD_DIR_VAR, store_dir.display().to_string()),
                (CHILD_SEED_VAR, rng.next().to_string()),
            ],
            Duration::from_millis(100 + rng.below(400)),
        );
        for line in lines.iter().skip(1) {
            let parts: Vec<u64> = line
                .split(' ')
                .skip(1)
                .map(|p| p.parse().unwrap())
                .collect();
            let [group, lo, hi, term] = parts[..] else {
                panic!("unexpected child line {line:?}");
            };
            let group_known = known.entry(group).or_insert(Known {
                first: lo,
                terms: Vec::new(),
            });
            if group_known.terms.is_empty() {
                group_known.first = group_known.first.min(lo);
            }
            // Entries below the group's known first index were compacted: the synced append
            // starts at or above it.
            let keep = lo.saturating_sub(group_known.first) as usize;
            group_known.terms.truncate(keep);
            // Unsynced appends in between were not reported: their terms are unknown (0).
            group_known.terms.resize(keep, 0);
            if group_known.terms.is_empty() {
                group_known.first = lo;
            }
            group_known
                .terms
                .extend(std::iter::repeat_n(term, (hi - lo + 1) as usize));
            reported += 1;
            history.entry(group).or_default().push(line.clone());
        }
        if !store_dir.exists() {
            continue;
        }
        let context = format!("seed {seed} round {round}");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_and_reload(&store_dir, &mut known, &context)
        }));
        if let Err(panic) = outcome {
            for (group, lines) in &history {
                eprintln!("group {group}: {lines:?}");
            }
            std::panic::resume_unwind(panic);
        }
    }
    assert!(reported > 0, "the child never reported a synced write");
    eprintln!("{reported} synced writes checked");
}

#[test]
fn threads_with_conflicts_and_compactions_reopen_to_what_they_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path(), options()).unwrap());
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut rng = Rng::new(thread + 7);
                let mut terms: BTreeMap<u64, u64> = BTreeMap::new();
                let mut model: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
                for step in 0..600u64 {
                    let group = thread + THREADS * rng.below(GROUPS_PER_THREAD);
                    let term = *terms.entry(group).or_insert(1);
                    let (first, last) = (store.first_index(group), store.last_index(group));
                    let (lo, term, sync) = match rng.below(10) {
                        0..=6 => (last + 1, term, true),
                        7 if last > first => {
                            let back = 1 + rng.below((last - first).min(5));
                            (last - back + 1, term + 1, true)
                        }
                        8 => {
                            let to = first + rng.below(last + 2 - first);
                            store.compact_prefix(group, to).unwrap();
                            let m = model.entry(group).or_default();
                            *m = m.split_off(&to);
                            continue;
                        }
                        _ => (last + 1, term, false),
                    };
                    terms.insert(group, term);
                    let hi = lo + rng.below(4);
                    let mut batch = StoreBatch::new();
                    batch.append(
                        group,
                        (lo..=hi)
                            .map(|index| Entry::new(index, term, data_for(group, index, term)))
                            .collect(),
                    );
                    store.write(batch, sync).unwrap();
                    let m = model.entry(group).or_default();
                    m.split_off(&lo);
                    for index in lo..=hi {
                        m.insert(index, term);
                    }
                    if step % 200 != 199 {
                        continue;
                    }
                    for (group, m) in &model {
                        let (first, last) = (store.first_index(*group), store.last_index(*group));
                        let got: Vec<(u64, u64)> = store
                            .entries(*group, first..last + 1)
                            .unwrap()
                            .iter()
                            .map(|e| (e.index, e.term))
                            .collect();
                        let want: Vec<(u64, u64)> = m.iter().map(|(i, t)| (*i, *t)).collect();
                        assert_eq!(got, want, "thread {thread} step {step} group {group}");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let before: Vec<_> = store
        .groups()
        .into_iter()
        .map(|g| {
            let (first, last) = (store.first_index(g), store.last_index(g));
            (g, store.entries(g, first..last + 1).unwrap())
        })
        .collect();
    let stats = store.stats();
    drop(store);
    let store = LogStore::open(dir.path(), options()).unwrap();
    for (g, entries) in &before {
        let (first, last) = (store.first_index(*g), store.last_index(*g));
        let after = store.entries(*g, first..last + 1).unwrap();
        assert_eq!(
            after.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
            entries
                .iter()
                .map(|e| (e.index, e.term))
                .collect::<Vec<_>>(),
            "group {g} ({stats:?})"
        );
    }
}

//! Crash test of `LogStore` with real processes. A child process writes to many groups from
//! several threads (each group has one writer thread): appends, Raft conflicts (an append that
//! starts below the end), suffix truncations, compactions and group removals, some synced and
//! some not. It announces each operation on stdout before performing it, and prints `D group`
//! once a synced write of that group has returned. The parent kills it with SIGKILL at random
//! moments, reopens the store and checks, group by group, that what it finds is the state after
//! some prefix of that group's announced operations that includes every operation before its
//! last `D`:
//! - every acknowledged entry is there, with its content and its term;
//! - no truncated or replaced entry came back;
//! - a compaction that was not yet durable may leave a lower first index, but only with the
//!   entries that were there before it;
//! - the hard state written with each append is the one of that same prefix.
//!
//! `KETCH_CRASH_ROUNDS` sets the number of kill rounds (default 16); `KETCH_CRASH_SEED` replays
//! one seed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ketch_storage::{Entry, HardState, LogStore, Options, StoreBatch};

mod support;

use support::Rng;

const CHILD_DIR_VAR: &str = "KETCH_STORE_CRASH_CHILD_DIR";
const CHILD_SEED_VAR: &str = "KETCH_STORE_CRASH_CHILD_SEED";
const THREADS: u64 = 4;
const GROUPS: u64 = 24;

fn options() -> Options {
    // Small segments, so that a round rolls, frees and rewrites segments many times.
    Options {
        segment_size_bytes: 64 << 10,
        ..Options::default()
    }
}

fn data_for(group: u64, index: u64, term: u64) -> Vec<u8> {
    let len = ((index ^ term ^ group).wrapping_mul(0x9E37_79B9) % 300) as usize;
    (0..len)
        .map(|i| (index as usize + i * 7 + term as usize + group as usize * 13) as u8)
        .collect()
}

fn hard_state_for(group: u64, lo: u64, term: u64) -> HardState {
    HardState {
        term,
        vote: group,
        commit: lo - 1,
    }
}

fn last_term(store: &LogStore, group: u64) -> u64 {
    let last = store.last_index(group);
    if last < store.first_index(group) {
        return 0;
    }
    store.entries(group, last..last + 1).unwrap()[0].term
}

/// One writer thread of the child: operations on the groups `g` with `g % THREADS == thread`.
fn child_writer(store: &LogStore, thread: u64, seed: u64) {
    let mut rng = Rng::new(seed ^ (thread + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let groups: Vec<u64> = (1..=GROUPS).filter(|g| g % THREADS == thread).collect();
    let mut terms: BTreeMap<u64, u64> = groups
        .iter()
        .map(|&g| (g, last_term(store, g).max(1)))
        .collect();
    loop {
        let group = groups[rng.below(groups.len() as u64) as usize];
        let (first, last) = (store.first_index(group), store.last_index(group));
        let term = terms[&group];
        match rng.below(100) {
            0..=79 => {
                // An append at the end, or (one in eight) a conflict that replaces a suffix.
                let conflict = last >= first && rng.below(8) == 0;
                let lo = if conflict {
                    (last + 1 - rng.below(last - first + 1).min(12)).max(first)
                } else {
                    last + 1
                };
                let term = if conflict { term + 1 } else { term };
                terms.insert(group, term);
                let count = 1 + rng.below(8);
                let hi = lo + count - 1;
                let sync = rng.below(5) != 0;
                let mut batch = StoreBatch::new();
                batch.append(
                    group,
                    (lo..=hi)
                        .map(|i| Entry::new(i, term, data_for(group, i, term)))
                        .collect(),
                );
                batch.set_hard_state(group, hard_state_for(group, lo, term));
                println!("KETCH A {group} {lo} {hi} {term}");
                store.write(batch, sync).unwrap();
                if sync {
                    println!("KETCH D {group}");
                }
            }
            80..=87 if last >= first => {
                let from = last + 1 - rng.below(last - first + 1).min(20);
                let mut batch = StoreBatch::new();
                batch.truncate_suffix(group, from);
                println!("KETCH T {group} {from}");
                store.write(batch, true).unwrap();
                println!("KETCH D {group}");
            }
            88..=96 if last >= first => {
                let to = first + rng.below(last - first + 2);
                println!("KETCH C {group} {to}");
                store.compact_prefix(group, to).unwrap();
            }
            97..=99 => {
                println!("KETCH X {group}");
                store.remove_group(group).unwrap();
                terms.insert(group, term + 1);
            }
            _ => {
                store.sync().unwrap();
                println!("KETCH D {group}");
            }
        }
    }
}

/// The child: runs only when the parent re-executes this test binary with the variables set.
#[test]
fn store_crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_VAR).unwrap().parse().unwrap();
    let store = LogStore::open(&dir, options()).unwrap();
    println!("KETCH OPEN");
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let store = &store;
            scope.spawn(move || child_writer(store, thread, seed));
        }
    });
}

/// A group as the parent expects it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    first: u64,
    /// Terms of the live entries, `first ..`.
    terms: Vec<u64>,
    /// Terms of entries compacted away by a compaction that may not be durable yet, just below
    /// `first`: a recovered store may still hold them, with exactly these terms.
    compacted: BTreeMap<u64, u64>,
    hard_state: HardState,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            first: 1,
            terms: Vec::new(),
            compacted: BTreeMap::new(),
            hard_state: HardState::default(),
        }
    }
}

impl Group {
    fn last(&self) -> u64 {
        self.first + self.terms.len() as u64 - 1
    }

    fn keep_below(&mut self, from: u64) {
        let keep = from.saturating_sub(self.first) as usize;
        self.terms.truncate(keep.min(self.terms.len()));
        self.compacted.retain(|&index, _| index < from);
    }

    fn apply(&mut self, op: &[&str]) {
        let n = |i: usize| -> u64 { op[i].parse().unwrap() };
        match op[0] {
            "A" => {
                let (lo, hi, term) = (n(2), n(3), n(4));
                assert!(
                    (self.first..=self.last() + 1).contains(&lo),
                    "the child announced an append at {lo} outside {}..={}: {op:?}",
                    self.first,
                    self.last() + 1
                );
                self.keep_below(lo);
                self.terms
                    .extend(std::iter::repeat_n(term, (hi - lo + 1) as usize));
                self.hard_state = hard_state_for(n(1), lo, term);
            }
            "T" => self.keep_below(n(2)),
            "C" => {
                let to = n(2);
                while self.first < to && !self.terms.is_empty() {
                    let term = self.terms.remove(0);
                    self.compacted.insert(self.first, term);
                    self.first += 1;
                }
                if self.first < to {
                    self.first = to;
                }
            }
            "X" => *self = Group::default(),
            other => panic!("unknown op {other}"),
        }
    }

    /// Whether `found` is this state, allowing entries of a not yet durable compaction.
    fn matches(&self, found: &Group) -> bool {
        if found.last() != self.last() || found.hard_state != self.hard_state {
            return false;
        }
        if found.first > self.first && !(self.terms.is_empty() && found.terms.is_empty()) {
            return false;
        }
        found.terms.iter().enumerate().all(|(slot, term)| {
            let index = found.first + slot as u64;
            if index >= self.first {
                self.terms[(index - self.first) as usize] == *term
            } else {
                self.compacted.get(&index) == Some(term)
            }
        })
    }
}

fn recovered(dir: &Path) -> BTreeMap<u64, Group> {
    let store = LogStore::open(dir, options()).unwrap();
    let mut groups = BTreeMap::new();
    for group in 1..=GROUPS {
        let (first, last) = (store.first_index(group), store.last_index(group));
        let entries = store.entries(group, first..last + 1).unwrap();
        for entry in &entries {
            assert_eq!(
                entry.data,
                data_for(group, entry.index, entry.term),
                "content of group {group} entry {}",
                entry.index
            );
        }
        groups.insert(
            group,
            Group {
                first,
                terms: entries.iter().map(|e| e.term).collect(),
                compacted: BTreeMap::new(),
                hard_state: store.hard_state(group),
            },
        );
    }
    groups
}

#[test]
fn sigkill_never_loses_acknowledged_entries_of_any_group() {
    let rounds: u64 = std::env::var("KETCH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let seed = support::seed_from_env("KETCH_CRASH_SEED");
    eprintln!("store crash test seed {seed} (replay: KETCH_CRASH_SEED={seed} cargo test -p ketch-storage --test store_crash)");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut state: BTreeMap<u64, Group> = (1..=GROUPS).map(|g| (g, Group::default())).collect();
    let started = Instant::now();
    let mut acknowledged = 0;
    for round in 0..rounds {
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!("stopping after {round} rounds: time budget spent");
            break;
        }
        let kill_after = Duration::from_millis(30 + rng.below(300));
        let lines = support::run_child_and_kill(
            "store_crash_child",
            &[
                (CHILD_DIR_VAR, store_dir.display().to_string()),
                (CHILD_SEED_VAR, rng.next().to_string()),
            ],
            kill_after,
        );
        if lines.first().map(String::as_str) != Some("OPEN") {
            continue; // killed before it opened: nothing changed
        }
        // Per group: the operations announced since its last acknowledgement.
        let mut durable = state.clone();
        let mut pending: BTreeMap<u64, Vec<Vec<&str>>> = BTreeMap::new();
        for line in &lines[1..] {
            let op: Vec<&str> = line.split(' ').collect();
            let group: u64 = op[1].parse().unwrap();
            if op[0] == "D" {
                for op in pending.remove(&group).unwrap_or_default() {
                    durable.get_mut(&group).unwrap().apply(&op);
                }
                acknowledged += 1;
            } else {
                pending.entry(group).or_default().push(op);
            }
        }
        let found = recovered(&store_dir);
        for group in 1..=GROUPS {
            let mut candidate = durable[&group].clone();
            let mut candidates = vec![candidate.clone()];
            for op in pending.get(&group).into_iter().flatten() {
                candidate.apply(op);
                candidates.push(candidate.clone());
            }
            let got = &found[&group];
            assert!(
                candidates.iter().any(|c| c.matches(got)),
                "seed {seed} round {round} group {group}: recovered {}..={} (hard state {:?}) \
                 matches no state between its last acknowledged write and its last operation \
                 (candidates: {:?})",
                got.first,
                got.last(),
                got.hard_state,
                candidates
                    .iter()
                    .map(|c| (c.first, c.last(), c.hard_state))
                    .collect::<Vec<_>>()
            );
        }
        state = found;
    }
    assert!(
        acknowledged > 0,
        "the child never acknowledged a write: the test checked nothing"
    );
}

//! Crash test with real processes: a child process appends, truncates, compacts and syncs,
//! announcing each operation on stdout before it performs it and each completed sync after; the
//! parent kills it with SIGKILL at random moments, reopens the log, and checks that what it finds
//! is exactly the state after some prefix of the announced operations that includes every
//! completed sync. So: every synced entry is there with the right content, no truncated entry came
//! back, and no batch was half applied.
//!
//! `KETCH_CRASH_ROUNDS` sets the number of kill rounds (default 24); `KETCH_CRASH_SEED` replays one
//! seed.

use std::path::Path;
use std::time::{Duration, Instant};

use ketch_storage::{Entry, Options, Wal};

mod support;

use support::Rng;

const CHILD_DIR_VAR: &str = "KETCH_WAL_CRASH_CHILD_DIR";
const CHILD_SEED_VAR: &str = "KETCH_WAL_CRASH_CHILD_SEED";

fn options() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        ..Options::default()
    }
}

fn data_for(index: u64, term: u64) -> Vec<u8> {
    let len = ((index ^ term).wrapping_mul(0x9E37_79B9) % 700) as usize;
    (0..len)
        .map(|i| (index as usize + i * 7 + term as usize) as u8)
        .collect()
}

/// The child: runs only when the parent re-executes this test binary with the variables set.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_VAR).unwrap().parse().unwrap();
    let mut rng = Rng::new(seed);
    let mut wal = Wal::open(&dir, options()).unwrap();
    let mut term = wal
        .entries(wal.last_index().max(wal.first_index())..wal.last_index() + 1)
        .ok()
        .and_then(|e| e.last().map(|e| e.term))
        .unwrap_or(0)
        + 1;
    println!("KETCH OPEN {} {}", wal.first_index(), wal.last_index());
    loop {
        match rng.below(20) {
            0..=13 => {
                let count = 1 + rng.below(30);
                let lo = wal.last_index() + 1;
                let batch: Vec<Entry> = (lo..lo + count)
                    .map(|i| Entry::new(i, term, data_for(i, term)))
                    .collect();
                println!("KETCH A {lo} {} {term}", lo + count - 1);
                wal.append(&batch).unwrap();
            }
            14..=15 => {
                let back = rng.below(80);
                let from = wal.last_index().saturating_sub(back).max(wal.first_index());
                term += 1;
                println!("KETCH T {from}");
                wal.truncate_suffix(from).unwrap();
            }
            16 => {
                let to = wal.first_index() + rng.below(200);
                println!("KETCH C {to}");
                wal.compact_prefix(to).unwrap();
                println!("KETCH S");
            }
            _ => {
                wal.sync().unwrap();
                println!("KETCH S");
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    first_index: u64,
    terms: Vec<u64>, // terms[i] is the term of entry first_index + i
}

impl State {
    fn last_index(&self) -> u64 {
        self.first_index + self.terms.len() as u64 - 1
    }

    fn apply(&mut self, op: &str) {
        let parts: Vec<u64> = op.split(' ').skip(1).map(|p| p.parse().unwrap()).collect();
        match op.as_bytes()[0] {
            b'A' => {
                assert_eq!(parts[0], self.last_index() + 1);
                self.terms.extend(std::iter::repeat_n(
                    parts[2],
                    (parts[1] - parts[0] + 1) as usize,
                ));
            }
            b'T' => {
                let keep = parts[0].saturating_sub(self.first_index) as usize;
                self.terms.truncate(keep.min(self.terms.len()));
            }
            b'C' => {
                let to = parts[0];
                if to > self.first_index {
                    let drop = (to - self.first_index) as usize;
                    if drop >= self.terms.len() {
                        self.terms.clear();
                    } else {
                        self.terms.drain(..drop);
                    }
                    self.first_index = to;
                }
            }
            other => panic!("unknown op {}", other as char),
        }
    }
}

fn recovered_state(dir: &Path) -> State {
    let wal = Wal::open(dir, options()).unwrap();
    let entries = wal
        .entries(wal.first_index()..wal.last_index() + 1)
        .unwrap();
    for entry in &entries {
        assert_eq!(
            entry.data,
            data_for(entry.index, entry.term),
            "content of entry {}",
            entry.index
        );
    }
    State {
        first_index: wal.first_index(),
        terms: entries.iter().map(|e| e.term).collect(),
    }
}

#[test]
fn sigkill_never_loses_synced_entries_or_resurrects_truncated_ones() {
    let rounds: u64 = std::env::var("KETCH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed = support::seed_from_env("KETCH_CRASH_SEED");
    eprintln!("crash test seed {seed} (replay: KETCH_CRASH_SEED={seed} cargo test -p ketch-storage --test wal_crash)");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let mut state = State {
        first_index: 1,
        terms: Vec::new(),
    };
    let started = Instant::now();
    let mut total_syncs = 0;
    for round in 0..rounds {
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!("stopping after {round} rounds: time budget spent");
            break;
        }
        let child_seed = rng.next().to_string();
        let kill_after = Duration::from_millis(20 + rng.below(200));
        let lines = support::run_child_and_kill(
            "crash_child",
            &[
                (CHILD_DIR_VAR, log_dir.display().to_string()),
                (CHILD_SEED_VAR, child_seed),
            ],
            kill_after,
        );
        let Some(open_line) = lines.first() else {
            continue; // killed before it opened: nothing changed
        };
        // What the child saw at open must be what the parent expects from the previous round.
        let opened: Vec<u64> = open_line
            .split(' ')
            .skip(1)
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(
            (opened[0], opened[1]),
            (state.first_index, state.last_index()),
            "seed {seed} round {round}"
        );
        // Candidate states: after the last completed sync, then after each later operation.
        let mut synced = state.clone();
        let mut pending: Vec<&str> = Vec::new();
        for line in &lines[1..] {
            if line == "S" {
                for op in pending.drain(..) {
                    synced.apply(op);
                }
                total_syncs += 1;
            } else {
                pending.push(line);
            }
        }
        let mut candidates = vec![synced.clone()];
        let mut candidate = synced;
        for op in &pending {
            candidate.apply(op);
            candidates.push(candidate.clone());
        }
        let recovered = recovered_state(&log_dir);
        assert!(
            candidates.contains(&recovered),
            "seed {seed} round {round}: recovered log {}..={} matches no state between the last sync \
             and the last operation (candidates: {:?})",
            recovered.first_index,
            recovered.last_index(),
            candidates.iter().map(|c| (c.first_index, c.last_index())).collect::<Vec<_>>()
        );
        state = recovered;
    }
    assert!(
        total_syncs > 0,
        "the child never synced: the test checked nothing"
    );
}

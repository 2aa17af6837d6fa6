//! Runs a scenario over many seeds and reports failures with a replay command.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::cluster::RunReport;

const DEFAULT_SEEDS: u64 = 100;

/// The seeds to run: `KETCH_SIM_SEED=S` alone, else `1..=KETCH_SIM_SEEDS` (default 100).
pub fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("KETCH_SIM_SEED") {
        return vec![seed
            .trim()
            .parse()
            .expect("KETCH_SIM_SEED must be an integer")];
    }
    let count = std::env::var("KETCH_SIM_SEEDS")
        .ok()
        .map(|n| {
            n.trim()
                .parse()
                .expect("KETCH_SIM_SEEDS must be an integer")
        })
        .unwrap_or(DEFAULT_SEEDS);
    (1..=count).collect()
}

/// The seeds of a costly scenario: as `seeds`, but only the first `cap` unless
/// `KETCH_SIM_SEEDS` (or `KETCH_SIM_SEED`) is set.
pub fn seeds_capped(cap: u64) -> Vec<u64> {
    let mut seeds = seeds();
    if std::env::var("KETCH_SIM_SEEDS").is_err() {
        seeds.truncate(cap as usize);
    }
    seeds
}

fn replay_line(scenario: &str, seed: u64) -> String {
    format!("KETCH_SIM_SEED={seed} cargo test --release --test sim {scenario} -- --exact")
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "non-string panic".to_string()
    }
}

/// Runs `scenario` for every seed; panics on the first failure with the replay command.
pub fn run(scenario: &str, run_one: impl Fn(u64) -> RunReport) {
    run_seeds(scenario, seeds(), run_one);
}

/// `run` over `seeds`.
pub fn run_seeds(scenario: &str, seeds: Vec<u64>, run_one: impl Fn(u64) -> RunReport) {
    let mut total = RunReport::default();
    for &seed in &seeds {
        match catch_unwind(AssertUnwindSafe(|| run_one(seed))) {
            Ok(report) => total.add(&report),
            Err(payload) => panic!(
                "scenario {scenario} failed with seed {seed}: {}\nreplay: {}",
                panic_text(payload.as_ref()),
                replay_line(scenario, seed)
            ),
        }
    }
    println!(
        "scenario {scenario}: {} seeds, {} simulated ticks, {} client ops ({} answered), {} messages, \
         {} leader terms, {} crashes ({} torn writes), {} truncations, {} snapshots installed, \
         {} check-quorum step-downs, {} inconsistent messages rejected, {} linearizability checks \
         gave up, {} configuration entries appended, {} removed nodes stopped",
        seeds.len(),
        total.steps / crate::cluster::STEPS_PER_TICK,
        total.ops_invoked,
        total.ops_completed,
        total.messages,
        total.leader_terms,
        total.crashes,
        total.torn_writes,
        total.truncations,
        total.snapshots_installed,
        total.check_quorum_step_downs,
        total.inconsistent_messages,
        total.linearizability_unknown,
        total.configuration_entries,
        total.removed_stops
    );
    if total.host_crashes > 0 || total.quiesces > 0 {
        println!(
            "scenario {scenario}: {} host crashes (losing unsynced writes of {} groups), {} replicas \
             quiesced, {} woken by a message or client, {} woken by their leader's host going silent",
            total.host_crashes,
            total.groups_losing_writes,
            total.quiesces,
            total.quiesce_wakes,
            total.silence_wakes
        );
    }
    if total.handovers > 0 || total.stale_route_refusals > 0 {
        println!(
            "scenario {scenario}: {} range handovers, {} operations refused for a stale route \
             ({} of them routed by a host's lagging table)",
            total.handovers, total.stale_route_refusals, total.lagging_table_refusals
        );
    }
    // A checker that gives up is not a checker: at most one run in ten may go unchecked.
    assert!(
        total.linearizability_unknown * 10 <= seeds.len() as u64,
        "scenario {scenario}: the linearizability check gave up on {} of {} seeds",
        total.linearizability_unknown,
        seeds.len()
    );
}

/// Runs a deliberately broken variant until the simulator reports a safety violation; panics
/// if no seed (of at most `max_seeds`) is caught. Returns the seed that was caught.
pub fn expect_violation(scenario: &str, max_seeds: u64, run_one: impl Fn(u64) -> RunReport) -> u64 {
    for seed in 1..=max_seeds {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| run_one(seed))) {
            let text = panic_text(payload.as_ref());
            assert!(
                text.contains("SIM VIOLATION"),
                "scenario {scenario} seed {seed} failed, but not with a safety violation: {text}"
            );
            println!("scenario {scenario}: the broken core was caught at seed {seed}: {text}");
            return seed;
        }
    }
    panic!("scenario {scenario}: the broken core went undetected for {max_seeds} seeds");
}

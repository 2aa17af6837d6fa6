//! Randomized tests: histories generated from real sequential executions (always linearizable),
//! mutated executions (mostly not), and agreement with a brute-force oracle on small histories.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

/// One generated operation: the plan before times and clients are assigned.
#[derive(Debug, Clone)]
struct Planned {
    kind: u8,
    key: u8,
    value: u8,
    /// How long before its linearization point the call happens.
    lead: u64,
    /// How long after its linearization point the return happens.
    lag: u64,
    /// 0: known outcome; 1: unknown, took effect; 2: unknown, never took effect.
    fate: u8,
    /// For unknown outcomes: whether the client recorded a timeout or never returned.
    times_out: bool,
}

fn planned() -> impl Strategy<Value = Planned> {
    (
        0u8..3,
        0u8..2,
        0u8..4,
        0u64..40,
        0u64..40,
        0u8..12,
        any::<bool>(),
    )
        .prop_map(|(kind, key, value, lead, lag, fate, times_out)| Planned {
            kind,
            key,
            value,
            lead,
            lag,
            fate: match fate {
                0 => 1,
                1 => 2,
                _ => 0,
            },
            times_out,
        })
}

/// An operation with its interval and outcome, before recording.
#[derive(Debug, Clone)]
struct Timed {
    op: Op,
    call: u64,
    /// `None`: never returns.
    completion: Option<(u64, Outcome)>,
}

/// Runs `plan` sequentially (operation i takes effect at time 10 * i + 50, unless its fate says
/// it never did) and gives every operation an interval around its point.
fn execute(plan: &[Planned]) -> Vec<Timed> {
    execute_with_values(plan, false)
}

/// Values writes choose from: few, so reads often cannot tell writes apart, and overlapping,
/// so a value can also arise from two appends ("0" then "1" looks like "01").
const WRITE_VALUES: [&[u8]; 4] = [b"0", b"1", b"01", b"10"];

/// As [`execute`]; with `unique_values`, every write carries its own value (as a simulator's
/// clients would write), instead of one of [`WRITE_VALUES`].
fn execute_with_values(plan: &[Planned], unique_values: bool) -> Vec<Timed> {
    let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut timed = Vec::with_capacity(plan.len());
    for (i, step) in plan.iter().enumerate() {
        let point = 10 * i as u64 + 50;
        let key = vec![b'a' + step.key];
        let value = if unique_values {
            format!("[{i}]").into_bytes()
        } else {
            WRITE_VALUES[usize::from(step.value)].to_vec()
        };
        let takes_effect = step.fate != 2;
        let (op, outcome) = match step.kind {
            0 => (
                Op::Get { key: key.clone() },
                Outcome::Get(store.get(&key).cloned()),
            ),
            1 => {
                if takes_effect {
                    store.insert(key.clone(), value.clone());
                }
                (Op::Put { key, value }, Outcome::Put)
            }
            _ => {
                if takes_effect {
                    store
                        .entry(key.clone())
                        .or_default()
                        .extend_from_slice(&value);
                }
                (Op::Append { key, value }, Outcome::Append)
            }
        };
        let call = point.saturating_sub(step.lead);
        let ret = point + step.lag;
        let completion = match (step.fate, step.times_out) {
            (0, _) => Some((ret, outcome)),
            (_, true) => Some((ret, Outcome::Unknown)),
            (_, false) => None,
        };
        timed.push(Timed {
            op,
            call,
            completion,
        });
    }
    timed
}

/// Records `ops` into a history, giving each to a client that is free at its call time.
fn record(ops: &[Timed]) -> History {
    // (time, is return, op): calls first at equal times, so a zero-length interval records its
    // call before its return; a client freed at time t calls again only later than t.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, timed) in ops.iter().enumerate() {
        events.push((timed.call, false, i));
        if let Some((ret, _)) = &timed.completion {
            events.push((*ret, true, i));
        }
    }
    events.sort();
    let mut history = History::new();
    let mut ids = vec![None; ops.len()];
    // Free time of each client; `u64::MAX` once it is stuck on an operation that never returns.
    let mut client_free_after: Vec<u64> = Vec::new();
    for (time, is_return, i) in events {
        if !is_return {
            let client = match client_free_after.iter().position(|&free| free < time) {
                Some(client) => client,
                None => {
                    client_free_after.push(0);
                    client_free_after.len() - 1
                }
            };
            client_free_after[client] = match &ops[i].completion {
                Some((ret, _)) => *ret,
                None => u64::MAX,
            };
            ids[i] = Some(history.invoke(client as ClientId, ops[i].op.clone(), time));
        } else {
            let (_, outcome) = ops[i]
                .completion
                .clone()
                .expect("return event without completion");
            history.complete(ids[i].expect("return before call"), outcome, time);
        }
    }
    history
}

/// Every order of the whole history (no per-key split, no memo) consistent with real time,
/// tried against the map model: the definition of linearizability, for small histories.
fn brute_force_linearizable(ops: &[Timed]) -> bool {
    let usable: Vec<&Timed> = ops
        .iter()
        .filter(|timed| {
            let is_read = matches!(timed.op, Op::Get { .. });
            let known =
                matches!(&timed.completion, Some((_, outcome)) if *outcome != Outcome::Unknown);
            known || !is_read
        })
        .collect();
    let return_time = |timed: &Timed| match &timed.completion {
        Some((time, outcome)) if *outcome != Outcome::Unknown => *time,
        _ => u64::MAX,
    };
    fn search(
        usable: &[&Timed],
        return_time: &dyn Fn(&Timed) -> u64,
        placed: &mut Vec<bool>,
        store: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> bool {
        if placed.iter().all(|&p| p) {
            return true;
        }
        for i in 0..usable.len() {
            if placed[i] {
                continue;
            }
            // Some unplaced operation returned strictly before this call: it must go first.
            let blocked = (0..usable.len())
                .any(|j| j != i && !placed[j] && return_time(usable[j]) < usable[i].call);
            if blocked {
                continue;
            }
            let key = usable[i].op.key().to_vec();
            let before = store.get(&key).cloned();
            let fits = match (&usable[i].op, &usable[i].completion) {
                (Op::Get { .. }, Some((_, Outcome::Get(observed)))) => *observed == before,
                (Op::Get { .. }, _) => unreachable!("unknown reads were filtered"),
                (Op::Put { value, .. }, _) => {
                    store.insert(key.clone(), value.clone());
                    true
                }
                (Op::Append { value, .. }, _) => {
                    store
                        .entry(key.clone())
                        .or_default()
                        .extend_from_slice(value);
                    true
                }
            };
            if fits {
                placed[i] = true;
                if search(usable, return_time, placed, store) {
                    return true;
                }
                placed[i] = false;
            }
            match before {
                Some(value) => store.insert(key, value),
                None => store.remove(&key),
            };
        }
        false
    }
    let mut placed = vec![false; usable.len()];
    search(&usable, &return_time, &mut placed, &mut HashMap::new())
}

/// Changes one known read's answer; `None` when the history has no such read.
fn mutate_one_read(ops: &mut [Timed], choice: usize, new_value: u8) -> Option<()> {
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].completion, Some((_, Outcome::Get(_)))))
        .collect();
    if reads.is_empty() {
        return None;
    }
    let target = reads[choice % reads.len()];
    let Some((_, Outcome::Get(observed))) = &mut ops[target].completion else {
        unreachable!("filtered to known reads");
    };
    *observed = match observed.take() {
        None => Some(vec![b'0' + new_value % 4]),
        Some(mut bytes) if new_value % 3 == 0 => {
            bytes.reverse();
            bytes.push(b'0' + new_value % 4);
            Some(bytes)
        }
        Some(_) if new_value % 3 == 1 => None,
        Some(mut bytes) => {
            bytes.pop();
            Some(bytes)
        }
    };
    Some(())
}

/// A tiny deterministic generator for the rate measurement (proptest's shrinking is not
/// wanted there: the point is a stable count).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn plan(&mut self, len: usize) -> Vec<Planned> {
        (0..len)
            .map(|_| Planned {
                kind: self.below(3) as u8,
                key: self.below(2) as u8,
                value: self.below(4) as u8,
                lead: self.below(40),
                lag: self.below(40),
                fate: match self.below(12) {
                    0 => 1,
                    1 => 2,
                    _ => 0,
                },
                times_out: self.below(2) == 0,
            })
            .collect()
    }
}

proptest! {
    #[test]
    fn histories_from_sequential_executions_are_linearizable(
        plan in prop::collection::vec(planned(), 1..60)
    ) {
        let ops = execute(&plan);
        let history = record(&ops);
        let result = check(&history, CheckLimits::default());
        prop_assert!(result.is_ok(), "{}\nhistory:\n{}", result, history);
    }

    #[test]
    fn checker_agrees_with_brute_force_on_small_histories(
        plan in prop::collection::vec(planned(), 1..7),
        mutate in any::<bool>(),
        choice in any::<usize>(),
        new_value in any::<u8>(),
    ) {
        let mut ops = execute(&plan);
        if mutate {
            mutate_one_read(&mut ops, choice, new_value);
        }
        let history = record(&ops);
        let expected = brute_force_linearizable(&ops);
        let result = check(&history, CheckLimits::default());
        prop_assert!(!matches!(result, CheckResult::Unknown { .. }), "{}", result);
        prop_assert_eq!(result.is_ok(), expected, "{}\nhistory:\n{}", result, history);
    }
}

#[test]
fn mutated_executions_are_mostly_caught() {
    let mut rng = SplitMix(0x6b65_7463);
    let (mut mutated, mut caught, mut confirmed) = (0u32, 0u32, 0u32);
    for _ in 0..400 {
        let len = 5 + rng.below(40) as usize;
        let plan = rng.plan(len);
        let mut ops = execute(&plan);
        let (choice, new_value) = (rng.next() as usize, rng.next() as u8);
        if mutate_one_read(&mut ops, choice, new_value).is_none() {
            continue;
        }
        mutated += 1;
        let history = record(&ops);
        match check(&history, CheckLimits::default()) {
            CheckResult::Violation(violation) => {
                caught += 1;
                // A violation report always names the operation that could not be placed.
                assert!(
                    violation
                        .ops
                        .iter()
                        .any(|line| line.starts_with("cannot be placed")),
                    "{violation}"
                );
                if len <= 8 {
                    assert!(
                        !brute_force_linearizable(&ops),
                        "false violation:\n{history}"
                    );
                    confirmed += 1;
                }
            }
            CheckResult::Ok => {}
            CheckResult::Unknown { key, reason } => panic!("undecided on {key:?}: {reason}"),
        }
    }
    let rate = f64::from(caught) / f64::from(mutated);
    println!(
        "mutated executions: {mutated}, reported as violations: {caught} ({:.1}%), \
         of which brute-force confirmed: {confirmed}",
        rate * 100.0
    );
    // A changed read answer is usually inconsistent; some stay explainable under overlap.
    assert!(rate > 0.5, "only {caught} of {mutated} mutations caught");
}

#[test]
fn long_history_with_timeouts_is_refuted_quickly() {
    // One key, 1500 operations, a few in flight, one in twelve timed out (a simulator run
    // under partitions), writes carrying distinct delimited values, one read's answer changed
    // halfway: the checker must prove the violation, not give up.
    let mut rng = SplitMix(0x6b65_7463);
    let plan: Vec<Planned> = rng
        .plan(1500)
        .into_iter()
        .map(|mut step| {
            step.key = 0;
            step
        })
        .collect();
    let mut ops = execute_with_values(&plan, true);
    assert!(check(&record(&ops), CheckLimits::default()).is_ok());
    let started = std::time::Instant::now();
    mutate_one_read(&mut ops, 250, 1).expect("the plan has reads");
    let result = check(&record(&ops), CheckLimits::default());
    assert!(
        matches!(result, CheckResult::Violation(_)),
        "expected a violation, got {result}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(30),
        "took {elapsed:?}"
    );
}

/// Timing, not correctness: run with
/// `cargo test --release -p ketch --lib history::random_tests::checker_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "measurement; run in release with --nocapture"]
fn checker_throughput() {
    // (operations, keys, widest lead/lag, unique values, unknown outcomes allowed)
    let cases = [
        (1_000, 1, 40, false, true),
        (10_000, 10, 40, false, true),
        (100_000, 100, 40, true, true),
        (30_000, 1, 40, true, true),
        (5_000, 1, 40, true, true),
        (5_000, 1, 40, true, false),
        (5_000, 1, 40, false, true),
        (5_000, 1, 40, false, false),
        (2_000, 1, 60, true, true),
        (2_000, 1, 80, true, true),
        (2_000, 1, 120, true, false),
        (2_000, 1, 120, true, true),
        (2_000, 1, 120, false, false),
        (2_000, 1, 120, false, true),
        (400, 1, 400, true, false),
    ];
    let limits = CheckLimits {
        max_states_per_key: 2_000_000,
    };
    for (len, keys, max_lead, unique_values, unknowns) in cases {
        let mut rng = SplitMix(len as u64 ^ keys);
        let plan: Vec<Planned> = rng
            .plan(len)
            .into_iter()
            .map(|mut step| {
                step.key = rng.below(keys) as u8;
                step.lead = rng.below(max_lead);
                step.lag = rng.below(max_lead);
                if !unknowns {
                    step.fate = 0;
                }
                step
            })
            .collect();
        let mut ops = execute_with_values(&plan, unique_values);
        let history = record(&ops);
        let started = std::time::Instant::now();
        let result = check(&history, limits);
        let elapsed = started.elapsed();
        let verdict = match &result {
            CheckResult::Ok => "ok".to_string(),
            CheckResult::Unknown { .. } => "undecided (limit)".to_string(),
            CheckResult::Violation(violation) => panic!("false violation: {violation}"),
        };
        // The same history with one read's answer changed, to time finding a violation.
        mutate_one_read(&mut ops, len / 2, 7);
        let mutated = record(&ops);
        let started = std::time::Instant::now();
        let mutated_verdict = match check(&mutated, limits) {
            CheckResult::Ok => "ok",
            CheckResult::Unknown { .. } => "undecided (limit)",
            CheckResult::Violation(_) => "violation",
        };
        println!(
            "  one read changed: {mutated_verdict} in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        println!(
            "{len} ops, {keys} keys, up to {} in flight, unique values {unique_values}, \
             unknown outcomes {unknowns}: {verdict} in {:.1} ms ({:.0} ops/s)",
            max_lead * 2 / 10,
            elapsed.as_secs_f64() * 1e3,
            len as f64 / elapsed.as_secs_f64()
        );
    }
    // Memory at the default limit, on a history that exhausts it.
    let mut rng = SplitMix(7);
    let plan: Vec<Planned> = rng
        .plan(2_000)
        .into_iter()
        .map(|mut step| {
            step.key = 0;
            step.lead = rng.below(120);
            step.lag = rng.below(120);
            step
        })
        .collect();
    let history = record(&execute_with_values(&plan, true));
    let started = std::time::Instant::now();
    let result = check(&history, CheckLimits::default());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|line| line.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    println!(
        "default limit, 2000 ops, up to 24 in flight: {} in {:.1} s; process peak {peak}",
        if result.is_ok() { "ok" } else { "not ok" },
        started.elapsed().as_secs_f64()
    );
}

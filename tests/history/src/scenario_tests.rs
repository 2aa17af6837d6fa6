//! Hand-written histories with known verdicts: the classic anomalies and the unknown-outcome
//! cases.

use std::time::{Duration, Instant};

use super::*;

fn get(key: &str) -> Op {
    Op::Get {
        key: key.as_bytes().to_vec(),
    }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn append(key: &str, value: &str) -> Op {
    Op::Append {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn read(value: &str) -> Outcome {
    Outcome::Get(Some(value.as_bytes().to_vec()))
}

/// Records a completed operation over `[call, ret]`.
fn done(history: &mut History, client: ClientId, op: Op, outcome: Outcome, call: u64, ret: u64) {
    let id = history.invoke(client, op, call);
    history.complete(id, outcome, ret);
}

fn verdict(history: &History) -> CheckResult {
    check(history, CheckLimits::default())
}

fn expect_violation(history: &History, key: &str) -> Violation {
    match verdict(history) {
        CheckResult::Violation(violation) => {
            assert_eq!(violation.key, key.as_bytes(), "{violation}");
            violation
        }
        other => panic!("expected a violation on {key}, got {other}\nhistory:\n{history}"),
    }
}

fn expect_ok(history: &History) {
    let result = verdict(history);
    assert!(result.is_ok(), "{result}\nhistory:\n{history}");
}

#[test]
fn empty_history_is_linearizable() {
    expect_ok(&History::new());
}

#[test]
fn sequential_history_is_linearizable() {
    let mut history = History::new();
    done(&mut history, 1, get("a"), Outcome::Get(None), 0, 1);
    done(&mut history, 1, put("a", "1"), Outcome::Put, 2, 3);
    done(&mut history, 2, get("a"), read("1"), 4, 5);
    done(&mut history, 2, append("a", "2"), Outcome::Append, 6, 7);
    done(&mut history, 1, get("a"), read("12"), 8, 9);
    done(&mut history, 1, append("b", "x"), Outcome::Append, 10, 11);
    done(&mut history, 1, get("b"), read("x"), 12, 13);
    expect_ok(&history);
}

#[test]
fn read_concurrent_with_write_may_see_either_value() {
    for observed in [Outcome::Get(None), read("v")] {
        let mut history = History::new();
        done(&mut history, 1, put("k", "v"), Outcome::Put, 0, 10);
        done(&mut history, 2, get("k"), observed, 5, 15);
        expect_ok(&history);
    }
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    for (first_read, second_read) in [("1", "2"), ("2", "1")] {
        let mut history = History::new();
        done(&mut history, 1, put("k", "1"), Outcome::Put, 0, 100);
        done(&mut history, 2, put("k", "2"), Outcome::Put, 0, 100);
        done(&mut history, 3, get("k"), read(first_read), 10, 20);
        done(&mut history, 3, get("k"), read(second_read), 30, 40);
        done(&mut history, 4, get("k"), read(second_read), 110, 120);
        expect_ok(&history);
    }
}

#[test]
fn touching_intervals_count_as_concurrent() {
    // Equal times cannot be ordered, so the read may precede the put.
    let mut history = History::new();
    done(&mut history, 1, put("k", "v"), Outcome::Put, 0, 10);
    done(&mut history, 2, get("k"), Outcome::Get(None), 10, 12);
    expect_ok(&history);
}

#[test]
fn stale_read_after_completed_write_is_a_violation() {
    let mut history = History::new();
    done(&mut history, 1, put("k", "old"), Outcome::Put, 0, 5);
    done(&mut history, 1, put("k", "new"), Outcome::Put, 10, 20);
    done(&mut history, 2, get("k"), read("old"), 30, 40);
    let violation = expect_violation(&history, "k");
    let text = violation.to_string();
    assert!(
        text.contains(
            "cannot be placed before it returns: #2 client 2 get(\"k\") -> \"old\" [30, 40]"
        ),
        "{text}"
    );
    assert!(text.contains("register then holds \"new\""), "{text}");
}

#[test]
fn reads_observing_writes_in_opposite_orders_is_a_violation() {
    let mut history = History::new();
    done(&mut history, 1, put("k", "1"), Outcome::Put, 0, 100);
    done(&mut history, 2, put("k", "2"), Outcome::Put, 0, 100);
    done(&mut history, 3, get("k"), read("1"), 10, 20);
    done(&mut history, 3, get("k"), read("2"), 30, 40);
    done(&mut history, 4, get("k"), read("2"), 10, 20);
    done(&mut history, 4, get("k"), read("1"), 30, 40);
    expect_violation(&history, "k");
}

#[test]
fn append_order_violated_is_a_violation() {
    let mut history = History::new();
    done(&mut history, 1, append("k", "x"), Outcome::Append, 0, 10);
    done(&mut history, 2, append("k", "y"), Outcome::Append, 20, 30);
    done(&mut history, 3, get("k"), read("yx"), 40, 50);
    expect_violation(&history, "k");

    // Concurrent appends may land in either order, but every reader sees one order.
    let mut history = History::new();
    done(&mut history, 1, append("k", "x"), Outcome::Append, 0, 30);
    done(&mut history, 2, append("k", "y"), Outcome::Append, 0, 30);
    done(&mut history, 3, get("k"), read("yx"), 40, 50);
    expect_ok(&history);
    done(&mut history, 4, get("k"), read("xy"), 60, 70);
    expect_violation(&history, "k");
}

#[test]
fn lost_append_is_a_violation() {
    let mut history = History::new();
    done(&mut history, 1, append("k", "x"), Outcome::Append, 0, 10);
    done(&mut history, 2, append("k", "y"), Outcome::Append, 5, 15);
    done(&mut history, 3, get("k"), read("y"), 20, 30);
    expect_violation(&history, "k");
}

#[test]
fn read_of_a_value_never_written_is_a_violation() {
    let mut history = History::new();
    done(&mut history, 1, put("k", "a"), Outcome::Put, 0, 10);
    done(&mut history, 2, get("k"), read("zz"), 5, 15);
    let violation = expect_violation(&history, "k");
    assert!(
        violation
            .to_string()
            .contains("get(\"k\") -> \"zz\" [5, 15]"),
        "{violation}"
    );
}

#[test]
fn unknown_write_that_took_effect_is_accepted() {
    let mut history = History::new();
    let lost = history.invoke(1, put("k", "v"), 0);
    history.complete(lost, Outcome::Unknown, 10);
    // Long after the client gave up, the write shows up: allowed.
    done(&mut history, 2, get("k"), read("v"), 1000, 1010);
    done(&mut history, 2, get("k"), read("v"), 1020, 1030);
    expect_ok(&history);
}

#[test]
fn unknown_write_that_never_took_effect_is_accepted() {
    let mut history = History::new();
    let lost = history.invoke(1, append("k", "v"), 0);
    history.complete(lost, Outcome::Unknown, 10);
    done(&mut history, 2, get("k"), Outcome::Get(None), 20, 30);
    done(&mut history, 2, append("k", "w"), Outcome::Append, 40, 50);
    done(&mut history, 2, get("k"), read("w"), 60, 70);
    expect_ok(&history);
}

#[test]
fn never_completed_write_may_take_effect_late() {
    let mut history = History::new();
    history.invoke(1, put("k", "late"), 0); // the client crashed; no return ever
    done(&mut history, 2, put("k", "early"), Outcome::Put, 10, 20);
    done(&mut history, 2, get("k"), read("early"), 30, 40);
    done(&mut history, 2, get("k"), read("late"), 50, 60);
    expect_ok(&history);
}

#[test]
fn unknown_write_cannot_take_effect_before_its_call_or_twice() {
    let mut history = History::new();
    done(&mut history, 2, get("k"), read("v"), 0, 5);
    let lost = history.invoke(1, put("k", "v"), 10);
    history.complete(lost, Outcome::Unknown, 20);
    expect_violation(&history, "k");

    let mut history = History::new();
    let lost = history.invoke(1, put("k", "v"), 0);
    history.complete(lost, Outcome::Unknown, 1);
    done(&mut history, 2, get("k"), read("v"), 10, 20);
    done(&mut history, 2, get("k"), Outcome::Get(None), 30, 40);
    expect_violation(&history, "k");
}

#[test]
fn read_with_unknown_outcome_constrains_nothing() {
    let mut history = History::new();
    done(&mut history, 1, put("k", "v"), Outcome::Put, 0, 10);
    let timed_out = history.invoke(2, get("k"), 20);
    history.complete(timed_out, Outcome::Unknown, 30);
    history.invoke(3, get("other"), 20);
    expect_ok(&history);
}

#[test]
fn keys_are_checked_independently_and_the_bad_key_is_named() {
    let mut history = History::new();
    done(&mut history, 1, put("good", "1"), Outcome::Put, 0, 10);
    done(&mut history, 2, put("bad", "1"), Outcome::Put, 0, 10);
    done(&mut history, 1, get("good"), read("1"), 20, 30);
    done(&mut history, 2, get("bad"), Outcome::Get(None), 20, 30);
    let violation = expect_violation(&history, "bad");
    assert!(!violation.to_string().contains("good"), "{violation}");
}

/// Many clients hammering one key: `ops_per_client` rounds in which every client appends a
/// distinct byte or reads, all intervals overlapping within a round, the reads returning what
/// the sequential execution in client order produces.
fn busy_key_history(clients: u64, rounds: u64) -> History {
    let mut history = History::new();
    let mut value: Option<Vec<u8>> = None;
    for round in 0..rounds {
        let start = round * 100;
        for client in 0..clients {
            let call = start + client;
            let ret = start + 50 + client;
            if (round + client) % 3 == 0 {
                done(
                    &mut history,
                    client,
                    get("k"),
                    Outcome::Get(value.clone()),
                    call,
                    ret,
                );
            } else {
                let byte = b'a' + ((round * clients + client) % 26) as u8;
                value.get_or_insert_with(Vec::new).push(byte);
                let op = Op::Append {
                    key: b"k".to_vec(),
                    value: vec![byte],
                };
                done(&mut history, client, op, Outcome::Append, call, ret);
            }
        }
    }
    history
}

#[test]
fn hundreds_of_operations_on_one_key_check_quickly() {
    let started = Instant::now();
    let history = busy_key_history(5, 60); // 300 operations, 5 concurrent at a time
    assert_eq!(history.len(), 300);
    expect_ok(&history);

    // The same with a stale read at the end: found, and quickly.
    let mut stale = busy_key_history(5, 60);
    done(
        &mut stale,
        99,
        get("k"),
        Outcome::Get(None),
        1_000_000,
        1_000_001,
    );
    expect_violation(&stale, "k");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

#[test]
fn exceeding_the_limit_is_unknown_never_ok() {
    let history = busy_key_history(5, 20);
    let limits = CheckLimits {
        max_states_per_key: 10,
    };
    match check(&history, limits) {
        CheckResult::Unknown { key, reason } => {
            assert_eq!(key, b"k");
            assert!(reason.contains("max_states_per_key = 10"), "{reason}");
        }
        other => panic!("expected Unknown, got {other}"),
    }
}

#[test]
fn violation_elsewhere_wins_over_an_undecided_key() {
    let mut history = busy_key_history(5, 20);
    done(&mut history, 100, put("z", "1"), Outcome::Put, 0, 1);
    done(&mut history, 100, get("z"), read("2"), 2, 3);
    let limits = CheckLimits {
        max_states_per_key: 10,
    };
    match check(&history, limits) {
        CheckResult::Violation(violation) => assert_eq!(violation.key, b"z"),
        other => panic!("expected a violation on z, got {other}"),
    }
}

#[test]
fn many_timed_out_writes_nobody_saw_do_not_blow_up_the_search() {
    let mut history = History::new();
    for client in 0..60 {
        let lost = history.invoke(client, put("k", &format!("lost{client}")), client);
        history.complete(lost, Outcome::Unknown, 1000);
    }
    done(&mut history, 100, put("k", "kept"), Outcome::Put, 0, 10);
    for round in 0..100 {
        done(
            &mut history,
            101,
            get("k"),
            read("kept"),
            20 + 10 * round,
            25 + 10 * round,
        );
    }
    // One timed-out write was seen: it must still be placed, once.
    let seen = history.invoke(102, append("k", "+seen"), 2000);
    history.complete(seen, Outcome::Unknown, 2001);
    done(&mut history, 101, get("k"), read("kept+seen"), 3000, 3001);
    let limits = CheckLimits {
        max_states_per_key: 10_000,
    };
    let result = check(&history, limits);
    assert!(result.is_ok(), "{result}");

    done(&mut history, 101, get("k"), read("kept"), 3010, 3011);
    match check(&history, limits) {
        CheckResult::Violation(violation) => assert_eq!(violation.key, b"k"),
        other => panic!("expected a violation, got {other}"),
    }
}

#[test]
fn timed_out_write_is_not_forced_when_others_can_produce_its_bytes() {
    // "ab" also arises from the appends "a" then "b": the read proves nothing about the
    // timed-out append of "ab".
    let mut history = History::new();
    let lost = history.invoke(1, append("k", "ab"), 0);
    history.complete(lost, Outcome::Unknown, 5);
    done(&mut history, 2, append("k", "a"), Outcome::Append, 0, 10);
    done(&mut history, 2, append("k", "b"), Outcome::Append, 20, 30);
    done(&mut history, 2, get("k"), read("ab"), 40, 50);
    expect_ok(&history);

    // "1.2;" is inside another write's value.
    let mut history = History::new();
    let lost = history.invoke(1, put("k", "1.2;"), 0);
    history.complete(lost, Outcome::Unknown, 5);
    done(&mut history, 2, put("k", "11.2;"), Outcome::Put, 0, 10);
    done(&mut history, 2, get("k"), read("11.2;"), 20, 30);
    expect_ok(&history);
}

#[test]
fn timed_out_write_seen_once_cannot_vanish_or_reappear() {
    let mut history = History::new();
    let lost = history.invoke(1, append("k", "<1>"), 0);
    history.complete(lost, Outcome::Unknown, 5);
    done(&mut history, 2, append("k", "<2>"), Outcome::Append, 0, 10);
    done(&mut history, 2, get("k"), read("<2><1>"), 20, 30);
    done(&mut history, 2, get("k"), read("<2><1>"), 40, 50);
    expect_ok(&history);
    done(&mut history, 2, get("k"), read("<2>"), 60, 70);
    let violation = expect_violation(&history, "k");
    assert!(
        violation.to_string().contains("-> unknown [0, inf)"),
        "{violation}"
    );
}

#[test]
fn timed_out_writes_of_a_common_value_stop_floating_after_their_last_reader() {
    // Sixteen timed-out puts of "x", a value a completed put also wrote, so reads of "x" say
    // nothing about which applied. Past the last read of "x" each could still apply just before
    // any later put, unobserved: without deadlines, refuting the stale read at the end means
    // trying every subset of them at each of the 200 later puts (over 10 million states).
    let mut history = History::new();
    for client in 0..16 {
        let lost = history.invoke(client, put("k", "x"), client);
        history.complete(lost, Outcome::Unknown, 20);
    }
    done(&mut history, 100, put("k", "x"), Outcome::Put, 0, 10);
    done(&mut history, 100, get("k"), read("x"), 30, 40);
    for round in 0..200 {
        let start = 100 + 20 * round;
        let value = format!("v{round}");
        done(
            &mut history,
            100,
            put("k", &value),
            Outcome::Put,
            start,
            start + 5,
        );
        done(
            &mut history,
            100,
            get("k"),
            read(&value),
            start + 10,
            start + 15,
        );
    }
    expect_ok(&history);
    done(&mut history, 100, get("k"), read("v0"), 10_000, 10_010);
    let started = Instant::now();
    expect_violation(&history, "k");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

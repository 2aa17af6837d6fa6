//! The linearizability checker: Wing & Gong's backtracking search with Lowe's memoization, as
//! in Porcupine, run independently per key.
//!
//! Per-key decomposition is sound because linearizability is compositional (Herlihy & Wing,
//! P-compositionality for a map of independent registers): a history is linearizable iff each
//! key's sub-history is.
//!
//! The search walks a doubly linked list of call and return events in time order. At a call it
//! tries to linearize that operation now (the model accepts its outcome in the current state and
//! the resulting configuration is new), removing the call and its return from the list; at a
//! return it has met an operation that had to be linearized already, so it backtracks. The list
//! becomes empty exactly when every operation found a place.
//!
//! Operations without a known outcome return at +infinity: they may take effect anywhere after
//! their call, or never. Reads among them constrain nothing and are dropped. Writes among them
//! would stay candidates forever and multiply the search by every subset of them, so each gets
//! a finite deadline instead, after which it counts as never applied (see `key_operations`
//! for why that is exact, not an approximation).
//!
//! Cost: the search explores at most `max_states_per_key` configurations per key, each costing
//! one model step, one memo insert and a scan of the pending events. Concurrency is what makes
//! it expensive: configurations grow with the subsets of mutually concurrent operations.
//! Measured in release (`checker_throughput`): a linearizable key of 30,000 operations with up
//! to 8 in flight checks in 0.5 s; 2,000 with up to 12 in flight in 0.2 s; with up to 16 in
//! flight the default limit is hit. Proving a violation costs more than accepting a good
//! history, since every configuration before the anomaly must be ruled out: an anomaly after
//! 2,500 operations of one key (8 in flight) is found in 0.1-0.4 s, one after 15,000 exceeds
//! the default limit and the answer is `Unknown`. Several keys, each checked alone, help.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::model::{RegisterModel, StateId, Transition};
use super::operation::{Op, Outcome, QuotedBytes};
use super::recording::{History, RecordedOp};
use super::unknown_writes::{gather_evidence, UnknownWrite};
use super::violation::Violation;
use super::visited::Visited;

/// Bounds on the checker's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// Most search configurations explored (and memoized) for one key before the checker gives
    /// up with [`CheckResult::Unknown`]. The default of 10 million, exhausted on a 2000-operation
    /// key with up to 24 operations in flight, took 12-35 s (a shared, noisy machine) and a
    /// 630-750 MB peak in a release build (`checker_throughput` in `random_tests.rs`); a debug
    /// build is several times slower.
    pub max_states_per_key: u64,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits {
            max_states_per_key: 10_000_000,
        }
    }
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's operations have a linearization.
    Ok,
    /// Some key's operations have none.
    Violation(Violation),
    /// The search on `key` exceeded its limits; no key was found in violation.
    Unknown {
        /// The first key the checker gave up on.
        key: Vec<u8>,
        /// Why it gave up, with the work done.
        reason: String,
    },
}

impl CheckResult {
    /// True only for [`CheckResult::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Ok => f.write_str("linearizable"),
            CheckResult::Violation(violation) => violation.fmt(f),
            CheckResult::Unknown { key, reason } => {
                write!(f, "undecided on key {}: {reason}", QuotedBytes(key))
            }
        }
    }
}

/// Checks that `history` is linearizable with respect to a map of independent byte registers
/// (get / put / append per key). Never answers `Ok` without a full proof: when the work on a
/// key exceeds `limits`, the answer is [`CheckResult::Unknown`] unless another key is in
/// violation. Keys are checked in byte order, and the first violation found is returned.
pub fn check(history: &History, limits: CheckLimits) -> CheckResult {
    let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (index, record) in history.operations().iter().enumerate() {
        let is_read = matches!(record.op, Op::Get { .. });
        if is_read && record.known_outcome().is_none() {
            continue; // a read nobody saw the answer to constrains nothing
        }
        by_key.entry(record.op.key()).or_default().push(index);
    }
    let mut first_undecided = None;
    for (key, indices) in by_key {
        let ops = key_operations(history.operations(), &indices);
        match KeySearch::new(ops).run(limits) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Violation(ops) => {
                return CheckResult::Violation(Violation {
                    key: key.to_vec(),
                    ops,
                })
            }
            KeyVerdict::GaveUp(reason) => {
                if first_undecided.is_none() {
                    first_undecided = Some((key.to_vec(), reason));
                }
            }
        }
    }
    match first_undecided {
        Some((key, reason)) => CheckResult::Unknown { key, reason },
        None => CheckResult::Ok,
    }
}

/// One operation of the key as the search sees it.
struct KeyOp<'h> {
    record: &'h RecordedOp,
    /// Position in the whole history, for the report.
    history_index: usize,
    /// The last moment it may take effect: its return, or a write's deadline.
    return_time: u64,
    /// An unknown-outcome write: at its deadline, it may instead never take effect.
    may_never_apply: bool,
}

/// The key's operations for the search, giving each unknown-outcome write a deadline.
///
/// Take a valid linearization in which such a write W (bytes `w`) takes effect. Every state
/// from W up to the next put contains `w` (a put sets it, appends keep it). If no read sits in
/// that span, removing W changes no read's answer: W may as well never apply. Otherwise some
/// read after W observed a value containing `w`, and it returned by the latest return among
/// such reads, so W took effect before that: its deadline. Hence: W applies before its
/// deadline, or not at all, with nothing lost. When no read that could follow W observed `w`,
/// W is dropped outright.
///
/// Tighter, when `w` is a token only W can produce (`unknown_writes::Evidence::is_token`): then any state
/// containing `w` has W applied, so W must apply, and before the *earliest* return among the
/// reads that saw `w`, with no never-applied alternative (about halves refutation time in
/// `checker_throughput`). The two rules matter most in different cases: dropping unseen
/// writes needs values that differ between writes; deadlines bound writes of a common value.
/// Clients that write distinct, delimited values (`<client.seq>`) make both work best.
fn key_operations<'h>(operations: &'h [RecordedOp], indices: &[usize]) -> Vec<KeyOp<'h>> {
    let reads: Vec<(&[u8], u64)> = indices
        .iter()
        .filter_map(|&i| match operations[i].known_outcome() {
            Some(Outcome::Get(Some(value))) => {
                Some((value.as_slice(), operations[i].return_time()?))
            }
            _ => None,
        })
        .collect();
    let writes: Vec<(usize, &[u8])> = indices
        .iter()
        .filter_map(|&i| match &operations[i].op {
            Op::Put { value, .. } | Op::Append { value, .. } => Some((i, value.as_slice())),
            Op::Get { .. } => None,
        })
        .collect();
    let unknown: Vec<UnknownWrite<'h>> = indices
        .iter()
        .filter(|&&i| operations[i].return_time().is_none())
        .filter_map(|&i| match &operations[i].op {
            Op::Put { value, .. } | Op::Append { value, .. } => Some(UnknownWrite {
                writer: i,
                value: value.as_slice(),
            }),
            Op::Get { .. } => None, // unknown reads are filtered out before; be safe
        })
        .collect();
    let evidence = gather_evidence(&unknown, &reads, &writes);

    // Unknown writes that stay, with their deadline and whether they may never apply.
    let mut unknown_fates: HashMap<usize, (u64, bool)> = HashMap::new();
    for (write, evidence) in unknown.iter().zip(evidence) {
        let call_time = operations[write.writer].call_time;
        let Some((first_return, last_return)) = evidence.seen_returns else {
            continue; // nobody saw its bytes: it may as well never apply
        };
        if evidence.is_token {
            // A read that returned before W's call yet saw `w` makes the key unlinearizable;
            // the search finds that, so the interval only needs to be valid.
            unknown_fates.insert(write.writer, (first_return.max(call_time), false));
        } else if last_return >= call_time {
            unknown_fates.insert(write.writer, (last_return, true));
        }
    }
    // In invocation order: the memo's compact sets rely on it (`visited.rs`).
    let mut ops = Vec::with_capacity(indices.len());
    for &history_index in indices {
        let record = &operations[history_index];
        let fate = match record.return_time() {
            Some(return_time) => Some((return_time, false)),
            None => unknown_fates.get(&history_index).copied(),
        };
        if let Some((return_time, may_never_apply)) = fate {
            ops.push(KeyOp {
                record,
                history_index,
                return_time,
                may_never_apply,
            });
        }
    }
    ops
}

enum KeyVerdict {
    Linearizable,
    /// Context lines for the report.
    Violation(Vec<String>),
    GaveUp(String),
}

/// End of the event list.
const NIL: usize = usize::MAX;
/// The list's sentinel node; events are nodes `1..=2n`.
const HEAD: usize = 0;
/// Linearized operations shown before the one that could not be placed.
const CONTEXT_PREFIX_OPS: usize = 6;
/// Pending operations shown beside the one that could not be placed.
const CONTEXT_PENDING_OPS: usize = 12;

/// The search over one key's operations.
struct KeySearch<'h> {
    ops: Vec<KeyOp<'h>>,
    model: RegisterModel,
    transitions: Vec<Transition<'h>>,
    // The event list, dancing-links style: removed nodes keep their links so they can be
    // reinserted in reverse order of removal.
    prev: Vec<usize>,
    next: Vec<usize>,
    /// Operation of each event node.
    op_of: Vec<usize>,
    /// For a call node, its return node; `NIL` for return nodes.
    return_of: Vec<usize>,
    /// For a return node, its call node; `NIL` for call nodes.
    call_of: Vec<usize>,
}

/// One linearized operation on the search stack.
struct Placed {
    call: usize,
    state_before: StateId,
    /// Placed without an alternative to try: by the read rule (see
    /// `KeySearch::matching_read`), or an unknown write given up on at its deadline.
    forced: bool,
}

/// The deepest point the search reached, kept to explain a violation.
///
/// The prefix is copied only when the search first backs out of a new deepest point, so a
/// search that never backtracks (the usual linearizable history) copies nothing.
#[derive(Default)]
struct Deepest {
    /// Operations linearized there.
    depth: usize,
    /// Those operations in linearization order, once the search has left the point.
    prefix: Vec<usize>,
    state: Option<StateId>,
    /// The operation whose return the search met from exactly that prefix.
    stuck: Option<usize>,
    /// True while the search sits on the deepest point and has not backtracked from it.
    is_current: bool,
}

impl Deepest {
    /// Notes the configuration just reached, `depth` operations deep, in `state`.
    fn reached(&mut self, depth: usize, state: StateId) {
        if depth > self.depth {
            self.depth = depth;
            self.state = Some(state);
            self.stuck = None;
            self.is_current = true;
        }
    }

    /// Notes that the search backs out of the configuration built by `calls`, because the
    /// return of `stuck` came first (or, for `None`, because the configuration was known dead).
    fn leaving(&mut self, calls: &[Placed], op_of: &[usize], stuck: Option<usize>) {
        if self.is_current {
            debug_assert_eq!(calls.len(), self.depth);
            self.prefix = calls.iter().map(|placed| op_of[placed.call]).collect();
            self.stuck = stuck;
            self.is_current = false;
        }
    }
}

impl<'h> KeySearch<'h> {
    fn new(ops: Vec<KeyOp<'h>>) -> Self {
        let mut model = RegisterModel::new();
        let transitions = ops
            .iter()
            .map(|op| model.transition(&op.record.op, op.record.known_outcome()))
            .collect();

        // (time, is return, operation): calls sort before returns at equal times, so touching
        // intervals count as concurrent (see `History`).
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            assert!(
                op.record.call_time <= op.return_time,
                "interval ends before it starts"
            );
            events.push((op.record.call_time, false, index));
            events.push((op.return_time, true, index));
        }
        events.sort_unstable();

        let node_count = events.len() + 1;
        let op_count = ops.len();
        let mut search = KeySearch {
            ops,
            model,
            transitions,
            prev: (0..node_count).map(|node| node.wrapping_sub(1)).collect(),
            next: (1..=node_count)
                .map(|node| if node == node_count { NIL } else { node })
                .collect(),
            op_of: vec![NIL; node_count],
            return_of: vec![NIL; node_count],
            call_of: vec![NIL; node_count],
        };
        let mut call_node_of = vec![NIL; op_count];
        for (position, &(_, is_return, op)) in events.iter().enumerate() {
            let node = position + 1;
            search.op_of[node] = op;
            if is_return {
                let call = call_node_of[op];
                assert_ne!(call, NIL, "return event sorted before its call");
                search.return_of[call] = node;
                search.call_of[node] = call;
            } else {
                call_node_of[op] = node;
            }
        }
        search
    }

    fn is_call(&self, node: usize) -> bool {
        self.return_of[node] != NIL
    }

    /// Unlinks a call and its return.
    fn lift(&mut self, call: usize) {
        let ret = self.return_of[call];
        let (call_prev, call_next) = (self.prev[call], self.next[call]);
        self.next[call_prev] = call_next;
        self.prev[call_next] = call_prev; // a call is never last: its return follows
        let (ret_prev, ret_next) = (self.prev[ret], self.next[ret]);
        self.next[ret_prev] = ret_next;
        if ret_next != NIL {
            self.prev[ret_next] = ret_prev;
        }
    }

    /// Relinks what `lift(call)` unlinked; valid only in reverse order of lifting.
    fn unlift(&mut self, call: usize) {
        let ret = self.return_of[call];
        self.next[self.prev[ret]] = ret;
        if self.next[ret] != NIL {
            let after = self.next[ret];
            self.prev[after] = ret;
        }
        self.next[self.prev[call]] = call;
        let after = self.next[call];
        self.prev[after] = call;
    }

    /// A read that may be linearized now and returns what the register holds: it is among
    /// the candidates (its call precedes every pending return in the list).
    ///
    /// Linearizing such a read first loses nothing (Lowe's observation for state-preserving
    /// operations): in any valid continuation, moving it to the front changes no state, and no
    /// pending operation had to precede it, since none returned before its call. So the
    /// search takes it without branching, and backtracking past it backtracks further.
    fn matching_read(&self, state: StateId) -> Option<usize> {
        let mut node = self.next[HEAD];
        while node != NIL && self.is_call(node) {
            if let Transition::Observe(expected) = self.transitions[self.op_of[node]] {
                if expected == state {
                    return Some(node);
                }
            }
            node = self.next[node];
        }
        None
    }

    /// Undoes linearizations until one with an untried alternative; returns the event to
    /// resume scanning from, or `None` when the stack runs out (no linearization exists).
    fn backtrack(
        &mut self,
        calls: &mut Vec<Placed>,
        linearized: &mut [u64],
        state: &mut StateId,
    ) -> Option<usize> {
        loop {
            let placed = calls.pop()?;
            let undone = self.op_of[placed.call];
            linearized[undone / 64] &= !(1 << (undone % 64));
            *state = placed.state_before;
            self.unlift(placed.call);
            if !placed.forced {
                return Some(self.next[placed.call]);
            }
        }
    }

    fn run(mut self, limits: CheckLimits) -> KeyVerdict {
        let op_count = self.ops.len();
        let mut linearized = vec![0u64; op_count.div_ceil(64)];
        let mut visited = Visited::default();
        // The search stack, bounded by the number of operations: each is placed at most once
        // on a branch.
        let mut calls: Vec<Placed> = Vec::with_capacity(op_count);
        let mut state = StateId::ABSENT;
        let mut deepest = Deepest {
            is_current: true,
            state: Some(state),
            ..Deepest::default()
        };
        let mut node = self.next[HEAD];
        // True on arriving at a configuration not seen before, before any candidate is tried.
        let mut arrived = true;
        while self.next[HEAD] != NIL {
            assert_ne!(node, NIL, "search ran off the end of the event list");
            let forced_read = if arrived {
                arrived = false;
                self.matching_read(state)
            } else {
                None
            };
            let candidate = forced_read.unwrap_or(node);
            let op = self.op_of[candidate];
            if self.is_call(candidate) {
                let stepped = self.model.step(state, op, &self.transitions[op]);
                let Some(after) = stepped else {
                    node = self.next[candidate];
                    continue;
                };
                linearized[op / 64] |= 1 << (op % 64);
                if !visited.insert(&linearized, after) {
                    linearized[op / 64] &= !(1 << (op % 64));
                    if forced_read.is_none() {
                        node = self.next[candidate];
                        continue;
                    }
                    // Explored before without success, and it was the only move worth making.
                    deepest.leaving(&calls, &self.op_of, None);
                    match self.backtrack(&mut calls, &mut linearized, &mut state) {
                        Some(resume) => node = resume,
                        None => return KeyVerdict::Violation(self.explain(&deepest)),
                    }
                    continue;
                }
                if visited.len() as u64 > limits.max_states_per_key {
                    return KeyVerdict::GaveUp(self.gave_up(limits, &deepest));
                }
                calls.push(Placed {
                    call: candidate,
                    state_before: state,
                    forced: forced_read.is_some(),
                });
                state = after;
                self.lift(candidate);
                node = self.next[HEAD];
                arrived = true;
                deepest.reached(calls.len(), state);
            } else if self.ops[op].may_never_apply {
                // An unknown write at its deadline, not applied on this branch: from here it
                // never applies. That is the only way on (see `key_operations`), so forced.
                let call = self.call_of[candidate];
                linearized[op / 64] |= 1 << (op % 64);
                if !visited.insert(&linearized, state) {
                    linearized[op / 64] &= !(1 << (op % 64));
                    deepest.leaving(&calls, &self.op_of, None);
                    match self.backtrack(&mut calls, &mut linearized, &mut state) {
                        Some(resume) => node = resume,
                        None => return KeyVerdict::Violation(self.explain(&deepest)),
                    }
                    continue;
                }
                if visited.len() as u64 > limits.max_states_per_key {
                    return KeyVerdict::GaveUp(self.gave_up(limits, &deepest));
                }
                calls.push(Placed {
                    call,
                    state_before: state,
                    forced: true,
                });
                self.lift(call);
                node = self.next[HEAD];
                arrived = true;
                deepest.reached(calls.len(), state);
            } else {
                // `op` had to be linearized before its return, and was not: backtrack.
                deepest.leaving(&calls, &self.op_of, Some(op));
                match self.backtrack(&mut calls, &mut linearized, &mut state) {
                    Some(resume) => node = resume,
                    None => return KeyVerdict::Violation(self.explain(&deepest)),
                }
            }
        }
        debug_assert_eq!(
            calls.len(),
            op_count,
            "empty list but not all operations placed"
        );
        KeyVerdict::Linearizable
    }

    fn gave_up(&self, limits: CheckLimits, deepest: &Deepest) -> String {
        format!(
            "explored more than max_states_per_key = {} configurations over {} operations \
             (deepest linearized prefix: {} operations)",
            limits.max_states_per_key,
            self.ops.len(),
            deepest.depth
        )
    }

    fn describe(&self, op: usize) -> String {
        let key_op = &self.ops[op];
        if key_op.may_never_apply {
            format!(
                "#{} {} (applies by {} or never)",
                key_op.history_index, key_op.record, key_op.return_time
            )
        } else {
            format!("#{} {}", key_op.history_index, key_op.record)
        }
    }

    fn explain(&self, deepest: &Deepest) -> Vec<String> {
        let mut lines = Vec::new();
        let shown_from = deepest.prefix.len().saturating_sub(CONTEXT_PREFIX_OPS);
        if shown_from > 0 {
            lines.push(format!("... {shown_from} earlier operations linearized"));
        }
        for &op in &deepest.prefix[shown_from..] {
            lines.push(format!("linearized: {}", self.describe(op)));
        }
        let value = deepest.state.and_then(|state| self.model.value(state));
        lines.push(match value {
            Some(bytes) => format!("register then holds {}", QuotedBytes(bytes)),
            None => "register then absent".to_string(),
        });
        let Some(stuck) = deepest.stuck else {
            return lines;
        };
        lines.push(format!(
            "cannot be placed before it returns: {}",
            self.describe(stuck)
        ));
        // Ops not yet linearized that were called before the stuck op returned: the
        // candidates the search tried.
        let deadline = self.ops[stuck].return_time;
        let mut in_prefix = vec![false; self.ops.len()];
        for &op in &deepest.prefix {
            in_prefix[op] = true;
        }
        let mut pending: Vec<usize> = (0..self.ops.len())
            .filter(|&op| op != stuck && !in_prefix[op])
            .filter(|&op| self.ops[op].record.call_time <= deadline)
            .collect();
        pending.sort_by_key(|&op| self.ops[op].record.call_time);
        let hidden = pending.len().saturating_sub(CONTEXT_PENDING_OPS);
        for &op in pending.iter().take(CONTEXT_PENDING_OPS) {
            lines.push(format!("pending: {}", self.describe(op)));
        }
        if hidden > 0 {
            lines.push(format!("... {hidden} more pending operations"));
        }
        lines
    }
}

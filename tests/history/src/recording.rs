//! Recording a concurrent history: one call event and at most one return event per operation.

use std::collections::HashMap;
use std::fmt;

use super::operation::{ClientId, Op, Outcome};

/// Names one recorded operation; returned by [`History::invoke`], passed to [`History::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(usize);

impl OpId {
    /// Position of the operation in the history, in order of invocation.
    pub fn index(self) -> usize {
        self.0
    }
}

/// One operation as recorded: its call, and its return if one was recorded.
#[derive(Debug, Clone)]
pub(crate) struct RecordedOp {
    pub(crate) client: ClientId,
    pub(crate) op: Op,
    pub(crate) call_time: u64,
    /// `None` while the operation is outstanding (and forever if it never returns).
    pub(crate) completion: Option<(u64, Outcome)>,
}

impl RecordedOp {
    /// The observed outcome, or `None` when the client never learned it (no return, or
    /// `Outcome::Unknown`): such an operation's return time is +infinity.
    pub(crate) fn known_outcome(&self) -> Option<&Outcome> {
        match &self.completion {
            Some((_, Outcome::Unknown)) | None => None,
            Some((_, outcome)) => Some(outcome),
        }
    }

    /// The return time the checker uses: `None` means +infinity.
    pub(crate) fn return_time(&self) -> Option<u64> {
        self.known_outcome()?;
        self.completion.as_ref().map(|(time, _)| *time)
    }
}

impl fmt::Display for RecordedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} {} ", self.client, self.op)?;
        match &self.completion {
            Some((time, Outcome::Unknown)) => {
                write!(
                    f,
                    "-> unknown [{}, inf) (gave up at {})",
                    self.call_time, time
                )
            }
            Some((time, outcome)) => write!(f, "-> {} [{}, {}]", outcome, self.call_time, time),
            None => write!(f, "-> no return [{}, inf)", self.call_time),
        }
    }
}

/// A concurrent history of client operations, in any time unit (simulator ticks or wall-clock
/// nanoseconds), ready for [`check`](super::check).
///
/// Time rules: an operation's return time must not be before its call time. When a return and a
/// call carry the same time, the checker treats the two operations as concurrent (it cannot tell
/// which came first), which never causes a false violation but can hide one; a simulator that
/// wants same-tick events ordered should stamp them with a strictly increasing counter.
///
/// This is test tooling: misuse (a second outstanding operation for one client, completing an
/// operation twice, an outcome of the wrong kind, time running backwards within an operation)
/// panics with a message naming the mistake, since such a history is meaningless.
#[derive(Debug, Clone, Default)]
pub struct History {
    operations: Vec<RecordedOp>,
    /// The operation each client is waiting on; at most one per client.
    outstanding: HashMap<ClientId, OpId>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the call event of `op` by `client` at `time`.
    ///
    /// # Panics
    /// If `client` already has an operation outstanding (neither completed nor given up on).
    pub fn invoke(&mut self, client: ClientId, op: Op, time: u64) -> OpId {
        let id = OpId(self.operations.len());
        if let Some(previous) = self.outstanding.insert(client, id) {
            panic!(
                "history misuse: client {client} invoked {op} at {time} while its operation {} \
                 ({}) is still outstanding",
                previous.0, self.operations[previous.0]
            );
        }
        self.operations.push(RecordedOp {
            client,
            op,
            call_time: time,
            completion: None,
        });
        id
    }

    /// Records the return event of `id` at `time`. `Outcome::Unknown` means the client gave up
    /// (timed out): the operation may still take effect at any later moment, or never.
    ///
    /// # Panics
    /// If `id` is not from this history or already completed, if `outcome` is of the wrong kind
    /// for the operation, or if `time` is before the call time.
    pub fn complete(&mut self, id: OpId, outcome: Outcome, time: u64) {
        let Some(record) = self.operations.get_mut(id.0) else {
            panic!(
                "history misuse: completing operation {} that was never invoked",
                id.0
            );
        };
        assert!(
            record.completion.is_none(),
            "history misuse: operation {} ({record}) completed twice",
            id.0
        );
        assert!(
            record.op.accepts(&outcome),
            "history misuse: outcome {outcome:?} does not answer {}",
            record.op
        );
        assert!(
            time >= record.call_time,
            "history misuse: operation {} ({}) returns at {time}, before its call at {}",
            id.0,
            record.op,
            record.call_time
        );
        record.completion = Some((time, outcome));
        let removed = self.outstanding.remove(&record.client);
        assert_eq!(
            removed,
            Some(id),
            "outstanding table out of step with records"
        );
    }

    /// Number of operations recorded (outstanding ones included).
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    pub(crate) fn operations(&self) -> &[RecordedOp] {
        &self.operations
    }
}

/// One line per operation, in order of invocation, with its interval.
impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, record) in self.operations.iter().enumerate() {
            writeln!(f, "#{index} {record}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &str) -> Op {
        Op::Get {
            key: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn records_calls_and_returns() {
        let mut history = History::new();
        assert!(history.is_empty());
        let first = history.invoke(1, get("a"), 5);
        let second = history.invoke(2, get("a"), 6);
        history.complete(first, Outcome::Get(None), 7);
        assert_eq!(history.len(), 2);
        assert_eq!(second.index(), 1);
        assert_eq!(history.operations()[0].return_time(), Some(7));
        // Outstanding: return time is +infinity.
        assert_eq!(history.operations()[1].return_time(), None);
        // The client may go on once its operation has completed.
        history.invoke(1, get("a"), 8);
        assert!(history
            .to_string()
            .contains("#0 client 1 get(\"a\") -> absent [5, 7]"));
    }

    #[test]
    fn unknown_outcome_returns_at_infinity() {
        let mut history = History::new();
        let id = history.invoke(
            1,
            Op::Put {
                key: b"a".to_vec(),
                value: b"v".to_vec(),
            },
            1,
        );
        history.complete(id, Outcome::Unknown, 9);
        assert_eq!(history.operations()[0].return_time(), None);
        assert!(history.operations()[0].known_outcome().is_none());
    }

    #[test]
    #[should_panic(expected = "still outstanding")]
    fn second_outstanding_operation_panics() {
        let mut history = History::new();
        history.invoke(1, get("a"), 1);
        history.invoke(1, get("b"), 2);
    }

    #[test]
    #[should_panic(expected = "completed twice")]
    fn double_completion_panics() {
        let mut history = History::new();
        let id = history.invoke(1, get("a"), 1);
        history.complete(id, Outcome::Get(None), 2);
        history.complete(id, Outcome::Get(None), 3);
    }

    #[test]
    #[should_panic(expected = "does not answer")]
    fn wrong_outcome_kind_panics() {
        let mut history = History::new();
        let id = history.invoke(1, get("a"), 1);
        history.complete(id, Outcome::Put, 2);
    }

    #[test]
    #[should_panic(expected = "before its call")]
    fn return_before_call_panics() {
        let mut history = History::new();
        let id = history.invoke(1, get("a"), 10);
        history.complete(id, Outcome::Get(None), 9);
    }
}

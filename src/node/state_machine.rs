//! The application's replicated state machine, as the node runtime drives it.

/// A deterministic state machine replicated by Ketch.
///
/// Every node applies the same committed commands in the same order, so `apply` must be a pure
/// function of the state and the command: no clocks, no randomness, no I/O whose result can
/// differ between nodes. All methods run on the node's apply thread, never concurrently; a slow
/// implementation slows applying (and, through bounded queues, admission of new proposals), but
/// never the event loop's heartbeats.
pub trait StateMachine: Send + 'static {
    /// Applies the committed command at log `index` and returns the result handed to the
    /// proposer (if it is waiting on this node).
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;

    /// Answers a read-only query against the current state. Called only once the state
    /// includes every command committed before the read began (ReadIndex), so the answer is
    /// linearizable.
    fn query(&mut self, query: &[u8]) -> Vec<u8>;

    /// Writes the whole state to `out`, as of the last applied command.
    fn snapshot(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()>;

    /// Replaces the whole state by one written by [`StateMachine::snapshot`].
    fn restore(&mut self, input: &mut dyn std::io::Read) -> std::io::Result<()>;
}

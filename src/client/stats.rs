//! Counters of what a [`Client`](super::Client) did, for tests and benchmarks.

/// Totals since the client was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Attempts made (rounds of sending the unanswered commands of a call, or trying to
    /// connect for them), first attempts included.
    pub attempts: u64,
    /// Attempts after the first of a call (after a failure).
    pub retries: u64,
    /// Writes sent again after an attempt in which they may have been applied (the node
    /// answered `-TIMEOUT` or the connection failed after sending): the cases the session
    /// deduplicates.
    pub writes_resent_maybe_applied: u64,
    /// Connections opened.
    pub connections_opened: u64,
}

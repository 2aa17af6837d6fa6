//! The client's timeouts and retry bounds.

use std::time::Duration;

/// How long a [`Client`](super::Client) waits and how often it retries.
///
/// One call makes at most `attempts_max` attempts and spends at most `retry_time_max` on
/// them (an attempt already in progress may overrun it by up to `io_timeout`). Between
/// attempts it sleeps an exponential backoff, `backoff_initial` doubling up to `backoff_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Wait for a TCP connection to one node.
    pub connect_timeout: Duration,
    /// Wait for one read or write on a connection. Longer than the server's own request
    /// timeout (5 s by default), so that a slow commit is answered `-TIMEOUT` by the node
    /// rather than abandoned by the client.
    pub io_timeout: Duration,
    /// Most attempts per call, the first included.
    pub attempts_max: u32,
    /// Most time spent retrying one call.
    pub retry_time_max: Duration,
    /// First backoff between attempts.
    pub backoff_initial: Duration,
    /// Largest backoff between attempts.
    pub backoff_max: Duration,
    /// Send each keyed command to its slot's master as `CLUSTER SLOTS` names it, rather than
    /// everything to one node (the client module docs, "Routing").
    pub slot_aware: bool,
}

impl Default for ClientOptions {
    /// Values that ride out a leader election on a loaded machine (elections take 0.3-1 s):
    /// 1 s connect, 10 s I/O, 50 attempts within 30 s, backoff 10 ms doubling to 500 ms;
    /// slot-aware.
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(10),
            attempts_max: 50,
            retry_time_max: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(500),
            slot_aware: true,
        }
    }
}

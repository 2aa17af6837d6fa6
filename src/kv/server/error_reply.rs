//! The error rule: what a failed command's error reply tells the client.
//!
//! - `-TRYAGAIN ...`: the command was certainly not applied; retrying it is safe. A write gets
//!   it only when it never reached a log: no leader known, refused by backpressure, or sent to
//!   a node that had already stopped participating after a disk failure. Every failed read is
//!   a `TRYAGAIN`.
//! - `-TIMEOUT ...`: a write that may have been applied: it reached the leader's log and no
//!   result came (no result in time, leadership lost while it was pending, node shutting
//!   down). This includes every write pending on a leader whose log write or fsync fails: the
//!   leader sent the entry to its followers before its own write was durable (thesis
//!   §10.2.1), so they may commit it under the next leader.
//! - `-ERR ...`: the command's own error (wrong type, syntax, expired session, a value or a
//!   command over the size limit): retrying the same command cannot succeed.

use crate::node::{ProposeError, ReadError};

/// The error reply for a failed write, by the error rule (module docs).
pub fn propose_error_text(error: &ProposeError) -> String {
    match error {
        ProposeError::NotLeader { leader_hint } => match leader_hint {
            Some(leader) => {
                format!("TRYAGAIN not applied: not the leader and not forwarded (leader {leader})")
            }
            None => "TRYAGAIN not applied: no leader known".to_string(),
        },
        ProposeError::Backpressure => "TRYAGAIN not applied: too many pending writes".to_string(),
        // Given only to proposals that arrived after the node stopped (see `ProposeError`).
        ProposeError::Stopped { reason } => format!("TRYAGAIN not applied: node stopped: {reason}"),
        ProposeError::Timeout => {
            "TIMEOUT no result in time; the write may have been applied".to_string()
        }
        ProposeError::LeaderLost => {
            "TIMEOUT leadership changed; the write may have been applied".to_string()
        }
        ProposeError::ShuttingDown => {
            "TIMEOUT node shutting down; the write may have been applied".to_string()
        }
    }
}

/// The error reply for a failed read: always `TRYAGAIN` (a read changes nothing).
pub fn read_error_text(error: &ReadError) -> String {
    format!("TRYAGAIN read not served: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rule_codes() {
        for (error, code) in [
            (ProposeError::NotLeader { leader_hint: None }, "TRYAGAIN"),
            (ProposeError::Backpressure, "TRYAGAIN"),
            (
                ProposeError::Stopped {
                    reason: "disk".into(),
                },
                "TRYAGAIN",
            ),
            (ProposeError::Timeout, "TIMEOUT"),
            (ProposeError::LeaderLost, "TIMEOUT"),
            (ProposeError::ShuttingDown, "TIMEOUT"),
        ] {
            assert!(propose_error_text(&error).starts_with(code), "{error:?}");
        }
        assert!(read_error_text(&ReadError::Timeout).starts_with("TRYAGAIN"));
    }

    #[test]
    fn leader_hints_read_as_words() {
        assert_eq!(
            read_error_text(&ReadError::NotLeader { leader_hint: None }),
            "TRYAGAIN read not served: no leader to confirm the read (no leader known)"
        );
        assert_eq!(
            read_error_text(&ReadError::NotLeader {
                leader_hint: Some(3)
            }),
            "TRYAGAIN read not served: no leader to confirm the read (leader hint: node 3)"
        );
        assert_eq!(
            ProposeError::NotLeader {
                leader_hint: Some(3)
            }
            .to_string(),
            "not the leader (leader hint: node 3); not applied"
        );
        assert_eq!(
            ProposeError::NotLeader { leader_hint: None }.to_string(),
            "not the leader (no leader known); not applied"
        );
    }
}

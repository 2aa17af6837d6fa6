//! What a [`Client`](super::Client) call can fail with, split by what the caller may assume
//! about the cluster's state afterwards.

use std::fmt;

/// A failed client call.
///
/// The split follows the service's error rule: [`ClientError::NotApplied`] means the command
/// certainly changed nothing (it never reached a node, or every node that saw it refused it
/// with `-TRYAGAIN`); [`ClientError::MaybeApplied`] means it may have been applied, once (the
/// client's session makes its own retries idempotent, so never twice). Reads only ever fail
/// with `NotApplied`: they change nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The command certainly was not applied; calling again is safe.
    NotApplied {
        /// The command's name (`SET`, `GET`, ...).
        command: String,
        /// Attempts made (connection attempts included).
        attempts: u32,
        /// The last failure seen.
        reason: String,
    },
    /// The command may have been applied (a node stopped answering after receiving it, or
    /// answered `-TIMEOUT`) and the retry budget ran out before an answer said which.
    MaybeApplied {
        /// The command's name.
        command: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure seen.
        reason: String,
    },
    /// The server answered with an error reply that is the command's result, e.g.
    /// `ERR value is not an integer or out of range`: retrying would give the same answer.
    Server {
        /// The command's name.
        command: String,
        /// The error line without the leading `-`.
        message: String,
    },
    /// The server answered with a reply of a type this method does not expect (e.g. an
    /// integer to `GET`): a protocol mismatch, not a cluster failure.
    UnexpectedReply {
        /// The command's name.
        command: String,
        /// The reply, debug-formatted.
        reply: String,
    },
    /// The caller's input cannot be used (no addresses, an address that does not resolve,
    /// an empty command).
    InvalidArgument(String),
}

impl ClientError {
    /// True if the command certainly changed nothing on the cluster.
    pub fn is_not_applied(&self) -> bool {
        matches!(
            self,
            ClientError::NotApplied { .. } | ClientError::InvalidArgument(_)
        )
    }

    /// True if the command may have been applied (at most once).
    pub fn is_maybe_applied(&self) -> bool {
        matches!(self, ClientError::MaybeApplied { .. })
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotApplied {
                command,
                attempts,
                reason,
            } => write!(
                f,
                "{command} not applied after {attempts} attempts (safe to retry): {reason}"
            ),
            ClientError::MaybeApplied {
                command,
                attempts,
                reason,
            } => write!(
                f,
                "{command} may have been applied (at most once) after {attempts} attempts: {reason}"
            ),
            ClientError::Server { command, message } => {
                write!(f, "{command} answered with an error: {message}")
            }
            ClientError::UnexpectedReply { command, reply } => {
                write!(f, "{command} got an unexpected reply: {reply}")
            }
            ClientError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

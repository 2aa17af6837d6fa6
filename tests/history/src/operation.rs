//! The operations a client issues against the key-value store, and the outcomes it observes.

use std::fmt;

/// Identifies one client. A client has at most one operation outstanding at a time.
pub type ClientId = u64;

/// One client request against the key-value register model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read the current value of `key`.
    Get {
        /// The key read.
        key: Vec<u8>,
    },
    /// Replace the value of `key` with `value`.
    Put {
        /// The key written.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Append `value` to the value of `key` (an absent key counts as empty).
    Append {
        /// The key written.
        key: Vec<u8>,
        /// The bytes appended.
        value: Vec<u8>,
    },
}

impl Op {
    /// The key this operation touches; the checker partitions a history by it.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Append { key, .. } => key,
        }
    }

    /// True when `outcome` is a possible answer to this operation (or `Unknown`).
    pub fn accepts(&self, outcome: &Outcome) -> bool {
        matches!(
            (self, outcome),
            (_, Outcome::Unknown)
                | (Op::Get { .. }, Outcome::Get(_))
                | (Op::Put { .. }, Outcome::Put)
                | (Op::Append { .. }, Outcome::Append)
        )
    }
}

/// What a client learned about an operation when it returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A read's answer: `None` when the key is absent.
    Get(Option<Vec<u8>>),
    /// A put was acknowledged.
    Put,
    /// An append was acknowledged.
    Append,
    /// No answer (timeout, lost connection): the operation may or may not have taken effect.
    Unknown,
}

/// Renders bytes as a quoted string with non-printable bytes escaped, for humans.
pub(crate) struct QuotedBytes<'a>(pub(crate) &'a [u8]);

impl fmt::Display for QuotedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &byte in self.0 {
            write!(f, "{}", std::ascii::escape_default(byte))?;
        }
        f.write_str("\"")
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get { key } => write!(f, "get({})", QuotedBytes(key)),
            Op::Put { key, value } => {
                write!(f, "put({}, {})", QuotedBytes(key), QuotedBytes(value))
            }
            Op::Append { key, value } => {
                write!(f, "append({}, {})", QuotedBytes(key), QuotedBytes(value))
            }
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Get(Some(value)) => write!(f, "{}", QuotedBytes(value)),
            Outcome::Get(None) => f.write_str("absent"),
            Outcome::Put | Outcome::Append => f.write_str("ok"),
            Outcome::Unknown => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_non_printable_bytes() {
        let op = Op::Put {
            key: b"k\n".to_vec(),
            value: vec![0xff, b'a'],
        };
        assert_eq!(op.to_string(), "put(\"k\\n\", \"\\xffa\")");
        assert_eq!(Outcome::Get(None).to_string(), "absent");
    }

    #[test]
    fn accepts_only_matching_outcomes() {
        let get = Op::Get { key: b"k".to_vec() };
        assert!(get.accepts(&Outcome::Get(None)));
        assert!(get.accepts(&Outcome::Unknown));
        assert!(!get.accepts(&Outcome::Put));
        let append = Op::Append {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        };
        assert!(append.accepts(&Outcome::Append));
        assert!(!append.accepts(&Outcome::Put));
    }
}

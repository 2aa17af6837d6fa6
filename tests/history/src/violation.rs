//! The report of a history that no sequential order explains.

use std::fmt;

use super::operation::QuotedBytes;

/// A linearizability violation on one key, with enough context to see why.
///
/// `ops` holds human-readable lines, each an operation with its interval `[call, return]`:
/// the last operations of the longest order the checker could build, the register value that
/// order leaves, the operation that could not be placed before its return, and the other
/// operations that were pending at that point. It is a window, not the whole key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key whose operations are not linearizable.
    pub key: Vec<u8>,
    /// Context, one line per operation (plus one line naming the register value).
    pub ops: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "linearizability violation on key {}: no sequential order of its operations fits \
             the register model",
            QuotedBytes(&self.key)
        )?;
        for line in &self.ops {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_every_line() {
        let violation = Violation {
            key: b"k".to_vec(),
            ops: vec!["first [1, 2]".to_string(), "second [3, 4]".to_string()],
        };
        let text = violation.to_string();
        assert!(text.starts_with("linearizability violation on key \"k\""));
        assert!(text.contains("\n  first [1, 2]\n  second [3, 4]"));
    }
}

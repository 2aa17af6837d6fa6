//! What the log holds: entries, Raft's hard state, and the range of indices it accepts.

/// The largest index the log accepts (2^62): far beyond any real log, and it keeps index
/// arithmetic clear of overflow even on damaged input.
pub const MAX_INDEX: u64 = 1 << 62;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Its position in the log, starting at 1.
    pub index: u64,
    /// The Raft term it was created in (opaque to the log).
    pub term: u64,
    /// Its payload.
    pub data: Vec<u8>,
}

impl Entry {
    /// Makes an entry.
    pub fn new(index: u64, term: u64, data: impl Into<Vec<u8>>) -> Self {
        Entry {
            index,
            term,
            data: data.into(),
        }
    }
}

/// Raft's hard state. `vote == 0` means no vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in the current term, 0 for none.
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

//! [`StoreBatch`]: the changes of one atomic write, across any number of groups.

use crate::entry::{Entry, HardState};

/// One change in a batch, in call order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchOp<'a> {
    Append { group: u64, entries: Appended<'a> },
    Truncate { group: u64, from: u64 },
    HardState { group: u64, hard_state: HardState },
    Compact { group: u64, first: u64 },
    Remove { group: u64 },
}

/// The entries of one append: owned (a [`StoreBatch`]), or borrowed from the caller for as long
/// as the write takes ([`crate::LogStore::write_entries`]), which saves copying them before they
/// are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Appended<'a> {
    Owned(Vec<Entry>),
    /// Entries `first, first + 1, ...` of one term.
    Borrowed {
        first: u64,
        term: u64,
        data: &'a [&'a [u8]],
    },
}

impl Appended<'_> {
    pub fn len(&self) -> usize {
        match self {
            Appended::Owned(entries) => entries.len(),
            Appended::Borrowed { data, .. } => data.len(),
        }
    }

    /// `(index, term, data)` of the entry at `position`.
    pub fn get(&self, position: usize) -> (u64, u64, &[u8]) {
        match self {
            Appended::Owned(entries) => {
                let entry = &entries[position];
                (entry.index, entry.term, &entry.data)
            }
            Appended::Borrowed { first, term, data } => {
                (first + position as u64, *term, data[position])
            }
        }
    }
}

/// Changes to many groups, written by [`crate::LogStore::write`] as one atomic batch: after a
/// crash it is there whole or not at all. Within a batch, the operations on one group apply in
/// call order.
///
/// ```
/// use ketch_storage::{Entry, HardState, StoreBatch};
/// let mut batch = StoreBatch::new();
/// batch.append(7, vec![Entry::new(1, 1, b"a".to_vec()), Entry::new(2, 1, b"b".to_vec())]);
/// batch.set_hard_state(7, HardState { term: 1, vote: 2, commit: 1 });
/// batch.append(9, vec![Entry::new(40, 3, b"c".to_vec())]);
/// assert_eq!(batch.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreBatch {
    pub(crate) ops: Vec<BatchOp<'static>>,
}

impl StoreBatch {
    /// An empty batch.
    pub fn new() -> Self {
        StoreBatch::default()
    }

    /// Appends `entries` (contiguous indices) to `group`. The first must be at most the group's
    /// last index + 1 at this point of the batch; if it is lower, it replaces the group's entries
    /// from there on (a Raft conflict). A group's first append may start at any index ≥ 1.
    pub fn append(&mut self, group: u64, entries: Vec<Entry>) -> &mut Self {
        if !entries.is_empty() {
            self.ops.push(BatchOp::Append {
                group,
                entries: Appended::Owned(entries),
            });
        }
        self
    }

    /// Drops `group`'s entries at or above `from`.
    pub fn truncate_suffix(&mut self, group: u64, from: u64) -> &mut Self {
        self.ops.push(BatchOp::Truncate { group, from });
        self
    }

    /// Records `group`'s Raft hard state.
    pub fn set_hard_state(&mut self, group: u64, hard_state: HardState) -> &mut Self {
        self.ops.push(BatchOp::HardState { group, hard_state });
        self
    }

    /// Makes `first` the first index of `group` (entries below it are dropped). If `first` is
    /// past the group's last index + 1, the group becomes empty and continues at `first` (a
    /// snapshot was installed).
    pub fn compact_prefix(&mut self, group: u64, first: u64) -> &mut Self {
        self.ops.push(BatchOp::Compact { group, first });
        self
    }

    /// Removes `group` and everything it holds.
    pub fn remove_group(&mut self, group: u64) -> &mut Self {
        self.ops.push(BatchOp::Remove { group });
        self
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Empties the batch, keeping its allocation.
    pub fn clear(&mut self) {
        self.ops.clear();
    }
}

//! The in-memory Raft log after the latest snapshot: entries, terms, commit and apply
//! positions, and the split between the durable and the not-yet-durable tail.
//!
//! Design choice: the core keeps every entry after its latest snapshot in memory (plus, after a
//! compaction, a bounded number of older entries that followers still need). Memory is bounded
//! by the snapshot threshold: once `snapshot_threshold_entries` applied entries follow the
//! snapshot the core asks for a new one and then drops the prefix. The durable copy lives in
//! the driver's storage; on restart the core is rebuilt from it (see `Core::new`).
//!
//! Positions, all log indices, always ordered
//! `snapshot.index <= applied <= handed_out <= commit <= last_index` and
//! `durable_index <= last_index`:
//! - `unstable_from`: the first entry not yet handed to the driver in a `Ready`;
//! - `durable_index`: the driver reported entries up to here durable;
//! - `handed_out`: committed entries up to here were given to the driver to apply;
//! - `applied`: the driver reported them applied.

use std::collections::VecDeque;

use super::message::{Entry, SnapshotMeta};

/// The outcome of offering AppendEntries to a follower's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The log matched at `prev_log_index`; it now matches the leader's up to `match_index`.
    Matched {
        /// Last index known to match the leader's log.
        match_index: u64,
    },
    /// Raft §5.3: no entry at `prev_log_index` with `prev_log_term`.
    Rejected {
        /// Largest index `<= min(prev, last)` whose term is `<= prev_log_term`.
        hint_index: u64,
        /// Term at `hint_index` (0 when unknown).
        hint_term: u64,
    },
    /// The message contradicts committed state or is malformed; nothing was changed.
    Inconsistent(String),
}

/// The log of one node.
#[derive(Debug, Clone)]
pub struct RaftLog {
    snapshot: SnapshotMeta,
    /// Index of `entries[0]`; may be below `snapshot.index + 1` when entries are retained for
    /// followers after a compaction.
    offset: u64,
    /// Term of the entry at `offset - 1`.
    offset_prev_term: u64,
    entries: VecDeque<Entry>,
    commit: u64,
    applied: u64,
    handed_out: u64,
    durable_index: u64,
    unstable_from: u64,
    pending_truncate: Option<u64>,
}

impl RaftLog {
    /// A log restored from durable state: a snapshot and the durable entries after it.
    pub fn new(snapshot: SnapshotMeta, entries: Vec<Entry>, commit: u64) -> Result<Self, String> {
        let mut expected_index = snapshot.index + 1;
        let mut previous_term = snapshot.term;
        for entry in &entries {
            if entry.index != expected_index {
                return Err(format!(
                    "durable entries not contiguous: expected index {expected_index}, found {}",
                    entry.index
                ));
            }
            if entry.term < previous_term {
                return Err(format!(
                    "durable entry {} has term {} below its predecessor's {previous_term}",
                    entry.index, entry.term
                ));
            }
            expected_index += 1;
            previous_term = entry.term;
        }
        let last_index = expected_index - 1;
        if commit > last_index {
            return Err(format!(
                "hard state commit {commit} beyond last durable index {last_index}"
            ));
        }
        let commit = commit.max(snapshot.index);
        Ok(Self {
            offset: snapshot.index + 1,
            offset_prev_term: snapshot.term,
            applied: snapshot.index,
            handed_out: snapshot.index,
            durable_index: last_index,
            unstable_from: last_index + 1,
            entries: entries.into(),
            snapshot,
            commit,
            pending_truncate: None,
        })
    }

    /// The latest snapshot's metadata.
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The first index held in memory.
    pub fn first_index(&self) -> u64 {
        self.offset
    }

    /// The index of the last entry (the snapshot index when no entry follows it).
    pub fn last_index(&self) -> u64 {
        self.offset + self.entries.len() as u64 - 1
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> u64 {
        self.term(self.last_index())
            .expect("the last entry's term is always known")
    }

    /// The commit index.
    pub fn commit(&self) -> u64 {
        self.commit
    }

    /// The applied index reported by the driver.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Entries up to here are durable.
    pub fn durable_index(&self) -> u64 {
        self.durable_index
    }

    /// The term of the entry at `index`, if known.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if index == self.offset - 1 {
            return Some(self.offset_prev_term);
        }
        if index < self.offset {
            return None;
        }
        self.entries
            .get((index - self.offset) as usize)
            .map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index < self.offset {
            return None;
        }
        self.entries.get((index - self.offset) as usize)
    }

    /// Whether the entry at `index` has `term`.
    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: a log is at least as up to date as ours if its last term is higher, or
    /// equal with an index at least ours.
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Largest index `<= index` whose term is `<= term`, with its term (etcd's
    /// `findConflictByTerm`). Stops at the first index whose term is unknown (compacted, thus
    /// committed), returning term 0 there.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Some(t) if t > term && i > 0 => i -= 1,
                Some(t) => return (i, t),
                None => return (i, 0),
            }
        }
    }

    /// Entries `[low, high)` up to `max_bytes` (at least one entry when the range is non-empty).
    /// `None` if `low` is no longer held.
    pub fn entries_from(&self, low: u64, high: u64, max_bytes: u64) -> Option<Vec<Entry>> {
        if low < self.offset {
            return None;
        }
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for index in low..high.min(self.last_index() + 1) {
            let entry = &self.entries[(index - self.offset) as usize];
            if !out.is_empty() && bytes + entry.size_bytes() > max_bytes {
                break;
            }
            bytes += entry.size_bytes();
            out.push(entry.clone());
        }
        Some(out)
    }

    /// Leader append of new entries at the end of the log.
    pub fn append(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            assert_eq!(
                entry.index,
                self.last_index() + 1,
                "log: append not contiguous"
            );
            assert!(entry.term >= self.last_term(), "log: append term goes back");
            self.entries.push_back(entry);
        }
    }

    /// Follower side of AppendEntries (Raft §5.3, receiver rules 2-5).
    pub fn maybe_append(
        &mut self,
        mut prev_index: u64,
        mut prev_term: u64,
        leader_commit: u64,
        mut entries: Vec<Entry>,
    ) -> AppendOutcome {
        if prev_index.checked_add(entries.len() as u64).is_none() {
            return AppendOutcome::Inconsistent(format!(
                "entries after prev index {prev_index} overflow the index space"
            ));
        }
        let mut term_floor = prev_term;
        for (k, entry) in entries.iter().enumerate() {
            if entry.index != prev_index + 1 + k as u64 {
                return AppendOutcome::Inconsistent(format!(
                    "entries not contiguous after prev index {prev_index}"
                ));
            }
            if entry.term < term_floor {
                return AppendOutcome::Inconsistent(format!(
                    "entry {} term {} below its predecessor's",
                    entry.index, entry.term
                ));
            }
            term_floor = entry.term;
        }
        let last_new_index = prev_index + entries.len() as u64;
        if prev_index < self.commit {
            // Entries up to our commit index are committed here, so by leader completeness
            // (Raft §5.4) the leader holds exactly them: any difference is inconsistent input.
            if let Some(t) = self.term(prev_index) {
                if t != prev_term {
                    return AppendOutcome::Inconsistent(format!(
                        "prev entry {prev_index} term {prev_term} conflicts with committed term {t}"
                    ));
                }
            }
            for entry in entries.iter().take_while(|e| e.index <= self.commit) {
                if let Some(t) = self.term(entry.index) {
                    if t != entry.term {
                        return AppendOutcome::Inconsistent(format!(
                            "entry {} term {} conflicts with committed term {t}",
                            entry.index, entry.term
                        ));
                    }
                }
            }
            let skip = (self.commit - prev_index).min(entries.len() as u64) as usize;
            entries.drain(..skip);
            if entries.is_empty() {
                return AppendOutcome::Matched {
                    match_index: last_new_index,
                };
            }
            prev_index = self.commit;
            prev_term = self
                .term(prev_index)
                .expect("the commit index's term is always known");
        }
        if !self.match_term(prev_index, prev_term) {
            let hint = prev_index.min(self.last_index());
            let (hint_index, hint_term) = self.find_conflict_by_term(hint, prev_term);
            return AppendOutcome::Rejected {
                hint_index,
                hint_term,
            };
        }
        let conflict = entries
            .iter()
            .position(|e| self.term(e.index) != Some(e.term));
        if let Some(position) = conflict {
            let conflict_index = entries[position].index;
            assert!(
                conflict_index > self.commit,
                "log: conflict at {conflict_index} at or below commit {} slipped through",
                self.commit
            );
            if conflict_index <= self.last_index() {
                self.truncate_from(conflict_index);
            }
            for entry in entries.drain(position..) {
                self.entries.push_back(entry);
            }
        }
        self.commit_to(leader_commit.min(last_new_index));
        AppendOutcome::Matched {
            match_index: last_new_index,
        }
    }

    fn truncate_from(&mut self, index: u64) {
        assert!(
            index > self.commit,
            "log: truncating committed entry {index} (commit {})",
            self.commit
        );
        assert!(index >= self.offset, "log: truncating below first index");
        self.entries.truncate((index - self.offset) as usize);
        self.pending_truncate = Some(self.pending_truncate.map_or(index, |p| p.min(index)));
        self.unstable_from = self.unstable_from.min(index);
        self.durable_index = self.durable_index.min(index - 1);
    }

    /// Advances the commit index (never backwards, never beyond the last index).
    pub fn commit_to(&mut self, index: u64) {
        if index > self.commit {
            assert!(
                index <= self.last_index(),
                "log: commit {index} beyond last index {}",
                self.last_index()
            );
            self.commit = index;
        }
    }

    /// The driver reports entries up to `index` durable, the entry at `index` having `term`.
    /// Ignored if that entry has since been replaced (Log Matching makes (index, term) unique).
    pub fn on_persisted(&mut self, index: u64, term: u64) -> bool {
        if index <= self.durable_index
            || index >= self.unstable_from
            || !self.match_term(index, term)
        {
            return false;
        }
        self.durable_index = index;
        true
    }

    /// Takes the truncation point and the entries not yet handed to the driver.
    pub fn take_unstable(&mut self) -> (Option<u64>, Vec<Entry>) {
        let truncate = self.pending_truncate.take();
        let entries: Vec<Entry> = if self.unstable_from <= self.last_index() {
            let start = (self.unstable_from - self.offset) as usize;
            self.entries.range(start..).cloned().collect()
        } else {
            Vec::new()
        };
        self.unstable_from = self.last_index() + 1;
        (truncate, entries)
    }

    /// Whether `take_unstable` would return anything.
    pub fn has_unstable(&self) -> bool {
        self.pending_truncate.is_some() || self.unstable_from <= self.last_index()
    }

    /// Whether committed, durable entries wait to be handed out for applying.
    pub fn has_next_committed(&self) -> bool {
        self.handed_out < self.commit.min(self.durable_index)
    }

    /// Takes committed entries to apply, only up to the durable index so that a crash never
    /// leaves the state machine ahead of the log, bounded by `max_bytes`.
    pub fn take_committed(&mut self, max_bytes: u64) -> Vec<Entry> {
        let high = self.commit.min(self.durable_index);
        if self.handed_out >= high {
            return Vec::new();
        }
        let entries = self
            .entries_from(self.handed_out + 1, high + 1, max_bytes)
            .expect("committed entries after the applied index are always held");
        if let Some(last) = entries.last() {
            self.handed_out = last.index;
        }
        entries
    }

    /// The driver reports entries applied up to `index`.
    pub fn applied_to(&mut self, index: u64) {
        assert!(
            index <= self.handed_out,
            "log: applied {index} beyond the entries handed out ({})",
            self.handed_out
        );
        self.applied = self.applied.max(index);
    }

    /// Installs a newer snapshot built locally; keeps entries from `retain_from` on (if below
    /// the snapshot index) for followers still catching up.
    pub fn compact(&mut self, meta: SnapshotMeta, retain_from: u64) {
        assert!(
            meta.index <= self.applied,
            "log: snapshot {} beyond applied {}",
            meta.index,
            self.applied
        );
        assert_eq!(
            self.term(meta.index),
            Some(meta.term),
            "log: snapshot term does not match the log"
        );
        if meta.index <= self.snapshot.index {
            return;
        }
        let new_offset = retain_from.min(meta.index + 1).max(self.offset);
        let new_prev_term = self
            .term(new_offset - 1)
            .expect("term before the retained range is known");
        self.entries.drain(..(new_offset - self.offset) as usize);
        self.offset = new_offset;
        self.offset_prev_term = new_prev_term;
        self.snapshot = meta;
    }

    /// Replaces the whole log by a snapshot received from the leader (Raft §7: the follower
    /// discards its entire log when the snapshot does not match it).
    pub fn restore(&mut self, meta: SnapshotMeta) {
        assert!(
            meta.index >= self.commit,
            "log: restoring snapshot {} below commit {}",
            meta.index,
            self.commit
        );
        self.entries.clear();
        self.offset = meta.index + 1;
        self.offset_prev_term = meta.term;
        self.commit = meta.index;
        self.applied = meta.index;
        self.handed_out = meta.index;
        self.durable_index = meta.index;
        self.unstable_from = meta.index + 1;
        self.pending_truncate = None;
        self.snapshot = meta;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::message::EntryKind;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: bytes::Bytes::from(vec![index as u8]),
        }
    }

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, t)| entry(i as u64 + 1, *t))
            .collect();
        RaftLog::new(SnapshotMeta::default(), entries, 0).unwrap()
    }

    #[test]
    fn restore_from_durable_state_checks_contiguity() {
        assert!(RaftLog::new(SnapshotMeta::default(), vec![entry(2, 1)], 0).is_err());
        assert!(RaftLog::new(SnapshotMeta::default(), vec![entry(1, 2), entry(2, 1)], 0).is_err());
        assert!(RaftLog::new(SnapshotMeta::default(), vec![entry(1, 1)], 2).is_err());
        let log = log_with_terms(&[1, 1, 2]);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.last_term(), 2);
        assert_eq!(log.durable_index(), 3);
        assert_eq!(log.term(0), Some(0));
        assert_eq!(log.term(4), None);
    }

    #[test]
    fn append_matching_conflicting_and_rejected() {
        let mut log = log_with_terms(&[1, 1, 2]);
        // Conflict at 3: truncate and replace.
        let outcome = log.maybe_append(2, 1, 3, vec![entry(3, 3), entry(4, 3)]);
        assert_eq!(outcome, AppendOutcome::Matched { match_index: 4 });
        assert_eq!(log.term(3), Some(3));
        assert_eq!(log.commit(), 3);
        let (truncate, unstable) = log.take_unstable();
        assert_eq!(truncate, Some(3));
        assert_eq!(unstable.len(), 2);
        assert_eq!(log.durable_index(), 2);
        // Mismatch at prev: rejected with a hint.
        let outcome = log.maybe_append(6, 5, 6, vec![]);
        assert_eq!(
            outcome,
            AppendOutcome::Rejected {
                hint_index: 4,
                hint_term: 3
            }
        );
        // A duplicate append changes nothing.
        let outcome = log.maybe_append(2, 1, 3, vec![entry(3, 3)]);
        assert_eq!(outcome, AppendOutcome::Matched { match_index: 3 });
        assert_eq!(log.last_index(), 4);
        assert!(!log.has_unstable());
    }

    #[test]
    fn conflict_below_commit_is_inconsistent_and_changes_nothing() {
        let mut log = log_with_terms(&[1, 1, 2]);
        log.commit_to(3);
        let outcome = log.maybe_append(1, 1, 3, vec![entry(2, 1), entry(3, 3)]);
        assert!(matches!(outcome, AppendOutcome::Inconsistent(_)));
        assert_eq!(log.term(3), Some(2));
        let outcome = log.maybe_append(1, 1, 3, vec![entry(3, 1)]);
        assert!(matches!(outcome, AppendOutcome::Inconsistent(_)));
        // Entries below commit that match are skipped; the rest appended.
        let outcome = log.maybe_append(1, 1, 3, vec![entry(2, 1), entry(3, 2), entry(4, 2)]);
        assert_eq!(outcome, AppendOutcome::Matched { match_index: 4 });
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn find_conflict_by_term_skips_whole_terms() {
        let log = log_with_terms(&[1, 1, 2, 2, 2, 5, 5, 5]);
        assert_eq!(log.find_conflict_by_term(8, 4), (5, 2));
        assert_eq!(log.find_conflict_by_term(8, 5), (8, 5));
        assert_eq!(log.find_conflict_by_term(8, 1), (2, 1));
        assert_eq!(log.find_conflict_by_term(20, 0), (0, 0));
    }

    #[test]
    fn persistence_completion_ignores_replaced_entries() {
        let mut log = log_with_terms(&[1]);
        log.append(vec![entry(2, 1), entry(3, 1)]);
        let _ = log.take_unstable();
        let outcome = log.maybe_append(1, 1, 0, vec![entry(2, 2)]);
        assert_eq!(outcome, AppendOutcome::Matched { match_index: 2 });
        let _ = log.take_unstable();
        assert!(!log.on_persisted(3, 1), "entry 3 was truncated");
        assert!(!log.on_persisted(2, 1), "entry 2 now has term 2");
        assert!(log.on_persisted(2, 2));
        assert_eq!(log.durable_index(), 2);
    }

    #[test]
    fn committed_entries_are_handed_out_only_when_durable() {
        let mut log = log_with_terms(&[1, 1]);
        log.append(vec![entry(3, 1), entry(4, 1)]);
        log.commit_to(4);
        let first = log.take_committed(1 << 20);
        assert_eq!(
            first.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(!log.has_next_committed());
        let _ = log.take_unstable();
        assert!(log.on_persisted(4, 1));
        assert_eq!(
            log.take_committed(1).len(),
            1,
            "byte bound still hands out one entry"
        );
        assert_eq!(log.take_committed(1 << 20).len(), 1);
        log.applied_to(4);
        assert_eq!(log.applied(), 4);
    }

    #[test]
    fn compaction_retains_requested_entries_and_restore_replaces_all() {
        let mut log = log_with_terms(&[1, 1, 2, 2, 3]);
        log.commit_to(5);
        let _ = log.take_committed(1 << 20);
        log.applied_to(5);
        let meta = SnapshotMeta {
            index: 4,
            term: 2,
            ..SnapshotMeta::default()
        };
        log.compact(meta, 3);
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(4), Some(2));
        assert_eq!(log.term(1), None);
        assert!(log.entries_from(2, 5, 100).is_none());
        log.restore(SnapshotMeta {
            index: 9,
            term: 4,
            ..SnapshotMeta::default()
        });
        assert_eq!(log.last_index(), 9);
        assert_eq!(log.last_term(), 4);
        assert_eq!(log.commit(), 9);
        assert_eq!(log.applied(), 9);
    }
}

//! The configurations recorded in the log: the one in force at the latest snapshot and every
//! configuration-change entry after it, in log order.
//!
//! Thesis §4.1: a server uses the latest configuration in its log, whether or not that entry is
//! committed. A configuration entry can therefore be removed again by a log truncation (a new
//! leader overwrites an uncommitted suffix), and the server must then fall back to the one
//! before it. Keeping every configuration entry after the snapshot makes both the fallback and
//! "the configuration in force at index i" (needed for snapshot metadata) exact.
//!
//! Bound: one element per configuration entry between the snapshot and the end of the log. The
//! log itself is bounded by the snapshot threshold, and a leader has at most one change (two
//! entries: joint, then final) in flight, so in practice this holds a handful of elements.

use super::membership::Membership;
use super::message::{Entry, EntryKind, SnapshotMeta};

/// A configuration entry: where it is in the log and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipEntry {
    /// Its log index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// The configuration it puts in force.
    pub membership: Membership,
}

/// The configurations of one node's log.
#[derive(Debug, Clone)]
pub struct MembershipLog {
    /// The configuration in force at the snapshot index.
    base: MembershipEntry,
    /// Configuration entries after `base.index`, strictly increasing indices.
    changes: Vec<MembershipEntry>,
}

/// Decodes the configuration carried by a configuration-change entry; `None` for any other
/// kind of entry, `Some(Err)` if the payload is malformed.
pub fn entry_membership(entry: &Entry) -> Option<Result<Membership, String>> {
    if entry.kind != EntryKind::ConfChange {
        return None;
    }
    Some(Membership::decode(&entry.data).ok_or_else(|| {
        format!(
            "configuration entry {} (term {}) does not hold a valid membership",
            entry.index, entry.term
        )
    }))
}

impl MembershipLog {
    /// The configurations of a log restored from `snapshot` and the durable `entries` after
    /// it. Fails on a malformed configuration entry.
    pub fn new(snapshot: &SnapshotMeta, entries: &[Entry]) -> Result<Self, String> {
        let mut log = Self {
            base: MembershipEntry {
                index: snapshot.index,
                term: snapshot.term,
                membership: snapshot.membership.clone(),
            },
            changes: Vec::new(),
        };
        for entry in entries {
            log.append(entry)?;
        }
        Ok(log)
    }

    /// The latest configuration (in force from the moment it was appended, thesis §4.1).
    pub fn current(&self) -> &Membership {
        &self.latest().membership
    }

    /// The latest configuration entry (the snapshot's configuration if none follows it).
    pub fn latest(&self) -> &MembershipEntry {
        self.changes.last().unwrap_or(&self.base)
    }

    /// The configuration in force at log index `index` (the latest at or below it). Below the
    /// snapshot the snapshot's configuration is the best known.
    pub fn at(&self, index: u64) -> &Membership {
        &self
            .changes
            .iter()
            .rev()
            .find(|c| c.index <= index)
            .unwrap_or(&self.base)
            .membership
    }

    /// Every configuration known, oldest first.
    pub fn all(&self) -> impl Iterator<Item = &MembershipEntry> {
        std::iter::once(&self.base).chain(self.changes.iter())
    }

    /// Records `entry` if it is a configuration entry appended at the end of the log.
    /// Returns whether the configuration changed.
    pub fn append(&mut self, entry: &Entry) -> Result<bool, String> {
        let Some(membership) = entry_membership(entry) else {
            return Ok(false);
        };
        let membership = membership?;
        assert!(
            entry.index > self.latest().index,
            "configuration entry {} appended at or below the latest one ({})",
            entry.index,
            self.latest().index
        );
        self.changes.push(MembershipEntry {
            index: entry.index,
            term: entry.term,
            membership,
        });
        Ok(true)
    }

    /// Forgets configuration entries the log no longer holds (`holds(index, term)` false):
    /// after a truncation the previous configuration is in force again. Returns whether the
    /// configuration changed.
    pub fn retain_held(&mut self, holds: impl Fn(u64, u64) -> bool) -> bool {
        let before = self.changes.len();
        // Entries are truncated as a suffix, so the first missing one ends the held prefix.
        let held = self
            .changes
            .iter()
            .position(|c| !holds(c.index, c.term))
            .unwrap_or(before);
        self.changes.truncate(held);
        self.changes.len() != before
    }

    /// A snapshot up to `index` now replaces the log prefix: the configuration at `index`
    /// becomes the base.
    pub fn compact(&mut self, index: u64, term: u64) {
        if index <= self.base.index {
            return;
        }
        let membership = self.at(index).clone();
        self.changes.retain(|c| c.index > index);
        self.base = MembershipEntry {
            index,
            term,
            membership,
        };
    }

    /// A snapshot received from the leader replaced the whole log.
    pub fn restore(&mut self, meta: &SnapshotMeta) {
        self.base = MembershipEntry {
            index: meta.index,
            term: meta.term,
            membership: meta.membership.clone(),
        };
        self.changes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(index: u64, term: u64, voters: &[u64]) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::ConfChange,
            data: bytes::Bytes::from(Membership::with_voters(voters.iter().copied()).encode()),
        }
    }

    #[test]
    fn latest_configuration_wins_and_truncation_reverts() {
        let snapshot = SnapshotMeta {
            index: 2,
            term: 1,
            membership: Membership::with_voters([1, 2, 3]),
            size_bytes: 0,
        };
        let normal = Entry {
            term: 1,
            index: 3,
            kind: EntryKind::Normal,
            data: bytes::Bytes::from(vec![1]),
        };
        let mut log = MembershipLog::new(&snapshot, &[normal, conf(4, 1, &[1, 2, 4])]).unwrap();
        assert_eq!(log.current(), &Membership::with_voters([1, 2, 4]));
        assert_eq!(log.at(3), &Membership::with_voters([1, 2, 3]));
        assert!(log.append(&conf(6, 2, &[1, 4])).unwrap());
        assert_eq!(log.at(5).voters.len(), 3);
        // Index 6 was overwritten by another leader's entry: the configuration at 4 is back.
        assert!(log.retain_held(|index, _| index < 6));
        assert_eq!(log.current(), &Membership::with_voters([1, 2, 4]));
        assert!(!log.retain_held(|_, _| true));
        log.compact(5, 2);
        assert_eq!(log.latest().index, 5);
        assert_eq!(log.current(), &Membership::with_voters([1, 2, 4]));
        log.restore(&snapshot);
        assert_eq!(log.current(), &Membership::with_voters([1, 2, 3]));
    }

    #[test]
    fn malformed_configuration_entries_are_refused() {
        let mut bad = conf(1, 1, &[1]);
        bad.data.truncate(bad.data.len() - 1);
        assert!(MembershipLog::new(&SnapshotMeta::default(), &[bad]).is_err());
    }
}

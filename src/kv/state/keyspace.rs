//! [`Keyspace`]: the keys, their values, deadlines and revisions, in an order every replica
//! agrees on.
//!
//! # Order
//!
//! Keys live in a `BTreeMap` under a *stored key*: the 8-byte big-endian FNV-1a hash of the
//! key, then the key. Iteration (`KEYS`, `SCAN`, `RANDOMKEY`, snapshots) therefore follows
//! (hash, key) order, which depends only on the set of keys, never on insertion history or a
//! per-process hash seed: replicas that applied the same log, or restored the same snapshot,
//! answer alike. The hash order is what makes a `SCAN` cursor a plain integer: cursor `c`
//! means "keys whose hash is >= c", so a key present for the whole scan is returned at least
//! once whatever is added or removed meanwhile (Redis' guarantee), and a scan ends with 0.
//! A page never splits keys of one hash, so it may exceed `COUNT` by the keys colliding on
//! the last hash (FNV-1a over keys an attacker chooses can collide at will; each such key
//! still costs its client one write).
//!
//! # Expiry
//!
//! A key may have a deadline (absolute ms, log time). A key whose deadline is <= `now` is
//! absent: [`Keyspace::get`] hides it, [`Keyspace::get_live_mut`] and the other write paths
//! remove it on the way (lazy expiry). `deadlines` indexes volatile keys by deadline so that
//! [`Keyspace::reclaim`] removes expired keys without reads (active expiry). `DBSIZE` counts
//! every stored key, expired ones not yet reclaimed included, as Redis does.
//!
//! # Revisions
//!
//! Every change to a key sets its revision to the log index of the entry that made it; an
//! absent or expired key has revision 0. `WATCH` compares them (see `command`). A key deleted
//! and created again has a new revision; a key absent when watched and absent again at `EXEC`
//! compares equal even if it existed in between (Redis would abort that transaction).
//!
//! # Memory per key
//!
//! Beyond the key and value bytes: the stored key's 8-byte hash prefix and its `Vec` (24),
//! the entry (value enum 24, deadline 16, revision 8), B-tree node slack (about a third of a
//! slot on average), allocator headers for the key and value (about 16 each): roughly 110
//! bytes per key. A key with a deadline also costs its `deadlines` entry: 8 + 24 + a second
//! copy of the stored key + slack, roughly 50 bytes plus the key again.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::value::Value;

/// One key's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute deadline in ms (log time), if volatile. Changed only through the keyspace,
    /// which keeps its index.
    deadline_ms: Option<u64>,
    /// Log index of the last change.
    pub revision: u64,
}

impl Entry {
    /// The deadline, if any.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.deadline_ms
    }

    fn live_at(&self, now_ms: u64) -> bool {
        self.deadline_ms.is_none_or(|deadline| deadline > now_ms)
    }
}

/// FNV-1a, 64 bits: fixed forever, since it orders keys in replies and snapshots.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn stored_key(key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(8 + key.len());
    stored.extend_from_slice(&key_hash(key).to_be_bytes());
    stored.extend_from_slice(key);
    stored
}

fn user_key(stored: &[u8]) -> &[u8] {
    &stored[8..]
}

fn stored_hash(stored: &[u8]) -> u64 {
    u64::from_be_bytes(
        stored[..8]
            .try_into()
            .expect("stored keys start with 8 hash bytes"),
    )
}

/// The keys (see the module docs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keyspace {
    entries: BTreeMap<Vec<u8>, Entry>,
    /// (deadline, stored key) of every volatile key.
    deadlines: BTreeSet<(u64, Vec<u8>)>,
}

/// One page of a `SCAN`.
#[derive(Debug)]
pub struct ScanPage<'a> {
    /// The cursor to continue from (0: done).
    pub next_cursor: u64,
    /// Live keys visited, with their entries.
    pub keys: Vec<(&'a [u8], &'a Entry)>,
}

impl Keyspace {
    /// Stored keys, expired ones not reclaimed yet included (`DBSIZE`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys with a deadline.
    pub fn volatile_len(&self) -> usize {
        self.deadlines.len()
    }

    /// The key's entry if it is live at `now_ms`.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.entries
            .get(&stored_key(key))
            .filter(|entry| entry.live_at(now_ms))
    }

    /// The key's revision at `now_ms` (0: absent or expired).
    pub fn revision(&self, key: &[u8], now_ms: u64) -> u64 {
        self.get(key, now_ms).map_or(0, |entry| entry.revision)
    }

    /// The key's entry to change, if live at `now_ms`; an expired key is removed. The caller
    /// sets the revision if it changes the entry.
    pub fn get_live_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let stored = stored_key(key);
        let expired = match self.entries.get(&stored) {
            None => return None,
            Some(entry) => !entry.live_at(now_ms),
        };
        if expired {
            self.remove_stored(&stored);
            return None;
        }
        self.entries.get_mut(&stored)
    }

    /// Sets the key to `value` with `deadline_ms`, at revision `revision`.
    pub fn set(&mut self, key: &[u8], value: Value, deadline_ms: Option<u64>, revision: u64) {
        let stored = stored_key(key);
        let old_deadline = self.entries.get(&stored).and_then(|e| e.deadline_ms);
        if old_deadline != deadline_ms {
            if let Some(old) = old_deadline {
                let removed = self.deadlines.remove(&(old, stored.clone()));
                debug_assert!(removed, "deadline index misses a key");
            }
            if let Some(new) = deadline_ms {
                self.deadlines.insert((new, stored.clone()));
            }
        }
        self.entries.insert(
            stored,
            Entry {
                value,
                deadline_ms,
                revision,
            },
        );
    }

    /// Changes a stored key's deadline (no-op if the key is not stored).
    pub fn set_deadline(&mut self, key: &[u8], deadline_ms: Option<u64>, revision: u64) {
        let stored = stored_key(key);
        let Some(entry) = self.entries.get_mut(&stored) else {
            return;
        };
        entry.revision = revision;
        if entry.deadline_ms == deadline_ms {
            return;
        }
        if let Some(old) = entry.deadline_ms {
            let removed = self.deadlines.remove(&(old, stored.clone()));
            debug_assert!(removed, "deadline index misses a key");
        }
        entry.deadline_ms = deadline_ms;
        if let Some(new) = deadline_ms {
            self.deadlines.insert((new, stored));
        }
    }

    /// Removes the key; its entry if it was live at `now_ms`.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Entry> {
        self.remove_stored(&stored_key(key))
            .filter(|entry| entry.live_at(now_ms))
    }

    fn remove_stored(&mut self, stored: &[u8]) -> Option<Entry> {
        let entry = self.entries.remove(stored)?;
        if let Some(deadline) = entry.deadline_ms {
            let removed = self.deadlines.remove(&(deadline, stored.to_vec()));
            debug_assert!(removed, "deadline index misses a key");
        }
        Some(entry)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.deadlines.clear();
    }

    /// Removes up to `keys_max` keys whose deadline is <= `now_ms`, earliest first; how many.
    pub fn reclaim(&mut self, now_ms: u64, keys_max: usize) -> usize {
        let mut removed = 0;
        while removed < keys_max {
            let Some((deadline, stored)) = self.deadlines.first().cloned() else {
                break;
            };
            if deadline > now_ms {
                break;
            }
            let entry = self.remove_stored(&stored);
            debug_assert!(entry.is_some(), "deadline index names a missing key");
            removed += 1;
        }
        removed
    }

    /// Every live key with its entry, in (hash, key) order (`KEYS`).
    pub fn iter_live(&self, now_ms: u64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.entries
            .iter()
            .filter(move |(_, entry)| entry.live_at(now_ms))
            .map(|(stored, entry)| (user_key(stored), entry))
    }

    /// Every stored key with its entry, expired ones included, in (hash, key) order (the
    /// snapshot).
    pub fn iter_stored(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.entries
            .iter()
            .map(|(stored, entry)| (user_key(stored), entry))
    }

    /// Visits about `count` stored keys from `cursor` (see the module docs), returning the
    /// live ones and the cursor to continue from.
    pub fn scan(&self, cursor: u64, count: usize, now_ms: u64) -> ScanPage<'_> {
        let start = cursor.to_be_bytes().to_vec();
        let mut keys = Vec::new();
        let mut last_hash = None;
        for (visited, (stored, entry)) in self.entries.range(start..).enumerate() {
            let hash = stored_hash(stored);
            if visited >= count.max(1) && last_hash != Some(hash) {
                return ScanPage {
                    next_cursor: hash,
                    keys,
                };
            }
            last_hash = Some(hash);
            if entry.live_at(now_ms) {
                keys.push((user_key(stored), entry));
            }
        }
        ScanPage {
            next_cursor: 0,
            keys,
        }
    }

    /// A live key: the first at or after hash `seed`, wrapping around (`RANDOMKEY`; the
    /// caller derives `seed` from something every replica agrees on).
    pub fn some_key(&self, seed: u64, now_ms: u64) -> Option<&[u8]> {
        let start = seed.to_be_bytes().to_vec();
        self.entries
            .range((Bound::Included(start.clone()), Bound::Unbounded))
            .chain(self.entries.range(..start))
            .find(|(_, entry)| entry.live_at(now_ms))
            .map(|(stored, _)| user_key(stored))
    }

    /// Checks the deadline index against the entries (tests and debug restores).
    pub fn check_invariants(&self) {
        let volatile = self
            .entries
            .iter()
            .filter(|(_, e)| e.deadline_ms.is_some())
            .count();
        assert_eq!(
            volatile,
            self.deadlines.len(),
            "one index entry per volatile key"
        );
        for (deadline, stored) in &self.deadlines {
            let entry = self.entries.get(stored).expect("indexed key is stored");
            assert_eq!(
                entry.deadline_ms,
                Some(*deadline),
                "index holds the key's deadline"
            );
        }
        for stored in self.entries.keys() {
            assert_eq!(
                stored_hash(stored),
                key_hash(user_key(stored)),
                "hash prefix"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet as Set;

    fn string(bytes: &[u8]) -> Value {
        Value::String(bytes.to_vec())
    }

    #[test]
    fn expired_keys_are_hidden_removed_on_write_and_reclaimed() {
        let mut keys = Keyspace::default();
        keys.set(b"a", string(b"1"), Some(100), 1);
        keys.set(b"b", string(b"2"), Some(200), 2);
        keys.set(b"c", string(b"3"), None, 3);
        assert_eq!(keys.volatile_len(), 2);
        assert!(keys.get(b"a", 99).is_some());
        assert!(keys.get(b"a", 100).is_none(), "a deadline is exclusive");
        assert_eq!(keys.revision(b"b", 150), 2);
        assert_eq!(keys.revision(b"a", 150), 0);
        assert!(keys.get_live_mut(b"a", 150).is_none());
        assert_eq!(keys.len(), 2, "the write path removed the expired key");
        assert_eq!(keys.reclaim(150, 10), 0);
        assert_eq!(keys.reclaim(250, 10), 1);
        assert_eq!((keys.len(), keys.volatile_len()), (1, 0));
        keys.set_deadline(b"c", Some(500), 4);
        keys.set(b"c", string(b"x"), None, 5);
        assert_eq!(keys.volatile_len(), 0, "SET without a deadline clears it");
        keys.check_invariants();
    }

    #[test]
    fn a_scan_returns_every_key_present_throughout_despite_changes() {
        let mut keys = Keyspace::default();
        for i in 0..500u32 {
            keys.set(format!("k{i}").as_bytes(), string(b"v"), None, 1);
        }
        let mut seen = Set::new();
        let mut cursor = 0;
        let mut rounds = 0;
        loop {
            let page = keys.scan(cursor, 10, 0);
            assert!(page.keys.len() <= 12, "COUNT bounds a page");
            seen.extend(page.keys.iter().map(|(k, _)| k.to_vec()));
            cursor = page.next_cursor;
            // Churn between pages: remove some keys, add others.
            rounds += 1;
            keys.remove(format!("k{}", 400 + rounds).as_bytes(), 0);
            keys.set(format!("new{rounds}").as_bytes(), string(b"v"), None, 2);
            if cursor == 0 {
                break;
            }
        }
        for i in 0..400u32 {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
        assert!(rounds >= 40, "{rounds} pages");
    }

    #[test]
    fn order_depends_only_on_the_keys() {
        let mut forward = Keyspace::default();
        let mut backward = Keyspace::default();
        for i in 0..100u32 {
            forward.set(&i.to_le_bytes(), string(b"v"), Some(u64::from(i) + 10), 1);
        }
        for i in (0..100u32).rev() {
            backward.set(&i.to_le_bytes(), string(b"v"), Some(u64::from(i) + 10), 1);
        }
        assert_eq!(forward, backward);
        let a: Vec<_> = forward.iter_live(0).map(|(k, _)| k.to_vec()).collect();
        let b: Vec<_> = backward.iter_live(0).map(|(k, _)| k.to_vec()).collect();
        assert_eq!(a, b);
        assert_eq!(forward.some_key(12345, 0), backward.some_key(12345, 0));
    }
}

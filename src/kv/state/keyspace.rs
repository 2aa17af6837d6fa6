//! [`Keyspace`]: the keys, their values, deadlines and revisions, in an order every replica
//! agrees on.
//!
//! # Order
//!
//! Keys are grouped by the 64-bit FNV-1a hash of the key; each hash holds a [`Bucket`] of the
//! keys with that hash, in key order (almost always one key), and the hashes are kept in an
//! ordered set. Iteration
//! (`KEYS`, `SCAN`, `RANDOMKEY`, snapshots) therefore follows (hash, key) order, which depends
//! only on the set of keys, never on insertion history or a per-process hash seed: replicas
//! that applied the same log, or restored the same snapshot, answer alike. The hash order is
//! what makes a `SCAN` cursor a plain integer: cursor `c` means "keys whose hash is >= c", so
//! a key present for the whole scan is returned at least once whatever is added or removed
//! meanwhile (Redis' guarantee), and a scan ends with 0. A page never splits keys of one
//! hash, so it may exceed `COUNT` by the keys colliding on the last hash (FNV-1a over keys an
//! attacker chooses can collide at will; a bucket of many keys is itself a `BTreeMap`, so
//! collisions cost logarithmic time, and each such key still costs its client one write).
//!
//! A page also never splits a *window* of [`SCAN_WINDOW_BITS`] low hash bits: it ends only
//! where the next hash is in another window than the last one visited. A cursor is then a
//! multiple of the window size in all but its low bits that no key lies between, so a cursor
//! with those bits dropped means the same keys. The sharded service uses the room for the
//! lane (see `kv::server::fan_out`). With 64-bit hashes, two keys share a window about once
//! in 2^53 pairs, so pages keep their size; keys made to share one only make a page longer.
//!
//! Point operations (every `GET` and `SET`) do not walk the tree: a `HashMap` from hash to
//! bucket (std's SipHash, seeded per process, so keys an attacker chooses cannot pile up in
//! one slot) finds the bucket in a probe or two, and the ordered set of hashes (`order`) is
//! touched only when a hash appears or goes, and by what walks the keys in order. A lookup in
//! the ordered tree alone compared about 30 slots over several nodes among 100 000 keys; in
//! a profile of the Raft leader under `redis-benchmark -t get`, that search was an eighth of
//! the leader's time. A point operation allocates nothing unless it inserts a key.
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
//! Beyond the key and value bytes: the bucket (the key 24, inline up to 22 bytes, see
//! `stored_key`; the entry: value enum 24, deadline 16, revision 8; the bucket's tag) and its
//! hash (8) in a hash table slot (at most 7/8 full, so 1/7 of a slot more on average, plus a
//! control byte), the hash again in the ordered set (8, with B-tree node slack of about a
//! third), and allocator headers for the value and for a key longer than 22 bytes (about 16
//! each): roughly 135 bytes per key. A key with a deadline also costs its `deadlines` entry:
//! 8 + 8 + 24 + a second copy of the key + slack, roughly 55 bytes plus the key again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::stored_key::StoredKey;
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

/// The keys of one hash, in key order (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bucket {
    /// The usual case: one key.
    One(StoredKey, Entry),
    /// Colliding keys (at least two).
    Many(BTreeMap<Vec<u8>, Entry>),
}

impl Bucket {
    fn get(&self, key: &[u8]) -> Option<&Entry> {
        match self {
            Bucket::One(stored, entry) => (stored[..] == *key).then_some(entry),
            Bucket::Many(keys) => keys.get(key),
        }
    }

    fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        match self {
            Bucket::One(stored, entry) => (stored[..] == *key).then_some(entry),
            Bucket::Many(keys) => keys.get_mut(key),
        }
    }

    /// Inserts or replaces `key`'s entry; the entry it replaced.
    fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        match self {
            Bucket::One(stored, old) if stored[..] == *key => Some(std::mem::replace(old, entry)),
            Bucket::One(..) => {
                let Bucket::One(stored, old) =
                    std::mem::replace(self, Bucket::Many(BTreeMap::new()))
                else {
                    unreachable!("matched One")
                };
                let Bucket::Many(keys) = self else {
                    unreachable!("just set")
                };
                keys.insert(stored.to_vec(), old);
                keys.insert(key.to_vec(), entry);
                None
            }
            Bucket::Many(keys) => match keys.get_mut(key) {
                Some(old) => Some(std::mem::replace(old, entry)),
                None => {
                    keys.insert(key.to_vec(), entry);
                    None
                }
            },
        }
    }

    /// Removes `key`; its entry, and whether the bucket is now empty (the caller drops it).
    fn remove(&mut self, key: &[u8]) -> (Option<Entry>, bool) {
        match self {
            Bucket::One(stored, _) if stored[..] != *key => (None, false),
            Bucket::One(..) => {
                let Bucket::One(_, entry) = std::mem::replace(self, Bucket::Many(BTreeMap::new()))
                else {
                    unreachable!("matched One")
                };
                (Some(entry), true)
            }
            Bucket::Many(keys) => {
                let removed = keys.remove(key);
                if keys.len() == 1 {
                    let (stored, entry) = keys.pop_first().expect("one key");
                    *self = Bucket::One(StoredKey::from(&stored[..]), entry);
                }
                (removed, false)
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Bucket::One(..) => 1,
            Bucket::Many(keys) => keys.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        let (one, many) = match self {
            Bucket::One(key, entry) => (Some((&key[..], entry)), None),
            Bucket::Many(keys) => (None, Some(keys.iter().map(|(k, e)| (&k[..], e)))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// The keys (see the module docs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keyspace {
    /// By hash, for point operations. Never iterated: its order depends on a per-process seed.
    entries: HashMap<u64, Bucket>,
    /// The hashes in `entries`, for everything that walks the keys in order.
    order: BTreeSet<u64>,
    /// Keys stored, expired ones not reclaimed included.
    len: usize,
    /// (deadline, hash, key) of every volatile key.
    deadlines: BTreeSet<(u64, u64, Vec<u8>)>,
}

/// The low hash bits a `SCAN` page never splits (module docs): a returned cursor has no key
/// between it and the start of its window.
pub const SCAN_WINDOW_BITS: u32 = 11;

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
        self.len
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys with a deadline.
    pub fn volatile_len(&self) -> usize {
        self.deadlines.len()
    }

    fn bucket(&self, hash: u64) -> &Bucket {
        self.entries
            .get(&hash)
            .expect("every ordered hash has its bucket")
    }

    /// The key's entry if it is live at `now_ms`.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.entries
            .get(&key_hash(key))?
            .get(key)
            .filter(|entry| entry.live_at(now_ms))
    }

    /// The key's revision at `now_ms` (0: absent or expired).
    pub fn revision(&self, key: &[u8], now_ms: u64) -> u64 {
        self.get(key, now_ms).map_or(0, |entry| entry.revision)
    }

    /// The key's entry to change, if live at `now_ms`; an expired key is removed. The caller
    /// sets the revision if it changes the entry.
    pub fn get_live_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let hash = key_hash(key);
        let live = self.entries.get(&hash)?.get(key)?.live_at(now_ms);
        if !live {
            self.remove_hashed(hash, key);
            return None;
        }
        self.entries.get_mut(&hash)?.get_mut(key)
    }

    /// Sets the key to `value` with `deadline_ms`, at revision `revision`.
    pub fn set(&mut self, key: &[u8], value: Value, deadline_ms: Option<u64>, revision: u64) {
        let hash = key_hash(key);
        let entry = Entry {
            value,
            deadline_ms,
            revision,
        };
        let old = match self.entries.entry(hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Bucket::One(StoredKey::from(key), entry));
                self.order.insert(hash);
                None
            }
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                slot.get_mut().insert(key, entry)
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        let old_deadline = old.and_then(|old| old.deadline_ms);
        if old_deadline != deadline_ms {
            if let Some(old) = old_deadline {
                let removed = self.deadlines.remove(&(old, hash, key.to_vec()));
                debug_assert!(removed, "deadline index misses a key");
            }
            if let Some(new) = deadline_ms {
                self.deadlines.insert((new, hash, key.to_vec()));
            }
        }
    }

    /// Changes a stored key's deadline (no-op if the key is not stored).
    pub fn set_deadline(&mut self, key: &[u8], deadline_ms: Option<u64>, revision: u64) {
        let hash = key_hash(key);
        let Some(entry) = self
            .entries
            .get_mut(&hash)
            .and_then(|bucket| bucket.get_mut(key))
        else {
            return;
        };
        entry.revision = revision;
        if entry.deadline_ms == deadline_ms {
            return;
        }
        if let Some(old) = entry.deadline_ms {
            let removed = self.deadlines.remove(&(old, hash, key.to_vec()));
            debug_assert!(removed, "deadline index misses a key");
        }
        entry.deadline_ms = deadline_ms;
        if let Some(new) = deadline_ms {
            self.deadlines.insert((new, hash, key.to_vec()));
        }
    }

    /// Removes the key; its entry if it was live at `now_ms`.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Entry> {
        self.remove_hashed(key_hash(key), key)
            .filter(|entry| entry.live_at(now_ms))
    }

    fn remove_hashed(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        let bucket = self.entries.get_mut(&hash)?;
        let (entry, emptied) = bucket.remove(key);
        if emptied {
            self.entries.remove(&hash);
            self.order.remove(&hash);
        }
        let entry = entry?;
        self.len -= 1;
        if let Some(deadline) = entry.deadline_ms {
            let removed = self.deadlines.remove(&(deadline, hash, key.to_vec()));
            debug_assert!(removed, "deadline index misses a key");
        }
        Some(entry)
    }

    /// Moves every stored key for which `moves` holds (expired ones not reclaimed yet
    /// included: the state as applied) into a new keyspace, with its value, deadline and
    /// revision; the rest stay. Deterministic: the same keys move on every replica.
    pub fn split_off(&mut self, moves: impl Fn(&[u8]) -> bool) -> Keyspace {
        let moving: Vec<(u64, Vec<u8>)> = self
            .order
            .iter()
            .flat_map(|&hash| self.bucket(hash).iter().map(move |(key, _)| (hash, key)))
            .filter(|(_, key)| moves(key))
            .map(|(hash, key)| (hash, key.to_vec()))
            .collect();
        let mut moved = Keyspace::default();
        for (hash, key) in moving {
            let entry = self.remove_hashed(hash, &key).expect("listed just above");
            moved.set(&key, entry.value, entry.deadline_ms, entry.revision);
        }
        moved
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.deadlines.clear();
        self.len = 0;
    }

    /// Removes up to `keys_max` keys whose deadline is <= `now_ms`, earliest first; how many.
    pub fn reclaim(&mut self, now_ms: u64, keys_max: usize) -> usize {
        let mut removed = 0;
        while removed < keys_max {
            let Some((deadline, hash, key)) = self.deadlines.first().cloned() else {
                break;
            };
            if deadline > now_ms {
                break;
            }
            let entry = self.remove_hashed(hash, &key);
            debug_assert!(entry.is_some(), "deadline index names a missing key");
            removed += 1;
        }
        removed
    }

    /// Every live key with its entry, in (hash, key) order (`KEYS`).
    pub fn iter_live(&self, now_ms: u64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.iter_stored()
            .filter(move |(_, entry)| entry.live_at(now_ms))
    }

    /// Every stored key with its entry, expired ones included, in (hash, key) order (the
    /// snapshot).
    pub fn iter_stored(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.order.iter().flat_map(|hash| self.bucket(*hash).iter())
    }

    /// Visits about `count` stored keys from `cursor` (see the module docs), returning the
    /// live ones and the cursor to continue from.
    pub fn scan(&self, cursor: u64, count: usize, now_ms: u64) -> ScanPage<'_> {
        self.scan_in_windows(cursor, count, now_ms, SCAN_WINDOW_BITS)
    }

    fn scan_in_windows(
        &self,
        cursor: u64,
        count: usize,
        now_ms: u64,
        window_bits: u32,
    ) -> ScanPage<'_> {
        let mut keys = Vec::new();
        let mut visited = 0;
        let mut last_window = None;
        for &hash in self.order.range(cursor..) {
            let bucket = self.bucket(hash);
            let window = hash >> window_bits;
            if visited >= count.max(1) && last_window != Some(window) {
                return ScanPage {
                    next_cursor: hash,
                    keys,
                };
            }
            last_window = Some(window);
            visited += bucket.len();
            keys.extend(bucket.iter().filter(|(_, entry)| entry.live_at(now_ms)));
        }
        ScanPage {
            next_cursor: 0,
            keys,
        }
    }

    /// A live key: the first at or after hash `seed`, wrapping around (`RANDOMKEY`; the
    /// caller derives `seed` from something every replica agrees on).
    pub fn some_key(&self, seed: u64, now_ms: u64) -> Option<&[u8]> {
        self.order
            .range(seed..)
            .chain(self.order.range(..seed))
            .flat_map(|hash| self.bucket(*hash).iter())
            .find(|(_, entry)| entry.live_at(now_ms))
            .map(|(key, _)| key)
    }

    /// Checks the bucket shapes, the count and the deadline index against the entries (tests
    /// and debug restores).
    pub fn check_invariants(&self) {
        let mut stored = 0;
        assert_eq!(
            self.order.len(),
            self.entries.len(),
            "one ordered hash per bucket"
        );
        for &hash in &self.order {
            let bucket = self.bucket(hash);
            if let Bucket::Many(keys) = bucket {
                assert!(keys.len() >= 2, "a bucket of many holds at least two keys");
            }
            for (key, _) in bucket.iter() {
                assert_eq!(key_hash(key), hash, "a key is under its hash");
                stored += 1;
            }
        }
        assert_eq!(stored, self.len, "the count is the keys stored");
        let volatile = self
            .iter_stored()
            .filter(|(_, e)| e.deadline_ms.is_some())
            .count();
        assert_eq!(
            volatile,
            self.deadlines.len(),
            "one index entry per volatile key"
        );
        for (deadline, hash, key) in &self.deadlines {
            let entry = self
                .entries
                .get(hash)
                .and_then(|bucket| bucket.get(key))
                .expect("indexed key is stored");
            assert_eq!(
                entry.deadline_ms,
                Some(*deadline),
                "index holds the key's deadline"
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
    fn split_off_moves_the_chosen_keys_whole_and_keeps_the_rest() {
        let mut keys = Keyspace::default();
        for i in 0..300u32 {
            let deadline = (i % 3 == 0).then_some(1_000 + u64::from(i));
            keys.set(
                format!("k{i}").as_bytes(),
                string(b"v"),
                deadline,
                u64::from(i) + 1,
            );
        }
        let odd = |key: &[u8]| key.last().is_some_and(|b| b % 2 == 1);
        let moved = keys.split_off(odd);
        keys.check_invariants();
        moved.check_invariants();
        assert_eq!(keys.len() + moved.len(), 300);
        assert!(keys.iter_stored().all(|(k, _)| !odd(k)));
        assert!(moved.iter_stored().all(|(k, _)| odd(k)));
        for i in 0..300u32 {
            let key = format!("k{i}");
            let side = if odd(key.as_bytes()) { &moved } else { &keys };
            let entry = side.get(key.as_bytes(), 0).expect("on its side");
            assert_eq!(entry.revision, u64::from(i) + 1);
            assert_eq!(
                entry.deadline_ms(),
                (i % 3 == 0).then_some(1_000 + u64::from(i))
            );
        }
        assert_eq!(keys.volatile_len() + moved.volatile_len(), 100);
    }

    #[test]
    fn a_cursor_without_its_window_bits_resumes_the_same_scan() {
        let mut keys = Keyspace::default();
        for i in 0..2000u32 {
            keys.set(format!("w{i}").as_bytes(), string(b"v"), None, 1);
        }
        let (mut exact, mut dropped) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (0u64, 0u64);
        loop {
            let page = keys.scan(a, 7, 0);
            exact.extend(page.keys.iter().map(|(k, _)| k.to_vec()));
            a = page.next_cursor;
            let page = keys.scan(b, 7, 0);
            dropped.extend(page.keys.iter().map(|(k, _)| k.to_vec()));
            b = page.next_cursor >> SCAN_WINDOW_BITS << SCAN_WINDOW_BITS;
            assert_eq!(a >> SCAN_WINDOW_BITS, b >> SCAN_WINDOW_BITS);
            if a == 0 {
                break;
            }
        }
        assert_eq!(exact, dropped);
        assert_eq!(exact.len(), 2000, "every key once");
    }

    #[test]
    fn a_page_ends_only_between_windows() {
        // 16 windows (60 bits each) for 300 keys: a page runs on to the end of its window.
        let mut keys = Keyspace::default();
        for i in 0..300u32 {
            keys.set(format!("c{i}").as_bytes(), string(b"v"), None, 1);
        }
        let (mut cursor, mut pages, mut seen) = (0, 0, 0);
        loop {
            let page = keys.scan_in_windows(cursor, 1, 0, 60);
            pages += 1;
            seen += page.keys.len();
            let windows: Set<u64> = page.keys.iter().map(|(k, _)| key_hash(k) >> 60).collect();
            assert_eq!(windows.len(), 1, "a page of COUNT 1 is one whole window");
            cursor = page.next_cursor;
            if cursor == 0 {
                break;
            }
            assert!(
                !windows.contains(&(cursor >> 60)),
                "the next page starts a new window"
            );
        }
        assert_eq!(seen, 300);
        assert!(pages <= 16, "{pages} pages");
    }

    fn entry(revision: u64) -> Entry {
        Entry {
            value: string(b"v"),
            deadline_ms: None,
            revision,
        }
    }

    #[test]
    fn a_bucket_holds_colliding_keys_in_order_and_shrinks_back_to_one() {
        let mut bucket = Bucket::One(StoredKey::from(&b"m"[..]), entry(1));
        assert_eq!(bucket.insert(b"m", entry(2)).map(|e| e.revision), Some(1));
        assert!(bucket.insert(b"z", entry(3)).is_none());
        assert!(bucket.insert(b"a", entry(4)).is_none());
        assert_eq!(bucket.len(), 3);
        let order: Vec<_> = bucket
            .iter()
            .map(|(k, e)| (k.to_vec(), e.revision))
            .collect();
        assert_eq!(
            order,
            vec![(b"a".to_vec(), 4), (b"m".to_vec(), 2), (b"z".to_vec(), 3)]
        );
        assert_eq!(bucket.get_mut(b"z").map(|e| e.revision), Some(3));
        assert_eq!(bucket.remove(b"nope"), (None, false));
        assert_eq!(bucket.remove(b"a").0.map(|e| e.revision), Some(4));
        assert_eq!(bucket.remove(b"m").0.map(|e| e.revision), Some(2));
        assert!(
            matches!(bucket, Bucket::One(ref k, _) if &k[..] == b"z"),
            "{bucket:?}"
        );
        assert_eq!(bucket.remove(b"z").0.map(|e| e.revision), Some(3));
    }

    proptest::proptest! {
        /// The keyspace agrees with a plain ordered map of keys to (revision, deadline), and
        /// its invariants hold, whatever the sequence of sets, deadline changes, removals and
        /// reclaims.
        #[test]
        fn the_keyspace_matches_a_model(ops in proptest::collection::vec(
            (0u8..4, 0u8..24, proptest::option::of(0u64..50), 0u64..60), 1..200)) {
            use std::collections::BTreeMap as Model;
            let mut keys = Keyspace::default();
            let mut model: Model<Vec<u8>, (u64, Option<u64>)> = Model::new();
            for (step, (op, key, deadline, now)) in ops.into_iter().enumerate() {
                let key = vec![b'k', key];
                let revision = step as u64 + 1;
                match op {
                    0 => {
                        keys.set(&key, string(b"v"), deadline, revision);
                        model.insert(key, (revision, deadline));
                    }
                    1 => {
                        keys.set_deadline(&key, deadline, revision);
                        if let Some(slot) = model.get_mut(&key) {
                            *slot = (revision, deadline);
                        }
                    }
                    2 => {
                        let live = model.get(&key).is_some_and(|(_, d)| d.is_none_or(|d| d > now));
                        let removed = keys.remove(&key, now);
                        model.remove(&key);
                        proptest::prop_assert_eq!(removed.is_some(), live);
                    }
                    _ => {
                        keys.reclaim(now, usize::MAX);
                        model.retain(|_, (_, d)| d.is_none_or(|d| d > now));
                    }
                }
                keys.check_invariants();
                proptest::prop_assert_eq!(keys.len(), model.len());
                for (k, (revision, deadline)) in &model {
                    let live = deadline.is_none_or(|d| d > now);
                    proptest::prop_assert_eq!(keys.revision(k, now), if live { *revision } else { 0 });
                }
            }
        }
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

//! The bridge between the Raft core's values and `ketch_storage`'s durable log and snapshots.
//!
//! # Layout of the data directory
//!
//! One directory holds both the WAL segments (see `ketch_storage::segment`) and the snapshot
//! files (`snap-*.snap`, see `ketch_storage::snapshot`); each store only touches its own names.
//!
//! # Entries
//!
//! A Raft [`Entry`] `{ term, index, kind, data }` is stored as a storage entry with the same
//! index and term, whose data is one kind byte followed by the application bytes:
//!
//! | offset | size | field                                          |
//! |--------|------|------------------------------------------------|
//! | 0      | 1    | kind: 0 = normal, 1 = no-op, 2 = configuration change; others are refused |
//! | 1      | n    | the application bytes (empty for a no-op; for a configuration change the membership as in `Membership::encode`) |
//!
//! The latest configuration is recovered by the core from the snapshot's membership and the
//! configuration entries loaded after it (`Core::new`); a configuration entry whose bytes do
//! not decode is refused here with its index.
//!
//! # Hard state
//!
//! Stored in the WAL stream (`ketch_storage::HardState`); a vote for nobody is stored as 0
//! (node id 0 is never valid).
//!
//! # Snapshots
//!
//! The snapshot file's membership field (an opaque blob to `ketch_storage`) holds:
//!
//! | bytes | field                                                                      |
//! |-------|----------------------------------------------------------------------------|
//! | 12 + 8 n | the Raft membership encoded as in [`crate::wire::message::encode_membership`]: three id sets (voters, learners, outgoing voters), each a little-endian `u32` count followed by that many little-endian `u64` ids (n ids in all) |
//! | 0 or more | optional, since address book version 1: the peer address book of the node that built the snapshot, encoded exactly as an address entry (`super::addresses`, starting with the versioned magic `\xffKETCHADDRS\x01`) |
//!
//! A snapshot without the address book (written before it existed) still loads; a trailer that
//! is not a well-formed address entry is refused with the snapshot's index. The address book
//! is carried because a node that joins and receives a snapshot covering the log's address
//! entries would otherwise know only its contacts and the entries after the snapshot.
//! Addresses decide nothing (see `super::addresses`), so the builder's book *now* is carried,
//! not the one at the snapshot index. The Raft [`SnapshotMeta::size_bytes`] is the snapshot
//! *file's* length, because that is what InstallSnapshot transfers byte for byte.
//!
//! # Loading at start
//!
//! The newest snapshot whose content verifies is the base (none: index 0, term 0, the initial
//! voters). The WAL is brought in line with it (`Wal::apply_snapshot`, idempotent: a crash
//! between writing a snapshot and compacting the log is repaired here), and the entries after
//! it are loaded.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use ketch_storage::snapshot::{SnapshotOptions, SnapshotReader, SnapshotStore};
use ketch_storage::{Options, Wal};

use crate::raft::{DurableState, Entry, EntryKind, HardState, Membership, NodeId, SnapshotMeta};
use crate::wire::message::{decode_membership, encode_membership};

use super::addresses::{decode_address_entry, encode_address_entry};

/// Errors of the storage bridge.
#[derive(Debug)]
pub enum StorageError {
    /// The durable log or snapshot store failed.
    Storage(ketch_storage::Error),
    /// Stored bytes do not make a Raft value (a kind byte, a membership).
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Where (log index or snapshot index).
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log and the snapshots do not fit together.
    Inconsistent {
        /// What is wrong, for an operator.
        reason: String,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Storage(e) => write!(f, "storage: {e}"),
            StorageError::Decode {
                what,
                index,
                reason,
            } => write!(
                f,
                "cannot decode the stored {what} at index {index}: {reason}"
            ),
            StorageError::Inconsistent { reason } => {
                write!(f, "data directory is inconsistent: {reason}")
            }
        }
    }
}

impl std::error::Error for StorageError {}

impl From<ketch_storage::Error> for StorageError {
    fn from(e: ketch_storage::Error) -> Self {
        StorageError::Storage(e)
    }
}

/// Converts a Raft entry to the stored form (kind byte + data).
pub fn to_storage_entry(entry: &Entry) -> ketch_storage::Entry {
    let mut data = Vec::with_capacity(entry.data.len() + 1);
    data.push(match entry.kind {
        EntryKind::Normal => 0,
        EntryKind::Noop => 1,
        EntryKind::ConfChange => 2,
    });
    data.extend_from_slice(&entry.data);
    ketch_storage::Entry::new(entry.index, entry.term, data)
}

/// Converts a stored entry back to a Raft entry, refusing an unknown or missing kind byte.
pub fn from_storage_entry(entry: ketch_storage::Entry) -> Result<Entry, StorageError> {
    let kind = match entry.data.first() {
        Some(0) => EntryKind::Normal,
        Some(1) => EntryKind::Noop,
        Some(2) => EntryKind::ConfChange,
        other => {
            return Err(StorageError::Decode {
                what: "entry kind",
                index: entry.index,
                reason: format!(
                    "kind byte {other:?} is not 0 (normal), 1 (no-op) or 2 (configuration change)"
                ),
            })
        }
    };
    // The kind byte is sliced off, not removed: removing it would move every byte after it.
    let data = bytes::Bytes::from(entry.data).slice(1..);
    if kind == EntryKind::ConfChange && Membership::decode(&data).is_none() {
        return Err(StorageError::Decode {
            what: "configuration entry",
            index: entry.index,
            reason: "the bytes do not hold a valid membership".to_string(),
        });
    }
    Ok(Entry {
        term: entry.term,
        index: entry.index,
        kind,
        data,
    })
}

/// Raft hard state to the stored form.
pub fn to_storage_hard_state(hs: &HardState) -> ketch_storage::HardState {
    ketch_storage::HardState {
        term: hs.term,
        vote: hs.vote.unwrap_or(0),
        commit: hs.commit,
    }
}

/// Stored hard state to the Raft form.
pub fn from_storage_hard_state(hs: ketch_storage::HardState) -> HardState {
    HardState {
        term: hs.term,
        vote: (hs.vote != 0).then_some(hs.vote),
        commit: hs.commit,
    }
}

/// The membership field of a snapshot file: `membership`, then the address book `addrs`
/// unless it is empty (see the module docs).
pub fn membership_bytes(membership: &Membership, addrs: &BTreeMap<NodeId, SocketAddr>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_membership(membership, &mut out);
    if !addrs.is_empty() {
        out.extend_from_slice(&encode_address_entry(addrs));
    }
    out
}

/// Splits a snapshot's membership field into the encoded membership and the trailer after it
/// (empty, or the address book), walking the three counted id sets. `None` when the counts
/// run past the end.
fn split_membership_field(field: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut end = 0usize;
    for _ in 0..3 {
        let count_bytes = field.get(end..end.checked_add(4)?)?;
        let count = u32::from_le_bytes(count_bytes.try_into().ok()?) as usize;
        end = end.checked_add(4)?.checked_add(count.checked_mul(8)?)?;
        if end > field.len() {
            return None;
        }
    }
    Some(field.split_at(end))
}

/// The peer address book carried in a stored snapshot's membership field; empty for a
/// snapshot written without one.
pub fn snapshot_addresses(
    meta: &ketch_storage::snapshot::SnapshotMeta,
) -> Result<BTreeMap<NodeId, SocketAddr>, StorageError> {
    let decode_error = |reason: String| StorageError::Decode {
        what: "snapshot address book",
        index: meta.index,
        reason,
    };
    let (_, trailer) = split_membership_field(&meta.membership)
        .ok_or_else(|| decode_error("the membership's id counts run past its end".to_string()))?;
    if trailer.is_empty() {
        return Ok(BTreeMap::new());
    }
    decode_address_entry(trailer).map_err(decode_error)
}

/// The Raft view of a stored snapshot.
pub fn raft_snapshot_meta(
    meta: &ketch_storage::snapshot::SnapshotMeta,
) -> Result<SnapshotMeta, StorageError> {
    let decode_error = |reason: String| StorageError::Decode {
        what: "snapshot membership",
        index: meta.index,
        reason,
    };
    let (encoded, _) = split_membership_field(&meta.membership)
        .ok_or_else(|| decode_error("the id counts run past the field's end".to_string()))?;
    let membership = decode_membership(encoded).map_err(|e| decode_error(e.to_string()))?;
    // The address book is checked here too, so a damaged one is found when the snapshot is
    // loaded, not later when a node reads the addresses.
    snapshot_addresses(meta)?;
    Ok(SnapshotMeta {
        index: meta.index,
        term: meta.term,
        membership,
        size_bytes: meta.file_len_bytes(),
    })
}

/// Everything opened from a data directory at start.
#[derive(Debug)]
pub struct LoadedStorage {
    /// The durable log, in line with `durable.snapshot`.
    pub wal: Wal,
    /// The snapshot store on the same directory.
    pub snapshots: SnapshotStore,
    /// What the core is rebuilt from.
    pub durable: DurableState,
    /// The snapshot to restore the state machine from before applying anything, if any.
    pub snapshot_reader: Option<SnapshotReader>,
}

/// Opens (or creates) the data directory and loads the durable Raft state. `initial_voters`
/// is the membership of a fresh cluster (used only when there is no snapshot).
pub fn load(
    data_dir: &Path,
    initial_voters: &BTreeSet<NodeId>,
    wal_options: Options,
) -> Result<LoadedStorage, StorageError> {
    let snapshots = SnapshotStore::open(data_dir, SnapshotOptions::default())?;
    let mut wal = Wal::open(data_dir, wal_options)?;
    let snapshot_reader = snapshots.open_latest_valid()?;
    let snapshot = match &snapshot_reader {
        Some(reader) => raft_snapshot_meta(reader.meta())?,
        None => SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters(initial_voters.iter().copied()),
            size_bytes: 0,
        },
    };
    if snapshot.index > 0 {
        if wal.first_index() > snapshot.index + 1 {
            return Err(StorageError::Inconsistent {
                reason: format!(
                    "the log starts at index {} but the newest valid snapshot ends at {}: entries \
                     in between are lost (a newer snapshot is probably damaged)",
                    wal.first_index(),
                    snapshot.index
                ),
            });
        }
        wal.apply_snapshot(snapshot.index, snapshot.term)?;
    }
    assert!(
        wal.first_index() == snapshot.index + 1,
        "log must continue right after the snapshot"
    );
    let mut entries = Vec::new();
    if wal.last_index() >= wal.first_index() {
        for entry in wal.entries(wal.first_index()..wal.last_index() + 1)? {
            entries.push(from_storage_entry(entry)?);
        }
    }
    let durable = DurableState {
        hard_state: from_storage_hard_state(wal.hard_state()),
        snapshot,
        entries,
    };
    Ok(LoadedStorage {
        wal,
        snapshots,
        durable,
        snapshot_reader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn entries_and_hard_state_round_trip_and_bad_kind_is_refused() {
        let e = Entry {
            term: 3,
            index: 9,
            kind: EntryKind::Noop,
            data: bytes::Bytes::from(Vec::new()),
        };
        assert_eq!(from_storage_entry(to_storage_entry(&e)).unwrap(), e);
        let e = Entry {
            kind: EntryKind::Normal,
            data: bytes::Bytes::from(b"abc".to_vec()),
            ..e
        };
        assert_eq!(from_storage_entry(to_storage_entry(&e)).unwrap(), e);
        assert!(from_storage_entry(ketch_storage::Entry::new(1, 1, vec![7])).is_err());
        assert!(from_storage_entry(ketch_storage::Entry::new(1, 1, vec![])).is_err());
        let hs = HardState {
            term: 4,
            vote: Some(2),
            commit: 8,
        };
        assert_eq!(from_storage_hard_state(to_storage_hard_state(&hs)), hs);
        let hs = HardState { vote: None, ..hs };
        assert_eq!(from_storage_hard_state(to_storage_hard_state(&hs)), hs);
    }

    #[test]
    fn load_fresh_then_with_log_then_with_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let voters: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let loaded = load(dir.path(), &voters, Options::default()).unwrap();
        assert_eq!(loaded.durable.snapshot.index, 0);
        assert_eq!(loaded.durable.snapshot.membership.voters, voters);
        assert!(loaded.durable.entries.is_empty());
        let mut wal = loaded.wal;
        let entries: Vec<Entry> = (1..=5)
            .map(|index| Entry {
                term: 1,
                index,
                kind: EntryKind::Normal,
                data: bytes::Bytes::from(vec![index as u8]),
            })
            .collect();
        let stored: Vec<_> = entries.iter().map(to_storage_entry).collect();
        wal.append(&stored).unwrap();
        wal.set_hard_state(ketch_storage::HardState {
            term: 1,
            vote: 1,
            commit: 5,
        })
        .unwrap();
        wal.sync().unwrap();
        drop(wal);
        let loaded = load(dir.path(), &voters, Options::default()).unwrap();
        assert_eq!(loaded.durable.entries, entries);
        assert_eq!(loaded.durable.hard_state.vote, Some(1));
        // A snapshot at 3 written, the log not yet compacted (a crash in between).
        let membership = Membership::with_voters([1, 2, 3]);
        let mut addrs = BTreeMap::new();
        addrs.insert(2, "127.0.0.1:7002".parse().unwrap());
        addrs.insert(9, "[::1]:7009".parse().unwrap());
        let mut w = loaded
            .snapshots
            .begin(3, 1, &membership_bytes(&membership, &addrs))
            .unwrap();
        w.write_all(b"state").unwrap();
        let file_meta = w.finish().unwrap();
        drop(loaded);
        let loaded = load(dir.path(), &voters, Options::default()).unwrap();
        assert_eq!(loaded.durable.snapshot.index, 3);
        assert_eq!(loaded.durable.snapshot.membership, membership);
        assert_eq!(
            loaded.durable.snapshot.size_bytes,
            file_meta.file_len_bytes()
        );
        assert_eq!(loaded.durable.entries, entries[3..].to_vec());
        assert_eq!(loaded.wal.first_index(), 4);
        let reader = loaded.snapshot_reader.as_ref().unwrap();
        assert_eq!(snapshot_addresses(reader.meta()).unwrap(), addrs);
    }

    #[test]
    fn the_snapshot_membership_field_carries_an_optional_address_book() {
        let membership = Membership {
            voters: [1, 2, 3].into_iter().collect(),
            learners: [4].into_iter().collect(),
            outgoing_voters: [1, 2].into_iter().collect(),
        };
        let meta = |field: Vec<u8>| ketch_storage::snapshot::SnapshotMeta {
            index: 12,
            term: 3,
            membership: field,
            uncompressed_bytes: 0,
            compressed_bytes: 0,
            checksum: 0,
            stream_checksum: 0,
            path: Default::default(),
        };
        // Without an address book (the format before it): the membership, an empty book.
        let plain = meta(membership_bytes(&membership, &BTreeMap::new()));
        assert_eq!(raft_snapshot_meta(&plain).unwrap().membership, membership);
        assert!(snapshot_addresses(&plain).unwrap().is_empty());
        let mut addrs = BTreeMap::new();
        addrs.insert(4, "127.0.0.1:7004".parse().unwrap());
        let with_book = meta(membership_bytes(&membership, &addrs));
        assert_eq!(
            raft_snapshot_meta(&with_book).unwrap().membership,
            membership
        );
        assert_eq!(snapshot_addresses(&with_book).unwrap(), addrs);
        // A trailer that is no address entry, a cut book, or counts past the end: errors
        // naming the snapshot, never a panic.
        let mut garbage = membership_bytes(&membership, &BTreeMap::new());
        garbage.extend_from_slice(b"junk");
        let err = raft_snapshot_meta(&meta(garbage)).unwrap_err().to_string();
        assert!(err.contains("address book") && err.contains("12"), "{err}");
        let full = membership_bytes(&membership, &addrs);
        for cut in 0..full.len() {
            let plain_len = membership_bytes(&membership, &BTreeMap::new()).len();
            let result = raft_snapshot_meta(&meta(full[..cut].to_vec()));
            assert_eq!(result.is_ok(), cut == plain_len, "cut at {cut}");
        }
    }

    #[test]
    fn configuration_entries_round_trip_and_garbage_is_refused() {
        let entry = Entry {
            term: 2,
            index: 9,
            kind: EntryKind::ConfChange,
            data: bytes::Bytes::from(Membership::with_voters([1, 2, 4]).encode()),
        };
        let stored = to_storage_entry(&entry);
        assert_eq!(stored.data[0], 2);
        assert_eq!(from_storage_entry(stored).unwrap(), entry);
        let garbage = ketch_storage::Entry::new(9, 2, vec![2, 1, 0]);
        let err = from_storage_entry(garbage).unwrap_err();
        assert!(err.to_string().contains("configuration entry"), "{err}");
    }

    #[test]
    fn a_restarted_core_recovers_the_latest_configuration_from_snapshot_and_log() {
        use crate::raft::{Config, Core};
        let dir = tempfile::tempdir().unwrap();
        let voters: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let loaded = load(dir.path(), &voters, Options::default()).unwrap();
        let mut joint = Membership::with_voters([1, 2, 4]);
        joint.outgoing_voters = voters.clone();
        let entries = [
            Entry {
                term: 1,
                index: 1,
                kind: EntryKind::Noop,
                data: bytes::Bytes::from(Vec::new()),
            },
            Entry {
                term: 1,
                index: 2,
                kind: EntryKind::ConfChange,
                data: bytes::Bytes::from(joint.encode()),
            },
        ];
        let mut wal = loaded.wal;
        let stored: Vec<_> = entries.iter().map(to_storage_entry).collect();
        wal.append(&stored).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let loaded = load(dir.path(), &voters, Options::default()).unwrap();
        let core = Core::new(Config::new(1), loaded.durable).unwrap();
        assert_eq!(
            core.membership(),
            &joint,
            "the log's configuration entry wins"
        );
        assert_eq!(
            core.committed_membership(),
            &Membership::with_voters([1, 2, 3])
        );
        // A node started to join a cluster has no initial voters: it knows no configuration.
        let joining = tempfile::tempdir().unwrap();
        let loaded = load(joining.path(), &BTreeSet::new(), Options::default()).unwrap();
        let core = Core::new(Config::new(9), loaded.durable).unwrap();
        assert!(core.membership().is_unknown());
    }
}

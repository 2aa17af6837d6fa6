//! The group catalog: which groups this host holds, with the voters each was created with, and
//! which it removed (tombstones). One append-only file, `groups.catalog`, in the host's data
//! directory.
//!
//! # Why a file of its own
//!
//! A group's first voters are not in its log: every replica of a new group starts from the
//! same empty log and the same configuration (Raft's index 0), so that configuration must be
//! durable on each host before the group takes part in any vote. The shared log (`LogStore`)
//! only learns of a group on its first write, and forgets it entirely on removal, which is
//! exactly when a tombstone is needed: a removed group must never come back, not from a late
//! message, not from a repeated `create_group`.
//!
//! # Byte layout (all integers little-endian)
//!
//! | offset | size | field                                            |
//! |--------|------|--------------------------------------------------|
//! | 0      | 8    | magic `KETCHGRP`                                 |
//! | 8      | 4    | format version, 1                                |
//! | 12     | ...  | records, one after another                       |
//!
//! A record is `len: u32` (bytes of payload), `crc32: u32` (CRC-32 IEEE of the payload), then
//! the payload: `kind: u8` (1 created, 2 removed), `group: u64`, and for kind 1 `count: u32`
//! followed by `count` voter ids (`u64`, non-zero, at most [`VOTERS_MAX`]).
//!
//! Every record is written with one `write` and made durable with `fdatasync` before the
//! caller is answered. At open, an incomplete or unchecksummed record at the end of the file is
//! a write torn by a crash (never acknowledged): it is cut off. A bad record followed by valid
//! bytes is damage, refused with the file and offset.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use byteorder::{ByteOrder, LittleEndian};

use crate::raft::{GroupId, NodeId};

/// The catalog's file name inside the data directory.
pub const CATALOG_FILE: &str = "groups.catalog";
const MAGIC: &[u8; 8] = b"KETCHGRP";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 12;
const RECORD_HEADER_BYTES: usize = 8;
/// Most voters a catalog record names.
pub const VOTERS_MAX: usize = 64;
const KIND_CREATED: u8 = 1;
const KIND_REMOVED: u8 = 2;

/// What the catalog holds, in memory, and its file.
#[derive(Debug)]
pub struct GroupCatalog {
    path: PathBuf,
    file: File,
    /// Groups held, with the voters they were created with.
    groups: BTreeMap<GroupId, BTreeSet<NodeId>>,
    /// Groups removed from this host: never created again.
    removed: BTreeSet<GroupId>,
}

impl GroupCatalog {
    /// Opens (creating) the catalog in `dir` and reads it.
    pub fn open(dir: &Path) -> Result<GroupCatalog, String> {
        let path = dir.join(CATALOG_FILE);
        let fresh = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let mut catalog = GroupCatalog {
            path,
            file: file.try_clone().map_err(|e| e.to_string())?,
            groups: BTreeMap::new(),
            removed: BTreeSet::new(),
        };
        if fresh {
            let mut header = Vec::with_capacity(HEADER_BYTES);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&VERSION.to_le_bytes());
            catalog.write_durably(&header)?;
            sync_dir(dir)?;
            return Ok(catalog);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("reading {}: {e}", catalog.path.display()))?;
        let valid_end = catalog.load(&bytes)?;
        if valid_end < bytes.len() {
            log::warn!(
                "{}: cutting a torn record at offset {valid_end} ({} bytes, never acknowledged)",
                catalog.path.display(),
                bytes.len() - valid_end
            );
            file.set_len(valid_end as u64)
                .and_then(|()| file.sync_data())
                .map_err(|e| format!("truncating {}: {e}", catalog.path.display()))?;
        }
        catalog
            .file
            .seek(SeekFrom::End(0))
            .map_err(|e| format!("seeking {}: {e}", catalog.path.display()))?;
        Ok(catalog)
    }

    /// Parses `bytes` into the maps; returns where the valid records end.
    fn load(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let path = self.path.display().to_string();
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return Err(format!(
                "{path}: not a group catalog (bad magic at offset 0)"
            ));
        }
        let version = LittleEndian::read_u32(&bytes[8..12]);
        if version != VERSION {
            return Err(format!(
                "{path}: group catalog version {version}, this build reads {VERSION}"
            ));
        }
        let mut offset = HEADER_BYTES;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            let record = rest.get(..RECORD_HEADER_BYTES).and_then(|header| {
                let len = LittleEndian::read_u32(&header[..4]) as usize;
                let crc = LittleEndian::read_u32(&header[4..8]);
                let payload = rest.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len)?;
                (crc32fast::hash(payload) == crc).then_some(payload)
            });
            let Some(payload) = record else {
                // A bad record is a torn tail only if nothing valid could follow it: the
                // record was the last write, and a crash cut it.
                if has_valid_record_after(bytes, offset) {
                    return Err(format!(
                        "{path}: damaged record at offset {offset} with valid records after it"
                    ));
                }
                return Ok(offset);
            };
            self.apply_record(payload)
                .map_err(|reason| format!("{path}: record at offset {offset}: {reason}"))?;
            offset += RECORD_HEADER_BYTES + payload.len();
        }
        Ok(offset)
    }

    fn apply_record(&mut self, payload: &[u8]) -> Result<(), String> {
        if payload.len() < 9 {
            return Err("record shorter than its kind and group".into());
        }
        let group = LittleEndian::read_u64(&payload[1..9]);
        match payload[0] {
            KIND_CREATED => {
                let count = payload
                    .get(9..13)
                    .map(LittleEndian::read_u32)
                    .ok_or("created record without a voter count")?
                    as usize;
                if count == 0 || count > VOTERS_MAX || payload.len() != 13 + 8 * count {
                    return Err(format!("created record of group {group} with {count} voters does not fit its {} bytes", payload.len()));
                }
                let voters: BTreeSet<NodeId> = payload[13..]
                    .chunks_exact(8)
                    .map(LittleEndian::read_u64)
                    .collect();
                if voters.contains(&0) || voters.len() != count {
                    return Err(format!(
                        "group {group}: voter ids must be distinct and non-zero"
                    ));
                }
                self.groups.insert(group, voters);
            }
            KIND_REMOVED => {
                self.groups.remove(&group);
                self.removed.insert(group);
            }
            kind => return Err(format!("unknown record kind {kind}")),
        }
        Ok(())
    }

    /// Records `group` as created with `voters`, durably.
    pub fn create(&mut self, group: GroupId, voters: &BTreeSet<NodeId>) -> Result<(), String> {
        assert!(!self.removed.contains(&group), "caller checks tombstones");
        if voters.is_empty() || voters.len() > VOTERS_MAX || voters.contains(&0) {
            return Err(format!(
                "group {group}: between 1 and {VOTERS_MAX} non-zero voter ids are needed, got {voters:?}"
            ));
        }
        let mut payload = Vec::with_capacity(13 + 8 * voters.len());
        payload.push(KIND_CREATED);
        payload.extend_from_slice(&group.to_le_bytes());
        payload.extend_from_slice(&(voters.len() as u32).to_le_bytes());
        for voter in voters {
            payload.extend_from_slice(&voter.to_le_bytes());
        }
        self.append(&payload)?;
        self.groups.insert(group, voters.clone());
        Ok(())
    }

    /// Records `group` as removed (a tombstone), durably.
    pub fn remove(&mut self, group: GroupId) -> Result<(), String> {
        let mut payload = Vec::with_capacity(9);
        payload.push(KIND_REMOVED);
        payload.extend_from_slice(&group.to_le_bytes());
        self.append(&payload)?;
        self.groups.remove(&group);
        self.removed.insert(group);
        Ok(())
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        self.write_durably(&record)
    }

    fn write_durably(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }

    /// The groups held, with their first voters.
    pub fn groups(&self) -> &BTreeMap<GroupId, BTreeSet<NodeId>> {
        &self.groups
    }

    /// Whether `group` was removed from this host.
    pub fn is_removed(&self, group: GroupId) -> bool {
        self.removed.contains(&group)
    }

    /// The voters `group` was created with, if this host holds it.
    pub fn voters(&self, group: GroupId) -> Option<&BTreeSet<NodeId>> {
        self.groups.get(&group)
    }
}

/// Whether any offset after `offset` starts a record whose checksum verifies: then the bad
/// record at `offset` is damage, not a torn last write.
fn has_valid_record_after(bytes: &[u8], offset: usize) -> bool {
    (offset + 1..bytes.len().saturating_sub(RECORD_HEADER_BYTES)).any(|at| {
        let len = LittleEndian::read_u32(&bytes[at..at + 4]) as usize;
        let crc = LittleEndian::read_u32(&bytes[at + 4..at + 8]);
        len >= 9
            && bytes
                .get(at + RECORD_HEADER_BYTES..at + RECORD_HEADER_BYTES + len)
                .is_some_and(|payload| crc32fast::hash(payload) == crc)
    })
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("syncing directory {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn created_and_removed_groups_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = GroupCatalog::open(dir.path()).unwrap();
        catalog.create(7, &voters(&[1, 2, 3])).unwrap();
        catalog.create(9, &voters(&[2])).unwrap();
        catalog.remove(7).unwrap();
        drop(catalog);
        let catalog = GroupCatalog::open(dir.path()).unwrap();
        assert_eq!(catalog.voters(9), Some(&voters(&[2])));
        assert_eq!(catalog.voters(7), None);
        assert!(catalog.is_removed(7));
        assert!(!catalog.is_removed(9));
    }

    #[test]
    fn a_torn_last_record_is_cut_and_damage_before_valid_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = GroupCatalog::open(dir.path()).unwrap();
        catalog.create(1, &voters(&[1])).unwrap();
        catalog.create(2, &voters(&[1])).unwrap();
        drop(catalog);
        let path = dir.path().join(CATALOG_FILE);
        let full = std::fs::read(&path).unwrap();
        // Torn: the last record lost its last bytes.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let catalog = GroupCatalog::open(dir.path()).unwrap();
        assert_eq!(
            catalog.groups().keys().copied().collect::<Vec<_>>(),
            vec![1]
        );
        drop(catalog);
        // Damaged: a flipped byte in the first record, the second intact.
        let mut damaged = full.clone();
        damaged[HEADER_BYTES + RECORD_HEADER_BYTES + 2] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        let error = GroupCatalog::open(dir.path()).unwrap_err();
        assert!(error.contains("offset 12"), "{error}");
        assert!(error.contains(CATALOG_FILE), "{error}");
    }

    #[test]
    fn invalid_voter_sets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = GroupCatalog::open(dir.path()).unwrap();
        assert!(catalog.create(1, &voters(&[])).is_err());
        assert!(catalog.create(1, &voters(&[0, 1])).is_err());
        assert!(catalog.groups().is_empty());
    }
}

//! Peer addresses: how they reach every node through the log, snapshots and a file, and
//! which peers the transport dials.
//!
//! # How peer addresses reach every node
//!
//! The core's configuration entries carry node ids only. A change that adds a node is
//! preceded, in the same leader term, by an ordinary (`EntryKind::Normal`) **address entry**
//! carrying the leader's whole address book plus the new node's address. Address entries are
//! never handed to the state machine (the apply thread skips them, see [`is_address_entry`]),
//! and every node reads them from the entries it *appends* to its log (leader and followers
//! alike), before they commit: an address names where a node listens, it decides nothing, so
//! learning it early is harmless and lets the leader dial a learner at once. At start, a node
//! reads the address entries still in its log, and the address book file (below).
//!
//! Snapshots carry the address book too: the node that builds one writes its whole book
//! after the membership in the snapshot file's membership field (format in
//! `super::durable_state`), and a node that installs a snapshot learns every address in it. A
//! node that joins and is caught up by a snapshot covering the address entries thereby still
//! learns every member's address, not only its contacts and the later entries.
//!
//! The transport dials every member of the configuration in force (joint: both halves) with a
//! known address, and drops connections to nodes that left it. A node that joins (empty
//! configuration) keeps dialing the peers it was started with until its first configuration
//! arrives.
//!
//! # Address entry (bytes)
//!
//! | bytes | field                                                            |
//! |-------|------------------------------------------------------------------|
//! | 12    | [`ADDRESS_ENTRY_MAGIC`] (`\xffKETCHADDRS\x01`; KV commands start with a tag 1..=5) |
//! | 4     | count (u32 LE, at most [`ADDRESSES_MAX`])                        |
//! | ...   | count times: node id (u64 LE), address length (u8), address as UTF-8 text (`ip:port`) |
//!
//! # Address book file
//!
//! `peer-addrs` in the data directory: lines `id addr`. Written (temporary file, fsync,
//! rename, directory fsync) by the event loop whenever it learns a new address, which happens
//! only around membership changes and snapshot installs; this is the one disk write on the
//! loop thread, stated here
//! because the loop otherwise never touches the disk. It keeps addresses across restarts even
//! once the log below a snapshot (and the address entries in it) was compacted.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::raft::{Entry, EntryKind, Membership, NodeId, RaftLog};

/// Opens every address entry. Its first byte (0xff) is no KV command tag.
pub const ADDRESS_ENTRY_MAGIC: &[u8; 12] = b"\xffKETCHADDRS\x01";
/// Most addresses in one entry or in the address book file.
pub const ADDRESSES_MAX: usize = 4096;
/// Name of the address book file in the data directory.
pub const ADDRESS_BOOK_FILE: &str = "peer-addrs";

/// The peer addresses a node knows (its own included), and the file that keeps them across
/// restarts. At most [`ADDRESSES_MAX`].
#[derive(Debug)]
pub(crate) struct AddressBook {
    path: PathBuf,
    addrs: BTreeMap<NodeId, SocketAddr>,
}

impl AddressBook {
    /// The book of `data_dir`: the configured addresses, then the file's, then those of the
    /// address entries in `log` (newest last, so the latest address of a node wins).
    pub(crate) fn open(
        data_dir: &Path,
        configured: &BTreeMap<NodeId, SocketAddr>,
        log: &RaftLog,
    ) -> Result<AddressBook, String> {
        let path = address_book_path(data_dir);
        let mut addrs = configured.clone();
        addrs.extend(read_address_book(&path)?);
        addrs.extend(addresses_in_log(log));
        Ok(AddressBook { path, addrs })
    }

    /// Every known address, by node.
    pub(crate) fn addrs(&self) -> &BTreeMap<NodeId, SocketAddr> {
        &self.addrs
    }

    /// True if the book is full and does not hold `id`, so `id` cannot be added.
    pub(crate) fn is_full_without(&self, id: NodeId) -> bool {
        self.addrs.len() >= ADDRESSES_MAX && !self.addrs.contains_key(&id)
    }

    /// Records `addr` for `id` in memory ([`AddressBook::save`] writes the file).
    pub(crate) fn insert(&mut self, id: NodeId, addr: SocketAddr) {
        assert!(!self.is_full_without(id), "address book full");
        self.addrs.insert(id, addr);
    }

    /// Writes the book to its file durably.
    pub(crate) fn save(&self) -> Result<(), String> {
        write_address_book(&self.path, &self.addrs)
    }
}

/// Whether `data` (a normal entry's bytes) is an address entry.
pub fn is_address_entry(data: &[u8]) -> bool {
    data.starts_with(ADDRESS_ENTRY_MAGIC)
}

/// Encodes an address entry carrying `addrs` (see the module docs).
pub fn encode_address_entry(addrs: &BTreeMap<NodeId, SocketAddr>) -> Vec<u8> {
    assert!(addrs.len() <= ADDRESSES_MAX, "address book over its bound");
    let mut out = ADDRESS_ENTRY_MAGIC.to_vec();
    out.extend_from_slice(&(addrs.len() as u32).to_le_bytes());
    for (id, addr) in addrs {
        let text = addr.to_string();
        out.extend_from_slice(&id.to_le_bytes());
        // A SocketAddr's text is at most 47 bytes (IPv6 with scope and port).
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }
    out
}

/// Decodes an address entry; `Err` names what is wrong (never a panic).
pub fn decode_address_entry(data: &[u8]) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let mut rest = data
        .strip_prefix(ADDRESS_ENTRY_MAGIC.as_slice())
        .ok_or("not an address entry (magic)")?;
    let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err(format!("address entry truncated in {what}"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = u32::from_le_bytes(take(4, "count")?.try_into().expect("4 bytes")) as usize;
    if count > ADDRESSES_MAX {
        return Err(format!(
            "address entry holds {count} addresses, over {ADDRESSES_MAX}"
        ));
    }
    let mut addrs = BTreeMap::new();
    for _ in 0..count {
        let id = u64::from_le_bytes(take(8, "node id")?.try_into().expect("8 bytes"));
        let len = take(1, "address length")?[0] as usize;
        let text = std::str::from_utf8(take(len, "address")?)
            .map_err(|_| format!("address of node {id} is not UTF-8"))?;
        let addr = text
            .parse()
            .map_err(|e| format!("address of node {id} ({text:?}): {e}"))?;
        addrs.insert(id, addr);
    }
    if !rest.is_empty() {
        return Err("trailing bytes after the address entry".to_string());
    }
    Ok(addrs)
}

/// The addresses in the address entries among `entries` (malformed ones are logged and
/// skipped: they come from a leader, but must never crash a node).
pub fn addresses_in<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
) -> BTreeMap<NodeId, SocketAddr> {
    let mut found = BTreeMap::new();
    for entry in entries {
        if entry.kind != EntryKind::Normal || !is_address_entry(&entry.data) {
            continue;
        }
        match decode_address_entry(&entry.data) {
            Ok(addrs) => found.extend(addrs),
            Err(e) => log::warn!(
                "entry {}: malformed address entry ignored: {e}",
                entry.index
            ),
        }
    }
    found
}

/// The addresses in the address entries of `log` (from its first to its last index).
pub fn addresses_in_log(log: &RaftLog) -> BTreeMap<NodeId, SocketAddr> {
    let entries = (log.first_index()..=log.last_index()).filter_map(|i| log.entry(i));
    addresses_in(entries)
}

/// The address book file of `data_dir`.
pub fn address_book_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ADDRESS_BOOK_FILE)
}

/// Reads the address book file; a missing file is an empty book.
pub fn read_address_book(path: &Path) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let mut addrs = BTreeMap::new();
    for (n, line) in text.lines().enumerate().take(ADDRESSES_MAX) {
        let bad = || {
            format!(
                "{} line {}: expected `id addr`, got {line:?}",
                path.display(),
                n + 1
            )
        };
        let (id, addr) = line.split_once(' ').ok_or_else(bad)?;
        addrs.insert(
            id.parse().map_err(|_| bad())?,
            addr.parse().map_err(|_| bad())?,
        );
    }
    Ok(addrs)
}

/// Writes the address book file durably (temporary file, fsync, rename, directory fsync).
pub fn write_address_book(path: &Path, addrs: &BTreeMap<NodeId, SocketAddr>) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        for (id, addr) in addrs.iter().take(ADDRESSES_MAX) {
            writeln!(file, "{id} {addr}")?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The peers the transport dials: the members of `membership` with a known address, or every
/// known address while this node has no configuration yet (it joins, see `membership`).
pub(crate) fn dialed_peers(
    membership: &Membership,
    peer_addrs: &BTreeMap<NodeId, SocketAddr>,
) -> BTreeMap<NodeId, SocketAddr> {
    if membership.is_unknown() {
        return peer_addrs.clone();
    }
    let members = membership.all_members();
    peer_addrs
        .iter()
        .filter(|(id, _)| members.contains(id))
        .map(|(id, addr)| (*id, *addr))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_entries_round_trip_and_bad_bytes_are_errors() {
        let mut addrs = BTreeMap::new();
        addrs.insert(1, "127.0.0.1:7001".parse().unwrap());
        addrs.insert(42, "[::1]:9".parse().unwrap());
        let data = encode_address_entry(&addrs);
        assert!(is_address_entry(&data));
        assert_eq!(decode_address_entry(&data).unwrap(), addrs);
        // Every truncation is an error, never a panic.
        for cut in 0..data.len() {
            assert!(decode_address_entry(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = data.clone();
        long.push(0);
        assert!(decode_address_entry(&long)
            .unwrap_err()
            .contains("trailing"));
        let mut huge = ADDRESS_ENTRY_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_address_entry(&huge).unwrap_err().contains("over"));
        // A KV command (tag 1 = SET) is not an address entry.
        assert!(!is_address_entry(&[1, 0, 0, 0]));
    }

    #[test]
    fn address_book_file_round_trips_and_rejects_garbage() {
        let dir = std::env::temp_dir().join(format!("ketch-addrbook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = address_book_path(&dir);
        assert!(read_address_book(&path).unwrap().is_empty());
        let mut addrs = BTreeMap::new();
        addrs.insert(3, "127.0.0.1:7003".parse().unwrap());
        addrs.insert(4, "127.0.0.1:7004".parse().unwrap());
        write_address_book(&path, &addrs).unwrap();
        assert_eq!(read_address_book(&path).unwrap(), addrs);
        std::fs::write(&path, "3 not-an-addr\n").unwrap();
        assert!(read_address_book(&path).unwrap_err().contains("line 1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

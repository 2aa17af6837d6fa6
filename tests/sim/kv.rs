//! The key-value state machine every simulated node applies, and the command encoding.
//!
//! Command layout (little endian): `[kind u8][client u64][seq u64][key_len u16][key][value]`,
//! kind 1 = put, 2 = append. `(client, seq)` tags each command so the client that proposed it
//! recognises it when applied.
//!
//! # Range groups and the meta group (`scenarios::routing`)
//!
//! A command may carry a guard before it, as the real server's batches do
//! (`ketch::kv::sharded`): `[GUARD 0xE7][route epoch u64][route first slot u16][route last slot
//! u16]` then the command. A state machine with a slot range (`Kv::range`) applies a guarded
//! command only if `ketch::kv::sharded::admits(range, guard)` holds at that entry (and serves a
//! guarded read only if it holds in its applied state); otherwise the command is refused: not
//! applied, alike on every replica, and its proposer is told so (`Applied::Refused`). A guarded
//! put or append that is admitted must be for a key whose slot (`ketch::kv::cluster::key_slot`)
//! is in the range: if not, a stale route was served, a safety violation.
//!
//! Two more kinds move a range boundary between two groups, each guarded by the group's own
//! range and epoch as its proposer last knew them (so a repeated one is refused):
//!
//! - 3 = handover out (the donor): value `[first u16][last u16]`, the donor's new bounds,
//!   inside its old ones. Applied, the range becomes those bounds at epoch + 1, and the keys of
//!   the slots given up leave the map; the answer is those keys and values (`encode_pairs`).
//! - 4 = handover in (the receiver): value `[first u16][last u16]` (its new bounds, holding its
//!   old ones) then the moved keys and values (`encode_pairs`). Applied, the range becomes those
//!   bounds at epoch + 1 and the keys enter the map.
//!
//! Kind 5 is a meta group command: its value is a real `ketch::kv::sharded` meta command
//! (`replace_command`), applied by the real `MetaStateMachine` the meta group's state holds
//! (`Kv::meta`); the answer is that machine's reply (`+OK` or `-ERR ...`).

use std::collections::BTreeMap;

use ketch::kv::cluster::key_slot;
use ketch::kv::server::RangeCheck;
use ketch::kv::sharded::{admits, MetaStateMachine, OwnedRange, RoutingTable, SharedTable, GUARD};
use ketch::node::StateMachine;

use crate::invariants::violation;

/// A put.
pub const PUT: u8 = 1;
/// An append.
pub const APPEND: u8 = 2;
/// A donor's handover of the slots at one end of its range (module docs).
pub const HANDOVER_OUT: u8 = 3;
/// A receiver's handover: its range grows by the donor's slots, with their keys.
pub const HANDOVER_IN: u8 = 4;
/// A meta group command (`ketch::kv::sharded::replace_command`).
pub const META: u8 = 5;

/// Bytes of a guard before a command.
const GUARD_BYTES: usize = 13;

/// A decoded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// 1 = put, 2 = append (more kinds: module docs).
    pub kind: u8,
    /// Proposing client.
    pub client: u64,
    /// The client's sequence number.
    pub seq: u64,
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
    /// The route the command followed, if it carries a guard (module docs).
    pub guard: Option<RangeCheck>,
}

impl Command {
    /// A put from no client, for scripts that propose commands themselves.
    pub fn put(key: &[u8], value: Vec<u8>) -> Self {
        Self {
            kind: PUT,
            client: 0,
            seq: 0,
            key: key.to_vec(),
            value,
            guard: None,
        }
    }

    /// Encodes for a log entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GUARD_BYTES + 19 + self.key.len() + self.value.len());
        if let Some(check) = self.guard {
            out.push(GUARD);
            out.extend_from_slice(&check.epoch.to_le_bytes());
            out.extend_from_slice(&check.first.to_le_bytes());
            out.extend_from_slice(&check.last.to_le_bytes());
        }
        out.push(self.kind);
        out.extend_from_slice(&self.client.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&(self.key.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.value);
        out
    }

    /// Decodes a log entry's data.
    pub fn decode(mut data: &[u8]) -> Option<Self> {
        let mut guard = None;
        if data.first() == Some(&GUARD) {
            let head = data.get(..GUARD_BYTES)?;
            guard = Some(RangeCheck {
                epoch: u64::from_le_bytes(head[1..9].try_into().ok()?),
                first: u16::from_le_bytes(head[9..11].try_into().ok()?),
                last: u16::from_le_bytes(head[11..13].try_into().ok()?),
            });
            data = &data[GUARD_BYTES..];
        }
        if data.len() < 19 {
            return None;
        }
        let kind = data[0];
        let client = u64::from_le_bytes(data[1..9].try_into().ok()?);
        let seq = u64::from_le_bytes(data[9..17].try_into().ok()?);
        let key_len = u16::from_le_bytes(data[17..19].try_into().ok()?) as usize;
        let key = data.get(19..19 + key_len)?.to_vec();
        let value = data[19 + key_len..].to_vec();
        Some(Self {
            kind,
            client,
            seq,
            key,
            value,
            guard,
        })
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied, with its answer (empty for a put or an append).
    Ok(Vec<u8>),
    /// Refused by the range check: not applied.
    Refused,
}

/// The meta group's state: the real `MetaStateMachine` (compared and cloned by its table).
#[derive(Debug)]
pub struct Meta(MetaStateMachine);

impl Meta {
    /// A meta replica whose table starts as `table`.
    pub fn new(table: RoutingTable) -> Self {
        Meta(MetaStateMachine::new(
            table.clone(),
            SharedTable::new(table),
        ))
    }

    /// The table as applied.
    pub fn table(&self) -> &RoutingTable {
        self.0.table()
    }
}

impl Clone for Meta {
    fn clone(&self) -> Self {
        Meta::new(self.table().clone())
    }
}

impl PartialEq for Meta {
    fn eq(&self, other: &Self) -> bool {
        self.table() == other.table()
    }
}

impl Eq for Meta {}

/// `pairs` as bytes: `[key_len u32][key][value_len u32][value]` each.
pub fn encode_pairs(pairs: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in pairs {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// Reads `encode_pairs`' bytes.
pub fn decode_pairs(mut data: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut map = BTreeMap::new();
    let take = |data: &mut &[u8]| {
        let len = u32::from_le_bytes(data[..4].try_into().expect("pair length")) as usize;
        let bytes = data[4..4 + len].to_vec();
        *data = &data[4 + len..];
        bytes
    };
    while !data.is_empty() {
        let key = take(&mut data);
        let value = take(&mut data);
        map.insert(key, value);
    }
    map
}

/// A handover's bounds, `[first u16][last u16]`, and the bytes after them.
pub fn encode_bounds(first: u16, last: u16) -> Vec<u8> {
    let mut out = first.to_le_bytes().to_vec();
    out.extend_from_slice(&last.to_le_bytes());
    out
}

fn decode_bounds(value: &[u8]) -> (u16, u16, &[u8]) {
    if value.len() < 4 {
        violation(format!("a handover of {} bytes", value.len()));
    }
    (
        u16::from_le_bytes([value[0], value[1]]),
        u16::from_le_bytes([value[2], value[3]]),
        &value[4..],
    )
}

/// Whether `slot` is in `range`.
pub fn holds(range: OwnedRange, slot: u16) -> bool {
    (range.first..=range.last).contains(&slot)
}

/// Snapshot markers (never a key length: keys are below 64 KiB).
const RANGE_MARK: u32 = u32::MAX;
const META_MARK: u32 = u32::MAX - 1;

/// The state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kv {
    /// The data.
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// A range group's slot range and epoch as applied; `None` for a group without one (a
    /// guarded command is then refused, as `admits` says).
    pub range: Option<OwnedRange>,
    /// The meta group's state, in a meta group.
    pub meta: Option<Meta>,
    /// Checker self-test: serve guarded puts, appends and reads whatever their route (the
    /// range check replaced by `true`). Not in snapshots.
    pub admit_all: bool,
}

impl Kv {
    /// Whether a guarded put, append or read with `check` is served.
    fn serves(&self, check: RangeCheck) -> bool {
        self.admit_all || admits(self.range, check)
    }

    /// Invariant: a guarded command served here is for a key of this group's range.
    fn check_owned(&self, key: &[u8], what: &str, check: RangeCheck) {
        let slot = key_slot(key);
        if !self.range.is_some_and(|range| holds(range, slot)) {
            violation(format!(
                "stale route served: a {what} of key {:?} (slot {slot}), routed to slots \
                 {}-{} at epoch {}, was served by a group whose range is {:?}",
                String::from_utf8_lossy(key),
                check.first,
                check.last,
                check.epoch,
                self.range
            ));
        }
    }

    /// Applies a command (entry `index`).
    pub fn apply(&mut self, index: u64, command: &Command) -> Applied {
        if command.kind == META {
            let Some(meta) = self.meta.as_mut() else {
                violation(format!(
                    "a meta command applied at entry {index} outside the meta group"
                ));
            };
            return Applied::Ok(meta.0.apply(index, &command.value));
        }
        if let Some(check) = command.guard {
            let admitted = match command.kind {
                PUT | APPEND => self.serves(check),
                _ => admits(self.range, check),
            };
            if !admitted {
                return Applied::Refused;
            }
            if matches!(command.kind, PUT | APPEND) {
                self.check_owned(&command.key, "write", check);
            }
        }
        match command.kind {
            PUT => {
                self.map.insert(command.key.clone(), command.value.clone());
                Applied::Ok(Vec::new())
            }
            APPEND => {
                self.map
                    .entry(command.key.clone())
                    .or_default()
                    .extend_from_slice(&command.value);
                Applied::Ok(Vec::new())
            }
            HANDOVER_OUT => Applied::Ok(self.hand_out(index, command)),
            HANDOVER_IN => {
                self.hand_in(index, command);
                Applied::Ok(Vec::new())
            }
            other => violation(format!("unknown command kind {other} applied")),
        }
    }

    /// The range as a guarded handover (already admitted) needs it.
    fn own_range(&self, index: u64) -> OwnedRange {
        self.range.unwrap_or_else(|| {
            violation(format!(
                "entry {index}: a handover admitted by a group without a range"
            ))
        })
    }

    fn hand_out(&mut self, index: u64, command: &Command) -> Vec<u8> {
        let old = self.own_range(index);
        let (first, last, _) = decode_bounds(&command.value);
        let shrinks_one_end = first <= last
            && ((first == old.first && last < old.last) || (last == old.last && first > old.first));
        if !shrinks_one_end {
            violation(format!(
                "entry {index}: a handover out from {old:?} to slots {first}-{last}"
            ));
        }
        let new = OwnedRange {
            first,
            last,
            epoch: old.epoch + 1,
        };
        let moved: Vec<Vec<u8>> = self
            .map
            .keys()
            .filter(|key| !holds(new, key_slot(key)))
            .cloned()
            .collect();
        let mut pairs = BTreeMap::new();
        for key in moved {
            let value = self.map.remove(&key).expect("listed");
            pairs.insert(key, value);
        }
        self.range = Some(new);
        encode_pairs(&pairs)
    }

    fn hand_in(&mut self, index: u64, command: &Command) {
        let old = self.own_range(index);
        let (first, last, rest) = decode_bounds(&command.value);
        let grows_one_end = first <= last
            && ((first == old.first && last > old.last) || (last == old.last && first < old.first));
        if !grows_one_end {
            violation(format!(
                "entry {index}: a handover in to {old:?} as slots {first}-{last}"
            ));
        }
        let new = OwnedRange {
            first,
            last,
            epoch: old.epoch + 1,
        };
        for (key, value) in decode_pairs(rest) {
            let slot = key_slot(&key);
            if !holds(new, slot) || holds(old, slot) {
                violation(format!(
                    "entry {index}: key {:?} (slot {slot}) handed from outside {old:?} into {new:?}",
                    String::from_utf8_lossy(&key)
                ));
            }
            if self.map.insert(key.clone(), value).is_some() {
                violation(format!(
                    "entry {index}: key {:?} handed in to a group that held it already",
                    String::from_utf8_lossy(&key)
                ));
            }
        }
        self.range = Some(new);
    }

    /// A read of `key` in the applied state, through a route with `guard`: the value (`None`
    /// if absent), or `None` if refused by the range check.
    pub fn read(&self, key: &[u8], guard: Option<RangeCheck>) -> Option<Option<Vec<u8>>> {
        if let Some(check) = guard {
            if !self.serves(check) {
                return None;
            }
            self.check_owned(key, "read", check);
        }
        Some(self.map.get(key).cloned())
    }

    /// Serialises the state (snapshot bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(range) = self.range {
            out.extend_from_slice(&RANGE_MARK.to_le_bytes());
            out.extend_from_slice(&range.first.to_le_bytes());
            out.extend_from_slice(&range.last.to_le_bytes());
            out.extend_from_slice(&range.epoch.to_le_bytes());
        }
        if let Some(meta) = &self.meta {
            let table = meta.table().encode();
            out.extend_from_slice(&META_MARK.to_le_bytes());
            out.extend_from_slice(&(table.len() as u32).to_le_bytes());
            out.extend_from_slice(&table);
        }
        out.extend_from_slice(&encode_pairs(&self.map));
        out
    }

    /// Restores from snapshot bytes.
    pub fn decode(mut data: &[u8]) -> Self {
        let mut kv = Kv::default();
        loop {
            let mark = data
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            match mark {
                Some(RANGE_MARK) => {
                    kv.range = Some(OwnedRange {
                        first: u16::from_le_bytes([data[4], data[5]]),
                        last: u16::from_le_bytes([data[6], data[7]]),
                        epoch: u64::from_le_bytes(data[8..16].try_into().expect("8 bytes")),
                    });
                    data = &data[16..];
                }
                Some(META_MARK) => {
                    let len = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes")) as usize;
                    let table =
                        RoutingTable::decode(&data[8..8 + len]).expect("a snapshot's table");
                    kv.meta = Some(Meta::new(table));
                    data = &data[8 + len..];
                }
                _ => break,
            }
        }
        kv.map = decode_pairs(data);
        kv
    }
}

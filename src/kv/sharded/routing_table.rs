//! [`RoutingTable`]: which Raft group serves which slot range, on which hosts, at which epoch.
//!
//! The table is the state of the meta group ([`MetaStateMachine`](super::MetaStateMachine)),
//! so every host learns the same table, in the same order of changes. A host routes requests
//! by its own replica's copy, which may lag; what keeps a lagging copy from ever serving a
//! wrong answer is the range epoch (TiKV's region epoch): every range's group holds its own
//! range and epoch in its replicated state, every batch the server sends to a group carries
//! the epoch of the route it followed, and the group refuses a batch whose epoch is not its
//! own (`-TRYAGAIN`, not applied) — see [`RangeMachine`](super::RangeMachine).
//!
//! # Encoding (in the meta group's snapshot and commands)
//!
//! | size | field                                                         |
//! |------|---------------------------------------------------------------|
//! | 8    | magic `KETCHRT1`                                              |
//! | 8    | table epoch (u64, >= 1): advances with every change           |
//! | 4    | range count R (u32, 1..=[`SHARDS_MAX`])                       |
//! |      | R × (first slot u16, last slot u16, group u64, range epoch u64, voter count V u32 (>= 1), V × host id u64) |
//!
//! Little endian. Ranges are ascending and cover the 16,384 slots once; a table that does
//! not is refused with the reason, as is anything after the last range.

use std::collections::BTreeSet;
use std::fmt;

use super::slot_ranges::{SlotRanges, SHARDS_MAX};
use crate::kv::cluster::SLOT_COUNT;
use crate::node::GroupId;
use crate::raft::NodeId;

const MAGIC: &[u8; 8] = b"KETCHRT1";
/// Most voters a range lists.
const VOTERS_MAX: u32 = 64;

/// The group that holds the routing table.
pub const META_GROUP: GroupId = 0;

/// One slot range and the group serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRoute {
    /// First slot (inclusive).
    pub first: u16,
    /// Last slot (inclusive).
    pub last: u16,
    /// The Raft group serving the range (never [`META_GROUP`]).
    pub group: GroupId,
    /// The range's epoch: advances whenever the range's bounds change, so a route taken
    /// before the change is refused by the group after it.
    pub epoch: u64,
    /// The hosts holding the group's voting replicas.
    pub voters: Vec<NodeId>,
}

/// The routing table (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    epoch: u64,
    ranges: Vec<RangeRoute>,
}

/// Why bytes or a list of ranges are not a routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(pub String);

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "routing table: {}", self.0)
    }
}

impl std::error::Error for TableError {}

impl RoutingTable {
    /// The table a cluster starts with: `ranges` in order, range `i` served by group `i + 1`
    /// on every host of `voters`, every epoch 1.
    pub fn bootstrap(ranges: SlotRanges, voters: &[NodeId]) -> RoutingTable {
        let ranges = (0..ranges.shards())
            .map(|shard| {
                let (first, last) = ranges.range(shard);
                RangeRoute {
                    first,
                    last,
                    group: GroupId::from(shard) + 1,
                    epoch: 1,
                    voters: voters.to_vec(),
                }
            })
            .collect();
        RoutingTable::new(1, ranges).expect("equal ranges make a valid table")
    }

    /// A table of `ranges` at `epoch`, checked.
    ///
    /// # Errors
    ///
    /// If the epoch is 0, the ranges are not ascending or do not cover every slot exactly
    /// once, a group serves two ranges or is [`META_GROUP`], or a range has no voters.
    pub fn new(epoch: u64, ranges: Vec<RangeRoute>) -> Result<RoutingTable, TableError> {
        let fail = |reason: String| Err(TableError(reason));
        if epoch == 0 {
            return fail("epoch 0".to_string());
        }
        if ranges.is_empty() || ranges.len() > usize::from(SHARDS_MAX) {
            return fail(format!(
                "{} ranges (1 to {SHARDS_MAX} allowed)",
                ranges.len()
            ));
        }
        let mut next = 0u32;
        let mut groups = BTreeSet::new();
        for range in &ranges {
            if u32::from(range.first) != next || range.last < range.first {
                return fail(format!(
                    "range {}-{} does not start at slot {next}",
                    range.first, range.last
                ));
            }
            if range.group == META_GROUP || !groups.insert(range.group) {
                return fail(format!(
                    "group {} cannot serve range {}-{}",
                    range.group, range.first, range.last
                ));
            }
            if range.voters.is_empty() || range.voters.len() > VOTERS_MAX as usize {
                return fail(format!(
                    "range {}-{} has {} voters",
                    range.first,
                    range.last,
                    range.voters.len()
                ));
            }
            if range.epoch == 0 {
                return fail(format!("range {}-{} has epoch 0", range.first, range.last));
            }
            next = u32::from(range.last) + 1;
        }
        if next != u32::from(SLOT_COUNT) {
            return fail(format!("the ranges end at slot {}", next - 1));
        }
        Ok(RoutingTable { epoch, ranges })
    }

    /// The table's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[RangeRoute] {
        &self.ranges
    }

    /// The range holding `slot` (below 16,384).
    pub fn route(&self, slot: u16) -> &RangeRoute {
        assert!(slot < SLOT_COUNT, "slot {slot} out of range");
        let at = self.ranges.partition_point(|range| range.last < slot);
        &self.ranges[at]
    }

    /// The range `group` serves, if it serves one.
    pub fn range_of_group(&self, group: GroupId) -> Option<&RangeRoute> {
        self.ranges.iter().find(|range| range.group == group)
    }

    /// The table's bytes (module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.ranges.len() * 48);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&(self.ranges.len() as u32).to_le_bytes());
        for range in &self.ranges {
            out.extend_from_slice(&range.first.to_le_bytes());
            out.extend_from_slice(&range.last.to_le_bytes());
            out.extend_from_slice(&range.group.to_le_bytes());
            out.extend_from_slice(&range.epoch.to_le_bytes());
            out.extend_from_slice(&(range.voters.len() as u32).to_le_bytes());
            for voter in &range.voters {
                out.extend_from_slice(&voter.to_le_bytes());
            }
        }
        out
    }

    /// Reads a table written by [`RoutingTable::encode`].
    ///
    /// # Errors
    ///
    /// If the bytes are cut short, have another magic, trailing bytes, or do not make a
    /// valid table ([`RoutingTable::new`]); the error names the offset.
    pub fn decode(bytes: &[u8]) -> Result<RoutingTable, TableError> {
        let mut at = 0usize;
        let mut take = |n: usize, what: &str| -> Result<&[u8], TableError> {
            let field = bytes.get(at..at + n).ok_or_else(|| {
                TableError(format!(
                    "{what} at offset {at}: {} bytes left, {n} needed",
                    bytes.len().saturating_sub(at)
                ))
            })?;
            at += n;
            Ok(field)
        };
        if take(8, "magic")? != MAGIC {
            return Err(TableError("bad magic (not a routing table)".to_string()));
        }
        let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let u16_of = |b: &[u8]| u16::from_le_bytes(b.try_into().expect("2 bytes"));
        let epoch = u64_of(take(8, "epoch")?);
        let count = u32_of(take(4, "range count")?);
        if count == 0 || count > u32::from(SHARDS_MAX) {
            return Err(TableError(format!("range count {count}")));
        }
        let mut ranges = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let first = u16_of(take(2, "first slot")?);
            let last = u16_of(take(2, "last slot")?);
            let group = u64_of(take(8, "group")?);
            let range_epoch = u64_of(take(8, "range epoch")?);
            let voter_count = u32_of(take(4, "voter count")?);
            if voter_count == 0 || voter_count > VOTERS_MAX {
                return Err(TableError(format!(
                    "range {first}-{last}: voter count {voter_count}"
                )));
            }
            let mut voters = Vec::with_capacity(voter_count as usize);
            for _ in 0..voter_count {
                voters.push(u64_of(take(8, "voter")?));
            }
            ranges.push(RangeRoute {
                first,
                last,
                group,
                epoch: range_epoch,
                voters,
            });
        }
        if at != bytes.len() {
            return Err(TableError(format!(
                "{} trailing bytes at offset {at}",
                bytes.len() - at
            )));
        }
        RoutingTable::new(epoch, ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sixteen() -> RoutingTable {
        RoutingTable::bootstrap(SlotRanges::new(16).unwrap(), &[1, 2, 3])
    }

    #[test]
    fn bootstrap_routes_as_the_slot_ranges() {
        for shards in [1, 3, 16, SHARDS_MAX] {
            let ranges = SlotRanges::new(shards).unwrap();
            let table = RoutingTable::bootstrap(ranges, &[1, 2, 3]);
            assert_eq!(table.epoch(), 1);
            for slot in (0..SLOT_COUNT).step_by(7).chain([SLOT_COUNT - 1]) {
                let route = table.route(slot);
                assert_eq!(route.group, GroupId::from(ranges.shard_of(slot)) + 1);
                assert!((route.first..=route.last).contains(&slot));
                assert_eq!(table.range_of_group(route.group), Some(route));
            }
        }
        assert_eq!(sixteen().range_of_group(META_GROUP), None);
    }

    #[test]
    fn a_table_round_trips() {
        let table = sixteen();
        assert_eq!(RoutingTable::decode(&table.encode()), Ok(table));
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let mut ranges = sixteen().ranges().to_vec();
        ranges[3].first += 1;
        let e = RoutingTable::new(2, ranges).unwrap_err();
        assert!(e.0.contains("does not start at slot 3072"), "{e}");
        let mut ranges = sixteen().ranges().to_vec();
        ranges.pop();
        assert!(RoutingTable::new(2, ranges)
            .unwrap_err()
            .0
            .contains("end at slot 15359"));
        let mut ranges = sixteen().ranges().to_vec();
        ranges[1].group = ranges[0].group;
        assert!(RoutingTable::new(2, ranges).is_err());
        assert!(RoutingTable::new(0, sixteen().ranges().to_vec()).is_err());
        let bytes = sixteen().encode();
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            let e = RoutingTable::decode(&bytes[..cut]).unwrap_err();
            assert!(
                e.0.contains("offset") || e.0.contains("magic"),
                "cut {cut}: {e}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(RoutingTable::decode(&long)
            .unwrap_err()
            .0
            .contains("trailing"));
    }
}

//! [`MetaStateMachine`]: the meta group's state, the [`RoutingTable`], and the copy of it the
//! host routes by.
//!
//! The meta group ([`META_GROUP`]) has a voting replica on every host, like the range groups.
//! Its state starts as the bootstrap table (the ranges follow from `--shards`, which every
//! host records and checks, so every replica starts alike) and changes only through its log,
//! so every replica holds the same table after the same entries. Each replica publishes its
//! table to a [`SharedTable`] as it applies or restores, and the host's server routes by
//! that copy: it may lag the log, which the range epochs make safe (see `routing_table`).
//!
//! # Commands
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 1    | kind = `M`: replace the table                                |
//! | 1      | 8    | the epoch the proposer saw (u64)                             |
//! | 9      |      | the new table ([`RoutingTable::encode`]), its epoch one more |
//!
//! A replacement applies only if the table's epoch is still the one the proposer saw and the
//! new epoch is the next one (a compare-and-set, so two changes decided on the same table
//! cannot both apply); the result is `+OK`, or an `-ERR` naming the epochs. Any query answers
//! the encoded table. The snapshot is the encoded table.

use std::io::{self, Read, Write};
use std::sync::{Arc, RwLock};

use super::routing_table::{RoutingTable, META_GROUP};
use crate::node::StateMachine;

/// Not a write batch's version byte, so the leader's stamp (which rewrites version 2 write
/// batches) never touches a meta command.
const KIND_REPLACE: u8 = b'M';
/// Larger than any table (1,024 ranges of 64 voters): bounds what a restore reads.
const TABLE_BYTES_MAX: u64 = 1 << 20;

/// The routing table a host's meta replica last applied, for the host's server to route by.
#[derive(Debug, Clone)]
pub struct SharedTable(Arc<RwLock<Arc<RoutingTable>>>);

impl SharedTable {
    /// A copy holding `table`.
    pub fn new(table: RoutingTable) -> SharedTable {
        SharedTable(Arc::new(RwLock::new(Arc::new(table))))
    }

    /// The table now.
    pub fn get(&self) -> Arc<RoutingTable> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// `f` of the table now, without taking a reference to it (every request routes through
    /// here).
    pub fn with<T>(&self, f: impl FnOnce(&RoutingTable) -> T) -> T {
        f(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn set(&self, table: RoutingTable) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }
}

/// The command that replaces `seen` (the table its proposer read) with `next`.
pub fn replace_command(seen_epoch: u64, next: &RoutingTable) -> Vec<u8> {
    let mut out = vec![KIND_REPLACE];
    out.extend_from_slice(&seen_epoch.to_le_bytes());
    out.extend_from_slice(&next.encode());
    out
}

/// The meta group's state machine (module docs).
#[derive(Debug)]
pub struct MetaStateMachine {
    table: RoutingTable,
    shared: SharedTable,
}

impl MetaStateMachine {
    /// A replica whose state starts as `bootstrap`, published to `shared`.
    pub fn new(bootstrap: RoutingTable, shared: SharedTable) -> MetaStateMachine {
        shared.set(bootstrap.clone());
        MetaStateMachine {
            table: bootstrap,
            shared,
        }
    }

    /// The table as applied.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    fn replace(&mut self, command: &[u8]) -> Result<(), String> {
        let seen = command
            .get(1..9)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or("ERR routing table change: cut short")?;
        let next = RoutingTable::decode(&command[9..]).map_err(|e| format!("ERR {e}"))?;
        let epoch = self.table.epoch();
        if seen != epoch || next.epoch() != epoch + 1 {
            return Err(format!(
                "ERR routing table change decided on epoch {seen} to epoch {}, but the table \
                 is at epoch {epoch}: not applied",
                next.epoch()
            ));
        }
        self.table = next;
        self.shared.set(self.table.clone());
        Ok(())
    }
}

impl StateMachine for MetaStateMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let result = match command.first() {
            Some(&KIND_REPLACE) => self.replace(command),
            other => Err(format!("ERR unknown meta command kind {other:?}")),
        };
        match result {
            Ok(()) => b"+OK\r\n".to_vec(),
            Err(text) => {
                // The same bytes fail the same way on every replica: skipping stays
                // deterministic.
                log::warn!("meta group {META_GROUP}: entry {index}: {text}");
                format!("-{text}\r\n").into_bytes()
            }
        }
    }

    fn query(&mut self, _query: &[u8]) -> Vec<u8> {
        self.table.encode()
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.table.encode())
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut bytes = Vec::new();
        input.take(TABLE_BYTES_MAX).read_to_end(&mut bytes)?;
        let table = RoutingTable::decode(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        self.table = table;
        self.shared.set(self.table.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::routing_table::RangeRoute;
    use super::super::slot_ranges::SlotRanges;
    use super::*;

    fn table(shards: u16) -> RoutingTable {
        RoutingTable::bootstrap(SlotRanges::new(shards).unwrap(), &[1, 2, 3])
    }

    /// The bootstrap table with range 0 given to group 99 at epoch `epoch`.
    fn moved(epoch: u64) -> RoutingTable {
        let mut ranges: Vec<RangeRoute> = table(4).ranges().to_vec();
        ranges[0].group = 99;
        ranges[0].epoch += 1;
        RoutingTable::new(epoch, ranges).unwrap()
    }

    #[test]
    fn a_replacement_is_a_compare_and_set_and_is_published() {
        let shared = SharedTable::new(table(1));
        let mut meta = MetaStateMachine::new(table(4), shared.clone());
        assert_eq!(*shared.get(), table(4));
        assert_eq!(meta.apply(1, &replace_command(1, &moved(2))), b"+OK\r\n");
        assert_eq!(shared.get().route(0).group, 99);
        // Decided on epoch 1 again: refused, nothing changes.
        let refused = meta.apply(2, &replace_command(1, &moved(2)));
        assert!(refused.starts_with(b"-ERR routing table change decided on epoch 1"));
        // Skipping an epoch is refused too.
        assert!(meta
            .apply(3, &replace_command(2, &moved(4)))
            .starts_with(b"-ERR"));
        assert!(meta
            .apply(4, b"\x07")
            .starts_with(b"-ERR unknown meta command"));
        assert_eq!(meta.table().epoch(), 2);
        assert_eq!(RoutingTable::decode(&meta.query(b"")).unwrap(), moved(2));
    }

    #[test]
    fn a_snapshot_restores_the_table_and_publishes_it() {
        let mut meta = MetaStateMachine::new(table(4), SharedTable::new(table(4)));
        meta.apply(1, &replace_command(1, &moved(2)));
        let mut bytes = Vec::new();
        meta.snapshot(&mut bytes).unwrap();
        let shared = SharedTable::new(table(4));
        let mut other = MetaStateMachine::new(table(4), shared.clone());
        other.restore(&mut &bytes[..]).unwrap();
        assert_eq!(*shared.get(), moved(2));
        let e = other.restore(&mut &bytes[..5]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

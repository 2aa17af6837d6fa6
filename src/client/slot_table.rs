//! The client's copy of the cluster's slot map: which node is the master of each slot range,
//! read from `CLUSTER SLOTS`, and the address a `-MOVED` reply names.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::kv::resp::Reply;

/// Most ranges kept from one `CLUSTER SLOTS` reply: a cluster has at most one range per slot.
const RANGES_MAX: usize = crate::kv::cluster::SLOT_COUNT as usize;

/// Slot ranges and their masters, sorted by first slot, not overlapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotTable {
    ranges: Vec<(u16, u16, SocketAddr)>,
}

impl SlotTable {
    /// The table a `CLUSTER SLOTS` reply describes, or `None` if it is an error, empty, or
    /// names no usable master: the client then sends everything to one node. Malformed
    /// ranges are skipped (the server forwards or redirects what lands on the wrong node).
    pub(crate) fn parse(reply: &Reply) -> Option<SlotTable> {
        let Reply::Array(Some(entries)) = reply else {
            return None;
        };
        let mut ranges: Vec<(u16, u16, SocketAddr)> = entries
            .iter()
            .take(RANGES_MAX)
            .filter_map(|entry| {
                let Reply::Array(Some(fields)) = entry else {
                    return None;
                };
                let start = slot_of(fields.first()?)?;
                let end = slot_of(fields.get(1)?)?;
                let master = node_addr(fields.get(2)?)?;
                (start <= end).then_some((start, end, master))
            })
            .collect();
        ranges.sort_by_key(|&(start, ..)| start);
        // An overlap would make lookups ambiguous: keep the first range of each.
        let mut covered_to: Option<u16> = None;
        ranges.retain(|&(start, end, _)| {
            if covered_to.is_some_and(|last| start <= last) {
                return false;
            }
            covered_to = Some(end);
            true
        });
        (!ranges.is_empty()).then_some(SlotTable { ranges })
    }

    /// The master of `slot`'s range, if the table has one for it.
    pub(crate) fn master_of(&self, slot: u16) -> Option<SocketAddr> {
        let index = self.ranges.partition_point(|&(start, ..)| start <= slot);
        let &(_, end, master) = self.ranges.get(index.checked_sub(1)?)?;
        (slot <= end).then_some(master)
    }

    /// How many distinct masters the table names.
    pub(crate) fn master_count(&self) -> usize {
        let mut masters: Vec<SocketAddr> = self.ranges.iter().map(|&(.., m)| m).collect();
        masters.sort_unstable();
        masters.dedup();
        masters.len()
    }
}

fn slot_of(reply: &Reply) -> Option<u16> {
    match reply {
        Reply::Integer(n) => u16::try_from(*n)
            .ok()
            .filter(|&s| s < crate::kv::cluster::SLOT_COUNT),
        _ => None,
    }
}

/// A `CLUSTER SLOTS` node, `[ip, port, id, ...]`.
fn node_addr(reply: &Reply) -> Option<SocketAddr> {
    let Reply::Array(Some(fields)) = reply else {
        return None;
    };
    let host = match fields.first()? {
        Reply::Bulk(Some(bytes)) => std::str::from_utf8(bytes).ok()?,
        _ => return None,
    };
    let port = match fields.get(1)? {
        Reply::Integer(n) => u16::try_from(*n).ok()?,
        _ => return None,
    };
    resolve(&format!("{host}:{port}"))
}

/// The first address `host:port` stands for (IPv6 hosts must be in brackets).
fn resolve(target: &str) -> Option<SocketAddr> {
    target.to_socket_addrs().ok()?.next()
}

/// The slot and node of a `MOVED <slot> <host:port>` error (without the `-`).
pub(crate) fn parse_moved(text: &str) -> Option<(u16, SocketAddr)> {
    let mut words = text.split_ascii_whitespace();
    if words.next()? != "MOVED" {
        return None;
    }
    let slot = words.next()?.parse().ok()?;
    let addr = resolve(words.next()?)?;
    Some((slot, addr))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn node(port: i64) -> Reply {
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"127.0.0.1".to_vec())),
            Reply::Integer(port),
            Reply::Bulk(Some(b"5d0d319e4d8b75780be69fd80dba4c8b55b783ce".to_vec())),
            Reply::Array(Some(vec![])),
        ]))
    }

    /// A `CLUSTER SLOTS` reply: each range with its master's port, then one replica's.
    pub(crate) fn slots_reply(ranges: &[(i64, i64, u16)]) -> Reply {
        Reply::Array(Some(
            ranges
                .iter()
                .map(|&(start, end, port)| {
                    Reply::Array(Some(vec![
                        Reply::Integer(start),
                        Reply::Integer(end),
                        node(i64::from(port)),
                        node(9),
                    ]))
                })
                .collect(),
        ))
    }

    fn at(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn ranges_are_looked_up_by_slot_whatever_their_reply_order() {
        let table = SlotTable::parse(&slots_reply(&[
            (8192, 16383, 6382),
            (0, 4095, 6380),
            (4096, 8191, 6381),
        ]))
        .unwrap();
        assert_eq!(table.master_of(0), at(6380));
        assert_eq!(table.master_of(4095), at(6380));
        assert_eq!(table.master_of(4096), at(6381));
        assert_eq!(table.master_of(16383), at(6382));
        assert_eq!(table.master_count(), 3);
    }

    #[test]
    fn slots_of_a_range_left_out_have_no_master() {
        let table = SlotTable::parse(&slots_reply(&[(0, 99, 6380), (200, 16383, 6380)])).unwrap();
        assert_eq!(table.master_of(100), None);
        assert_eq!(table.master_of(199), None);
        assert_eq!(table.master_of(200), at(6380));
        assert_eq!(table.master_count(), 1);
    }

    #[test]
    fn errors_empty_and_malformed_replies_give_no_table() {
        assert_eq!(SlotTable::parse(&Reply::Error("ERR unknown".into())), None);
        assert_eq!(SlotTable::parse(&slots_reply(&[])), None);
        assert_eq!(SlotTable::parse(&slots_reply(&[(5, 4, 6380)])), None);
        assert_eq!(SlotTable::parse(&slots_reply(&[(0, 16384, 6380)])), None);
        let no_master = Reply::Array(Some(vec![Reply::Array(Some(vec![
            Reply::Integer(0),
            Reply::Integer(16383),
        ]))]));
        assert_eq!(SlotTable::parse(&no_master), None);
        // Overlapping ranges: the first one wins.
        let table = SlotTable::parse(&slots_reply(&[(0, 100, 6380), (50, 16383, 6381)])).unwrap();
        assert_eq!(table.master_of(60), at(6380));
        assert_eq!(table.master_of(200), None);
    }

    #[test]
    fn moved_names_the_slot_and_node() {
        assert_eq!(
            parse_moved("MOVED 3999 127.0.0.1:6381"),
            Some((3999, at(6381).unwrap()))
        );
        assert_eq!(parse_moved("ASK 3999 127.0.0.1:6381"), None);
        assert_eq!(parse_moved("MOVED x 127.0.0.1:6381"), None);
        assert_eq!(parse_moved("MOVED 1"), None);
    }
}

//! Leader changes as etcd counts them: each time a node comes to know a leader other than the
//! one it last knew (none included), so `1 -> none -> 1` counts twice, like a re-election.
//!
//! The event loop reports the leader it publishes with every status; this table remembers,
//! per local node, the last one reported. It has [`LOCAL_NODES_MAX`] slots claimed by
//! compare-and-swap, like [`peers`](super::peers); nodes past that are not counted (a host
//! does not run that many groups today; the bound keeps the hook free of maps and locks).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::raft::NodeId;

/// Local nodes whose leader changes are counted.
pub const LOCAL_NODES_MAX: usize = 64;

/// Last leader known by each local node.
#[derive(Debug)]
pub struct LeaderWatch {
    /// (node id, last leader or zero); node id zero marks a free slot.
    slots: Box<[(AtomicU64, AtomicU64)]>,
}

impl Default for LeaderWatch {
    fn default() -> Self {
        LeaderWatch {
            slots: (0..LOCAL_NODES_MAX)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        }
    }
}

impl LeaderWatch {
    /// Records that `node` knows `leader`; true if that is a change to a known leader.
    pub fn observe(&self, node: NodeId, leader: Option<NodeId>) -> bool {
        let Some((_, last)) = self.slot(node) else {
            return false;
        };
        let now = leader.unwrap_or(0);
        // Only the node's own event loop reports for it, so load-then-store cannot race.
        if last.load(Ordering::Relaxed) == now {
            return false;
        }
        last.store(now, Ordering::Relaxed);
        now != 0
    }

    fn slot(&self, node: NodeId) -> Option<&(AtomicU64, AtomicU64)> {
        if node == 0 {
            return None;
        }
        for slot in self.slots.iter() {
            let current = slot.0.load(Ordering::Acquire);
            if current == node {
                return Some(slot);
            }
            if current == 0 {
                match slot
                    .0
                    .compare_exchange(0, node, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return Some(slot),
                    Err(winner) if winner == node => return Some(slot),
                    Err(_) => continue,
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_count_each_newly_known_leader_per_node() {
        let watch = LeaderWatch::default();
        let seen: Vec<bool> = [None, Some(1), Some(1), None, Some(1), Some(2)]
            .into_iter()
            .map(|leader| watch.observe(7, leader))
            .collect();
        assert_eq!(seen, [false, true, false, false, true, true]);
        // Another local node keeps its own memory.
        assert!(watch.observe(8, Some(2)));
        assert!(!watch.observe(7, Some(2)));
    }
}

//! [`NodeName`]: the 40-hex-digit id a node has in Redis Cluster replies (`CLUSTER MYID`,
//! the third field of a `CLUSTER SLOTS` node, the first of a `CLUSTER NODES` line).
//!
//! Redis makes its node ids at random and keeps them in `nodes.conf`. Ketch derives them, so
//! that every node names every other one alike with nothing to exchange or store: the first
//! 20 bytes of `SHA-256("ketch-cluster-node\0" || cluster_id as u64 BE || node_id as u64 BE)`,
//! in lower-case hex. The same cluster and node give the same name on every node and across
//! restarts; nodes of different clusters get different names.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::raft::NodeId;

/// Separates these hashes from any other SHA-256 of the same numbers.
const DOMAIN: &[u8] = b"ketch-cluster-node\0";

/// Hex digits in a name, as Redis' `CLUSTER_NAMELEN`.
pub const NODE_NAME_LEN: usize = 40;

/// A node's Redis Cluster id (module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeName([u8; NODE_NAME_LEN]);

impl NodeName {
    /// The name of node `node` of cluster `cluster_id`.
    pub fn of(cluster_id: u64, node: NodeId) -> NodeName {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(cluster_id.to_be_bytes());
        hasher.update(node.to_be_bytes());
        let digest = hasher.finalize();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut name = [0u8; NODE_NAME_LEN];
        for (pair, byte) in name.chunks_exact_mut(2).zip(digest.iter()) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        NodeName(name)
    }

    /// The 40 hex digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeName({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_40_hex_digits_fixed_by_cluster_and_node() {
        let name = NodeName::of(42, 1);
        assert_eq!(name.as_str().len(), NODE_NAME_LEN);
        assert!(name
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(name, NodeName::of(42, 1));
        assert_ne!(name, NodeName::of(42, 2));
        assert_ne!(name, NodeName::of(43, 1));
        // Pinned (Python's hashlib gives the same): a change of the derivation renames every
        // node of every running cluster.
        assert_eq!(name.as_str(), "5d0d319e4d8b75780be69fd80dba4c8b55b783ce");
    }
}

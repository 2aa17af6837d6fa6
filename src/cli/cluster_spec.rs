//! The `--cluster 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT` list and the cluster id derived from it.
//!
//! # Cluster id
//!
//! Peers refuse connections from another cluster's nodes. Unless `--cluster-id` is given, the
//! id is the 64-bit FNV-1a hash of the list in canonical form: entries sorted by node id,
//! written `id=host:port` with the address as given, joined by `,`. Every node started with
//! the same list (in any order) derives the same id; a node started with a different list
//! (another cluster on the same hosts) derives another one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::raft::NodeId;

/// The initial voters and their peer addresses, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Each node's peer address text, as given (hosts not yet resolved).
    pub peers: BTreeMap<NodeId, String>,
}

/// Why a `--cluster` list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpecError {
    /// The offending entry (or the whole list).
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ClusterSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--cluster entry {:?}: {}", self.entry, self.reason)
    }
}

impl std::error::Error for ClusterSpecError {}

impl ClusterSpec {
    /// Parses `1=HOST:PORT,2=HOST:PORT,...`: ids non-zero and distinct, at least one entry.
    pub fn parse(text: &str) -> Result<ClusterSpec, ClusterSpecError> {
        let error = |entry: &str, reason: &str| ClusterSpecError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let mut peers = BTreeMap::new();
        for entry in text.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(error(text, "empty entry (expected ID=HOST:PORT)"));
            }
            let (id, addr) = entry
                .split_once('=')
                .ok_or_else(|| error(entry, "expected ID=HOST:PORT"))?;
            let id: NodeId = id
                .trim()
                .parse()
                .map_err(|_| error(entry, "the node id is not a number"))?;
            if id == 0 {
                return Err(error(entry, "node ids start at 1"));
            }
            let addr = addr.trim();
            if addr
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return Err(error(entry, "the address is not HOST:PORT"));
            }
            if peers.insert(id, addr.to_string()).is_some() {
                return Err(error(entry, "node id listed twice"));
            }
        }
        Ok(ClusterSpec { peers })
    }

    /// The cluster id derived from the list (see the module docs).
    pub fn derived_cluster_id(&self) -> u64 {
        let canonical = self
            .peers
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",");
        fnv1a_64(canonical.as_bytes())
    }

    /// Resolves every address (the first address a host name resolves to).
    pub fn resolve(&self) -> Result<BTreeMap<NodeId, SocketAddr>, ClusterSpecError> {
        self.peers
            .iter()
            .map(|(&id, text)| {
                let addr = text
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or_else(|| ClusterSpecError {
                        entry: format!("{id}={text}"),
                        reason: "the address does not resolve".to_string(),
                    })?;
                Ok((id, addr))
            })
            .collect()
    }
}

/// 64-bit FNV-1a: a stable, documented hash (std's hashers may change between releases).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_parses_in_any_order_to_the_same_cluster_id() {
        let a = ClusterSpec::parse("1=127.0.0.1:7001,2=127.0.0.1:7002,3=localhost:7003").unwrap();
        let b = ClusterSpec::parse("3=localhost:7003, 1=127.0.0.1:7001,2=127.0.0.1:7002").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.peers[&3], "localhost:7003");
        assert_eq!(a.derived_cluster_id(), b.derived_cluster_id());
        let other = ClusterSpec::parse("1=127.0.0.1:7001,2=127.0.0.1:7002").unwrap();
        assert_ne!(a.derived_cluster_id(), other.derived_cluster_id());
        assert_eq!(a.resolve().unwrap()[&1], "127.0.0.1:7001".parse().unwrap());
    }

    #[test]
    fn fnv1a_matches_its_published_test_vector() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn bad_lists_name_the_entry_at_fault() {
        for (text, entry) in [
            ("1=127.0.0.1:7001,1=127.0.0.1:7002", "1=127.0.0.1:7002"),
            ("0=127.0.0.1:7001", "0=127.0.0.1:7001"),
            ("x=127.0.0.1:7001", "x=127.0.0.1:7001"),
            ("1=127.0.0.1", "1=127.0.0.1"),
            ("1=:80", "1=:80"),
            ("1=127.0.0.1:99999", "1=127.0.0.1:99999"),
            ("1127.0.0.1:7001", "1127.0.0.1:7001"),
        ] {
            let error = ClusterSpec::parse(text).unwrap_err();
            assert_eq!(error.entry, entry, "{text}: {error}");
        }
        assert!(ClusterSpec::parse("").is_err());
        assert!(ClusterSpec::parse("1=a:1,").is_err());
    }
}

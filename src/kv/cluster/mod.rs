//! The Redis Cluster protocol surface of the key-value service.
//!
//! Redis Cluster clients (`redis-cli -c`, redis-py's `RedisCluster`, ...) learn which node serves which of the 16,384 hash slots with
//! `CLUSTER SLOTS`, `CLUSTER SHARDS` or `CLUSTER NODES`, and send each command to the
//! master of its key's slot. Today's service is one Raft group holding every key, so every
//! node answers as one shard that owns every slot, with the Raft leader as its master and
//! the other voters as its replicas. Any node serves any key (a follower forwards writes and
//! confirms reads with the leader), so a client that routes by this map and one that does
//! not see the same data; the map only makes cluster-aware clients work, and sends their
//! writes to the leader first.
//!
//! - [`slot`]: a key's slot (CRC16 of the key or its hash tag, mod 16384);
//! - [`node_name`]: the 40-hex-digit node ids, derived from the cluster and node ids;
//! - [`view`]: the shard as this node sees it, and which nodes it can name at which client
//!   address (`ketch serve --cluster-client-addrs`);
//! - [`command`]: the `CLUSTER` subcommands' replies, and what they say with no leader.
//!
//! `redis-benchmark --cluster` reads `CLUSTER NODES` as it reads a real one-shard cluster's,
//! and refuses it alike (`Invalid cluster: 1 node(s).`): it needs at least two masters with
//! slots. Run it without `--cluster` against any node.
//!
//! `READONLY` and `READWRITE` are accepted (`+OK`) and change nothing: every read is
//! linearizable on every node already.
//!
//! # Not yet
//!
//! Multi-key commands (`MGET`, `MSET`, `DEL`, `RENAME`, transactions) are not restricted to
//! one slot, and no reply is ever `-MOVED` or `-ASK`: with one group, every key is on every
//! node. Both come with sharding over many groups (the slot map will then be a replicated
//! table with an epoch, and a stale request will get a redirect). `HELLO`, `INFO` and
//! `CONFIG GET cluster-enabled` still say `standalone` / `cluster_enabled:0`, so that a
//! client that is not cluster-aware sees no change.

pub mod command;
pub mod node_name;
pub mod slot;
pub mod view;

pub use node_name::NodeName;
pub use slot::{key_slot, SLOT_COUNT};
pub use view::{ClusterNode, ClusterView, ShardView};

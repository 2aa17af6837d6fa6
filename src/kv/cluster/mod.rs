//! The Redis Cluster protocol surface of the key-value service.
//!
//! Redis Cluster clients (`redis-cli -c`, redis-py's `RedisCluster`, ...) learn which node serves which of the 16,384 hash slots with
//! `CLUSTER SLOTS`, `CLUSTER SHARDS` or `CLUSTER NODES`, and send each command to the
//! master of its key's slot. The slots are split into shards, each a range served by one
//! Raft group, with every host holding a replica of every group: a shard's master is its
//! group's leader, its replicas the group's other voters, and a host is the master of every
//! shard whose group it leads. The single-group service is the one-shard case: one shard
//! owning every slot. There, any node serves any key (a follower forwards writes and
//! confirms reads with the leader), so a client that routes by this map and one that does
//! not see the same data; the map only makes cluster-aware clients work, and sends their
//! writes to the leader first.
//!
//! - [`slot`]: a key's slot (CRC16 of the key or its hash tag, mod 16384);
//! - [`node_name`]: the 40-hex-digit node ids, derived from the cluster and node ids;
//! - [`view`]: the shards as this node sees them, and which nodes it can name at which
//!   client address (`ketch serve --cluster-client-addrs`);
//! - [`command`]: the `CLUSTER` subcommands' replies, and what they say with no leader.
//!
//! `redis-benchmark --cluster` reads `CLUSTER NODES` as it reads a real cluster's. It skips
//! `slave` lines, which is why every host is shown as a `master` line listing the slots it
//! leads. It needs at least two masters with slots, so it refuses a one-shard view as it
//! refuses a real one-shard cluster (`Invalid cluster: 1 node(s).`): run it without
//! `--cluster` against any node there.
//!
//! `READONLY` and `READWRITE` are accepted (`+OK`) and change nothing: every read is
//! linearizable on every node already.
//!
//! # Many shards
//!
//! With `ketch serve --shards N` (see [`crate::kv::sharded`]) a request goes to the group of
//! its keys' slot; keys in different slots answer `-CROSSSLOT`, and with `--cluster-mode
//! redirect` a key whose range another node leads answers `-MOVED slot host:port`. In
//! `CLUSTER SLOTS`, a node is named as a replica of a range only after it was named as the
//! master of another, if it leads any: redis-py takes a node's first role there as its only
//! one. With one shard, multi-key commands span any slots, as one Redis serves them.
//!
//! # Not yet
//!
//! No reply is ever `-ASK` (ranges do not move yet). `HELLO`, `INFO` and `CONFIG GET
//! cluster-enabled` still say `standalone` / `cluster_enabled:0`, so that a client that is
//! not cluster-aware sees no change.

pub mod command;
pub mod node_name;
pub mod slot;
pub mod view;

pub use node_name::NodeName;
pub use slot::{key_slot, SLOT_COUNT};
pub use view::{ClusterNode, ClusterView, ShardView};

//! [`ShardedService`]: the key-value service over many Raft groups, one per hash-slot range,
//! spoken as Redis Cluster. This is what `ketch serve --shards N` (N > 1) runs.
//!
//! # Layout
//!
//! The 16,384 slots are split into N equal ranges ([`SlotRanges`]); range `i` is Raft group
//! `i + 1` of one [`Host`](crate::node::Host) per process, each group a
//! [`KvStateMachine`] of its own with a replica on every host of the cluster. The host gives
//! them one log (one fdatasync per round for every group), one connection per peer host and a
//! fixed set of threads. The RESP server has one lane per group ([`Backend`]): a request goes to
//! the group of its keys' slot, and the writes of one poll round go to each group as one
//! entry of its log.
//!
//! # Requests
//!
//! - A request whose keys are in one slot goes to that slot's group, wherever its leader is:
//!   a follower's host forwards writes to the leader and confirms reads with it (ReadIndex),
//!   so a client that does not route by slot still gets right answers (`--cluster-mode
//!   forward`, the default). Cluster-aware clients route by `CLUSTER SLOTS` and reach the
//!   leader directly.
//! - Keys in different slots answer `-CROSSSLOT`, as in Redis Cluster: the rule is by slot,
//!   not by group, so a later split of a range never changes the answer.
//! - Exactly-once sessions are per group: a connection's own session numbers its writes to
//!   each group apart (`KETCH.WRITE` sessions likewise live in the group they write to).
//!
//! # The routing table
//!
//! Which group serves which range, on which hosts, at which range epoch ([`RoutingTable`]),
//! is the state of the meta group ([`META_GROUP`], a voting replica on every host,
//! [`MetaStateMachine`]): every host learns the same table through its log. It starts as the
//! split of the slots into N equal ranges, each at epoch 1; N is recorded in the data
//! directory (`shards` file) at the first start, and a restart with another N is refused, so
//! every replica starts from the same table. The server routes by its host's replica's copy.
//!
//! That copy may lag the log. Each range group therefore holds its own range and epoch in its
//! replicated state ([`RangeMachine`]), every batch carries the range and epoch of the route
//! it followed, and a group refuses, whole and alike on every replica, a batch whose route is
//! not its own range at its own epoch: `-TRYAGAIN` (not applied), which Redis clients retry.
//! A stale route is never served. Ranges do not change yet (no split or move issues a table
//! change); when they do, the change is one entry in the range's log (its new bounds and
//! epoch) and one compare-and-set of the table in the meta group.
//!
//! # Not yet
//!
//! Membership changes and `KETCH.TRANSFER` are refused (every group has a replica on every
//! host given at bootstrap); `--join` and lease reads are refused at start.
//!
//! # Splits (design, not built yet)
//!
//! A split of range R (group G, epoch e) at slot s is one entry in G's log. Applied at the
//! same index on every replica, it shrinks G to R's left part at epoch e + 1 and moves the
//! right part's keys, with a copy of G's session table (so a write retried across the split
//! is still answered once), out (`KvStateMachine::split_off`). Inside that apply the right
//! half is written and synced as a pending file for the new group N, before G can snapshot
//! past the split. The apply cannot create N itself: the host's loop blocks on a full apply
//! queue while the apply worker would wait on the loop. A thread of the service then creates
//! N from the file (`Host::create_group_with_state`, at a fixed first index, as TiKV starts a
//! split region at `RAFT_INIT_LOG_INDEX`), has the meta group move the right part to N at
//! epoch e + 1 (one compare-and-set), and deletes the file. A crash before N exists replays
//! the split from G's log or finds the file; a replica that got G's snapshot instead of the
//! split entry creates N empty from the table and is sent N's snapshot. Until the table
//! changes, both parts' routes carry epoch e and are refused (`-TRYAGAIN`), never served.
//! Still to build: the split entry, that thread, lanes added while the server runs, and
//! `KETCH.SPLIT`.

mod meta_machine;
mod range_machine;
mod routing_table;
mod shard_groups;
mod shard_machine;
mod slot_ranges;

pub use meta_machine::{replace_command, MetaStateMachine, SharedTable};
pub use range_machine::{admits, OwnedRange, RangeMachine, GUARD};
pub use routing_table::{RangeRoute, RoutingTable, TableError, META_GROUP};
pub use shard_groups::{ShardGroups, REFRESH_INTERVAL};
pub use shard_machine::ShardMachine;
pub use slot_ranges::{SlotRanges, SHARDS_MAX};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::clock::Clock;
use super::reclaim::Reclaimer;
use super::server::Server;
use super::service::{bind_clients, leader_stamp, ServiceConfig, ServiceError};
use super::state::{KvStateMachine, MAX_VALUE_BYTES_MAX};
use crate::node::{GroupId, Host, HostConfig, NodeConfig, NodeError, NodeStatus, ProposalStamp};

/// The file in the data directory that holds the number of shards.
pub const SHARDS_FILE: &str = "shards";

/// A running sharded key-value node: a host of shard groups and its RESP server.
pub struct ShardedService {
    groups: Arc<ShardGroups>,
    server: Server,
    reclaimer: Reclaimer,
    refresh_stop: Arc<AtomicBool>,
    refresh: JoinHandle<()>,
}

impl std::fmt::Debug for ShardedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedService")
            .field("host", &self.groups.host().id())
            .field("shards", &self.groups.ranges().shards())
            .finish()
    }
}

/// The host configuration a node configuration stands for.
fn host_config(node: &NodeConfig) -> Result<HostConfig, String> {
    if node.join {
        return Err("--join is not supported with more than one shard yet".to_string());
    }
    if node.raft.read_mode == crate::raft::ReadMode::Lease {
        return Err(
            "lease reads are not supported with more than one shard: a quiesced group's \
             leader holds no lease (use --read-mode read-index)"
                .to_string(),
        );
    }
    let mut host = HostConfig::new(
        node.id,
        node.cluster_id,
        node.peers.clone(),
        node.listen_addr,
    );
    host.tick_interval = node.tick_interval;
    host.raft = node.raft.clone();
    host.propose_timeout = node.propose_timeout;
    host.read_timeout = node.read_timeout;
    host.max_pending_proposals = node.max_pending_proposals;
    host.disk_stall_timeout = node.disk_stall_timeout;
    host.peer_queue_bytes_max = node.peer_queue_bytes_max;
    host.max_proposal_bytes = node.max_proposal_bytes;
    host.log = node.wal.clone();
    host.peer_security = node.peer_security.clone();
    host.proposal_stamp = node.proposal_stamp.clone();
    Ok(host)
}

/// Records `shards` in a new data directory, or checks it against the recorded count.
fn check_shards_file(data_dir: &Path, shards: u16) -> Result<(), ServiceError> {
    let path = data_dir.join(SHARDS_FILE);
    let config = |message: String| ServiceError::Node(NodeError::Config(message));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded: u16 = text.trim().parse().map_err(|_| {
                config(format!(
                    "{}: expected a number of shards, found {:?}",
                    path.display(),
                    text.trim()
                ))
            })?;
            if recorded != shards {
                return Err(config(format!(
                    "{} says this data directory holds {recorded} shards; it cannot be \
                     opened with --shards {shards}",
                    path.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(|e| ServiceError::Node(NodeError::Io(e)))?;
            // Written and synced before any group exists, so a host that has groups always
            // has the file.
            let tmp = data_dir.join(format!("{SHARDS_FILE}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut file = std::fs::File::create(&tmp)?;
                std::io::Write::write_all(&mut file, format!("{shards}\n").as_bytes())?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(data_dir)?.sync_all()
            };
            write().map_err(|e| ServiceError::Node(NodeError::Io(e)))
        }
        Err(e) => Err(ServiceError::Node(NodeError::Io(e))),
    }
}

impl ShardedService {
    /// Starts a host with `shards` groups, each a [`KvStateMachine`], creating the groups
    /// that are not in `config.data_dir` yet (every host of `config.node.peers` holds a
    /// voting replica of each), then the RESP server and the reclaimer. `config` is read as
    /// for [`KvService::start`](super::KvService::start); its node settings become the host's.
    pub fn start(mut config: ServiceConfig, shards: u16) -> Result<ShardedService, ServiceError> {
        let ranges = SlotRanges::new(shards)
            .map_err(|message| ServiceError::Node(NodeError::Config(message)))?;
        let max_value_bytes = config.server.max_value_bytes;
        if max_value_bytes > MAX_VALUE_BYTES_MAX {
            return Err(ServiceError::Node(NodeError::Config(format!(
                "max value bytes {max_value_bytes} is above the maximum {MAX_VALUE_BYTES_MAX}"
            ))));
        }
        config.node.max_proposal_bytes = config.server.max_entry_bytes() as u64;
        let stamp = leader_stamp(Clock::with_offset_ms(config.server.clock_offset_ms));
        config.node.proposal_stamp = Some(ProposalStamp(Arc::new(move |batch: &mut [u8]| {
            range_machine::stamp_guarded(batch, |inner| (stamp.0)(inner))
        })));
        let host_config =
            host_config(&config.node).map_err(|m| ServiceError::Node(NodeError::Config(m)))?;
        check_shards_file(&config.data_dir, shards)?;
        let listeners = bind_clients(config.client_addr, config.tls.as_ref())?;
        let hosts = config.node.peers.clone();
        let voters: Vec<_> = hosts.keys().copied().collect();
        let sessions = config.sessions;
        let bootstrap = RoutingTable::bootstrap(ranges, &voters);
        let table = SharedTable::new(bootstrap.clone());
        let factory_table = table.clone();
        let host = Host::start(host_config, &config.data_dir, move |group: GroupId| {
            if group == META_GROUP {
                return ShardMachine::Meta(MetaStateMachine::new(
                    bootstrap.clone(),
                    factory_table.clone(),
                ));
            }
            // A group starts with its range in the bootstrap table; its snapshot, once it
            // has one, carries its range from then on.
            let range = bootstrap.range_of_group(group).map(|route| OwnedRange {
                first: route.first,
                last: route.last,
                epoch: route.epoch,
            });
            let kv = KvStateMachine::new(sessions).with_max_value_bytes(max_value_bytes);
            ShardMachine::Range(RangeMachine::new(range, kv))
        })
        .map_err(ServiceError::Node)?;
        let mut groups = Vec::with_capacity(usize::from(shards));
        let created = host.create_group(META_GROUP, &voters).and_then(|_| {
            for shard in 0..shards {
                groups.push(host.create_group(GroupId::from(shard) + 1, &voters)?);
            }
            Ok(())
        });
        if let Err(e) = created {
            let _ = host.shutdown();
            return Err(ServiceError::Node(e));
        }
        let cluster_id = config.node.cluster_id;
        let groups = Arc::new(ShardGroups::new(
            host, cluster_id, ranges, table, groups, hosts,
        ));
        let stop_all = |groups: Arc<ShardGroups>| {
            if let Ok(groups) = Arc::try_unwrap(groups) {
                let _ = groups.into_host().shutdown();
            }
        };
        let refresh_stop = Arc::new(AtomicBool::new(false));
        let refresh =
            match shard_groups::start_refresh(Arc::clone(&groups), Arc::clone(&refresh_stop)) {
                Ok(thread) => thread,
                Err(e) => {
                    stop_all(groups);
                    return Err(ServiceError::Server(e));
                }
            };
        let stop_refresh = |refresh: JoinHandle<()>| {
            refresh_stop.store(true, Ordering::Release);
            let _ = refresh.join();
        };
        let server = match Server::start(Arc::clone(&groups) as _, listeners, voters, config.server)
        {
            Ok(server) => server,
            Err(e) => {
                stop_refresh(refresh);
                stop_all(groups);
                return Err(ServiceError::Server(e));
            }
        };
        let reclaimer = match Reclaimer::start(Arc::clone(&groups) as _) {
            Ok(reclaimer) => reclaimer,
            Err(e) => {
                let _ = server.shutdown();
                stop_refresh(refresh);
                stop_all(groups);
                return Err(ServiceError::Server(e));
            }
        };
        Ok(ShardedService {
            groups,
            server,
            reclaimer,
            refresh_stop,
            refresh,
        })
    }

    /// The address RESP clients connect to: the plaintext one, or the TLS one when there is
    /// no plaintext listener.
    pub fn client_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The address TLS clients connect to, if the service has a TLS listener.
    pub fn tls_client_addr(&self) -> Option<SocketAddr> {
        self.server.tls_addr()
    }

    /// The host (for [`Host::status`] and the groups' statuses).
    pub fn host(&self) -> &Host {
        self.groups.host()
    }

    /// The slot ranges the groups serve (group `i + 1` serves range `i`).
    pub fn ranges(&self) -> SlotRanges {
        self.groups.ranges()
    }

    /// Readers of each range group's status as one node would report itself, for the
    /// metrics collector (see `ketch::metrics`: it sums them, so `is_leader` counts the ranges
    /// this host leads and `has_leader` is 1 while every range has a leader).
    pub fn status_readers(&self) -> Vec<Box<dyn Fn() -> NodeStatus + Send + Sync + 'static>> {
        (0..usize::from(self.groups.ranges().shards()))
            .map(|lane| {
                let groups = Arc::clone(&self.groups);
                Box::new(move || groups.lane_node_status(lane)) as Box<_>
            })
            .collect()
    }

    /// The routing table as this host's meta replica last applied it (what the server
    /// routes by).
    pub fn routing_table(&self) -> Arc<RoutingTable> {
        self.groups.table()
    }

    /// Stops the reclaimer, the RESP server (closing client connections), the refresh
    /// thread, then the host. Returns every failure.
    pub fn shutdown(self) -> Result<(), ServiceError> {
        let ShardedService {
            groups,
            server,
            reclaimer,
            refresh_stop,
            refresh,
        } = self;
        reclaimer.stop();
        let server_result = server.shutdown();
        refresh_stop.store(true, Ordering::Release);
        let refresh_result = refresh.join();
        let host_result = match Arc::try_unwrap(groups) {
            Ok(groups) => groups.into_host().shutdown(),
            Err(_) => Err(NodeError::Threads(vec![
                "the host is still referenced after the RESP server stopped".to_string(),
            ])),
        };
        let host_result = match (host_result, refresh_result) {
            (Ok(()), Err(_)) => Err(NodeError::Threads(vec![
                "the shard refresh thread panicked".to_string(),
            ])),
            (result, _) => result,
        };
        match (server_result, host_result) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(server), Ok(())) => Err(ServiceError::Server(server)),
            (Ok(()), Err(node)) => Err(ServiceError::Node(node)),
            (Err(server), Err(node)) => Err(ServiceError::Both { server, node }),
        }
    }
}

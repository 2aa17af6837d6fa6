//! [`ShardGroups`]: a host's shard groups as the RESP server's [`Backend`], one lane per slot
//! range, and the thread that keeps what the server reads of them fresh.
//!
//! The server asks for leaders on every `CLUSTER` command and the reclaimer every 100 ms;
//! a [`Group::status`] is a round trip through the host's loop, so a `refresh` thread asks
//! every group every [`REFRESH_INTERVAL`] and the server reads the copy. A leader change is
//! seen within that interval; a request sent to a stale leader is still answered right, since
//! the host forwards a proposal to the leader its replica knows and a read confirms the
//! leader's term (ReadIndex), so staleness only costs a hop.
//!
//! The same thread places leaders: at bootstrap each group's first leader is wherever its
//! election lands, and the thread on that host hands it to the group's *preferred* host
//! (shard `i` to the `i mod n`-th host, in id order), so the groups' leaders, and with them
//! the writes, spread over the hosts. It asks once per group per process start, and only
//! while the preferred host is connected; after that, leadership goes where elections put it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::meta_machine::SharedTable;
use super::range_machine::guard;
use super::routing_table::RoutingTable;
use super::slot_ranges::SlotRanges;
use crate::kv::cluster::view::{ClusterNode, ShardView};
use crate::kv::cluster::{ClusterView, NodeName};
use crate::kv::server::{
    Backend, ChangeDone, LaneRoute, ProposeDone, RangeCheck, ReadDone, RouteView,
};
use crate::node::{
    ChangeError, Group, GroupId, GroupStatus, Host, HostStatus, MemberStatus, NodeStatus,
    WriterStats,
};
use crate::raft::{ConfChange, Membership, NodeId, Role};

/// How often the statuses are refreshed.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(25);

/// How long after start a leader may still be handed to its preferred host.
const PLACEMENT_WINDOW: Duration = Duration::from_secs(30);

/// The epoch of a route to a group this host does not hold: no range has it, so the batch is
/// refused (`range_machine`), never served by the wrong group.
const NO_SUCH_EPOCH: u64 = u64::MAX;

/// The host, its shard groups (group `i + 1` serves range `i`, lane `i`), the routing table
/// its meta replica applied, and the groups' last statuses.
pub struct ShardGroups {
    host: Host,
    cluster_id: u64,
    ranges: SlotRanges,
    table: SharedTable,
    groups: Vec<Group>,
    /// Every host, by id, with its peer address.
    hosts: BTreeMap<NodeId, SocketAddr>,
    statuses: RwLock<Statuses>,
}

/// What the refresh thread last saw.
#[derive(Default)]
struct Statuses {
    host: HostStatus,
    groups: Vec<Option<GroupStatus>>,
}

impl ShardGroups {
    /// Wraps `host`, whose groups `groups` serve `ranges` in order (lane `i` is group
    /// `i + 1`), routing by `table`.
    pub fn new(
        host: Host,
        cluster_id: u64,
        ranges: SlotRanges,
        table: SharedTable,
        groups: Vec<Group>,
        hosts: BTreeMap<NodeId, SocketAddr>,
    ) -> ShardGroups {
        for (lane, group) in groups.iter().enumerate() {
            assert_eq!(group.id(), lane as u64 + 1, "lane {lane}'s group");
        }
        assert_eq!(groups.len(), usize::from(ranges.shards()));
        let statuses = RwLock::new(Statuses {
            host: host.status(),
            groups: groups.iter().map(Group::status).collect(),
        });
        ShardGroups {
            host,
            cluster_id,
            ranges,
            table,
            groups,
            hosts,
            statuses,
        }
    }

    /// The host, to stop it.
    pub fn into_host(self) -> Host {
        self.host
    }

    /// The host running the groups.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The slot ranges.
    pub fn ranges(&self) -> SlotRanges {
        self.ranges
    }

    /// The routing table as this host's meta replica last applied it.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.table.get()
    }

    /// The lane of `group`, if this host holds it.
    fn lane_of_group(&self, group: GroupId) -> Option<usize> {
        let lane = usize::try_from(group.checked_sub(1)?).ok()?;
        (lane < self.groups.len()).then_some(lane)
    }

    /// The host shard `shard` prefers as its leader.
    fn preferred_leader(&self, shard: usize) -> NodeId {
        let ids: Vec<NodeId> = self.hosts.keys().copied().collect();
        ids[shard % ids.len()]
    }

    /// Reads every status once; hands the leaderships this host holds to their preferred
    /// hosts, once for each group not `placed` yet.
    fn refresh(&self, placed: &mut [bool]) {
        let groups: Vec<Option<GroupStatus>> = self.groups.iter().map(Group::status).collect();
        let host = self.host.status();
        let me = self.host.id();
        for (shard, status) in groups.iter().enumerate() {
            let Some(status) = status else { continue };
            if placed[shard] || status.role != Role::Leader {
                continue;
            }
            let preferred = self.preferred_leader(shard);
            if preferred == me {
                placed[shard] = true;
            } else if host.connected_peers.contains(&preferred) {
                placed[shard] = true;
                let group = self.groups[shard].id();
                self.groups[shard].transfer_leadership(preferred, move |result| {
                    if let Err(e) = result {
                        log::info!("group {group}: leadership not handed to host {preferred}: {e}");
                    }
                });
            }
        }
        let mut statuses = self.statuses.write().unwrap_or_else(|p| p.into_inner());
        statuses.host = host;
        statuses.groups = groups;
    }

    /// Group `lane + 1` as one node would report itself (for the metrics: one status per
    /// group, summed by the collector). The shared log's counters go with lane 0's only, so
    /// that they are counted once.
    pub fn lane_node_status(&self, lane: usize) -> NodeStatus {
        let statuses = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        let group = statuses.groups.get(lane).cloned().flatten();
        let (role, term) = group
            .as_ref()
            .map_or((Role::Follower, 0), |g| (g.role, g.term));
        self.node_status(&statuses, group.as_ref(), role, term, lane == 0)
    }

    /// A node status of `group`'s indexes and leader (shard 0's for the host as a whole),
    /// with `role` and `term`, and the host's connections, errors and (if `writer`) log
    /// counters.
    fn node_status(
        &self,
        statuses: &Statuses,
        group: Option<&GroupStatus>,
        role: Role,
        term: u64,
        writer: bool,
    ) -> NodeStatus {
        let host = &statuses.host;
        let membership = group
            .map(|g| g.membership.clone())
            .unwrap_or_else(|| Membership::with_voters(self.hosts.keys().copied()));
        let members = self
            .hosts
            .iter()
            .map(|(&id, &addr)| {
                let status = MemberStatus {
                    peer_addr: Some(addr),
                    voter: membership.voters.contains(&id),
                };
                (id, status)
            })
            .collect();
        let writer = if writer {
            WriterStats {
                fsyncs: host.writer.fsyncs,
                entries_written: host.writer.entries_written,
                items_written: host.writer.items_written,
                ..WriterStats::default()
            }
        } else {
            WriterStats::default()
        };
        NodeStatus {
            id: self.host.id(),
            role,
            term,
            leader: group.and_then(|g| g.leader),
            commit: group.map_or(0, |g| g.commit),
            applied: group.map_or(0, |g| g.applied),
            last_index: group.map_or(0, |g| g.last_index),
            progress: BTreeMap::new(),
            writer,
            transport: host.transport,
            raft_stats: Default::default(),
            connected_peers: host.connected_peers.clone(),
            participating: host.participating,
            disk_stalled: host.disk_stalled,
            last_error: host.last_error.clone(),
            listen_addr: host
                .listen_addr
                .unwrap_or_else(|| self.hosts[&self.host.id()]),
            members,
            forwards_in_flight: host.forwards_in_flight,
            other_group_dropped: host.messages_unrouted,
            committed_membership: membership.clone(),
            membership,
            removed: false,
        }
    }

    fn group_status(&self, lane: usize) -> Option<GroupStatus> {
        let statuses = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        statuses.groups.get(lane).cloned().flatten()
    }
}

/// The refresh thread (module docs); stops when `stop` is set.
pub fn start_refresh(
    groups: Arc<ShardGroups>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ketch-{}-shards", groups.host.id()))
        .spawn(move || {
            let started = Instant::now();
            let mut placed = vec![false; groups.groups.len()];
            while !stop.load(Ordering::Acquire) {
                if started.elapsed() > PLACEMENT_WINDOW {
                    placed.iter_mut().for_each(|p| *p = true);
                }
                groups.refresh(&mut placed);
                std::thread::sleep(REFRESH_INTERVAL);
            }
        })
}

impl Backend for ShardGroups {
    fn id(&self) -> NodeId {
        self.host.id()
    }

    fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    fn lanes(&self) -> usize {
        self.groups.len()
    }

    fn route_slot(&self, slot: u16) -> LaneRoute {
        self.table.with(|table| {
            let route = table.route(slot);
            let (lane, epoch) = match self.lane_of_group(route.group) {
                Some(lane) => (lane, route.epoch),
                None => (0, NO_SUCH_EPOCH),
            };
            LaneRoute {
                lane,
                check: Some(RangeCheck {
                    first: route.first,
                    last: route.last,
                    epoch,
                }),
            }
        })
    }

    fn submit(&self, lane: usize, check: Option<RangeCheck>, batch: Vec<u8>, done: ProposeDone) {
        let batch = match check {
            Some(check) => guard(check, batch),
            None => batch,
        };
        self.groups[lane].submit_with(batch, done);
    }

    fn read(&self, lane: usize, check: Option<RangeCheck>, batch: Vec<u8>, done: ReadDone) {
        let batch = match check {
            Some(check) => guard(check, batch),
            None => batch,
        };
        self.groups[lane].read_with(batch, done);
    }

    /// The host as one node: a leader if it leads any group, at the highest term of its
    /// groups; the indexes and the membership are shard 0's, the writer's counters the
    /// shared log's.
    fn status(&self) -> NodeStatus {
        let statuses = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        let first = statuses.groups.first().cloned().flatten();
        let leads_any = statuses
            .groups
            .iter()
            .flatten()
            .any(|g| g.role == Role::Leader);
        let term = statuses
            .groups
            .iter()
            .flatten()
            .map(|g| g.term)
            .max()
            .unwrap_or(0);
        let role = if leads_any {
            Role::Leader
        } else {
            Role::Follower
        };
        self.node_status(&statuses, first.as_ref(), role, term, true)
    }

    fn is_leader(&self) -> bool {
        let statuses = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        statuses
            .groups
            .iter()
            .flatten()
            .any(|g| g.role == Role::Leader && g.participating)
    }

    fn cluster_view(
        &self,
        client_addrs: &BTreeMap<NodeId, SocketAddr>,
        connection_addr: Option<SocketAddr>,
    ) -> ClusterView {
        let statuses = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        let me = self.host.id();
        let nodes = self
            .hosts
            .iter()
            .filter_map(|(&id, peer_addr)| {
                let announced = client_addrs.get(&id).copied();
                let client_addr = announced.or(connection_addr.filter(|_| id == me))?;
                Some(ClusterNode {
                    id,
                    name: NodeName::of(self.cluster_id, id),
                    client_addr,
                    bus_port: peer_addr.port(),
                    reachable: id == me || statuses.host.connected_peers.contains(&id),
                    replication_offset: 0,
                })
            })
            .collect();
        let table = self.table.get();
        let shards = table
            .ranges()
            .iter()
            .map(|route| {
                let status = self
                    .lane_of_group(route.group)
                    .and_then(|lane| statuses.groups.get(lane).cloned().flatten());
                ShardView {
                    slots: vec![(route.first, route.last)],
                    leader: status
                        .as_ref()
                        .filter(|g| g.participating)
                        .and_then(|g| g.leader),
                    term: status.as_ref().map_or(0, |g| g.term),
                    voters: status.map_or_else(
                        || route.voters.clone(),
                        |g| g.membership.voters.iter().copied().collect(),
                    ),
                }
            })
            .collect();
        let transport = statuses.host.transport;
        ClusterView::sharded(
            me,
            self.cluster_id,
            nodes,
            shards,
            transport.messages_queued,
            transport.messages_received,
        )
    }

    fn lane_leader(&self, lane: usize) -> Option<NodeId> {
        self.group_status(lane)
            .filter(|g| g.participating)
            .and_then(|g| g.leader)
    }

    fn change_membership(&self, _change: ConfChange, _addr: Option<SocketAddr>, done: ChangeDone) {
        done(Err(ChangeError::Refused {
            reason: "membership changes of a sharded cluster are not supported yet: every \
                     shard's group has a replica on every host given at bootstrap"
                .to_string(),
        }));
    }

    fn routing(&self) -> (u64, Vec<RouteView>) {
        let table = self.table.get();
        let routes = table
            .ranges()
            .iter()
            .map(|route| RouteView {
                first: route.first,
                last: route.last,
                group: route.group,
                epoch: route.epoch,
            })
            .collect();
        (table.epoch(), routes)
    }

    fn transfer_leadership(&self, target: NodeId, done: ChangeDone) {
        done(Err(ChangeError::Refused {
            reason: format!(
                "KETCH.TRANSFER {target}: a sharded cluster's leaders are placed per shard; \
                 transferring every shard at once is not supported"
            ),
        }));
    }
}

//! `CLUSTER ...`: the replies, as a Redis 7.0 cluster node gives them, from a
//! [`ClusterView`].
//!
//! | request                 | reply                                                       |
//! |-------------------------|-------------------------------------------------------------|
//! | `CLUSTER KEYSLOT key`   | the key's slot ([`key_slot`])                               |
//! | `CLUSTER MYID`          | this node's [`NodeName`](super::NodeName)                   |
//! | `CLUSTER INFO`          | `cluster_state`, slot counts, `cluster_known_nodes`, `cluster_size`, epochs, message counts (below) |
//! | `CLUSTER SLOTS`         | per range, in slot order: `[start, end, master, replica...]`, each node `[ip, port, id, {}]` |
//! | `CLUSTER SHARDS`        | per shard: `{slots: [start, end, ...], nodes: [{id, port, ip, endpoint, role, replication-offset, health}...]}` |
//! | `CLUSTER NODES`         | one line per host: `id ip:port@bus-port flags - 0 0 epoch link [range...]` |
//! | `CLUSTER HELP`          | the subcommands above                                       |
//!
//! Replies follow redis-server 7.0.15 with `--cluster-enabled yes` byte for byte in layout
//! and types: the empty metadata map of a `CLUSTER SLOTS` node (`*0` in RESP2, `%0` in
//! RESP3), maps for shards and their nodes, verbatim strings for `INFO` and `NODES` in
//! RESP3. Errors use Redis' words: `wrong number of arguments for 'cluster|keyslot'
//! command`, `unknown subcommand 'x'. Try CLUSTER HELP.` (also for Redis subcommands that
//! change the slot map, such as `ADDSLOTS` or `FAILOVER`: the map follows the Raft group).
//! `COUNTKEYSINSLOT` and `GETKEYSINSLOT` are not served: they would need a scan of the
//! keyspace through the state machine.
//!
//! # What the fields say
//!
//! - A shard's master is its group's leader ([`ClusterView::master_of`]); its other voters
//!   shown are replicas in `CLUSTER SLOTS` (reachable ones only, as Redis leaves out failed
//!   replicas) and `CLUSTER SHARDS` (all, with `health` `online` or `failed`).
//! - In `CLUSTER NODES` every host is a `master` line listing the ranges it leads (adjacent
//!   ones merged, a single slot as `n`), and a host leading nothing lists none. No line is
//!   `slave`: every host replicates every group, so it would be the replica of several
//!   masters at once, which a `slave` line cannot say, and `redis-benchmark --cluster`
//!   drops `slave` lines. The answering node's line has `myself`; a peer this node has no
//!   connection to has `fail?` and `disconnected`. The epoch field is the highest term of
//!   the shards the host leads, 0 if none; ping and pong times are 0.
//! - `cluster_size` counts the hosts that are the master of a shard shown, as Redis counts
//!   masters serving slots. `cluster_current_epoch` is the highest term of any shard;
//!   `cluster_my_epoch` this node's epoch in `CLUSTER NODES` if it leads a shard, else the
//!   current epoch (a Redis replica shows its master's, and this node has one per shard).
//!   With one shard both are its term. `cluster_stats_messages_sent` / `_received` count
//!   Raft messages.
//!
//! # Without a master
//!
//! When this node knows no leader of a shard (an election is under way, or it is cut off),
//! or knows one whose client address it does not know, no node can be named as that
//! shard's owner: its slots are counted in `cluster_slots_assigned` and in
//! `cluster_slots_fail` rather than `cluster_slots_ok` (as Redis reports slots whose master
//! failed), so `CLUSTER INFO` says `cluster_state:fail`; `CLUSTER SLOTS` and `CLUSTER
//! SHARDS` leave the shard out (a master-less range is not something a Redis client can
//! use), so with one shard they are empty arrays; and no line of `CLUSTER NODES` lists its
//! slots. A client that asks again once a leader is elected gets the full map.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::slot::{key_slot, SLOT_COUNT};
use super::view::{ClusterNode, ClusterView, ShardView};
use crate::kv::resp::Frame;
use crate::kv::state::commands::arity_error_text;
use crate::raft::NodeId;

/// `CLUSTER HELP`'s lines: Redis 7.0's, for the subcommands served.
const CLUSTER_HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "HELP",
    "    Prints this help.",
];

/// The subcommands served (lower case), for the command table's check.
pub const SUBCOMMANDS: &[&str] = &[
    "keyslot", "myid", "info", "slots", "shards", "nodes", "help",
];

fn error(text: impl Into<String>) -> Frame {
    Frame::Error(text.into())
}

fn verbatim(text: String) -> Frame {
    Frame::Verbatim {
        format: *b"txt",
        text: text.into_bytes(),
    }
}

/// The reply to `CLUSTER <args[1..]>`; `view` is built only for subcommands that need it.
pub fn cluster_command(args: &[Vec<u8>], view: impl FnOnce() -> ClusterView) -> Frame {
    let Some(sub) = args.get(1) else {
        return error(arity_error_text("cluster"));
    };
    let sub = sub.to_ascii_lowercase();
    let Some(&name) = SUBCOMMANDS.iter().find(|name| name.as_bytes() == sub) else {
        return error(format!(
            "ERR unknown subcommand '{}'. Try CLUSTER HELP.",
            String::from_utf8_lossy(&args[1])
        ));
    };
    let arity = if name == "keyslot" { 3 } else { 2 };
    if args.len() != arity {
        return error(arity_error_text(&format!("cluster|{name}")));
    }
    match name {
        "keyslot" => Frame::Integer(i64::from(key_slot(&args[2]))),
        "help" => Frame::Array(
            CLUSTER_HELP
                .iter()
                .map(|line| Frame::Simple(line.to_string()))
                .collect(),
        ),
        "myid" => Frame::bulk(view().myself_name.as_str()),
        "info" => verbatim(info_text(&view())),
        "slots" => slots_reply(&view()),
        "shards" => shards_reply(&view()),
        "nodes" => verbatim(nodes_text(&view())),
        _ => unreachable!("every name in SUBCOMMANDS is answered"),
    }
}

/// `CLUSTER INFO`'s text (module docs).
pub fn info_text(view: &ClusterView) -> String {
    let assigned: u32 = view.shards.iter().map(ShardView::slot_count).sum();
    let slots_ok: u32 = view
        .mastered_shards()
        .map(|(shard, _)| shard.slot_count())
        .sum();
    let masters: BTreeSet<NodeId> = view
        .mastered_shards()
        .map(|(_, master)| master.id)
        .collect();
    let current_epoch = view.current_epoch();
    // A host that leads nothing stands where a Redis replica does, which shows its master's
    // epoch; with a master per shard there is no one master, so it shows the current one.
    let my_epoch = if masters.contains(&view.myself) {
        view.config_epoch(view.myself)
    } else {
        current_epoch
    };
    let mut text = String::with_capacity(512);
    let _ = write!(
        text,
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{slots_ok}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{}\r\ncluster_current_epoch:{current_epoch}\r\ncluster_my_epoch:{my_epoch}\r\n\
         cluster_stats_messages_sent:{}\r\ncluster_stats_messages_received:{}\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n",
        if slots_ok == u32::from(SLOT_COUNT) {
            "ok"
        } else {
            "fail"
        },
        assigned - slots_ok,
        view.nodes.len(),
        masters.len(),
        view.messages_sent,
        view.messages_received,
    );
    text
}

/// A node of a `CLUSTER SLOTS` range: ip, port, id, and Redis 7's (here empty) metadata map.
fn slots_node(node: &ClusterNode) -> Frame {
    Frame::Array(vec![
        Frame::bulk(node.client_addr.ip().to_string()),
        Frame::Integer(i64::from(node.client_addr.port())),
        Frame::bulk(node.name.as_str()),
        Frame::Map(Vec::new()),
    ])
}

/// `CLUSTER SLOTS` (module docs): one entry per range of a shard with a master, in slot
/// order.
pub fn slots_reply(view: &ClusterView) -> Frame {
    let mut ranges: Vec<(u16, u16, &ShardView, &ClusterNode)> = view
        .mastered_shards()
        .flat_map(|(shard, master)| {
            shard
                .slots
                .iter()
                .map(move |&(start, end)| (start, end, shard, master))
        })
        .collect();
    ranges.sort_by_key(|&(start, ..)| start);
    // A client may take a node's first role in this list as its only one (redis-py's
    // `RedisCluster` does, and then sends DBSIZE, KEYS and FLUSHALL to the masters alone). A
    // Ketch host can lead one range and follow in another, so a replica is listed only once
    // it appeared as a master, if it is one: the first ranges may name fewer replicas.
    let masters: BTreeSet<NodeId> = ranges.iter().map(|&(.., master)| master.id).collect();
    let mut listed_as_master = BTreeSet::new();
    Frame::Array(
        ranges
            .into_iter()
            .map(|(start, end, shard, master)| {
                listed_as_master.insert(master.id);
                let mut range = vec![
                    Frame::Integer(i64::from(start)),
                    Frame::Integer(i64::from(end)),
                    slots_node(master),
                ];
                range.extend(
                    view.replicas_of(shard)
                        .filter(|node| {
                            !masters.contains(&node.id) || listed_as_master.contains(&node.id)
                        })
                        .map(slots_node),
                );
                Frame::Array(range)
            })
            .collect(),
    )
}

/// A node of a `CLUSTER SHARDS` shard.
fn shard_node(node: &ClusterNode, role: &str) -> Frame {
    let ip = node.client_addr.ip().to_string();
    Frame::map([
        ("id", Frame::bulk(node.name.as_str())),
        ("port", Frame::Integer(i64::from(node.client_addr.port()))),
        ("ip", Frame::bulk(&ip)),
        ("endpoint", Frame::bulk(&ip)),
        ("role", Frame::bulk(role)),
        (
            "replication-offset",
            Frame::Integer(i64::try_from(node.replication_offset).unwrap_or(i64::MAX)),
        ),
        (
            "health",
            Frame::bulk(if node.reachable { "online" } else { "failed" }),
        ),
    ])
}

/// `CLUSTER SHARDS` (module docs): one map per shard with a master.
pub fn shards_reply(view: &ClusterView) -> Frame {
    Frame::Array(
        view.mastered_shards()
            .map(|(shard, master)| {
                let slots = shard
                    .slots
                    .iter()
                    .flat_map(|&(start, end)| [start, end])
                    .map(|slot| Frame::Integer(i64::from(slot)))
                    .collect();
                let mut nodes = vec![shard_node(master, "master")];
                nodes.extend(
                    view.others_of(shard)
                        .map(|node| shard_node(node, "replica")),
                );
                Frame::map([
                    ("slots", Frame::Array(slots)),
                    ("nodes", Frame::Array(nodes)),
                ])
            })
            .collect(),
    )
}

/// The slot ranges `id` is the shown master of, ascending, adjacent ones merged: Redis
/// keeps an owner per slot, so it never lists two ranges of one node back to back.
fn ranges_led_by(view: &ClusterView, id: NodeId) -> Vec<(u16, u16)> {
    let mut ranges: Vec<(u16, u16)> = view
        .mastered_shards()
        .filter(|(_, master)| master.id == id)
        .flat_map(|(shard, _)| shard.slots.iter().copied())
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(last.1) + 1 >= u32::from(start) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// `CLUSTER NODES`' text (module docs).
pub fn nodes_text(view: &ClusterView) -> String {
    let mut text = String::with_capacity(128 * view.nodes.len());
    for node in &view.nodes {
        let myself = if node.id == view.myself {
            "myself,"
        } else {
            ""
        };
        let suspected = if node.reachable { "" } else { ",fail?" };
        let _ = write!(
            text,
            "{} {}:{}@{} {myself}master{suspected} - 0 0 {} {}",
            node.name,
            node.client_addr.ip(),
            node.client_addr.port(),
            node.bus_port,
            view.config_epoch(node.id),
            if node.reachable {
                "connected"
            } else {
                "disconnected"
            },
        );
        for (start, end) in ranges_led_by(view, node.id) {
            if start == end {
                let _ = write!(text, " {start}");
            } else {
                let _ = write!(text, " {start}-{end}");
            }
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::cluster::NodeName;
    use crate::kv::resp::Protocol;
    use crate::raft::NodeId;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn node(id: NodeId, port: u16, reachable: bool) -> ClusterNode {
        ClusterNode {
            id,
            name: NodeName::of(7, id),
            client_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            bus_port: port + 10_000,
            reachable,
            replication_offset: 14,
        }
    }

    /// Three voters seen from node 2; node 1 leads, node 3 is cut off.
    fn view(leader: Option<NodeId>) -> ClusterView {
        ClusterView::sharded(
            2,
            7,
            vec![
                node(1, 17379, true),
                node(2, 17380, true),
                node(3, 17381, false),
            ],
            vec![ShardView {
                slots: vec![(0, 16383)],
                leader,
                term: 5,
                voters: vec![1, 2, 3],
            }],
            10,
            9,
        )
    }

    fn run(words: &[&str], view: &ClusterView, protocol: Protocol) -> String {
        let reply = cluster_command(&args(words), || view.clone());
        String::from_utf8(reply.to_bytes(protocol)).unwrap()
    }

    fn name(id: NodeId) -> String {
        NodeName::of(7, id).to_string()
    }

    #[test]
    fn slots_name_the_leader_then_reachable_replicas_like_redis() {
        let v = view(Some(1));
        // Redis 7.0.15's layout (a master and one replica, cluster-enabled), ids aside.
        let node = |port: u16, id: NodeId, map: &str| {
            format!(
                "*4\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{}\r\n{map}\r\n",
                name(id)
            )
        };
        assert_eq!(
            run(&["CLUSTER", "SLOTS"], &v, Protocol::Resp2),
            format!(
                "*1\r\n*4\r\n:0\r\n:16383\r\n{}{}",
                node(17379, 1, "*0"),
                node(17380, 2, "*0")
            )
        );
        assert_eq!(
            run(&["cluster", "slots"], &v, Protocol::Resp3),
            format!(
                "*1\r\n*4\r\n:0\r\n:16383\r\n{}{}",
                node(17379, 1, "%0"),
                node(17380, 2, "%0")
            )
        );
        assert_eq!(
            run(&["CLUSTER", "SLOTS"], &view(None), Protocol::Resp2),
            "*0\r\n"
        );
        let mut unknown_address = view(Some(1));
        unknown_address.nodes.remove(0);
        assert_eq!(
            run(&["CLUSTER", "SLOTS"], &unknown_address, Protocol::Resp2),
            "*0\r\n"
        );
    }

    #[test]
    fn shards_list_every_node_with_its_health_like_redis() {
        let v = view(Some(1));
        let node = |header: &str, port: u16, id: NodeId, role: &str, health: &str| {
            format!(
                "{header}\r\n$2\r\nid\r\n$40\r\n{}\r\n$4\r\nport\r\n:{port}\r\n$2\r\nip\r\n$9\r\n\
                 127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n${}\r\n{role}\r\n\
                 $18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n${}\r\n{health}\r\n",
                name(id),
                role.len(),
                health.len()
            )
        };
        for (protocol, shard, entry) in [
            (Protocol::Resp2, "*4", "*14"),
            (Protocol::Resp3, "%2", "%7"),
        ] {
            assert_eq!(
                run(&["CLUSTER", "SHARDS"], &v, protocol),
                format!(
                    "*1\r\n{shard}\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*3\r\n{}{}{}",
                    node(entry, 17379, 1, "master", "online"),
                    node(entry, 17380, 2, "replica", "online"),
                    node(entry, 17381, 3, "replica", "failed"),
                )
            );
        }
        assert_eq!(
            run(&["CLUSTER", "SHARDS"], &view(None), Protocol::Resp3),
            "*0\r\n"
        );
    }

    #[test]
    fn nodes_are_master_lines_and_only_the_leader_owns_slots() {
        let text = nodes_text(&view(Some(1)));
        assert_eq!(
            text,
            format!(
                "{} 127.0.0.1:17379@27379 master - 0 0 5 connected 0-16383\n\
                 {} 127.0.0.1:17380@27380 myself,master - 0 0 0 connected\n\
                 {} 127.0.0.1:17381@27381 master,fail? - 0 0 0 disconnected\n",
                name(1),
                name(2),
                name(3)
            )
        );
        let resp3 = run(&["CLUSTER", "NODES"], &view(Some(1)), Protocol::Resp3);
        assert_eq!(resp3, format!("={}\r\ntxt:{text}\r\n", text.len() + 4));
        let resp2 = run(&["CLUSTER", "NODES"], &view(Some(1)), Protocol::Resp2);
        assert_eq!(resp2, format!("${}\r\n{text}\r\n", text.len()));
        assert!(!nodes_text(&view(None)).contains("0-16383"));
    }

    #[test]
    fn info_says_ok_only_with_a_master() {
        let ok = info_text(&view(Some(1)));
        assert_eq!(
            ok,
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\n\
             cluster_size:1\r\ncluster_current_epoch:5\r\ncluster_my_epoch:5\r\n\
             cluster_stats_messages_sent:10\r\ncluster_stats_messages_received:9\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n"
        );
        let fail = info_text(&view(None));
        assert!(fail.starts_with(
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:0\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:16384\r\n"
        ));
        assert!(run(&["CLUSTER", "INFO"], &view(None), Protocol::Resp3).starts_with("="));
    }

    /// Three hosts seen from host 2, four shards led by hosts 1, 2, 3 and 1, each with
    /// every host as a voter; host 3 is cut off. `leader_of_second` replaces host 2 as the
    /// second shard's leader.
    fn sharded(leader_of_second: Option<NodeId>) -> ClusterView {
        let shard = |start: u16, end: u16, leader: Option<NodeId>, term: u64| ShardView {
            slots: vec![(start, end)],
            leader,
            term,
            voters: vec![1, 2, 3],
        };
        ClusterView::sharded(
            2,
            7,
            vec![
                node(1, 17379, true),
                node(2, 17380, true),
                node(3, 17381, false),
            ],
            vec![
                shard(0, 4095, Some(1), 3),
                shard(4096, 8191, leader_of_second, 4),
                shard(8192, 12287, Some(3), 6),
                shard(12288, 16383, Some(1), 5),
            ],
            10,
            9,
        )
    }

    #[test]
    fn slots_name_each_shards_leader_then_its_reachable_replicas_once_seen_as_masters() {
        let node = |port: u16, id: NodeId| {
            format!(
                "*4\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{}\r\n*0\r\n",
                name(id)
            )
        };
        let (one, two, three) = (node(17379, 1), node(17380, 2), node(17381, 3));
        assert_eq!(
            run(&["CLUSTER", "SLOTS"], &sharded(Some(2)), Protocol::Resp2),
            format!(
                "*4\r\n\
                 *3\r\n:0\r\n:4095\r\n{one}\
                 *4\r\n:4096\r\n:8191\r\n{two}{one}\
                 *5\r\n:8192\r\n:12287\r\n{three}{one}{two}\
                 *4\r\n:12288\r\n:16383\r\n{one}{two}"
            )
        );
        assert_eq!(
            run(&["CLUSTER", "SLOTS"], &sharded(None), Protocol::Resp2),
            format!(
                "*3\r\n\
                 *4\r\n:0\r\n:4095\r\n{one}{two}\
                 *5\r\n:8192\r\n:12287\r\n{three}{one}{two}\
                 *4\r\n:12288\r\n:16383\r\n{one}{two}"
            )
        );
    }

    #[test]
    fn shards_are_one_map_each_with_its_master_first() {
        let reply = cluster_command(&args(&["CLUSTER", "SHARDS"]), || sharded(Some(2)));
        let Frame::Array(shards) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(shards.len(), 4);
        let text = |frame: &Frame| String::from_utf8(frame.to_bytes(Protocol::Resp3)).unwrap();
        for (shard, (start, end, master)) in shards.iter().zip([
            (0, 4095, 1),
            (4096, 8191, 2),
            (8192, 12287, 3),
            (12288, 16383, 1),
        ]) {
            let shard = text(shard);
            assert!(
                shard.starts_with(&format!(
                    "%2\r\n$5\r\nslots\r\n*2\r\n:{start}\r\n:{end}\r\n$5\r\nnodes\r\n*3\r\n\
                     %7\r\n$2\r\nid\r\n$40\r\n{}\r\n",
                    name(master)
                )),
                "{shard}"
            );
            assert_eq!(shard.matches("$6\r\nmaster\r\n").count(), 1, "{shard}");
            assert_eq!(shard.matches("$7\r\nreplica\r\n").count(), 2, "{shard}");
            assert_eq!(shard.matches("$6\r\nfailed\r\n").count(), 1, "{shard}");
        }
        let Frame::Array(shards) = shards_reply(&sharded(None)) else {
            unreachable!()
        };
        assert_eq!(shards.len(), 3);
    }

    #[test]
    fn nodes_are_master_lines_listing_the_ranges_each_host_leads() {
        let text = nodes_text(&sharded(Some(2)));
        assert_eq!(
            text,
            format!(
                "{} 127.0.0.1:17379@27379 master - 0 0 5 connected 0-4095 12288-16383\n\
                 {} 127.0.0.1:17380@27380 myself,master - 0 0 4 connected 4096-8191\n\
                 {} 127.0.0.1:17381@27381 master,fail? - 0 0 6 disconnected 8192-12287\n",
                name(1),
                name(2),
                name(3)
            )
        );
        assert!(!text.contains("slave"));
        let leaderless = nodes_text(&sharded(None));
        assert!(leaderless.contains(&format!(
            "{} 127.0.0.1:17380@27380 myself,master - 0 0 0 connected\n",
            name(2)
        )));
        assert!(!leaderless.contains("4096"), "{leaderless}");
    }

    #[test]
    fn nodes_merge_adjacent_ranges_and_show_single_slots_alone() {
        let mut v = sharded(Some(1));
        v.shards[2].slots = vec![(8192, 8192), (8194, 12287)];
        v.shards[2].leader = Some(2);
        let text = nodes_text(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with(" 0 0 5 connected 0-8191 12288-16383"),
            "{lines:?}"
        );
        assert!(
            lines[1].ends_with(" 0 0 6 connected 8192 8194-12287"),
            "{lines:?}"
        );
        assert!(lines[2].ends_with(" 0 0 0 disconnected"), "{lines:?}");
    }

    #[test]
    fn info_counts_the_slots_and_hosts_of_shards_with_a_master() {
        assert_eq!(
            info_text(&sharded(Some(2))),
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\n\
             cluster_size:3\r\ncluster_current_epoch:6\r\ncluster_my_epoch:4\r\n\
             cluster_stats_messages_sent:10\r\ncluster_stats_messages_received:9\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n"
        );
        assert_eq!(
            info_text(&sharded(None)),
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:12288\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:4096\r\ncluster_known_nodes:3\r\n\
             cluster_size:2\r\ncluster_current_epoch:6\r\ncluster_my_epoch:6\r\n\
             cluster_stats_messages_sent:10\r\ncluster_stats_messages_received:9\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n"
        );
    }

    #[test]
    fn keyslot_myid_help_and_errors_are_worded_like_redis() {
        let v = view(Some(1));
        let resp2 = |words: &[&str]| run(words, &v, Protocol::Resp2);
        assert_eq!(resp2(&["CLUSTER", "KEYSLOT", "foo"]), ":12182\r\n");
        assert_eq!(
            resp2(&["CLUSTER", "MYID"]),
            format!("$40\r\n{}\r\n", name(2))
        );
        assert!(resp2(&["CLUSTER", "HELP"]).starts_with(
            "*17\r\n+CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"
        ));
        for (words, reply) in [
            (
                &["CLUSTER"][..],
                "-ERR wrong number of arguments for 'cluster' command\r\n",
            ),
            (
                &["CLUSTER", "foo"],
                "-ERR unknown subcommand 'foo'. Try CLUSTER HELP.\r\n",
            ),
            (
                &["CLUSTER", "ADDSLOTS", "1"],
                "-ERR unknown subcommand 'ADDSLOTS'. Try CLUSTER HELP.\r\n",
            ),
            (
                &["CLUSTER", "KEYSLOT"],
                "-ERR wrong number of arguments for 'cluster|keyslot' command\r\n",
            ),
            (
                &["CLUSTER", "keyslot", "a", "b"],
                "-ERR wrong number of arguments for 'cluster|keyslot' command\r\n",
            ),
            (
                &["CLUSTER", "MYID", "x"],
                "-ERR wrong number of arguments for 'cluster|myid' command\r\n",
            ),
            (
                &["CLUSTER", "INFO", "x"],
                "-ERR wrong number of arguments for 'cluster|info' command\r\n",
            ),
        ] {
            assert_eq!(resp2(words), reply, "{words:?}");
        }
        // KEYSLOT and the errors do not read the node's status.
        let no_view = || -> ClusterView { panic!("the view was built") };
        assert_eq!(
            cluster_command(&args(&["CLUSTER", "KEYSLOT", "foo"]), no_view),
            Frame::Integer(12182)
        );
    }
}

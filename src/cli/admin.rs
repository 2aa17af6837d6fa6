//! `ketch admin`: the RESP admin commands (see [`crate::kv::admin`]) from the command line.
//!
//! ```text
//! ketch admin --addrs 127.0.0.1:6380,127.0.0.1:6381 members
//! ketch admin --addrs 127.0.0.1:6380 add-learner 4 10.0.0.4:7001
//! ketch admin --addrs ... promote 4 | demote 3 | remove 1 | transfer 2
//! ketch admin --addrs 127.0.0.1:6380 shards
//! ```
//!
//! `shards` asks the first reachable node of `--addrs` for `CLUSTER INFO` and `CLUSTER
//! SHARDS` and prints what that node believes: a header with its `cluster_state` and
//! `cluster_current_epoch` (the highest Raft term of any of its shards) and, from `INFO
//! cluster`, `routing_epoch` (the routing table's epoch), then one line per slot range,
//! `RANGE start-end  GROUP g  EPOCH e  LEADER id@host:port  REPLICAS id@host:port ...` (the
//! range's Raft group and range epoch from the routing table; a replica the node cannot
//! reach is marked `(failed)`). A range whose leader the node does not know is left out of
//! `CLUSTER SHARDS`; it is printed as `LEADER -` so that every slot shows. A node of one
//! group has no routing table: its one range has no `GROUP` or `EPOCH`.
//!
//! The command goes through [`crate::client`]: a node that is not the leader answers
//! `-TRYAGAIN` (certainly not applied) and the client tries the next address, so listing
//! every node's RESP address reaches the leader. A change answered `-TIMEOUT` may have been
//! applied; the client's retry may then be refused (`ERR ... already a member`): check with
//! `members`. Exit status 0 on `+OK` (or the member list), 1 otherwise.

use std::collections::BTreeMap;

use crate::client::{Client, ClientOptions};
use crate::kv::resp::Reply;

/// `ketch admin` command-line arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// RESP addresses of the cluster's nodes, comma-separated (the leader is found among them).
    #[arg(long, value_name = "LIST", value_delimiter = ',', required = true)]
    pub addrs: Vec<String>,
    /// What to do.
    #[command(subcommand)]
    pub action: AdminAction,
}

/// One admin action.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminAction {
    /// List the members: id, peer address, role, match index (on the leader).
    Members,
    /// Add node ID, listening for peers on PEER_ADDR, as a learner.
    AddLearner {
        /// The new node's id.
        id: u64,
        /// Where it listens for peers (HOST:PORT as the others can dial it).
        peer_addr: String,
    },
    /// Make learner ID a voter.
    Promote {
        /// The learner.
        id: u64,
    },
    /// Make voter ID a learner (it keeps replicating but no longer votes).
    Demote {
        /// The voter.
        id: u64,
    },
    /// Remove node ID from the cluster.
    Remove {
        /// The node.
        id: u64,
    },
    /// Hand leadership to voter ID.
    Transfer {
        /// The voter.
        id: u64,
    },
    /// Print the slot ranges with each one's leader and replicas, as the node sees them. The
    /// header's epoch is `cluster_current_epoch`: the highest Raft term of any shard.
    Shards,
}

impl AdminAction {
    /// The RESP command for this action.
    pub fn command(&self) -> Vec<String> {
        let words: Vec<String> = match self {
            AdminAction::Members => vec!["KETCH.MEMBERS".into()],
            AdminAction::AddLearner { id, peer_addr } => {
                vec!["KETCH.ADDLEARNER".into(), id.to_string(), peer_addr.clone()]
            }
            AdminAction::Promote { id } => vec!["KETCH.PROMOTE".into(), id.to_string()],
            AdminAction::Demote { id } => vec!["KETCH.DEMOTE".into(), id.to_string()],
            AdminAction::Remove { id } => vec!["KETCH.REMOVE".into(), id.to_string()],
            AdminAction::Transfer { id } => vec!["KETCH.TRANSFER".into(), id.to_string()],
            AdminAction::Shards => vec!["CLUSTER".into(), "SHARDS".into()],
        };
        words
    }
}

/// Renders a reply for a terminal: one line per member for the member list.
pub fn render(reply: &Reply) -> String {
    fn scalar(reply: &Reply) -> String {
        match reply {
            Reply::Simple(text) | Reply::Error(text) => text.clone(),
            Reply::Integer(n) => n.to_string(),
            Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Reply::Bulk(None) | Reply::Array(None) => "-".to_string(),
            Reply::Array(Some(items)) => items.iter().map(scalar).collect::<Vec<_>>().join(" "),
        }
    }
    match reply {
        Reply::Array(Some(members)) => {
            let mut out = String::from("id peer-addr role match-index\n");
            for member in members {
                out.push_str(&scalar(member));
                out.push('\n');
            }
            out
        }
        other => format!("{}\n", scalar(other)),
    }
}

/// A field of a `CLUSTER SHARDS` map, which RESP2 sends as a flat `[key, value, ...]` array.
fn map_field<'a>(map: &'a Reply, key: &str) -> Option<&'a Reply> {
    let Reply::Array(Some(items)) = map else {
        return None;
    };
    items
        .chunks_exact(2)
        .find(|pair| matches!(&pair[0], Reply::Bulk(Some(k)) if k == key.as_bytes()))
        .map(|pair| &pair[1])
}

fn text_field(map: &Reply, key: &str) -> Option<String> {
    match map_field(map, key)? {
        Reply::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Reply::Simple(text) => Some(text.clone()),
        Reply::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `id@ip:port`, with `(failed)` if the answering node cannot reach it.
fn shard_node(node: &Reply) -> Result<String, String> {
    let field = |key| text_field(node, key).ok_or_else(|| format!("shard node without {key}"));
    let mut out = format!("{}@{}:{}", field("id")?, field("ip")?, field("port")?);
    if text_field(node, "health").is_some_and(|h| h != "online") {
        out.push_str("(failed)");
    }
    Ok(out)
}

/// Each range's `GROUP g  EPOCH e  ` label, by its (first, last) slots.
type RangeLabels = BTreeMap<(i64, i64), String>;

/// The routing table in an `INFO cluster` text: its epoch, and each range's group and range
/// epoch by its (first, last) slots. `None` without a routing table (one group).
fn routing_of(info_cluster: &str) -> Option<(String, RangeLabels)> {
    let epoch = info_cluster
        .lines()
        .find_map(|line| line.strip_prefix("ketch_routing_epoch:"))?
        .trim()
        .to_string();
    let mut ranges = BTreeMap::new();
    for line in info_cluster.lines() {
        let Some(value) = line
            .strip_prefix("ketch_range_")
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, value)| value.trim())
        else {
            continue;
        };
        let mut slots = None;
        let (mut group, mut range_epoch) = ("?", "?");
        for part in value.split(',') {
            match part.split_once('=') {
                Some(("slots", v)) => {
                    slots = v
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                }
                Some(("group", v)) => group = v,
                Some(("epoch", v)) => range_epoch = v,
                _ => {}
            }
        }
        if let Some(slots) = slots {
            ranges.insert(slots, format!("GROUP {group}  EPOCH {range_epoch}  "));
        }
    }
    Some((epoch, ranges))
}

/// Renders `CLUSTER INFO` and `CLUSTER SHARDS` replies, and the text of `INFO cluster`
/// (module docs): the header, then one line per range in slot order, leader-less gaps
/// included.
pub fn render_shards(info: &Reply, shards: &Reply, info_cluster: &str) -> Result<String, String> {
    let routing = routing_of(info_cluster);
    let info = match info {
        Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        other => return Err(format!("CLUSTER INFO: unexpected reply {other:?}")),
    };
    let info_field = |key: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .map(|value| value.trim().to_string())
            .unwrap_or_else(|| "?".to_string())
    };
    let Reply::Array(Some(shards)) = shards else {
        return Err(format!("CLUSTER SHARDS: unexpected reply {shards:?}"));
    };
    let mut ranges: Vec<(i64, i64, String)> = Vec::new();
    for shard in shards {
        let Some(Reply::Array(Some(slots))) = map_field(shard, "slots") else {
            return Err("CLUSTER SHARDS: a shard without slots".to_string());
        };
        let Some(Reply::Array(Some(nodes))) = map_field(shard, "nodes") else {
            return Err("CLUSTER SHARDS: a shard without nodes".to_string());
        };
        let mut leader = "-".to_string();
        let mut replicas = Vec::new();
        for node in nodes {
            if text_field(node, "role").as_deref() == Some("master") {
                leader = shard_node(node)?;
            } else {
                replicas.push(shard_node(node)?);
            }
        }
        let owners = format!("LEADER {leader}  REPLICAS {}", replicas.join(" "));
        for pair in slots.chunks_exact(2) {
            let (Reply::Integer(start), Reply::Integer(end)) = (&pair[0], &pair[1]) else {
                return Err("CLUSTER SHARDS: a slot bound is not an integer".to_string());
            };
            ranges.push((*start, *end, owners.trim_end().to_string()));
        }
    }
    ranges.sort_by_key(|&(start, ..)| start);
    let mut out = format!(
        "cluster_state:{}  cluster_current_epoch:{}",
        info_field("cluster_state"),
        info_field("cluster_current_epoch")
    );
    if let Some((epoch, _)) = &routing {
        out.push_str(&format!("  routing_epoch:{epoch}"));
    }
    out.push('\n');
    let route = |start: i64, end: i64| {
        routing
            .as_ref()
            .and_then(|(_, ranges)| ranges.get(&(start, end)).cloned())
            .unwrap_or_default()
    };
    let no_leader = |out: &mut String, start: i64, end: i64| {
        out.push_str(&format!(
            "RANGE {start}-{end}  {}LEADER -\n",
            route(start, end)
        ));
    };
    let mut next = 0i64;
    for (start, end, owners) in ranges {
        if start > next {
            no_leader(&mut out, next, start - 1);
        }
        out.push_str(&format!(
            "RANGE {start}-{end}  {}{owners}\n",
            route(start, end)
        ));
        next = next.max(end + 1);
    }
    let slot_max = i64::from(crate::kv::cluster::SLOT_COUNT) - 1;
    if next <= slot_max {
        no_leader(&mut out, next, slot_max);
    }
    Ok(out)
}

fn run_shards(client: &mut Client) -> Result<(), String> {
    let info = client
        .command(&["CLUSTER", "INFO"])
        .map_err(|e| e.to_string())?;
    let shards = client
        .command(&AdminAction::Shards.command())
        .map_err(|e| e.to_string())?;
    let info_cluster = match client.command(&["INFO", "cluster"]) {
        Ok(Reply::Bulk(Some(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(other) => return Err(format!("INFO cluster: unexpected reply {other:?}")),
        Err(e) => return Err(e.to_string()),
    };
    print!("{}", render_shards(&info, &shards, &info_cluster)?);
    Ok(())
}

/// Runs `ketch admin`.
pub fn run(args: &AdminArgs) -> Result<(), String> {
    let mut client = Client::connect_with(&args.addrs, ClientOptions::default())
        .map_err(|e| format!("cannot connect: {e}"))?;
    if let AdminAction::Shards = args.action {
        return run_shards(&mut client);
    }
    let reply = client
        .command(&args.action.command())
        .map_err(|e| e.to_string())?;
    print!("{}", render(&reply));
    match reply {
        Reply::Error(text) => Err(text),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_map_to_commands_and_members_render_one_per_line() {
        let add = AdminAction::AddLearner {
            id: 4,
            peer_addr: "127.0.0.1:7004".into(),
        };
        assert_eq!(add.command(), ["KETCH.ADDLEARNER", "4", "127.0.0.1:7004"]);
        assert_eq!(
            AdminAction::Demote { id: 3 }.command(),
            ["KETCH.DEMOTE", "3"]
        );
        assert_eq!(
            AdminAction::Transfer { id: 2 }.command(),
            ["KETCH.TRANSFER", "2"]
        );
        let member = |id, role: &str, m: Option<i64>| {
            Reply::Array(Some(vec![
                Reply::Integer(id),
                Reply::Bulk(Some(format!("127.0.0.1:700{id}").into_bytes())),
                Reply::Bulk(Some(role.as_bytes().to_vec())),
                m.map_or(Reply::Bulk(None), Reply::Integer),
            ]))
        };
        let list = Reply::Array(Some(vec![
            member(1, "voter", Some(9)),
            member(4, "learner", None),
        ]));
        assert_eq!(
            render(&list),
            "id peer-addr role match-index\n1 127.0.0.1:7001 voter 9\n4 127.0.0.1:7004 learner -\n"
        );
    }

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(Some(text.as_bytes().to_vec()))
    }

    fn shards_node(id: &str, port: i64, role: &str, health: &str) -> Reply {
        Reply::Array(Some(vec![
            bulk("id"),
            bulk(id),
            bulk("port"),
            Reply::Integer(port),
            bulk("ip"),
            bulk("127.0.0.1"),
            bulk("endpoint"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            Reply::Integer(14),
            bulk("health"),
            bulk(health),
        ]))
    }

    fn shard(slots: &[i64], nodes: Vec<Reply>) -> Reply {
        Reply::Array(Some(vec![
            bulk("slots"),
            Reply::Array(Some(slots.iter().map(|&s| Reply::Integer(s)).collect())),
            bulk("nodes"),
            Reply::Array(Some(nodes)),
        ]))
    }

    fn info(state: &str, epoch: u64) -> Reply {
        bulk(&format!(
            "cluster_state:{state}\r\ncluster_slots_assigned:16384\r\ncluster_current_epoch:{epoch}\r\ncluster_my_epoch:{epoch}\r\n"
        ))
    }

    #[test]
    fn one_shard_is_one_range_with_its_leader_and_replicas() {
        let shards = Reply::Array(Some(vec![shard(
            &[0, 16383],
            vec![
                shards_node("aaa", 6380, "master", "online"),
                shards_node("bbb", 6381, "replica", "online"),
                shards_node("ccc", 6382, "replica", "failed"),
            ],
        )]));
        assert_eq!(
            render_shards(&info("ok", 5), &shards, "").unwrap(),
            "cluster_state:ok  cluster_current_epoch:5\n\
             RANGE 0-16383  LEADER aaa@127.0.0.1:6380  \
             REPLICAS bbb@127.0.0.1:6381 ccc@127.0.0.1:6382(failed)\n"
        );
    }

    #[test]
    fn ranges_print_in_slot_order_and_leaderless_gaps_show() {
        let a = || shards_node("aaa", 6380, "master", "online");
        let b = || shards_node("bbb", 6381, "replica", "online");
        let shards = Reply::Array(Some(vec![
            shard(&[8192, 12287, 0, 4095], vec![a(), b()]),
            shard(
                &[12288, 16383],
                vec![shards_node("bbb", 6381, "master", "online")],
            ),
        ]));
        assert_eq!(
            render_shards(&info("fail", 9), &shards, "").unwrap(),
            "cluster_state:fail  cluster_current_epoch:9\n\
             RANGE 0-4095  LEADER aaa@127.0.0.1:6380  REPLICAS bbb@127.0.0.1:6381\n\
             RANGE 4096-8191  LEADER -\n\
             RANGE 8192-12287  LEADER aaa@127.0.0.1:6380  REPLICAS bbb@127.0.0.1:6381\n\
             RANGE 12288-16383  LEADER bbb@127.0.0.1:6381  REPLICAS\n"
        );
        assert_eq!(
            render_shards(&info("fail", 9), &Reply::Array(Some(vec![])), "").unwrap(),
            "cluster_state:fail  cluster_current_epoch:9\nRANGE 0-16383  LEADER -\n"
        );
        assert!(render_shards(&Reply::Error("ERR x".into()), &shards, "").is_err());
    }

    #[test]
    fn the_routing_table_names_each_ranges_group_and_epoch() {
        let a = || shards_node("aaa", 6380, "master", "online");
        let shards = Reply::Array(Some(vec![
            shard(&[0, 8191], vec![a()]),
            shard(&[8192, 16383], vec![a()]),
        ]));
        let info_cluster = "# Cluster\r\ncluster_enabled:1\r\nketch_shards:2\r\n\
                            ketch_routing_epoch:3\r\n\
                            ketch_range_0:slots=0-8191,group=1,epoch=1\r\n\
                            ketch_range_1:slots=8192-16383,group=7,epoch=2\r\n";
        assert_eq!(
            render_shards(&info("ok", 5), &shards, info_cluster).unwrap(),
            "cluster_state:ok  cluster_current_epoch:5  routing_epoch:3\n\
             RANGE 0-8191  GROUP 1  EPOCH 1  LEADER aaa@127.0.0.1:6380  REPLICAS\n\
             RANGE 8192-16383  GROUP 7  EPOCH 2  LEADER aaa@127.0.0.1:6380  REPLICAS\n"
        );
    }
}

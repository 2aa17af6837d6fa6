//! `ketch admin`: the RESP admin commands (see [`crate::kv::admin`]) from the command line.
//!
//! ```text
//! ketch admin --addrs 127.0.0.1:6380,127.0.0.1:6381 members
//! ketch admin --addrs 127.0.0.1:6380 add-learner 4 10.0.0.4:7001
//! ketch admin --addrs ... promote 4 | demote 3 | remove 1 | transfer 2
//! ```
//!
//! The command goes through [`crate::client`]: a node that is not the leader answers
//! `-TRYAGAIN` (certainly not applied) and the client tries the next address, so listing
//! every node's RESP address reaches the leader. A change answered `-TIMEOUT` may have been
//! applied; the client's retry may then be refused (`ERR ... already a member`): check with
//! `members`. Exit status 0 on `+OK` (or the member list), 1 otherwise.

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

/// Runs `ketch admin`.
pub fn run(args: &AdminArgs) -> Result<(), String> {
    let mut client = Client::connect_with(&args.addrs, ClientOptions::default())
        .map_err(|e| format!("cannot connect: {e}"))?;
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
}

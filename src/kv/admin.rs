//! Cluster administration over RESP: membership changes, leadership transfer, member list.
//!
//! ```text
//! KETCH.ADDLEARNER <id> <peer-addr>   add node <id> (listening for peers on <peer-addr>) as a learner
//! KETCH.PROMOTE <id>                  make learner <id> a voter (joint consensus)
//! KETCH.DEMOTE <id>                   make voter <id> a learner (joint consensus)
//! KETCH.REMOVE <id>                   remove voter or learner <id> (joint consensus for a voter)
//! KETCH.TRANSFER <id>                 hand leadership to voter <id>
//! KETCH.MEMBERS                       the configuration as this node sees it
//! ```
//!
//! The five changes must be sent to the leader. They reply only once the outcome is known:
//!
//! - `+OK`: the configuration the change leads to is committed (for a joint change, the final
//!   configuration), or for `KETCH.TRANSFER`, the target leads.
//! - `-TRYAGAIN not applied: not the leader (leader <id>)` (or `no leader known`): sent to a
//!   follower, or leadership moved before the change was taken; certainly not applied. The
//!   hint names the leader's node id (its RESP address is the operator's to know).
//! - `-ERR <reason>; not applied`: the change was refused (bad id, not caught up, another
//!   change in flight, ...).
//! - `-TIMEOUT <reason>`: leadership lost or no outcome in time; the change may have been
//!   applied: check `KETCH.MEMBERS` on the leader.
//!
//! `KETCH.MEMBERS` replies with an array, one element per member of the configuration in
//! force, each an array of four: node id (integer), peer address (bulk string, nil if
//! unknown), role (bulk string: `voter`, `learner`, `voter-incoming` or `voter-outgoing`
//! during a joint configuration), match index (integer; on a follower, nil: only the leader
//! tracks it; the leader's own entry is its last index).

use std::net::SocketAddr;

use super::resp::{write_array_header, write_bulk, write_error, write_integer, write_nil};
use crate::node::{ChangeError, NodeStatus};
use crate::raft::{ConfChange, NodeId, Role};

/// An admin command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// A membership change; the address when it adds a node.
    Change(ConfChange, Option<SocketAddr>),
    /// A leadership transfer.
    Transfer(NodeId),
    /// The member list.
    Members,
}

/// Whether `name` (upper-cased) is an admin command.
pub fn is_admin(name: &[u8]) -> bool {
    matches!(
        name,
        b"KETCH.ADDLEARNER"
            | b"KETCH.PROMOTE"
            | b"KETCH.DEMOTE"
            | b"KETCH.REMOVE"
            | b"KETCH.TRANSFER"
            | b"KETCH.MEMBERS"
    )
}

fn parse_id(bytes: &[u8]) -> Result<NodeId, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<NodeId>().ok())
        .filter(|id| *id != 0)
        .ok_or_else(|| "ERR the node id must be an integer >= 1".to_string())
}

/// Parses an admin command whose upper-cased name is `name`; `Err` is the error reply text.
pub fn parse_admin(name: &[u8], args: &[Vec<u8>]) -> Result<AdminCommand, String> {
    let arity = |n: usize, usage: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("ERR wrong number of arguments: {usage}"))
        }
    };
    match name {
        b"KETCH.ADDLEARNER" => {
            arity(3, "KETCH.ADDLEARNER id peer-addr")?;
            let id = parse_id(&args[1])?;
            let addr = std::str::from_utf8(&args[2])
                .ok()
                .and_then(|s| s.parse::<SocketAddr>().ok())
                .ok_or_else(|| "ERR the peer address must be ip:port".to_string())?;
            Ok(AdminCommand::Change(ConfChange::AddLearner(id), Some(addr)))
        }
        b"KETCH.PROMOTE" => {
            arity(2, "KETCH.PROMOTE id")?;
            Ok(AdminCommand::Change(
                ConfChange::Promote(parse_id(&args[1])?),
                None,
            ))
        }
        b"KETCH.DEMOTE" => {
            arity(2, "KETCH.DEMOTE id")?;
            Ok(AdminCommand::Change(
                ConfChange::Demote(parse_id(&args[1])?),
                None,
            ))
        }
        b"KETCH.REMOVE" => {
            arity(2, "KETCH.REMOVE id")?;
            Ok(AdminCommand::Change(
                ConfChange::Remove(parse_id(&args[1])?),
                None,
            ))
        }
        b"KETCH.TRANSFER" => {
            arity(2, "KETCH.TRANSFER id")?;
            Ok(AdminCommand::Transfer(parse_id(&args[1])?))
        }
        b"KETCH.MEMBERS" => {
            arity(1, "KETCH.MEMBERS")?;
            Ok(AdminCommand::Members)
        }
        _ => Err("ERR not an admin command".to_string()),
    }
}

/// The reply to a change or transfer's outcome (see the module docs).
pub fn change_reply(result: &Result<(), ChangeError>) -> Vec<u8> {
    let mut out = Vec::new();
    match result {
        Ok(()) => out.extend_from_slice(b"+OK\r\n"),
        Err(ChangeError::NotLeader { leader_hint }) => {
            let text = match leader_hint {
                Some(leader) => format!("TRYAGAIN not applied: not the leader (leader {leader})"),
                None => "TRYAGAIN not applied: no leader known".to_string(),
            };
            write_error(&mut out, &text);
        }
        Err(e @ ChangeError::Refused { .. }) => write_error(&mut out, &format!("ERR {e}")),
        Err(e) => write_error(&mut out, &format!("TIMEOUT {e}")),
    }
    out
}

/// The `KETCH.MEMBERS` reply for `status`.
pub fn members_reply(status: &NodeStatus) -> Vec<u8> {
    let m = &status.membership;
    let mut out = Vec::new();
    write_array_header(&mut out, status.members.len());
    for (id, member) in &status.members {
        write_array_header(&mut out, 4);
        write_integer(&mut out, *id as i64);
        match member.peer_addr {
            Some(addr) => write_bulk(&mut out, addr.to_string().as_bytes()),
            None => write_nil(&mut out),
        }
        let role: &[u8] = match (m.voters.contains(id), m.outgoing_voters.contains(id)) {
            (true, true) => b"voter",
            (true, false) if m.is_joint() => b"voter-incoming",
            (true, false) => b"voter",
            (false, true) => b"voter-outgoing",
            (false, false) => b"learner",
        };
        write_bulk(&mut out, role);
        let match_index = if status.role != Role::Leader {
            None
        } else if *id == status.id {
            Some(status.last_index)
        } else {
            status.progress.get(id).map(|p| p.match_index)
        };
        match match_index {
            Some(index) => write_integer(&mut out, index as i64),
            None => write_nil(&mut out),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn admin_commands_parse_and_bad_arguments_are_errors() {
        let a = args(&["ketch.addlearner", "4", "127.0.0.1:7004"]);
        assert_eq!(
            parse_admin(b"KETCH.ADDLEARNER", &a),
            Ok(AdminCommand::Change(
                ConfChange::AddLearner(4),
                Some("127.0.0.1:7004".parse().unwrap())
            ))
        );
        assert!(
            parse_admin(b"KETCH.ADDLEARNER", &args(&["x", "4", "nowhere"]))
                .unwrap_err()
                .contains("ip:port")
        );
        assert!(parse_admin(b"KETCH.PROMOTE", &args(&["x", "0"]))
            .unwrap_err()
            .contains(">= 1"));
        assert_eq!(
            parse_admin(b"KETCH.DEMOTE", &args(&["ketch.demote", "3"])),
            Ok(AdminCommand::Change(ConfChange::Demote(3), None))
        );
        assert!(is_admin(b"KETCH.DEMOTE"));
        assert!(parse_admin(b"KETCH.DEMOTE", &args(&["x", "3", "4"]))
            .unwrap_err()
            .contains("KETCH.DEMOTE id"));
        assert!(parse_admin(b"KETCH.REMOVE", &args(&["x"]))
            .unwrap_err()
            .contains("arguments"));
        assert_eq!(
            parse_admin(b"KETCH.TRANSFER", &args(&["x", "2"])),
            Ok(AdminCommand::Transfer(2))
        );
        assert_eq!(
            parse_admin(b"KETCH.MEMBERS", &args(&["x"])),
            Ok(AdminCommand::Members)
        );
    }

    #[test]
    fn outcomes_follow_the_error_rule() {
        assert_eq!(change_reply(&Ok(())), b"+OK\r\n");
        let not_leader = change_reply(&Err(ChangeError::NotLeader {
            leader_hint: Some(3),
        }));
        assert!(not_leader.starts_with(b"-TRYAGAIN") && not_leader.ends_with(b"(leader 3)\r\n"));
        let refused = change_reply(&Err(ChangeError::Refused { reason: "x".into() }));
        assert!(refused.starts_with(b"-ERR "));
        assert!(change_reply(&Err(ChangeError::LeaderLost)).starts_with(b"-TIMEOUT "));
        assert!(change_reply(&Err(ChangeError::Timeout)).starts_with(b"-TIMEOUT "));
    }
}

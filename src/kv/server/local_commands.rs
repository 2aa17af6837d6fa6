//! The commands answered without the node's state machine: `PING`, `ECHO`, `QUIT`, `SELECT`,
//! `CLIENT`, `COMMAND`, `CONFIG GET`, `INFO`, and the refusals of `READONLY`, `READWRITE` and
//! `HELLO`. They are enough for `redis-cli` and `redis-benchmark` to talk to the service.

use std::fmt::Write as _;

use super::parse::{arity_error, unknown_command_text, upper};
use crate::kv::resp::{write_array_header, write_bulk, write_error, write_integer};
use crate::node::NodeStatus;
use crate::raft::{NodeId, Role};

/// What a local command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LocalReply {
    /// This reply.
    Reply(Vec<u8>),
    /// `QUIT`: `+OK`, then the connection closes.
    Quit,
}

/// Answers a command that needs no node round trip. `client_id` is what `CLIENT ID` answers;
/// `info` gives `INFO`'s text, only when asked (it reads the node's status).
pub(super) fn local_command(
    args: &[Vec<u8>],
    client_id: u64,
    info: impl FnOnce() -> String,
) -> LocalReply {
    let mut buf = [0u8; 16];
    let argc = args.len();
    let mut out = Vec::new();
    match upper(&args[0], &mut buf) {
        Some(b"PING") => match argc {
            1 => out.extend_from_slice(b"+PONG\r\n"),
            2 => write_bulk(&mut out, &args[1]),
            _ => write_error(&mut out, &arity_error("ping")),
        },
        Some(b"ECHO") => match argc {
            2 => write_bulk(&mut out, &args[1]),
            _ => write_error(&mut out, &arity_error("echo")),
        },
        Some(b"QUIT") => return LocalReply::Quit,
        Some(b"SELECT") => match argc {
            2 if &args[1][..] == b"0" => out.extend_from_slice(b"+OK\r\n"),
            2 => write_error(&mut out, "ERR DB index is out of range"),
            _ => write_error(&mut out, &arity_error("select")),
        },
        Some(b"READONLY") | Some(b"READWRITE") => write_error(
            &mut out,
            "ERR stale local reads are not supported: every read is linearizable",
        ),
        Some(b"HELLO") => {
            let protocol = args.get(1).map(|v| &v[..]);
            if protocol.is_some_and(|p| p != b"2") {
                write_error(
                    &mut out,
                    "NOPROTO sorry, this protocol version is not supported",
                );
            } else {
                write_error(
                    &mut out,
                    "ERR HELLO is not supported; the protocol is RESP2",
                );
            }
        }
        Some(b"CLIENT") => {
            let mut sbuf = [0u8; 16];
            match args.get(1).and_then(|sub| upper(sub, &mut sbuf)) {
                Some(b"SETNAME" | b"SETINFO") => out.extend_from_slice(b"+OK\r\n"),
                Some(b"GETNAME") => out.extend_from_slice(b"$-1\r\n"),
                Some(b"ID") => write_integer(&mut out, client_id as i64),
                _ => write_error(&mut out, "ERR unsupported CLIENT subcommand"),
            }
        }
        Some(b"COMMAND") => {
            let mut sbuf = [0u8; 16];
            match args.get(1).and_then(|sub| upper(sub, &mut sbuf)) {
                Some(b"COUNT") => write_integer(&mut out, SUPPORTED_COMMANDS as i64),
                _ => write_array_header(&mut out, 0),
            }
        }
        Some(b"CONFIG") => {
            let mut sbuf = [0u8; 16];
            match args.get(1).and_then(|sub| upper(sub, &mut sbuf)) {
                Some(b"GET") if argc >= 3 => config_get(&mut out, &args[2..]),
                Some(b"GET") => write_error(&mut out, &arity_error("config|get")),
                _ => write_error(&mut out, "ERR only CONFIG GET is supported"),
            }
        }
        Some(b"INFO") => {
            write_bulk(&mut out, info().as_bytes());
        }
        _ => write_error(&mut out, &unknown_command_text(args)),
    }
    LocalReply::Reply(out)
}

/// Commands `COMMAND COUNT` reports.
const SUPPORTED_COMMANDS: usize = 24;

fn config_get(out: &mut Vec<u8>, params: &[Vec<u8>]) {
    let known: [(&str, &str); 4] = [
        ("save", ""),
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("databases", "1"),
    ];
    let mut pairs = Vec::new();
    for param in params {
        let param = String::from_utf8_lossy(param).to_ascii_lowercase();
        for (name, value) in known {
            if name == param || param == "*" {
                pairs.push((name, value));
            }
        }
    }
    write_array_header(out, pairs.len() * 2);
    for (name, value) in pairs {
        write_bulk(out, name.as_bytes());
        write_bulk(out, value.as_bytes());
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "precandidate",
    }
}

/// `INFO`'s text. `members` is the list given at start, `open_connections` the server's.
pub(super) fn info_text(
    status: &NodeStatus,
    members: &[NodeId],
    open_connections: usize,
) -> String {
    let mut text = String::with_capacity(512);
    // The configuration in force (it changes with KETCH.ADDLEARNER and friends); the list
    // given at start only while the node has none yet (it joins).
    let members: Vec<String> = if status.members.is_empty() {
        members.iter().map(|id| id.to_string()).collect()
    } else {
        status.members.keys().map(|id| id.to_string()).collect()
    };
    let _ = write!(
        text,
        "# Server\r\nketch_version:{}\r\nnode_id:{}\r\n\r\n\
         # Clients\r\nconnected_clients:{}\r\n\r\n\
         # Replication\r\nrole:{}\r\nterm:{}\r\nleader_id:{}\r\ncommit_index:{}\r\n\
         applied_index:{}\r\nlast_index:{}\r\nmembers:{}\r\nconnected_peers:{}\r\n\
         participating:{}\r\nremoved:{}\r\n\r\n\
         # Persistence\r\nfsyncs:{}\r\nentries_written:{}\r\nwrite_items:{}\r\n\
         disk_stalled:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        status.id,
        open_connections,
        // A node that stopped participating leads nothing; monitors read `role`.
        if status.participating {
            role_name(status.role)
        } else {
            "stopped"
        },
        status.term,
        status
            .leader
            .map_or_else(|| "none".to_string(), |l| l.to_string()),
        status.commit,
        status.applied,
        status.last_index,
        members.join(","),
        status.connected_peers.len(),
        u8::from(status.participating),
        u8::from(status.removed),
        status.writer.fsyncs,
        status.writer.entries_written,
        status.writer.items_written,
        u8::from(status.disk_stalled),
    );
    let histogram: Vec<String> = status
        .writer
        .batch_items_histogram
        .iter()
        .map(|n| n.to_string())
        .collect();
    let _ = write!(
        text,
        "fsync_batch_items_log2_histogram:{}\r\n",
        histogram.join(",")
    );
    if let Some(error) = &status.last_error {
        let _ = write!(text, "last_error:{}\r\n", error.replace(['\r', '\n'], " "));
    }
    text
}

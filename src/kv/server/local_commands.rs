//! The commands answered without the node's state machine: `PING`, `ECHO`, `QUIT`, `SELECT`,
//! `AUTH`, `HELLO`, `CLIENT`, `COMMAND`, `CONFIG GET`, `INFO`, `CLUSTER` (replies in
//! [`crate::kv::cluster::command`]), and `READONLY` / `READWRITE`, which Redis Cluster clients
//! send to replicas and which answer `+OK` and change nothing (every read is linearizable on
//! every node). Replies are built as [`Frame`]s and written in the connection's protocol.
//!
//! # `HELLO [protover [AUTH user pass] [SETNAME name]]`
//!
//! As Redis 7.0 answers it: the connection switches to `protover` (2 or 3) and gets, in that
//! protocol, a map (RESP3) or flat array (RESP2) of `server`, `version`, `proto`, `id`, `mode`,
//! `role`, `modules`:
//!
//! - `server` is `redis`: clients (redis-py, go-redis, Lettuce) read it to decide what the
//!   server understands, and Ketch answers as the Redis it follows; `INFO`'s `ketch_version`
//!   says what it really is.
//! - `version` is [`REDIS_COMPAT_VERSION`], the Redis whose behaviour Ketch follows.
//! - `mode` is `standalone` (every node holds every key; cluster-aware clients learn the
//!   one-shard slot map from `CLUSTER SLOTS` whatever `HELLO` says, and clients that are not
//!   cluster-aware see no change); `role` is `master` on the Raft leader and `replica` on every
//!   other node.
//! - Options apply in order, as Redis 7.0.15 applies them: `AUTH user pass` logs the
//!   connection in there and then (see `auth`; a failure answers `-WRONGPASS` and stops),
//!   `SETNAME name` sets the name there and then (an invalid one answers its error and
//!   stops). So `HELLO 3 SETNAME a bogus` leaves the name `a` and answers the syntax error,
//!   and `HELLO 3 AUTH default pw SETNAME "a b"` is authenticated though it answers the name
//!   error. The protocol switches only when every option was good and the connection is
//!   authenticated; if it is not (no `AUTH` option on a server that needs one), the answer is
//!   Redis 7.0's `-NOAUTH HELLO must be called with the client already authenticated, ...`.
//! - Errors, worded as Redis 7.0 words them: `-NOPROTO unsupported protocol version` (a
//!   version other than 2 or 3; Redis 6 said `sorry, this protocol version is not
//!   supported`), `-ERR Protocol version is not an integer or out of range`,
//!   `-ERR Syntax error in HELLO option '<opt>'` (also for `AUTH` / `SETNAME` missing their
//!   arguments), and `SETNAME`'s validation error. A bad version changes nothing.
//!
//! # `AUTH [user] password`
//!
//! Redis 7.0's command and replies (see `auth` for the states and the bound on failures):
//! `+OK`; `-WRONGPASS invalid username-password pair or user is disabled.`; `AUTH password`
//! when `default` needs none: `-ERR AUTH <password> called without any password configured
//! for the default user. Are you sure your configuration is correct?`; more than two
//! arguments: `-ERR syntax error`.
//!
//! # `CLIENT`
//!
//! `ID`, `GETNAME` (null if none), `SETNAME name` (bytes `!`..`~` only, else `-ERR Client
//! names cannot contain spaces, newlines or special characters.`; an empty name clears it),
//! `SETINFO LIB-NAME|LIB-VER value` (Redis 7.2: stored and shown by `LIST` / `INFO`; another
//! attribute: `-ERR Unrecognized option '<attr>'`), `INFO`, `LIST [TYPE normal|master|replica|
//! pubsub] [ID id...]`, `HELP`. `INFO` and `LIST` are verbatim strings in RESP3, one line per
//! client in Redis 7.2's field order:
//!
//! ```text
//! id=7 addr=127.0.0.1:50000 laddr=127.0.0.1:6379 fd=9 name=x age=3 idle=0 flags=N db=0 sub=0
//! psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0
//! omem=0 tot-mem=0 events=r cmd=client|list user=default redir=-1 resp=2 lib-name= lib-ver=
//! ```
//!
//! `user` is the user the connection authenticated as (`default` before it has).
//!
//! Buffer fields are the connection's own: `qbuf` its unparsed input, `rbs` / `qbuf-free` its
//! input buffer's capacity and room, `obl` / `omem` its unsent output, `oll` its replies
//! awaited or queued, `tot-mem` its two buffers. `sub`, `psub`, `ssub` are 0 and `redir` -1
//! (no pub/sub, no tracking); `argv-mem`, `multi-mem` and `rbp` are 0.
//!
//! # `CONFIG GET pattern...`
//!
//! The parameters in [`config_params`] whose name matches a pattern (a glob, as Redis'
//! `stringmatchlen`, case-insensitive), each once, in the table's order; a map in RESP3.
//! `CONFIG SET`, `RESETSTAT` and `REWRITE` are refused: the configuration is the command
//! line's.

use super::auth::HELLO_NOAUTH_TEXT;
use super::client_connection::ClientState;
use super::command_table::command_command;
use super::config::ServerConfig;
use super::info::{InfoSections, ProcessFacts};
use super::parse::{arity_error, unknown_command_text, upper};
use crate::kv::cluster::command::cluster_command;
use crate::kv::cluster::ClusterView;
use crate::kv::glob::glob_match;
use crate::kv::resp::{Frame, Protocol};

/// The Redis version whose commands and replies Ketch follows: `HELLO`'s `version` and
/// `INFO`'s `redis_version`.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

/// The local commands [`local_command`] answers (upper case): with the dispatcher's other
/// kinds, what the server serves (the command table is checked against it). `MULTI` refuses
/// them by name (see `transaction`).
pub(super) const LOCAL_COMMANDS: &[&str] = &[
    "PING",
    "ECHO",
    "QUIT",
    "SELECT",
    "AUTH",
    "READONLY",
    "READWRITE",
    "HELLO",
    "CLIENT",
    "COMMAND",
    "CONFIG",
    "INFO",
    "CLUSTER",
];

/// What a local command answers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum LocalReply {
    /// This reply, written in the connection's protocol (after the command ran: `HELLO`
    /// answers in the protocol it chose).
    Reply(Frame),
    /// `INFO`: the connection builds the text of these sections (the keyspace needs a read).
    Info(InfoSections),
    /// `QUIT`: `+OK`, then the connection closes.
    Quit,
}

/// What local commands may read of the server around the connection.
pub(super) struct LocalEnv<'a> {
    /// The server's settings (`CONFIG GET`).
    pub(super) config: &'a ServerConfig,
    /// Facts of the process (`CONFIG GET port`).
    pub(super) process: &'a ProcessFacts,
    /// Whether this node leads (`HELLO`'s `role`).
    pub(super) is_leader: &'a dyn Fn() -> bool,
    /// The `CLIENT LIST` lines of the server's other connections, with their ids.
    pub(super) other_clients: &'a dyn Fn() -> Vec<(u64, String)>,
    /// This connection's `CLIENT LIST` line as it is now.
    pub(super) own_line: &'a dyn Fn(&ClientState) -> String,
    /// The Redis Cluster view for this connection, as it is now (`CLUSTER`).
    pub(super) cluster_view: &'a dyn Fn(&ClientState) -> ClusterView,
}

fn ok() -> Frame {
    Frame::Simple("OK".to_string())
}

fn error(text: impl Into<String>) -> Frame {
    Frame::Error(text.into())
}

/// The reply of a local command that depends on nothing but its arguments (`PING`, `ECHO`),
/// or `None` for any other command. `MULTI` queues these with their reply.
pub(super) fn pure_local_reply(args: &[Vec<u8>]) -> Option<Frame> {
    let mut buf = [0u8; 16];
    let argc = args.len();
    Some(match upper(&args[0], &mut buf) {
        Some(b"PING") => match argc {
            1 => Frame::Simple("PONG".to_string()),
            2 => Frame::Bulk(args[1].clone()),
            _ => error(arity_error("ping")),
        },
        Some(b"ECHO") => match argc {
            2 => Frame::Bulk(args[1].clone()),
            _ => error(arity_error("echo")),
        },
        _ => return None,
    })
}

/// Answers a command that needs no node round trip.
pub(super) fn local_command(
    args: &[Vec<u8>],
    client: &mut ClientState,
    env: &LocalEnv<'_>,
) -> LocalReply {
    let mut buf = [0u8; 16];
    let argc = args.len();
    let frame = match upper(&args[0], &mut buf) {
        Some(b"PING" | b"ECHO") => pure_local_reply(args).expect("PING and ECHO are pure"),
        Some(b"QUIT") => return LocalReply::Quit,
        Some(b"SELECT") => match argc {
            // Redis parses the index as an integer first, then checks its range.
            2 => match std::str::from_utf8(&args[1])
                .ok()
                .filter(|text| !text.starts_with('+'))
                .and_then(|text| text.parse::<i64>().ok())
            {
                Some(0) => ok(),
                Some(_) => error("ERR DB index is out of range"),
                None => error("ERR value is not an integer or out of range"),
            },
            _ => error(arity_error("select")),
        },
        Some(b"READONLY") | Some(b"READWRITE") => match argc {
            1 => ok(),
            _ => error(arity_error(
                &String::from_utf8_lossy(&args[0]).to_lowercase(),
            )),
        },
        Some(b"CLUSTER") => cluster_command(args, || (env.cluster_view)(client)),
        Some(b"AUTH") => {
            let peer = client.peer_addr;
            match client.auth.auth_command(args, &env.config.acl, peer) {
                Ok(()) => ok(),
                Err(text) => error(text),
            }
        }
        Some(b"HELLO") => hello(args, client, env),
        Some(b"CLIENT") => client_command(args, client, env),
        Some(b"COMMAND") => command_command(args),
        Some(b"CONFIG") => config_command(args, env),
        Some(b"INFO") => return LocalReply::Info(InfoSections::parse(&args[1..])),
        _ => error(unknown_command_text(args)),
    };
    LocalReply::Reply(frame)
}

/// Redis' `validateClientName` (and 7.2's `validateClientAttr`): printable ASCII, no space.
fn valid_client_attribute(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

const CLIENT_NAME_ERROR: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";

/// `HELLO` (module docs): options apply in order, the protocol only if all are good.
fn hello(args: &[Vec<u8>], client: &mut ClientState, env: &LocalEnv<'_>) -> Frame {
    let mut protocol = client.protocol;
    if let Some(version) = args.get(1) {
        // Redis' string2ll: an optional `-` and digits (no `+`, no spaces).
        let Some(version) = std::str::from_utf8(version)
            .ok()
            .filter(|text| !text.starts_with('+'))
            .and_then(|text| text.parse::<i64>().ok())
        else {
            return error("ERR Protocol version is not an integer or out of range");
        };
        protocol = match version {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return error("NOPROTO unsupported protocol version"),
        };
    }
    // Each option takes effect as it is read (module docs).
    let mut at = 2;
    while at < args.len() {
        let more = args.len() - 1 - at;
        let option = &args[at];
        if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            let peer = client.peer_addr;
            let acl = &env.config.acl;
            if let Err(text) = client.auth.attempt(acl, peer, &args[at + 1], &args[at + 2]) {
                return error(text);
            }
            at += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            let name = &args[at + 1];
            if !valid_client_attribute(name) {
                return error(CLIENT_NAME_ERROR);
            }
            client.name = (!name.is_empty()).then(|| name.clone());
            at += 2;
        } else {
            return error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            ));
        }
    }
    if !client.auth.authenticated(&env.config.acl) {
        return error(HELLO_NOAUTH_TEXT);
    }
    client.protocol = protocol;
    let role = if (env.is_leader)() {
        "master"
    } else {
        "replica"
    };
    Frame::map([
        ("server", Frame::bulk("redis")),
        ("version", Frame::bulk(REDIS_COMPAT_VERSION)),
        ("proto", Frame::Integer(protocol.version())),
        ("id", Frame::Integer(client.id as i64)),
        ("mode", Frame::bulk("standalone")),
        ("role", Frame::bulk(role)),
        ("modules", Frame::Array(Vec::new())),
    ])
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients of specified IDs only.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "HELP",
    "    Prints this help.",
];

/// `CLIENT ...` (module docs).
fn client_command(args: &[Vec<u8>], client: &mut ClientState, env: &LocalEnv<'_>) -> Frame {
    let Some(sub) = args.get(1) else {
        return error(arity_error("client"));
    };
    let argc = args.len();
    let verbatim = |text: String| Frame::Verbatim {
        format: *b"txt",
        text: text.into_bytes(),
    };
    match &sub.to_ascii_uppercase()[..] {
        b"ID" if argc == 2 => Frame::Integer(client.id as i64),
        b"ID" => error(arity_error("client|id")),
        b"GETNAME" if argc == 2 => client.name.clone().map_or(Frame::Null, Frame::Bulk),
        b"GETNAME" => error(arity_error("client|getname")),
        b"SETNAME" if argc == 3 => {
            if !valid_client_attribute(&args[2]) {
                return error(CLIENT_NAME_ERROR);
            }
            client.name = (!args[2].is_empty()).then(|| args[2].clone());
            ok()
        }
        b"SETNAME" => error(arity_error("client|setname")),
        b"SETINFO" if argc == 4 => {
            let attribute = String::from_utf8_lossy(&args[2]);
            let slot = match &args[2].to_ascii_uppercase()[..] {
                b"LIB-NAME" => &mut client.lib_name,
                b"LIB-VER" => &mut client.lib_ver,
                _ => return error(format!("ERR Unrecognized option '{attribute}'")),
            };
            if !valid_client_attribute(&args[3]) {
                return error(format!(
                    "ERR {attribute} cannot contain spaces, newlines or special characters."
                ));
            }
            *slot = (!args[3].is_empty()).then(|| args[3].clone());
            ok()
        }
        b"SETINFO" => error(arity_error("client|setinfo")),
        b"INFO" if argc == 2 => verbatim((env.own_line)(client)),
        b"INFO" => error(arity_error("client|info")),
        b"LIST" => match client_list_filter(&args[2..]) {
            Ok(filter) => {
                let mut lines = (env.other_clients)();
                lines.push((client.id, (env.own_line)(client)));
                lines.sort_by_key(|(id, _)| *id);
                let text: String = lines
                    .into_iter()
                    .filter(|(id, _)| filter.keeps(*id))
                    .map(|(_, line)| line)
                    .collect();
                verbatim(text)
            }
            Err(frame) => frame,
        },
        b"HELP" => Frame::Array(
            CLIENT_HELP
                .iter()
                .map(|line| Frame::Simple(line.to_string()))
                .collect(),
        ),
        _ => error(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}

/// `CLIENT LIST`'s options: every connection here is a normal one.
struct ClientListFilter {
    /// `TYPE` other than `normal`: nobody.
    none: bool,
    ids: Option<Vec<u64>>,
}

impl ClientListFilter {
    fn keeps(&self, id: u64) -> bool {
        !self.none && self.ids.as_ref().is_none_or(|ids| ids.contains(&id))
    }
}

fn client_list_filter(options: &[Vec<u8>]) -> Result<ClientListFilter, Frame> {
    let mut filter = ClientListFilter {
        none: false,
        ids: None,
    };
    match options {
        [] => {}
        [kind, value] if kind.eq_ignore_ascii_case(b"TYPE") => {
            match &value.to_ascii_lowercase()[..] {
                b"normal" => {}
                b"master" | b"replica" | b"slave" | b"pubsub" => filter.none = true,
                _ => {
                    return Err(error(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(value)
                    )))
                }
            }
        }
        [kind, ids @ ..] if kind.eq_ignore_ascii_case(b"ID") && !ids.is_empty() => {
            let mut parsed = Vec::with_capacity(ids.len());
            for id in ids {
                match std::str::from_utf8(id)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    Some(id) if id > 0 => parsed.push(id),
                    _ => return Err(error("ERR Invalid client ID")),
                }
            }
            filter.ids = Some(parsed);
        }
        _ => return Err(error("ERR syntax error")),
    }
    Ok(filter)
}

/// Buffer sizes of a connection for its `CLIENT LIST` line (module docs).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ClientBuffers {
    /// Received, not yet parsed.
    pub(super) input_unparsed_bytes: usize,
    /// The input buffer's capacity.
    pub(super) input_capacity_bytes: usize,
    /// Not yet sent.
    pub(super) output_unsent_bytes: usize,
    /// The output buffer's capacity.
    pub(super) output_capacity_bytes: usize,
    /// Replies awaited or queued behind an awaited one.
    pub(super) replies_pending: usize,
}

/// One `CLIENT LIST` / `CLIENT INFO` line, `\n`-terminated, in Redis 7.2's field order.
pub(super) fn client_line(client: &ClientState, buffers: ClientBuffers) -> String {
    let addr = |a: Option<std::net::SocketAddr>| a.map_or_else(String::new, |a| a.to_string());
    let text = |v: &Option<Vec<u8>>| {
        v.as_deref()
            .map_or_else(String::new, |v| String::from_utf8_lossy(v).into_owned())
    };
    let input_free = buffers
        .input_capacity_bytes
        .saturating_sub(buffers.input_unparsed_bytes);
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 \
         multi=-1 qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl={} oll={} \
         omem={} tot-mem={} events={} cmd={} user={} redir=-1 resp={} lib-name={} \
         lib-ver={}\n",
        client.id,
        addr(client.peer_addr),
        addr(client.local_addr),
        client.fd,
        text(&client.name),
        client.connected_at.elapsed().as_secs(),
        client.last_command_at.elapsed().as_secs(),
        buffers.input_unparsed_bytes,
        input_free,
        buffers.input_capacity_bytes,
        buffers.output_unsent_bytes,
        buffers.replies_pending,
        buffers.output_unsent_bytes,
        buffers.input_capacity_bytes + buffers.output_capacity_bytes,
        if buffers.output_unsent_bytes > 0 {
            "rw"
        } else {
            "r"
        },
        client.last_command,
        client.auth.user_name(),
        client.protocol.version(),
        text(&client.lib_name),
        text(&client.lib_ver),
    )
}

/// The parameters `CONFIG GET` knows, with their values on this server.
pub(super) fn config_params(
    config: &ServerConfig,
    process: &ProcessFacts,
) -> Vec<(&'static str, String)> {
    vec![
        // Every write is in the Raft log, fsynced before it is acknowledged: there are no
        // snapshots on a timer and the log is the append-only file.
        ("save", String::new()),
        ("appendonly", "yes".to_string()),
        ("appendfsync", "always".to_string()),
        ("databases", "1".to_string()),
        ("port", process.tcp_port.to_string()),
        ("tls-port", process.tls_port.to_string()),
        ("maxclients", config.connections_max.to_string()),
        (
            "timeout",
            config
                .idle_timeout
                .map_or(0, |timeout| timeout.as_secs())
                .to_string(),
        ),
        ("maxmemory", "0".to_string()),
        ("maxmemory-policy", "noeviction".to_string()),
        (
            "proto-max-bulk-len",
            config.limits.bulk_bytes_max.to_string(),
        ),
        (
            "client-query-buffer-limit",
            config.limits.request_bytes_max.to_string(),
        ),
        ("cluster-enabled", "no".to_string()),
    ]
}

/// `CONFIG ...` (module docs).
fn config_command(args: &[Vec<u8>], env: &LocalEnv<'_>) -> Frame {
    let Some(sub) = args.get(1) else {
        return error(arity_error("config"));
    };
    match &sub.to_ascii_uppercase()[..] {
        b"GET" if args.len() >= 3 => {
            let params = config_params(env.config, env.process);
            let pairs = params
                .into_iter()
                .filter(|(name, _)| {
                    args[2..]
                        .iter()
                        .any(|pattern| glob_match(pattern, name.as_bytes(), true))
                })
                .map(|(name, value)| (name, Frame::Bulk(value.into_bytes())));
            Frame::map(pairs)
        }
        b"GET" => error(arity_error("config|get")),
        b"SET" | b"RESETSTAT" | b"REWRITE" => error(format!(
            "ERR CONFIG {} is not supported: the configuration is the command line's",
            String::from_utf8_lossy(sub).to_ascii_uppercase()
        )),
        _ => error(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::cluster::NodeName;
    use std::time::Instant;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn state() -> ClientState {
        ClientState::new(7, None, None, -1)
    }

    struct Harness {
        config: ServerConfig,
        process: ProcessFacts,
        leader: bool,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                config: ServerConfig::default(),
                process: ProcessFacts::new(6379, Instant::now()),
                leader: true,
            }
        }

        /// Runs one command and returns its reply in the protocol the client has after it.
        fn run(&self, client: &mut ClientState, words: &[&str]) -> Vec<u8> {
            let is_leader = || self.leader;
            let other_clients = || vec![(3, "id=3 other\n".to_string())];
            let own_line = |c: &ClientState| client_line(c, ClientBuffers::default());
            let cluster_view =
                |_: &ClientState| ClusterView::sharded(1, 9, Vec::new(), Vec::new(), 0, 0);
            let env = LocalEnv {
                config: &self.config,
                process: &self.process,
                is_leader: &is_leader,
                other_clients: &other_clients,
                own_line: &own_line,
                cluster_view: &cluster_view,
            };
            match local_command(&args(words), client, &env) {
                LocalReply::Reply(frame) => frame.to_bytes(client.protocol),
                other => panic!("{other:?}"),
            }
        }
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn hello_answers_like_redis_7() {
        let h = Harness::new();
        let mut c = state();
        // Redis 7.0.15's answers, byte for byte (only the id differs).
        assert_eq!(
            text(h.run(&mut c, &["HELLO", "3"])),
            "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
        );
        assert_eq!(c.protocol, Protocol::Resp3);
        assert_eq!(
            text(h.run(&mut c, &["HELLO", "2"])),
            "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
        );
        assert_eq!(c.protocol, Protocol::Resp2);
        // No version: the current protocol.
        assert!(text(h.run(&mut c, &["hello"])).starts_with("*14\r\n"));
        let mut follower = Harness::new();
        follower.leader = false;
        assert!(text(follower.run(&mut c, &["HELLO"])).contains("$4\r\nrole\r\n$7\r\nreplica\r\n"));
    }

    #[test]
    fn hello_errors_like_redis_7_and_change_nothing() {
        let h = Harness::new();
        let mut c = state();
        for (words, reply) in [
            (
                &["HELLO", "4"][..],
                "-NOPROTO unsupported protocol version\r\n",
            ),
            (&["HELLO", "1"], "-NOPROTO unsupported protocol version\r\n"),
            (
                &["HELLO", "x"],
                "-ERR Protocol version is not an integer or out of range\r\n",
            ),
            (
                &["HELLO", "+3"],
                "-ERR Protocol version is not an integer or out of range\r\n",
            ),
            (
                &["HELLO", "3", "AUTH"],
                "-ERR Syntax error in HELLO option 'AUTH'\r\n",
            ),
            (
                &["HELLO", "3", "AUTH", "default"],
                "-ERR Syntax error in HELLO option 'AUTH'\r\n",
            ),
            (
                &["HELLO", "3", "SETNAME"],
                "-ERR Syntax error in HELLO option 'SETNAME'\r\n",
            ),
            (
                &["HELLO", "3", "foo"],
                "-ERR Syntax error in HELLO option 'foo'\r\n",
            ),
            (
                &["HELLO", "3", "AUTH", "default", "x", "a"],
                "-ERR Syntax error in HELLO option 'a'\r\n",
            ),
            (
                &["HELLO", "3", "SETNAME", "a b"],
                "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
            ),
            (
                &["HELLO", "3", "AUTH", "bob", "x"],
                "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
            ),
        ] {
            assert_eq!(text(h.run(&mut c, words)), reply, "{words:?}");
            assert_eq!(c.protocol, Protocol::Resp2, "{words:?}");
        }
        assert_eq!(c.name, None);
        // AUTH as `default` with any password, and SETNAME (the last one wins).
        let reply = text(h.run(
            &mut c,
            &[
                "HELLO", "3", "AUTH", "default", "anything", "SETNAME", "a", "setname", "b",
            ],
        ));
        assert!(reply.starts_with("%7\r\n"), "{reply}");
        assert_eq!(c.name.as_deref(), Some(&b"b"[..]));
        assert_eq!(text(h.run(&mut c, &["CLIENT", "GETNAME"])), "$1\r\nb\r\n");
        h.run(&mut c, &["HELLO", "3", "SETNAME", ""]);
        assert_eq!(text(h.run(&mut c, &["CLIENT", "GETNAME"])), "_\r\n");
    }

    #[test]
    fn client_subcommands_like_redis() {
        let h = Harness::new();
        let mut c = state();
        assert_eq!(text(h.run(&mut c, &["CLIENT", "GETNAME"])), "$-1\r\n");
        assert_eq!(text(h.run(&mut c, &["CLIENT", "ID"])), ":7\r\n");
        for (words, reply) in [
            (
                &["CLIENT", "SETNAME", "a b"][..],
                "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
            ),
            (
                &["CLIENT", "SETNAME", "a\u{1}"],
                "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
            ),
            (
                &["CLIENT", "SETNAME"],
                "-ERR wrong number of arguments for 'client|setname' command\r\n",
            ),
            (
                &["CLIENT", "GETNAME", "x"],
                "-ERR wrong number of arguments for 'client|getname' command\r\n",
            ),
            (
                &["CLIENT"],
                "-ERR wrong number of arguments for 'client' command\r\n",
            ),
            (
                &["CLIENT", "FOO"],
                "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n",
            ),
            (
                &["CLIENT", "SETINFO", "color", "x"],
                "-ERR Unrecognized option 'color'\r\n",
            ),
            (
                &["CLIENT", "SETINFO", "lib-name", "a b"],
                "-ERR lib-name cannot contain spaces, newlines or special characters.\r\n",
            ),
            (
                &["CLIENT", "SETINFO", "lib-name"],
                "-ERR wrong number of arguments for 'client|setinfo' command\r\n",
            ),
            (&["CLIENT", "LIST", "x"], "-ERR syntax error\r\n"),
        ] {
            assert_eq!(text(h.run(&mut c, words)), reply, "{words:?}");
        }
        assert_eq!(text(h.run(&mut c, &["CLIENT", "SETNAME", "x"])), "+OK\r\n");
        assert_eq!(text(h.run(&mut c, &["client", "getname"])), "$1\r\nx\r\n");
        assert_eq!(
            text(h.run(&mut c, &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"])),
            "+OK\r\n"
        );
        assert_eq!(
            text(h.run(&mut c, &["CLIENT", "SETINFO", "lib-ver", "5.0"])),
            "+OK\r\n"
        );
        let info = text(h.run(&mut c, &["CLIENT", "INFO"]));
        assert!(info.starts_with("$"), "{info}");
        assert!(info.contains("id=7 addr= laddr= fd=-1 name=x age=0 idle=0 flags=N db=0"));
        assert!(
            info.ends_with(" resp=2 lib-name=redis-py lib-ver=5.0\n\r\n"),
            "{info}"
        );
        // LIST: every client, ordered by id; filters.
        let list = text(h.run(&mut c, &["CLIENT", "LIST"]));
        let at_3 = list.find("id=3 ").unwrap();
        let at_7 = list.find("id=7 ").unwrap();
        assert!(at_3 < at_7, "{list}");
        let only_7 = text(h.run(&mut c, &["CLIENT", "LIST", "ID", "7"]));
        assert!(
            only_7.contains("id=7 ") && !only_7.contains("id=3 "),
            "{only_7}"
        );
        assert_eq!(
            text(h.run(&mut c, &["CLIENT", "LIST", "TYPE", "pubsub"])),
            "$0\r\n\r\n"
        );
        // RESP3: verbatim text.
        h.run(&mut c, &["HELLO", "3"]);
        let info = text(h.run(&mut c, &["CLIENT", "INFO"]));
        assert!(
            info.starts_with("=") && info.contains("\r\ntxt:id=7 "),
            "{info}"
        );
        assert!(info.contains(" resp=3 "), "{info}");
    }

    #[test]
    fn config_get_matches_globs_and_is_a_map_in_resp3() {
        let h = Harness::new();
        let mut c = state();
        assert_eq!(
            text(h.run(&mut c, &["CONFIG", "GET", "appendonly"])),
            "*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n"
        );
        assert_eq!(text(h.run(&mut c, &["CONFIG", "GET", "nosuch"])), "*0\r\n");
        // Each parameter once, whichever patterns match it.
        let max = text(h.run(&mut c, &["CONFIG", "GET", "*max*", "maxclients"]));
        assert!(max.starts_with("*8\r\n"), "{max}");
        for name in [
            "maxclients",
            "maxmemory",
            "maxmemory-policy",
            "proto-max-bulk-len",
        ] {
            assert!(max.contains(&format!("\r\n{name}\r\n")), "{max}");
        }
        assert!(text(h.run(&mut c, &["CONFIG", "GET", "SAVE"])).contains("save"));
        assert_eq!(
            text(h.run(&mut c, &["CONFIG", "GET"])),
            "-ERR wrong number of arguments for 'config|get' command\r\n"
        );
        assert_eq!(
            text(h.run(&mut c, &["CONFIG", "FOO"])),
            "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n"
        );
        h.run(&mut c, &["HELLO", "3"]);
        assert_eq!(
            text(h.run(&mut c, &["CONFIG", "GET", "appendonly"])),
            "%1\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n"
        );
    }

    #[test]
    fn cluster_clients_are_answered() {
        let h = Harness::new();
        let mut c = state();
        assert_eq!(text(h.run(&mut c, &["READONLY"])), "+OK\r\n");
        assert_eq!(text(h.run(&mut c, &["readwrite"])), "+OK\r\n");
        assert_eq!(
            text(h.run(&mut c, &["READONLY", "x"])),
            "-ERR wrong number of arguments for 'readonly' command\r\n"
        );
        assert_eq!(
            text(h.run(&mut c, &["CLUSTER", "KEYSLOT", "foo"])),
            ":12182\r\n"
        );
        assert_eq!(
            text(h.run(&mut c, &["CLUSTER", "MYID"])),
            format!("$40\r\n{}\r\n", NodeName::of(9, 1))
        );
        assert_eq!(text(h.run(&mut c, &["CLUSTER", "SLOTS"])), "*0\r\n");
    }

    #[test]
    fn ping_echo_select() {
        let h = Harness::new();
        let mut c = state();
        assert_eq!(text(h.run(&mut c, &["PING"])), "+PONG\r\n");
        assert_eq!(text(h.run(&mut c, &["ECHO", "x"])), "$1\r\nx\r\n");
        assert_eq!(
            text(h.run(&mut c, &["SELECT", "1"])),
            "-ERR DB index is out of range\r\n"
        );
    }
}

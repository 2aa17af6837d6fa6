//! `INFO [section...]`: Redis 7's sections and field names, with Ketch's Raft fields.
//!
//! # Sections
//!
//! `INFO` and `INFO default` give `server`, `clients`, `memory`, `persistence`, `stats`,
//! `replication`, `cpu`, `modules`, `errorstats`, `cluster`, `keyspace`, in that order; `INFO
//! all` and `INFO everything` the same (Ketch has no command or latency statistics); `INFO
//! server clients` just those. Names
//! are case-insensitive; an unknown name selects nothing, so `INFO nosuch` is an empty
//! string, as in Redis. Each section is `# Name\r\n` then `field:value\r\n` lines; sections
//! are separated by an empty line (`\r\n`). The reply is a bulk string, a `txt` verbatim
//! string in RESP3. Redis' `commandstats` and `latencystats` sections are not produced.
//!
//! | section       | fields                                                              |
//! |---------------|---------------------------------------------------------------------|
//! | `Server`      | `redis_version` ([`REDIS_COMPAT_VERSION`]), `ketch_version`, `node_id`, `redis_git_sha1`, `redis_git_dirty`, `redis_mode:standalone`, `os`, `arch_bits`, `multiplexing_api`, `process_id`, `process_supervised`, `run_id` (40 hex digits, new each start), `tcp_port`, `server_time_usec`, `uptime_in_seconds`, `uptime_in_days`, `executable`, `config_file` |
//! | `Clients`     | `connected_clients`, `cluster_connections`, `maxclients`, `blocked_clients`, `tracking_clients`, `clients_in_timeout_table` |
//! | `Memory`      | `used_memory` (an estimate: the process's resident set, Linux `VmRSS`; 0 where unknown), `used_memory_human`, `used_memory_rss`, `used_memory_peak` (`VmHWM`), `maxmemory:0`, `maxmemory_policy:noeviction`, `mem_allocator:libc` |
//! | `Persistence` | `loading:0`, `async_loading:0`, `rdb_bgsave_in_progress:0`, `aof_enabled:1`, `aof_rewrite_in_progress:0`, then Ketch's log writer: `fsyncs`, `entries_written`, `write_items`, `disk_stalled`, `fsync_batch_items_log2_histogram` |
//! | `Stats`       | `total_connections_received`, `total_commands_processed`, `rejected_connections`, `expired_keys:0`, `evicted_keys:0` |
//! | `Replication` | `role` (`master` on the Raft leader, `slave` otherwise, as Redis names them), `connected_slaves` (peers connected to the leader), `master_link_status` (on a replica: `up` while a leader is known), `master_failover_state`, `master_repl_offset` (the applied index); then Ketch's Raft fields: `raft_role` (`leader`, `follower`, `candidate`, `precandidate`, `stopped`), `term`, `leader_id` (`none` if unknown), `commit_index`, `applied_index`, `last_index`, `members`, `connected_peers`, `participating`, `removed`, `last_error` (if any) |
//! | `CPU`         | `used_cpu_sys`, `used_cpu_user` (the process), `used_cpu_sys_children`, `used_cpu_user_children`, `used_cpu_sys_main_thread`, `used_cpu_user_main_thread` (the connection loop's thread), in seconds, from `getrusage` |
//! | `Modules`     | none: Ketch loads no modules                                        |
//! | `Errorstats`  | `errorstat_<CODE>:count=N` for each error code (first word of the error) the server answered, at most [`ERROR_CODES_MAX`] codes (later new codes count as `errorstat_OTHER`), sorted: the errors of top-level replies, as `redis-server` counts them, not those inside an `EXEC` array |
//! | `Cluster`     | `cluster_enabled:0`; with many shards `cluster_enabled:1`, `ketch_shards:N`, `ketch_routing_epoch:E` and per range `ketch_range_I:slots=F-L,group=G,epoch=E` |
//! | `Keyspace`    | `db0:keys=N,expires=M,avg_ttl=0` (M: keys with a deadline; Ketch keeps no TTL average), only when there are keys |
//!
//! `raft_role` follows `role` so that a reader taking the last `role`-like line (as `ketch
//! cluster` does) sees the Raft role, and one matching `role:leader` inside the text still
//! finds it. The key counts are a linearizable read through the node, so `INFO` with the
//! keyspace section waits for the connection's pending writes like any read; if the read
//! cannot be served (no leader) the section is left empty rather than failing `INFO`.
//! Key expiry is not tracked yet: `expires` is always 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::backend::RouteView;
use super::local_commands::REDIS_COMPAT_VERSION;
use crate::node::NodeStatus;
use crate::raft::{NodeId, Role};

/// Sections, in the order Redis writes them.
const SECTIONS: [&str; 11] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];
const KEYSPACE: usize = 10;

/// Most distinct error codes counted (Redis' own bound).
pub(super) const ERROR_CODES_MAX: usize = 128;

/// Error replies by code (`ERR`, `WRONGTYPE`, ...), for `INFO errorstats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ErrorCounts {
    counts: BTreeMap<String, u64>,
}

impl ErrorCounts {
    /// Counts `reply` if it is an error reply.
    pub(super) fn note(&mut self, reply: &[u8]) {
        if reply.first() != Some(&b'-') {
            return;
        }
        let line = &reply[1..];
        let end = line
            .iter()
            .position(|&b| b == b' ' || b == b'\r')
            .unwrap_or(line.len());
        self.bump(&String::from_utf8_lossy(&line[..end.min(64)]), 1);
    }

    /// Adds `other`'s counts.
    pub(super) fn add(&mut self, other: &ErrorCounts) {
        for (code, &count) in &other.counts {
            self.bump(code, count);
        }
    }

    /// Adds `count` to `code`, or to `OTHER` once [`ERROR_CODES_MAX`] codes are known.
    fn bump(&mut self, code: &str, count: u64) {
        if let Some(mine) = self.counts.get_mut(code) {
            *mine += count;
        } else if self.counts.len() < ERROR_CODES_MAX {
            self.counts.insert(code.to_string(), count);
        } else {
            *self.counts.entry("OTHER".to_string()).or_default() += count;
        }
    }

    /// Every error reply counted.
    pub(super) fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The sections an `INFO` asked for (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InfoSections {
    wanted: [bool; SECTIONS.len()],
}

impl InfoSections {
    /// The sections `INFO <args>` selects.
    pub(super) fn parse(args: &[Vec<u8>]) -> InfoSections {
        let mut wanted = [false; SECTIONS.len()];
        if args.is_empty() {
            wanted = [true; SECTIONS.len()];
        }
        for arg in args {
            let arg = arg.to_ascii_lowercase();
            match &arg[..] {
                b"default" | b"all" | b"everything" => wanted = [true; SECTIONS.len()],
                name => {
                    if let Some(at) = SECTIONS.iter().position(|s| s.as_bytes() == name) {
                        wanted[at] = true;
                    }
                }
            }
        }
        InfoSections { wanted }
    }

    /// Whether the keyspace section (which needs a read through the node) is asked for.
    pub(super) fn keyspace(&self) -> bool {
        self.wanted[KEYSPACE]
    }
}

/// What the server knows of its process, fixed at start.
#[derive(Debug, Clone)]
pub(super) struct ProcessFacts {
    /// The plaintext RESP port (0: none).
    pub(super) tcp_port: u16,
    /// The TLS RESP port (0: none).
    pub(super) tls_port: u16,
    /// When the server started.
    pub(super) started: Instant,
    /// 40 hex digits, new at every start (Redis' `run_id`).
    pub(super) run_id: String,
}

impl ProcessFacts {
    /// Facts for a server listening on `tcp_port`, started at `started`.
    pub(super) fn new(tcp_port: u16, started: Instant) -> ProcessFacts {
        // RandomState is seeded from the OS's randomness: enough for an id that only has to
        // differ between runs.
        let mut run_id = String::with_capacity(40);
        let seed = std::collections::hash_map::RandomState::new();
        for part in 0u64..3 {
            let mut hasher = seed.build_hasher();
            hasher.write_u64(part);
            hasher.write_u32(std::process::id());
            let _ = write!(run_id, "{:016x}", hasher.finish());
        }
        run_id.truncate(40);
        ProcessFacts {
            tcp_port,
            tls_port: 0,
            started,
            run_id,
        }
    }
}

/// Counters the connection loop keeps for `INFO stats`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ServerStats {
    /// Connections accepted.
    pub(super) connections_received: u64,
    /// Connections refused at the connection limit.
    pub(super) connections_rejected: u64,
    /// Requests dispatched.
    pub(super) commands_processed: u64,
}

/// Everything `INFO`'s text is made of but the key count.
pub(super) struct InfoInputs<'a> {
    pub(super) status: &'a NodeStatus,
    /// The member list given at start (used until the node knows a configuration).
    pub(super) members: &'a [NodeId],
    pub(super) process: &'a ProcessFacts,
    pub(super) stats: ServerStats,
    pub(super) connected_clients: usize,
    pub(super) connections_max: usize,
    /// Every connection's error replies, closed ones included.
    pub(super) errors: &'a ErrorCounts,
    /// The keyspace's shards (lanes): with more than one, the node is a Redis Cluster node.
    pub(super) shards: usize,
    /// The routing table's epoch and ranges (see `Backend::routing`).
    pub(super) routing: (u64, Vec<RouteView>),
}

fn raft_role_name(status: &NodeStatus) -> &'static str {
    if !status.participating {
        // A node that stopped participating leads nothing; monitors read this.
        return "stopped";
    }
    match status.role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "precandidate",
    }
}

/// Whether the node leads (and so is Redis' `master`).
pub(super) fn is_leader(status: &NodeStatus) -> bool {
    status.participating && status.role == Role::Leader
}

/// A `/proc/self/status` field in bytes (given in kB), if the system has it.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

fn os_name() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_string())
    };
    match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Some(kind), Some(release)) => format!("{kind} {release} {}", std::env::consts::ARCH),
        _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// `INFO`'s text for `sections`, but the keyspace section (module docs); see
/// [`with_keyspace`].
pub(super) fn info_text(sections: &InfoSections, inputs: &InfoInputs<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (at, name) in SECTIONS.iter().enumerate() {
        if !sections.wanted[at] || at == KEYSPACE {
            continue;
        }
        let mut text = String::with_capacity(256);
        match *name {
            "server" => server_section(&mut text, inputs),
            "clients" => {
                let _ = write!(
                    text,
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\n\
                     maxclients:{}\r\nblocked_clients:0\r\ntracking_clients:0\r\n\
                     clients_in_timeout_table:0\r\n",
                    inputs.connected_clients, inputs.connections_max
                );
            }
            "memory" => {
                let rss = proc_status_bytes("VmRSS:").unwrap_or(0);
                let peak = proc_status_bytes("VmHWM:").unwrap_or(rss);
                let _ = write!(
                    text,
                    "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\n\
                     used_memory_rss:{rss}\r\nused_memory_peak:{peak}\r\nmaxmemory:0\r\n\
                     maxmemory_policy:noeviction\r\nmem_allocator:libc\r\n",
                    human_bytes(rss)
                );
            }
            "persistence" => persistence_section(&mut text, inputs.status),
            "stats" => {
                let _ = write!(
                    text,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                     rejected_connections:{}\r\nexpired_keys:0\r\nevicted_keys:0\r\n\
                     total_error_replies:{}\r\n",
                    inputs.stats.connections_received,
                    inputs.stats.commands_processed,
                    inputs.stats.connections_rejected,
                    inputs.errors.total()
                );
            }
            "replication" => replication_section(&mut text, inputs),
            "cpu" => cpu_section(&mut text),
            "modules" => text.push_str("# Modules\r\n"),
            "errorstats" => {
                text.push_str("# Errorstats\r\n");
                for (code, count) in &inputs.errors.counts {
                    let _ = write!(text, "errorstat_{code}:count={count}\r\n");
                }
            }
            "cluster" if inputs.shards > 1 => {
                let (epoch, routes) = &inputs.routing;
                let _ = write!(
                    text,
                    "# Cluster\r\ncluster_enabled:1\r\nketch_shards:{}\r\nketch_routing_epoch:{epoch}\r\n",
                    inputs.shards
                );
                for (i, route) in routes.iter().enumerate() {
                    let _ = write!(
                        text,
                        "ketch_range_{i}:slots={}-{},group={},epoch={}\r\n",
                        route.first, route.last, route.group, route.epoch
                    );
                }
            }
            "cluster" => text.push_str("# Cluster\r\ncluster_enabled:0\r\n"),
            _ => unreachable!("every section but the keyspace is written here"),
        }
        parts.push(text);
    }
    parts.join("\r\n")
}

/// `text` (from [`info_text`]) with the keyspace section appended if `sections` asks for it:
/// `keys` is the node's key count, `None` if it could not be read.
pub(super) fn with_keyspace(
    mut text: String,
    sections: &InfoSections,
    counts: Option<(i64, i64)>,
) -> String {
    if !sections.keyspace() {
        return text;
    }
    if !text.is_empty() {
        text.push_str("\r\n");
    }
    text.push_str("# Keyspace\r\n");
    if let Some((keys, expires)) = counts.filter(|&(keys, _)| keys > 0) {
        let _ = write!(text, "db0:keys={keys},expires={expires},avg_ttl=0\r\n");
    }
    text
}

fn cpu_section(text: &mut String) {
    use nix::sys::resource::{getrusage, UsageWho};
    let seconds = |who: UsageWho| {
        getrusage(who).map_or((0.0, 0.0), |usage| {
            let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            (s(usage.system_time()), s(usage.user_time()))
        })
    };
    let (sys, user) = seconds(UsageWho::RUSAGE_SELF);
    let (sys_children, user_children) = seconds(UsageWho::RUSAGE_CHILDREN);
    let (sys_main, user_main) = seconds(UsageWho::RUSAGE_THREAD);
    let _ = write!(
        text,
        "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n\
         used_cpu_sys_children:{sys_children:.6}\r\nused_cpu_user_children:{user_children:.6}\r\n\
         used_cpu_sys_main_thread:{sys_main:.6}\r\nused_cpu_user_main_thread:{user_main:.6}\r\n"
    );
}

fn server_section(text: &mut String, inputs: &InfoInputs<'_>) {
    let uptime = inputs.process.started.elapsed().as_secs();
    let now_usec = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let executable = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    let _ = write!(
        text,
        "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nketch_version:{}\r\nnode_id:{}\r\n\
         redis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_mode:standalone\r\nos:{}\r\n\
         arch_bits:{}\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nprocess_supervised:no\r\n\
         run_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{now_usec}\r\nuptime_in_seconds:{uptime}\r\n\
         uptime_in_days:{}\r\nexecutable:{}\r\nconfig_file:\r\n",
        env!("CARGO_PKG_VERSION"),
        inputs.status.id,
        os_name(),
        usize::BITS,
        std::process::id(),
        inputs.process.run_id,
        inputs.process.tcp_port,
        uptime / 86_400,
        executable.replace(['\r', '\n'], " "),
    );
}

fn persistence_section(text: &mut String, status: &NodeStatus) {
    let histogram: Vec<String> = status
        .writer
        .batch_items_histogram
        .iter()
        .map(|n| n.to_string())
        .collect();
    let _ = write!(
        text,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_bgsave_in_progress:0\r\n\
         aof_enabled:1\r\naof_rewrite_in_progress:0\r\nfsyncs:{}\r\nentries_written:{}\r\n\
         write_items:{}\r\ndisk_stalled:{}\r\nfsync_batch_items_log2_histogram:{}\r\n",
        status.writer.fsyncs,
        status.writer.entries_written,
        status.writer.items_written,
        u8::from(status.disk_stalled),
        histogram.join(","),
    );
}

fn replication_section(text: &mut String, inputs: &InfoInputs<'_>) {
    let status = inputs.status;
    // The configuration in force (it changes with KETCH.ADDLEARNER and friends); the list
    // given at start only while the node has none yet (it joins).
    let members: Vec<String> = if status.members.is_empty() {
        inputs.members.iter().map(|id| id.to_string()).collect()
    } else {
        status.members.keys().map(|id| id.to_string()).collect()
    };
    let leader = is_leader(status);
    text.push_str("# Replication\r\n");
    if leader {
        let _ = write!(
            text,
            "role:master\r\nconnected_slaves:{}\r\n",
            status.connected_peers.len()
        );
    } else {
        let link = if status.leader.is_some() && status.participating {
            "up"
        } else {
            "down"
        };
        let _ = write!(text, "role:slave\r\nmaster_link_status:{link}\r\n");
    }
    let _ = write!(
        text,
        "master_failover_state:no-failover\r\nmaster_repl_offset:{}\r\n\
         raft_role:{}\r\nterm:{}\r\nleader_id:{}\r\ncommit_index:{}\r\napplied_index:{}\r\n\
         last_index:{}\r\nmembers:{}\r\nconnected_peers:{}\r\nparticipating:{}\r\nremoved:{}\r\n",
        status.applied,
        raft_role_name(status),
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
    );
    if let Some(error) = &status.last_error {
        let _ = write!(text, "last_error:{}\r\n", error.replace(['\r', '\n'], " "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(words: &[&str]) -> InfoSections {
        let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        InfoSections::parse(&args)
    }

    #[test]
    fn section_selection_follows_redis_7() {
        let all = sections(&[]);
        assert_eq!(sections(&["default"]), all);
        assert_eq!(sections(&["ALL"]), all);
        assert_eq!(sections(&["everything"]), all);
        assert!(all.keyspace());
        let two = sections(&["server", "Clients"]);
        let mut expected = [false; SECTIONS.len()];
        expected[..2].copy_from_slice(&[true, true]);
        assert_eq!(two.wanted, expected);
        assert!(!two.keyspace());
        assert_eq!(sections(&["nosuch"]).wanted, [false; SECTIONS.len()]);
    }

    #[test]
    fn error_replies_are_counted_by_code_within_the_bound() {
        let mut errors = ErrorCounts::default();
        errors.note(b"+OK\r\n");
        errors.note(b"-ERR syntax error\r\n");
        errors.note(b"-WRONGTYPE Operation against a key\r\n");
        errors.note(b"-ERR x\r\n");
        errors.note(b"-NOAUTH\r\n");
        assert_eq!(errors.total(), 4);
        let counts: Vec<_> = errors
            .counts
            .iter()
            .map(|(c, n)| (c.as_str(), *n))
            .collect();
        assert_eq!(counts, [("ERR", 2), ("NOAUTH", 1), ("WRONGTYPE", 1)]);
        let mut many = ErrorCounts::default();
        for code in 0..ERROR_CODES_MAX + 10 {
            many.note(format!("-E{code} x\r\n").as_bytes());
        }
        assert_eq!(
            many.counts.len(),
            ERROR_CODES_MAX + 1,
            "the bound and OTHER"
        );
        assert_eq!(many.counts["OTHER"], 10);
        errors.add(&many);
        assert_eq!(errors.total(), 4 + ERROR_CODES_MAX as u64 + 10);
        assert!(errors.counts.len() <= ERROR_CODES_MAX + 1);
    }

    #[test]
    fn keyspace_is_appended_after_the_other_sections() {
        let only = sections(&["keyspace"]);
        assert_eq!(
            with_keyspace(String::new(), &only, Some((3, 1))),
            "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n"
        );
        // No keys (or no count): an empty section, as Redis writes an empty database.
        assert_eq!(
            with_keyspace(String::new(), &only, Some((0, 0))),
            "# Keyspace\r\n"
        );
        assert_eq!(with_keyspace(String::new(), &only, None), "# Keyspace\r\n");
        let both = sections(&["cluster", "keyspace"]);
        assert_eq!(
            with_keyspace("# Cluster\r\ncluster_enabled:0\r\n".into(), &both, Some((1, 0))),
            "# Cluster\r\ncluster_enabled:0\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"
        );
        let none = sections(&["server"]);
        assert_eq!(with_keyspace("x".into(), &none, Some((1, 0))), "x");
    }

    #[test]
    fn run_ids_are_40_hex_digits_and_differ() {
        let a = ProcessFacts::new(1, Instant::now());
        let b = ProcessFacts::new(1, Instant::now());
        assert_eq!(a.run_id.len(), 40);
        assert!(a.run_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a.run_id, b.run_id);
    }
}

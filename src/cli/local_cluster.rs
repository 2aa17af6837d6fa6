//! `ketch cluster --nodes 3`: a local cluster on loopback, one `ketch serve` child process per
//! node (the current executable run again), for trying the service out.
//!
//! Node `N` gets peer address `127.0.0.1:(7000 + N)`, RESP address `127.0.0.1:(6379 + N)` and
//! data directory `./ketch-data/node-N` (all adjustable by flags), and every node is told the
//! others' RESP addresses (`ketch serve --cluster-client-addrs`), so Redis Cluster clients
//! (`redis-cli -c`) can be pointed at any of them; with `--metrics-port PORT`
//! it serves Prometheus metrics on `127.0.0.1:(PORT + N - 1)`. Running the same command
//! again restarts the same cluster from its data. While it runs, it prints each node's
//! address and pid, then every change of leader seen through `INFO` (polled every
//! [`POLL_INTERVAL`]) and every node that exits. On SIGINT (Ctrl-C) or SIGTERM it sends
//! SIGTERM to each child, waits up to [`STOP_GRACE`], then kills what is left with SIGKILL.
//! The children run in their own process groups, so only this supervisor sees a terminal's
//! Ctrl-C; if the supervisor itself is killed with SIGKILL, the nodes keep running (stop
//! them with `kill PID`, using the pids it printed).
//!
//! `--requirepass PASS` is passed on to every node (clients must `AUTH PASS`), and the
//! supervisor authenticates its own `INFO` connections with it. `--acl-file FILE` is passed
//! on too; the supervisor then polls as user `default` without a password.
//!
//! `--secure` makes (once) a CA, node certificates and a password under `DATA_DIR/secure`
//! (see [`super::local_pki`]) and starts every node with mutual TLS between peers, a TLS
//! client listener on `127.0.0.1:(TLS_PORT + N - 1)` (`--tls-port`, 6390 by default) and the
//! password; it prints how to connect. The plaintext client port stays on loopback, with
//! the password required, for the supervisor's own `INFO` polling; the Redis Cluster replies
//! name the TLS ports.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGINT, SIGTERM};

use super::local_pki::{self, LocalPki};
use super::serve::ReadModeArg;
use super::{DEFAULT_CLIENT_PORT_BASE, DEFAULT_PEER_PORT_BASE};
use crate::client::connection::{Connection, ConnectionError};
use crate::client::Reply;
use crate::kv::resp::encode_request;
use crate::kv::{DEFAULT_MAX_VALUE_BYTES, MAX_VALUE_BYTES_MAX};

/// How often the nodes are asked for `INFO`.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long stopping children may take before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Most nodes `ketch cluster` starts.
pub const NODES_MAX: u64 = 9;
/// `--tls-port`'s default.
pub const DEFAULT_TLS_PORT_BASE: u16 = 6390;

/// `ketch cluster` command-line arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Number of nodes (1 to 9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=NODES_MAX))]
    pub nodes: u64,
    /// Parent of the nodes' data directories (node N uses DIR/node-N).
    #[arg(long, value_name = "DIR", default_value = "ketch-data")]
    pub data_dir: PathBuf,
    /// RESP port of node 1; node N uses PORT + N - 1.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_CLIENT_PORT_BASE)]
    pub client_port: u16,
    /// Peer port of node 1; node N uses PORT + N - 1.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_PEER_PORT_BASE)]
    pub peer_port: u16,
    /// Passed on to each node: the largest value a write may leave, in bytes.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DEFAULT_MAX_VALUE_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(1..=MAX_VALUE_BYTES_MAX as u64)
    )]
    pub max_value_bytes: u64,
    /// Passed on to each node: how linearizable reads confirm leadership (see `ketch serve
    /// --read-mode`).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ReadModeArg::ReadIndex)]
    pub read_mode: ReadModeArg,
    /// Passed on to each node: split the hash slots into N ranges, each a Raft group, shown
    /// to Redis Cluster clients as N shards (see `ketch serve --shards`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(crate::kv::sharded::SHARDS_MAX))
    )]
    pub shards: u16,
    /// Passed on to each node: with --shards above 1, forward requests for other nodes'
    /// ranges or answer `-MOVED` (see `ketch serve --cluster-mode`).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = crate::cli::serve::ClusterModeArg::Forward)]
    pub cluster_mode: crate::cli::serve::ClusterModeArg,
    /// Prometheus metrics port of node 1 (node N serves http://127.0.0.1:(PORT + N - 1)/metrics)
    /// [default: no metrics].
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// Passed on to each node: the password of user `default` (clients must AUTH).
    #[arg(long, value_name = "PASSWORD", conflicts_with_all = ["secure", "acl_file"])]
    pub requirepass: Option<String>,
    /// Passed on to each node: ACL users (see `ketch serve --acl-file`). The supervisor polls
    /// INFO as user `default`: unless the file makes it `on nopass`, leader changes are not
    /// printed.
    #[arg(long, value_name = "FILE", conflicts_with = "secure")]
    pub acl_file: Option<PathBuf>,
    /// Mutual TLS between nodes, a TLS client port and a password, with a CA and keys made
    /// under DIR/secure (module docs).
    #[arg(long)]
    pub secure: bool,
    /// With --secure: TLS client port of node 1; node N uses PORT + N - 1.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_TLS_PORT_BASE)]
    pub tls_port: u16,
    /// Passed on to each node (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// One node of the local cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    /// Node id (1-based).
    pub id: u64,
    /// Peer address.
    pub peer_addr: String,
    /// RESP address.
    pub client_addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Metrics address, with `--metrics-port`.
    pub metrics_addr: Option<String>,
    /// TLS client address, with `--secure`.
    pub tls_addr: Option<String>,
}

impl ClusterArgs {
    /// Every node's addresses and directory; fails if a port would pass 65535.
    pub fn nodes(&self) -> Result<Vec<LocalNode>, String> {
        (1..=self.nodes)
            .map(|id| {
                let port = |base: u16| {
                    u16::try_from(u64::from(base) + id - 1)
                        .map_err(|_| format!("node {id}: port {base} + {} passes 65535", id - 1))
                };
                Ok(LocalNode {
                    id,
                    peer_addr: format!("127.0.0.1:{}", port(self.peer_port)?),
                    client_addr: format!("127.0.0.1:{}", port(self.client_port)?),
                    data_dir: self.data_dir.join(format!("node-{id}")),
                    metrics_addr: match self.metrics_port {
                        Some(base) => Some(format!("127.0.0.1:{}", port(base)?)),
                        None => None,
                    },
                    tls_addr: match self.secure {
                        true => Some(format!("127.0.0.1:{}", port(self.tls_port)?)),
                        false => None,
                    },
                })
            })
            .collect()
    }

    /// The `ketch serve` arguments for `node`; `pki` with `--secure`.
    pub fn serve_args(
        &self,
        node: &LocalNode,
        nodes: &[LocalNode],
        pki: Option<&LocalPki>,
    ) -> Vec<String> {
        let cluster = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.peer_addr))
            .collect::<Vec<_>>()
            .join(",");
        // With --secure, users are sent to the TLS ports; the plaintext ones are the
        // supervisor's.
        let client_addrs = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.tls_addr.as_ref().unwrap_or(&n.client_addr)))
            .collect::<Vec<_>>()
            .join(",");
        let mut args = vec![
            "serve".to_string(),
            "--id".to_string(),
            node.id.to_string(),
            "--data-dir".to_string(),
            node.data_dir.display().to_string(),
            "--peer-addr".to_string(),
            node.peer_addr.clone(),
            "--client-addr".to_string(),
            node.client_addr.clone(),
            "--max-value-bytes".to_string(),
            self.max_value_bytes.to_string(),
            "--read-mode".to_string(),
            self.read_mode.as_str().to_string(),
            "--shards".to_string(),
            self.shards.to_string(),
            "--cluster-mode".to_string(),
            self.cluster_mode.as_str().to_string(),
            "--cluster-client-addrs".to_string(),
            client_addrs,
            "--cluster".to_string(),
            cluster,
        ];
        if let Some(addr) = &node.metrics_addr {
            args.extend(["--metrics-addr".to_string(), addr.clone()]);
        }
        if let Some(password) = &self.requirepass {
            args.extend(["--requirepass".to_string(), password.clone()]);
        }
        if let Some(path) = &self.acl_file {
            args.extend(["--acl-file".to_string(), path.display().to_string()]);
        }
        if let (Some(pki), Some(tls_addr)) = (pki, &node.tls_addr) {
            let files = &pki.nodes[(node.id - 1) as usize];
            let path = |p: &PathBuf| p.display().to_string();
            args.extend([
                "--requirepass-file".to_string(),
                path(&pki.password_file),
                "--peer-cert".to_string(),
                path(&files.cert),
                "--peer-key".to_string(),
                path(&files.key),
                "--peer-ca".to_string(),
                path(&pki.ca),
                "--tls-client-addr".to_string(),
                tls_addr.clone(),
                "--tls-cert".to_string(),
                path(&files.cert),
                "--tls-key".to_string(),
                path(&files.key),
            ]);
        }
        if self.verbose > 0 {
            args.push(format!("-{}", "v".repeat(usize::from(self.verbose))));
        }
        args
    }
}

/// What one node said about leadership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderView {
    /// The node's role (`leader`, `follower`, ...), as INFO names it.
    pub role: String,
    /// The leader it knows of, if any.
    pub leader: Option<u64>,
    /// Its term.
    pub term: u64,
}

/// Reads role, leader and term from an `INFO` reply's `field:value` lines. Accepts the
/// field names `role`, `term`, and `leader` or `leader_id` (`0`, `none` or empty: none).
pub fn parse_leader_view(info: &str) -> LeaderView {
    let mut view = LeaderView::default();
    for line in info.lines() {
        let Some((field, value)) = line.trim().split_once(':') else {
            continue;
        };
        match field {
            "role" | "raft_role" => view.role = value.to_string(),
            "term" | "raft_term" => view.term = value.parse().unwrap_or(0),
            "leader" | "leader_id" => view.leader = value.parse().ok().filter(|&id| id != 0),
            _ => {}
        }
    }
    view
}

struct Running {
    node: LocalNode,
    child: Child,
    pid: u32,
    exited: bool,
    info: Option<Connection>,
}

/// Starts the cluster and supervises it until SIGINT or SIGTERM.
pub fn run(args: &ClusterArgs) -> Result<(), String> {
    super::logging::init_logging(args.verbose);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    }
    let nodes = args.nodes()?;
    let pki = match args.secure {
        true => Some(local_pki::ensure(
            &args.data_dir.join("secure"),
            args.nodes,
        )?),
        false => None,
    };
    let password = args
        .requirepass
        .clone()
        .or_else(|| pki.as_ref().map(|pki| pki.password.clone()));
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my executable: {e}"))?;
    let mut running: Vec<Running> = Vec::new();
    for node in &nodes {
        std::fs::create_dir_all(&node.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", node.data_dir.display()))?;
        // Each child in its own process group: a terminal's Ctrl-C reaches only this
        // supervisor, which then sends one SIGTERM (a second signal would make a node skip
        // its clean stop).
        let spawned = Command::new(&exe)
            .args(args.serve_args(node, &nodes, pki.as_ref()))
            .stdin(Stdio::null())
            .process_group(0)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                stop_all(&mut running);
                return Err(format!("cannot start node {}: {error}", node.id));
            }
        };
        println!(
            "node {}: RESP {}  (peers {}, pid {}, data {})",
            node.id,
            node.client_addr,
            node.peer_addr,
            child.id(),
            node.data_dir.display()
        );
        if let Some(addr) = &node.metrics_addr {
            println!("node {}: metrics http://{addr}/metrics", node.id);
        }
        if let Some(addr) = &node.tls_addr {
            println!("node {}: RESP over TLS {addr}", node.id);
        }
        running.push(Running {
            node: node.clone(),
            pid: child.id(),
            child,
            exited: false,
            info: None,
        });
    }
    let port_of = |addr: &str| addr.rsplit(':').next().unwrap_or_default().to_string();
    match (&pki, &nodes[0].tls_addr) {
        (Some(pki), Some(tls_addr)) => println!(
            "secure: peers use mutual TLS; clients need the password in {} and the CA {}\n\
             try: redis-cli --tls --cacert {} -p {} --user default --pass \"$(cat {})\"    stop: Ctrl-C",
            pki.password_file.display(),
            pki.ca.display(),
            pki.ca.display(),
            port_of(tls_addr),
            pki.password_file.display()
        ),
        _ => println!(
            "try: redis-cli -p {}    stop: Ctrl-C",
            port_of(&nodes[0].client_addr)
        ),
    }
    let mut last_seen: Option<(Option<u64>, u64)> = None;
    // Runs until a signal; each round is bounded by the nodes' I/O timeouts.
    while !stop.load(Ordering::Acquire) {
        let mut views = Vec::new();
        for node in running.iter_mut().filter(|n| !n.exited) {
            if let Ok(Some(status)) = node.child.try_wait() {
                node.exited = true;
                println!("node {} (pid {}) exited: {status}", node.node.id, node.pid);
                continue;
            }
            if let Some(view) = poll_info(node, password.as_deref()) {
                views.push(view);
            }
        }
        if running.iter().all(|n| n.exited) {
            println!("every node has exited");
            return Err("every node exited".to_string());
        }
        // The leader of the highest term any node reports.
        if let Some(best) = views.iter().max_by_key(|v| (v.term, v.leader.is_some())) {
            let seen = (best.leader, best.term);
            if last_seen != Some(seen) {
                match best.leader {
                    Some(id) => println!("leader: node {id} (term {})", best.term),
                    None => println!("no leader (term {})", best.term),
                }
                last_seen = Some(seen);
            }
        }
        sleep_unless(&stop, POLL_INTERVAL);
    }
    println!(
        "stopping {} nodes",
        running.iter().filter(|n| !n.exited).count()
    );
    stop_all(&mut running);
    Ok(())
}

fn sleep_unless(stop: &AtomicBool, duration: Duration) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Acquire) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn poll_info(node: &mut Running, password: Option<&str>) -> Option<LeaderView> {
    let timeout = Duration::from_millis(500);
    if node.info.is_none() {
        let addr = node.node.client_addr.parse().ok()?;
        let mut connection = Connection::open(addr, timeout, timeout).ok()?;
        if let Some(password) = password {
            let mut request = Vec::new();
            encode_request(&mut request, &[b"AUTH".as_slice(), password.as_bytes()]);
            connection.send(&request).ok()?;
            match connection.read_reply() {
                Ok(Reply::Simple(_)) => {}
                _ => return None,
            }
        }
        node.info = Some(connection);
    }
    let connection = node.info.as_mut()?;
    let mut request = Vec::new();
    // Only the section it reads: the keyspace section would wait for a linearizable read.
    encode_request(
        &mut request,
        &[b"INFO".as_slice(), b"replication".as_slice()],
    );
    let reply: Result<Reply, ConnectionError> = connection
        .send(&request)
        .and_then(|()| connection.read_reply());
    match reply {
        Ok(Reply::Bulk(Some(text))) => Some(parse_leader_view(&String::from_utf8_lossy(&text))),
        _ => {
            node.info = None;
            None
        }
    }
}

/// SIGTERM to every live child, wait up to [`STOP_GRACE`], then SIGKILL the rest; reaps all.
fn stop_all(running: &mut [Running]) {
    for node in running.iter().filter(|n| !n.exited) {
        if let Ok(pid) = i32::try_from(node.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for node in running.iter_mut().filter(|n| !n.exited) {
        loop {
            match node.child.try_wait() {
                Ok(Some(status)) => {
                    println!("node {} stopped: {status}", node.node.id);
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    println!(
                        "node {} did not stop in {STOP_GRACE:?}: killing it",
                        node.node.id
                    );
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
            }
        }
        node.exited = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_consecutive_ports_and_their_own_directories() {
        let args = ClusterArgs {
            nodes: 3,
            data_dir: PathBuf::from("ketch-data"),
            client_port: 6380,
            peer_port: 7001,
            max_value_bytes: 1 << 20,
            read_mode: ReadModeArg::ReadIndex,
            shards: 1,
            cluster_mode: crate::cli::serve::ClusterModeArg::Forward,
            metrics_port: None,
            requirepass: None,
            acl_file: None,
            secure: false,
            tls_port: DEFAULT_TLS_PORT_BASE,
            verbose: 0,
        };
        let nodes = args.nodes().unwrap();
        assert_eq!(nodes[2].client_addr, "127.0.0.1:6382");
        assert_eq!(nodes[2].peer_addr, "127.0.0.1:7003");
        assert_eq!(nodes[2].data_dir, PathBuf::from("ketch-data/node-3"));
        let serve = args.serve_args(&nodes[1], &nodes, None);
        assert_eq!(serve[..3], ["serve", "--id", "2"]);
        assert!(serve
            .windows(2)
            .any(|w| w == ["--max-value-bytes", "1048576"]));
        assert!(serve.windows(2).any(|w| w
            == [
                "--cluster-client-addrs",
                "1=127.0.0.1:6380,2=127.0.0.1:6381,3=127.0.0.1:6382"
            ]));
        assert_eq!(
            serve.last().unwrap(),
            "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"
        );
        assert!(!serve
            .iter()
            .any(|a| a == "--metrics-addr" || a == "--requirepass"));
        let with_password = ClusterArgs {
            requirepass: Some("pw".to_string()),
            ..args.clone()
        };
        assert!(with_password
            .serve_args(&nodes[0], &nodes, None)
            .windows(2)
            .any(|w| w == ["--requirepass", "pw"]));
        let with_acl = ClusterArgs {
            acl_file: Some(PathBuf::from("users.acl")),
            ..args.clone()
        };
        assert!(with_acl
            .serve_args(&nodes[0], &nodes, None)
            .windows(2)
            .any(|w| w == ["--acl-file", "users.acl"]));
        let with_metrics = ClusterArgs {
            metrics_port: Some(9100),
            ..args.clone()
        };
        let nodes = with_metrics.nodes().unwrap();
        let serve = with_metrics.serve_args(&nodes[2], &nodes, None);
        assert!(serve
            .windows(2)
            .any(|w| w == ["--metrics-addr", "127.0.0.1:9102"]));
        let too_high = ClusterArgs {
            client_port: 65535,
            ..args
        };
        assert!(too_high.nodes().is_err());
    }

    #[test]
    fn leader_views_are_read_from_info_lines() {
        let view = parse_leader_view("# Raft\r\nrole:follower\r\nterm:7\r\nleader_id:2\r\n");
        assert_eq!(
            view,
            LeaderView {
                role: "follower".to_string(),
                leader: Some(2),
                term: 7
            }
        );
        assert_eq!(parse_leader_view("role:candidate\nleader:0\n").leader, None);
    }
}

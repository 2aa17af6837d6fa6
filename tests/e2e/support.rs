//! Test support for the end-to-end suites: clusters of real `ketch serve` processes on
//! loopback ports picked by the test, with temporary data directories.
//!
//! Every child is killed (SIGKILL) when its [`TestCluster`] drops, including during a
//! panic's unwinding; the [`watchdog`] kills every child this process started before it
//! aborts a test that ran past its bound, so no node outlives the test binary.

#![allow(dead_code)] // Each suite uses a different part.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketch::cli::local_cluster::{parse_leader_view, LeaderView};
use ketch::client::{Client, ClientOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[path = "../harness/ports.rs"]
mod ports;
#[path = "../harness/watchdog.rs"]
mod watchdog;
pub use ports::free_consecutive_ports;
use watchdog::watchdog_with;

/// Pids of every child started by this test process, for the watchdog.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Aborts the process (after killing every child node) if the test runs past `limit`. Keep
/// the returned flag and set it when the test ends.
pub fn watchdog(name: &'static str, limit: Duration) -> Arc<AtomicBool> {
    watchdog_with(name, limit, kill_children)
}

fn kill_children() {
    for &pid in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

/// Client options for tests: short connection waits, generous total retry time.
pub fn test_client_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_millis(500),
        io_timeout: Duration::from_secs(8),
        attempts_max: 200,
        retry_time_max: Duration::from_secs(30),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        slot_aware: true,
    }
}

/// One `ketch serve` process (running or not).
pub struct ServeNode {
    /// Node id.
    pub id: u64,
    /// Peer address.
    pub peer_addr: SocketAddr,
    /// RESP address.
    pub client_addr: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// stdout and stderr of every run, appended.
    pub log_path: PathBuf,
    /// For a node added with `ketch serve --join`: its contact list.
    pub join: Option<String>,
    child: Option<Child>,
}

/// A cluster of `ketch serve` processes.
pub struct TestCluster {
    /// Holds the data directories and logs.
    root: tempfile::TempDir,
    /// The nodes, index = id - 1.
    pub nodes: Vec<ServeNode>,
    cluster_arg: String,
    /// `--max-value-bytes` for every node (`None`: the default).
    pub max_value_bytes: Option<u64>,
    /// More `ketch serve` arguments for one node, by id (e.g. `--metrics-addr`).
    pub extra_args: BTreeMap<u64, Vec<String>>,
}

impl TestCluster {
    /// Starts `count` nodes and waits until every one answers PING and one is leader.
    pub fn start(count: usize) -> TestCluster {
        let mut cluster = TestCluster::new_stopped(count, None);
        for id in 1..=count as u64 {
            cluster.spawn(id);
        }
        cluster.wait_ready(Duration::from_secs(30));
        cluster
    }

    /// A cluster of `count` nodes, none started. `cluster_addrs` replaces the peer addresses
    /// in the `--cluster` list (one per node, e.g. a [`super::peer_proxy`]'s ports) while
    /// each node still listens on its own `peer_addr`.
    pub fn new_stopped(count: usize, cluster_addrs: Option<&[SocketAddr]>) -> TestCluster {
        let root = tempfile::tempdir().expect("temp dir");
        let base = free_consecutive_ports(2 * count as u16);
        let nodes: Vec<ServeNode> = (0..count)
            .map(|i| {
                let id = i as u64 + 1;
                ServeNode {
                    id,
                    peer_addr: SocketAddr::from(([127, 0, 0, 1], base + i as u16)),
                    client_addr: SocketAddr::from(([127, 0, 0, 1], base + (count + i) as u16)),
                    data_dir: root.path().join(format!("node-{id}")),
                    log_path: root.path().join(format!("node-{id}.log")),
                    join: None,
                    child: None,
                }
            })
            .collect();
        let cluster_arg = nodes
            .iter()
            .map(|n| {
                let addr = cluster_addrs.map_or(n.peer_addr, |a| a[(n.id - 1) as usize]);
                format!("{}={addr}", n.id)
            })
            .collect::<Vec<_>>()
            .join(",");
        TestCluster {
            root,
            nodes,
            cluster_arg,
            max_value_bytes: None,
            extra_args: BTreeMap::new(),
        }
    }

    /// The `ketch serve` command line of node `id`.
    pub fn serve_args(&self, id: u64) -> Vec<String> {
        let node = self.node(id);
        vec![
            "serve".into(),
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            node.data_dir.display().to_string(),
            "--peer-addr".into(),
            node.peer_addr.to_string(),
            "--client-addr".into(),
            node.client_addr.to_string(),
            "-v".into(),
        ]
        .into_iter()
        .chain(
            self.max_value_bytes
                .map(|bytes| ["--max-value-bytes".to_string(), bytes.to_string()])
                .into_iter()
                .flatten(),
        )
        .chain(self.extra_args.get(&id).into_iter().flatten().cloned())
        .chain(match &node.join {
            None => vec!["--cluster".to_string(), self.cluster_arg.clone()],
            Some(contacts) => vec![
                "--cluster-id".to_string(),
                self.cluster_id().to_string(),
                "--join".to_string(),
                contacts.clone(),
            ],
        })
        .collect()
    }

    /// The cluster id every node uses (derived from the initial `--cluster` list).
    pub fn cluster_id(&self) -> u64 {
        ketch::cli::cluster_spec::ClusterSpec::parse(&self.cluster_arg)
            .expect("the cluster list parses")
            .derived_cluster_id()
    }

    /// Adds a node (the next id, new ports and data directory) whose command line is
    /// `ketch serve --join <every other node's peer address>`; not started: `spawn` it.
    pub fn add_joining_node(&mut self) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let base = free_consecutive_ports(2);
        let contacts = self
            .nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.peer_addr))
            .collect::<Vec<_>>()
            .join(",");
        self.nodes.push(ServeNode {
            id,
            peer_addr: SocketAddr::from(([127, 0, 0, 1], base)),
            client_addr: SocketAddr::from(([127, 0, 0, 1], base + 1)),
            data_dir: self.root.path().join(format!("node-{id}")),
            log_path: self.root.path().join(format!("node-{id}.log")),
            join: Some(contacts),
            child: None,
        });
        id
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> &ServeNode {
        &self.nodes[(id - 1) as usize]
    }

    /// Starts node `id`'s process (again), its output appended to its log.
    pub fn spawn(&mut self, id: u64) {
        let args = self.serve_args(id);
        let node = &mut self.nodes[(id - 1) as usize];
        assert!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_ketch"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn ketch serve");
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        node.child = Some(child);
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill9(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        let mut child = node.child.take().expect("node is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        forget_pid(child.id());
    }

    /// Sends `signal` to node `id`'s process (SIGSTOP / SIGCONT to pause and resume it).
    pub fn send_signal(&self, id: u64, signal: Signal) {
        let child = self.node(id).child.as_ref().expect("node is running");
        kill(Pid::from_raw(child.id() as i32), signal).expect("send a signal");
    }

    /// Sends SIGTERM to node `id` without waiting.
    pub fn send_sigterm(&self, id: u64) {
        let child = self.node(id).child.as_ref().expect("node is running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    }

    /// Waits up to `limit` for node `id` to exit; its status, or `None` (still running).
    pub fn wait_exit(&mut self, id: u64, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let node = &mut self.nodes[(id - 1) as usize];
        let child = node.child.as_mut().expect("node is running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                forget_pid(child.id());
                node.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True if node `id`'s process is running.
    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    /// The first node that is not `leader`.
    pub fn follower_of(&self, leader: u64) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.id)
            .find(|&id| id != leader)
            .expect("a follower")
    }

    /// Every node's RESP address.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.client_addr).collect()
    }

    /// Every node's RESP address as `--cluster-client-addrs` takes them: `1=HOST:PORT,...`.
    pub fn cluster_client_addrs_arg(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.client_addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `ketch serve` arguments for a node of a `shards`-shard cluster whose nodes announce
    /// each other's client addresses.
    pub fn sharded_args(&self, shards: u16) -> Vec<String> {
        vec![
            "--shards".into(),
            shards.to_string(),
            "--cluster-client-addrs".into(),
            self.cluster_client_addrs_arg(),
        ]
    }

    /// A client over every node, node `first` tried first.
    pub fn client_starting_at(&self, first: u64) -> Client {
        let mut addrs = self.client_addrs();
        addrs.rotate_left((first - 1) as usize);
        Client::connect_with(&addrs, test_client_options()).unwrap_or_else(|e| {
            panic!("connect a client: {e}\n{}", self.logs());
        })
    }

    /// Node `id`'s INFO, or `None` if it does not answer within a second.
    pub fn info(&self, id: u64) -> Option<LeaderView> {
        let mut stream =
            TcpStream::connect_timeout(&self.node(id).client_addr, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream.write_all(b"*1\r\n$4\r\nINFO\r\n").ok()?;
        let reply = read_one_bulk(&mut stream)?;
        Some(parse_leader_view(&String::from_utf8_lossy(&reply)))
    }

    /// Waits for a running node to report itself leader; its id.
    pub fn wait_for_leader(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Some(view) = self.info(node.id) {
                    if view.role == "leader" {
                        return node.id;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {limit:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running node answers PING and one of them is leader.
    pub fn wait_ready(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                if ping(node.client_addr) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} does not answer PING within {limit:?}\n{}",
                    node.id,
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.wait_for_leader(deadline.saturating_duration_since(Instant::now()))
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log_path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!(
                "--- node {} log (last {} lines)\n",
                node.id,
                tail.len()
            ));
            for line in tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
                forget_pid(child.id());
            }
        }
    }
}

/// True if `addr` answers `PING` with `+PONG` within a second.
pub fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// Reads one `$n\r\n...\r\n` reply; `None` on anything else.
fn read_one_bulk(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut input = Vec::new();
    let mut chunk = [0u8; 4096];
    // Bounded: INFO is a few KiB; give up past 1 MiB.
    while input.len() < 1 << 20 {
        if let Some(end) = input.windows(2).position(|w| w == b"\r\n") {
            if input.first() != Some(&b'$') {
                return None;
            }
            let len: usize = std::str::from_utf8(&input[1..end]).ok()?.parse().ok()?;
            if input.len() >= end + 2 + len + 2 {
                return Some(input[end + 2..end + 2 + len].to_vec());
            }
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        input.extend_from_slice(&chunk[..n]);
    }
    None
}

/// A raw RESP connection for byte-exact tests.
pub struct RawConnection {
    /// The socket.
    pub stream: TcpStream,
    input: Vec<u8>,
}

impl RawConnection {
    /// Connects to `addr` with a 10 s read timeout.
    pub fn open(addr: SocketAddr) -> RawConnection {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        RawConnection {
            stream,
            input: Vec::new(),
        }
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends a command as an array of bulk strings.
    pub fn send_command(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        ketch::kv::resp::encode_request(&mut out, args);
        self.send(&out);
    }

    /// Reads one whole reply and returns its exact bytes. Panics on timeout or close.
    pub fn read_reply_bytes(&mut self) -> Vec<u8> {
        let parser = ketch::kv::resp::ReplyParser::new(ketch::kv::resp::Limits::default());
        self.read_parsed(|input| {
            let parsed = parser.parse(input).expect("a valid reply");
            parsed.map(|(_, used)| used)
        })
    }

    /// As [`RawConnection::read_reply_bytes`], for a reply of any RESP3 type (maps, sets,
    /// verbatim strings, nulls) as well as RESP2's.
    pub fn read_resp3_reply_bytes(&mut self) -> Vec<u8> {
        let parser = ketch::kv::resp::Resp3Parser::new(ketch::kv::resp::Limits::default());
        self.read_parsed(|input| {
            let parsed = parser.parse(input).expect("a valid reply");
            parsed.map(|(_, used)| used)
        })
    }

    /// Reads until `whole` finds a complete reply at the start of the input (the bytes it
    /// takes), and returns those bytes. Panics on timeout or close.
    fn read_parsed(&mut self, whole: impl Fn(&[u8]) -> Option<usize>) -> Vec<u8> {
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(used) = whole(&self.input) {
                return self.input.drain(..used).collect();
            }
            let n = self.stream.read(&mut chunk).expect("read a reply");
            assert!(n > 0, "connection closed while waiting for a reply");
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and returns its reply's bytes.
    pub fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send_command(args);
        self.read_reply_bytes()
    }

    /// True if the node closes the connection within the read timeout (after any bytes).
    pub fn closed_by_peer(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Bytes received but not yet returned as a reply.
    pub fn pending_input(&self) -> &[u8] {
        &self.input
    }
}

/// Registers a process this test did not spawn itself (e.g. a node started by `ketch
/// cluster`) so that the watchdog kills it too.
pub fn register_pid(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// Kills the registered pids in `pids` with SIGKILL (ignoring ones already gone).
pub fn kill_pids(pids: &[u32]) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

/// Unregisters a pid once its process is reaped (pids are reused).
pub fn forget_pid(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
}

/// A real `redis-server` child on a free loopback port, with persistence off (`--save ''
/// --appendonly no`), killed (SIGKILL) on drop and by the [`watchdog`]. The reference the
/// compatibility suite compares Ketch with.
pub struct RedisServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its working directory (it writes nothing there with persistence off).
    dir: tempfile::TempDir,
    child: Child,
}

impl RedisServer {
    /// True if `redis-server --version` runs.
    pub fn available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts `redis-server` and waits (up to 10 s) until it answers PING.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_consecutive_ports(1);
        let log = std::fs::File::create(dir.path().join("redis.log")).expect("redis log");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        register_pid(child.id());
        let server = RedisServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(server.addr) {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} does not answer PING within 10 s:\n{}",
                server.addr,
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        forget_pid(self.child.id());
    }
}

/// What [`run_tool`] saw of a tool's run.
pub struct ToolRun {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Runs `program` with `args` (no stdin), killing it past `limit`; `Err` if it cannot be
/// started (not installed). Its output goes through files, so a chatty tool cannot block on
/// a full pipe while the test waits for it.
pub fn run_tool(program: &str, args: &[String], limit: Duration) -> std::io::Result<ToolRun> {
    let dir = tempfile::tempdir()?;
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()?;
    register_pid(child.id());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            forget_pid(child.id());
            panic!(
                "{program} {args:?} still running after {limit:?}; output so far:\n{}\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    forget_pid(child.id());
    Ok(ToolRun {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    })
}

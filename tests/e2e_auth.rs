//! Client authentication and ACLs on real `ketch serve` processes: `--requirepass`,
//! `--requirepass-file` and `--acl-file`, with the replies compared byte for byte against a
//! real `redis-server` given the same password or ACL file (when `redis-server` is
//! installed; the key replies are also asserted as exact bytes, so the test checks something
//! without it), the ACL checks made on a follower before it forwards, the bound on failed
//! attempts, and redis-cli (`-a`, `--user --pass`) and redis-py (`password=`, `username=`)
//! as clients. redis-cli and redis-py parts are skipped with a notice when missing, unless
//! `KETCH_REQUIRE_REDIS_TOOLS` is set.
//!
//! Reproduce with `cargo test --release --test e2e_auth -- --nocapture` (with
//! `KETCH_PYTHON=target/compat-venv/bin/python` for the redis-py part).

#[path = "e2e/support.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ketch::cli::local_cluster::parse_leader_view;
use support::{free_consecutive_ports, RawConnection, RedisServer, TestCluster};

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const HELLO_NOAUTH: &str = "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";

fn required() -> bool {
    std::env::var_os("KETCH_REQUIRE_REDIS_TOOLS").is_some()
}

/// A `redis-server` started with extra arguments (a password, an ACL file), killed on drop.
struct Reference {
    addr: SocketAddr,
    child: Child,
}

impl Reference {
    /// `None` (with a notice) if redis-server is not installed.
    fn start(extra: &[&str], dir: &Path) -> Option<Reference> {
        if !RedisServer::available() {
            assert!(
                !required(),
                "KETCH_REQUIRE_REDIS_TOOLS is set but redis-server is missing"
            );
            eprintln!("NOTICE: redis-server is not installed: replies are not compared with it");
            return None;
        }
        let port = free_consecutive_ports(1);
        let log = std::fs::File::create(dir.join("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        support::register_pid(child.id());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "redis-server does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Reference { addr, child })
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        support::forget_pid(self.child.id());
    }
}

/// A cluster of `count` nodes, each with `flags`, started; waits for a leader, asking with
/// `AUTH auth...`. Returns it and the leader's id.
fn start_cluster(count: usize, flags: &[String], auth: &[&str]) -> (TestCluster, u64) {
    let mut cluster = TestCluster::new_stopped(count, None);
    for id in 1..=count as u64 {
        cluster.extra_args.insert(id, flags.to_vec());
        cluster.spawn(id);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = cluster
            .nodes
            .iter()
            .find(|node| role(node.client_addr, auth).as_deref() == Some("leader"))
            .map(|node| node.id);
        if let Some(leader) = leader {
            return (cluster, leader);
        }
        assert!(
            Instant::now() < deadline,
            "no leader in 30 s\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The node's Raft role, read through an authenticated connection.
fn role(addr: SocketAddr, auth: &[&str]) -> Option<String> {
    // Listening yet? (RawConnection panics if not.)
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    let mut conn = RawConnection::open(addr);
    let mut words: Vec<&[u8]> = vec![b"AUTH"];
    words.extend(auth.iter().map(|w| w.as_bytes()));
    if conn.call(&words) != b"+OK\r\n" {
        return None;
    }
    let info = conn.call(&[b"INFO", b"replication"]);
    Some(parse_leader_view(&String::from_utf8_lossy(&info)).role)
}

/// Replaces HELLO's client id (`$2\r\nid\r\n:N\r\n`), which differs between servers.
fn without_id(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply).into_owned();
    match text.find("$2\r\nid\r\n:") {
        Some(at) => {
            let start = at + "$2\r\nid\r\n:".len();
            let end = start + text[start..].find("\r\n").unwrap();
            format!("{}N{}", &text[..start], &text[end..])
        }
        None => text,
    }
}

/// Sends `words` and reads the reply; `HELLO 3`'s RESP3 map is read raw (the test
/// connection parses RESP2 only), up to its last field or an error line.
fn call(conn: &mut RawConnection, words: &[&[u8]]) -> Vec<u8> {
    let resp3 = words.len() >= 2 && words[0].eq_ignore_ascii_case(b"HELLO") && words[1] == b"3";
    if !resp3 {
        return conn.call(words);
    }
    conn.send_command(words);
    let mut reply = conn.pending_input().to_vec();
    assert!(reply.is_empty(), "bytes left over before HELLO 3");
    let mut chunk = [0u8; 4096];
    // Bounded: a HELLO reply is about 120 bytes.
    while reply.len() < 4096 {
        let error_line = reply.first() == Some(&b'-') && reply.ends_with(b"\r\n");
        if error_line || reply.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
            return reply;
        }
        let n = std::io::Read::read(&mut conn.stream, &mut chunk).expect("read HELLO's reply");
        assert!(n > 0, "closed while reading HELLO's reply");
        reply.extend_from_slice(&chunk[..n]);
    }
    panic!(
        "HELLO's reply does not end: {}",
        String::from_utf8_lossy(&reply)
    );
}

type Script<'a> = &'a [(&'a [&'a str], Option<&'a str>)];

/// Runs `script` on one new connection to `ketch` (and to `redis`, if any): each reply must
/// equal Redis' (HELLO's id aside) and the expected bytes where given.
fn run_script(ketch: SocketAddr, redis: Option<SocketAddr>, script: Script<'_>) {
    let mut k = RawConnection::open(ketch);
    let mut r = redis.map(RawConnection::open);
    for (words, expected) in script {
        let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        let got = without_id(&call(&mut k, &words));
        if let Some(expected) = expected {
            assert_eq!(got, *expected, "ketch's reply to {words:?}");
        }
        if let Some(r) = r.as_mut() {
            let reference = without_id(&call(r, &words));
            assert_eq!(got, reference, "ketch and redis-server differ on {words:?}");
        }
    }
}

fn hello_map(proto: u8) -> String {
    let head = if proto == 3 { "%7" } else { "*14" };
    format!("{head}\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:N\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n")
}

#[test]
fn requirepass_answers_like_redis_and_bounds_failures() {
    let done = support::watchdog("requirepass", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "pw\n").unwrap();
    let flags = vec![
        "--requirepass-file".to_string(),
        password_file.display().to_string(),
    ];
    let (cluster, leader) = start_cluster(1, &flags, &["pw"]);
    let redis = Reference::start(&["--requirepass", "pw"], dir.path());
    let ketch = cluster.node(leader).client_addr;
    let redis_addr = redis.as_ref().map(|r| r.addr);
    let hello3 = hello_map(3);
    let hello2 = hello_map(2);
    run_script(
        ketch,
        redis_addr,
        &[
            (&["GET", "k"], Some(NOAUTH)),
            (&["PING"], Some(NOAUTH)),
            (&["LPUSH", "l", "x"], Some(NOAUTH)),
            (&["CLIENT", "KILL", "x"], Some(NOAUTH)),
            (
                &["NOSUCH", "x"],
                Some("-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"),
            ),
            (
                &["GET"],
                Some("-ERR wrong number of arguments for 'get' command\r\n"),
            ),
            (
                &["CLIENT"],
                Some("-ERR wrong number of arguments for 'client' command\r\n"),
            ),
            (&["HELLO", "3"], Some(HELLO_NOAUTH)),
            (&["HELLO"], Some(HELLO_NOAUTH)),
            (
                &["HELLO", "4"],
                Some("-NOPROTO unsupported protocol version\r\n"),
            ),
            (&["HELLO", "3", "AUTH", "default", "bad"], Some(WRONGPASS)),
            (
                &["HELLO", "3", "AUTH", "default"],
                Some("-ERR Syntax error in HELLO option 'AUTH'\r\n"),
            ),
            // SETNAME applies even though the HELLO is refused (Redis 7.0.15).
            (&["HELLO", "3", "SETNAME", "early"], Some(HELLO_NOAUTH)),
            (
                &["AUTH"],
                Some("-ERR wrong number of arguments for 'auth' command\r\n"),
            ),
            (&["AUTH", "a", "b", "c"], Some("-ERR syntax error\r\n")),
            (&["AUTH", "bad"], Some(WRONGPASS)),
            (&["AUTH", "bob", "pw"], Some(WRONGPASS)),
            (&["AUTH", "pw"], Some("+OK\r\n")),
            (&["CLIENT", "GETNAME"], Some("$5\r\nearly\r\n")),
            (&["SET", "k", "v"], Some("+OK\r\n")),
            (&["AUTH", "bad"], Some(WRONGPASS)),
            (&["GET", "k"], Some("$1\r\nv\r\n")),
            (&["AUTH", "default", "pw"], Some("+OK\r\n")),
        ],
    );
    run_script(
        ketch,
        redis_addr,
        &[
            (
                &["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "nm"],
                Some(&hello3),
            ),
            (&["CLIENT", "GETNAME"], Some("$2\r\nnm\r\n")),
            (&["GET", "k"], Some("$1\r\nv\r\n")),
            (&["HELLO", "2"], Some(&hello2)),
        ],
    );
    run_script(
        ketch,
        redis_addr,
        &[
            // Authenticated, though the bad name is refused.
            (
                &["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "a b"],
                Some(
                    "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
                ),
            ),
            (&["PING"], Some("+PONG\r\n")),
        ],
    );

    // CLIENT LIST shows the user.
    let mut conn = RawConnection::open(ketch);
    assert_eq!(conn.call(&[b"AUTH", b"pw"]), b"+OK\r\n");
    let list = String::from_utf8(conn.call(&[b"CLIENT", b"LIST"])).unwrap();
    assert!(list.contains(" user=default "), "{list}");

    // At most AUTH_FAILURES_MAX failures per connection, then the next request closes it.
    let mut guesser = RawConnection::open(ketch);
    for attempt in 0..ketch::kv::server::AUTH_FAILURES_MAX {
        let guess = format!("guess-{attempt}");
        assert_eq!(
            guesser.call(&[b"AUTH", guess.as_bytes()]),
            WRONGPASS.as_bytes()
        );
    }
    assert_eq!(
        guesser.call(&[b"AUTH", b"pw"]),
        b"-ERR too many failed authentication attempts on this connection; closing it\r\n"
    );
    assert!(guesser.closed_by_peer());
    // Other connections are not affected; the log names the client and the user, never
    // the password.
    let mut other = RawConnection::open(ketch);
    assert_eq!(other.call(&[b"AUTH", b"pw"]), b"+OK\r\n");
    let log = std::fs::read_to_string(&cluster.node(leader).log_path).unwrap();
    assert!(
        log.contains("authentication failed for user \"default\""),
        "{log}"
    );
    assert!(log.contains("127.0.0.1:"), "{log}");
    assert!(!log.contains("guess-3"), "a password reached the log");

    redis_cli(ketch, &["-a", "pw", "SET", "cli", "from-cli"], "OK");
    redis_cli(ketch, &["-a", "pw", "GET", "cli"], "from-cli");
    redis_cli(ketch, &["GET", "cli"], "NOAUTH Authentication required.");
    redis_py(
        ketch,
        "r = redis.Redis(host=HOST, port=PORT, password='pw')\n\
         r.set('py', 'from-py')\n\
         print(r.get('py').decode())\n\
         r3 = redis.Redis(host=HOST, port=PORT, password='pw', protocol=3)\n\
         print(r3.get('cli').decode())\n\
         try:\n    redis.Redis(host=HOST, port=PORT, password='bad').ping()\n\
         except redis.exceptions.AuthenticationError as e:\n    print('refused', e)\n",
        &[
            "from-py",
            "from-cli",
            "refused invalid username-password pair or user is disabled.",
        ],
    );
    done.store(true, Ordering::Release);
}

#[test]
fn acl_users_are_checked_on_the_node_they_use_before_forwarding() {
    let done = support::watchdog("acl", Duration::from_secs(150));
    let dir = tempfile::tempdir().unwrap();
    let acl_path = dir.path().join("users.acl");
    let writer_hash: String = ketch::kv::acl::password_digest(b"wpass")
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    std::fs::write(
        &acl_path,
        format!(
            "user default off\n\
             user reader on >rpass ~app:* +@read\n\
             user writer on #{writer_hash} ~app:* +@read +@write -flushall\n\
             user admin on >apass allkeys +@all\n\
             user gone off >x allkeys +@all\n"
        ),
    )
    .unwrap();
    let flags = vec!["--acl-file".to_string(), acl_path.display().to_string()];
    let (cluster, leader) = start_cluster(3, &flags, &["admin", "apass"]);
    let follower = cluster.follower_of(leader);
    let acl_arg = acl_path.display().to_string();
    let redis = Reference::start(&["--aclfile", &acl_arg], dir.path());
    let redis_addr = redis.as_ref().map(|r| r.addr);
    let keys_refused = Some(
        "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n",
    );
    // On a follower: every check is made there, the allowed writes are forwarded.
    let ketch = cluster.node(follower).client_addr;
    run_script(
        ketch,
        redis_addr,
        &[
            (&["GET", "app:x"], Some(NOAUTH)),
            (&["HELLO", "3"], Some(HELLO_NOAUTH)),
            (&["AUTH", "anything"], Some(WRONGPASS)),
            (&["AUTH", "gone", "x"], Some(WRONGPASS)),
            (&["AUTH", "reader", "wpass"], Some(WRONGPASS)),
            (&["AUTH", "reader", "rpass"], Some("+OK\r\n")),
            (&["GET", "app:x"], Some("$-1\r\n")),
            (&["GET", "other:x"], keys_refused),
            (&["MGET", "app:1", "b"], keys_refused),
            (
                &["SET", "app:x", "1"],
                Some("-NOPERM this user has no permissions to run the 'set' command\r\n"),
            ),
            (
                &["SET", "app:x"],
                Some("-ERR wrong number of arguments for 'set' command\r\n"),
            ),
            (
                &["CLIENT", "LIST"],
                Some("-NOPERM this user has no permissions to run the 'client|list' command\r\n"),
            ),
            (
                &["PING"],
                Some("-NOPERM this user has no permissions to run the 'ping' command\r\n"),
            ),
            (
                &["INFO"],
                Some("-NOPERM this user has no permissions to run the 'info' command\r\n"),
            ),
            (
                &["NOSUCH"],
                Some("-ERR unknown command 'NOSUCH', with args beginning with: \r\n"),
            ),
            (&["DBSIZE"], Some(":0\r\n")),
            (&["AUTH", "writer", "wpass"], Some("+OK\r\n")),
            (&["SET", "app:x", "1"], Some("+OK\r\n")),
            (&["GET", "app:x"], Some("$1\r\n1\r\n")),
            (&["SET", "other:x", "1"], keys_refused),
            (&["MSET", "app:1", "a", "app:2", "b"], Some("+OK\r\n")),
            (&["MSET", "app:3", "a", "b", "c"], keys_refused),
            (
                &["FLUSHALL"],
                Some("-NOPERM this user has no permissions to run the 'flushall' command\r\n"),
            ),
            (
                &["CLIENT", "ID"],
                Some("-NOPERM this user has no permissions to run the 'client|id' command\r\n"),
            ),
            (&["DEL", "app:1", "app:2"], Some(":2\r\n")),
            (&["AUTH", "admin", "apass"], Some("+OK\r\n")),
            (&["GET", "app:x"], Some("$1\r\n1\r\n")),
            (&["SET", "other:x", "2"], Some("+OK\r\n")),
            (&["DBSIZE"], Some(":2\r\n")),
        ],
    );
    // Ketch's own commands: admin only; CLIENT LIST shows the user.
    let mut reader = RawConnection::open(ketch);
    assert_eq!(reader.call(&[b"AUTH", b"reader", b"rpass"]), b"+OK\r\n");
    assert_eq!(
        reader.call(&[b"KETCH.MEMBERS"]),
        b"-NOPERM this user has no permissions to run the 'ketch.members' command\r\n"
    );
    let mut admin = RawConnection::open(ketch);
    assert_eq!(admin.call(&[b"AUTH", b"admin", b"apass"]), b"+OK\r\n");
    assert!(admin.call(&[b"KETCH.MEMBERS"]).starts_with(b"*"));
    let list = String::from_utf8(admin.call(&[b"CLIENT", b"LIST"])).unwrap();
    assert!(
        list.contains(" user=reader ") && list.contains(" user=admin "),
        "{list}"
    );
    // The writes a follower let through are on the leader.
    let mut on_leader = RawConnection::open(cluster.node(leader).client_addr);
    assert_eq!(on_leader.call(&[b"AUTH", b"admin", b"apass"]), b"+OK\r\n");
    assert_eq!(on_leader.call(&[b"GET", b"other:x"]), b"$1\r\n2\r\n");

    redis_cli(
        ketch,
        &["--user", "reader", "--pass", "rpass", "GET", "app:x"],
        "1",
    );
    redis_cli(
        ketch,
        &["--user", "reader", "--pass", "rpass", "SET", "app:x", "2"],
        "NOPERM this user has no permissions to run the 'set' command",
    );
    redis_py(
        ketch,
        "r = redis.Redis(host=HOST, port=PORT, username='writer', password='wpass')\n\
         r.set('app:py', 'w')\n\
         print(r.get('app:py').decode())\n\
         try:\n    r.get('other:x')\n\
         except redis.exceptions.NoPermissionError as e:\n    print('refused', e)\n\
         r3 = redis.Redis(host=HOST, port=PORT, username='reader', password='rpass', protocol=3)\n\
         print(r3.get('app:py').decode())\n",
        &[
            "w",
            "refused this user has no permissions to access one of the keys used as arguments",
            "w",
        ],
    );
    done.store(true, Ordering::Release);
}

#[test]
fn bad_auth_flags_stop_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_consecutive_ports(2);
    let serve = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ketch"))
            .args(["serve", "--id", "1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--cluster", &format!("1=127.0.0.1:{port}")])
            .args(["--client-addr", &format!("127.0.0.1:{}", port + 1)])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run ketch serve");
        assert!(!output.status.success(), "{extra:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let acl = dir.path().join("users.acl");
    std::fs::write(&acl, "user a on >x +@all\nuser b on ~k:* +get resetpass\n").unwrap();
    let acl_arg = acl.display().to_string();
    let said = serve(&["--acl-file", &acl_arg]);
    assert!(
        said.contains(&format!("{acl_arg}:2:")) && said.contains("`resetpass`"),
        "{said}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let empty_arg = empty.display().to_string();
    let said = serve(&["--requirepass-file", &empty_arg]);
    assert!(
        said.contains(&empty_arg) && said.contains("empty"),
        "{said}"
    );
    let missing = dir.path().join("missing").display().to_string();
    let said = serve(&["--requirepass-file", &missing]);
    assert!(said.contains(&missing), "{said}");
    let said = serve(&["--requirepass", "a", "--acl-file", &acl_arg]);
    assert!(said.contains("cannot be used with"), "{said}");
}

/// Runs redis-cli against `addr` and checks its output's first line; skipped (with a
/// notice) without redis-cli.
fn redis_cli(addr: SocketAddr, args: &[&str], expected: &str) {
    let output = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "--no-auth-warning",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            assert!(
                !required(),
                "KETCH_REQUIRE_REDIS_TOOLS is set but redis-cli fails: {e}"
            );
            eprintln!("NOTICE: redis-cli does not run ({e}): skipped");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().next().unwrap_or(""),
        expected,
        "redis-cli {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a redis-py snippet (with `redis` imported, `HOST` and `PORT` set) and checks its
/// output lines; skipped (with a notice) without `KETCH_PYTHON`.
fn redis_py(addr: SocketAddr, body: &str, expected: &[&str]) {
    let Ok(python) = std::env::var("KETCH_PYTHON") else {
        assert!(
            !required(),
            "KETCH_REQUIRE_REDIS_TOOLS is set but KETCH_PYTHON is not"
        );
        eprintln!("NOTICE: KETCH_PYTHON is not set: the redis-py part is skipped");
        return;
    };
    let script = format!(
        "import redis\nHOST = '127.0.0.1'\nPORT = {}\n{body}",
        addr.port()
    );
    let output = Command::new(&python)
        .args(["-B", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("run KETCH_PYTHON");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "redis-py failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stdout}");
}

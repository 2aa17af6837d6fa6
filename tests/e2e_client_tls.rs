//! Client TLS end to end: real `ketch serve` processes with `--tls-client-addr`, certificates
//! made by the test with rcgen (a CA, a server certificate for `localhost` / `127.0.0.1`,
//! client certificates from that CA and from a CA nobody trusts), and real clients:
//! `redis-cli --tls`, redis-py with `ssl=True`, and a rustls client for byte-exact checks.
//!
//! - A 3-node cluster with TLS on every node: redis-cli SET through a follower and GET from
//!   the leader; a 16 MiB value through a follower read back from every node; 1,000
//!   pipelined SETs in one write; 3,000 pipelined GETs of 4 KiB values left unread for a
//!   while (the connection is paused by backpressure with requests still inside TLS, then
//!   resumed: every reply arrives, in order); RESP3 after `HELLO 3`; `CONFIG GET tls-port`;
//!   a plaintext client on the TLS port is closed, logged with its address, while a TLS
//!   connection opened before it keeps working; redis-py over TLS.
//! - A 3-node cluster with `--tls-client-ca`: clients without a certificate, or with one from
//!   another CA, are refused; with the CA's certificate redis-cli and the rustls client work.
//! - One node with `--client-addr off`: nothing listens on its plaintext port, TLS serves,
//!   `CONFIG GET port` and INFO's `tcp_port` say 0. Bad TLS command lines and files fail at
//!   start with the flag or the file named.
//!
//! redis-cli and redis-py are skipped with a notice when absent (`KETCH_PYTHON` names the
//! Python with redis-py), unless `KETCH_REQUIRE_REDIS_TOOLS` is set (CI sets it). Reproduce
//! with `KETCH_PYTHON=target/compat-venv/bin/python cargo test --release --test
//! e2e_client_tls -- --nocapture`.

#[path = "e2e/support.rs"]
mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketch::kv::resp::{encode_request, Limits, Resp3Parser};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use support::{RawConnection, TestCluster};

/// The certificates and keys of a test, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A client certificate signed by a CA the servers do not trust.
    rogue_cert: PathBuf,
    rogue_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.self_signed(&key).expect("CA certificate"), key)
}

fn leaf(
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
    issuer: &(rcgen::Certificate, KeyPair),
) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, "ketch test");
    params.extended_key_usages = vec![purpose];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params
        .signed_by(&key, &issuer.0, &issuer.1)
        .expect("sign a leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        let authority = ca("ketch test CA");
        let rogue_authority = ca("someone else's CA");
        let (server_cert, server_key) = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &authority,
        );
        let (client_cert, client_key) = leaf(&[], ExtendedKeyUsagePurpose::ClientAuth, &authority);
        let (rogue_cert, rogue_key) =
            leaf(&[], ExtendedKeyUsagePurpose::ClientAuth, &rogue_authority);
        Pki {
            ca: write("ca.pem", &authority.0.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            rogue_cert: write("rogue.pem", &rogue_cert),
            rogue_key: write("rogue.key", &rogue_key),
            dir,
        }
    }

    /// `ketch serve` arguments for a TLS listener on `addr`.
    fn serve_args(&self, addr: SocketAddr, client_ca: bool) -> Vec<String> {
        let mut args = vec![
            "--tls-client-addr".to_string(),
            addr.to_string(),
            "--tls-cert".to_string(),
            path_text(&self.server_cert),
            "--tls-key".to_string(),
            path_text(&self.server_key),
        ];
        if client_ca {
            args.extend(["--tls-client-ca".to_string(), path_text(&self.ca)]);
        }
        args
    }

    /// A rustls client configuration trusting the test CA, presenting `identity` (cert, key).
    fn client_config(&self, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let ca_pem = std::fs::read(&self.ca).unwrap();
        for cert in rustls_pemfile_certs(&ca_pem) {
            roots.add(cert).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls_pemfile_certs(&std::fs::read(cert).unwrap());
                let key =
                    rustls::pki_types::PrivateKeyDer::from_pem_slice(&std::fs::read(key).unwrap())
                        .unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        };
        Arc::new(config)
    }
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// A blocking RESP client over rustls, for byte-exact checks.
struct TlsClient {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    input: Vec<u8>,
}

impl TlsClient {
    /// Connects and completes the handshake (as far as the client can tell: with TLS 1.3 a
    /// refused client certificate shows at the first read).
    fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> io::Result<TlsClient> {
        let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        socket.set_read_timeout(Some(Duration::from_secs(20)))?;
        socket.set_write_timeout(Some(Duration::from_secs(20)))?;
        socket.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut socket = socket;
        while conn.is_handshaking() {
            conn.complete_io(&mut socket)?;
        }
        Ok(TlsClient {
            stream: rustls::StreamOwned::new(conn, socket),
            input: Vec::new(),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    fn send_command(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut out = Vec::new();
        encode_request(&mut out, args);
        self.send(&out)
    }

    /// One whole reply's bytes (RESP2 or RESP3).
    fn read_reply_bytes(&mut self) -> io::Result<Vec<u8>> {
        let parser = Resp3Parser::new(Limits::default());
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match parser.parse(&self.input) {
                Ok(Some((_, used))) => return Ok(self.input.drain(..used).collect()),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads `len` bytes, pausing 1 ms after every read: a slow reader that keeps the
    /// server's socket full, so the server's last records wait in TLS for a writable event.
    fn read_slowly(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut chunk = vec![0u8; 16 << 10];
        while self.input.len() < len {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.input.extend_from_slice(&chunk[..n]);
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(self.input.drain(..len).collect())
    }

    fn call(&mut self, args: &[&[u8]]) -> io::Result<Vec<u8>> {
        self.send_command(args)?;
        self.read_reply_bytes()
    }
}

/// `$<len>\r\n<value>\r\n`.
fn bulk(value: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", value.len()).into_bytes();
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    out
}

/// Waits until `addr` answers PING over TLS.
fn wait_tls_ready(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pong = TlsClient::connect(addr, Arc::clone(config))
            .and_then(|mut c| c.call(&[b"PING"]))
            .is_ok_and(|reply| reply == b"+PONG\r\n");
        if pong {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} does not answer PING over TLS\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the test may use an external tool: `Ok(())`, or `Err(why)` to skip. Fails if
/// `KETCH_REQUIRE_REDIS_TOOLS` is set and the tool is missing.
fn tool_or_skip(available: Result<(), String>) -> bool {
    match available {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var_os("KETCH_REQUIRE_REDIS_TOOLS").is_none(),
                "KETCH_REQUIRE_REDIS_TOOLS is set but {why}"
            );
            eprintln!("SKIPPED part: {why}; see tests/README.md");
            false
        }
    }
}

/// `redis-cli` that speaks TLS, if installed.
fn redis_cli_with_tls() -> Result<(), String> {
    let output = Command::new("redis-cli")
        .arg("--help")
        .output()
        .map_err(|e| format!("redis-cli does not run ({e}; apt-get install redis-tools)"))?;
    let help = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    if help.contains("--tls") {
        Ok(())
    } else {
        Err("redis-cli is built without TLS".to_string())
    }
}

/// Runs `redis-cli` against a TLS port with the test CA (and `extra` arguments).
fn redis_cli(pki: &Pki, addr: SocketAddr, extra: &[&str], command: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(["--tls", "--cacert", &path_text(&pki.ca)])
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(extra)
        .args(command)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli")
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A 3-node cluster with TLS on every node (plaintext too, for the harness).
fn tls_cluster(pki: &Pki, client_ca: bool) -> (TestCluster, Vec<SocketAddr>) {
    let mut cluster = TestCluster::new_stopped(3, None);
    let base = support::free_consecutive_ports(3);
    let tls_addrs: Vec<SocketAddr> = (0..3)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], base + i)))
        .collect();
    for id in 1..=3u64 {
        let args = pki.serve_args(tls_addrs[(id - 1) as usize], client_ca);
        cluster.extra_args.insert(id, args);
        cluster.spawn(id);
    }
    cluster.wait_ready(Duration::from_secs(30));
    (cluster, tls_addrs)
}

#[test]
fn tls_on_every_node_serves_clients_like_plaintext() {
    let done = support::watchdog("tls_every_node", Duration::from_secs(240));
    let pki = Pki::generate();
    let (cluster, tls_addrs) = tls_cluster(&pki, false);
    let tls = |id: u64| tls_addrs[(id - 1) as usize];
    let config = pki.client_config(None);
    for &addr in &tls_addrs {
        wait_tls_ready(addr, &config, || cluster.logs());
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let follower = cluster.follower_of(leader);
    let connect = |id: u64| {
        TlsClient::connect(tls(id), Arc::clone(&config))
            .unwrap_or_else(|e| panic!("TLS connect to node {id}: {e}\n{}", cluster.logs()))
    };

    // redis-cli: written through a follower, read from the leader (and over plaintext).
    if tool_or_skip(redis_cli_with_tls()) {
        let set = redis_cli(&pki, tls(follower), &[], &["SET", "tls:cli", "hello"]);
        assert_eq!(stdout_of(&set), "OK", "{set:?}\n{}", cluster.logs());
        let get = redis_cli(&pki, tls(leader), &[], &["GET", "tls:cli"]);
        assert_eq!(stdout_of(&get), "hello", "{get:?}");
        let mut plain = RawConnection::open(cluster.node(leader).client_addr);
        assert_eq!(plain.call(&[b"GET", b"tls:cli"]), bulk(b"hello"));
    }

    // A 16 MiB value through a follower, read back over TLS from every node.
    let big: Vec<u8> = (0..16usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    let mut client = connect(follower);
    assert_eq!(
        client.call(&[b"SET", b"tls:big", &big]).unwrap(),
        b"+OK\r\n",
        "{}",
        cluster.logs()
    );
    for id in 1..=3 {
        let reply = connect(id).call(&[b"GET", b"tls:big"]).unwrap();
        assert!(reply == bulk(&big), "node {id}: the 16 MiB value differs");
    }

    // A slow reader of the 16 MiB value: the reply is sent to the last byte.
    let mut slow = connect(leader);
    slow.send_command(&[b"GET", b"tls:big"]).unwrap();
    let expected = bulk(&big);
    let reply = slow
        .read_slowly(expected.len())
        .unwrap_or_else(|e| panic!("a slow reader of 16 MiB: {e}\n{}", cluster.logs()));
    assert!(reply == expected, "the slowly read 16 MiB value differs");

    // 1,000 pipelined SETs in one write.
    let mut pipeline = Vec::new();
    for i in 0..1000 {
        encode_request(
            &mut pipeline,
            &[b"SET", format!("tls:p{i}").as_bytes(), b"v"],
        );
    }
    let mut client = connect(leader);
    client.send(&pipeline).unwrap();
    for i in 0..1000 {
        assert_eq!(client.read_reply_bytes().unwrap(), b"+OK\r\n", "reply {i}");
    }

    // 3,000 pipelined GETs of a 4 KiB value (12 MiB of replies, past the 1 MiB output and
    // 1,024 reply bounds), not read for a while: the server stops reading with requests
    // still in the socket and in TLS, and must resume by itself once the client reads.
    let value = vec![b'x'; 4096];
    assert_eq!(
        client.call(&[b"SET", b"tls:4k", &value]).unwrap(),
        b"+OK\r\n"
    );
    let mut gets = Vec::new();
    for _ in 0..3000 {
        encode_request(&mut gets, &[&b"GET"[..], b"tls:4k"]);
    }
    client.send(&gets).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let expected = bulk(&value);
    for i in 0..3000 {
        let reply = client
            .read_reply_bytes()
            .unwrap_or_else(|e| panic!("GET {i} of 3000: {e}\n{}", cluster.logs()));
        assert!(
            reply == expected,
            "GET {i} of 3000 answered {} bytes",
            reply.len()
        );
    }
    assert_eq!(client.call(&[b"PING"]).unwrap(), b"+PONG\r\n");

    // RESP3 over TLS, and the TLS port in CONFIG GET.
    let mut resp3 = connect(follower);
    let hello = resp3.call(&[b"HELLO", b"3"]).unwrap();
    assert_eq!(
        hello.first(),
        Some(&b'%'),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    assert_eq!(resp3.call(&[b"GET", b"tls:missing"]).unwrap(), b"_\r\n");
    let port = tls(follower).port().to_string();
    let mut expected = b"%1\r\n".to_vec();
    expected.extend(bulk(b"tls-port"));
    expected.extend(bulk(port.as_bytes()));
    assert_eq!(
        resp3.call(&[b"CONFIG", b"GET", b"tls-port"]).unwrap(),
        expected
    );

    // A plaintext client on the TLS port is closed, logged with its address; a TLS
    // connection opened before it goes on.
    let mut before = connect(leader);
    assert_eq!(before.call(&[b"PING"]).unwrap(), b"+PONG\r\n");
    let mut plaintext = RawConnection::open(tls(leader));
    let plaintext_addr = plaintext.stream.local_addr().unwrap();
    plaintext.send(b"*1\r\n$4\r\nPING\r\n");
    assert!(plaintext.closed_by_peer(), "a plaintext client stays open");
    assert!(
        !plaintext.pending_input().starts_with(b"+PONG"),
        "a plaintext client was answered on the TLS port"
    );
    assert_eq!(
        before.call(&[b"GET", b"tls:cli"]).unwrap().first(),
        Some(&b'$')
    );
    assert_eq!(connect(leader).call(&[b"PING"]).unwrap(), b"+PONG\r\n");
    let logged = format!("TLS connection from {plaintext_addr} closed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&cluster.node(leader).log_path)
        .unwrap_or_default()
        .contains(&logged)
    {
        assert!(
            Instant::now() < deadline,
            "no log line `{logged}`\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // redis-py with ssl=True: SETs in a pipeline, GETs, RESP3.
    if let Some(python) = python_with_redis_py() {
        let script = r#"
import sys, redis
port, ca = int(sys.argv[1]), sys.argv[2]
for protocol in (2, 3):
    r = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca,
                    ssl_cert_reqs="required", protocol=protocol, socket_timeout=20)
    assert r.ping()
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set(f"py:{protocol}:{i}", i)
    assert all(p.execute())
    assert r.get(f"py:{protocol}:199") == b"199"
    assert r.get("tls:cli") in (b"hello", None)
    assert r.get("py:missing") is None
print("redis-py over TLS: ok")
"#;
        let output = Command::new(&python)
            .args(["-c", script, &tls(follower).port().to_string()])
            .arg(&pki.ca)
            .stdin(Stdio::null())
            .output()
            .expect("run python");
        assert!(
            output.status.success(),
            "redis-py over TLS failed: {}\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            cluster.logs()
        );
        eprint!("{}", String::from_utf8_lossy(&output.stdout));
    }
    done.store(true, Ordering::Release);
}

/// The Python of `KETCH_PYTHON` if it imports redis-py; `None` (after the skip rule) if not.
fn python_with_redis_py() -> Option<String> {
    let found = std::env::var("KETCH_PYTHON")
        .map_err(|_| "KETCH_PYTHON is not set (a Python with redis-py)".to_string())
        .and_then(|python| {
            let ok = Command::new(&python)
                .args(["-c", "import redis"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                Ok(python)
            } else {
                Err(format!("KETCH_PYTHON={python} cannot import redis"))
            }
        });
    match found {
        Ok(python) => Some(python),
        Err(why) => {
            tool_or_skip(Err(why));
            None
        }
    }
}

#[test]
fn a_client_ca_requires_client_certificates_from_it() {
    let done = support::watchdog("tls_client_ca", Duration::from_secs(180));
    let pki = Pki::generate();
    let (cluster, tls_addrs) = tls_cluster(&pki, true);
    let with_cert = pki.client_config(Some((&pki.client_cert, &pki.client_key)));
    for &addr in &tls_addrs {
        wait_tls_ready(addr, &with_cert, || cluster.logs());
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let addr = tls_addrs[(leader - 1) as usize];

    let refused = |config: Arc<rustls::ClientConfig>, what: &str| {
        let reply = TlsClient::connect(addr, config).and_then(|mut c| c.call(&[b"PING"]));
        assert!(reply.is_err(), "a client {what} was served: {reply:?}");
    };
    refused(pki.client_config(None), "without a certificate");
    refused(
        pki.client_config(Some((&pki.rogue_cert, &pki.rogue_key))),
        "with an untrusted certificate",
    );

    let mut client = TlsClient::connect(addr, Arc::clone(&with_cert)).unwrap();
    assert_eq!(client.call(&[b"SET", b"mtls", b"yes"]).unwrap(), b"+OK\r\n");
    assert_eq!(client.call(&[b"GET", b"mtls"]).unwrap(), bulk(b"yes"));

    if tool_or_skip(redis_cli_with_tls()) {
        let no_cert = redis_cli(&pki, addr, &[], &["GET", "mtls"]);
        assert_ne!(
            stdout_of(&no_cert),
            "yes",
            "redis-cli without a certificate was served"
        );
        let cert = [
            "--cert",
            &path_text(&pki.client_cert),
            "--key",
            &path_text(&pki.client_key),
        ]
        .map(str::to_string);
        let cert: Vec<&str> = cert.iter().map(String::as_str).collect();
        let get = redis_cli(&pki, addr, &cert, &["GET", "mtls"]);
        assert_eq!(stdout_of(&get), "yes", "{get:?}\n{}", cluster.logs());
    }
    // The refusals are logged with their reason, and the node serves on.
    let log = std::fs::read_to_string(&cluster.node(leader).log_path).unwrap_or_default();
    assert!(
        log.contains("TLS connection from 127.0.0.1:") && log.contains("certificate"),
        "the refusals are not logged\n{}",
        cluster.logs()
    );
    assert_eq!(client.call(&[b"PING"]).unwrap(), b"+PONG\r\n");
    done.store(true, Ordering::Release);
}

/// One `ketch serve` child, killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        support::forget_pid(self.0.id());
    }
}

fn ketch(args: &[String], log: &Path) -> Process {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_ketch"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn ketch serve");
    support::register_pid(child.id());
    Process(child)
}

/// Runs `ketch serve` expecting it to exit at once; its status code and output.
fn failed_start(args: &[String]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ketch"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ketch serve");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn client_addr_off_leaves_only_tls_and_bad_tls_settings_fail_at_start() {
    let done = support::watchdog("tls_only", Duration::from_secs(120));
    let pki = Pki::generate();
    let base = support::free_consecutive_ports(3);
    let [peer, plain, tls] = [0, 1, 2].map(|i| SocketAddr::from(([127, 0, 0, 1], base + i)));
    let data_dir = pki.dir.path().join("node-1");
    let serve = |client_addr: &str, tls_args: Vec<String>| -> Vec<String> {
        let mut args: Vec<String> = [
            "serve",
            "--id",
            "1",
            "--data-dir",
            &path_text(&data_dir),
            "--cluster",
            &format!("1={peer}"),
            "--client-addr",
            client_addr,
            "-v",
        ]
        .map(str::to_string)
        .to_vec();
        args.extend(tls_args);
        args
    };

    // Bad command lines and files: a clear error, nothing started.
    let (code, text) = failed_start(&serve(
        &plain.to_string(),
        vec!["--tls-client-addr".to_string(), tls.to_string()],
    ));
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("--tls-cert") && text.contains("--tls-key"),
        "{text}"
    );
    let (code, text) = failed_start(&serve("off", vec![]));
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("--tls-client-addr"), "{text}");
    let mut missing = pki.serve_args(tls, false);
    missing[3] = path_text(&pki.dir.path().join("absent.pem"));
    let (code, text) = failed_start(&serve(&plain.to_string(), missing));
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("absent.pem") && text.contains("certificate"),
        "{text}"
    );
    let mut not_a_key = pki.serve_args(tls, false);
    not_a_key[5] = path_text(&pki.ca);
    let (code, text) = failed_start(&serve(&plain.to_string(), not_a_key));
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("ca.pem") && text.contains("private key"),
        "{text}"
    );

    // --client-addr off: TLS only.
    let log = pki.dir.path().join("node-1.log");
    let _node = ketch(&serve("off", pki.serve_args(tls, false)), &log);
    let config = pki.client_config(None);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_tls_ready(tls, &config, logs);
    assert!(
        TcpStream::connect_timeout(&plain, Duration::from_secs(1)).is_err(),
        "something listens on the plaintext port with --client-addr off"
    );
    let mut client = TlsClient::connect(tls, Arc::clone(&config)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = client.call(&[b"SET", b"only", b"tls"]).unwrap();
        if reply == b"+OK\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no leader: {reply:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(client.call(&[b"GET", b"only"]).unwrap(), bulk(b"tls"));
    let mut expected = b"*4\r\n".to_vec();
    for part in [
        &b"port"[..],
        b"0",
        b"tls-port",
        tls.port().to_string().as_bytes(),
    ] {
        expected.extend(bulk(part));
    }
    assert_eq!(
        client.call(&[b"CONFIG", b"GET", b"*port"]).unwrap(),
        expected
    );
    let info = client.call(&[b"INFO", b"server"]).unwrap();
    assert!(
        String::from_utf8_lossy(&info).contains("\r\ntcp_port:0\r\n"),
        "{}",
        String::from_utf8_lossy(&info)
    );
    assert!(logs().contains(&format!("TLS on {tls} only")), "{}", logs());
    done.store(true, Ordering::Release);
}

//! Peer authentication against real `ketch serve` clusters on loopback: a shared secret
//! (`--peer-secret-file`) and mutual TLS (`--peer-cert/--peer-key/--peer-ca`, certificates made
//! here with rcgen), and an attacker who speaks the peer protocol on a raw TCP socket.
//!
//! - `secret_cluster_serves_and_a_wrong_secret_is_refused_and_cannot_join`
//! - `forged_vote_moves_an_open_cluster_but_not_a_secured_one`: the same forged RequestVote
//!   with a huge term, after a handshake that looks right but proves nothing, against an open
//!   cluster (the term jumps: the injection works) and a secured one (nothing changes).
//! - `mtls_cluster_survives_kill9_of_each_node_and_refuses_foreign_and_misnamed_certs`
//!
//! Reproduce with `cargo test --release --test e2e_peer_auth <name> -- --nocapture`.

#[path = "e2e/support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketch::client::{Client, ClientOptions};
use ketch::raft::{Message, MessageBody};
use ketch::wire::message::{
    encode_handshake, encode_message, encode_proof, AuthMode, Handshake, Proof,
};
use support::{test_client_options, watchdog, TestCluster};

/// The term the forged vote claims: far above any term a test cluster reaches.
const FORGED_TERM: u64 = 1 << 40;

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

fn secret_args(path: &Path) -> Vec<String> {
    vec!["--peer-secret-file".to_string(), path.display().to_string()]
}

/// A client of node `id` only.
fn client_of(cluster: &TestCluster, id: u64) -> Client {
    let options = ClientOptions {
        // The map would send commands to the leader rather than this node.
        slot_aware: false,
        ..test_client_options()
    };
    Client::connect_with(&[cluster.node(id).client_addr], options)
        .unwrap_or_else(|e| panic!("connect to node {id}: {e}\n{}", cluster.logs()))
}

fn log_of(cluster: &TestCluster, id: u64) -> String {
    std::fs::read_to_string(&cluster.node(id).log_path).unwrap_or_default()
}

/// Waits until node `id`'s log holds `needle`.
fn wait_log(cluster: &TestCluster, id: u64, needle: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !log_of(cluster, id).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "node {id}'s log never said {needle:?} within {limit:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One node's (id, term, role, leader) as its INFO reports them.
type View = (u64, u64, String, Option<u64>);

/// Every running node's view.
fn views(cluster: &TestCluster, ids: &[u64]) -> Vec<View> {
    ids.iter()
        .filter_map(|&id| cluster.info(id).map(|v| (id, v.term, v.role, v.leader)))
        .collect()
}

/// The forged vote: "node `from`" asks `to` for its vote at [`FORGED_TERM`], as a leadership
/// transfer (which even a follower that hears its leader must not ignore).
fn forged_vote(from: u64, to: u64) -> Vec<u8> {
    let mut frame = Vec::new();
    let vote = Message {
        from,
        to,
        term: FORGED_TERM,
        body: MessageBody::Vote {
            last_log_index: u64::MAX / 2,
            last_log_term: FORGED_TERM,
            leadership_transfer: true,
        },
    };
    encode_message(0, &vote, &mut Vec::new(), &mut frame).expect("encode the forged vote");
    frame
}

/// Connects to `addr`, writes `bytes` and keeps the socket open for a moment (or until the
/// node closes it), as an attacker would.
fn inject(addr: SocketAddr, bytes: &[u8]) {
    let mut socket = TcpStream::connect(addr).expect("connect to the peer port");
    let _ = socket.write_all(bytes);
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut sink = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        match socket.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => {}
        }
    }
}

/// What an attacker without the secret can send to the leader claiming to be `from`: a
/// handshake as a secret-holding peer would send it (its own nonce), a proof it cannot compute
/// (random bytes, sent without waiting for the challenge), then the forged vote; and the same
/// with an unauthenticated handshake.
fn attack(cluster: &TestCluster, leader: u64, from: u64) {
    let cluster_id = cluster.cluster_id();
    let addr = cluster.node(leader).peer_addr;
    let mut bytes = Vec::new();
    let mut hello = Handshake::unauthenticated(cluster_id, from, leader);
    hello.auth = AuthMode::Secret;
    hello.nonce = [0x5a; 32];
    encode_handshake(&hello, &mut bytes).unwrap();
    encode_proof(&Proof { mac: [0xa5; 32] }, &mut bytes).unwrap();
    bytes.extend_from_slice(&forged_vote(from, leader));
    inject(addr, &bytes);
    let mut bytes = Vec::new();
    encode_handshake(
        &Handshake::unauthenticated(cluster_id, from, leader),
        &mut bytes,
    )
    .unwrap();
    bytes.extend_from_slice(&forged_vote(from, leader));
    inject(addr, &bytes);
}

/// Writes `key=value` through a client of the whole cluster; true if acknowledged.
fn set(client: &mut Client, key: &str, value: &str) -> bool {
    client.set(key, value).is_ok()
}

#[test]
fn secret_cluster_serves_and_a_wrong_secret_is_refused_and_cannot_join() {
    let done = watchdog("secret_cluster", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let right = write_file(dir.path(), "secret", "correct horse battery staple\n");
    let wrong = write_file(dir.path(), "wrong", "correct horse battery stapler\n");
    let mut cluster = TestCluster::new_stopped(3, None);
    cluster.extra_args.insert(1, secret_args(&right));
    cluster.extra_args.insert(2, secret_args(&right));
    cluster.extra_args.insert(3, secret_args(&wrong));
    for id in 1..=3 {
        cluster.spawn(id);
    }
    // Nodes 1 and 2 are a quorum of three: they elect and serve.
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    assert!(
        leader == 1 || leader == 2,
        "node 3 cannot have been elected"
    );
    let mut client = client_of(&cluster, leader);
    for i in 0..20 {
        client.set(format!("k{i}"), format!("v{i}")).unwrap();
    }
    assert_eq!(client.get("k7").unwrap(), Some(b"v7".to_vec()));
    // Both sides say why.
    wait_log(
        &cluster,
        3,
        "did not prove the peer secret (wrong MAC)",
        Duration::from_secs(10),
    );
    wait_log(&cluster, 1, "handshake refused", Duration::from_secs(10));
    assert!(
        log_of(&cluster, 1).contains("the nodes' --peer-secret-file differ")
            || log_of(&cluster, 1).contains("do the secrets differ?"),
        "node 1 does not say the secrets differ\n{}",
        cluster.logs()
    );
    // Node 3 never hears a leader: no heartbeat ever reaches it.
    std::thread::sleep(Duration::from_secs(2));
    let view = cluster.info(3).expect("node 3 answers INFO");
    assert_eq!(view.leader, None, "node 3 joined with a wrong secret");
    assert_ne!(view.role, "leader");
    // Refusals are rate-limited: node 3 redials every second or so on two lanes, to two
    // peers, but its log holds a handful of lines per address per 5 s, not one per attempt.
    let refusals = log_of(&cluster, 3).matches("handshake refused").count();
    assert!(refusals <= 16, "{refusals} refusal lines: not rate-limited");

    // With the right secret, node 3 joins and catches up.
    cluster.kill9(3);
    cluster.extra_args.insert(3, secret_args(&right));
    cluster.spawn(3);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(view) = cluster.info(3) {
            if view.leader == Some(leader) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node 3 never joined\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut on_three = client_of(&cluster, 3);
    assert_eq!(on_three.get("k19").unwrap(), Some(b"v19".to_vec()));
    done.store(true, Ordering::Release);
}

/// Injects the forged vote at the leader of `cluster`; returns (term before, views after).
fn forge_against(cluster: &TestCluster) -> (u64, u64, Vec<View>) {
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    // Let the term settle: every node knows the leader.
    std::thread::sleep(Duration::from_millis(500));
    let term = cluster.info(leader).expect("the leader answers").term;
    let from = cluster.follower_of(leader);
    attack(cluster, leader, from);
    std::thread::sleep(Duration::from_secs(2));
    (leader, term, views(cluster, &[1, 2, 3]))
}

#[test]
fn forged_vote_moves_an_open_cluster_but_not_a_secured_one() {
    let done = watchdog("forged_vote", Duration::from_secs(120));
    // The control: without authentication the same bytes depose the leader, so this test
    // can fail.
    let open = TestCluster::start(3);
    let (leader, term, after) = forge_against(&open);
    let moved = after
        .iter()
        .find(|(id, ..)| *id == leader)
        .expect("leader view");
    assert!(
        moved.1 >= FORGED_TERM,
        "the forged vote did not reach the open cluster's core (term {term} -> {after:?})"
    );
    drop(open);

    let dir = tempfile::tempdir().unwrap();
    let secret = write_file(dir.path(), "secret", "s3cret");
    let mut secured = TestCluster::new_stopped(3, None);
    for id in 1..=3 {
        secured.extra_args.insert(id, secret_args(&secret));
        secured.spawn(id);
    }
    secured.wait_ready(Duration::from_secs(30));
    let (leader, term, after) = forge_against(&secured);
    for (id, node_term, role, node_leader) in &after {
        assert_eq!(*node_term, term, "node {id}'s term moved: {after:?}");
        assert_eq!(
            *node_leader,
            Some(leader),
            "node {id} lost its leader: {after:?}"
        );
        assert_eq!(role == "leader", *id == leader, "roles changed: {after:?}");
    }
    // The leader logged the refusals with the attacker's address and why.
    let log = log_of(&secured, leader);
    assert!(
        log.contains("connection from 127.0.0.1:") && log.contains("handshake refused"),
        "{}",
        secured.logs()
    );
    let mut client = secured.client_starting_at(leader);
    assert!(set(&mut client, "after", "attack"));
    done.store(true, Ordering::Release);
}

/// A CA and node certificates, as PEM files in a directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ketch test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate naming DNS `name`, signed by this CA: (cert, key) PEM paths, and PEMs.
    fn issue(&self, file: &str, name: &str) -> (PathBuf, PathBuf, String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let cert_path = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path, cert.pem(), key.serialize_pem())
    }

    fn args(&self, id: u64) -> Vec<String> {
        let (cert, key, ..) = self.issue(&format!("node-{id}"), &format!("node-{id}"));
        tls_args(&cert, &key, &self.ca_path())
    }
}

fn tls_args(cert: &Path, key: &Path, ca: &Path) -> Vec<String> {
    [
        ("--peer-cert", cert),
        ("--peer-key", key),
        ("--peer-ca", ca),
    ]
    .into_iter()
    .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
    .collect()
}

/// Opens a TLS connection to node `to`'s peer port with `cert`/`key` (PEM) as the client
/// certificate, and writes `bytes` inside it; returns whether the TLS handshake completed.
fn inject_tls(
    addr: SocketAddr,
    to: u64,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    bytes: &[u8],
) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let name = ServerName::try_from(format!("node-{to}")).unwrap();
    let mut session = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut session, &mut socket);
    if tls.write_all(bytes).is_err() || tls.flush().is_err() {
        return false;
    }
    // Read until the node closes (it refuses) or a second passes.
    let mut sink = [0u8; 1024];
    let _ = tls.read(&mut sink);
    let _ = tls.read(&mut sink);
    true
}

#[test]
fn mtls_cluster_survives_kill9_of_each_node_and_refuses_foreign_and_misnamed_certs() {
    let done = watchdog("mtls_cluster", Duration::from_secs(240));
    let pki = Pki::new();
    let mut cluster = TestCluster::new_stopped(3, None);
    for id in 1..=3 {
        cluster.extra_args.insert(id, pki.args(id));
        cluster.spawn(id);
    }
    cluster.wait_ready(Duration::from_secs(30));
    let mut acked: Vec<(String, String)> = Vec::new();
    let write_some = |cluster: &TestCluster, acked: &mut Vec<(String, String)>, round: u64| {
        let mut client = cluster.client_starting_at(1 + round % 3);
        for i in 0..20 {
            let (key, value) = (format!("r{round}-k{i}"), format!("v{i}"));
            if client.set(&key, &value).is_ok() {
                acked.push((key, value));
            }
        }
    };
    write_some(&cluster, &mut acked, 0);
    assert_eq!(acked.len(), 20, "writes to a healthy mTLS cluster fail");
    // kill -9 and restart each node in turn, writing meanwhile.
    for id in 1..=3u64 {
        cluster.kill9(id);
        write_some(&cluster, &mut acked, id * 2 - 1);
        cluster.spawn(id);
        cluster.wait_ready(Duration::from_secs(30));
        write_some(&cluster, &mut acked, id * 2);
    }
    assert!(
        acked.len() >= 100,
        "only {} writes acknowledged",
        acked.len()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in 1..=3 {
        let mut client = client_of(&cluster, id);
        for (key, value) in &acked {
            loop {
                match client.get(key) {
                    Ok(found) => {
                        assert_eq!(found, Some(value.as_bytes().to_vec()), "{key} on node {id}");
                        break;
                    }
                    Err(e) => {
                        assert!(Instant::now() < deadline, "GET {key} on node {id}: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let term = cluster.info(leader).unwrap().term;

    // A certificate of another CA: the cluster refuses the node, and the node refuses them.
    let other = Pki::new();
    let follower = cluster.follower_of(leader);
    cluster.kill9(follower);
    cluster.extra_args.insert(follower, {
        let (cert, key, ..) = other.issue("foreign", &format!("node-{follower}"));
        tls_args(&cert, &key, &other.ca_path())
    });
    cluster.spawn(follower);
    wait_log(
        &cluster,
        follower,
        "handshake refused",
        Duration::from_secs(10),
    );
    wait_log(
        &cluster,
        leader,
        "handshake refused",
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_secs(1));
    let view = cluster
        .info(follower)
        .expect("the foreign node answers INFO");
    assert_eq!(
        view.leader, None,
        "a node with a foreign CA's certificate joined"
    );

    // A CA-signed certificate naming node-<leader's other follower> does not pass as another
    // node: the handshake's claimed id must be the certificate's.
    let named = 6 - leader - follower;
    let (_, _, cert_pem, key_pem) = pki.issue("misnamed", &format!("node-{named}"));
    let ca_pem = std::fs::read_to_string(pki.ca_path()).unwrap();
    let mut bytes = Vec::new();
    encode_handshake(
        &Handshake::unauthenticated(cluster.cluster_id(), follower, leader),
        &mut bytes,
    )
    .unwrap();
    bytes.extend_from_slice(&forged_vote(follower, leader));
    // Every peer here dials from 127.0.0.1, whose refusals are rate-limited together with the
    // foreign node's: stop that node and inject until the line gets through.
    cluster.kill9(follower);
    let expected =
        format!("claims to be node {follower} but the certificate does not name node-{follower}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !log_of(&cluster, leader).contains(&expected) {
        assert!(
            Instant::now() < deadline,
            "the leader never refused the misnamed certificate\n{}",
            cluster.logs()
        );
        assert!(
            inject_tls(
                cluster.node(leader).peer_addr,
                leader,
                &ca_pem,
                &cert_pem,
                &key_pem,
                &bytes
            ),
            "a CA-signed certificate must pass TLS itself"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // And plaintext to a TLS port is refused too.
    inject(cluster.node(leader).peer_addr, &bytes);
    std::thread::sleep(Duration::from_secs(1));
    let now = cluster.info(leader).expect("the leader answers");
    assert_eq!(
        (now.role.as_str(), now.term),
        ("leader", term),
        "the forged vote got in"
    );

    // A node whose own certificate names another node refuses to start, naming the file.
    cluster.extra_args.remove(&follower);
    let (cert, key, ..) = pki.issue("wrong-name", &format!("node-{named}"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ketch"))
        .args(cluster.serve_args(follower))
        .args(tls_args(&cert, &key, &pki.ca_path()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started with a misnamed certificate"
    );
    assert!(
        stderr.contains("wrong-name.pem") && stderr.contains(&format!("node-{follower}")),
        "{stderr}"
    );
    done.store(true, Ordering::Release);
}

//! `MULTI`/`EXEC` under SIGKILL, with real `ketch serve` processes: a transaction is there
//! whole or not at all.
//!
//! Two clients run transactions in a loop, each `MULTI`, two `SET`s of keys only that
//! transaction writes, an `INCR` of the client's counter, `EXEC`, while the leader is killed
//! and restarted twice. Afterwards, on every node:
//!
//! - for every transaction, both of its keys are present or neither is;
//! - every transaction whose `EXEC` was answered with its replies is present;
//! - each client's counter equals the number of its transactions present (the `INCR` ran
//!   exactly once with the `SET`s, or not at all).
//!
//! Reproduce with `cargo test --release --test e2e_transactions -- --nocapture`.

#[path = "e2e/support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketch::kv::resp::{encode_request, Limits, ReplyParser};
use support::TestCluster;

const CLIENTS: u64 = 2;

/// A RESP connection that reports failures instead of panicking: nodes die under it.
struct Connection {
    stream: TcpStream,
    input: Vec<u8>,
}

impl Connection {
    fn open(addr: SocketAddr) -> Option<Connection> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        Some(Connection {
            stream,
            input: Vec::new(),
        })
    }

    fn call(&mut self, args: &[&[u8]]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        encode_request(&mut out, args);
        self.stream.write_all(&out).ok()?;
        let parser = ReplyParser::new(Limits::default());
        let mut chunk = [0u8; 16384];
        loop {
            if let Some((_, used)) = parser.parse(&self.input).ok()? {
                return Some(self.input.drain(..used).collect());
            }
            let n = self.stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }
}

/// What one client knows of its transactions.
#[derive(Default)]
struct Outcomes {
    /// Transaction numbers whose EXEC answered with the three replies.
    acknowledged: Vec<u64>,
    /// Transaction numbers attempted (EXEC sent or maybe sent).
    attempted: u64,
}

fn run_client(client: u64, addrs: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let mut node = client as usize;
    let mut connection: Option<Connection> = None;
    let expected_exec = b"*3\r\n+OK\r\n+OK\r\n:".to_vec();
    // Bounded: until the flag, at most 20,000 transactions.
    for tx in 0..20_000u64 {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let Some(conn) = connection.as_mut() else {
            node = (node + 1) % addrs.len();
            connection = Connection::open(addrs[node]);
            if connection.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        };
        let a = format!("tx:{client}:{tx}:a");
        let b = format!("tx:{client}:{tx}:b");
        let counter = format!("tx:count:{client}");
        outcomes.attempted = tx + 1;
        let replies = [
            conn.call(&[b"MULTI"]),
            conn.call(&[b"SET", a.as_bytes(), b"1"]),
            conn.call(&[b"SET", b.as_bytes(), b"1"]),
            conn.call(&[b"INCR", counter.as_bytes()]),
            conn.call(&[b"EXEC"]),
        ];
        match &replies {
            [Some(m), Some(q1), Some(q2), Some(q3), Some(exec)]
                if m == b"+OK\r\n"
                    && q1 == b"+QUEUED\r\n"
                    && q2 == b"+QUEUED\r\n"
                    && q3 == b"+QUEUED\r\n" =>
            {
                if exec.starts_with(&expected_exec) {
                    outcomes.acknowledged.push(tx);
                } else if !exec.starts_with(b"-") {
                    panic!(
                        "client {client} transaction {tx}: EXEC answered {:?}",
                        String::from_utf8_lossy(exec)
                    );
                }
                // An error reply (-TIMEOUT, -TRYAGAIN, ...): the outcome is unknown, or it
                // certainly did not apply; either way it must be whole or absent.
            }
            _ => {
                // The node died or refused the block: start over on another node (a block
                // cut short is discarded with its connection).
                connection = None;
            }
        }
    }
    outcomes
}

#[test]
fn a_transaction_is_there_whole_or_not_at_all_across_kill9() {
    let done = support::watchdog("transactions_kill9", Duration::from_secs(150));
    let mut cluster = TestCluster::start(3);
    let addrs = cluster.client_addrs();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let addrs = addrs.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || run_client(client, addrs, stop))
        })
        .collect();

    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(1_500));
        let leader = cluster.wait_for_leader(Duration::from_secs(20));
        eprintln!("round {round}: SIGKILL leader {leader}");
        cluster.kill9(leader);
        std::thread::sleep(Duration::from_millis(1_000));
        cluster.spawn(leader);
    }
    std::thread::sleep(Duration::from_millis(1_500));
    stop.store(true, Ordering::Release);
    let outcomes: Vec<Outcomes> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    cluster.wait_ready(Duration::from_secs(30));

    for node in 1..=3u64 {
        // Wait for the node to catch up: a write through it is applied after everything
        // before it.
        let addr = cluster.node(node).client_addr;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut connection = loop {
            if let Some(mut c) = Connection::open(addr) {
                if c.call(&[b"SET", b"barrier", b"x"]).as_deref() == Some(b"+OK\r\n") {
                    break c;
                }
            }
            assert!(Instant::now() < deadline, "node {node} never took a write");
            std::thread::sleep(Duration::from_millis(100));
        };
        for (client, outcome) in outcomes.iter().enumerate() {
            let mut present = 0u64;
            for tx in 0..outcome.attempted {
                let a = format!("tx:{client}:{tx}:a");
                let b = format!("tx:{client}:{tx}:b");
                let reply = connection
                    .call(&[b"EXISTS", a.as_bytes(), b.as_bytes()])
                    .expect("EXISTS");
                match &reply[..] {
                    b":2\r\n" => present += 1,
                    b":0\r\n" => assert!(
                        !outcome.acknowledged.contains(&tx),
                        "node {node}: acknowledged transaction {client}/{tx} is missing\n{}",
                        cluster.logs()
                    ),
                    other => panic!(
                        "node {node}: transaction {client}/{tx} is partly there: EXISTS {:?}\n{}",
                        String::from_utf8_lossy(other),
                        cluster.logs()
                    ),
                }
            }
            let counter = format!("tx:count:{client}");
            let reply = connection.call(&[b"GET", counter.as_bytes()]).expect("GET");
            let expected = if present == 0 {
                b"$-1\r\n".to_vec()
            } else {
                format!("${}\r\n{present}\r\n", present.to_string().len()).into_bytes()
            };
            assert_eq!(
                String::from_utf8_lossy(&reply),
                String::from_utf8_lossy(&expected),
                "node {node}: client {client}'s counter disagrees with its {present} \
                 transactions present"
            );
            eprintln!(
                "node {node}: client {client}: {} attempted, {} acknowledged, {present} present",
                outcome.attempted,
                outcome.acknowledged.len()
            );
            assert!(
                outcome.acknowledged.len() > 10,
                "too few transactions acknowledged for the test to mean anything"
            );
        }
    }
    done.store(true, Ordering::Release);
}

//! Hostile or broken bytes on a node's peer port: the node refuses them per connection, counts
//! them in its status, and its cluster keeps committing. Reproduce with
//! `cargo test --release --test peer_input -- --nocapture`.

#[path = "harness/ports.rs"]
mod ports;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ketch::node::{Node, NodeConfig, ProposeError, StateMachine};
use ketch::raft::{Message, MessageBody, Role};
use ketch::wire::frame::{encode_frame, HEADER_BYTES};
use ketch::wire::message::{
    encode_handshake, encode_host_beat, encode_message, encode_raft_batch, Handshake, HostBeat,
    FRAME_KIND_FORWARD, FRAME_KIND_HANDSHAKE, FRAME_KIND_RAFT,
};

const CLUSTER_ID: u64 = 11;

/// The applied commands, in order.
#[derive(Default)]
struct Log {
    values: Vec<u64>,
}

impl StateMachine for Log {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        self.values.push(u64::from_le_bytes(
            command.try_into().expect("8-byte command"),
        ));
        Vec::new()
    }

    fn query(&mut self, _query: &[u8]) -> Vec<u8> {
        self.values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(&self.query(&[]))
    }

    fn restore(&mut self, input: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        self.values = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(())
    }
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

fn handshake(cluster_id: u64, from: u64, to: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_handshake(
        &Handshake::unauthenticated(cluster_id, from, to),
        &mut bytes,
    )
    .unwrap();
    bytes
}

fn raft_frame(from: u64, to: u64, term: u64, body: MessageBody) -> Vec<u8> {
    let mut bytes = Vec::new();
    let message = Message {
        from,
        to,
        term,
        body,
    };
    encode_message(0, &message, &mut Vec::new(), &mut bytes).unwrap();
    bytes
}

/// Proposes `value` through `node` (which forwards to the leader), retrying only refusals
/// that certainly did not apply.
fn propose(node: &Node, value: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match node.propose(value.to_le_bytes().to_vec()) {
            Ok(_) => return,
            Err(ProposeError::NotLeader { .. } | ProposeError::Backpressure)
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("proposal {value} failed: {e}"),
        }
    }
}

#[test]
fn hostile_peer_input_is_refused_counted_and_the_cluster_keeps_committing() {
    let root = tempfile::tempdir().unwrap();
    let addrs = ports::node_addrs(3);
    let nodes: BTreeMap<u64, Node> = addrs
        .keys()
        .map(|id| {
            let config = NodeConfig::new(*id, CLUSTER_ID, addrs.clone(), addrs[id]);
            let dir = root.path().join(format!("node-{id}"));
            (*id, Node::start(config, dir, Log::default()).unwrap())
        })
        .collect();
    let mut leader = None;
    wait_until("a leader", Duration::from_secs(15), || {
        leader = nodes
            .values()
            .map(|n| n.status())
            .find(|s| s.role == Role::Leader)
            .map(|s| s.id);
        leader.is_some()
    });
    let leader = leader.unwrap();
    let target = if leader == 1 { 2 } else { 1 };
    let spoofed = 6 - leader - target;
    for value in 0..10u64 {
        propose(&nodes[&target], value);
    }
    let before = nodes[&target].status();
    let term = before.term;
    let mut open = Vec::new();
    let mut send = |bytes: &[u8]| {
        let mut stream = TcpStream::connect(addrs[&target]).unwrap();
        stream.write_all(bytes).unwrap();
        // Kept open: the node must close it, not wait for the sender to go.
        open.push(stream);
    };

    // 1. Garbage: not even a frame.
    send(&[0xA5; 4096]);
    // 2. An oversize length prefix in an otherwise valid header (magic "TK", version 1).
    let mut oversize = vec![0x54, 0x4B, 1, FRAME_KIND_RAFT];
    oversize.extend_from_slice(&u32::MAX.to_le_bytes());
    oversize.extend_from_slice(&[0; 4]);
    send(&oversize);
    // 3. A handshake from another cluster, and one from a node that is not a peer.
    send(&handshake(CLUSTER_ID + 1, spoofed, target));
    send(&handshake(CLUSTER_ID, 99, target));
    // 3b. A handshake of protocol version 3 (this build speaks 4): refused by its version.
    let mut v3_payload = handshake(CLUSTER_ID, spoofed, target)[HEADER_BYTES..].to_vec();
    v3_payload[4..6].copy_from_slice(&3u16.to_le_bytes());
    let mut v3 = Vec::new();
    encode_frame(FRAME_KIND_HANDSHAKE, &v3_payload, &mut v3).unwrap();
    send(&v3);
    // 4. A valid handshake, then a frame cut short (the rest never comes): the node must
    //    neither block nor take it.
    let mut truncated = handshake(CLUSTER_ID, spoofed, target);
    let frame = raft_frame(
        spoofed,
        target,
        term,
        MessageBody::HeartbeatResponse { round: 1 },
    );
    truncated.extend_from_slice(&frame[..frame.len() / 2]);
    send(&truncated);
    // 5. A valid handshake, then a message that names another recipient.
    let mut misdirected = handshake(CLUSTER_ID, spoofed, target);
    misdirected.extend(raft_frame(spoofed, 42, term, MessageBody::TimeoutNow));
    send(&misdirected);
    // 5b. A valid handshake, then a batch whose second message claims another sender.
    let mut spoofed_batch = handshake(CLUSTER_ID, spoofed, target);
    let from_peer = |from| Message {
        from,
        to: target,
        term,
        body: MessageBody::HeartbeatResponse { round: 1 },
    };
    encode_raft_batch(
        &[(0, from_peer(spoofed)), (0, from_peer(leader))],
        &mut spoofed_batch,
    )
    .unwrap();
    send(&spoofed_batch);
    // 5c. A valid handshake, then a host beat that claims another sender.
    let mut spoofed_beat = handshake(CLUSTER_ID, spoofed, target);
    encode_host_beat(
        &HostBeat {
            from: leader,
            tick: 1,
        },
        &mut spoofed_beat,
    )
    .unwrap();
    send(&spoofed_beat);
    // 6. A valid handshake, then a forward frame with an unknown tag.
    let mut bad_forward = handshake(CLUSTER_ID, spoofed, target);
    let mut payload = Vec::new();
    payload.extend_from_slice(&spoofed.to_le_bytes());
    payload.extend_from_slice(&target.to_le_bytes());
    payload.extend_from_slice(&0u64.to_le_bytes());
    payload.push(77);
    payload.extend_from_slice(&1u64.to_le_bytes());
    encode_frame(FRAME_KIND_FORWARD, &payload, &mut bad_forward).unwrap();
    send(&bad_forward);
    // 7. Well-formed messages from a stale term with impossible indices: the core must
    //    ignore them (a message from an older term carries no authority).
    let stale = 0;
    let mut impossible = handshake(CLUSTER_ID, spoofed, target);
    for body in [
        MessageBody::Append {
            prev_log_index: u64::MAX - 1,
            prev_log_term: u64::MAX,
            entries: Vec::new(),
            leader_commit: u64::MAX,
        },
        MessageBody::Heartbeat {
            commit: u64::MAX,
            round: u64::MAX,
        },
        MessageBody::AppendResponse {
            success: true,
            index: u64::MAX,
            reject_hint_index: u64::MAX,
            reject_hint_term: u64::MAX,
        },
        MessageBody::ReadIndexResponse {
            ctx: u64::MAX,
            index: u64::MAX,
        },
    ] {
        impossible.extend(raft_frame(spoofed, target, stale, body));
    }
    send(&impossible);

    wait_until(
        "the refused connections are counted",
        Duration::from_secs(10),
        || {
            let t = nodes[&target].status().transport;
            t.handshakes_refused >= before.transport.handshakes_refused + 3
                && t.malformed_closed >= before.transport.malformed_closed + 6
        },
    );
    wait_until(
        "the stale messages are ignored",
        Duration::from_secs(10),
        || {
            let s = nodes[&target].status().raft_stats;
            s.stale_term_messages + s.ignored_messages
                >= before.raft_stats.stale_term_messages + before.raft_stats.ignored_messages + 4
        },
    );
    let status = nodes[&target].status();
    assert!(status.participating, "{status:?}");
    assert!(
        status.commit <= nodes[&leader].status().last_index,
        "an impossible commit index was taken: {} > leader's last {}",
        status.commit,
        nodes[&leader].status().last_index
    );
    for value in 10..40u64 {
        propose(&nodes[&target], value);
    }
    let state = nodes[&target]
        .read(Vec::new())
        .expect("read after the attack");
    let values: Vec<u64> = state
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, (0..40).collect::<Vec<u64>>());
    drop(open);
    for (id, node) in nodes {
        node.shutdown()
            .unwrap_or_else(|e| panic!("node {id} shut down with errors: {e}"));
    }
}

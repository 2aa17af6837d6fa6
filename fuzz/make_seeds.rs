//! Writes the checked-in seed corpora under `fuzz/seeds/<target>/`.
//!
//! Seeds are real artefacts (segment files, snapshot files, encoded peer messages, schedules
//! that elect a leader and replicate), so each fuzzer starts past the checksums and headers
//! that random bytes almost never satisfy. Regenerate after a format change:
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use ketch::raft::{Entry, EntryKind, Membership, Message, MessageBody, SnapshotMeta};
use ketch::wire::encode_frame;
use ketch::wire::message::{
    encode_forward, encode_handshake, encode_host_beat, encode_message, encode_message_payload,
    encode_raft_batch, encode_raft_batch_payload, Forward, ForwardBody, Handshake, HostBeat,
};
use ketch_storage::snapshot::{SnapshotOptions, SnapshotStore};
use ketch_storage::{Options, Wal};

fn seeds_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    dir
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let path = seeds_dir(target).join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Segment files of a small real log: 3 segments of 64 KiB.
fn real_segments() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        segment_size_bytes: 64 << 10,
        prepare_segments_ahead: false,
        ..Options::default()
    };
    let mut wal = Wal::open(dir.path(), options).expect("open");
    for batch in 0..12u64 {
        let first = wal.last_index() + 1;
        let entries: Vec<_> = (first..first + 4)
            .map(|i| ketch_storage::Entry::new(i, 1 + batch / 4, vec![i as u8; 3000]))
            .collect();
        wal.append(&entries).expect("append");
        wal.sync().expect("sync");
    }
    wal.truncate_suffix(wal.last_index() - 2).expect("truncate");
    wal.sync().expect("sync");
    drop(wal);
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
        .iter()
        .take(3)
        .map(|p| std::fs::read(p).expect("read segment"))
        .collect()
}

fn wal_seeds() {
    let segments = real_segments();
    // wal_recovery raw mode (selector bit 6 clear): u32 length + bytes per file.
    // Only the first segment: raw mode names files by position, so later real segments would
    // carry the wrong first index in their names.
    for selector in [0u8, 1] {
        let mut seed = vec![selector];
        let file = &segments[0];
        seed.extend_from_slice(&(file.len() as u32).to_le_bytes());
        seed.extend_from_slice(file);
        write_seed("wal_recovery", &format!("raw-mode{selector}"), &seed);
    }
    // Structured mode: a script of appends, truncations, compactions and syncs, then damage.
    let script: Vec<u8> = vec![40, 9, 17, 25, 33, 7, 5, 1, 6, 41, 13, 7, 21, 29, 5, 7];
    for (name, damage) in [
        ("structured-clean", vec![]),
        ("structured-flip", vec![0, 200, 0, 0, 0, 0x10]),
        ("structured-torn", vec![1, 0, 2, 0, 0, 0]),
    ] {
        let mut seed = vec![0x41];
        seed.extend_from_slice(&script);
        seed.extend_from_slice(&damage);
        write_seed("wal_recovery", name, &seed);
    }
    // wal_decoders: byte 0 is the segment sequence the CRC covers; the header and the first
    // records of segment 1.
    let first = &segments[0];
    write_seed(
        "wal_decoders",
        "segment-1-head",
        &first[..first.len().min(4096)],
    );
    write_seed(
        "wal_decoders",
        "segment-1-records",
        &first[128..first.len().min(2048)],
    );
}

fn snapshot_seeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).expect("store");
    for (index, size) in [(7u64, 0usize), (40, 1000), (90, 20_000)] {
        let mut writer = store.begin(index, 2, b"members").expect("begin");
        let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        writer.write_all(&content).expect("write");
        let meta = writer.finish().expect("finish");
        let mut seed = vec![0u8];
        seed.extend_from_slice(&std::fs::read(&meta.path).expect("read snapshot"));
        write_seed("snapshot_reader", &format!("snapshot-{size}"), &seed);
    }
}

fn sample_messages() -> Vec<Message> {
    let membership = Membership {
        voters: BTreeSet::from([1, 2, 3]),
        learners: BTreeSet::from([4]),
        outgoing_voters: BTreeSet::new(),
    };
    let entries = vec![
        Entry {
            term: 2,
            index: 5,
            kind: EntryKind::Noop,
            data: Vec::new().into(),
        },
        Entry {
            term: 2,
            index: 6,
            kind: EntryKind::Normal,
            data: b"set k v".to_vec().into(),
        },
    ];
    let bodies = vec![
        MessageBody::PreVote {
            last_log_index: 4,
            last_log_term: 1,
        },
        MessageBody::PreVoteResponse { granted: true },
        MessageBody::Vote {
            last_log_index: 4,
            last_log_term: 1,
            leadership_transfer: false,
        },
        MessageBody::VoteResponse { granted: false },
        MessageBody::Append {
            prev_log_index: 4,
            prev_log_term: 1,
            entries,
            leader_commit: 4,
        },
        MessageBody::AppendResponse {
            success: false,
            index: 4,
            reject_hint_index: 3,
            reject_hint_term: 1,
        },
        MessageBody::Heartbeat {
            commit: 6,
            round: 9,
        },
        MessageBody::HeartbeatResponse { round: 9 },
        MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: 100,
                term: 3,
                membership,
                size_bytes: 64,
            },
            offset: 0,
            len: 16,
            data: vec![0xAB; 16],
            done: false,
        },
        MessageBody::InstallSnapshotResponse {
            snapshot_index: 100,
            next_offset: 16,
            done: false,
            rejected: false,
        },
        MessageBody::TimeoutNow,
        MessageBody::ReadIndex { ctx: 77 },
        MessageBody::ReadIndexResponse { ctx: 77, index: 6 },
    ];
    bodies
        .into_iter()
        .map(|body| Message {
            from: 1,
            to: 2,
            term: 2,
            body,
        })
        .collect()
}

fn peer_seeds() {
    let messages = sample_messages();
    // Mode odd: the payload alone.
    for message in &messages {
        let mut seed = vec![1u8];
        encode_message_payload(0, message, &mut seed);
        write_seed(
            "peer_frames",
            &format!("payload-{}", message.body.kind_name()),
            &seed,
        );
    }
    // Mode odd: a batch of every message, each in a group of its own.
    let batch: Vec<(u64, Message)> = messages
        .iter()
        .cloned()
        .zip(0u64..)
        .map(|(m, g)| (g, m))
        .collect();
    let mut seed = vec![1u8];
    encode_raft_batch_payload(&batch, &mut seed);
    write_seed("peer_frames", "payload-batch", &seed);
    // Mode even: a stream of frames (handshake first, then every message alone, every message
    // in one batch, a host beat and a forward), chunk sizes first.
    let chunk_sizes = [3u8, 11, 64, 1, 200];
    let mut seed = vec![(chunk_sizes.len() as u8) << 1];
    seed.extend_from_slice(&chunk_sizes);
    let handshake = Handshake::unauthenticated(42, 1, 2);
    encode_handshake(&handshake, &mut seed).expect("encode handshake");
    let mut scratch = Vec::new();
    for message in &messages {
        encode_message(0, message, &mut scratch, &mut seed).expect("encode message");
    }
    encode_raft_batch(&batch, &mut seed).expect("encode batch");
    encode_host_beat(&HostBeat { from: 1, tick: 5 }, &mut seed).expect("encode host beat");
    let forward = Forward {
        from: 1,
        to: 2,
        group: 3,
        body: ForwardBody::Propose {
            request_id: 4,
            data: b"command".to_vec().into(),
        },
    };
    encode_forward(&forward, &mut scratch, &mut seed).expect("encode forward");
    write_seed("peer_frames", "stream-all-kinds", &seed);
    let mut oversize = vec![0u8];
    encode_frame(2, &[0u8; 64], &mut oversize).expect("frame");
    oversize[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    write_seed("peer_frames", "stream-bad-length", &oversize);
}

fn raft_seeds() {
    // Honest mode (first byte even). Node k is chosen by the high nibble, the action by % 10:
    // 0-2 tick, 3-4 deliver (operand), 5 drop/duplicate, 6 propose, 7 crash, 8 transfer/read.
    let tick = |node: u8| node << 4;
    let deliver = |node: u8| (node << 4) | 3;
    let propose = |node: u8| (node << 4) | 6;
    let mut election = vec![0u8];
    for _ in 0..12 {
        election.push(tick(0));
    }
    for round in 0..40u8 {
        election.extend_from_slice(&[deliver(round % 3), round]);
    }
    write_seed("raft_core", "election", &election);
    let mut replicate = election.clone();
    for round in 0..30u8 {
        replicate.push(propose(round % 3));
        replicate.extend_from_slice(&[deliver(0), round, deliver(1), 0, tick(round % 3)]);
    }
    write_seed("raft_core", "replicate", &replicate);
    let mut crash = replicate.clone();
    crash.extend_from_slice(&[0x17, 0x07, 0x27]);
    for round in 0..40u8 {
        crash.extend_from_slice(&[tick(round % 3), deliver(round % 3), round]);
    }
    write_seed("raft_core", "crash-restart", &crash);
    let mut forged = replicate;
    forged[0] = 1;
    forged.extend_from_slice(&[9, 0, 200, 50, 9, 1, 3, 250, deliver(1), 0]);
    write_seed("raft_core", "forged", &forged);
}

fn resp_seeds() {
    // Byte 0: bit 0 picks replies, bit 1 the small limits, the rest the chunk size.
    let mut requests = vec![4u8];
    requests.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
    requests.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n");
    requests.extend_from_slice(b"SET \"a b\" 'c\\x41'\r\n\r\n*0\r\n");
    write_seed("resp", "requests", &requests);
    write_seed("resp", "over-limit", b"\x06*2\r\n$3\r\nSET\r\n$99\r\n");
    let mut replies = vec![5u8];
    replies.extend_from_slice(b"+OK\r\n-TRYAGAIN no leader\r\n:42\r\n$3\r\nfoo\r\n$-1\r\n");
    replies.extend_from_slice(b"*2\r\n$1\r\na\r\n*-1\r\n");
    write_seed("resp", "replies", &replies);
}

fn main() {
    resp_seeds();
    wal_seeds();
    snapshot_seeds();
    peer_seeds();
    raft_seeds();
    println!(
        "seeds written under {}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .display()
    );
}

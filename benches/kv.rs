//! The key-value service's CPU paths, in requests per second:
//!
//! - `kv/parse`: the RESP request parser on a pipelined buffer of `SET key value` (256-byte
//!   values, as `redis-benchmark -d 256` sends) and of `GET key`;
//! - `kv/apply`: `KvStateMachine::apply` of 64-write batches of SETs with sessions (what a
//!   replica does per log entry), and `query` of 64-GET batches;
//! - `kv/service`: SET and GET round trips over loopback TCP to a one-node `KvService` (real
//!   fsync per batch), 16 connections with 16 pipelined requests each.
//!
//! The end-to-end figures on a 3-node cluster come from `redis-benchmark` (see
//! `tests/kv_service.rs`, test `redis_benchmark`). `cargo bench --bench kv`

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ketch::kv::command::WriteBatchEncoder;
use ketch::kv::command::{Operation, Query, QueryBatchEncoder, Write as KvWrite};
use ketch::kv::resp::{encode_request, Limits, ReplyParser, RequestParser};
use ketch::kv::{KvService, KvStateMachine, ServiceConfig, SessionConfig, SessionId};
use ketch::node::{NodeConfig, StateMachine};

const PIPELINE: usize = 1000;
const BATCH_WRITES: u64 = 64;

fn bench_parse(c: &mut Criterion) {
    let value = vec![b'x'; 256];
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    for i in 0..PIPELINE {
        let key = format!("key:{i:012}");
        encode_request(&mut sets, &[b"SET", key.as_bytes(), &value[..]]);
        encode_request(&mut gets, &[b"GET", key.as_bytes()]);
    }
    let mut group = c.benchmark_group("kv/parse");
    group.throughput(Throughput::Elements(PIPELINE as u64));
    for (name, input) in [("set_256", &sets), ("get", &gets)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut parser = RequestParser::new(Limits::default());
                let mut at = 0;
                let mut count = 0;
                while let Some(request) = {
                    let parsed = parser.parse(&input[at..]).unwrap();
                    at += parsed.consumed;
                    parsed.request
                } {
                    count += request.len();
                }
                assert_eq!(at, input.len());
                count
            })
        });
    }
    group.finish();
}

fn bench_apply(c: &mut Criterion) {
    let value = vec![b'x'; 256];
    let session = SessionId::new(1, 1);
    let batches: Vec<Vec<u8>> = (0..64u64)
        .map(|b| {
            let mut encoder = WriteBatchEncoder::new(1_000);
            for w in 0..BATCH_WRITES {
                let seq = b * BATCH_WRITES + w + 1;
                let key = format!("key:{:012}", seq % 100_000);
                encoder.push(&KvWrite {
                    session,
                    seq,
                    acked_below: seq,
                    operation: Operation::Command(vec![b"SET", key.as_bytes(), &value]),
                });
            }
            encoder.finish()
        })
        .collect();
    let mut group = c.benchmark_group("kv/apply");
    group.throughput(Throughput::Elements(BATCH_WRITES * batches.len() as u64));
    group.bench_function("set_batches", |b| {
        b.iter_with_setup(
            || KvStateMachine::new(SessionConfig::default()),
            |mut sm| {
                for (index, batch) in batches.iter().enumerate() {
                    sm.apply(index as u64 + 1, batch);
                }
                sm
            },
        )
    });
    let mut sm = KvStateMachine::new(SessionConfig::default());
    for (index, batch) in batches.iter().enumerate() {
        sm.apply(index as u64 + 1, batch);
    }
    let keys: Vec<String> = (0..BATCH_WRITES).map(|i| format!("key:{i:012}")).collect();
    let mut encoder = QueryBatchEncoder::new(1_000);
    for key in &keys {
        encoder.push(&Query::Command(vec![b"GET", key.as_bytes()]));
    }
    let query = encoder.finish();
    group.throughput(Throughput::Elements(BATCH_WRITES));
    group.bench_function("get_batch", |b| b.iter(|| sm.query(&query)));
    group.finish();
}

fn bench_service(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap();
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    drop(peer);
    let node = NodeConfig::new(1, 3, BTreeMap::from([(1, peer_addr)]), peer_addr);
    let service = KvService::start(ServiceConfig::new(
        node,
        root.path().join("node"),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while service.node().status().role != ketch::raft::Role::Leader {
        assert!(std::time::Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(10));
    }
    const CONNECTIONS: usize = 16;
    const DEPTH: usize = 16;
    let mut connections: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let stream = TcpStream::connect(service.client_addr()).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
        })
        .collect();
    let value = vec![b'v'; 256];
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    for i in 0..DEPTH {
        let key = format!("key:{i}");
        encode_request(&mut sets, &[b"SET", key.as_bytes(), &value[..]]);
        encode_request(&mut gets, &[b"GET", key.as_bytes()]);
    }
    let parser = ReplyParser::new(Limits::default());
    let mut round_trip = |requests: &[u8]| {
        for stream in &mut connections {
            stream.write_all(requests).unwrap();
        }
        for stream in &mut connections {
            let mut buffer = Vec::new();
            let mut replies = 0;
            while replies < DEPTH {
                let mut chunk = [0u8; 64 << 10];
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "server closed the connection");
                buffer.extend_from_slice(&chunk[..n]);
                while let Some((reply, used)) = parser.parse(&buffer).unwrap() {
                    assert!(reply.error_code().is_none(), "{reply:?}");
                    buffer.drain(..used);
                    replies += 1;
                }
            }
        }
    };
    let mut group = c.benchmark_group("kv/service");
    group.throughput(Throughput::Elements((CONNECTIONS * DEPTH) as u64));
    group.sample_size(20);
    group.bench_function("set_256_16x16", |b| b.iter(|| round_trip(&sets)));
    group.bench_function("get_16x16", |b| b.iter(|| round_trip(&gets)));
    group.finish();
    drop(connections);
    service.shutdown().unwrap();
}

criterion_group!(benches, bench_parse, bench_apply, bench_service);
criterion_main!(benches);

//! Snapshot throughput: write (compress, fdatasync, rename, retention) and read (decompress and
//! verify) of ~64 MiB of key-value-like content at zstd levels 1 (the default) and 3, plus a
//! follower installing the same snapshot from raw chunks. Throughput is in content bytes, except
//! for the install, which counts the on-disk bytes received. Compression ratios are printed.
//! `zstd_baseline` compresses and decompresses the same content in memory, with no files,
//! checksums or fsyncs: the machine is shared and noisy, so compare the snapshot figures with
//! the baseline from the same run rather than across runs.
//!
//! `cargo bench --bench snapshot`

use std::io::{self, Read, Write};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ketch_storage::snapshot::{SnapshotMeta, SnapshotOptions, SnapshotStore};

const CONTENT_BYTES: usize = 64 << 20;
/// Bytes handed to the writer per call, like a state machine serialising in pieces.
const WRITE_CHUNK_BYTES: usize = 1 << 20;
const RAW_CHUNK_BYTES: usize = 1 << 20;
const LEVELS: [i32; 2] = [1, 3];

const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "active",
    "pending",
    "admin",
    "reader",
    "writer",
    "eu-west-1",
    "us-east-2",
    "true",
    "false",
];

/// Records like `user:000123\t{"id":123,"age":41,"name":"...","tags":[...]}\n` with values of
/// 16-512 bytes mixing JSON-ish text and numbers, from a fixed seed.
fn key_value_content(len_bytes: usize) -> Vec<u8> {
    let mut rng_state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next_random = move || {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        rng_state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut content = Vec::with_capacity(len_bytes + 1024);
    let mut key = 0u64;
    while content.len() < len_bytes {
        key += 1 + next_random() % 3;
        let value_len = 16 + (next_random() % 497) as usize;
        write!(content, "user:{:06}\t", key % 1_000_000).unwrap();
        let value_start = content.len();
        write!(
            content,
            "{{\"id\":{key},\"age\":{},\"score\":{}.{:02},\"name\":\"{}{}\",\"tags\":[",
            next_random() % 90,
            next_random() % 10_000,
            next_random() % 100,
            WORDS[(next_random() % WORDS.len() as u64) as usize],
            next_random() % 1000,
        )
        .unwrap();
        while content.len() - value_start < value_len {
            let word = WORDS[(next_random() % WORDS.len() as u64) as usize];
            write!(content, "\"{word}\",").unwrap();
        }
        content.truncate(value_start + value_len);
        content.extend_from_slice(b"]}\n");
    }
    content.truncate(len_bytes);
    content
}

fn write_snapshot(store: &SnapshotStore, index: u64, content: &[u8]) -> SnapshotMeta {
    let mut writer = store.begin(index, 1, b"voters=1,2,3").unwrap();
    for chunk in content.chunks(WRITE_CHUNK_BYTES) {
        writer.write_all(chunk).unwrap();
    }
    writer.finish().unwrap()
}

fn read_snapshot(store: &SnapshotStore, meta: &SnapshotMeta) -> u64 {
    let mut reader = store.open_reader(meta).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total_bytes = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            return total_bytes;
        }
        total_bytes += n as u64;
    }
}

fn bench_snapshots(c: &mut Criterion) {
    let content = key_value_content(CONTENT_BYTES);
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();

    let mut group = c.benchmark_group("snapshot_write");
    group.throughput(Throughput::Bytes(CONTENT_BYTES as u64));
    group.sample_size(10);
    for level in LEVELS {
        let store = SnapshotStore::open(
            dir.path().join(format!("level-{level}")),
            SnapshotOptions {
                compression_level: level,
                retain: 2,
            },
        )
        .unwrap();
        // Written outside the measurement so the read benches have a snapshot even when a
        // filter skips the write benches.
        let meta = write_snapshot(&store, 1, &content);
        let mut index = 1u64;
        group.bench_with_input(BenchmarkId::new("level", level), &content, |b, content| {
            b.iter(|| {
                index += 1;
                write_snapshot(&store, index, content)
            })
        });
        let meta = store.latest().unwrap_or(meta);
        println!(
            "snapshot level {level}: {} content bytes -> {} on disk, compression ratio {:.2}",
            meta.uncompressed_bytes,
            meta.file_len_bytes(),
            meta.compression_ratio()
        );
        written.push((level, store, meta));
    }
    group.finish();

    let mut group = c.benchmark_group("snapshot_read");
    group.throughput(Throughput::Bytes(CONTENT_BYTES as u64));
    group.sample_size(10);
    for (level, store, meta) in &written {
        group.bench_with_input(BenchmarkId::new("level", level), meta, |b, meta| {
            b.iter(|| assert_eq!(read_snapshot(store, meta), CONTENT_BYTES as u64))
        });
    }
    group.finish();

    // A follower receiving the level-1 snapshot in 1 MiB chunks: writes, a verifying
    // decompression pass, fdatasync, rename, directory fsync.
    let (_, leader, meta) = &written[0];
    let raw = leader.open_raw(meta).unwrap();
    let follower =
        SnapshotStore::open(dir.path().join("follower"), SnapshotOptions::default()).unwrap();
    let mut group = c.benchmark_group("snapshot_install_raw");
    group.throughput(Throughput::Bytes(raw.len()));
    group.sample_size(10);
    group.bench_function("level/1", |b| {
        let mut chunk = vec![0u8; RAW_CHUNK_BYTES];
        b.iter(|| {
            let mut receiver = follower.begin_receive(Some(raw.len())).unwrap();
            let mut offset = 0u64;
            loop {
                let n = raw.read_at(offset, &mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                receiver.write_at(offset, &chunk[..n]).unwrap();
                offset += n as u64;
            }
            receiver.finish().unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("zstd_baseline");
    group.throughput(Throughput::Bytes(CONTENT_BYTES as u64));
    group.sample_size(10);
    let mut compressed = Vec::with_capacity(CONTENT_BYTES);
    for level in LEVELS {
        group.bench_with_input(
            BenchmarkId::new("compress", level),
            &content,
            |b, content| {
                b.iter(|| {
                    compressed.clear();
                    zstd::stream::copy_encode(&content[..], &mut compressed, level).unwrap();
                    compressed.len()
                })
            },
        );
    }
    compressed.clear();
    zstd::stream::copy_encode(&content[..], &mut compressed, 1).unwrap();
    group.bench_function("decompress/1", |b| {
        b.iter(|| zstd::stream::copy_decode(&compressed[..], io::sink()).unwrap())
    });
    group.finish();
    io::stdout().flush().unwrap();
}

criterion_group!(benches, bench_snapshots);
criterion_main!(benches);

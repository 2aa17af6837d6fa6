//! Write-ahead log benchmarks, each next to the raw device it runs on.
//!
//! - `device/*`: the disk itself: one write + fdatasync overwriting blocks already written (what a
//!   preallocated segment gives), the floor for any durable append; 18,216 bytes is exactly
//!   what one 64 x 256 B batch writes.
//! - `device/concurrent_fdatasync_4096/3_files`: three threads each overwriting its own file
//!   with 4 KiB + fdatasync at once, as the three nodes of a one-machine cluster do per commit.
//! - `device/quorum_fdatasync_4096/2_of_3`: the same three flushes started together, timed until
//!   two have finished: the disk's share of one commit in that cluster (a quorum of copies).
//! - `append_sync/*`: one batch append + `sync`, for batch shapes 1/16/64/256 x 256 B / 4 KiB. The
//!   log is compacted whenever it holds more than about three segments, as a Raft node does after
//!   snapshots, so the steady state reuses compacted segment files instead of zero-filling new ones.
//! - `group_commit/8_threads`: 8 threads appending one entry each through [`GroupCommit`];
//!   prints fsyncs per entry.
//! - `reopen_1gib/*`: opening a 1 GiB log (warm page cache) and reading it all back with checksums.
//!
//! Latency benchmarks also print p50 / p99 of the individual operations. Run:
//! `cargo bench --bench wal` (set `KETCH_BENCH_DIR` to put the files on another disk).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ketch_storage::{Entry, GroupCommit, Options, Wal};

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("KETCH_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(PathBuf::from(base)).unwrap(),
        // Cargo's scratch directory for benches: on the same disk as the build, never a tmpfs.
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
    }
}

/// Records individual operation latencies and prints percentiles.
struct Latencies(Mutex<Vec<Duration>>);

impl Latencies {
    fn new() -> Self {
        Latencies(Mutex::new(Vec::new()))
    }
    fn record(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }
    fn report(&self, name: &str) {
        let mut all = self.0.lock().unwrap();
        if all.is_empty() {
            return;
        }
        all.sort();
        let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
        println!(
            "{name}: p50 {:.1} us, p99 {:.1} us over {} operations",
            at(0.50).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            all.len()
        );
        all.clear();
    }
}

/// A file of `size` zero bytes, written and synced, for overwrite benchmarks. Written one page
/// per write: the page cache keeps the folio size of the write that created a page, and small
/// overwrites of large folios cost more (see `segment::write_zero_filled`, which uses 16 KiB
/// writes for the same reason). This is the device at its best.
fn prewritten_file(path: &Path, size: u64) -> File {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let page = vec![0u8; 4096];
    for offset in (0..size).step_by(page.len()) {
        file.write_all_at(&page, offset).unwrap();
    }
    file.sync_all().unwrap();
    file
}

fn device(c: &mut Criterion) {
    let mut group = c.benchmark_group("device");
    group.measurement_time(Duration::from_secs(4));
    let dir = bench_dir();
    let size: u64 = 64 << 20;
    let file = prewritten_file(&dir.path().join("device.bin"), size);
    // 18,216 bytes is what one 64 x 256 B batch writes (`WalStats::bytes_written`: the entry
    // frames, the commit frame and the end marker): the raw device for exactly that shape.
    for write_bytes in [256usize, 4096, 18_216, 65536] {
        let buf = vec![0x5Au8; write_bytes];
        let latencies = Latencies::new();
        let mut offset = 0u64;
        group.throughput(Throughput::Bytes(write_bytes as u64));
        group.bench_function(BenchmarkId::new("overwrite_fdatasync", write_bytes), |b| {
            b.iter(|| {
                let started = Instant::now();
                file.write_all_at(&buf, offset).unwrap();
                file.sync_data().unwrap();
                latencies.record(started.elapsed());
                offset = (offset + write_bytes as u64) % (size - write_bytes as u64);
            })
        });
        latencies.report(&format!("device/overwrite_fdatasync/{write_bytes}"));
    }
    // Three files synced at once, as the three nodes of a one-machine test cluster do on every
    // commit: the flushes queue on the one device, so each takes longer than one alone. This is
    // the disk's floor under `cargo bench --bench node`.
    const FILES: usize = 3;
    let files: Vec<_> = (0..FILES)
        .map(|n| prewritten_file(&dir.path().join(format!("device-{n}.bin")), 4 << 20))
        .collect();
    let latencies = Latencies::new();
    group.throughput(Throughput::Elements(FILES as u64));
    group.bench_function(
        BenchmarkId::new("concurrent_fdatasync_4096", format!("{FILES}_files")),
        |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                std::thread::scope(|scope| {
                    for file in &files {
                        let latencies = &latencies;
                        scope.spawn(move || {
                            let buf = vec![0x5Au8; 4096];
                            for n in 0..iters {
                                let op = Instant::now();
                                file.write_all_at(&buf, (n % 1024) * 4096).unwrap();
                                file.sync_data().unwrap();
                                latencies.record(op.elapsed());
                            }
                        });
                    }
                });
                started.elapsed()
            })
        },
    );
    latencies.report(&format!(
        "device/concurrent_fdatasync_4096/{FILES}_files (each file's write + fdatasync)"
    ));
    // The same three flushes started together, timed until two have finished: what a commit
    // in a one-machine 3-node cluster waits for (a quorum of durable copies) before any CPU,
    // network or thread hand-off cost. The floor under `node/commit_latency`.
    let latencies = Latencies::new();
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("quorum_fdatasync_4096", format!("2_of_{FILES}")),
        |b| {
            b.iter_custom(|iters| {
                let start = Barrier::new(FILES);
                let finished: Vec<Mutex<Vec<Instant>>> =
                    (0..iters).map(|_| Mutex::new(Vec::new())).collect();
                let started: Vec<Mutex<Option<Instant>>> =
                    (0..iters).map(|_| Mutex::new(None)).collect();
                std::thread::scope(|scope| {
                    for file in &files {
                        let (start, finished, started) = (&start, &finished, &started);
                        scope.spawn(move || {
                            let buf = vec![0x5Au8; 4096];
                            for n in 0..iters as usize {
                                start.wait();
                                let now = Instant::now();
                                started[n].lock().unwrap().get_or_insert(now);
                                file.write_all_at(&buf, (n as u64 % 1024) * 4096).unwrap();
                                file.sync_data().unwrap();
                                finished[n].lock().unwrap().push(Instant::now());
                            }
                        });
                    }
                });
                let mut total = Duration::ZERO;
                for (begun, ends) in started.iter().zip(&finished) {
                    let begun = begun.lock().unwrap().expect("every round started");
                    let mut ends = ends.lock().unwrap();
                    ends.sort();
                    let quorum = ends[1].duration_since(begun);
                    latencies.record(quorum);
                    total += quorum;
                }
                total
            })
        },
    );
    latencies.report(&format!(
        "device/quorum_fdatasync_4096/2_of_{FILES} (three flushes started together, until two end)"
    ));
    group.finish();
}

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_sync");
    group.measurement_time(Duration::from_secs(4));
    for (batch, entry_bytes) in [
        (1usize, 256usize),
        (16, 256),
        (64, 256),
        (256, 256),
        (1, 4096),
        (16, 4096),
    ] {
        let dir = bench_dir();
        let mut wal = Wal::open(dir.path(), Options::default()).unwrap();
        let data = vec![0xA5u8; entry_bytes];
        warm_up_to_steady_state(&mut wal, entry_bytes);
        let latencies = Latencies::new();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new(format!("{entry_bytes}B"), batch), |b| {
            b.iter(|| {
                let first = wal.last_index() + 1;
                let entries: Vec<Entry> = (first..first + batch as u64)
                    .map(|index| Entry::new(index, 1, data.clone()))
                    .collect();
                let started = Instant::now();
                wal.append(&entries).unwrap();
                wal.sync().unwrap();
                latencies.record(started.elapsed());
                compact_like_raft(&mut wal, entry_bytes);
            })
        });
        latencies.report(&format!("append_sync/{entry_bytes}B/{batch}"));
    }
    group.finish();
}

/// Fills a fresh log (unsynced, fast) until compaction has recycled segments, so the measurement
/// sees the steady state of a long-running node: new segments come from reused files, not from
/// zero-filling (which a fresh log pays for its first few segments, see the README).
fn warm_up_to_steady_state(wal: &mut Wal, entry_bytes: usize) {
    let data = vec![0x11u8; entry_bytes];
    // Batches of about a page, as a busy node writes them: the page cache keeps the folio size
    // of the write that first dirtied a page, so 1 MiB warm-up batches would leave every
    // recycled segment in large folios, which the small appends measured here then pay for.
    let per_batch = (4096 / entry_bytes as u64).max(1);
    while wal.stats().segments_deleted < 2 {
        let first = wal.last_index() + 1;
        let entries: Vec<Entry> = (first..first + per_batch)
            .map(|index| Entry::new(index, 1, data.clone()))
            .collect();
        wal.append(&entries).unwrap();
        compact_like_raft(wal, entry_bytes);
    }
    wal.sync().unwrap();
}

/// Keeps the log at about three segments by compacting its prefix, as snapshots would.
fn compact_like_raft(wal: &mut Wal, entry_bytes: usize) {
    let segment_entries = (64 << 20) / (entry_bytes as u64 + 28);
    if wal.last_index() - wal.first_index() > 3 * segment_entries {
        wal.compact_prefix(wal.last_index() - segment_entries)
            .unwrap();
    }
}

fn group_commit(c: &mut Criterion) {
    const THREADS: usize = 8;
    let mut group = c.benchmark_group("group_commit");
    group.measurement_time(Duration::from_secs(4));
    let dir = bench_dir();
    let log = Arc::new(GroupCommit::new(
        Wal::open(dir.path(), Options::default()).unwrap(),
    ));
    group.throughput(Throughput::Elements(THREADS as u64));
    let data = vec![7u8; 256];
    let before = log.stats();
    group.bench_function(
        BenchmarkId::new("256B", format!("{THREADS}_threads")),
        |b| {
            b.iter_custom(|iters| {
                let barrier = Arc::new(Barrier::new(THREADS + 1));
                let workers: Vec<_> = (0..THREADS)
                    .map(|_| {
                        let log = Arc::clone(&log);
                        let barrier = Arc::clone(&barrier);
                        let data = data.clone();
                        std::thread::spawn(move || {
                            barrier.wait();
                            for _ in 0..iters {
                                log.append(1, &[&data]).unwrap();
                            }
                        })
                    })
                    .collect();
                barrier.wait();
                let started = Instant::now();
                for worker in workers {
                    worker.join().unwrap();
                }
                started.elapsed()
            })
        },
    );
    let after = log.stats();
    let entries = after.batches - before.batches;
    println!(
        "group_commit/{THREADS}_threads: {entries} entries, {} fdatasyncs, {:.3} fdatasyncs per entry",
        after.syncs - before.syncs,
        (after.syncs - before.syncs) as f64 / entries.max(1) as f64
    );
    group.finish();
}

fn reopen_1gib(c: &mut Criterion) {
    let mut group = c.benchmark_group("reopen_1gib");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let dir = bench_dir();
    let total_bytes: u64 = 1 << 30;
    let entry_bytes = 4096usize;
    {
        let mut wal = Wal::open(dir.path(), Options::default()).unwrap();
        let data = vec![0x3Cu8; entry_bytes];
        let mut written = 0;
        while written < total_bytes {
            let first = wal.last_index() + 1;
            let entries: Vec<Entry> = (first..first + 256)
                .map(|i| Entry::new(i, 1, data.clone()))
                .collect();
            wal.append(&entries).unwrap();
            written += 256 * entry_bytes as u64;
        }
        wal.sync().unwrap();
    }
    group.bench_function("open", |b| {
        b.iter(|| {
            let wal = Wal::open(
                dir.path(),
                Options {
                    prepare_segments_ahead: false,
                    ..Options::default()
                },
            )
            .unwrap();
            assert!(wal.last_index() >= total_bytes / entry_bytes as u64);
            wal
        })
    });
    let wal = Wal::open(
        dir.path(),
        Options {
            prepare_segments_ahead: false,
            ..Options::default()
        },
    )
    .unwrap();
    let last = wal.last_index();
    group.throughput(Throughput::Bytes(last * entry_bytes as u64));
    group.bench_function("read_all_verified", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            let mut next = wal.first_index();
            while next <= last {
                let end = (next + 1024).min(last + 1);
                for entry in wal.entries(next..end).unwrap() {
                    bytes += entry.data.len();
                }
                next = end;
            }
            assert_eq!(bytes as u64, last * entry_bytes as u64);
        })
    });
    group.bench_function("for_each_entry_verified", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            wal.for_each_entry(wal.first_index()..last + 1, |_, _, data| {
                bytes += data.len()
            })
            .unwrap();
            assert_eq!(bytes as u64, last * entry_bytes as u64);
        })
    });
    group.finish();
}

criterion_group!(benches, device, append_sync, group_commit, reopen_1gib);
criterion_main!(benches);

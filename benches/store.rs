//! `LogStore` benchmarks: many groups' logs in one write-ahead log.
//!
//! - `store_write/{1,100,10000}_groups`: 4 writer threads, each owning a quarter of the groups
//!   (a group has one writer, so the one-group case has one),
//!   append batches of 1-4 x 256 B with `write(batch, true)`; every group is compacted to its
//!   newest 256 entries once it holds 512, and every hundredth group never compacts (a lagging
//!   follower), so garbage collection has to rewrite. After each measurement it prints fsyncs per
//!   batch, disk bytes over live bytes, and the index's memory per live entry and per group.
//! - `store_write_one_group_wal`: the same writers through one `Wal` behind `GroupCommit`, on
//!   the same disk in the same run: what the shared store costs against today's single log.
//! - `store_open/10000_groups`: opening a store of 10,000 groups holding 416 entries of 256 B
//!   each, about 1 GiB of log (warm page cache).
//! - `store_read/10000_groups`: reading one group's newest 256 entries back from that store,
//!   zero-copy, with checksums.
//!
//! Run: `cargo bench --bench store` (set `KETCH_BENCH_DIR` to put the files on another disk).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ketch_storage::{Entry, GroupCommit, LogStore, Options, StoreBatch, Wal};

const THREADS: u64 = 4;
const ENTRY_BYTES: usize = 256;
const COMPACT_AT: u64 = 512;
const KEEP: u64 = 256;
const LAGGING_EVERY: u64 = 100;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("KETCH_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(PathBuf::from(base)).unwrap(),
        // Cargo's scratch directory for benches: on the same disk as the build, never a tmpfs.
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
    }
}

fn options() -> Options {
    Options {
        segment_size_bytes: 16 << 20,
        ..Options::default()
    }
}

/// xorshift64, seeded per thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One writer's groups and where each stands.
struct Writer {
    groups: Vec<(u64, u64)>, // (group, next index)
    rng: Rng,
}

impl Writer {
    fn new(thread: u64, groups: u64) -> Self {
        Writer {
            groups: (1..=groups)
                .filter(|g| g % THREADS == thread)
                .map(|g| (g, 1))
                .collect(),
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (thread + 1)),
        }
    }

    /// One synced batch to one of this writer's groups; returns the entries written.
    fn step(&mut self, store: &LogStore, payload: &[u8]) -> u64 {
        if self.groups.is_empty() {
            return 0;
        }
        let slot = self.rng.below(self.groups.len() as u64) as usize;
        let (group, next) = self.groups[slot];
        let count = 1 + self.rng.below(4);
        let mut batch = StoreBatch::new();
        batch.append(
            group,
            (next..next + count)
                .map(|i| Entry::new(i, 1, payload.to_vec()))
                .collect(),
        );
        store.write(batch, true).unwrap();
        let next = next + count;
        self.groups[slot].1 = next;
        let held = next - store.first_index(group);
        if group % LAGGING_EVERY != 0 && held > COMPACT_AT {
            store.compact_prefix(group, next - KEEP).unwrap();
        }
        count
    }
}

/// Runs the 4 writers against `store` until `batches` batches are written in total.
fn run_writers(store: &Arc<LogStore>, writers: &mut [Writer], batches: u64) -> Duration {
    let remaining = Arc::new(AtomicU64::new(batches));
    let payload = vec![0xA5u8; ENTRY_BYTES];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for writer in writers.iter_mut() {
            let (store, remaining, payload) = (Arc::clone(store), Arc::clone(&remaining), &payload);
            scope.spawn(move || {
                while remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    writer.step(&store, payload);
                }
            });
        }
    });
    started.elapsed()
}

fn report(name: &str, store: &LogStore, before: (u64, u64)) {
    let stats = store.stats();
    let batches = stats.batches - before.0;
    let syncs = stats.syncs - before.1;
    println!(
        "{name}: {:.3} fsyncs per batch, disk {:.2}x live ({} / {} bytes), index {:.1} B per live \
         entry, {:.0} B per group ({} groups, {} live entries)",
        syncs as f64 / batches.max(1) as f64,
        stats.disk_bytes as f64 / stats.live_bytes.max(1) as f64,
        stats.disk_bytes,
        stats.live_bytes,
        stats.index_bytes as f64 / stats.live_entries.max(1) as f64,
        stats.index_bytes as f64 / stats.groups.max(1) as f64,
        stats.groups,
        stats.live_entries,
    );
}

fn store_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_write");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    for groups in [1u64, 100, 10_000] {
        let dir = bench_dir();
        let store = Arc::new(LogStore::open(dir.path(), options()).unwrap());
        let mut writers: Vec<Writer> = (0..THREADS).map(|t| Writer::new(t, groups)).collect();
        writers.retain(|w| !w.groups.is_empty());
        let before = {
            let s = store.stats();
            (s.batches, s.syncs)
        };
        group.bench_function(
            BenchmarkId::from_parameter(format!("{groups}_groups")),
            |b| b.iter_custom(|iters| run_writers(&store, &mut writers, iters)),
        );
        report(&format!("store_write/{groups}_groups"), &store, before);
    }
    group.finish();
}

fn store_write_one_group_wal(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_write_one_group_wal");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    let dir = bench_dir();
    let log = Arc::new(GroupCommit::new(Wal::open(dir.path(), options()).unwrap()));
    let payload = vec![0xA5u8; ENTRY_BYTES];
    group.bench_function("4_threads", |b| {
        b.iter_custom(|iters| {
            let remaining = Arc::new(AtomicU64::new(iters));
            let started = Instant::now();
            std::thread::scope(|scope| {
                for thread in 0..THREADS {
                    let (log, remaining, payload) =
                        (Arc::clone(&log), Arc::clone(&remaining), &payload);
                    scope.spawn(move || {
                        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (thread + 1));
                        while remaining
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_ok()
                        {
                            let count = 1 + rng.below(4) as usize;
                            let payloads: Vec<&[u8]> = vec![payload.as_slice(); count];
                            log.append(1, &payloads).unwrap();
                        }
                    });
                }
            });
            log.with_wal(|wal| {
                if wal.last_index() - wal.first_index() > 2 * COMPACT_AT {
                    wal.compact_prefix(wal.last_index() - KEEP).unwrap();
                }
            });
            started.elapsed()
        })
    });
    group.finish();
}

/// A store of `groups` groups holding `per_group` entries each, synced and closed.
fn filled_store(groups: u64, per_group: u64) -> tempfile::TempDir {
    let dir = bench_dir();
    let store = LogStore::open(dir.path(), options()).unwrap();
    let payload = vec![0x5Au8; ENTRY_BYTES];
    for round in 0..per_group / 8 {
        let mut batch = StoreBatch::new();
        for g in 1..=groups {
            let lo = 1 + round * 8;
            batch.append(
                g,
                (lo..lo + 8)
                    .map(|i| Entry::new(i, 1, payload.clone()))
                    .collect(),
            );
            if g % 500 == 0 {
                store.write(std::mem::take(&mut batch), false).unwrap();
            }
        }
        store.write(batch, false).unwrap();
    }
    store.sync().unwrap();
    dir
}

fn store_open_and_read(c: &mut Criterion) {
    let groups = 10_000;
    let per_group = 416;
    let dir = filled_store(groups, per_group);
    let mut group = c.benchmark_group("store_open");
    group.sample_size(10);
    group.bench_function(
        BenchmarkId::from_parameter(format!("{groups}_groups")),
        |b| b.iter(|| LogStore::open(dir.path(), options()).unwrap()),
    );
    group.finish();
    let store = LogStore::open(dir.path(), options()).unwrap();
    let stats = store.stats();
    println!(
        "store_open/{groups}_groups: {} segments, {} bytes on disk, {} live entries",
        stats.segments, stats.disk_bytes, stats.live_entries
    );
    let mut group = c.benchmark_group("store_read");
    group.throughput(Throughput::Elements(KEEP));
    let mut g = 0;
    group.bench_function(
        BenchmarkId::from_parameter(format!("{groups}_groups")),
        |b| {
            b.iter(|| {
                g = g % groups + 1;
                let mut bytes = 0;
                store
                    .for_each_entry(g, per_group + 1 - KEEP..per_group + 1, |_, _, data| {
                        bytes += data.len()
                    })
                    .unwrap();
                assert_eq!(bytes, KEEP as usize * ENTRY_BYTES);
            })
        },
    );
    group.finish();
}

criterion_group!(
    benches,
    store_write,
    store_write_one_group_wal,
    store_open_and_read
);
criterion_main!(benches);

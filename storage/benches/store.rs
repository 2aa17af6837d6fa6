//! `LogStore` benchmarks: many groups written by 4 threads with synced batches (w5-like: batches
//! of 1-4 x 256 B, each group compacted to its newest 256 entries once it holds 512), open time,
//! and read-back. Each write benchmark prints, after criterion's timing, what the timing does not
//! show: fsyncs per batch, disk bytes over live bytes, and index memory.
//!
//! `cargo bench -p ketch-storage --bench store` (`KETCH_BENCH_DIR=DIR` puts the files on another
//! disk; `KETCH_STORE_OPEN_MIB=1024` sizes the open benchmark's log, default 256).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ketch_storage::{Entry, LogStore, Options, StoreBatch};

const WRITERS: u64 = 4;
const ENTRY_BYTES: usize = 256;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("KETCH_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(PathBuf::from(dir)).unwrap(),
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
    }
}

fn options() -> Options {
    Options {
        segment_size_bytes: 16 << 20,
        ..Options::default()
    }
}

/// Per-group next index and compaction point, owned by the group's writer thread.
struct Writer {
    groups: Vec<u64>,
    next: Vec<u64>,
    first: Vec<u64>,
    rng: u64,
}

impl Writer {
    fn step(&mut self, store: &LogStore, payload: &[u8]) {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let slot = (self.rng % self.groups.len() as u64) as usize;
        let group = self.groups[slot];
        let count = 1 + (self.rng >> 32) % 4;
        let start = self.next[slot];
        let entries = (start..start + count)
            .map(|index| Entry::new(index, 1, payload.to_vec()))
            .collect();
        let mut batch = StoreBatch::new();
        batch.append(group, entries);
        store.write(batch, true).unwrap();
        self.next[slot] = start + count;
        if self.next[slot] - self.first[slot] > 512 {
            self.first[slot] = self.next[slot] - 256;
            store.compact_prefix(group, self.first[slot]).unwrap();
        }
    }
}

fn write_groups(c: &mut Criterion) {
    let payload = vec![0xa5u8; ENTRY_BYTES];
    for groups in [1u64, 100, 10_000] {
        let dir = bench_dir();
        let store = Arc::new(LogStore::open(dir.path(), options()).unwrap());
        let writers: Vec<_> = (0..WRITERS)
            .map(|thread| {
                let mine: Vec<u64> = (0..groups).filter(|g| g % WRITERS == thread).collect();
                std::sync::Mutex::new(Writer {
                    next: vec![1; mine.len()],
                    first: vec![1; mine.len()],
                    groups: mine,
                    rng: 0x9e37_79b9 + thread,
                })
            })
            .collect();
        let writers = Arc::new(writers);
        let mut name = format!("store_write/{groups}_groups_4_threads");
        let threads = if groups < WRITERS { groups } else { WRITERS };
        name.push_str(if threads == 1 { "(1 thread)" } else { "" });
        c.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                let remaining = Arc::new(AtomicU64::new(iters));
                let handles: Vec<_> = (0..threads)
                    .map(|thread| {
                        let store = Arc::clone(&store);
                        let writers = Arc::clone(&writers);
                        let remaining = Arc::clone(&remaining);
                        let payload = payload.clone();
                        std::thread::spawn(move || {
                            let mut writer = writers[thread as usize].lock().unwrap();
                            // Bounded: `iters` batches in all.
                            while remaining
                                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok()
                            {
                                writer.step(&store, &payload);
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.join().unwrap();
                }
                started.elapsed()
            })
        });
        let stats = store.stats();
        println!(
            "{name}: batches {} syncs {} fsyncs/batch {:.3}; live {} entries, {} bytes; disk {} bytes \
             ({:.2}x live); index {} bytes ({:.1} B per live entry, {:.1} B per group); \
             rewritten {} bytes; segments {}",
            stats.batches,
            stats.syncs,
            stats.syncs as f64 / stats.batches.max(1) as f64,
            stats.live_entries,
            stats.live_bytes,
            stats.disk_bytes,
            stats.disk_bytes as f64 / stats.live_bytes.max(1) as f64,
            stats.index_bytes,
            stats.index_bytes as f64 / stats.live_entries.max(1) as f64,
            stats.index_bytes as f64 / stats.groups.max(1) as f64,
            stats.rewritten_bytes,
            stats.segments,
        );
    }
}

fn open_time(c: &mut Criterion) {
    let groups = 10_000u64;
    let mib: u64 = std::env::var("KETCH_STORE_OPEN_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = bench_dir();
    let payload = vec![0x5au8; 1024];
    {
        let store = LogStore::open(dir.path(), options()).unwrap();
        let entries_total = (mib << 20) / (payload.len() as u64 + 36);
        let per_group = entries_total / groups;
        for index in 1..=per_group {
            let mut batch = StoreBatch::new();
            for group in 0..groups {
                batch.append(group, vec![Entry::new(index, 1, payload.clone())]);
                if batch.len() == 64 {
                    store.write(std::mem::take(&mut batch), false).unwrap();
                }
            }
            store.write(batch, false).unwrap();
        }
        store.sync().unwrap();
        let stats = store.stats();
        println!(
            "store_open setup: {groups} groups, {} live entries, {} MiB live, {} segments",
            stats.live_entries,
            stats.live_bytes >> 20,
            stats.segments
        );
    }
    let mut group = c.benchmark_group("store_open");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function(format!("10000_groups_{mib}_MiB"), |b| {
        b.iter(|| {
            let store = LogStore::open(dir.path(), options()).unwrap();
            assert_eq!(store.groups().len() as u64, groups);
            store
        })
    });
    group.finish();
}

fn read_back(c: &mut Criterion) {
    let dir = bench_dir();
    let store = LogStore::open(dir.path(), options()).unwrap();
    let payload = vec![1u8; ENTRY_BYTES];
    for index in 1..=4096u64 {
        let mut batch = StoreBatch::new();
        for group in 0..8 {
            batch.append(group, vec![Entry::new(index, 1, payload.clone())]);
        }
        store.write(batch, false).unwrap();
    }
    store.sync().unwrap();
    c.bench_function("store_read/for_each_entry_256_of_256B", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            store
                .for_each_entry(3, 1000..1256, |_, _, data| bytes += data.len())
                .unwrap();
            bytes
        })
    });
    c.bench_function("store_read/entries_256_of_256B", |b| {
        b.iter(|| store.entries(5, 2000..2256).unwrap())
    });
}

criterion_group!(benches, write_groups, open_time, read_back);
criterion_main!(benches);

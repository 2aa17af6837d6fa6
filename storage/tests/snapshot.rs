//! Behaviour of the snapshot store through its public API: round trips from empty to more than
//! 1 GiB (streamed, in a child process whose peak memory is checked), corruption of header, body
//! and length, fallback to an older snapshot, retention, raw transfer between stores, and crash
//! safety against a real process killed with SIGKILL at random moments.
//!
//! Child processes are this test binary re-executed with `KETCH_SNAPSHOT_CHILD` set; see
//! [`child_process_entry`].

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ketch_storage::snapshot::{
    storage_error, verify_file, SnapshotMeta, SnapshotOptions, SnapshotStore,
};
use ketch_storage::Error;

mod support;

const CHILD_ENV: &str = "KETCH_SNAPSHOT_CHILD";

// ---------------------------------------------------------------------------------------------
// Key-value-like content, generated on the fly so no test holds a whole snapshot in memory.
// ---------------------------------------------------------------------------------------------

/// Deterministic key-value-like bytes: `user:000123\t{"name":...}\n` records with values of
/// 16-512 bytes of JSON-ish text, exactly `len_bytes` long, the same for the same seed.
struct KvContent {
    rng_state: u64,
    next_key: u64,
    remaining_bytes: u64,
    record: Vec<u8>,
    record_pos: usize,
}

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

impl KvContent {
    fn new(seed: u64, len_bytes: u64) -> KvContent {
        KvContent {
            rng_state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            next_key: seed % 1_000_000,
            remaining_bytes: len_bytes,
            record: Vec::with_capacity(1024),
            record_pos: 0,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic, fast, good enough for test data.
        self.rng_state ^= self.rng_state >> 12;
        self.rng_state ^= self.rng_state << 25;
        self.rng_state ^= self.rng_state >> 27;
        self.rng_state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn refill(&mut self) {
        self.record.clear();
        self.record_pos = 0;
        let key = self.next_key % 1_000_000;
        self.next_key += 1 + self.next_random() % 3;
        let value_len = 16 + (self.next_random() % 497) as usize;
        write!(self.record, "user:{key:06}\t").unwrap();
        let start = self.record.len();
        let age = self.next_random() % 90;
        write!(self.record, "{{\"id\":{key},\"age\":{age},\"tags\":[").unwrap();
        while self.record.len() - start < value_len {
            let word = WORDS[(self.next_random() % WORDS.len() as u64) as usize];
            // Byte pushes, not write!: generation must not dominate the 1 GiB test's time.
            self.record.push(b'"');
            self.record.extend_from_slice(word.as_bytes());
            self.record.extend_from_slice(b"\",");
        }
        self.record.truncate(start + value_len);
        self.record.extend_from_slice(b"]}\n");
    }
}

impl Read for KvContent {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() && self.remaining_bytes > 0 {
            if self.record_pos == self.record.len() {
                self.refill();
            }
            let n = (self.record.len() - self.record_pos)
                .min(buf.len() - filled)
                .min(self.remaining_bytes as usize);
            buf[filled..filled + n]
                .copy_from_slice(&self.record[self.record_pos..self.record_pos + n]);
            self.record_pos += n;
            filled += n;
            self.remaining_bytes -= n as u64;
        }
        Ok(filled)
    }
}

/// A sink that only counts and checksums.
#[derive(Default)]
struct Digest {
    hasher: crc32fast::Hasher,
    len_bytes: u64,
}

impl Write for Digest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.len_bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn digest_of(mut source: impl Read) -> io::Result<(u64, u32)> {
    let mut digest = Digest::default();
    io::copy(&mut source, &mut digest)?;
    Ok((digest.len_bytes, digest.hasher.finalize()))
}

/// Writes `len_bytes` of content for `seed` as snapshot `(index, term)`.
fn write_snapshot(
    store: &SnapshotStore,
    index: u64,
    term: u64,
    seed: u64,
    len_bytes: u64,
) -> SnapshotMeta {
    let mut writer = store
        .begin(index, term, format!("voters={index}").as_bytes())
        .unwrap();
    io::copy(&mut KvContent::new(seed, len_bytes), &mut writer).unwrap();
    writer.finish().unwrap()
}

fn read_all(store: &SnapshotStore, meta: &SnapshotMeta) -> Vec<u8> {
    let mut content = Vec::new();
    store
        .open_reader(meta)
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    content
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn temp_files_in(dir: &Path) -> Vec<String> {
    files_in(dir)
        .into_iter()
        .filter(|n| n.ends_with(".snap.tmp"))
        .collect()
}

fn open_store(dir: &Path, retain: usize) -> SnapshotStore {
    SnapshotStore::open(
        dir,
        SnapshotOptions {
            retain,
            ..SnapshotOptions::default()
        },
    )
    .unwrap()
}

fn expect_corruption_of(err: Error, path: &Path) -> (u64, String) {
    match err {
        Error::Corruption {
            path: p,
            offset,
            reason,
            ..
        } => {
            assert_eq!(p, path, "the error must name the damaged file");
            (offset, reason)
        }
        other => panic!("expected corruption of {}, got {other}", path.display()),
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x5A], offset).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_snapshot_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let meta = store.begin(7, 2, b"").unwrap().finish().unwrap();
    assert_eq!((meta.index, meta.term, meta.uncompressed_bytes), (7, 2, 0));
    assert_eq!(meta.checksum, crc32fast::hash(b""));
    assert_eq!(
        fs::metadata(&meta.path).unwrap().len(),
        meta.file_len_bytes()
    );
    assert!(read_all(&store, &meta).is_empty());
    assert_eq!(verify_file(&meta.path).unwrap(), meta);
}

#[test]
fn one_byte_snapshot_round_trips_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let mut writer = store.begin(1, 1, b"voters=1").unwrap();
    writer.write_all(b"x").unwrap();
    let meta = writer.finish().unwrap();
    assert_eq!(
        meta.path.file_name().unwrap(),
        "snap-00000000000000000001-00000000000000000001.snap"
    );
    drop(store);
    let store = open_store(dir.path(), 2);
    assert_eq!(store.list(), vec![meta.clone()]);
    assert_eq!(store.latest().unwrap().membership, b"voters=1");
    assert_eq!(read_all(&store, &meta), b"x");
}

#[test]
fn several_mib_of_key_value_data_round_trip_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let len_bytes = 6 << 20;
    let meta = write_snapshot(&store, 5000, 3, 42, len_bytes);
    let mut expected = Vec::new();
    KvContent::new(42, len_bytes)
        .read_to_end(&mut expected)
        .unwrap();
    assert_eq!(meta.uncompressed_bytes, len_bytes);
    assert_eq!(meta.checksum, crc32fast::hash(&expected));
    assert!(
        meta.compression_ratio() > 2.0,
        "key-value data should compress, got ratio {:.2}",
        meta.compression_ratio()
    );
    assert!(
        read_all(&store, &meta) == expected,
        "content differs after the round trip"
    );
}

#[test]
fn reader_finish_verifies_what_a_partial_read_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let meta = write_snapshot(&store, 10, 1, 1, 1 << 20);
    let mut reader = store.open_reader(&meta).unwrap();
    let mut prefix = [0u8; 100];
    reader.read_exact(&mut prefix).unwrap();
    assert_eq!(reader.produced_bytes(), 100);
    assert_eq!(reader.finish().unwrap(), meta);

    // The same partial read over a damaged tail: only finish() notices.
    flip_byte(&meta.path, meta.file_len_bytes() - 3);
    let mut reader = store.open_reader(&meta).unwrap();
    reader.read_exact(&mut prefix).unwrap();
    expect_corruption_of(reader.finish().unwrap_err(), &meta.path);
}

#[test]
fn rewriting_the_same_index_and_term_replaces_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    write_snapshot(&store, 10, 1, 1, 1000);
    let second = write_snapshot(&store, 10, 1, 2, 2000);
    assert_eq!(store.list(), vec![second.clone()]);
    assert_eq!(read_all(&store, &second).len(), 2000);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(24))]

    /// However the content is cut into writes and reads, it comes back byte for byte.
    #[test]
    fn any_write_and_read_chunking_round_trips(
        len_bytes in 0u64..300_000,
        seed in 0u64..1000,
        write_chunk_bytes in 1usize..70_000,
        read_chunk_bytes in 1usize..70_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), 2);
        let mut expected = Vec::new();
        KvContent::new(seed, len_bytes).read_to_end(&mut expected).unwrap();
        let mut writer = store.begin(seed, 1, b"m").unwrap();
        for chunk in expected.chunks(write_chunk_bytes) {
            writer.write_all(chunk).unwrap();
        }
        let meta = writer.finish().unwrap();
        let mut reader = store.open_reader(&meta).unwrap();
        let mut actual = Vec::new();
        let mut buf = vec![0u8; read_chunk_bytes];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            actual.extend_from_slice(&buf[..n]);
        }
        proptest::prop_assert!(actual == expected, "content differs");
        proptest::prop_assert_eq!(meta.uncompressed_bytes, len_bytes);
    }
}

#[test]
fn an_unreadable_path_is_an_io_error_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(verify_file(dir.path()), Err(Error::Io { .. })));
    let missing = dir
        .path()
        .join("snap-00000000000000000001-00000000000000000001.snap");
    match verify_file(&missing) {
        Err(Error::Io { source, path, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
            assert_eq!(path, missing);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn membership_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let huge = vec![0u8; ketch_storage::snapshot::MEMBERSHIP_MAX_BYTES as usize + 1];
    assert!(matches!(
        store.begin(1, 1, &huge),
        Err(Error::Misuse { .. })
    ));
    assert!(files_in(dir.path()).is_empty());
}

/// More than 1 GiB streamed through a snapshot in a child process, whose peak resident memory
/// must stay far below the snapshot's size (measured: about 5.5 MiB). In release builds on the
/// 2-vCPU machine it takes 7.5 s alone and up to 21 s beside this file's other tests; debug
/// builds compile zstd without optimisation and take about 60 s, so there it runs only on
/// request (`cargo test -p ketch-storage --test snapshot -- --ignored`).
#[test]
#[cfg_attr(debug_assertions, ignore = "minutes in debug builds; runs in release")]
fn more_than_one_gib_streams_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child(
        &format!("huge:{}", dir.path().display()),
        Duration::from_secs(300),
    );
    let report = output
        .lines()
        .find_map(|l| l.strip_prefix("huge-report "))
        .unwrap_or_else(|| panic!("child printed no report:\n{output}"));
    eprintln!("{report}");
    let peak_rss_kib: u64 = report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("peak_rss_kib="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        peak_rss_kib < 96 * 1024,
        "peak RSS {peak_rss_kib} KiB is not bounded: {report}"
    );
}

/// The body of [`more_than_one_gib_streams_with_bounded_memory`], run in a fresh process so its
/// peak RSS is its own.
fn huge_child(dir: &Path) {
    const LEN_BYTES: u64 = (1 << 30) + (64 << 20);
    let started = Instant::now();
    let store = open_store(dir, 2);
    let mut writer = store.begin(1_000_000, 9, b"voters=1,2,3").unwrap();
    let mut source = KvContent::new(7, LEN_BYTES);
    let mut expected = Digest::default();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = source.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        expected.write_all(&chunk[..n]).unwrap();
        writer.write_all(&chunk[..n]).unwrap();
    }
    let meta = writer.finish().unwrap();
    let written = started.elapsed();
    let (read_len, read_crc) = digest_of(store.open_reader(&meta).unwrap()).unwrap();
    assert_eq!(read_len, LEN_BYTES);
    assert_eq!(read_crc, expected.hasher.finalize());
    assert_eq!(meta.checksum, read_crc);
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    println!(
        "huge-report bytes={LEN_BYTES} compressed={} ratio={:.2} write_s={:.1} total_s={:.1} peak_rss_kib={peak_rss_kib}",
        meta.compressed_bytes,
        meta.compression_ratio(),
        written.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------------------------

#[test]
fn damaged_header_is_corruption_naming_the_file_and_is_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let good = write_snapshot(&store, 10, 1, 1, 100_000);
    let bad = write_snapshot(&store, 20, 1, 2, 100_000);
    drop(store);
    for offset in [0u64, 9, 13, 17, 33, 40, 50, 60] {
        flip_byte(&bad.path, offset);
        expect_corruption_of(verify_file(&bad.path).unwrap_err(), &bad.path);
        flip_byte(&bad.path, offset);
    }
    flip_byte(&bad.path, 20); // inside the index field
    let (offset, reason) = expect_corruption_of(verify_file(&bad.path).unwrap_err(), &bad.path);
    assert!(reason.contains("header checksum"), "{reason}");
    assert_eq!(
        offset,
        60 + bad.membership.len() as u64,
        "the header crc field"
    );
    let store = open_store(dir.path(), 2);
    assert_eq!(
        store.list(),
        vec![good.clone()],
        "a damaged header must not be listed"
    );
    assert!(bad.path.exists(), "damaged files are left for an operator");
    assert_eq!(store.open_latest_valid().unwrap().unwrap().meta(), &good);
}

#[test]
fn damaged_body_fails_reads_and_open_latest_valid_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let older = write_snapshot(&store, 10, 1, 1, 2 << 20);
    let newer = write_snapshot(&store, 20, 2, 2, 2 << 20);
    let header_len = newer.file_len_bytes() - newer.compressed_bytes;
    flip_byte(&newer.path, header_len + newer.compressed_bytes / 2);

    let (offset, _) = expect_corruption_of(verify_file(&newer.path).unwrap_err(), &newer.path);
    assert!(
        offset >= header_len && offset <= newer.file_len_bytes(),
        "offset {offset}"
    );

    // Through Read, the error is InvalidData and carries the typed corruption.
    let mut sink = Vec::new();
    let err = store
        .open_reader(&newer)
        .unwrap()
        .read_to_end(&mut sink)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    expect_corruption_of(storage_error(err, "read", Path::new("?")), &newer.path);

    // Reopened so the store's catalog starts from the disk, as after a restart.
    drop(store);
    let store = open_store(dir.path(), 2);
    assert_eq!(
        store.latest().unwrap(),
        newer,
        "the header is fine, so it is listed"
    );
    let reader = store
        .open_latest_valid()
        .unwrap()
        .expect("the older snapshot is still valid");
    assert_eq!(reader.meta(), &older);
    assert_eq!(reader.finish().unwrap(), older);
    assert_eq!(
        store.latest().unwrap(),
        older,
        "the damaged one is dropped from the list"
    );
}

#[test]
fn truncated_and_extended_files_are_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 3);
    let meta = write_snapshot(&store, 10, 1, 1, 500_000);
    let original = fs::read(&meta.path).unwrap();
    for len in [
        0,
        10,
        59,
        60 + meta.membership.len() as u64,
        meta.file_len_bytes() - 1,
    ] {
        fs::write(&meta.path, &original[..len as usize]).unwrap();
        expect_corruption_of(verify_file(&meta.path).unwrap_err(), &meta.path);
        expect_corruption_of(store.open_reader(&meta).unwrap_err(), &meta.path);
    }
    let mut extended = original.clone();
    extended.extend_from_slice(b"trailing");
    fs::write(&meta.path, &extended).unwrap();
    expect_corruption_of(verify_file(&meta.path).unwrap_err(), &meta.path);
    fs::write(&meta.path, &original).unwrap();
    assert_eq!(verify_file(&meta.path).unwrap(), meta);
}

#[test]
fn every_single_byte_flip_in_a_small_snapshot_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let meta = write_snapshot(&store, 3, 1, 9, 3000);
    let original = fs::read(&meta.path).unwrap();
    for offset in 0..original.len() {
        let mut damaged = original.clone();
        damaged[offset] ^= 0x01;
        fs::write(&meta.path, &damaged).unwrap();
        match verify_file(&meta.path) {
            Err(err) => {
                expect_corruption_of(err, &meta.path);
            }
            Ok(_) => panic!(
                "a flipped bit at offset {offset} of {} went unnoticed",
                original.len()
            ),
        }
    }
}

#[test]
fn arbitrary_bytes_in_a_snapshot_file_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("snap-00000000000000000001-00000000000000000001.snap");
    let store = open_store(dir.path(), 2);
    let template = fs::read(write_snapshot(&store, 1, 1, 1, 5000).path).unwrap();
    let mut rng = KvContent::new(1234, 0);
    for round in 0..2000u64 {
        let mut bytes = template.clone();
        match round % 3 {
            0 => {
                let n = 1 + rng.next_random() % 8;
                for _ in 0..n {
                    let at = (rng.next_random() % bytes.len() as u64) as usize;
                    bytes[at] = rng.next_random() as u8;
                }
            }
            1 => bytes.truncate((rng.next_random() % bytes.len() as u64) as usize),
            _ => {
                let len = rng.next_random() % 300;
                bytes = (0..len).map(|_| rng.next_random() as u8).collect();
                if len > 8 && round % 2 == 0 {
                    bytes[..8].copy_from_slice(b"KETCHSNP");
                }
            }
        }
        fs::write(&path, &bytes).unwrap();
        if bytes != template {
            assert!(
                verify_file(&path).unwrap_err().is_corruption(),
                "round {round}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Temp files and retention
// ---------------------------------------------------------------------------------------------

#[test]
fn dropping_an_unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let mut writer = store.begin(5, 1, b"m").unwrap();
    writer.write_all(&[7u8; 100_000]).unwrap();
    assert_eq!(
        temp_files_in(dir.path()).len(),
        1,
        "the temp file exists while writing"
    );
    drop(writer);
    assert!(files_in(dir.path()).is_empty());
    assert!(store.list().is_empty());
}

#[test]
fn open_removes_leftover_temp_files_and_touches_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "snap-00000000000000000005-00000000000000000001-w3.snap.tmp",
        "snap-recv-9.snap.tmp",
        "00000000000000000001-00000000000000000001.wal",
        "wal.tmp",
        "notes.snap",
    ];
    for name in names {
        fs::write(dir.path().join(name), b"leftover").unwrap();
    }
    let store = open_store(dir.path(), 2);
    assert!(store.list().is_empty());
    assert_eq!(
        files_in(dir.path()),
        vec![
            "00000000000000000001-00000000000000000001.wal",
            "notes.snap",
            "wal.tmp"
        ]
    );
}

#[test]
fn open_creates_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/snapshots");
    let store = open_store(&nested, 2);
    write_snapshot(&store, 1, 1, 1, 10);
    assert_eq!(files_in(&nested).len(), 1);
}

#[test]
fn retention_keeps_the_newest_snapshots_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let mut metas = Vec::new();
    for i in 1..=5u64 {
        metas.push(write_snapshot(&store, i * 100, i, i, 10_000));
        let kept: Vec<u64> = store.list().iter().map(|m| m.index).collect();
        let want: Vec<u64> = (i.saturating_sub(1).max(1)..=i).map(|k| k * 100).collect();
        assert_eq!(kept, want, "after snapshot {i}");
    }
    assert_eq!(files_in(dir.path()).len(), 2);
    assert!(!metas[0].path.exists());
    assert!(metas[4].path.exists());

    // Reopening with a smaller retention applies it.
    drop(store);
    let store = open_store(dir.path(), 1);
    assert_eq!(store.list(), vec![metas[4].clone()]);
    assert_eq!(files_in(dir.path()).len(), 1);
}

#[test]
fn installing_a_snapshot_older_than_all_retained_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    write_snapshot(&store, 100, 2, 1, 1000);
    write_snapshot(&store, 200, 3, 2, 1000);
    let mut stale = store.begin(50, 1, b"").unwrap();
    stale.write_all(b"old state").unwrap();
    assert!(matches!(stale.finish(), Err(Error::Misuse { .. })));
    assert_eq!(
        files_in(dir.path()).len(),
        2,
        "neither the stale snapshot nor its temp file remain"
    );
    // Between the retained ones is fine: it pushes the oldest out.
    write_snapshot(&store, 150, 2, 3, 1000);
    let kept: Vec<u64> = store.list().iter().map(|m| m.index).collect();
    assert_eq!(kept, vec![150, 200]);
}

#[test]
fn retention_deletes_damaged_files_once_they_are_old() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 1);
    let damaged = write_snapshot(&store, 10, 1, 1, 1000);
    drop(store);
    flip_byte(&damaged.path, 3);
    let store = open_store(dir.path(), 1);
    assert!(store.list().is_empty());
    assert!(damaged.path.exists());
    write_snapshot(&store, 20, 1, 2, 1000);
    assert!(
        !damaged.path.exists(),
        "older than every retained snapshot, so removed"
    );
}

#[test]
fn invalid_options_are_misuse() {
    let dir = tempfile::tempdir().unwrap();
    let zero = SnapshotOptions {
        retain: 0,
        ..SnapshotOptions::default()
    };
    assert!(matches!(
        SnapshotStore::open(dir.path(), zero),
        Err(Error::Misuse { .. })
    ));
}

#[test]
fn level_three_round_trips_too() {
    let dir = tempfile::tempdir().unwrap();
    let options = SnapshotOptions {
        compression_level: 3,
        retain: 2,
    };
    let store = SnapshotStore::open(dir.path(), options).unwrap();
    let meta = write_snapshot(&store, 1, 1, 5, 1 << 20);
    assert_eq!(
        digest_of(store.open_reader(&meta).unwrap()).unwrap(),
        (1 << 20, meta.checksum)
    );
}

#[test]
fn shares_a_directory_with_the_write_ahead_log() {
    use ketch_storage::{Entry, Options, Wal};
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(&[Entry::new(1, 1, b"one".to_vec())]).unwrap();
    wal.sync().unwrap();
    let store = open_store(dir.path(), 2);
    let meta = write_snapshot(&store, 1, 1, 1, 10_000);
    drop((wal, store));
    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.last_index(), 1);
    let store = open_store(dir.path(), 2);
    assert_eq!(store.list(), vec![meta]);
}

#[test]
fn concurrent_installs_and_readers_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 2);
    let writers: Vec<_> = (0..2u64)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..15u64 {
                    let index = 1 + i * 2 + thread;
                    let mut writer = store.begin(index, 1, b"").unwrap();
                    io::copy(
                        &mut KvContent::new(index, 20_000 + index * 1000),
                        &mut writer,
                    )
                    .unwrap();
                    // Refused when the other thread already retained two newer ones; fine.
                    match writer.finish() {
                        Ok(_) | Err(Error::Misuse { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let writers_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader_store = store.clone();
    let reader_done = writers_done.clone();
    let reader = std::thread::spawn(move || {
        let mut verified = 0;
        // Bounded by the writers, which finish 30 small snapshots; one more pass after them.
        loop {
            let last_pass = reader_done.load(std::sync::atomic::Ordering::Acquire);
            if let Some(reader) = reader_store.open_latest_valid().unwrap() {
                let index = reader.meta().index;
                let expected = digest_of(KvContent::new(index, 20_000 + index * 1000)).unwrap();
                assert_eq!(digest_of(reader).unwrap(), expected, "snapshot {index}");
                verified += 1;
            }
            if last_pass {
                return verified;
            }
        }
    });
    for writer in writers {
        writer.join().unwrap();
    }
    writers_done.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    let kept: Vec<u64> = store.list().iter().map(|m| m.index).collect();
    assert_eq!(kept, vec![29, 30]);
    assert_eq!(files_in(dir.path()).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Raw transfer
// ---------------------------------------------------------------------------------------------

fn send(source: &SnapshotStore, meta: &SnapshotMeta, chunk_bytes: usize) -> Vec<Vec<u8>> {
    let raw = source.open_raw(meta).unwrap();
    assert_eq!(raw.len(), meta.file_len_bytes());
    let mut chunks = Vec::new();
    let mut offset = 0u64;
    loop {
        let mut chunk = vec![0u8; chunk_bytes];
        let n = raw.read_at(offset, &mut chunk).unwrap();
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        offset += n as u64;
        chunks.push(chunk);
    }
    assert_eq!(offset, raw.len());
    chunks
}

#[test]
fn raw_transfer_installs_an_identical_snapshot_despite_retransmits() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open_store(leader_dir.path(), 2);
    let follower = open_store(follower_dir.path(), 2);
    let meta = write_snapshot(&leader, 900, 4, 77, 3 << 20);
    let chunks = send(&leader, &meta, 64 << 10);
    assert!(chunks.len() > 2);

    let mut receiver = follower.begin_receive(Some(meta.file_len_bytes())).unwrap();
    let mut offset = 0u64;
    for (i, chunk) in chunks.iter().enumerate() {
        receiver.write_at(offset, chunk).unwrap();
        if i == 1 {
            // A retransmit of the chunk just written changes nothing.
            receiver.write_at(offset, chunk).unwrap();
        }
        offset += chunk.len() as u64;
    }
    assert_eq!(receiver.received_bytes(), meta.file_len_bytes());
    let installed = receiver.finish().unwrap();
    assert_eq!(
        installed.path,
        follower_dir.path().join(meta.path.file_name().unwrap())
    );
    assert_eq!(
        SnapshotMeta {
            path: meta.path.clone(),
            ..installed.clone()
        },
        meta
    );
    assert_eq!(
        fs::read(&installed.path).unwrap(),
        fs::read(&meta.path).unwrap()
    );
    assert_eq!(follower.latest().unwrap(), installed);
    assert!(temp_files_in(follower_dir.path()).is_empty());
}

#[test]
fn raw_transfer_rejects_damage_gaps_and_short_transfers() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open_store(leader_dir.path(), 2);
    let follower = open_store(follower_dir.path(), 2);
    let meta = write_snapshot(&leader, 900, 4, 77, 1 << 20);
    let chunks = send(&leader, &meta, 32 << 10);

    // Damaged in flight: finish finds it, nothing is installed, no temp file remains.
    let mut receiver = follower.begin_receive(None).unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut chunk = chunk.clone();
        if i == chunks.len() / 2 {
            chunk[100] ^= 0xFF;
        }
        receiver.append(&chunk).unwrap();
    }
    assert!(receiver.finish().unwrap_err().is_corruption());
    assert!(files_in(follower_dir.path()).is_empty());

    // A gap is refused at once.
    let mut receiver = follower.begin_receive(None).unwrap();
    receiver.append(&chunks[0]).unwrap();
    let gap_offset = chunks[0].len() as u64 + 1;
    assert!(matches!(
        receiver.write_at(gap_offset, &chunks[1]),
        Err(Error::Misuse { .. })
    ));
    drop(receiver);

    // Short of the expected length: refused; past it: refused.
    let mut receiver = follower.begin_receive(Some(meta.file_len_bytes())).unwrap();
    receiver.append(&chunks[0]).unwrap();
    assert!(matches!(receiver.finish(), Err(Error::Misuse { .. })));
    let mut receiver = follower.begin_receive(Some(10_000)).unwrap();
    assert!(matches!(
        receiver.append(&chunks[0]),
        Err(Error::Misuse { .. })
    ));
    drop(receiver);

    // Without an expected length, a truncated transfer is caught by the header's length.
    let mut receiver = follower.begin_receive(None).unwrap();
    for chunk in &chunks[..chunks.len() - 1] {
        receiver.append(chunk).unwrap();
    }
    assert!(receiver.finish().unwrap_err().is_corruption());
    assert!(files_in(follower_dir.path()).is_empty());
    assert!(follower.list().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Crash safety with a real process
// ---------------------------------------------------------------------------------------------

/// Content size of the crash child's snapshot at `index`: 1 byte to 3 MiB, varied so kills land
/// in small and large writes alike.
fn crash_content_len(index: u64) -> u64 {
    1 + index.wrapping_mul(2_654_435_761) % (3 << 20)
}

const CRASH_RETAIN: usize = 2;

/// Installs snapshots forever into `root/main`, printing `finished <index>` after each install
/// returns. Index 4k is abandoned part way (a temp file to clean up); 4k+1 is written in
/// `root/leader` and received into `main` in chunks, as a follower would; the rest are written
/// locally.
fn crash_child(root: &Path) {
    let store = open_store(&root.join("main"), CRASH_RETAIN);
    let leader = open_store(&root.join("leader"), 1);
    let mut index = store.latest().map_or(1, |m| m.index + 1);
    let stdout = io::stdout();
    loop {
        let term = index / 10 + 1;
        let membership = format!("voters={index}");
        let len_bytes = crash_content_len(index);
        match index % 4 {
            0 => {
                let mut writer = store.begin(index, term, membership.as_bytes()).unwrap();
                io::copy(&mut KvContent::new(index, len_bytes / 2), &mut writer).unwrap();
                drop(writer);
            }
            1 => {
                let mut writer = leader.begin(index, term, membership.as_bytes()).unwrap();
                io::copy(&mut KvContent::new(index, len_bytes), &mut writer).unwrap();
                let sent = writer.finish().unwrap();
                let raw = leader.open_raw(&sent).unwrap();
                let mut receiver = store.begin_receive(Some(raw.len())).unwrap();
                let mut chunk = vec![0u8; 256 << 10];
                loop {
                    let n = raw.read_at(receiver.received_bytes(), &mut chunk).unwrap();
                    if n == 0 {
                        break;
                    }
                    receiver.append(&chunk[..n]).unwrap();
                }
                receiver.finish().unwrap();
            }
            _ => {
                let mut writer = store.begin(index, term, membership.as_bytes()).unwrap();
                io::copy(&mut KvContent::new(index, len_bytes), &mut writer).unwrap();
                writer.finish().unwrap();
            }
        }
        if index % 4 != 0 {
            let mut out = stdout.lock();
            writeln!(out, "finished {index}").unwrap();
            out.flush().unwrap();
        }
        index += 1;
    }
}

#[test]
fn snapshots_survive_sigkill_at_random_moments() {
    const ROUNDS: usize = 25;
    let seed = support::seed_from_env("KETCH_SNAPSHOT_CRASH_SEED");
    eprintln!("crash test seed {seed}: rerun with KETCH_SNAPSHOT_CRASH_SEED={seed}");
    let mut rng = KvContent::new(seed, 0);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("main");
    let dir = dir.as_path();
    fs::create_dir_all(dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut acknowledged_max = 0u64;
    let mut kills_with_temp_file = 0usize;
    let mut rounds_run = 0usize;
    for round in 0..ROUNDS {
        if Instant::now() > deadline {
            break;
        }
        rounds_run += 1;
        let mut child = child_command(&format!("crash:{}", root.path().display()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.next_random() % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        let stdout = child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            if let Some(index) = line.unwrap().strip_prefix("finished ") {
                acknowledged_max = acknowledged_max.max(index.parse().unwrap());
            }
        }
        if !temp_files_in(dir).is_empty() {
            kills_with_temp_file += 1;
        }

        let store = open_store(dir, CRASH_RETAIN);
        assert!(
            temp_files_in(dir).is_empty(),
            "round {round} (seed {seed}): open left temp files"
        );
        let listed = store.list();
        assert!(
            listed.len() <= CRASH_RETAIN,
            "round {round} (seed {seed}): {listed:?}"
        );
        assert_eq!(
            files_in(dir).len(),
            listed.len(),
            "round {round} (seed {seed}): every snapshot file is listed"
        );
        for meta in &listed {
            let verified = verify_file(&meta.path)
                .unwrap_or_else(|e| panic!("round {round} (seed {seed}): {e}"));
            assert_eq!(&verified, meta);
            let expected =
                digest_of(KvContent::new(meta.index, crash_content_len(meta.index))).unwrap();
            assert_eq!(
                (meta.uncompressed_bytes, meta.checksum),
                expected,
                "round {round} (seed {seed}): snapshot {} holds other content",
                meta.index
            );
        }
        let latest = store.latest().map_or(0, |m| m.index);
        assert!(
            latest >= acknowledged_max,
            "round {round} (seed {seed}): snapshot {acknowledged_max} was acknowledged but the \
             latest on disk is {latest}"
        );
    }
    eprintln!(
        "crash test: {rounds_run} rounds, {kills_with_temp_file} kills left a temp file, \
         {acknowledged_max} snapshots acknowledged"
    );
    // Otherwise every kill landed between snapshots and the test proved little.
    assert!(
        kills_with_temp_file > 0,
        "no kill interrupted a snapshot in {rounds_run} rounds (seed {seed})"
    );
    assert!(
        acknowledged_max > 0,
        "the child never finished a snapshot (seed {seed})"
    );
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

fn child_command(task: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, task)
        .stdin(Stdio::null());
    command
}

fn run_child(task: &str, timeout: Duration) -> String {
    let mut child = child_command(task)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Bounded by `timeout`: a hung child is killed and the test fails.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > timeout {
            child.kill().unwrap();
            panic!("child {task} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child {task} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Not a test of its own: the entry point of the child processes above. Without
/// `KETCH_SNAPSHOT_CHILD` it returns at once.
#[test]
fn child_process_entry() {
    let Ok(task) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (kind, dir) = task.split_once(':').expect("task is kind:dir");
    let dir = PathBuf::from(dir);
    match kind {
        "crash" => crash_child(&dir),
        "huge" => huge_child(&dir),
        other => panic!("unknown child task {other}"),
    }
}

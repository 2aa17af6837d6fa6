//! Group commit: concurrent appenders get distinct, contiguous indices, every returned append is
//! durable, and concurrent appenders share fdatasyncs.

use std::sync::{Arc, Barrier};

use ketch_storage::{GroupCommit, Options, Wal};

#[test]
fn concurrent_appenders_share_syncs_and_lose_nothing() {
    const THREADS: u64 = 8;
    const APPENDS_PER_THREAD: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        segment_size_bytes: 256 << 10,
        ..Options::default()
    };
    let log = Arc::new(GroupCommit::new(
        Wal::open(dir.path(), options.clone()).unwrap(),
    ));
    let start = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let log = Arc::clone(&log);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let mut got = Vec::new();
                for n in 0..APPENDS_PER_THREAD {
                    let payload = format!("thread {thread} append {n}");
                    let indices = log.append(2, &[payload.as_bytes()]).unwrap();
                    assert_eq!(indices.start(), indices.end());
                    got.push((*indices.start(), payload));
                }
                got
            })
        })
        .collect();
    let mut all: Vec<(u64, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let total = THREADS * APPENDS_PER_THREAD;
    assert_eq!(all.len() as u64, total);
    for (position, (index, _)) in all.iter().enumerate() {
        assert_eq!(
            *index,
            position as u64 + 1,
            "indices must be distinct and contiguous"
        );
    }
    let stats = log.stats();
    assert_eq!(stats.batches, total);
    assert!(
        stats.syncs < total,
        "concurrent appenders must share fdatasyncs: {} syncs for {total} appends",
        stats.syncs
    );
    eprintln!(
        "{total} appends, {} fdatasyncs ({:.2} per append)",
        stats.syncs,
        stats.syncs as f64 / total as f64
    );
    drop(Arc::try_unwrap(log).unwrap().into_inner());
    // Every acknowledged append is in the log, with its own payload, after reopen.
    let wal = Wal::open(dir.path(), options).unwrap();
    assert_eq!(wal.last_index(), total);
    for (index, payload) in all {
        assert_eq!(wal.entry(index).unwrap().data, payload.as_bytes());
    }
}

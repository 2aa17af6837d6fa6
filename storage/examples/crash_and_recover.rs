//! Writes a log from a child process, kills the child with SIGKILL mid-write, reopens the log and
//! prints what recovery found.
//!
//! ```text
//! cargo run --release -p ketch-storage --example crash_and_recover [DIR]
//! ```
//!
//! The child appends batches of entries and syncs after each, printing the index it has made
//! durable. The parent kills it at a random moment, opens the log, and checks that every index the
//! child reported durable is present with the right content.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ketch_storage::{Entry, HardState, Options, Wal};

fn payload(index: u64) -> Vec<u8> {
    format!("entry {index}: the quick brown fox jumps over the lazy dog").into_bytes()
}

fn child(dir: PathBuf) -> ketch_storage::Result<()> {
    let mut wal = Wal::open(&dir, Options::default())?;
    loop {
        let first = wal.last_index() + 1;
        let batch: Vec<Entry> = (first..first + 64)
            .map(|i| Entry::new(i, 1, payload(i)))
            .collect();
        wal.append(&batch)?;
        wal.set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: first + 63,
        })?;
        wal.sync()?;
        println!("durable {}", first + 63);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--child" {
        child(PathBuf::from(&args[2]))?;
        return Ok(());
    }
    let dir = match args.get(1) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("ketch-crash-demo-{}", std::process::id())),
    };
    println!("log directory: {}", dir.display());
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", dir.to_str().ok_or("directory is not UTF-8")?])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let run_for = Duration::from_millis(200 + (std::process::id() as u64 % 300));
    let reader = std::thread::spawn(move || {
        let mut last_durable = 0u64;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(index) = line.strip_prefix("durable ").and_then(|n| n.parse().ok()) {
                last_durable = index;
            }
        }
        last_durable
    });
    std::thread::sleep(run_for);
    child.kill()?; // SIGKILL: no chance to flush or clean up
    child.wait()?;
    let last_durable = reader.join().map_err(|_| "reader thread panicked")?;
    println!(
        "killed the writer after {run_for:?}; it had reported entries up to {last_durable} durable"
    );

    let started = Instant::now();
    let wal = Wal::open(&dir, Options::default())?;
    let opened_in = started.elapsed();
    let report = wal.recovery_report();
    println!(
        "reopened in {opened_in:?}: {} segment file(s), entries {}..={}, hard state {:?}",
        report.segments,
        wal.first_index(),
        wal.last_index(),
        wal.hard_state()
    );
    match &report.torn_tail {
        Some(torn) => println!(
            "torn tail cut: {} bytes at offset {} of {} ({})",
            torn.bytes,
            torn.offset,
            torn.path.display(),
            torn.reason
        ),
        None => println!("no torn tail: the kill fell between writes"),
    }
    let entries = wal.entries(wal.first_index()..wal.last_index() + 1)?;
    let intact = entries.iter().all(|e| e.data == payload(e.index));
    println!(
        "read back {} entries, checksums verified, contents {}",
        entries.len(),
        if intact { "intact" } else { "WRONG" }
    );
    if wal.last_index() < last_durable || !intact {
        return Err(format!(
            "LOST DATA: the writer reported {last_durable} durable, the log holds {}",
            wal.last_index()
        )
        .into());
    }
    println!("every entry reported durable ({last_durable}) survived the crash");
    drop(wal);
    if args.get(1).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

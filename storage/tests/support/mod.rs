//! Test support shared by the crash tests: a seeded generator and where its seed comes from, and
//! running this test binary again as a child process that is SIGKILLed at a chosen moment.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// xorshift64: seeded, reproducible, good enough to pick operations and moments.
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed` (any value; 0 is mapped to a nonzero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed from `var`, or one from the clock (printed by the caller so a failure can replay).
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Runs the test `child_test` of this test binary in a child process with `env` set, kills it
/// with SIGKILL after `kill_after`, and returns the lines it printed after `KETCH ` (the test
/// harness prints its own text before the first one, so the marker is searched, not required at
/// the start of a line).
pub fn run_child_and_kill(
    child_test: &str,
    env: &[(&str, String)],
    kill_after: Duration,
) -> Vec<String> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.split_once("KETCH ").map(|(_, rest)| rest.to_string()))
            .collect::<Vec<_>>()
    });
    std::thread::sleep(kill_after);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

//! A per-test time limit: a test that hangs (a lost wakeup, a node that never answers) must
//! fail with a message naming it, not hang CI until its global timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Aborts the process with exit code 101 if the test runs past `limit`, after calling
/// `before_exit` (for example to kill child processes). Keep the returned flag and set it when
/// the test ends.
pub fn watchdog_with(name: &'static str, limit: Duration, before_exit: fn()) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    std::thread::spawn(move || {
        let start = Instant::now();
        // Bounded: returns when the flag is set or exits the process at `limit`.
        while start.elapsed() < limit {
            if flag.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("watchdog: test {name} ran past {limit:?}; aborting");
        before_exit();
        std::process::exit(101);
    });
    done
}

/// [`watchdog_with`] with nothing to clean up.
#[allow(dead_code)] // Each test crate includes this file and uses one of the two.
pub fn watchdog(name: &'static str, limit: Duration) -> Arc<AtomicBool> {
    watchdog_with(name, limit, || {})
}

//! [`Reclaimer`]: the leader's active expiry. A thread of the service that, for each group
//! (lane of its [`Backend`]) this node leads, proposes a reclaim item (see `command`: kind 3) every [`BUSY_INTERVAL`] while the
//! last reclaim answered that keys with a deadline remain, else every [`IDLE_INTERVAL`]; at
//! most one per group is in flight. Each removes up to [`RECLAIM_KEYS_MAX`] expired keys at apply, on
//! every replica alike, so memory is given back without any read touching the keys.
//!
//! It is a thread of its own rather than a timer of the RESP connection loop: it needs
//! nothing of the connections, only the groups, and keeping it apart keeps the loop's poll
//! timeout about connections only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::command::{split_results, Write, WriteBatchEncoder};
use super::server::Backend;

/// Between reclaims while keys with a deadline remain.
pub const BUSY_INTERVAL: Duration = Duration::from_millis(100);
/// Between reclaims otherwise.
pub const IDLE_INTERVAL: Duration = Duration::from_secs(1);
/// Most keys one reclaim item removes.
pub const RECLAIM_KEYS_MAX: u32 = 1000;

/// The running reclaim thread; [`Reclaimer::stop`] (or drop) ends it.
#[derive(Debug)]
pub struct Reclaimer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// The proposed reclaim item, with a zero stamp (the leader stamps it).
pub fn reclaim_batch() -> Vec<u8> {
    let mut encoder = WriteBatchEncoder::new(0);
    encoder.push(&Write::reclaim(RECLAIM_KEYS_MAX));
    encoder.finish()
}

/// The number of volatile keys a reclaim's result reports, if it is one.
fn volatile_left(result: &[u8]) -> Option<u64> {
    let reply = *split_results(result, 1).ok()?.first()?;
    let digits = reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Reclaimer {
    /// Starts reclaiming in the groups of `backend` that this node leads.
    pub fn start(backend: Arc<dyn Backend>) -> std::io::Result<Reclaimer> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("ketch-{}-reclaim", backend.id()))
            .spawn(move || run(&*backend, &thread_stop))?;
        Ok(Reclaimer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (a reclaim in flight completes on its own).
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if thread.join().is_err() {
            log::error!("the reclaim thread panicked");
        }
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// One lane's reclaim state.
struct LaneReclaim {
    in_flight: Arc<AtomicBool>,
    /// Volatile keys the last reclaim reported; u64::MAX: unknown (no answer yet), treated as
    /// "keys remain".
    left: Arc<AtomicU64>,
}

fn run(backend: &dyn Backend, stop: &(Mutex<bool>, Condvar)) {
    let lanes: Vec<LaneReclaim> = (0..backend.lanes())
        .map(|_| LaneReclaim {
            in_flight: Arc::new(AtomicBool::new(false)),
            left: Arc::new(AtomicU64::new(u64::MAX)),
        })
        .collect();
    let me = backend.id();
    let (stopped, wake) = stop;
    let mut guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let busy = lanes
            .iter()
            .any(|lane| lane.left.load(Ordering::Acquire) > 0);
        let interval = if busy { BUSY_INTERVAL } else { IDLE_INTERVAL };
        guard = wake
            .wait_timeout(guard, interval)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if *guard {
            return;
        }
        for (index, lane) in lanes.iter().enumerate() {
            if backend.lane_leader(index) != Some(me) || lane.in_flight.swap(true, Ordering::AcqRel)
            {
                continue;
            }
            let done_flag = Arc::clone(&lane.in_flight);
            let done_left = Arc::clone(&lane.left);
            let done = move |result: Result<Vec<u8>, _>| {
                if let Some(count) = result.ok().as_deref().and_then(volatile_left) {
                    done_left.store(count, Ordering::Release);
                }
                done_flag.store(false, Ordering::Release);
            };
            backend.submit(index, None, reclaim_batch(), Box::new(done));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::command::push_result;

    #[test]
    fn the_reply_count_is_read_back() {
        let mut result = Vec::new();
        push_result(&mut result, b":17\r\n");
        assert_eq!(volatile_left(&result), Some(17));
        let mut error = Vec::new();
        push_result(&mut error, b"-ERR x\r\n");
        assert_eq!(volatile_left(&error), None);
        assert!(crate::kv::command::decode_write_batch(&reclaim_batch()).is_ok());
    }
}

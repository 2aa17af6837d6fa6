//! Recording real clients' operations for the linearizability checker (`ketch_history`), and
//! the fault loops' seeded randomness and environment knobs.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ketch::client::Client;
use ketch_history::{History, Op, Outcome};

#[path = "../harness/seeded.rs"]
mod seeded;
/// The fault loops' only randomness, seeded and printed, and their environment knobs.
pub use seeded::{env_u64, next_random};

/// A history shared by client threads, stamped with nanoseconds since its start. The clock is
/// strictly increasing under the lock, so one client's return precedes its next call.
#[derive(Clone)]
pub struct Recorder {
    /// The recorded history.
    pub history: Arc<Mutex<History>>,
    epoch: Instant,
    last_ns: Arc<Mutex<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty history starting now.
    pub fn new() -> Recorder {
        Recorder {
            history: Arc::new(Mutex::new(History::new())),
            epoch: Instant::now(),
            last_ns: Arc::new(Mutex::new(0)),
        }
    }

    fn now(&self) -> u64 {
        let mut last = self.last_ns.lock().unwrap();
        let ns = (self.epoch.elapsed().as_nanos() as u64).max(*last + 1);
        *last = ns;
        ns
    }

    /// Runs `op` through `client` and records its call and return; true if it was
    /// acknowledged. Any error is recorded as `Unknown` (it may or may not have taken effect).
    pub fn run(&self, client_id: u64, client: &mut Client, op: Op) -> bool {
        let id = {
            let time = self.now();
            self.history
                .lock()
                .unwrap()
                .invoke(client_id, op.clone(), time)
        };
        let outcome = match &op {
            Op::Get { key } => client.get(key).map(Outcome::Get),
            Op::Put { key, value } => client.set(key, value).map(|()| Outcome::Put),
            Op::Append { key, value } => client.append(key, value).map(|_| Outcome::Append),
        }
        .unwrap_or(Outcome::Unknown);
        let acknowledged = outcome != Outcome::Unknown;
        let time = self.now();
        self.history.lock().unwrap().complete(id, outcome, time);
        acknowledged
    }
}

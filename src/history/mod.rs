//! Client histories and their linearizability checker.
//!
//! The simulator (logical time) and real-process tests (wall-clock nanoseconds) record every
//! client call and return in a [`History`]; [`check`] then decides whether some sequential order
//! of the operations, consistent with real time and with a map of byte registers, explains
//! every observed answer.
//!
//! ```
//! use ketch::history::{check, CheckLimits, History, Op, Outcome};
//!
//! let mut history = History::new();
//! let put = history.invoke(1, Op::Put { key: b"k".to_vec(), value: b"v".to_vec() }, 0);
//! history.complete(put, Outcome::Put, 10);
//! let get = history.invoke(2, Op::Get { key: b"k".to_vec() }, 20);
//! history.complete(get, Outcome::Get(None), 30); // stale: the put had completed
//! assert!(!check(&history, CheckLimits::default()).is_ok());
//! ```
//!
//! Operations that time out (`Outcome::Unknown`) or never return may or may not have taken
//! effect; the checker allows both. See [`checker`](check) for the algorithm and its limits.
#![forbid(unsafe_code)]

mod checker;
mod model;
mod operation;
mod recording;
mod unknown_writes;
mod violation;
mod visited;

#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod scenario_tests;

pub use checker::{check, CheckLimits, CheckResult};
pub use operation::{ClientId, Op, Outcome};
pub use recording::{History, OpId};
pub use violation::Violation;

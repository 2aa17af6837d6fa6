//! Client histories and their linearizability checker.
//!
//! The simulator (logical time) and real-process tests (wall-clock nanoseconds) record every
//! client call and return in a [`History`]; [`check`] then decides whether some sequential order
//! of the operations, consistent with real time and with a map of byte registers, explains
//! every observed answer.
//!
//! ```
//! use ketch_history::{check, CheckLimits, History, Op, Outcome};
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
//! effect; the checker allows both. See [`check`] for the algorithm; its module docs give
//! measured costs and limits.
//!
//! # Recording histories the checker can decide quickly
//!
//! - Give every write a distinct value with delimiters, such as `<client.seq>`: the checker
//!   then proves from the reads which timed-out writes took effect and drops the rest. Values
//!   that can occur inside one another (`1.2;` inside `11.2;`) or arise from two appends
//!   weaken that.
//! - Spread operations over several keys: each key is checked on its own.
//! - Keep few operations in flight per key (up to about 10); the search grows exponentially
//!   with concurrency.
//! - Stamp events with a strictly increasing clock if events within one tick are ordered: a
//!   return and a call carrying the same time count as concurrent, even for one client.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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

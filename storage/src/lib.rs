//! `ketch-storage`: Ketch's durable log, usable on its own, without Raft.
//!
//! A segmented, checksummed write-ahead log with group commit, crash-safe recovery, suffix
//! truncation that survives crashes, prefix compaction, Raft hard state in the same stream, and
//! zstd-compressed snapshots installed atomically.
//!
//! ```
//! use ketch_storage::{Entry, HardState, Options, Wal};
//! # fn main() -> ketch_storage::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let mut wal = Wal::open(dir.path(), Options::default())?;
//! wal.append(&[Entry::new(1, 1, b"one".to_vec()), Entry::new(2, 1, b"two".to_vec())])?;
//! wal.set_hard_state(HardState { term: 1, vote: 3, commit: 2 })?;
//! wal.sync()?; // both entries and the hard state are durable now
//! assert_eq!(wal.entries(1..3)?[1].data, b"two");
//! wal.truncate_suffix(2)?; // drops entry 2, durably once synced
//! assert_eq!(wal.last_index(), 1);
//! # Ok(()) }
//! ```
//!
//! Formats: [`record`] (frames and batches), [`segment`] (segment files). Recovery rules:
//! [`recovery`]. Many Raft groups' logs in one write-ahead stream: [`store`] ([`LogStore`]).
#![warn(missing_docs)]

mod chain;
mod commit;
mod entry;
mod error;
mod fault;
mod files;
mod options;
mod prepare;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod store;
mod wal;

pub use commit::{GroupCommit, GroupCommitStats};
pub use entry::{Entry, HardState, MAX_INDEX};
pub use error::{Error, Result};
pub use fault::FaultInjector;
pub use options::{Options, RecoveryMode};
pub use recovery::{RecoveryReport, Salvaged, TornTail};
pub use store::{LogStore, StoreBatch, StoreOptions, StoreStats};
pub use wal::{SegmentInfo, Wal, WalStats, WriteBatch};

//! `ketch-storage`: Ketch's durable log.
#![warn(missing_docs)]

mod error;
pub mod snapshot;

pub use error::{Error, Result};

//! The `ketch` binary's service subcommands, kept out of `src/bin` so they can be tested.
//!
//! - [`serve`]: `ketch serve`, one node of the replicated key-value service in the foreground.
//! - [`local_cluster`]: `ketch cluster`, a local cluster of `ketch serve` child processes.
//! - [`admin`]: `ketch admin`, the membership admin commands through [`crate::client`].
//! - [`bench`]: `ketch bench`, a load generator on [`crate::client`] with HDR latency figures.
//! - `ketch dashboard` prints [`crate::metrics::dashboard::DASHBOARD_JSON`], a Grafana
//!   dashboard over the metrics `ketch serve --metrics-addr` exports.
//! - [`cluster_spec`]: the `--cluster` list and the cluster id derived from it.
//! - [`logging`]: `-v` / `RUST_LOG` handling.
//!
//! # Default ports
//!
//! Node `N`'s RESP address defaults to `127.0.0.1:(6379 + N)` (node 1 on 6380: one above
//! Redis' 6379, so a local Redis can run beside it for comparisons). `ketch cluster` puts node
//! `N`'s peer address on `127.0.0.1:(7000 + N)`.

pub mod admin;
pub mod bench;
pub mod cluster_spec;
pub mod local_cluster;
pub mod local_pki;
pub mod logging;
pub mod serve;

/// RESP port of node 1 by default; node `N` gets `DEFAULT_CLIENT_PORT_BASE + N - 1`.
pub const DEFAULT_CLIENT_PORT_BASE: u16 = 6380;
/// Peer port of node 1 in `ketch cluster`; node `N` gets `DEFAULT_PEER_PORT_BASE + N - 1`.
pub const DEFAULT_PEER_PORT_BASE: u16 = 7001;

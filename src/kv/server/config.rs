//! [`ServerConfig`]: the server's tuning and limits.

use std::time::Duration;

use crate::kv::resp::Limits;

/// Tuning and limits of the RESP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Request parsing limits.
    pub limits: Limits,
    /// Close a connection with nothing pending after this long without input (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Most open client connections.
    pub connections_max: usize,
    /// Most replies waiting per connection (pipelined requests in flight) before the server
    /// stops reading from it.
    pub pipeline_replies_max: usize,
    /// Most unsent reply bytes per connection before the server stops reading from it (a
    /// slow reader); one reply may exceed it.
    pub output_bytes_max: usize,
    /// Most commands in one write batch or one query batch.
    pub batch_commands_max: usize,
    /// Most encoded bytes in one batch (a single larger command goes alone).
    pub batch_bytes_max: usize,
}

impl Default for ServerConfig {
    /// Redis' limits, a 5 minute idle timeout, 10 000 connections, 1024 pipelined replies and
    /// 1 MiB of output per connection, batches of up to 1024 commands / 1 MiB.
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            idle_timeout: Some(Duration::from_secs(300)),
            connections_max: 10_000,
            pipeline_replies_max: 1024,
            output_bytes_max: 1 << 20,
            batch_commands_max: 1024,
            batch_bytes_max: 1 << 20,
        }
    }
}

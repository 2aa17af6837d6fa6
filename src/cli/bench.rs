//! `ketch bench`: a load generator for a running cluster, built on [`crate::client`].
//!
//! ```text
//! ketch bench --addrs 127.0.0.1:6380,127.0.0.1:6381,127.0.0.1:6382 \
//!     --clients 50 --requests 100000 --value-size 256 --pipeline 1 --op set
//! ```
//!
//! Each of `--clients` threads owns a [`Client`] (its own session and connection, starting at
//! a different node so load spreads) and sends its share of `--requests`, `--pipeline`
//! commands per round trip, on keys drawn uniformly from `--keyspace` keys (`key:N` for SET
//! and GET, `counter:N` for INCR). The latency of a round trip is recorded once per command
//! in it (as `redis-benchmark` does), in an HDR histogram (microseconds, 3 significant
//! digits). Failed commands are counted by kind, not
//! retried beyond the client's own retries.
//!
//! Clients are slot-aware by default (`--slot-aware true`): each command goes straight to
//! the leader of its key's slot range, as [`crate::client`]'s routing describes.
//! `--slot-aware false` sends every command to the client's one node, which forwards what it
//! does not lead: the cost of that extra hop is the difference between the two runs.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Client, ClientError, ClientOptions};

/// The operation measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchOp {
    /// `SET key value` (replicated, fsynced on a majority).
    Set,
    /// `GET key` (linearizable read).
    Get,
    /// `INCR key` (replicated; exactly once through the client's session).
    Incr,
}

/// `ketch bench` command-line arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// RESP addresses of the cluster's nodes, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:6380,127.0.0.1:6381,127.0.0.1:6382"
    )]
    pub addrs: Vec<String>,
    /// Concurrent clients (threads), 1 to 1024.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// Total requests, shared between the clients.
    #[arg(long, default_value_t = 100_000)]
    pub requests: u64,
    /// Value size in bytes (SET).
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Commands per round trip, 1 to 1024 (the server keeps 1024 results per session).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pipeline: u32,
    /// Keys drawn from `key:0` .. `key:(N-1)` (`counter:0` .. for INCR).
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// The operation.
    #[arg(long, value_enum, default_value_t = BenchOp::Set)]
    pub op: BenchOp,
    /// Route each command to its slot's leader (`true`, the default) or send everything to
    /// one node per client (`false`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub slot_aware: bool,
}

/// What a run measured.
#[derive(Debug)]
pub struct BenchReport {
    /// Commands answered successfully.
    pub succeeded: u64,
    /// Commands that failed certainly not applied.
    pub not_applied: u64,
    /// Commands that failed maybe applied.
    pub maybe_applied: u64,
    /// Commands answered with an error reply or an unexpected reply.
    pub server_errors: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Round-trip latency per command, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl BenchReport {
    /// Successful commands per second.
    pub fn ops_per_second(&self) -> f64 {
        self.succeeded as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Tiny xorshift generator: key choice only needs to be spread, not secure.
struct KeyPicker(u64);

impl KeyPicker {
    fn next(&mut self, keyspace: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % keyspace.max(1)
    }
}

/// Runs the benchmark and returns the merged measurements.
pub fn measure(args: &BenchArgs) -> Result<BenchReport, String> {
    if args.addrs.is_empty() {
        return Err("--addrs is empty".to_string());
    }
    let clients = u64::from(args.clients);
    let mut connected = Vec::new();
    for c in 0..clients {
        let mut addrs = args.addrs.clone();
        addrs.rotate_left(c as usize % args.addrs.len());
        let options = ClientOptions {
            slot_aware: args.slot_aware,
            ..ClientOptions::default()
        };
        let client =
            Client::connect_with(&addrs, options).map_err(|e| format!("client {c}: {e}"))?;
        connected.push(client);
    }
    let value = vec![b'x'; args.value_size];
    let started = Instant::now();
    let threads: Vec<_> = connected
        .into_iter()
        .enumerate()
        .map(|(c, mut client)| {
            let share = args.requests / clients + u64::from((c as u64) < args.requests % clients);
            let args = args.clone();
            let value = value.clone();
            std::thread::spawn(move || run_client(&mut client, &args, share, &value, c as u64))
        })
        .collect();
    let mut report = BenchReport {
        succeeded: 0,
        not_applied: 0,
        maybe_applied: 0,
        server_errors: 0,
        elapsed: Duration::ZERO,
        latency_us: new_histogram(),
    };
    for thread in threads {
        let part = thread
            .join()
            .map_err(|_| "a client thread panicked".to_string())?;
        report.succeeded += part.succeeded;
        report.not_applied += part.not_applied;
        report.maybe_applied += part.maybe_applied;
        report.server_errors += part.server_errors;
        report
            .latency_us
            .add(&part.latency_us)
            .map_err(|e| format!("merging histograms: {e}"))?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn key_name(prefix: &str, n: u64) -> Vec<u8> {
    format!("{prefix}:{n}").into_bytes()
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits: fixed memory (about 150 KiB) per client.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn run_client(
    client: &mut Client,
    args: &BenchArgs,
    share: u64,
    value: &[u8],
    seed: u64,
) -> BenchReport {
    let mut report = BenchReport {
        succeeded: 0,
        not_applied: 0,
        maybe_applied: 0,
        server_errors: 0,
        elapsed: Duration::ZERO,
        latency_us: new_histogram(),
    };
    let mut keys =
        KeyPicker(0x9e37_79b9_7f4a_7c15 ^ (seed + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    let mut sent = 0;
    // Bounded by `share` commands.
    while sent < share {
        let batch = u64::from(args.pipeline).min(share - sent);
        let commands: Vec<Vec<Vec<u8>>> = (0..batch)
            .map(|_| {
                let n = keys.next(args.keyspace);
                match args.op {
                    BenchOp::Set => vec![b"SET".to_vec(), key_name("key", n), value.to_vec()],
                    BenchOp::Get => vec![b"GET".to_vec(), key_name("key", n)],
                    // Counters apart from SET's keys, whose values are not integers.
                    BenchOp::Incr => vec![b"INCR".to_vec(), key_name("counter", n)],
                }
            })
            .collect();
        let start = Instant::now();
        let results = client.pipeline(&commands);
        let micros = start.elapsed().as_micros().clamp(1, 600_000_000) as u64;
        report
            .latency_us
            .record_n(micros, batch)
            .expect("latency clamped into the histogram's range");
        for result in results {
            match result {
                Ok(_) => report.succeeded += 1,
                Err(ClientError::NotApplied { .. }) | Err(ClientError::InvalidArgument(_)) => {
                    report.not_applied += 1
                }
                Err(ClientError::MaybeApplied { .. }) => report.maybe_applied += 1,
                Err(_) => report.server_errors += 1,
            }
        }
        sent += batch;
    }
    report
}

/// Runs the benchmark and prints its report.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let report = measure(args)?;
    let ms = |q: f64| report.latency_us.value_at_quantile(q) as f64 / 1000.0;
    let value = match args.op {
        BenchOp::Set => format!(", {} byte values", args.value_size),
        BenchOp::Get | BenchOp::Incr => String::new(),
    };
    println!(
        "{:?}: {} requests, {} clients, pipeline {}, {} keys{value}",
        args.op, args.requests, args.clients, args.pipeline, args.keyspace
    );
    println!(
        "  {:.0} ops/s over {:.2} s",
        report.ops_per_second(),
        report.elapsed.as_secs_f64()
    );
    println!(
        "  latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        report.latency_us.max() as f64 / 1000.0
    );
    println!(
        "  failed: {} not applied, {} maybe applied, {} error replies",
        report.not_applied, report.maybe_applied, report.server_errors
    );
    if report.not_applied + report.maybe_applied + report.server_errors > 0 {
        return Err("some requests failed".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_the_whole_keyspace() {
        let mut picker = KeyPicker(12345);
        let mut seen = [false; 16];
        for _ in 0..1000 {
            seen[picker.next(16) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    #[derive(Debug, clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn clients_are_slot_aware_unless_told_otherwise() {
        use clap::Parser;
        assert!(Wrapper::parse_from(["bench"]).bench.slot_aware);
        assert!(
            Wrapper::parse_from(["bench", "--slot-aware", "true"])
                .bench
                .slot_aware
        );
        assert!(
            !Wrapper::parse_from(["bench", "--slot-aware", "false"])
                .bench
                .slot_aware
        );
    }
}

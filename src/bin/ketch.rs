//! The `ketch` command-line tool.
//!
//! `ketch serve` runs one node of the replicated key-value service, `ketch cluster` a local
//! cluster of them, `ketch bench` measures one (logic in [`ketch::cli`]); `ketch wal stat|verify|dump DIR` inspect a data
//! directory without writing to it (logic in [`ketch::inspect`]); `ketch dashboard` prints a
//! Grafana dashboard over the metrics of `ketch serve --metrics-addr` ([`ketch::metrics`]).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ketch::cli::{admin, bench, local_cluster, serve};
use ketch::inspect::{self, dump, stat, verify, InspectError};

/// Ketch: a Raft-replicated, durable log.
#[derive(Debug, Parser)]
#[command(
    name = "ketch",
    version,
    propagate_version = true,
    after_help = "Quick start: ketch cluster --nodes 3, then redis-cli -p 6380.\n\
                  Inspect a log directory: ketch wal stat|verify|dump DIR (see `ketch wal --help`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node of the replicated key-value service (RESP2, Redis clients work) in the
    /// foreground; SIGTERM or Ctrl-C stops it cleanly.
    #[command(after_help = "Example (node 1 of 3, RESP on 127.0.0.1:6380):\n  \
                      ketch serve --id 1 --data-dir ketch-data/node-1 --peer-addr 127.0.0.1:7001 \\\n    \
                      --client-addr 127.0.0.1:6380 \\\n    \
                      --cluster 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003")]
    Serve(Box<serve::ServeArgs>),
    /// Start a local cluster on loopback (child processes, data under ./ketch-data), print
    /// each node's RESP address and the leader changes; Ctrl-C stops every node.
    Cluster(local_cluster::ClusterArgs),
    /// Measure a running cluster: throughput and HDR latency percentiles of SET, GET or INCR
    /// through the Rust client (exit 1 if any request failed).
    Bench(bench::BenchArgs),
    /// Change a running cluster's membership (add-learner, promote, remove, transfer) or list
    /// its members; replies once the change is committed.
    Admin(admin::AdminArgs),
    /// Print a Grafana dashboard (JSON, for import) over the metrics `ketch serve
    /// --metrics-addr` exports.
    Dashboard,
    /// Inspect a write-ahead log directory (segments, entries, snapshots). Read-only: never
    /// creates, repairs or deletes anything.
    #[command(
        subcommand,
        after_help = "Exit codes: 0 healthy, 1 damage found, 2 usage or I/O error.\n\n\
                      Examples:\n  \
                      ketch wal stat /var/lib/ketch/wal\n  \
                      ketch wal verify /var/lib/ketch/wal\n  \
                      ketch wal dump /var/lib/ketch/wal --from 100 --to 120 --format json"
    )]
    Wal(WalCommand),
}

#[derive(Debug, Subcommand)]
enum WalCommand {
    /// Show segments, the index range, hard state, recovery findings (torn tail) and snapshots.
    ///
    /// Reads segment headers and footers only (no entry is read), as a normal open would see
    /// the log. Exit code 1 if a normal open fails on damage (a salvage view is shown) or a
    /// snapshot header is damaged.
    Stat {
        /// The log directory (holds `*.wal` segments and `snap-*.snap` snapshots).
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every record, entry, footer and snapshot; exit 1 and name the location on damage.
    ///
    /// Opens in strict recovery mode, so a torn tail is reported as damage (with a note that a
    /// normal open would cut it). Shows progress on stderr when stderr is a terminal.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// Print one JSON object instead of text (same exit codes).
        #[arg(long)]
        json: bool,
    },
    /// Print entries, one line each: index, term, length and payload.
    ///
    /// Reads in bounded chunks, so any size of log can be dumped. Stops at the first entry that
    /// cannot be read (exit code 1).
    Dump {
        /// The log directory.
        dir: PathBuf,
        /// First index to print (default: the log's first index).
        #[arg(long, value_name = "INDEX")]
        from: Option<u64>,
        /// Last index to print, inclusive (default: the log's last index).
        #[arg(long, value_name = "INDEX")]
        to: Option<u64>,
        /// For a multi-group store directory (`*.kst`): the group to print (required there).
        #[arg(long, value_name = "G")]
        group: Option<u64>,
        /// Line format.
        #[arg(long, value_enum, default_value_t = FormatArg::Text)]
        format: FormatArg,
        /// Payload bytes shown per entry in the text format; longer payloads are truncated with
        /// an indicator of how many bytes were left out.
        #[arg(long, value_name = "N", default_value_t = 64)]
        max_bytes: usize,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// `index=5 term=2 bytes=11 data="hello world"`, non-printable bytes escaped.
    Text,
    /// `index=5 term=2 bytes=11 hex=68656c6c6f...`, the whole payload.
    Hex,
    /// `{"index":5,"term":2,"bytes":11,"hex":"68656c6c6f..."}`, one object per line.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Serve(args) => return exit_with(serve::run(&args)),
        Command::Cluster(args) => return exit_with(local_cluster::run(&args)),
        Command::Bench(args) => return exit_with(bench::run(&args)),
        Command::Admin(args) => return exit_with(admin::run(&args)),
        Command::Dashboard => {
            print!("{}", ketch::metrics::dashboard::DASHBOARD_JSON);
            return ExitCode::SUCCESS;
        }
        Command::Wal(command) => command,
    };
    let stdout = std::io::stdout();
    let stdout_is_terminal = stdout.is_terminal();
    let mut out = BufWriter::new(stdout.lock());
    let result = match command {
        WalCommand::Stat { dir, json } if inspect::store::is_store_dir(&dir) => {
            inspect::store::stat(&dir, json, &mut out)
        }
        WalCommand::Verify { dir, json } if inspect::store::is_store_dir(&dir) => {
            inspect::store::verify(&dir, json, &mut out)
        }
        WalCommand::Stat { dir, json } => stat::run(&dir, json, &mut out),
        WalCommand::Verify { dir, json } => verify::run(&dir, json, &mut out, true),
        WalCommand::Dump {
            dir,
            from,
            to,
            group,
            format,
            max_bytes,
        } => {
            let options = dump::DumpOptions {
                from,
                to,
                format: match format {
                    FormatArg::Text => dump::Format::Text,
                    FormatArg::Hex => dump::Format::Hex,
                    FormatArg::Json => dump::Format::Json,
                },
                max_bytes,
                // Progress only helps when the entries themselves are not on the screen.
                progress: !stdout_is_terminal,
            };
            if inspect::store::is_store_dir(&dir) {
                inspect::store::dump(&dir, group, &options, &mut out)
            } else if group.is_some() {
                Err(inspect::InspectError::Usage(
                    "--group is for multi-group store directories (*.kst)".into(),
                ))
            } else {
                dump::run(&dir, &options, &mut out, &mut std::io::stderr())
            }
        }
    };
    // What was printed before a failure is still worth having.
    let flushed = out.flush();
    drop(out);
    let result = match (result, flushed) {
        (Ok(_), Err(error)) => Err(InspectError::from(error)),
        (result, _) => result,
    };
    match &result {
        Ok(_) | Err(InspectError::OutputClosed) => {}
        Err(error) => eprintln!("ketch: {error}"),
    }
    ExitCode::from(inspect::exit_code(&result))
}

/// Exit status 0, or 1 with the error on stderr.
fn exit_with<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ketch: {error}");
            ExitCode::FAILURE
        }
    }
}

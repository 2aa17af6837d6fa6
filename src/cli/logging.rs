//! Logging for the long-running subcommands: `log` records to stderr through env_logger.
//!
//! Quiet by default (warnings and errors only); `-v` shows info, `-vv` debug, `-vvv` trace.
//! `RUST_LOG` (env_logger's syntax, e.g. `RUST_LOG=ketch::node=debug`) overrides both.

/// Installs the logger; a second call does nothing.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let _already_installed = env_logger::Builder::new()
        .filter_level(level)
        .parse_default_env()
        .try_init();
}

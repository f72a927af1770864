//! Log output for `serve`: PgBouncer-style lines through tracing, to `logfile` or stderr, with the
//! level from `verbose` and `-v`/`-q` (`RUST_LOG` overrides).

use std::sync::Mutex;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Key};

/// Installs the global subscriber; call once, before the runtime starts.
pub fn init(config: &Config, verbose_flags: u8, quiet: bool) -> anyhow::Result<()> {
    let verbose = config.pgbouncer.int(Key::Verbose) + i64::from(verbose_flags);
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("bouncectl={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match config.pgbouncer.text(Key::Logfile) {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open logfile {path}"))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        None if quiet => builder.with_writer(std::io::sink).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    // A second init (tests starting several servers) keeps the first subscriber.
    let _ = result;
    Ok(())
}

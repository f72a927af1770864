//! `serve`: the pooler's command line, flags compatible with `pgbouncer` (DESIGN.md §1).
//! This file reads and checks the configuration; running the pooler lands here later.

use std::path::PathBuf;
use std::process::ExitCode;

use super::output;
use crate::config::{Config, ConfigError, ProcessEnv};

/// Arguments of `bouncectl serve`.
#[derive(Debug, clap::Args)]
#[command(
    version,
    after_help = "Examples:\n  \
    bouncectl serve /etc/pgbouncer/pgbouncer.ini --check-config\n  \
    bouncectl serve --print-config            # the embedded default, every key shown\n  \
    PG_PASSWORD=... bouncectl serve pgbouncer.ini\n\n\
    Values may use ${NAME} to read the environment ($$ is a literal $)."
)]
pub struct Args {
    /// A pgbouncer.ini (PgBouncer's format); without it, the embedded default.
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Run in the background (needs pidfile in the configuration).
    #[arg(short = 'd', long)]
    pub daemon: bool,
    /// Log nothing to stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// More log output (repeat for more).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Read and check the configuration, print every problem as file:line: message, and exit
    /// (0 when valid, 2 otherwise).
    #[arg(long)]
    pub check_config: bool,
    /// Print the effective settings as a pgbouncer.ini (defaults included, passwords masked)
    /// and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Runs `serve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match load(&args) {
        Ok(config) => config,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    if args.print_config {
        output::print_text(&config.to_ini())?;
    } else if args.check_config {
        if !args.quiet {
            eprintln!("{}: configuration is valid", config.source);
        }
    } else {
        return Err(super::usage(
            "the pooler is not in this build yet; use --check-config or --print-config",
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn load(args: &Args) -> Result<Config, Vec<ConfigError>> {
    match &args.config {
        Some(path) => Config::load(path, &ProcessEnv),
        None => Config::embedded_default(&ProcessEnv),
    }
}

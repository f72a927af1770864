//! The command line: the clap definition, shared flags, and dispatch to one file per subcommand.
//! Only this module prints, prompts, or uses clap, comfy-table, dialoguer, indicatif and anyhow.

pub mod activity;
pub mod admin_client;
pub mod check;
pub mod fdlimit;
pub mod generate;
pub mod hash;
pub mod leaks;
pub mod logging;
pub mod output;
pub mod pgpass;
pub mod pidfile;
pub mod serve;
pub mod show;
pub mod size;
pub mod table;
pub mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: usage, configuration or connection error (DESIGN.md §1).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the command ran and found a problem.
pub const EXIT_PROBLEM: u8 = 1;

/// A PgBouncer-compatible PostgreSQL connection pooler and the operator's toolkit around it.
#[derive(Debug, Parser)]
#[command(
    name = "bouncectl",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 ok, 1 the command found a problem, 2 usage, configuration or connection error."
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pooler (PgBouncer-compatible; with no CONFIG, the embedded default).
    Serve(serve::Args),
    /// Print a userlist.txt entry (md5 or SCRAM-SHA-256) for a user, or write it into the file.
    Hash(hash::Args),
    /// Size the pools for PostgreSQL's connection limit and print a pgbouncer.ini snippet.
    Size(size::Args),
    /// Show a pooler's pools, clients, servers, stats or settings from its admin console.
    Show(show::Args),
    /// Find sessions left idle in a transaction or running too long, straight from PostgreSQL.
    Leaks(leaks::Args),
    /// Run the deployment checklist: userlist, config, pool sizes, the app's URL, the pooler, monitoring.
    Check(check::Args),
    /// Render shell completions or man pages from this command line (for packagers).
    #[command(hide = true)]
    Generate(generate::Args),
}

/// An error that already carries its exit code; anything else at the edge exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The process exit code.
    pub code: u8,
    /// The one-line message for stderr.
    pub message: String,
}

/// A usage error (exit 2) with a one-line message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: EXIT_USAGE,
        message: message.into(),
    }
    .into()
}

/// Runs the parsed command line and maps the outcome to the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Hash(args) => hash::run(args),
        Command::Size(args) => size::run(args),
        Command::Show(args) => show::run(args),
        Command::Leaks(args) => leaks::run(args),
        Command::Check(args) => check::run(args),
        Command::Generate(args) => generate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

fn report(err: &anyhow::Error) -> ExitCode {
    if output::is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let code = err.downcast_ref::<Exit>().map_or(EXIT_USAGE, |e| e.code);
    eprintln!("bouncectl: {err:#}");
    ExitCode::from(code)
}

/// Builds a current-thread tokio runtime for commands that talk to a server.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

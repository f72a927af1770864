//! The `bouncectl` binary: parse the command line, run it, turn the outcome into an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: per-thread free lists suit a pooler whose every login allocates and frees on
/// whichever worker runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = bouncectl::cli::Cli::parse();
    bouncectl::cli::main(cli)
}

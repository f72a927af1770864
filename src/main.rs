//! The `bouncectl` binary: parse the command line, run it, turn the outcome into an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bouncectl::cli::Cli::parse();
    bouncectl::cli::main(cli)
}

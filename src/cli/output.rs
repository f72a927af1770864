//! Output helpers shared by the commands: JSON to stdout, TTY detection, broken pipes.

use std::io::{IsTerminal, Write};

use anyhow::Context as _;

/// Shared `--json` flag.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputArgs {
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Writes `value` as pretty JSON plus a newline to stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("cannot write JSON")?;
    writeln!(out).context("cannot write to stdout")?;
    Ok(())
}

/// Writes `text` to stdout as is.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// True when stdin is an interactive terminal (prompts are allowed).
pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// True when colour may be used on stdout: a TTY and `NO_COLOR` unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// True when the error chain ends in a closed stdout (`| head`), which is not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().map(|io| io.kind());
        // serde_json's error hides its io::Error from the source chain; it only tells the kind.
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// True when stdout is an interactive terminal (screens may be redrawn).
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// The width tables must fit: the terminal's on a TTY, else `COLUMNS` when set, else unknown.
pub fn terminal_width() -> Option<usize> {
    if stdout_is_tty() {
        if let Some(width) = comfy_table::Table::new().width() {
            return Some(usize::from(width));
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
}

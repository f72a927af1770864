//! `check`: the deployment checklist of DESIGN.md §1, each item automated where a machine can
//! judge it. This file owns the flags, the order of the items, the spinner, the table, the JSON
//! and the exit code; the judgements live in `check/` (files, the app's URL, network probes).

mod app_url;
mod ini;
mod inputs;
mod monitoring;
mod probes;
mod userlist;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use serde::Serialize;

use super::output::{self, OutputArgs};
use super::units;

pub use app_url::AppUrl;
pub use inputs::{Inputs, Loaded};

/// Arguments of `bouncectl check`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    DATABASE_URL='postgresql://app:pw@10.0.0.5:6432/app?pgbouncer=true&connection_limit=10' \\\n    \
    bouncectl check --config /etc/pgbouncer/pgbouncer.ini \\\n    \
    --admin-url postgresql://stats_user:pw@10.0.0.5:6432/pgbouncer \\\n    \
    --pg-url postgresql://postgres@10.0.0.9:5432/postgres --poolers 2\n\n\
    Each item ends as pass, warn, fail, skip (its input was not given; the evidence names the flag)\n\
    or manual (no machine can judge it). Exit 1 when an item fails (with --strict: or warns),\n\
    2 on a usage error such as an unreadable connection string.")]
pub struct Args {
    /// The pooler's pgbouncer.ini (validated; its auth_file, pools and servers are checked).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The app's connection string, as the app uses it (Prisma's parameters are understood).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// The pooler's admin console as a stats or admin user (database `pgbouncer`).
    #[arg(
        long,
        env = "BOUNCECTL_ADMIN_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub admin_url: Option<String>,
    /// PostgreSQL itself, directly (for max_connections and the reserved connections).
    #[arg(long, value_name = "URL")]
    pub pg_url: Option<String>,
    /// Pooler replicas that share PostgreSQL's connections.
    #[arg(
        long,
        value_name = "K",
        default_value_t = 1,
        allow_hyphen_values = true
    )]
    pub poolers: i64,
    /// How long each network probe may take (5, 5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = units::parse_duration)]
    pub timeout: Duration,
    /// Exit 1 on a warning too, not only on a failure.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// How one item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Checked and fine.
    Pass,
    /// Works, but is not what the checklist recommends.
    Warn,
    /// Checked and wrong.
    Fail,
    /// Not checked: its input was not given.
    Skip,
    /// No machine can judge it.
    Manual,
}

impl Status {
    /// The lowercase name used in the table and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Manual => "manual",
        }
    }
}

/// A status with its one line of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// How the item ended.
    pub status: Status,
    /// One line saying why.
    pub evidence: String,
}

impl Outcome {
    /// An outcome from its parts.
    pub fn new(status: Status, evidence: impl Into<String>) -> Self {
        Outcome {
            status,
            evidence: evidence.into(),
        }
    }

    /// A `skip` that names what would enable the item.
    pub fn skip(evidence: impl Into<String>) -> Self {
        Self::new(Status::Skip, evidence)
    }
}

/// Findings of one item: the worst of pass/warn/fail wins, worst reasons first.
#[derive(Debug, Default)]
pub struct Findings {
    parts: Vec<(Status, String)>,
}

impl Findings {
    /// Adds one finding.
    pub fn note(&mut self, status: Status, text: impl Into<String>) {
        self.parts.push((status, text.into()));
    }

    /// The combined outcome (`pass` when nothing was noted; `skip` when only skips were).
    pub fn outcome(mut self) -> Outcome {
        let rank = |status: Status| match status {
            Status::Fail => 3,
            Status::Warn => 2,
            Status::Pass => 1,
            Status::Skip | Status::Manual => 0,
        };
        self.parts
            .sort_by_key(|(status, _)| std::cmp::Reverse(rank(*status)));
        let status = self.parts.first().map_or(Status::Pass, |(s, _)| *s);
        let evidence = self
            .parts
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
            .join("; ");
        Outcome::new(status, evidence)
    }
}

/// One row of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The checklist number, 1 to 9.
    pub id: u8,
    /// What is checked.
    pub name: &'static str,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Every item, in order.
    pub items: &'a [Item],
    /// How many items ended in each status.
    pub summary: Summary,
    /// False when the exit code is 1 (a failure, or a warning under `--strict`).
    pub ok: bool,
}

/// Counts per status.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Items that passed.
    pub pass: usize,
    /// Items that warned.
    pub warn: usize,
    /// Items that failed.
    pub fail: usize,
    /// Items skipped for a missing input.
    pub skip: usize,
    /// Items left to a person.
    pub manual: usize,
}

/// The checklist's items, in order.
pub const NAMES: [&str; 9] = [
    "userlist well-formed, hashed, private",
    "pgbouncer.ini valid, servers reachable",
    "pool sizes fit max_connections",
    "DATABASE_URL goes through the pooler",
    "pooler is up",
    "health query through the pooler",
    "app credentials accepted",
    "monitoring answers",
    "secrets kept in a secrets manager",
];

/// Runs `check`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let inputs = Inputs::parse(&args)?;
    let progress = !args.output.json && std::io::stderr().is_terminal();
    let items = super::runtime()?.block_on(run_items(&inputs, progress));
    let count = |s: Status| items.iter().filter(|i| i.outcome.status == s).count();
    let ok = count(Status::Fail) == 0 && !(args.strict && count(Status::Warn) > 0);
    if args.output.json {
        output::print_json(&Report {
            summary: Summary {
                pass: count(Status::Pass),
                warn: count(Status::Warn),
                fail: count(Status::Fail),
                skip: count(Status::Skip),
                manual: count(Status::Manual),
            },
            items: &items,
            ok,
        })?;
    } else {
        output::print_text(&render(&items))?;
        eprintln!(
            "{} pass, {} warn, {} fail, {} skip, {} manual{}",
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::Skip),
            count(Status::Manual),
            if args.strict { " (--strict)" } else { "" }
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_PROBLEM)
    })
}

/// Runs the items in order, each under its own spinner when `progress` is set.
async fn run_items(inputs: &Inputs, progress: bool) -> Vec<Item> {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(NAMES.len());
    let spin = |index: usize| {
        let name = NAMES.get(index).copied().unwrap_or("");
        spinner(progress, &format!("[{}/{}] {name}", index + 1, NAMES.len()))
    };
    let bar = spin(0);
    outcomes.push(userlist::check(&inputs.config));
    bar.finish_and_clear();
    let bar = spin(1);
    outcomes.push(ini::check(&inputs.config, inputs.timeout).await);
    bar.finish_and_clear();
    let bar = spin(2);
    outcomes.push(probes::pool_fit(inputs).await);
    bar.finish_and_clear();
    let bar = spin(3);
    outcomes.push(app_url::check(inputs));
    bar.finish_and_clear();
    let bar = spin(4);
    outcomes.push(probes::pooler_up(inputs).await);
    bar.finish_and_clear();
    let bar = spin(5);
    let (health, login) = probes::app_session(inputs).await;
    outcomes.push(health);
    outcomes.push(login);
    bar.finish_and_clear();
    let bar = spin(7);
    outcomes.push(monitoring::check(inputs).await);
    bar.finish_and_clear();
    outcomes.push(Outcome::new(
        Status::Manual,
        "keep DATABASE_URL, auth_file secrets and admin passwords in a secrets manager \
         (Vault, a cloud secret store, Kubernetes Secrets), not in images or git",
    ));
    outcomes
        .into_iter()
        .zip(NAMES)
        .zip(1u8..)
        .map(|((outcome, name), id)| Item { id, name, outcome })
        .collect()
}

fn spinner(progress: bool, name: &str) -> indicatif::ProgressBar {
    if !progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("checking: {name}"));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Narrower than this, a terminal is taken as unknown and the table is not wrapped.
const MIN_WIDTH: usize = 40;

/// The summary table: number, item, status (coloured when allowed) and evidence.
fn render(items: &[Item]) -> String {
    let colour = output::colour();
    let mut table = Table::new();
    table
        .force_no_tty()
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_header(["#", "item", "status", "evidence"]);
    // A pseudo-terminal without a size (`script`, some CI runners) reports a width near 0.
    match output::terminal_width().filter(|&w| w >= MIN_WIDTH) {
        Some(width) => {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(u16::try_from(width).unwrap_or(u16::MAX));
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    if colour {
        table.enforce_styling();
    }
    for item in items {
        let status = Cell::new(item.outcome.status.as_str());
        let status = match (colour, item.outcome.status) {
            (false, _) => status,
            (true, Status::Pass) => status.fg(Color::Green),
            (true, Status::Warn) => status.fg(Color::Yellow),
            (true, Status::Fail) => status.fg(Color::Red),
            (true, Status::Skip | Status::Manual) => status.fg(Color::DarkGrey),
        };
        table.add_row(vec![
            Cell::new(item.id),
            Cell::new(item.name),
            status,
            Cell::new(&item.outcome.evidence),
        ]);
    }
    format!("{table}\n")
}

#[cfg(test)]
mod tests;

//! `show`: one of PgBouncer's SHOW commands from a pooler's admin console, as a table with human
//! units that fits the terminal, or as JSON keyed by PgBouncer's column names; `--watch` redraws it.

use std::process::ExitCode;
use std::time::Duration;

use super::admin_client::{self, Target};
use super::output;
use super::table::{self, JsonRows, Layout};
use super::units;

/// The admin console a plain `bouncectl show` talks to (PgBouncer's defaults).
pub const DEFAULT_ADMIN_URL: &str = "postgresql://pgbouncer@127.0.0.1:6432/pgbouncer";

/// Arguments of `bouncectl show`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    bouncectl show pools\n  \
    bouncectl show stats --admin-url postgresql://stats_user@10.0.0.5:6432/pgbouncer --json\n  \
    bouncectl show clients --all --watch 2\n\n\
    The password comes from the URL, PGPASSWORD or ~/.pgpass (PGPASSFILE). Times are shown as ms/s,\n\
    byte counts as KiB/MiB and connect/request times as ages; --json keeps PgBouncer's raw values.")]
pub struct Args {
    /// Which SHOW command to run.
    #[arg(value_enum)]
    pub what: What,
    /// The pooler's admin console (libpq URL or key=value string; the database is `pgbouncer`).
    #[arg(
        long,
        env = "BOUNCECTL_ADMIN_URL",
        hide_env_values = true,
        default_value = DEFAULT_ADMIN_URL,
        value_name = "URL"
    )]
    pub admin_url: String,
    /// Show every column, even when the table is wider than the terminal.
    #[arg(long)]
    pub all: bool,
    /// Redraw every SECS seconds until Ctrl-C (with --json: one JSON array per line).
    #[arg(long, value_name = "SECS", value_parser = watch_period)]
    pub watch: Option<Duration>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: output::OutputArgs,
}

/// PgBouncer's read-only SHOW commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// Per-database totals and averages of transactions, queries, bytes and times.
    Stats,
    /// One row per (database, user) pool: clients active/waiting, servers active/idle, maxwait.
    Pools,
    /// Client connections.
    Clients,
    /// Server connections.
    Servers,
    /// The configured databases and their limits.
    Databases,
    /// Every setting with its value, default and whether it changes without a restart.
    Config,
    /// Counts of the pooler's internal lists.
    Lists,
    /// Users with their own settings.
    Users,
    /// The pooler's version.
    Version,
    /// Per-database totals only.
    #[value(name = "stats_totals", alias = "stats-totals")]
    StatsTotals,
    /// Per-database averages only (per second, or µs per item).
    #[value(name = "stats_averages", alias = "stats-averages")]
    StatsAverages,
    /// Memory used by the pooler's caches.
    Mem,
}

impl What {
    /// The SHOW keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            What::Stats => "STATS",
            What::Pools => "POOLS",
            What::Clients => "CLIENTS",
            What::Servers => "SERVERS",
            What::Databases => "DATABASES",
            What::Config => "CONFIG",
            What::Lists => "LISTS",
            What::Users => "USERS",
            What::Version => "VERSION",
            What::StatsTotals => "STATS_TOTALS",
            What::StatsAverages => "STATS_AVERAGES",
            What::Mem => "MEM",
        }
    }

    /// The columns to keep on a narrow terminal, most useful first.
    pub fn preferred(self) -> &'static [&'static str] {
        match self {
            What::Pools => &[
                "database",
                "user",
                "cl_active",
                "cl_waiting",
                "sv_active",
                "sv_idle",
                "maxwait",
                "pool_mode",
                "sv_used",
                "sv_login",
                "sv_tested",
            ],
            What::Stats => &[
                "database",
                "total_xact_count",
                "total_query_count",
                "avg_query_time",
                "avg_wait_time",
                "total_wait_time",
                "total_received",
                "total_sent",
                "avg_xact_count",
                "avg_query_count",
                "total_query_time",
                "total_xact_time",
            ],
            What::Clients | What::Servers => &[
                "user",
                "database",
                "state",
                "addr",
                "port",
                "application_name",
                "connect_time",
                "request_time",
                "wait",
                "remote_pid",
                "id",
            ],
            What::Databases => &[
                "name",
                "host",
                "port",
                "database",
                "pool_size",
                "current_connections",
                "max_connections",
                "pool_mode",
                "force_user",
                "paused",
                "disabled",
            ],
            What::Config => &["key", "value", "changeable", "default"],
            What::StatsTotals | What::StatsAverages => &[
                "database",
                "xact_count",
                "query_count",
                "wait_time",
                "query_time",
                "xact_time",
                "bytes_received",
                "bytes_sent",
            ],
            What::Users => &["name", "pool_mode", "pool_size", "current_connections"],
            What::Lists | What::Version | What::Mem => &[],
        }
    }
}

fn watch_period(text: &str) -> Result<Duration, String> {
    let period = units::parse_duration(text)?;
    if period < Duration::from_millis(100) {
        return Err("must be at least 0.1 seconds".to_owned());
    }
    Ok(period)
}

/// Runs `show`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(watch(args))
}

async fn watch(args: Args) -> anyhow::Result<ExitCode> {
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let config = admin_client::config(&args.admin_url)?;
    let client = tokio::select! {
        client = admin_client::connect_with(&config, Target::Console("--admin-url")) => client?,
        _ = &mut interrupt => return Ok(ExitCode::SUCCESS),
    };
    let tty = output::stdout_is_tty();
    loop {
        let result = tokio::select! {
            result = admin_client::show(&client, &config, args.what.keyword()) => result?,
            _ = &mut interrupt => return Ok(ExitCode::SUCCESS),
        };
        let Some(period) = args.watch else {
            print(&args, &result, None)?;
            return Ok(ExitCode::SUCCESS);
        };
        let title = tty.then(|| {
            let now = units::unix_now();
            format!(
                "Every {}: SHOW {} on {}   {:02}:{:02}:{:02} UTC",
                units::seconds(period.as_secs_f64()),
                args.what.keyword(),
                admin_client::describe(&config),
                now % 86_400 / 3_600,
                now % 3_600 / 60,
                now % 60
            )
        });
        print(&args, &result, title.as_deref())?;
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = &mut interrupt => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// Prints one frame; `title` is set when redrawing a terminal in place.
fn print(
    args: &Args,
    result: &admin_client::ShowResult,
    title: Option<&str>,
) -> anyhow::Result<()> {
    if args.output.json {
        let rows = JsonRows(result);
        if args.watch.is_some() {
            let line = serde_json::to_string(&rows)?;
            return output::print_text(&format!("{line}\n"));
        }
        return output::print_json(&rows);
    }
    let layout = Layout {
        width: output::terminal_width(),
        all: args.all,
        preferred: args.what.preferred(),
        rates: args.what == What::StatsAverages,
        now: units::unix_now(),
    };
    let rendered = table::render(result, &layout);
    let note = (!rendered.hidden.is_empty()).then(|| {
        format!(
            "{} columns hidden to fit ({}); --all shows them",
            rendered.hidden.len(),
            rendered.hidden.join(", ")
        )
    });
    match title {
        Some(title) => {
            let note = note.map(|n| format!("{n}\n")).unwrap_or_default();
            // Clear the screen and home the cursor, then draw the whole frame in one write.
            output::print_text(&format!("\x1b[2J\x1b[H{title}\n\n{}{note}", rendered.text))
        }
        None => {
            output::print_text(&rendered.text)?;
            if let Some(note) = note {
                eprintln!("{note}");
            }
            Ok(())
        }
    }
}

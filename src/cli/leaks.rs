//! `leaks`: non-idle sessions from PostgreSQL's pg_stat_activity, oldest first, with the ones left
//! idle in a transaction or running too long flagged as leaks and a hint on what to do about each.

use std::process::ExitCode;
use std::time::Duration;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};

use super::activity;
use super::output::{self, OutputArgs};
use super::units;

/// Characters of the query shown in a table when stdout is no terminal and `COLUMNS` is unset.
const QUERY_WITHOUT_TERMINAL: usize = 80;

/// The shortest cut of the query worth showing; narrower terminals lose other columns first.
const MIN_QUERY: usize = 16;

/// Arguments of `bouncectl leaks`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    bouncectl leaks --database-url postgresql://postgres@127.0.0.1/postgres\n  \
    DATABASE_URL=postgresql://postgres@db/app bouncectl leaks --idle-in-transaction 30s --min-duration 10m --json\n\n\
    Connect as a superuser or a member of pg_read_all_stats to see every role's sessions.\n\
    Exit 1 when a leak is found, 0 when none, 2 when PostgreSQL cannot be reached.")]
pub struct Args {
    /// PostgreSQL to inspect (libpq URL or key=value string), directly rather than through the pooler.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// A session idle in a transaction at least this long is a leak (60, 60s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = units::parse_duration)]
    pub idle_in_transaction: Duration,
    /// A non-idle session (running a query, or idle in a transaction) at least this long is a leak.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = units::parse_duration)]
    pub min_duration: Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Runs `leaks`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(url) = args.database_url.as_deref() else {
        return Err(super::usage(
            "no PostgreSQL to inspect: give --database-url or set DATABASE_URL",
        ));
    };
    let mut sessions = super::runtime()?.block_on(activity::fetch(url))?;
    for session in &mut sessions {
        activity::judge(session, args.idle_in_transaction, args.min_duration);
    }
    let leaks = sessions.iter().filter(|s| s.leak).count();
    if args.output.json {
        output::print_json(&sessions)?;
    } else if !sessions.is_empty() {
        output::print_text(&render(&sessions))?;
    }
    eprintln!(
        "{} among {} non-idle session{} (leak: idle in transaction ≥ {}, or non-idle ≥ {})",
        match leaks {
            0 => "no leaks".to_owned(),
            1 => "1 leak".to_owned(),
            n => format!("{n} leaks"),
        },
        sessions.len(),
        if sessions.len() == 1 { "" } else { "s" },
        units::seconds(args.idle_in_transaction.as_secs_f64()),
        units::seconds(args.min_duration.as_secs_f64()),
    );
    Ok(if leaks == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_PROBLEM)
    })
}

/// The table, with the query cut to what is left of the terminal, then one hint line per leak.
fn render(sessions: &[activity::Session]) -> String {
    let header = [
        "",
        "pid",
        "usename",
        "application_name",
        "client_addr",
        "state",
        "query_start",
        "duration",
        "query",
    ];
    let mut rows: Vec<[String; 9]> = sessions
        .iter()
        .map(|s| {
            [
                if s.leak { "LEAK" } else { "" }.to_owned(),
                s.pid.to_string(),
                s.usename.clone().unwrap_or_default(),
                s.application_name.clone().unwrap_or_default(),
                s.client_addr.clone().unwrap_or_else(|| "local".to_owned()),
                s.state.clone(),
                // `2026-11-26T14:56:07Z` → `11-26 14:56:07`: the year and zone cost width, not sense.
                s.query_start
                    .as_deref()
                    .and_then(|t| t.get(5..19))
                    .map(|t| t.replace('T', " "))
                    .unwrap_or_default(),
                s.duration.map(units::seconds).unwrap_or_default(),
                s.query
                    .as_deref()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    let width_of = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
            + 3
    };
    // Each column adds padding and a border (in width_of), the table one more border.
    let others = |shown: &[usize]| -> usize {
        shown
            .iter()
            .filter(|&&i| i != 8)
            .map(|&i| width_of(i))
            .sum::<usize>()
            + 1
    };
    let mut shown: Vec<usize> = (0..9).collect();
    // Without a terminal (a pipe, a file) there is nothing to fit: keep a readable prefix.
    let room = match output::terminal_width() {
        None => QUERY_WITHOUT_TERMINAL,
        Some(width) => {
            // Narrow terminal: the start time goes first (duration says as much), then the role,
            // then the address (the hint names it).
            let need = MIN_QUERY.min(width_of(8) - 3) + 3;
            for optional in [6, 2, 4] {
                if width >= others(&shown) + need {
                    break;
                }
                shown.retain(|&i| i != optional);
            }
            width.saturating_sub(others(&shown) + 3).max(MIN_QUERY)
        }
    };
    for row in &mut rows {
        if row[8].chars().count() > room {
            row[8] = row[8].chars().take(room - 1).chain(['…']).collect();
        }
    }
    let colour = output::colour();
    let mut table = Table::new();
    table
        .force_no_tty()
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(shown.iter().map(|&i| header[i]));
    if colour {
        table.enforce_styling();
    }
    for (row, session) in rows.iter().zip(sessions) {
        table.add_row(shown.iter().map(|&i| {
            let cell = Cell::new(&row[i]);
            if colour && session.leak {
                cell.fg(Color::Red)
            } else {
                cell
            }
        }));
    }
    let mut text = format!("{table}\n");
    for session in sessions.iter().filter(|s| s.leak) {
        if let Some(hint) = &session.hint {
            text.push_str(&format!("pid {}: {hint}\n", session.pid));
        }
    }
    text
}

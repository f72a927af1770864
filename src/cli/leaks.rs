//! `leaks`: non-idle sessions from PostgreSQL's pg_stat_activity, oldest first, with the ones left
//! idle in a transaction or running too long flagged as leaks and a hint on what to do about each.

use std::process::ExitCode;
use std::time::Duration;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use serde::Serialize;

use super::admin_client::{self, Target};
use super::output::{self, OutputArgs};
use super::units;

/// Non-idle client sessions but our own, oldest first. An idle-in-transaction session counts
/// from the start of its transaction, an active one from the start of its query (`since`).
const QUERY: &str = "\
SELECT pid, usename::text, application_name, host(client_addr) AS client_addr, state,
       to_char(query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS query_start,
       CASE WHEN state LIKE 'idle in transaction%' THEN 'xact_start' ELSE 'query_start' END AS since,
       extract(epoch FROM now() - CASE WHEN state LIKE 'idle in transaction%'
                                       THEN coalesce(xact_start, query_start)
                                       ELSE query_start END)::float8 AS duration,
       query
  FROM pg_stat_activity
 WHERE state <> 'idle' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
 ORDER BY duration DESC NULLS LAST";

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

/// One row of the report; the JSON keys are pg_stat_activity's names plus `since`, `leak`, `hint`.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// Backend process id.
    pub pid: i32,
    /// Role name.
    pub usename: Option<String>,
    /// The client's application_name.
    pub application_name: Option<String>,
    /// Client address; null for a unix socket.
    pub client_addr: Option<String>,
    /// `active`, `idle in transaction`, `idle in transaction (aborted)`, ...
    pub state: String,
    /// Start of the current or last query, UTC.
    pub query_start: Option<String>,
    /// Which timestamp `duration` counts from: `xact_start` or `query_start`.
    pub since: String,
    /// Seconds since `since`.
    pub duration: Option<f64>,
    /// The current or last query, in full.
    pub query: Option<String>,
    /// Whether a threshold is crossed.
    pub leak: bool,
    /// What to do about a leak (null otherwise).
    pub hint: Option<String>,
}

/// Flags a session against the thresholds and writes its hint.
pub fn judge(session: &mut Session, idle_in_transaction: Duration, min_duration: Duration) {
    let secs = session.duration.unwrap_or(0.0);
    let idle_tx = session.state.starts_with("idle in transaction");
    session.leak = (idle_tx && secs >= idle_in_transaction.as_secs_f64())
        || secs >= min_duration.as_secs_f64();
    session.hint = session.leak.then(|| {
        if idle_tx {
            format!(
                "the app opened a transaction and never committed or rolled back: look at application_name {} from client_addr {}",
                session
                    .application_name
                    .as_deref()
                    .filter(|a| !a.is_empty())
                    .unwrap_or("(empty)"),
                session.client_addr.as_deref().unwrap_or("(unix socket)")
            )
        } else {
            format!(
                "long-running query: check for missing indexes/locks, or cancel with SELECT pg_cancel_backend({})",
                session.pid
            )
        }
    });
}

/// Runs `leaks`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(url) = args.database_url.as_deref() else {
        return Err(super::usage(
            "no PostgreSQL to inspect: give --database-url or set DATABASE_URL",
        ));
    };
    let mut sessions = super::runtime()?.block_on(fetch(url))?;
    for session in &mut sessions {
        judge(session, args.idle_in_transaction, args.min_duration);
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

async fn fetch(url: &str) -> anyhow::Result<Vec<Session>> {
    let client = admin_client::connect_to(url, Target::Postgres("--database-url")).await?;
    let rows = client.query(QUERY, &[]).await.map_err(|e| {
        super::usage(format!(
            "cannot read pg_stat_activity: {}",
            admin_client::pg_error_text(&e)
        ))
    })?;
    rows.iter()
        .map(|row| {
            Ok(Session {
                pid: row.try_get("pid")?,
                usename: row.try_get("usename")?,
                application_name: row.try_get("application_name")?,
                client_addr: row.try_get("client_addr")?,
                state: row
                    .try_get::<_, Option<String>>("state")?
                    .unwrap_or_default(),
                query_start: row.try_get("query_start")?,
                since: row.try_get("since")?,
                duration: row.try_get("duration")?,
                query: row.try_get("query")?,
                leak: false,
                hint: None,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| anyhow::anyhow!("unexpected pg_stat_activity row: {e}"))
}

/// The table, with the query cut to what is left of the terminal, then one hint line per leak.
fn render(sessions: &[Session]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(state: &str, secs: f64) -> Session {
        Session {
            pid: 42,
            usename: Some("app".into()),
            application_name: Some("billing".into()),
            client_addr: Some("10.0.0.7".into()),
            state: state.into(),
            query_start: None,
            since: "query_start".into(),
            duration: Some(secs),
            query: Some("SELECT 1".into()),
            leak: false,
            hint: None,
        }
    }

    #[test]
    fn thresholds_decide_leaks() {
        let (idle, min) = (Duration::from_secs(60), Duration::from_secs(300));
        let cases = [
            ("idle in transaction", 59.0, false),
            ("idle in transaction", 60.0, true),
            ("idle in transaction (aborted)", 61.0, true),
            ("active", 299.0, false),
            ("active", 300.0, true),
            ("fastpath function call", 301.0, true),
        ];
        for (state, secs, leak) in cases {
            let mut s = session(state, secs);
            judge(&mut s, idle, min);
            assert_eq!(s.leak, leak, "{state} {secs}");
            assert_eq!(s.hint.is_some(), leak);
        }
    }

    #[test]
    fn hints_name_the_culprit() {
        let mut s = session("idle in transaction", 90.0);
        judge(&mut s, Duration::from_secs(60), Duration::from_secs(300));
        let hint = s.hint.unwrap();
        assert!(
            hint.contains("billing") && hint.contains("10.0.0.7"),
            "{hint}"
        );
        let mut s = session("active", 900.0);
        judge(&mut s, Duration::from_secs(60), Duration::from_secs(300));
        assert!(s.hint.unwrap().contains("pg_cancel_backend(42)"));
    }
}

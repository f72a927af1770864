//! `bouncectl leaks` against a real PostgreSQL with sessions left open on purpose.

use std::time::Duration;

use serde_json::Value;

use crate::support::postgres::MD5_USER;
use crate::support::{self, TempPostgres, bouncectl};

/// Polls pg_stat_activity until `pid` is in `state` for longer than `secs` by `column`.
fn wait_for_state(pg: &TempPostgres, pid: i32, state: &str, column: &str, secs: f64) {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = '{state}' \
         AND now() - {column} > interval '{secs} seconds'"
    );
    let seen = support::wait_until(Duration::from_secs(20), || pg.psql(&sql) == "1");
    assert!(seen, "pid {pid} never was {state} for {secs}s");
}

fn leaks_json(pg: &TempPostgres, extra: &[&str]) -> (Option<i32>, Vec<Value>) {
    let url = pg.superuser_url();
    let mut args = vec!["leaks", "--database-url", url.as_str(), "--json"];
    args.extend_from_slice(extra);
    let out = bouncectl(&args, "");
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", support::stdout(&out), support::stderr(&out)));
    (out.status.code(), json.as_array().unwrap().clone())
}

fn row(rows: &[Value], pid: i32) -> &Value {
    rows.iter()
        .find(|r| r["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not in {rows:?}"))
}

#[tokio::test]
async fn leaks_flags_a_session_idle_in_transaction() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let url = format!(
        "{} application_name=leaky-app",
        pg.tcp_url(MD5_USER, "postgres")
    );
    let holder = support::connect(&url).await.unwrap();
    holder.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    wait_for_state(&pg, pid, "idle in transaction", "xact_start", 1.2);

    let (code, rows) = leaks_json(&pg, &["--idle-in-transaction", "1h"]);
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(row(&rows, pid)["leak"], false);

    let (code, rows) = leaks_json(&pg, &["--idle-in-transaction", "1s"]);
    assert_eq!(code, Some(1), "{rows:?}");
    let leak = row(&rows, pid);
    assert_eq!(leak["leak"], true);
    assert_eq!(leak["state"], "idle in transaction");
    assert_eq!(leak["since"], "xact_start");
    assert_eq!(leak["usename"], MD5_USER);
    assert_eq!(leak["client_addr"], "127.0.0.1");
    assert!(leak["duration"].as_f64().unwrap() >= 1.0, "{leak}");
    let hint = leak["hint"].as_str().unwrap();
    assert!(
        hint.contains("never committed") && hint.contains("leaky-app"),
        "{hint}"
    );

    let superuser = pg.superuser_url();
    let args = [
        "leaks",
        "--database-url",
        &superuser,
        "--idle-in-transaction",
        "1",
    ];
    let out = bouncectl(&args, "");
    assert_eq!(out.status.code(), Some(1));
    let table = support::stdout(&out);
    assert!(
        table.contains("LEAK") && table.contains(&pid.to_string()),
        "{table}"
    );
    assert!(table.contains("leaky-app"), "{table}");
    let out = support::bouncectl_env(&args, "", &[("COLUMNS", "90")]);
    let narrow = support::stdout(&out);
    let table_lines = narrow.lines().take_while(|l| !l.starts_with("pid "));
    assert!(
        table_lines.clone().all(|l| l.chars().count() <= 90),
        "{narrow}"
    );
    assert!(
        narrow.contains("LEAK") && narrow.contains("leaky-app"),
        "{narrow}"
    );
    assert!(
        support::stderr(&out).contains("1 leak"),
        "{}",
        support::stderr(&out)
    );
    drop(holder);
}

// Multi-threaded: the sleeping query must run while this thread polls pg_stat_activity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaks_flags_a_long_running_query() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let client = support::connect(&pg.tcp_url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(60)").await });
    wait_for_state(&pg, pid, "active", "query_start", 1.2);

    let (code, rows) = leaks_json(&pg, &["--min-duration", "1s"]);
    assert_eq!(code, Some(1), "{rows:?}");
    let leak = row(&rows, pid);
    assert_eq!(
        (leak["leak"].clone(), leak["since"].clone()),
        (true.into(), "query_start".into())
    );
    assert_eq!(leak["query"], "SELECT pg_sleep(60)");
    let hint = leak["hint"].as_str().unwrap();
    assert!(
        hint.contains(&format!("pg_cancel_backend({pid})")),
        "{hint}"
    );

    pg.psql(&format!("SELECT pg_cancel_backend({pid})"));
    let cancelled = sleeper.await.unwrap();
    assert!(cancelled.is_err(), "the sleep was cancelled");
}

#[test]
fn leaks_on_a_quiet_server_exits_0() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let (code, rows) = leaks_json(&pg, &[]);
    assert_eq!(code, Some(0), "{rows:?}");
    assert!(rows.iter().all(|r| r["leak"] == false), "{rows:?}");
    let url = pg.superuser_url();
    let out = bouncectl(&["leaks", "--database-url", &url], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        support::stderr(&out).contains("no leaks"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn leaks_connection_and_usage_errors_exit_2() {
    let out = bouncectl(&["leaks"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("DATABASE_URL"),
        "{}",
        support::stderr(&out)
    );

    let port = crate::support::postgres::free_port();
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let out = bouncectl(&["leaks", "--database-url", &url], "");
    assert_eq!(out.status.code(), Some(2));
    let err = support::stderr(&out);
    assert!(
        err.contains(&format!("nothing listens on 127.0.0.1:{port}")),
        "{err}"
    );

    let out = bouncectl(
        &["leaks", "--database-url", &url, "--min-duration", "soon"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("invalid duration"),
        "{}",
        support::stderr(&out)
    );
}

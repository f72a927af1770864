//! Real drivers that prepare by default, through the pooler in transaction mode: psycopg 3 with
//! `prepare_threshold=0` (tests/python/psycopg_prepared.py), 100 concurrent connections over a
//! pool of 5. `.ci/run` installs psycopg; without it the test says SKIPPED, and fails under
//! `CI=true`, as the PostgreSQL tests do.

use std::path::PathBuf;
use std::process::Command;

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};
use crate::support::{self};

/// True when `python3` can import `module`; otherwise says SKIPPED (or panics under CI=true).
fn python_has(module: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let why = format!(
            "python3 cannot import {module} (pip install 'psycopg[binary]==3.3.9', as .ci/run does)"
        );
        assert!(std::env::var_os("CI").is_none_or(|v| v != "true"), "{why}");
        eprintln!("SKIPPED: {why}");
    }
    found
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// A SHOW STATS column for database `postgres`, read through the admin console.
async fn show_stats(bouncer: &TestBouncer, column: &str) -> i64 {
    let console = support::connect(&bouncer.admin_url(ADMIN_USER))
        .await
        .unwrap();
    let messages = console.simple_query("SHOW STATS").await.unwrap();
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) if r.get("database") == Some("postgres") => {
                r.get(column).map(|v| v.parse().unwrap())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no SHOW STATS row for postgres"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_prepares_every_query_over_a_pool_of_five() {
    if !python_has("psycopg") {
        return;
    }
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 5\nmax_client_conn = 200").await;
    let conninfo = format!(
        "host=127.0.0.1 port={} user={MD5_USER} password={PASSWORD} dbname=postgres",
        bouncer.port
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script("psycopg_prepared.py"))
            .args([&conninfo, "100", "20"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("100 tasks, 2200 prepared queries, no error"),
        "{stdout}"
    );

    // Each distinct statement is parsed once per server connection, not once per client: 3 query
    // texts, 4 statements as psycopg sends small ints as int2 and larger ones as int4.
    let client_parses = show_stats(&bouncer, "total_client_parse_count").await;
    let server_parses = show_stats(&bouncer, "total_server_parse_count").await;
    eprintln!("psycopg: {client_parses} client parses, {server_parses} server parses");
    assert!(client_parses >= 100 * 3, "client parses: {client_parses}");
    assert!(
        server_parses <= 2 * 5 * 4,
        "server parses: {server_parses} for 5 servers × 4 statements (×2 slack for replaced servers)"
    );
}

//! `bouncectl show` against a real PgBouncer (Debian's 1.18) in front of a TempPostgres, and against
//! `bouncectl serve` (in-process).

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use serde_json::Value;

use crate::support::pgbouncer::{ADMIN_PASSWORD, ADMIN_USER, STATS_PASSWORD, STATS_USER};
use crate::support::postgres::{MD5_USER, PASSWORD};
use crate::support::{self, TempPgbouncer, TempPostgres, bouncectl, bouncectl_env};

/// Columns PgBouncer 1.18 sends, in order; later releases add some, so these must appear in order.
const POOLS_1_18: &[&str] = &[
    "database",
    "user",
    "cl_active",
    "cl_waiting",
    "cl_active_cancel_req",
    "cl_waiting_cancel_req",
    "sv_active",
    "sv_active_cancel",
    "sv_being_canceled",
    "sv_idle",
    "sv_used",
    "sv_tested",
    "sv_login",
    "maxwait",
    "maxwait_us",
    "pool_mode",
];
const STATS_1_18: &[&str] = &[
    "database",
    "total_xact_count",
    "total_query_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
    "avg_xact_count",
    "avg_query_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
];
const CLIENTS_1_18: &[&str] = &[
    "type",
    "user",
    "database",
    "state",
    "addr",
    "port",
    "local_addr",
    "local_port",
    "connect_time",
    "request_time",
    "wait",
    "wait_us",
    "close_needed",
    "ptr",
    "link",
    "remote_pid",
    "tls",
    "application_name",
];
const DATABASES_1_18: &[&str] = &[
    "name",
    "host",
    "port",
    "database",
    "force_user",
    "pool_size",
    "min_pool_size",
];
const CONFIG_1_18: &[&str] = &["key", "value", "default", "changeable"];
const MEM_1_18: &[&str] = &["name", "size", "used", "free", "memtotal"];

/// Runs `show WHAT --json` as the admin; returns stdout and the parsed array.
fn show_json_text(bouncer: &TempPgbouncer, what: &str) -> (String, Vec<Value>) {
    let url = bouncer.admin_url(ADMIN_USER, ADMIN_PASSWORD);
    let out = bouncectl(&["show", what, "--admin-url", &url, "--json"], "");
    assert!(
        out.status.success(),
        "show {what}: {}",
        support::stderr(&out)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {json}"));
    (support::stdout(&out), rows.clone())
}

fn show_json(bouncer: &TempPgbouncer, what: &str) -> Vec<Value> {
    show_json_text(bouncer, what).1
}

/// Checks the key order in the raw text of the first object (serde_json's Value sorts keys).
fn assert_columns_in_order(text: &str, expected: &[&str]) {
    let start = text.find('{').expect("at least one row");
    let first = &text[start..start + text[start..].find('}').unwrap()];
    let mut at = 0;
    for want in expected {
        let key = format!("\"{want}\":");
        let Some(offset) = first[at..].find(&key) else {
            panic!("column {want} missing or out of order in {first}");
        };
        at += offset + key.len();
    }
}

fn find<'a>(rows: &'a [Value], key: &str, value: &str) -> &'a Value {
    rows.iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no row with {key} = {value} in {rows:?}"))
}

/// A client that ran a few statements through the pooler and stays connected.
async fn traffic(bouncer: &TempPgbouncer) -> tokio_postgres::Client {
    let url = format!("{} application_name=show-test", bouncer.app_url());
    let client = support::connect(&url).await.unwrap();
    for _ in 0..3 {
        client.simple_query("SELECT 1").await.unwrap();
    }
    client
        .batch_execute("BEGIN; SELECT 2; COMMIT")
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn show_json_has_pgbouncers_columns_and_numbers() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Some(bouncer) = TempPgbouncer::start_or_skip(&pg, &[]) else {
        return;
    };
    let _client = traffic(&bouncer).await;

    let (pools_text, pools) = show_json_text(&bouncer, "pools");
    assert_columns_in_order(&pools_text, POOLS_1_18);
    let pool = pools
        .iter()
        .find(|r| r["database"] == "postgres" && r["user"] == MD5_USER)
        .unwrap_or_else(|| panic!("no postgres/md5_user pool: {pools:?}"));
    assert!(pool["cl_active"].is_u64(), "{pool}");
    assert_eq!(pool["pool_mode"], "transaction");

    // PgBouncer's stats lag a little (they are summed on a timer): poll, never sleep.
    let counted = support::wait_until(Duration::from_secs(20), || {
        let stats = show_json(&bouncer, "stats");
        find(&stats, "database", "postgres")["total_xact_count"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    assert!(counted, "total_xact_count stayed 0:\n{}", bouncer.log());
    let (stats_text, stats) = show_json_text(&bouncer, "stats");
    assert_columns_in_order(&stats_text, STATS_1_18);
    assert!(
        find(&stats, "database", "postgres")["total_query_count"]
            .as_u64()
            .unwrap()
            >= 4
    );

    let (clients_text, clients) = show_json_text(&bouncer, "clients");
    assert_columns_in_order(&clients_text, CLIENTS_1_18);
    let client = find(&clients, "application_name", "show-test");
    assert_eq!(client["user"], MD5_USER);
    assert!(client["port"].is_u64(), "{client}");

    let (servers_text, servers) = show_json_text(&bouncer, "servers");
    assert_columns_in_order(&servers_text, CLIENTS_1_18);
    let server = find(&servers, "user", MD5_USER);
    assert_eq!(server["port"], u64::from(pg.port()));
    assert!(server["remote_pid"].as_u64().unwrap() > 0, "{server}");

    let (databases_text, databases) = show_json_text(&bouncer, "databases");
    assert_columns_in_order(&databases_text, DATABASES_1_18);
    assert_eq!(
        find(&databases, "name", "postgres")["port"],
        u64::from(pg.port())
    );

    let (config_text, config) = show_json_text(&bouncer, "config");
    assert_columns_in_order(&config_text, CONFIG_1_18);
    assert_eq!(
        find(&config, "key", "listen_port")["value"],
        u64::from(bouncer.port())
    );
    assert_eq!(find(&config, "key", "auth_type")["value"], "md5");

    assert_columns_in_order(&show_json_text(&bouncer, "mem").0, MEM_1_18);
    let version = show_json(&bouncer, "version");
    assert!(
        version[0]["version"]
            .as_str()
            .unwrap()
            .starts_with("PgBouncer"),
        "{version:?}"
    );
    let totals = show_json(&bouncer, "stats-totals");
    assert!(
        find(&totals, "database", "postgres")["xact_count"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn show_tables_use_human_units() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Some(bouncer) = TempPgbouncer::start_or_skip(&pg, &[]) else {
        return;
    };
    let _client = traffic(&bouncer).await;
    let url = bouncer.admin_url(ADMIN_USER, ADMIN_PASSWORD);
    let table = |what: &str| {
        let out = bouncectl(&["show", what, "--admin-url", &url], "");
        assert!(
            out.status.success(),
            "show {what}: {}",
            support::stderr(&out)
        );
        support::stdout(&out)
    };
    let pools = table("pools");
    for want in [
        "database",
        "cl_active",
        "sv_idle",
        "maxwait",
        "postgres",
        MD5_USER,
    ] {
        assert!(pools.contains(want), "{want} in\n{pools}");
    }
    assert!(
        !pools.contains("maxwait_us"),
        "maxwait_us is folded into maxwait:\n{pools}"
    );
    let clients = table("clients");
    assert!(
        clients.contains("connect_time") && clients.contains("s ago"),
        "{clients}"
    );
    assert!(clients.contains("show-test"), "{clients}");
    let mem = table("mem");
    assert!(mem.contains("memtotal") && mem.contains("KiB"), "{mem}");
    let stats = table("stats");
    assert!(
        stats.contains("total_received") && stats.contains(" B"),
        "{stats}"
    );
    for what in [
        "servers",
        "databases",
        "config",
        "lists",
        "users",
        "version",
        "stats_averages",
    ] {
        assert!(!table(what).is_empty(), "{what}");
    }
}

#[test]
fn show_fits_a_narrow_terminal_unless_all() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Some(bouncer) = TempPgbouncer::start_or_skip(&pg, &[]) else {
        return;
    };
    let url = bouncer.admin_url(ADMIN_USER, ADMIN_PASSWORD);
    let narrow = [("COLUMNS", "70")];
    let out = bouncectl_env(&["show", "stats", "--admin-url", &url], "", &narrow);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let text = support::stdout(&out);
    assert!(text.lines().all(|l| l.chars().count() <= 70), "{text}");
    assert!(text.contains("total_xact_count"), "{text}");
    assert!(
        support::stderr(&out).contains("--all"),
        "{}",
        support::stderr(&out)
    );
    let out = bouncectl_env(
        &["show", "stats", "--admin-url", &url, "--all"],
        "",
        &narrow,
    );
    let text = support::stdout(&out);
    assert!(
        text.contains("avg_wait_time") && text.contains("total_sent"),
        "{text}"
    );
}

#[test]
fn show_reads_passwords_like_libpq_and_lets_stats_users_in() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Some(bouncer) = TempPgbouncer::start_or_skip(&pg, &[]) else {
        return;
    };
    let port = bouncer.port().to_string();
    let bare = format!("postgresql://{ADMIN_USER}@127.0.0.1:{port}/pgbouncer");
    let args = ["show", "version", "--admin-url", bare.as_str()];
    let out = bouncectl_env(&args, "", &[("PGPASSWORD", ADMIN_PASSWORD)]);
    assert!(
        out.status.success(),
        "PGPASSWORD: {}",
        support::stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("# admin\n127.0.0.1:{port}:*:{ADMIN_USER}:{ADMIN_PASSWORD}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = bouncectl_env(&args, "", &[("PGPASSFILE", pgpass.to_str().unwrap())]);
    assert!(
        out.status.success(),
        "PGPASSFILE: {}",
        support::stderr(&out)
    );
    assert!(support::stdout(&out).contains("PgBouncer"));

    let out = bouncectl_env(&args, "", &[("PGPASSFILE", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("password"),
        "{}",
        support::stderr(&out)
    );

    let stats = bouncer.admin_url(STATS_USER, STATS_PASSWORD);
    let out = bouncectl(&["show", "pools", "--admin-url", &stats], "");
    assert!(
        out.status.success(),
        "stats user: {}",
        support::stderr(&out)
    );
}

#[test]
fn show_errors_say_what_to_fix() {
    let unused = crate::support::postgres::free_port();
    let url = format!("postgresql://{ADMIN_USER}:x@127.0.0.1:{unused}/pgbouncer");
    let out = bouncectl(&["show", "pools", "--admin-url", &url], "");
    assert_eq!(out.status.code(), Some(2));
    let err = support::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("nothing listens on 127.0.0.1:{unused}")),
        "{err}"
    );
    assert!(err.contains("--admin-url"), "{err}");

    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Some(bouncer) = TempPgbouncer::start_or_skip(&pg, &[]) else {
        return;
    };
    let postgres = pg.tcp_url(MD5_USER, "postgres");
    let non_admin = bouncer.admin_url(MD5_USER, PASSWORD);
    let wrong_password = bouncer.admin_url(ADMIN_USER, "wrong");
    for (url, want) in [
        (
            postgres.as_str(),
            "is PostgreSQL, not a pooler's admin console",
        ),
        (
            non_admin.as_str(),
            "md5_user is not an admin/stats user of the pooler",
        ),
        (
            wrong_password.as_str(),
            "pgbouncer is not an admin/stats user of the pooler",
        ),
    ] {
        let out = bouncectl(&["show", "pools", "--admin-url", url], "");
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = support::stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{url}: {err}");
    }
}

#[test]
fn show_watch_repeats_until_ctrl_c() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Some(bouncer) = TempPgbouncer::start_or_skip(&pg, &[]) else {
        return;
    };
    let url = bouncer.admin_url(ADMIN_USER, ADMIN_PASSWORD);
    let mut child = std::process::Command::new(support::bin())
        .args([
            "show",
            "lists",
            "--admin-url",
            &url,
            "--json",
            "--watch",
            "0.2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    for frame in 0..2 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| {
                let _ = child.kill();
                panic!("frame {frame} never came: {e}");
            });
        let json: Value = serde_json::from_str(&line).unwrap();
        assert!(json.as_array().is_some_and(|a| !a.is_empty()), "{line}");
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "Ctrl-C must end --watch cleanly: {status}"
    );
}

/// The same `show --json` checks against `bouncectl serve` (its console has PgBouncer 1.25's
/// columns, of which 1.18's are an ordered subset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_json_against_bouncectl_serve() {
    use crate::support::bouncer::{
        ADMIN_USER as SERVE_ADMIN, STATS_USER as SERVE_STATS, TestBouncer,
    };
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let url = format!(
        "{} application_name=show-test",
        bouncer.url(MD5_USER, "postgres")
    );
    let client = support::connect(&url).await.unwrap();
    for _ in 0..3 {
        client.simple_query("SELECT 1").await.unwrap();
    }
    client
        .batch_execute("BEGIN; SELECT 2; COMMIT")
        .await
        .unwrap();
    let admin = bouncer.admin_url(SERVE_ADMIN);
    let show = |what: &str| {
        let out = bouncectl(&["show", what, "--admin-url", &admin, "--json"], "");
        assert!(
            out.status.success(),
            "show {what}: {}",
            support::stderr(&out)
        );
        let text = support::stdout(&out);
        let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
        (text, rows)
    };
    let (text, pools) = show("pools");
    assert_columns_in_order(&text, POOLS_1_18);
    let pool = pools
        .iter()
        .find(|r| r["database"] == "postgres" && r["user"] == MD5_USER)
        .unwrap_or_else(|| panic!("no postgres/md5_user pool: {pools:?}"));
    assert_eq!(pool["cl_active"], 1, "{pool}");
    assert_eq!(pool["pool_mode"], "transaction");

    let (text, stats) = show("stats");
    assert_columns_in_order(&text, STATS_1_18);
    let db = find(&stats, "database", "postgres");
    assert_eq!(db["total_xact_count"], 4, "{db}");
    assert_eq!(db["total_query_count"], 4, "{db}");

    let (text, clients) = show("clients");
    assert_columns_in_order(&text, CLIENTS_1_18);
    let me = find(&clients, "application_name", "show-test");
    assert_eq!(me["user"], MD5_USER);
    assert!(me["port"].is_u64(), "{me}");

    let (text, servers) = show("servers");
    assert_columns_in_order(&text, CLIENTS_1_18);
    assert_eq!(
        find(&servers, "user", MD5_USER)["port"],
        u64::from(pg.port())
    );

    let (text, databases) = show("databases");
    assert_columns_in_order(&text, DATABASES_1_18);
    assert_eq!(
        find(&databases, "name", "postgres")["port"],
        u64::from(pg.port())
    );

    let (text, config) = show("config");
    assert_columns_in_order(&text, CONFIG_1_18);
    assert_eq!(find(&config, "key", "auth_type")["value"], "md5");
    assert_eq!(find(&config, "key", "default_pool_size")["value"], 5);

    let version = show("version").1;
    assert!(
        version[0]["version"]
            .as_str()
            .unwrap()
            .starts_with("PgBouncer")
    );

    let stats_user = bouncer.admin_url(SERVE_STATS);
    let out = bouncectl(&["show", "pools", "--admin-url", &stats_user], "");
    assert!(
        out.status.success(),
        "stats user: {}",
        support::stderr(&out)
    );
    let app_user = bouncer.admin_url(MD5_USER);
    let out = bouncectl(&["show", "pools", "--admin-url", &app_user], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("md5_user is not an admin/stats user of the pooler"),
        "{}",
        support::stderr(&out)
    );
}

//! The admin console of `bouncectl serve`: SHOW column lists against golden files (PgBouncer 1.25,
//! reference §1b) and against Debian's real PgBouncer 1.18, values from real traffic,
//! PAUSE/RESUME/KILL_CLIENT/RELOAD, access rules, and pgbouncer_exporter's scrape.

use std::path::Path;
use std::time::Duration;

use crate::support::bouncer::{ADMIN_USER, STATS_USER, TestBouncer};
use crate::support::client::{QueryResult, RawClient};
use crate::support::pgbouncer::{self, TempPgbouncer};
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};
use crate::support::{self};

/// Every SHOW of PgBouncer's show_map with a result set (HELP answers with a NOTICE).
const SHOWS: &[&str] = &[
    "STATS",
    "STATS_TOTALS",
    "STATS_AVERAGES",
    "TOTALS",
    "POOLS",
    "CLIENTS",
    "SERVERS",
    "DATABASES",
    "USERS",
    "CONFIG",
    "LISTS",
    "VERSION",
    "STATE",
    "MEM",
    "PEERS",
    "PEER_POOLS",
    "SOCKETS",
    "ACTIVE_SOCKETS",
    "FDS",
    "DNS_HOSTS",
    "DNS_ZONES",
];

const WAIT: Duration = Duration::from_secs(20);

/// Polls the async expression `$probe` until true or `$timeout`; async, so the in-process pooler
/// keeps running. Evaluates to whether it became true.
macro_rules! poll {
    ($timeout:expr, $probe:expr) => {{
        let deadline = tokio::time::Instant::now() + $timeout;
        loop {
            if $probe {
                break true;
            }
            if tokio::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }};
}

fn golden(name: &str) -> Vec<(String, u32)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/show")
        .join(format!("{}.txt", name.to_ascii_lowercase()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, ty) = l.split_once(' ').unwrap();
            let oid = match ty {
                "text" => 25,
                "int4" => 23,
                "int8" => 20,
                "numeric" => 1700,
                "bytea" => 17,
                other => panic!("unknown type {other} in {}", path.display()),
            };
            (name.to_owned(), oid)
        })
        .collect()
}

fn ok(result: &QueryResult, what: &str) {
    assert!(result.error.is_none(), "{what}: {:?}", result.error);
}

/// The row whose `key` column equals `value`.
fn row<'r>(result: &'r QueryResult, key: &str, value: &str) -> Vec<(&'r str, Option<&'r str>)> {
    let i = RawClient::column(result, key)
        .iter()
        .position(|v| *v == Some(value))
        .unwrap_or_else(|| panic!("no row with {key} = {value}: {:?}", result.rows));
    result
        .columns
        .iter()
        .map(|(n, _)| n.as_str())
        .zip(result.rows[i].iter().map(|c| c.as_deref()))
        .collect()
}

fn cell<'r>(row: &[(&str, Option<&'r str>)], name: &str) -> Option<&'r str> {
    row.iter().find(|(n, _)| *n == name).and_then(|(_, v)| *v)
}

fn num(row: &[(&str, Option<&str>)], name: &str) -> u64 {
    cell(row, name)
        .unwrap_or_else(|| panic!("{name} is NULL in {row:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} in {row:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_columns_match_the_golden_files() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let mut console = bouncer.console(ADMIN_USER).await;
    for name in SHOWS {
        let result = console.query(&format!("SHOW {name};")).await;
        ok(&result, name);
        assert_eq!(result.columns, golden(name), "SHOW {name}");
    }
    let help = console.query("SHOW HELP").await;
    assert_eq!(help.messages.first().map(|m| m.0), Some(b'N'), "{help:?}");
}

/// Column names and order against the real PgBouncer 1.18 (Debian's): every 1.18 column must
/// appear in ours, in the same order. 1.18 lacks later columns (STATS' server_assignment and
/// parse/bind counts, CLIENTS' replication/prepared_statements/id, DATABASES' server_lifetime…),
/// so its list is compared as an ordered subset of ours; commands 1.18 lacks (STATE, PEERS,
/// PEER_POOLS) are skipped. PgBouncer 1.24 renamed DATABASES' `reserve_pool` to
/// `reserve_pool_size`; that one rename is mapped. Columns both have must have the same type OID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_columns_match_pgbouncer_1_18() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Some(real) = TempPgbouncer::start_or_skip(&pg, &[]) else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let mut theirs = RawClient::connect(
        real.port(),
        &[("user", pgbouncer::ADMIN_USER), ("database", "pgbouncer")],
        pgbouncer::ADMIN_PASSWORD,
    )
    .await
    .unwrap();
    let version = theirs.query("SHOW VERSION").await;
    let version = version.rows[0][0].clone().unwrap();
    assert!(
        version.starts_with("PgBouncer 1.18"),
        "compared version: {version}"
    );
    let mut ours = bouncer.console(ADMIN_USER).await;
    for name in SHOWS {
        let real_result = theirs.query(&format!("SHOW {name}")).await;
        if real_result.error.is_some() {
            assert!(
                ["STATE", "PEERS", "PEER_POOLS"].contains(name),
                "1.18 refused SHOW {name}: {:?}",
                real_result.error
            );
            continue;
        }
        let our_result = ours.query(&format!("SHOW {name}")).await;
        ok(&our_result, name);
        for (col, oid) in &real_result.columns {
            if let Some((_, ours)) = our_result.columns.iter().find(|(n, _)| n == col) {
                assert_eq!(ours, oid, "SHOW {name}.{col}: type OID differs from 1.18's");
            }
        }
        if *name == "LISTS" {
            // 1.18's rows, in order, among ours (1.19 added peers and peer_pools).
            let ours = RawClient::column(&our_result, "list");
            let mut ours = ours.iter();
            for list in RawClient::column(&real_result, "list") {
                assert!(
                    ours.any(|o| *o == list),
                    "SHOW LISTS: row {list:?} missing or out of order"
                );
            }
        }
        let mut our_names = our_result.columns.iter().map(|(n, _)| n.as_str());
        for (want, _) in &real_result.columns {
            let want = match (*name, want.as_str()) {
                ("DATABASES", "reserve_pool") => "reserve_pool_size",
                (_, w) => w,
            };
            assert!(
                our_names.any(|n| n == want),
                "SHOW {name}: 1.18's column {want} missing or out of order in {:?}",
                our_result.columns
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_values_come_from_the_data_path() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let url = format!(
        "{} application_name=admin-test",
        bouncer.url(MD5_USER, "postgres")
    );
    let app = support::connect(&url).await.unwrap();
    for _ in 0..5 {
        app.simple_query("SELECT 1").await.unwrap();
    }
    let mut console = bouncer.console(ADMIN_USER).await;
    // The pooler counts a transaction as it takes the server back, just after the client has
    // its ReadyForQuery: another thread may ask before that, so wait for it (bounded).
    let mut stats = console.query("SHOW STATS").await;
    for _ in 0..100 {
        ok(&stats, "STATS");
        if num(&row(&stats, "database", "postgres"), "total_xact_count") >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        stats = console.query("SHOW STATS").await;
    }
    ok(&stats, "STATS");
    let db = row(&stats, "database", "postgres");
    assert_eq!(num(&db, "total_xact_count"), 5, "{db:?}");
    assert_eq!(num(&db, "total_query_count"), 5, "{db:?}");
    assert!(num(&db, "total_received") > 0 && num(&db, "total_sent") > 0);
    assert_eq!(num(&db, "total_client_login_count"), 1);
    // Ours, additive: percentiles over the same five queries.
    let latency = console.query("SHOW LATENCY").await;
    ok(&latency, "LATENCY");
    let lat = row(&latency, "database", "postgres");
    assert_eq!(num(&lat, "query_count"), 5, "{lat:?}");
    assert!(num(&lat, "query_p50_us") > 0, "{lat:?}");
    assert!(
        num(&lat, "query_p50_us") <= num(&lat, "query_p99_us"),
        "{lat:?}"
    );
    assert_eq!(num(&lat, "wait_count"), 5, "{lat:?}");

    app.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let pools = console.query("SHOW POOLS").await;
    let pool = row(&pools, "user", MD5_USER);
    assert_eq!(
        (num(&pool, "cl_active"), num(&pool, "sv_active")),
        (1, 1),
        "{pool:?}"
    );
    assert_eq!(num(&pool, "cl_waiting"), 0);

    // The pool has one server, held by `app`: a second client waits.
    let waiter = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let waiting =
        tokio::spawn(async move { waiter.simple_query("SELECT 2").await.map(|_| waiter) });
    let seen = poll!(WAIT, {
        let pools = console.query("SHOW POOLS").await;
        let pool = row(&pools, "user", MD5_USER);
        num(&pool, "cl_waiting") == 1 && num(&pool, "maxwait_us") + num(&pool, "maxwait") > 0
    });
    assert!(
        seen,
        "the second client never showed up in cl_waiting/maxwait"
    );
    let clients = console.query("SHOW CLIENTS").await;
    let me = row(&clients, "application_name", "admin-test");
    assert_eq!(cell(&me, "state"), Some("active"));
    assert_eq!(cell(&me, "addr"), Some("127.0.0.1"));
    assert!(num(&me, "port") > 0 && num(&me, "local_port") == u64::from(bouncer.port));
    assert_eq!(cell(&me, "user"), Some(MD5_USER));
    assert!(RawClient::column(&clients, "state").contains(&Some("waiting")));
    let servers = console.query("SHOW SERVERS").await;
    let server = row(&servers, "state", "active");
    assert_eq!(num(&server, "port"), u64::from(pg.port()));
    assert!(num(&server, "remote_pid") > 0);
    assert_eq!(cell(&server, "local_addr"), Some("127.0.0.1"));
    assert!(num(&server, "local_port") > 0);
    assert_eq!(cell(&server, "link"), cell(&me, "ptr"));

    app.batch_execute("COMMIT").await.unwrap();
    let waiter = tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(waiter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_pauses_until_release_and_resume_lets_waiters_through() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let app = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    app.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let psql = support::postgres::bindir().unwrap().join("psql");
    let mut pause = std::process::Command::new(psql)
        .args([&bouncer.admin_url(ADMIN_USER), "-X", "-c", "PAUSE"])
        .env("PGPASSWORD", PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut console = bouncer.console(ADMIN_USER).await;
    let paused = poll!(WAIT, {
        let state = console.query("SHOW STATE").await;
        row(&state, "key", "paused")[1].1 == Some("yes")
    });
    assert!(paused, "PAUSE never took effect");
    assert!(
        pause.try_wait().unwrap().is_none(),
        "PAUSE returned while a transaction was open"
    );

    app.batch_execute("COMMIT").await.unwrap();
    let mut status;
    assert!(
        poll!(WAIT, {
            status = pause.try_wait().unwrap();
            status.is_some()
        }),
        "PAUSE did not return after the release"
    );
    assert!(status.unwrap().success(), "{:?}", pause.wait_with_output());

    let late = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let query = tokio::spawn(async move { late.simple_query("SELECT 3").await.map(|_| late) });
    let waits = poll!(WAIT, {
        let pools = console.query("SHOW POOLS").await;
        num(&row(&pools, "user", MD5_USER), "cl_waiting") == 1
    });
    assert!(
        waits && !query.is_finished(),
        "a new client must wait while paused"
    );
    let resume = console.query("RESUME").await;
    ok(&resume, "RESUME");
    let late = tokio::time::timeout(WAIT, query)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // KILL_CLIENT drops exactly that client.
    let clients = console.query("SHOW CLIENTS").await;
    let ids: Vec<_> = RawClient::column(&clients, "id")
        .into_iter()
        .flatten()
        .collect();
    let users: Vec<_> = RawClient::column(&clients, "user");
    let app_id = ids
        .iter()
        .zip(users)
        .find(|(_, u)| *u == Some(MD5_USER))
        .unwrap()
        .0;
    ok(
        &console.query(&format!("KILL_CLIENT {app_id}")).await,
        "KILL_CLIENT",
    );
    let gone = poll!(WAIT, {
        app.simple_query("SELECT 1").await.is_err() || late.simple_query("SELECT 1").await.is_err()
    });
    assert!(gone, "KILL_CLIENT left the client connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_the_edited_file_and_keeps_it_on_errors() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let mut console = bouncer.console(ADMIN_USER).await;
    let value =
        |r: &QueryResult| cell(&row(r, "key", "default_pool_size"), "value").map(str::to_owned);
    assert_eq!(
        value(&console.query("SHOW CONFIG").await).as_deref(),
        Some("5")
    );
    let ini = std::fs::read_to_string(&bouncer.ini).unwrap();
    std::fs::write(
        &bouncer.ini,
        ini.replace("default_pool_size = 5", "default_pool_size = 9"),
    )
    .unwrap();
    ok(&console.query("RELOAD").await, "RELOAD");
    assert_eq!(
        value(&console.query("SHOW CONFIG").await).as_deref(),
        Some("9")
    );

    std::fs::write(&bouncer.ini, "[pgbouncer]\npool_mode = sideways\n").unwrap();
    let failed = console.query("RELOAD;").await;
    let (code, message) = failed
        .error
        .clone()
        .expect("a broken file must fail RELOAD");
    assert_eq!(code, "F0000");
    assert!(message.contains("pool_mode"), "{message}");
    assert_eq!(
        value(&console.query("SHOW CONFIG").await).as_deref(),
        Some("9")
    );

    ok(&console.query("SET default_pool_size = 11").await, "SET");
    assert_eq!(
        value(&console.query("SHOW CONFIG").await).as_deref(),
        Some("11")
    );
    let refused = console.query("SET listen_port = 1").await;
    assert!(refused.error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_users_only_read_and_app_users_are_refused() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let mut stats = bouncer.console(STATS_USER).await;
    ok(&stats.query("SHOW POOLS").await, "stats user SHOW POOLS");
    for cmd in ["PAUSE", "SHOW FDS", "KILL_CLIENT 1", "SHUTDOWN"] {
        let refused = stats.query(cmd).await;
        assert_eq!(
            refused.error,
            Some(("08P01".into(), "admin access needed".into())),
            "{cmd}"
        );
        assert_eq!(refused.messages.last().map(|m| m.0), Some(b'Z'));
    }
    let app = RawClient::connect(
        bouncer.port,
        &[("user", MD5_USER), ("database", "pgbouncer")],
        PASSWORD,
    )
    .await;
    assert_eq!(app.err(), Some(("08P01".into(), "not allowed".into())));
    let wrong = RawClient::connect(
        bouncer.port,
        &[("user", ADMIN_USER), ("database", "pgbouncer")],
        "wrong",
    )
    .await;
    assert!(
        wrong
            .err()
            .unwrap()
            .1
            .contains("password authentication failed")
    );
}

/// pgbouncer_exporter 0.12 per scrape, over lib/pq's simple protocol, with lib/pq's startup packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_exporter_scrape_succeeds() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let mut exporter = RawClient::connect(
        bouncer.port,
        &[
            ("user", ADMIN_USER),
            ("database", "pgbouncer"),
            ("client_encoding", "UTF8"),
            ("datestyle", "ISO, MDY"),
            ("extra_float_digits", "2"),
        ],
        PASSWORD,
    )
    .await
    .unwrap();
    assert!(
        exporter
            .params
            .iter()
            .any(|(k, v)| k == "server_version" && v.ends_with("/bouncer"))
    );
    let mut results = Vec::new();
    for sql in [
        "SHOW STATS",
        "SHOW VERSION;",
        "SHOW LISTS;",
        "SHOW CONFIG;",
        "SHOW CLIENTS;",
        "SHOW DATABASES;",
        "SHOW STATS_TOTALS;",
        "SHOW POOLS;",
    ] {
        let r = exporter.query(sql).await;
        ok(&r, sql);
        results.push(r);
    }
    let names = |r: &QueryResult| r.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&results[1]), ["version"]);
    assert_eq!(results[1].rows.len(), 1);
    assert_eq!(names(&results[2]), ["list", "items"]);
    assert_eq!(results[3].columns.len(), 4);
    for key in ["max_client_conn", "max_user_connections"] {
        let _ = row(&results[3], "key", key);
    }
    let clients = names(&results[4]);
    for want in ["database", "user", "state", "application_name"] {
        assert!(clients.contains(&want.to_owned()), "{want}");
    }
    assert!(names(&results[5]).contains(&"reserve_pool_size".to_owned()));
    assert!(names(&results[7]).contains(&"maxwait".to_owned()));
}

/// User `pgbouncer` over the unix socket from the pooler's own uid is admin without a password;
/// the same name over TCP must authenticate (and is no userlist entry here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_over_the_unix_socket_is_admin_without_password() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("unix_socket_dir = {}", dir.path().display());
    let bouncer = TestBouncer::start(&pg, &settings).await;
    let url = format!(
        "host={} port={} user=pgbouncer dbname=pgbouncer",
        dir.path().display(),
        bouncer.port
    );
    let console = support::connect(&url).await.unwrap();
    let state = console.simple_query("SHOW STATE").await.unwrap();
    assert!(!state.is_empty());
    console.simple_query("SUSPEND").await.unwrap();
    let again = console.simple_query("SUSPEND").await.unwrap_err();
    assert!(
        format!("{again:?}").contains("already suspended"),
        "{again:?}"
    );
    console.simple_query("RESUME").await.unwrap();
    let tcp = RawClient::connect(
        bouncer.port,
        &[("user", "pgbouncer"), ("database", "pgbouncer")],
        "",
    )
    .await;
    assert!(tcp.is_err(), "pgbouncer over TCP needs a password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn averages_follow_stats_period_and_shutdown_moves_the_phase() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "stats_period = 1").await;
    let app = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    for _ in 0..20 {
        app.simple_query("SELECT 1").await.unwrap();
    }
    let mut console = bouncer.console(ADMIN_USER).await;
    let averaged = poll!(WAIT, {
        let avg = console.query("SHOW STATS_AVERAGES").await;
        let db = row(&avg, "database", "postgres");
        num(&db, "xact_count") > 0 && num(&db, "query_time") > 0
    });
    assert!(averaged, "no averages after a stats_period");
    let totals = console.query("SHOW TOTALS").await;
    assert_eq!(num(&row(&totals, "name", "total_xact_count"), "value"), 20);

    ok(
        &console.query("SHUTDOWN WAIT_FOR_CLIENTS").await,
        "SHUTDOWN",
    );
    assert_eq!(
        bouncer.shared().shutdown.phase(),
        bouncectl::shutdown::Phase::WaitForClients
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_reconnect_and_kill_act_on_one_database() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let app = support::connect(&url).await.unwrap();
    app.simple_query("SELECT 1").await.unwrap();
    let mut console = bouncer.console(ADMIN_USER).await;

    ok(&console.query("DISABLE postgres").await, "DISABLE");
    let refused = support::connect(&url).await.unwrap_err();
    let message = refused.as_db_error().map(|e| e.message().to_owned());
    assert_eq!(
        message.as_deref(),
        Some("database \"postgres\" is disabled")
    );
    let databases = console.query("SHOW DATABASES").await;
    assert_eq!(num(&row(&databases, "name", "postgres"), "disabled"), 1);
    ok(&console.query("ENABLE postgres").await, "ENABLE");
    support::connect(&url).await.unwrap();
    let missing = console.query("DISABLE").await;
    assert_eq!(missing.error.unwrap().1, "a database is required");

    // RECONNECT: the server held in a transaction closes at release, WAIT_CLOSE waits for it.
    app.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let servers = console.query("SHOW SERVERS").await;
    let old_pid = num(&row(&servers, "state", "active"), "remote_pid");
    ok(&console.query("RECONNECT postgres").await, "RECONNECT");
    let marked = console.query("SHOW SERVERS").await;
    assert_eq!(num(&row(&marked, "state", "active"), "close_needed"), 1);
    app.batch_execute("COMMIT").await.unwrap();
    ok(&console.query("WAIT_CLOSE postgres").await, "WAIT_CLOSE");
    app.simple_query("SELECT 1").await.unwrap();
    let servers = console.query("SHOW SERVERS").await;
    let pids = RawClient::column(&servers, "remote_pid");
    assert!(
        !pids.contains(&Some(old_pid.to_string().as_str())),
        "{pids:?}"
    );

    // KILL: the database's clients are dropped and it stays paused until RESUME.
    ok(&console.query("KILL postgres").await, "KILL");
    let dropped = poll!(WAIT, app.simple_query("SELECT 1").await.is_err());
    assert!(dropped, "KILL left the client connected");
    let databases = console.query("SHOW DATABASES").await;
    assert_eq!(num(&row(&databases, "name", "postgres"), "paused"), 1);
    ok(&console.query("RESUME postgres").await, "RESUME");
    let back = support::connect(&url).await.unwrap();
    back.simple_query("SELECT 1").await.unwrap();
    let own = console.query("KILL pgbouncer").await;
    assert_eq!(own.error.unwrap().1, "cannot kill admin db: pgbouncer");
}

/// Under passthrough auth (the embedded default's) PostgreSQL judges a console user's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_console_logins_are_checked_by_postgresql() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "auth_type = passthrough").await;
    let mut console = bouncer.console(ADMIN_USER).await;
    ok(&console.query("SHOW POOLS").await, "SHOW POOLS");
    let wrong = RawClient::connect(
        bouncer.port,
        &[("user", ADMIN_USER), ("database", "pgbouncer")],
        "wrong",
    )
    .await;
    assert_eq!(
        wrong.err().map(|e| e.1),
        Some("password authentication failed".to_owned())
    );
}

//! The console's split of powers: `stats_users` read every SHOW (but SHOW FDS) and nothing else —
//! every control command is refused with PgBouncer's "admin access needed" and has no effect,
//! KILL_CLIENT included (PgBouncer's CVE-2026-6667) — while an admin's same commands work.

use std::time::Duration;

use crate::support::binary::Binary;
use crate::support::bouncer::STATS_USER;
use crate::support::client::RawClient;
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};
use crate::support::{self, select_one};

const ADMIN_NEEDED: (&str, &str) = ("08P01", "admin access needed");

async fn console_as(bin: &Binary, user: &str) -> Result<RawClient, (String, String)> {
    RawClient::connect(
        bin.port,
        &[("user", user), ("database", "pgbouncer")],
        PASSWORD,
    )
    .await
}

/// The value of `key` in SHOW CONFIG.
async fn config_value(console: &mut RawClient, key: &str) -> String {
    let result = console.query("SHOW CONFIG").await;
    let keys = RawClient::column(&result, "key");
    let values = RawClient::column(&result, "value");
    let i = keys.iter().position(|k| *k == Some(key)).unwrap();
    values[i].unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_users_read_but_control_nothing() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut bin = Binary::start(&pg, pg.port(), "").await;
    let url = bin.url(MD5_USER, "postgres");
    let app = support::connect(&url).await.unwrap();
    assert!(select_one(&app).await);
    let mut admin = bin.console().await;
    let clients = admin.query("SHOW CLIENTS").await;
    let ids: Vec<String> = RawClient::column(&clients, "id")
        .into_iter()
        .zip(RawClient::column(&clients, "database"))
        .filter(|(_, db)| *db == Some("postgres"))
        .map(|(id, _)| id.unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{:?}", clients.rows);
    let app_id = &ids[0];

    let mut stats = console_as(&bin, STATS_USER).await.unwrap();
    for what in [
        "POOLS",
        "STATS",
        "STATS_TOTALS",
        "STATS_AVERAGES",
        "CLIENTS",
        "SERVERS",
        "DATABASES",
        "CONFIG",
        "LISTS",
        "USERS",
        "VERSION",
        "MEM",
        "SOCKETS",
        "STATE",
        "TOTALS",
    ] {
        let result = stats.query(&format!("SHOW {what}")).await;
        assert_eq!(result.error, None, "SHOW {what} as a stats user");
    }
    let pool_size = config_value(&mut stats, "default_pool_size").await;
    for command in [
        "SHOW FDS".to_owned(),
        "PAUSE".into(),
        "PAUSE postgres".into(),
        "RESUME".into(),
        "DISABLE postgres".into(),
        "ENABLE postgres".into(),
        "RECONNECT".into(),
        "KILL postgres".into(),
        "KILL".into(),
        format!("KILL_CLIENT {app_id}"),
        "SUSPEND".into(),
        "SHUTDOWN".into(),
        "SHUTDOWN WAIT_FOR_CLIENTS".into(),
        "SHUTDOWN WAIT_FOR_SERVERS".into(),
        "RELOAD".into(),
        "WAIT_CLOSE".into(),
        "SET default_pool_size = 1".into(),
        "SET default_pool_size TO '2'".into(),
        "set max_client_conn=1".into(),
    ] {
        let result = stats.query(&command).await;
        let error = result.error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()));
        assert_eq!(error, Some(ADMIN_NEEDED), "{command} as a stats user");
        assert_eq!(result.messages.last().map(|m| m.0), Some(b'Z'), "{command}");
    }
    // Nothing happened: the pooler runs, the app client is alive and unpaused, config unchanged.
    assert!(bin.alive());
    assert!(
        select_one(&app).await,
        "a stats user's KILL_CLIENT reached its target"
    );
    let fresh = support::connect(&url).await.unwrap();
    assert!(select_one(&fresh).await);
    assert_eq!(
        config_value(&mut stats, "default_pool_size").await,
        pool_size
    );
    assert_eq!(config_value(&mut admin, "max_client_conn").await, "100");

    // The same commands work for an admin: the refusals above were about who asked.
    let killed = admin.query(&format!("KILL_CLIENT {app_id}")).await;
    assert_eq!(killed.error, None);
    let gone = tokio::time::timeout(Duration::from_secs(10), app.simple_query("SELECT 1")).await;
    assert!(
        gone.unwrap().is_err(),
        "an admin's KILL_CLIENT ends the client"
    );
    assert_eq!(admin.query("SET default_pool_size = 7").await.error, None);
    assert_eq!(config_value(&mut stats, "default_pool_size").await, "7");

    // An application user is not let into the console at all.
    let refused = console_as(&bin, MD5_USER).await.err();
    assert_eq!(refused, Some(("08P01".into(), "not allowed".into())));
}

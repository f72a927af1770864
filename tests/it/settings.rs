//! PgBouncer settings that change what clients and servers see: `application_name_add_host`,
//! `disable_pqexec`, `server_round_robin`, `query_wait_notify`, `autodb_idle_timeout` and
//! `pool_idle_timeout`, each against PostgreSQL with tokio-postgres or psql.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::binary::Binary;
use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::client::RawClient;
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};
use crate::support::wire::Wire;
use crate::support::{self, rows};

#[tokio::test]
async fn application_name_add_host_tells_the_server_where_clients_are() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "application_name_add_host = 1").await;
    let url = bouncer.url(MD5_USER, "postgres");
    for (given, name) in [(" application_name=billing", "billing"), ("", "app")] {
        let client = support::connect(&format!("{url}{given}")).await.unwrap();
        // What the server was told (its own setting, read back through the pooler).
        let seen = rows(
            &client
                .simple_query("SELECT current_setting('application_name')")
                .await
                .unwrap(),
        );
        let port = seen[0]
            .strip_prefix(&format!("{name} - 127.0.0.1:"))
            .unwrap_or_else(|| panic!("{seen:?}"));
        assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{seen:?}");
        // A later SET is the client's own, left alone (PgBouncer adds the host at login only).
        client
            .batch_execute("SET application_name = 'batch'")
            .await
            .unwrap();
        let now = rows(&client.simple_query("SHOW application_name").await.unwrap());
        assert_eq!(now, ["batch"]);
    }
}

#[tokio::test]
async fn disable_pqexec_refuses_simple_queries_and_keeps_the_extended_protocol() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "disable_pqexec = 1\ndefault_pool_size = 1").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let client = support::connect(&url).await.unwrap();
    let row = client
        .query_one("SELECT $1::int * 2", &[&21i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let e = client.simple_query("SELECT 1").await.unwrap_err();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(db.message(), "PQexec disallowed");
    assert_eq!(db.code().code(), "08P01");
    // The refusal never reached a server: the only one serves the next client at once.
    let next = support::connect(&url).await.unwrap();
    let row = next.query_one("SELECT 1::int", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_round_robin_spreads_transactions_over_every_idle_server() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    for (round_robin, backends) in [(false, 1), (true, 3)] {
        let settings = format!(
            "default_pool_size = 3\nserver_round_robin = {}",
            u8::from(round_robin)
        );
        let bouncer = TestBouncer::start(&pg, &settings).await;
        let url = bouncer.url(MD5_USER, "postgres");
        // Three servers, all idle afterwards: three clients hold one each at the same time.
        let mut holders = Vec::new();
        for _ in 0..3 {
            let c = support::connect(&url).await.unwrap();
            c.batch_execute("BEGIN; SELECT 1").await.unwrap();
            holders.push(c);
        }
        for c in &holders {
            c.batch_execute("COMMIT").await.unwrap();
        }
        let client = support::connect(&url).await.unwrap();
        let mut pids = BTreeSet::new();
        for _ in 0..6 {
            let got = rows(
                &client
                    .simple_query("SELECT pg_backend_pid()")
                    .await
                    .unwrap(),
            );
            pids.insert(got[0].clone());
        }
        assert_eq!(
            pids.len(),
            backends,
            "server_round_robin = {round_robin}: {pids:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_wait_notify_tells_a_queued_psql_why_it_waits() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1\nquery_wait_notify = 1").await;
    let holder = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    holder.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let url = bouncer.url(MD5_USER, "postgres");
    let queued = tokio::task::spawn_blocking(move || {
        let psql = support::postgres::bindir().unwrap().join("psql");
        std::process::Command::new(psql)
            .args(["-X", "-tA", "-c", "SELECT 'served'", &url])
            .output()
            .unwrap()
    });
    // Queued past query_wait_notify (the janitor's once-a-second look may add a second), then
    // given the server.
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let out = queued.await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(support::stdout(&out).trim(), "served");
    let said = support::stderr(&out);
    assert!(
        said.contains(
            "NOTICE:  No server connection available in postgres backend, client being queued"
        ),
        "{said}"
    );
}

/// The listening sockets on `port` as `ss` reports them: (Send-Q, the backlog of a listener).
fn listeners(port: u16) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    support::stdout(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn so_reuseport_lets_a_second_pooler_share_the_port_with_its_backlog() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let first = Binary::start(&pg, pg.port(), "so_reuseport = 1\nlisten_backlog = 37").await;
    assert_eq!(listeners(first.port), ["37"]);
    // The same file again: the same port, which only SO_REUSEPORT on both lets it bind.
    let mut second = std::process::Command::new(support::bin())
        .args(["serve", "-q"])
        .arg(first.ini())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let shared =
        support::eventually(Duration::from_secs(10), || listeners(first.port).len() == 2).await;
    let running = second.try_wait().unwrap().is_none();
    let _ = second.kill();
    let _ = second.wait();
    assert!(
        shared && running,
        "the second pooler could not listen on the port"
    );
    assert_eq!(listeners(first.port), ["37"]);
    let client = support::connect(&first.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(support::select_one(&client).await);
}

/// `listen_addr = *` listens on 0.0.0.0 and on :: (IPv6-only, as PgBouncer: a dual-stack :: would
/// collide with the IPv4 listener). Only loopback is used to connect.
#[tokio::test]
async fn listen_addr_star_serves_ipv4_and_ipv6() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(&pg, pg.port(), "listen_addr = *").await;
    let mut ends = listeners(bin.port);
    ends.sort();
    assert_eq!(ends, ["128", "128"], "one listener each for 0.0.0.0 and ::");
    for host in ["127.0.0.1", "::1"] {
        let url = bin.url(MD5_USER, "postgres").replace("127.0.0.1", host);
        let client = support::connect(&url).await.unwrap();
        assert!(support::select_one(&client).await, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_fast_close_ends_a_session_at_the_transaction_after_reconnect() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let settings = "pool_mode = session\nserver_fast_close = 1";
    let bouncer = TestBouncer::start(&pg, settings).await;
    let mut client = Wire::login(bouncer.port, MD5_USER, "postgres", PASSWORD)
        .await
        .unwrap();
    let pid = client.query("SELECT pg_backend_pid()").await.unwrap();
    client.query("BEGIN").await.unwrap();
    let mut console = bouncer.console(ADMIN_USER).await;
    assert!(console.query("RECONNECT postgres").await.error.is_none());
    // The open transaction is left to finish on its server: no word for two seconds...
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(client.query("SELECT pg_backend_pid()").await.unwrap(), pid);
    client.query("COMMIT").await.unwrap();
    // ...and at its end the session goes with the server, as PgBouncer's janitor does it.
    closed_for_config_change(&mut client, "no word within 5 s of the transaction's end").await;
    // A new client gets a new server.
    let mut next = Wire::login(bouncer.port, MD5_USER, "postgres", PASSWORD)
        .await
        .unwrap();
    assert_ne!(next.query("SELECT pg_backend_pid()").await.unwrap(), pid);
    // An idle session is looked at every second: it goes without sending anything.
    assert!(console.query("RECONNECT postgres").await.error.is_none());
    closed_for_config_change(&mut next, "an idle session kept its close_needed server").await;
}

/// Within 5 s, `client` gets the FATAL that server_fast_close ends a session with.
async fn closed_for_config_change(client: &mut Wire, otherwise: &str) {
    let said = tokio::time::timeout(Duration::from_secs(5), client.next_error())
        .await
        .expect(otherwise);
    assert_eq!(
        said,
        Some((
            "08P01".to_owned(),
            "database configuration changed".to_owned()
        ))
    );
}

/// Column `column` of `SHOW <what>`.
async fn shown(console: &mut RawClient, what: &str, column: &str) -> Vec<String> {
    let result = console.query(&format!("SHOW {what}")).await;
    RawClient::column(&result, column)
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect()
}

/// Waits (10 s at most) for `value` to leave column `column` of `SHOW <what>`; returns the
/// column as last seen.
async fn until_gone(console: &mut RawClient, what: &str, column: &str, value: &str) -> Vec<String> {
    let mut seen = shown(console, what, column).await;
    for _ in 0..100 {
        if !seen.iter().any(|v| v == value) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = shown(console, what, column).await;
    }
    seen
}

/// A client of `dbname` that has run a query.
async fn querying(bouncer: &TestBouncer, dbname: &str) -> tokio_postgres::Client {
    let client = support::connect(&bouncer.url(MD5_USER, dbname))
        .await
        .unwrap();
    client.simple_query("SELECT 1").await.unwrap();
    client
}

#[tokio::test]
async fn autodb_idle_timeout_forgets_auto_databases_nobody_uses() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Idle servers count as use (as PgBouncer's): they time out first, after a second.
    let settings = "autodb_idle_timeout = 1\nserver_idle_timeout = 1";
    let bouncer = TestBouncer::start(&pg, settings).await;
    let mut console = bouncer.console(ADMIN_USER).await;
    let template1 = "template1".to_owned();
    // template1 is not in [databases]: the `*` entry makes it.
    let client = querying(&bouncer, "template1").await;
    assert!(
        shown(&mut console, "DATABASES", "name")
            .await
            .contains(&template1)
    );

    // A client that stays keeps its database, long past both timeouts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        shown(&mut console, "DATABASES", "name")
            .await
            .contains(&template1)
    );
    client.simple_query("SELECT 1").await.unwrap();

    drop(client);
    let names = until_gone(&mut console, "DATABASES", "name", "template1").await;
    assert!(!names.contains(&template1), "{names:?}");
    // Configured databases stay however idle.
    assert!(names.iter().any(|n| n == "postgres"), "{names:?}");

    // The next client makes it again.
    let _back = querying(&bouncer, "template1").await;
    assert!(
        shown(&mut console, "DATABASES", "name")
            .await
            .contains(&template1)
    );
}

#[tokio::test]
async fn pool_idle_timeout_frees_pools_without_clients_or_servers() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let settings = "pool_idle_timeout = 1\nserver_idle_timeout = 1";
    let bouncer = TestBouncer::start(&pg, settings).await;
    let mut console = bouncer.console(ADMIN_USER).await;
    let user = MD5_USER.to_owned();
    let client = querying(&bouncer, "postgres").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Its client keeps the pool (and its server goes after server_idle_timeout).
    assert!(shown(&mut console, "POOLS", "user").await.contains(&user));
    assert!(shown(&mut console, "SERVERS", "user").await.is_empty());

    drop(client);
    let users = until_gone(&mut console, "POOLS", "user", MD5_USER).await;
    assert!(!users.contains(&user), "{users:?}");
    // The database is configured: it stays listed without a pool.
    let names = shown(&mut console, "DATABASES", "name").await;
    assert!(names.iter().any(|n| n == "postgres"), "{names:?}");
    let _back = querying(&bouncer, "postgres").await;
    assert!(shown(&mut console, "POOLS", "user").await.contains(&user));
}

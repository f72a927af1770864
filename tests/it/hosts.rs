//! Per-database host lists (`host=h1,h2`, `port=p1,p2`) with `load_balance_hosts`,
//! `server_login_retry` after a failed server login, and a RELOAD that moves a database to
//! another server, against a real PostgreSQL.

use std::time::{Duration, Instant};

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::client::RawClient;
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres, free_port};
use crate::support::{self};

/// Opens `n` clients that each hold a server in a transaction, and returns where each server
/// connection came from as PostgreSQL saw it (`127.0.0.1`, or `unix` for the socket).
async fn server_origins(url: &str, n: usize) -> Vec<String> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(support::connect(url).await.unwrap());
    }
    let mut origins = Vec::new();
    for c in &clients {
        c.batch_execute("BEGIN").await.unwrap();
        let row = c
            .query_one(
                "SELECT coalesce(host(inet_client_addr()), 'unix') || '/' || pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        origins.push(row.get::<_, String>(0));
    }
    for c in &clients {
        c.batch_execute("COMMIT").await.unwrap();
    }
    let mut backends: Vec<&String> = origins.iter().collect();
    backends.sort();
    backends.dedup();
    assert_eq!(
        backends.len(),
        n,
        "each client held its own server: {origins:?}"
    );
    origins
        .iter()
        .map(|o| o.split('/').next().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn a_dead_host_in_the_list_is_skipped() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dead = free_port();
    for balance in ["round-robin", "disable"] {
        let dbs = format!(
            "postgres = host=127.0.0.1,127.0.0.1 port={dead},{} load_balance_hosts={balance}\n",
            pg.port()
        );
        let bouncer = TestBouncer::start_with(&pg, &dbs, "default_pool_size = 4").await;
        let origins = server_origins(&bouncer.url(MD5_USER, "postgres"), 4).await;
        assert_eq!(origins, ["127.0.0.1"; 4], "{balance}");
    }
}

#[tokio::test]
async fn round_robin_spreads_logins_and_disable_sticks_to_one_host() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Two ways into the same cluster: TCP on 127.0.0.1 and its unix socket directory.
    let hosts = format!("127.0.0.1,{}", pg.socket_dir().display());
    let dbs = format!("postgres = host={hosts} port={}\n", pg.port());
    let bouncer = TestBouncer::start_with(&pg, &dbs, "default_pool_size = 4").await;
    let mut origins = server_origins(&bouncer.url(MD5_USER, "postgres"), 4).await;
    origins.sort();
    assert_eq!(origins, ["127.0.0.1", "127.0.0.1", "unix", "unix"]);

    let dbs = format!(
        "postgres = host={hosts} port={} load_balance_hosts=disable\n",
        pg.port()
    );
    let bouncer = TestBouncer::start_with(&pg, &dbs, "default_pool_size = 4").await;
    let origins = server_origins(&bouncer.url(MD5_USER, "postgres"), 4).await;
    assert_eq!(origins, ["127.0.0.1"; 4]);
}

async fn login_error(url: &str) -> (String, String) {
    match support::connect(url).await {
        Ok(_) => panic!("login through {url} should fail"),
        Err(e) => {
            let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
            (db.code().code().to_owned(), db.message().to_owned())
        }
    }
}

#[tokio::test]
async fn server_login_retry_fails_clients_fast_with_the_cached_error_then_retries() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    pg.psql(&format!(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE retry_user LOGIN PASSWORD '{PASSWORD}'"
    ));
    // The database logs in as retry_user with a password PostgreSQL does not (yet) accept.
    let dbs = format!(
        "postgres = host=127.0.0.1 port={port}\n\
         retrydb = host=127.0.0.1 port={port} dbname=postgres user=retry_user password=later-pw\n",
        port = pg.port()
    );
    let bouncer = TestBouncer::start_with(&pg, &dbs, "server_login_retry = 3").await;
    let url = bouncer.url(MD5_USER, "retrydb");
    let (code, message) = login_error(&url).await;
    let failed_at = Instant::now();
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "28P01",
            "password authentication failed for user \"retry_user\""
        )
    );
    // Within server_login_retry: no new login, the cached error at once.
    let asked = Instant::now();
    assert_eq!(
        login_error(&url).await,
        (
            "08P01".to_owned(),
            "server login has been failing, cached error: password authentication failed for user \"retry_user\" (server_login_retry)".to_owned()
        )
    );
    assert!(asked.elapsed() < Duration::from_secs(1));
    // Other pools are not affected.
    let other = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(support::select_one(&other).await);

    // The server now accepts the password; the pool logs in again once the delay has passed.
    pg.psql("ALTER ROLE retry_user PASSWORD 'later-pw'");
    let deadline = Instant::now() + Duration::from_secs(15);
    let client = loop {
        match support::connect(&url).await {
            Ok(c) => break c,
            Err(e) => {
                let msg = e.as_db_error().map(|d| d.message().to_owned());
                assert!(
                    msg.as_deref()
                        .is_some_and(|m| m.ends_with("(server_login_retry)")),
                    "{e:?}"
                );
                assert!(Instant::now() < deadline, "no login within 15 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(
        failed_at.elapsed() >= Duration::from_millis(2800),
        "a new login came {:?} after the failure",
        failed_at.elapsed()
    );
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "retry_user");
}

/// A server that hangs up during the login (a database going down, a backend killed before it
/// answers) is "server conn crashed?", PgBouncer's reason, and that is the cached error, not a
/// "closed mid-message" that never had a message.
#[tokio::test]
async fn a_server_that_hangs_up_at_login_is_a_crashed_server_conn() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Accepts, reads the startup packet and closes: a postmaster on its way down.
    let dead_end = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead_end.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in dead_end.incoming().flatten() {
            let _ = std::io::Read::read(&mut stream, &mut [0u8; 512]);
        }
    });
    let dbs = format!(
        "postgres = host=127.0.0.1 port={}\ngone = host=127.0.0.1 port={port} dbname=postgres\n",
        pg.port()
    );
    let bouncer = TestBouncer::start_with(&pg, &dbs, "server_login_retry = 30").await;
    let url = bouncer.url(MD5_USER, "gone");
    assert_eq!(
        login_error(&url).await,
        ("08006".to_owned(), "server conn crashed?".to_owned())
    );
    assert_eq!(
        login_error(&url).await,
        (
            "08P01".to_owned(),
            "server login has been failing, cached error: server conn crashed? (server_login_retry)"
                .to_owned()
        )
    );
}

/// A client queued for a server while the database shuts down keeps waiting: its login meets
/// "the database system is shutting down" (57P03), which PgBouncer does not pass on to waiting
/// clients, and it tries again after `server_login_retry`, by when the database is back. A
/// client that comes in meanwhile, with no server up, gets the cached error at once.
#[tokio::test]
async fn a_queued_client_waits_through_a_database_shutting_down() {
    let Some(mut pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(
        &pg,
        "default_pool_size = 1\nserver_login_retry = 5\nquery_wait_timeout = 60",
    )
    .await;
    let url = bouncer.url(MD5_USER, "postgres");
    let holder = support::connect(&url).await.unwrap();
    holder.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let waiter = support::connect(&url).await.unwrap();
    let queued = tokio::spawn(async move {
        let row = waiter.query_one("SELECT 42", &[]).await?;
        Ok::<i32, tokio_postgres::Error>(row.get(0))
    });
    let direct = support::connect(&pg.superuser_url()).await.unwrap();
    let mut console = bouncer.console(ADMIN_USER).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pools = console.query("SHOW POOLS").await;
        let users = RawClient::column(&pools, "user");
        let waiting = RawClient::column(&pools, "cl_waiting");
        if users
            .iter()
            .zip(&waiting)
            .any(|(u, w)| *u == Some(MD5_USER) && *w == Some("1"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second client never queued: {pools:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A smart shutdown refuses new sessions (57P03) while `direct` lives; the pooler's server
    // is ended under the holder, so the waiter's slot opens onto a database going down.
    pg.begin_smart_shutdown();
    direct
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename = '{MD5_USER}' AND pid <> pg_backend_pid()"
        ))
        .await
        .unwrap();
    let refused_at = Instant::now();
    assert!(holder.batch_execute("COMMIT").await.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !queued.is_finished(),
        "the waiter got an answer: {:?}",
        queued.await
    );
    let newcomer = support::connect(&url).await.unwrap();
    let e = newcomer.simple_query("SELECT 1").await.unwrap_err();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(
        db.message(),
        "server login has been failing, cached error: the database system is shutting down (server_login_retry)"
    );

    // The last session ends, PostgreSQL exits and starts again, within the retry delay.
    drop(direct);
    pg.stop();
    pg.start_again();
    let answer = tokio::time::timeout(Duration::from_secs(15), queued)
        .await
        .expect("the waiter got no server within 15 s")
        .unwrap();
    assert_eq!(answer.unwrap(), 42);
    assert!(
        refused_at.elapsed() >= Duration::from_secs(4),
        "the waiter logged in again before server_login_retry: {:?}",
        refused_at.elapsed()
    );
}

/// Where the server behind `client`'s next statement came from (`127.0.0.1` or `unix`).
async fn origin(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SELECT coalesce(host(inet_client_addr()), 'unix')", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_reload_that_changes_the_host_moves_the_pool_to_it() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dbs = format!("postgres = host=127.0.0.1 port={}\n", pg.port());
    let bouncer = TestBouncer::start_with(&pg, &dbs, "default_pool_size = 2").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let idle = support::connect(&url).await.unwrap();
    let busy = support::connect(&url).await.unwrap();
    assert_eq!(origin(&idle).await, "127.0.0.1");
    busy.batch_execute("BEGIN").await.unwrap();
    assert_eq!(origin(&busy).await, "127.0.0.1");

    // The failover an operator does with PgBouncer: point the database elsewhere, RELOAD.
    let ini = std::fs::read_to_string(&bouncer.ini).unwrap();
    let moved = ini.replace(
        "host=127.0.0.1",
        &format!("host={}", pg.socket_dir().display()),
    );
    std::fs::write(&bouncer.ini, moved).unwrap();
    let reload = bouncer.console(ADMIN_USER).await.query("RELOAD").await;
    assert_eq!(reload.error, None);

    // The idle server is gone: the next transaction is served from the new host.
    assert_eq!(origin(&idle).await, "unix");
    // An open transaction keeps its server to the end; the server closes when released.
    assert_eq!(origin(&busy).await, "127.0.0.1");
    busy.batch_execute("COMMIT").await.unwrap();
    assert_eq!(origin(&busy).await, "unix");
    let direct = support::connect(&pg.superuser_url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = direct
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND client_addr IS NOT NULL",
                &[&MD5_USER],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} server(s) still on the old host"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_host_name_is_cached_for_dns_max_ttl_and_listed_in_show_dns_hosts() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dbs = format!("postgres = host=localhost port={}\n", pg.port());
    for (ttl, cached) in [("15", true), ("0", false)] {
        let settings = format!("default_pool_size = 3\ndns_max_ttl = {ttl}");
        let bouncer = TestBouncer::start_with(&pg, &dbs, &settings).await;
        let origins = server_origins(&bouncer.url(MD5_USER, "postgres"), 3).await;
        assert_eq!(origins.len(), 3, "dns_max_ttl = {ttl}");

        let mut console = bouncer.console(ADMIN_USER).await;
        let hosts = console.query("SHOW DNS_HOSTS").await;
        let lists = console.query("SHOW LISTS").await;
        let names = RawClient::column(&lists, "list");
        let items = RawClient::column(&lists, "items");
        let dns_names = names
            .iter()
            .position(|n| *n == Some("dns_names"))
            .and_then(|i| items[i]);
        if cached {
            assert_eq!(RawClient::column(&hosts, "hostname"), [Some("localhost")]);
            let ttl_left: u64 = RawClient::column(&hosts, "ttl")[0]
                .unwrap()
                .parse()
                .unwrap();
            assert!((10..=15).contains(&ttl_left), "{hosts:?}");
            let addrs = RawClient::column(&hosts, "addrs")[0].unwrap();
            assert!(addrs.split(',').any(|a| a == "127.0.0.1:0"), "{addrs}");
            assert_eq!(dns_names, Some("1"));
        } else {
            assert!(
                hosts.rows.is_empty(),
                "dns_max_ttl = 0 caches nothing: {hosts:?}"
            );
            assert_eq!(dns_names, Some("0"));
        }
    }
}

/// A cancel goes to the address the server connection reached, not to whatever the host name
/// resolves to when the cancel is sent (as PgBouncer). `localhost` is ::1 and 127.0.0.1 here,
/// and PostgreSQL listens on 127.0.0.1 only: that is the address held, and the cancel through
/// the pooler stops `pg_sleep` with 57014.
#[tokio::test]
async fn a_cancel_goes_to_the_address_the_server_connection_reached() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dbs = format!("postgres = host=localhost port={}\n", pg.port());
    let bouncer = TestBouncer::start_with(&pg, &dbs, "").await;
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let token = client.cancel_token();
    let shared = std::sync::Arc::clone(bouncer.shared());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let targets: Vec<_> = shared
            .registry
            .pools()
            .iter()
            .flat_map(|pool| {
                let ids: Vec<u64> = pool.servers().iter().map(|s| s.id).collect();
                ids.into_iter().filter_map(|id| pool.cancel_target(id))
            })
            .map(|target| target.addr)
            .collect();
        let cancelled = token.cancel_query(tokio_postgres::NoTls).await;
        (targets, cancelled)
    });
    let err = client
        .simple_query("SELECT pg_sleep(10)")
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().map(|d| d.code().code()), Some("57014"));
    let (targets, cancelled) = canceller.await.unwrap();
    cancelled.unwrap();
    let reached = std::net::SocketAddr::from(([127, 0, 0, 1], pg.port()));
    assert_eq!(targets, [Some(reached)]);
}

/// PostgreSQL refusing one connection more (here the role's CONNECTION LIMIT; its
/// max_connections alike) while the pool has servers: as in PgBouncer, clients wait for those
/// servers instead of getting the refusal, and no new login is tried for server_login_retry.
#[tokio::test]
async fn a_database_at_its_connection_limit_keeps_clients_on_the_pools_servers() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    pg.psql(&format!("ALTER ROLE {MD5_USER} CONNECTION LIMIT 2"));
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 4\nquery_wait_timeout = 20").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = support::connect(&url).await.map_err(|e| e.to_string())?;
            for _ in 0..20 {
                client
                    .batch_execute("SELECT pg_sleep(0.005)")
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    let started = Instant::now();
    for task in tasks {
        let done = tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("a client still waiting after 15 s")
            .unwrap();
        assert_eq!(done, Ok(()));
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    assert_eq!(support::sessions_of(&su, &[MD5_USER]).await, 2);
}

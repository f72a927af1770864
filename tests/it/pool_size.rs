//! A RELOAD that changes `default_pool_size` under load: a larger pool serves the clients queued
//! at once, and a smaller one closes the servers over its size as they come back, leaving SHOW
//! SERVERS in step with what PostgreSQL has. `max_db_connections` and `max_user_connections`
//! shared by several pools, with `min_pool_size` under them.

use std::time::{Duration, Instant};

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::client::RawClient;
use crate::support::postgres::{MD5_USER, SCRAM_USER, TempPostgres};
use crate::support::{self};

/// Rewrites the pooler's file with `size` as `default_pool_size` and reloads it.
async fn reload_pool_size(bouncer: &TestBouncer, console: &mut RawClient, from: u32, to: u32) {
    let ini = std::fs::read_to_string(&bouncer.ini).unwrap();
    let edited = ini.replace(
        &format!("default_pool_size = {from}"),
        &format!("default_pool_size = {to}"),
    );
    assert_ne!(ini, edited, "no default_pool_size = {from} in the file");
    std::fs::write(&bouncer.ini, edited).unwrap();
    let reloaded = console.query("RELOAD").await;
    assert!(reloaded.error.is_none(), "RELOAD: {:?}", reloaded.error);
}

/// PostgreSQL's sessions of the test role.
async fn backends(su: &tokio_postgres::Client) -> i64 {
    support::sessions_of(su, &[MD5_USER]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_pool_size_applies_to_queued_clients_and_returning_servers() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let mut console = bouncer.console(ADMIN_USER).await;
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    let url = bouncer.url(MD5_USER, "postgres");

    // The pool's five servers are held in transactions; two more clients queue.
    let mut holders = Vec::new();
    for _ in 0..5 {
        let c = support::connect(&url).await.unwrap();
        c.batch_execute("BEGIN; SELECT 1").await.unwrap();
        holders.push(c);
    }
    let mut queued = Vec::new();
    for _ in 0..2 {
        let c = support::connect(&url).await.unwrap();
        queued.push(tokio::spawn(async move {
            c.batch_execute("BEGIN; SELECT 1").await.map(|()| c)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(queued.iter().all(|q| !q.is_finished()), "nobody queued");

    // Seven fit now: the queued clients get servers while the holders keep theirs.
    reload_pool_size(&bouncer, &mut console, 5, 7).await;
    for q in queued {
        let c = tokio::time::timeout(Duration::from_secs(5), q)
            .await
            .expect("a queued client got no server after the pool grew")
            .unwrap()
            .unwrap();
        holders.push(c);
    }
    assert_eq!(backends(&su).await, 7);

    // Two fit now: five of the seven close as their clients give them back.
    reload_pool_size(&bouncer, &mut console, 7, 2).await;
    for c in &holders {
        c.batch_execute("COMMIT").await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = console.query("SHOW SERVERS").await.rows.len();
        let open = backends(&su).await;
        if (listed, open) == (2, 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SHOW SERVERS lists {listed}, PostgreSQL has {open}, the pool's size is 2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in &holders {
        assert!(support::select_one(c).await);
    }
}

/// PostgreSQL's sessions of the test database's two roles.
async fn backends_of_both(su: &tokio_postgres::Client) -> i64 {
    support::sessions_of(su, &[MD5_USER, SCRAM_USER]).await
}

/// Under `max_db_connections`, servers idle in one user's pool make room for another user's
/// client (PgBouncer's "evicted"), at once or as soon as one goes idle, instead of keeping it
/// waiting until `server_idle_timeout` or `query_wait_timeout`; the database never sees more
/// than the cap.
#[tokio::test]
async fn max_db_connections_makes_room_from_another_pools_idle_servers() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "max_db_connections = 2\nquery_wait_timeout = 20").await;
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    let md5_url = bouncer.url(MD5_USER, "postgres");
    let scram_url = bouncer.url(SCRAM_USER, "postgres");
    let mut md5 = Vec::new();
    for _ in 0..2 {
        let client = support::connect(&md5_url).await.unwrap();
        client.batch_execute("BEGIN; SELECT 1").await.unwrap();
        md5.push(client);
    }
    // Both servers busy: the other user's client waits (a new pool's first login already
    // needs a server, for the session parameters it reports)...
    let url = scram_url.clone();
    let query = tokio::spawn(async move {
        let scram = support::connect(&url).await.unwrap();
        let answered = support::select_one(&scram).await;
        (scram, answered)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!query.is_finished(), "served past max_db_connections");
    assert_eq!(backends_of_both(&su).await, 2);
    // ...until one of them goes idle in its own pool.
    for client in &md5 {
        client.batch_execute("COMMIT").await.unwrap();
    }
    let started = Instant::now();
    let (scram, answered) = tokio::time::timeout(Duration::from_secs(5), query)
        .await
        .expect("still waiting with idle servers in the other pool")
        .unwrap();
    assert!(answered);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(backends_of_both(&su).await, 2);

    // A second client of the same user finds the other pool's server idle: room at once.
    scram.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let second = support::connect(&scram_url).await.unwrap();
    let started = Instant::now();
    assert!(support::select_one(&second).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    scram.batch_execute("COMMIT").await.unwrap();
    assert_eq!(backends_of_both(&su).await, 2);
    for client in &md5 {
        assert!(
            support::select_one(client).await,
            "the first user is served again"
        );
    }
}

/// `min_pool_size` under a full `max_db_connections`: the janitor's fill makes no login it
/// could not keep (each one used to be closed at once, every second, for as long as the cap
/// stayed full).
#[tokio::test]
async fn min_pool_size_under_a_full_cap_makes_no_logins_it_cannot_keep() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "max_db_connections = 2\nmin_pool_size = 2").await;
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    let md5 = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(support::select_one(&md5).await);
    let scram = support::connect(&bouncer.url(SCRAM_USER, "postgres"))
        .await
        .unwrap();
    assert!(support::select_one(&scram).await);
    // Both pools below their minimum, the cap full between them.
    let settled = support::eventually(Duration::from_secs(5), || {
        let counts = bouncer.shared().registry.pools();
        counts.iter().map(|p| p.queue.counts().open).sum::<usize>() == 2
    });
    assert!(settled.await);
    let sessions = async || -> i64 {
        su.query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = 'postgres'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    };
    // PostgreSQL counts a session in its statistics when the backend flushes them: give the
    // ones opened so far time to.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = sessions().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = sessions().await;
    assert!(
        after - before <= 1,
        "{} server logins in 4 s under a full cap",
        after - before
    );
    assert_eq!(backends_of_both(&su).await, 2);
}

/// The same for `max_user_connections`: one user's idle servers for one database make room for
/// its client of another database.
#[tokio::test]
async fn max_user_connections_makes_room_from_the_users_idle_servers_elsewhere() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer =
        TestBouncer::start(&pg, "max_user_connections = 2\nquery_wait_timeout = 20").await;
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    let mut first = Vec::new();
    for _ in 0..2 {
        let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
            .await
            .unwrap();
        client.batch_execute("BEGIN; SELECT 1").await.unwrap();
        first.push(client);
    }
    for client in &first {
        client.batch_execute("COMMIT").await.unwrap();
    }
    let started = Instant::now();
    let other = support::connect(&bouncer.url(MD5_USER, "template1"))
        .await
        .unwrap();
    assert!(support::select_one(&other).await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(backends(&su).await, 2);
}

//! A RELOAD that changes `default_pool_size` under load: a larger pool serves the clients queued
//! at once, and a smaller one closes the servers over its size as they come back, leaving SHOW
//! SERVERS in step with what PostgreSQL has.

use std::time::{Duration, Instant};

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::client::RawClient;
use crate::support::postgres::{MD5_USER, TempPostgres};
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

/// PostgreSQL's sessions of the test role, as a superuser session sees them.
async fn backends(su: &tokio_postgres::Client) -> i64 {
    su.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
        &[&MD5_USER],
    )
    .await
    .unwrap()
    .get(0)
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

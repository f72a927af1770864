//! `pg_terminate_backend` on the server a client is using: mid-query, mid-transaction, mid-COPY,
//! and while the server sits idle in the pool.

use std::time::{Duration, Instant};

use futures_util::SinkExt as _;

use super::{Baseline, CLEAN, backends, fill_pool, leftovers, terminate, until};
use crate::support::binary::Binary;
use crate::support::postgres::{MD5_USER, TempPostgres};
use crate::support::{self, select_one};

const POOL: usize = 2;

async fn setup() -> Option<(TempPostgres, Binary, String)> {
    let pg = TempPostgres::start_or_skip()?;
    let bin = Binary::start(&pg, pg.port(), &format!("default_pool_size = {POOL}")).await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, POOL).await;
    Some((pg, bin, url))
}

/// The victim's error arrives promptly; a bystander and newcomers are served on clean servers.
async fn everyone_else_fine(url: &str, bystander: &tokio_postgres::Client) {
    assert!(
        select_one(bystander).await,
        "the bystander lost its session"
    );
    assert_eq!(leftovers(bystander).await, CLEAN);
    for _ in 0..3 {
        let c = support::connect(url).await.unwrap();
        assert_eq!(leftovers(&c).await, CLEAN);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_mid_query() {
    let Some((pg, mut bin, url)) = setup().await else {
        return;
    };
    let base = Baseline::of(&bin);
    let bystander = support::connect(&url).await.unwrap();
    let victim = support::connect(&url).await.unwrap();
    let started = Instant::now();
    let running = tokio::spawn(async move { victim.simple_query("SELECT pg_sleep(30)").await });
    let seen = until(Duration::from_secs(10), || async {
        backends(&pg, MD5_USER)
            .await
            .iter()
            .any(|(_, state, q)| state == "active" && q.starts_with("SELECT pg_sleep(30)"))
    })
    .await;
    assert!(seen, "the query never started");
    assert_eq!(terminate(&pg, MD5_USER, "SELECT pg_sleep(30)").await, 1);
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the victim hangs after its backend died")
        .unwrap();
    assert!(result.is_err(), "the killed query cannot succeed");
    assert!(started.elapsed() < Duration::from_secs(15));
    everyone_else_fine(&url, &bystander).await;
    drop(bystander);
    base.assert_back(&mut bin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_mid_transaction() {
    let Some((pg, mut bin, url)) = setup().await else {
        return;
    };
    let base = Baseline::of(&bin);
    let bystander = support::connect(&url).await.unwrap();
    let victim = support::connect(&url).await.unwrap();
    victim
        .batch_execute(
            "BEGIN; SET LOCAL myapp.marker = 'victim'; CREATE TEMP TABLE fault_marker_tx (x int); \
             INSERT INTO fault_marker_tx VALUES (1)",
        )
        .await
        .unwrap();
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    su.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(10), victim.simple_query("SELECT 1"))
        .await
        .expect("the victim hangs");
    assert!(failed.is_err(), "the transaction's server is gone");
    everyone_else_fine(&url, &bystander).await;
    assert!(super::no_open_transactions(&pg, MD5_USER).await);
    drop((bystander, victim));
    base.assert_back(&mut bin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_mid_copy() {
    let Some((pg, mut bin, url)) = setup().await else {
        return;
    };
    pg.psql("CREATE TABLE fault_copy (x text); GRANT ALL ON fault_copy TO md5_user");
    let base = Baseline::of(&bin);
    let bystander = support::connect(&url).await.unwrap();
    let victim = support::connect(&url).await.unwrap();
    let sink = victim
        .copy_in::<_, bytes::Bytes>("COPY fault_copy FROM STDIN")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"before\n"))
        .await
        .unwrap();
    let copying = until(Duration::from_secs(10), || async {
        backends(&pg, MD5_USER)
            .await
            .iter()
            .any(|(_, _, q)| q.starts_with("COPY fault_copy"))
    })
    .await;
    assert!(copying);
    assert_eq!(terminate(&pg, MD5_USER, "COPY fault_copy").await, 1);
    let finished = tokio::time::timeout(Duration::from_secs(10), async {
        // Keep sending until the pooler's answer to the dead server reaches the client.
        for _ in 0..1000 {
            if sink
                .send(bytes::Bytes::from_static(b"after\n"))
                .await
                .is_err()
            {
                return Err(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sink.as_mut().finish().await.map(|_| ()).map_err(|_| ())
    })
    .await
    .expect("the COPY hangs after its backend died");
    assert!(
        finished.is_err(),
        "a COPY into a dead server cannot succeed"
    );
    everyone_else_fine(&url, &bystander).await;
    assert_eq!(pg.psql("SELECT count(*) FROM fault_copy"), "0");
    drop((bystander, victim));
    base.assert_back(&mut bin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_while_idle_in_the_pool() {
    let Some((pg, mut bin, url)) = setup().await else {
        return;
    };
    let base = Baseline::of(&bin);
    let client = support::connect(&url).await.unwrap();
    assert!(select_one(&client).await);
    let idle = backends(&pg, MD5_USER).await.len();
    assert_eq!(idle, POOL, "the pool holds its servers idle");
    assert_eq!(terminate(&pg, MD5_USER, "").await, POOL);
    let gone = until(Duration::from_secs(10), || async {
        backends(&pg, MD5_USER).await.is_empty()
    })
    .await;
    assert!(gone);
    // Dead idle servers are noticed at checkout: not one query fails.
    for _ in 0..20 {
        let rows = client.simple_query("SELECT 1").await;
        assert!(rows.is_ok(), "a dead idle server was handed out: {rows:?}");
    }
    assert_eq!(leftovers(&client).await, CLEAN);
    fill_pool(&url, POOL).await;
    drop(client);
    base.assert_back(&mut bin, 0).await;
}

//! 2,000 connection attempts at once against `max_client_conn = 500`: the first 500 are served,
//! every other one hears PgBouncer's refusal, the admin console still gets in, and once the
//! crowd leaves the pooler serves as before with its sockets back. Memory: the first burst grows
//! the allocator to its working size (about 20 MB for 2,000 concurrent logins); later bursts
//! must leave it where they found it.

use std::sync::Arc;
use std::time::Duration;

use super::{Baseline, fill_pool, fresh_client_is_clean};
use crate::support::binary::Binary;
use crate::support::postgres::{MD5_USER, TempPostgres};
use crate::support::select_one;

const ATTEMPTS: usize = 2000;
const MAX_CLIENT_CONN: usize = 500;
const REFUSAL: &str = "no more connections allowed (max_client_conn)";

/// One burst: every attempt at once, the admitted ones held until all have their answer.
/// Returns how many were served.
async fn burst(bin: &Binary, url: &str) -> usize {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..ATTEMPTS {
        let url = url.to_owned();
        let release = Arc::clone(&release);
        attempts.spawn(async move {
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    let driver = tokio::spawn(connection);
                    // Hold the slot until every attempt has its answer.
                    let _ = release.acquire().await;
                    let ok = select_one(&client).await;
                    drop(client);
                    let _ = driver.await;
                    Ok(ok)
                }
                Err(e) => Err(e
                    .as_db_error()
                    .map(|d| d.message().to_owned())
                    .unwrap_or_else(|| e.to_string())),
            }
        });
    }
    // Refusals come back first; the admitted attempts wait on `release`.
    let mut refused = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while refused.len() < ATTEMPTS - MAX_CLIENT_CONN {
        let next = tokio::time::timeout_at(deadline, attempts.join_next())
            .await
            .expect("the burst was not answered within 60 s")
            .expect("fewer attempts than spawned");
        refused.push(
            next.unwrap()
                .expect_err("only a refused attempt finishes early"),
        );
    }
    let mut console = bin.console().await;
    assert!(
        console.query("SHOW POOLS").await.error.is_none(),
        "the console is not counted against max_client_conn"
    );
    drop(console);
    release.add_permits(ATTEMPTS);
    let mut served = 0;
    while let Some(done) = attempts.join_next().await {
        match done.unwrap() {
            Ok(ok) => {
                assert!(ok, "an admitted client could not query");
                served += 1;
            }
            Err(e) => refused.push(e),
        }
    }
    eprintln!("{served} served, {} refused", refused.len());
    let wrong: Vec<&String> = refused.iter().filter(|e| *e != REFUSAL).collect();
    assert!(
        wrong.is_empty(),
        "{} refusals without PgBouncer's text, e.g. {:?}",
        wrong.len(),
        wrong.first()
    );
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_2000_connections_over_max_client_conn_500() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut bin = Binary::start(
        &pg,
        pg.port(),
        &format!("max_client_conn = {MAX_CLIENT_CONN}\ndefault_pool_size = 5"),
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 5).await;
    let start = Baseline::of(&bin);
    // The first burst grows the allocator's arenas to their working size; from then on a burst
    // must leave memory where it found it.
    let mut warm: Option<Baseline> = None;
    for round in 0..3 {
        let served = burst(&bin, &url).await;
        // Clients of the warm-up may still be on their way out when a burst starts.
        assert!(
            (MAX_CLIENT_CONN - 10..=MAX_CLIENT_CONN).contains(&served),
            "{served} admitted under max_client_conn = {MAX_CLIENT_CONN}"
        );
        fresh_client_is_clean(&url).await;
        let fds = bin.fds_settle(start.fds, Duration::from_secs(15)).await;
        assert!(fds <= start.fds, "fds {fds} stay above {}", start.fds);
        eprintln!(
            "round {round}: RSS {} KiB (start {} KiB)",
            bin.rss_kib(),
            start.rss_kib
        );
        match warm {
            Some(warm) => warm.assert_back(&mut bin, 0).await,
            None => warm = Some(Baseline::of(&bin)),
        }
    }
}

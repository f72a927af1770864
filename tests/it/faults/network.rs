//! The network between the pooler and PostgreSQL misbehaving, through the in-process relay:
//! black-holed (timeouts fire, clients hear about it in bounded time, the pool heals once the
//! relay passes again), slow, and cut.

use std::time::{Duration, Instant};

use super::{Baseline, fill_pool, until};
use crate::support::binary::Binary;
use crate::support::postgres::{MD5_USER, TempPostgres};
use crate::support::relay::{Mode, Relay};
use crate::support::{self, select_one};

/// The server message of a failed call (or the client library's own text).
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

/// A fresh client's `SELECT 1`, bounded by `limit`: Ok, or the error and how long it took.
async fn fresh_query(url: &str, limit: Duration) -> Result<(), (String, Duration)> {
    let started = Instant::now();
    let attempt = async {
        let client = support::connect(url).await.map_err(|e| message(&e))?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| message(&e))
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((e, started.elapsed())),
        Err(_) => panic!("a client got no answer within {limit:?}"),
    }
}

/// After the relay passes again: fresh clients succeed `streak` times in a row within a bounded
/// number of attempts (servers lost in the black hole may fail a few first).
///
/// Answers with the cached login error until `server_login_retry` (1 s here) has passed are
/// PgBouncer's design, not a failure to heal: they are polled through, within a deadline.
async fn heals(url: &str, streak: usize, max_failures: usize) {
    let mut failures = Vec::new();
    let mut in_a_row = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while in_a_row < streak {
        assert!(
            Instant::now() < deadline,
            "no healing within 20 s: {failures:?}"
        );
        match fresh_query(url, Duration::from_secs(15)).await {
            Ok(()) => in_a_row += 1,
            Err((text, _)) if text.contains("(server_login_retry)") => {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                in_a_row = 0;
                failures.push(e);
                assert!(
                    failures.len() <= max_failures,
                    "the pool does not heal: {failures:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_fires_query_and_connect_timeouts_then_heals() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let relay = Relay::start(pg.port()).await;
    let mut bin = Binary::start(
        &pg,
        relay.port(),
        "default_pool_size = 3\nserver_connect_timeout = 1\nquery_timeout = 2\nquery_wait_timeout = 10\n\
         server_login_retry = 1",
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 3).await;
    let base = Baseline::of(&bin);
    let idle_client = support::connect(&url).await.unwrap();
    relay.set(Mode::BlackHole);

    // An idle server that went into the black hole: query_timeout ends the wait.
    let started = Instant::now();
    let err = idle_client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(message(&err), "query_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    // Newcomers: the other idle servers time out the same way, new logins hit
    // server_connect_timeout; each client hears within a few seconds.
    let attempts = (0..4).map(|_| fresh_query(&url, Duration::from_secs(10)));
    for outcome in futures_util::future::join_all(attempts).await {
        let (text, took) = outcome.expect_err("nothing can succeed in the black hole");
        assert!(
            text == "query_timeout" || text.contains("server connect timeout"),
            "{text}"
        );
        assert!(took < Duration::from_secs(8), "{text} after {took:?}");
    }
    let mut console = bin.console().await;
    assert!(
        console.query("SHOW POOLS").await.error.is_none(),
        "the console keeps working"
    );

    relay.set(Mode::Pass);
    heals(&url, 10, 3).await;
    // Every slot came back: the pool can hold its full size at once again.
    fill_pool(&url, 3).await;
    super::fresh_client_is_clean(&url).await;
    drop((idle_client, console));
    assert!(
        until(Duration::from_secs(10), || async { relay.open() <= 3 }).await,
        "server sockets lost in the black hole stay open: {}",
        relay.open()
    );
    base.assert_back(&mut bin, 0).await;
}

/// Session mode with `server_check_delay = 0`: the check query before reuse and the reset query
/// after a client leaves both meet the black hole; neither may hang a client or leak a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_during_check_and_reset_queries_leaks_no_slot() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let relay = Relay::start(pg.port()).await;
    let mut bin = Binary::start(
        &pg,
        relay.port(),
        "pool_mode = session\ndefault_pool_size = 2\nserver_check_delay = 0\n\
         server_connect_timeout = 1\nquery_timeout = 2\nquery_wait_timeout = 5\nserver_login_retry = 1",
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 2).await;
    let base = Baseline::of(&bin);
    let holder = support::connect(&url).await.unwrap();
    holder
        .batch_execute("SET myapp.marker = 'holder'")
        .await
        .unwrap();
    relay.set(Mode::BlackHole);
    // The holder leaves: its server's reset query goes into the black hole.
    drop(holder);
    // The other idle server's check query goes into the black hole too.
    let (text, took) = fresh_query(&url, Duration::from_secs(15))
        .await
        .expect_err("nothing can succeed in the black hole");
    assert!(took < Duration::from_secs(10), "{text} after {took:?}");

    relay.set(Mode::Pass);
    heals(&url, 10, 4).await;
    // The slot of the server whose reset went into the black hole came back too.
    fill_pool(&url, 2).await;
    for _ in 0..4 {
        super::fresh_client_is_clean(&url).await;
    }
    base.assert_back(&mut bin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_then_cut_network() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let relay = Relay::start(pg.port()).await;
    let mut bin = Binary::start(
        &pg,
        relay.port(),
        "default_pool_size = 2\nserver_connect_timeout = 2\nquery_timeout = 5\nserver_login_retry = 1",
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 2).await;
    let base = Baseline::of(&bin);
    let client = support::connect(&url).await.unwrap();

    relay.set(Mode::Delay(Duration::from_millis(100)));
    let started = Instant::now();
    assert!(
        select_one(&client).await,
        "a slow network is still a network"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));

    relay.set(Mode::Pass);
    client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    relay.set(Mode::Cut);
    let err = tokio::time::timeout(Duration::from_secs(10), client.simple_query("SELECT 1"))
        .await
        .expect("a cut server must surface promptly")
        .unwrap_err();
    assert!(!message(&err).is_empty());
    // New logins while cut fail at once, not after a timeout.
    let (text, took) = fresh_query(&url, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(took < Duration::from_secs(2), "{text} after {took:?}");

    relay.set(Mode::Pass);
    heals(&url, 10, 2).await;
    super::fresh_client_is_clean(&url).await;
    drop(client);
    base.assert_back(&mut bin, 0).await;
}

//! Fault tests (issue 10): PostgreSQL killed, restarted and unreachable, clients that vanish, stall
//! or flood. After each fault the pooler is still up, other clients keep working, no client ever
//! sees another's session (a marker GUC, temp table or open transaction), and the pooler's file
//! descriptors and memory come back to their baseline.
//!
//! Tests that take PostgreSQL away set `server_login_retry = 1`: with PgBouncer's 15 s default,
//! clients after the outage would get the cached login error for 15 s by design, and the tests
//! measure how the pooler recovers, not that knob.

mod backend_kill;
mod burst;
mod network;
mod outage;
mod slow;
mod vanish;

use std::future::Future;
use std::time::{Duration, Instant};

use crate::support::binary::Binary;
use crate::support::postgres::TempPostgres;
use crate::support::{self, rows};

/// One text cell describing what a previous client could have left on a server: the marker
/// GUC, marker temp tables, a transaction begun before this statement, an assigned xid.
pub const LEFTOVERS_SQL: &str = "SELECT coalesce(current_setting('myapp.marker', true), '') \
     || '|' || (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() \
                AND relname LIKE 'fault_marker%') \
     || '|' || (now() = statement_timestamp()) \
     || '|' || coalesce(txid_current_if_assigned()::text, '')";

/// [`LEFTOVERS_SQL`] on a server nobody dirtied.
pub const CLEAN: &str = "|0|true|";

/// Polls an async probe until it holds or `timeout` passes; returns whether it held.
pub async fn until<F, Fut>(timeout: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The [`LEFTOVERS_SQL`] answer a tokio-postgres client gets.
pub async fn leftovers(client: &tokio_postgres::Client) -> String {
    let got = client.simple_query(LEFTOVERS_SQL).await.unwrap();
    rows(&got).concat()
}

/// A fresh client through the pooler logs in, finds a clean server and runs a query.
pub async fn fresh_client_is_clean(url: &str) {
    let client = support::connect(url).await.unwrap();
    assert_eq!(leftovers(&client).await, CLEAN);
}

/// Backends of `user` in PostgreSQL, other than the asking one, as (pid, state, query).
pub async fn backends(pg: &TempPostgres, user: &str) -> Vec<(i32, String, String)> {
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    su.query(
        "SELECT pid, coalesce(state, ''), query FROM pg_stat_activity \
         WHERE usename = $1 AND pid <> pg_backend_pid()",
        &[&user],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Terminates the backends of `user` whose query text starts with `query` (all when empty);
/// returns how many.
pub async fn terminate(pg: &TempPostgres, user: &str, query: &str) -> usize {
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    let pattern = format!("{query}%");
    let n: i64 = su
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename = $1 AND query LIKE $2 AND pid <> pg_backend_pid()",
            &[&user, &pattern],
        )
        .await
        .unwrap()
        .get(0);
    usize::try_from(n).unwrap()
}

/// True when no backend of `user` sits in a transaction left open.
pub async fn no_open_transactions(pg: &TempPostgres, user: &str) -> bool {
    until(Duration::from_secs(10), || async {
        backends(pg, user)
            .await
            .iter()
            .all(|(_, state, _)| !state.starts_with("idle in transaction"))
    })
    .await
}

/// File descriptors and resident memory of the pooler at a quiet moment.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// Open fds.
    pub fds: usize,
    /// VmRSS in KiB.
    pub rss_kib: u64,
}

/// Memory the allocator may keep after a fault (arenas, a raised mmap threshold) without it
/// being a leak.
pub const RSS_SLACK_KIB: u64 = 16 * 1024;

impl Baseline {
    /// Measures `bin` now.
    pub fn of(bin: &Binary) -> Baseline {
        Baseline {
            fds: bin.fds(),
            rss_kib: bin.rss_kib(),
        }
    }

    /// Waits for the fds to come back to at most the baseline plus `extra` (servers the pool may
    /// legitimately hold beyond the baseline's), then checks memory.
    pub async fn assert_back(&self, bin: &mut Binary, extra: usize) {
        assert!(bin.alive(), "the pooler died: {}", bin.log());
        let fds = bin
            .fds_settle(self.fds + extra, Duration::from_secs(15))
            .await;
        assert!(
            fds <= self.fds + extra,
            "fds {fds} stay above the baseline {} + {extra}",
            self.fds
        );
        let rss = bin.rss_kib();
        assert!(
            rss <= self.rss_kib + RSS_SLACK_KIB,
            "RSS {rss} KiB stays above the baseline {} KiB + {RSS_SLACK_KIB} KiB",
            self.rss_kib
        );
    }
}

/// Opens `n` transactions at once through `url` so the pool holds `n` servers, then ends them.
pub async fn fill_pool(url: &str, n: usize) {
    let mut clients = Vec::new();
    for _ in 0..n {
        let c = support::connect(url).await.unwrap();
        c.batch_execute("BEGIN; SELECT 1").await.unwrap();
        clients.push(c);
    }
    for c in &clients {
        c.batch_execute("COMMIT").await.unwrap();
    }
}

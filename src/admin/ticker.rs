//! The `stats_period` ticker: closes each pool's averaging period (SHOW STATS' `avg_*`) and, with
//! `log_stats`, logs PgBouncer's one-line summary of the period across all pools.

use std::sync::Arc;
use std::time::Duration;

use super::Host;
use crate::config::Key;
use crate::shutdown::Phase;
use crate::stats::Totals;

/// Runs until an immediate shutdown; one tick per `stats_period` (re-read each time, so RELOAD
/// and SET apply).
pub async fn run(host: Arc<dyn Host>) {
    let mut phase = host.shutdown().subscribe();
    let mut started = tokio::time::Instant::now();
    loop {
        let period = period(&host);
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            r = phase.wait_for(|p| *p == Phase::Immediate) => {
                let _ = r.map(|_| ());
                return;
            }
        }
        let secs = started.elapsed().as_secs().max(1);
        started = tokio::time::Instant::now();
        let mut delta = Totals::default();
        for pool in host.pools().pools() {
            pool.stats.tick(secs);
            delta.add(&pool.stats.last_period().0);
        }
        if host.config().pgbouncer.flag(Key::LogStats) {
            tracing::info!("{}", summary(&delta.averages(secs)));
        }
    }
}

fn period(host: &Arc<dyn Host>) -> Duration {
    let secs = host.config().pgbouncer.int(Key::StatsPeriod);
    Duration::from_secs(u64::try_from(secs).unwrap_or(60).max(1))
}

/// PgBouncer's `log_stats` line for one period's averages.
pub fn summary(avg: &Totals) -> String {
    format!(
        "stats: {} xacts/s, {} queries/s, {} client parses/s, {} server parses/s, {} binds/s, \
         in {} B/s, out {} B/s, xact {} us, query {} us, wait {} us",
        avg.xact_count,
        avg.query_count,
        avg.client_parse_count,
        avg.server_parse_count,
        avg.bind_count,
        avg.bytes_received,
        avg.bytes_sent,
        avg.xact_time,
        avg.query_time,
        avg.wait_time
    )
}

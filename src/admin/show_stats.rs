//! SHOW STATS, STATS_TOTALS, STATS_AVERAGES and TOTALS: the pools' counters summed per database
//! (or overall), with averages over the last closed `stats_period` (PgBouncer's definitions in
//! [`crate::stats::Totals::averages`]).

use super::Host;
use super::columns::{STATS, TOTALS};
use super::show::database_list;
use super::table::{Columns, Table, v};
use crate::config::Config;
use crate::latency::Snapshot;
use crate::stats::Totals;

const TOTAL_NAMES: [&str; 12] = [
    "server_assignment_count",
    "xact_count",
    "query_count",
    "client_bytes",
    "server_bytes",
    "xact_time",
    "query_time",
    "wait_time",
    "ps_client_parse_count",
    "ps_server_parse_count",
    "ps_bind_count",
    "client_login_count",
];

/// Totals and last-period deltas summed per database, and the period length.
fn per_database(host: &dyn Host, config: &Config) -> Vec<(String, Totals, Totals, u64)> {
    let pools = host.pools().pools();
    let mut secs = 0;
    let rows = database_list(host, config)
        .into_keys()
        .map(|name| {
            let (mut total, mut delta) = (Totals::default(), Totals::default());
            for pool in pools.iter().filter(|p| p.database == name) {
                total.add(&pool.stats.totals());
                let (d, s) = pool.stats.last_period();
                delta.add(&d);
                secs = secs.max(s);
            }
            (name, total, delta, 0)
        })
        .collect::<Vec<_>>();
    rows.into_iter()
        .map(|(n, t, d, _)| (n, t, d, secs))
        .collect()
}

fn cells(t: &Totals) -> [u64; 12] {
    [
        t.server_assignment_count,
        t.xact_count,
        t.query_count,
        t.bytes_received,
        t.bytes_sent,
        t.xact_time,
        t.query_time,
        t.wait_time,
        t.client_parse_count,
        t.server_parse_count,
        t.bind_count,
        t.client_login_count,
    ]
}

/// SHOW STATS: totals and averages per database.
pub fn stats(host: &dyn Host, config: &Config) -> Table {
    let mut t = Table::new(STATS);
    for (name, total, delta, secs) in per_database(host, config) {
        let mut row = vec![v(name)];
        row.extend(cells(&total).iter().map(v));
        row.extend(cells(&delta.averages(secs)).iter().map(v));
        t.row(row);
    }
    t
}

/// SHOW STATS_TOTALS (`averages` false) or SHOW STATS_AVERAGES (true).
pub fn stats_part(host: &dyn Host, config: &Config, columns: Columns, averages: bool) -> Table {
    let mut t = Table::new(columns);
    for (name, total, delta, secs) in per_database(host, config) {
        let values = if averages {
            delta.averages(secs)
        } else {
            total
        };
        let mut row = vec![v(name)];
        row.extend(cells(&values).iter().map(v));
        t.row(row);
    }
    t
}

/// SHOW LATENCY: query and wait-time percentiles per database since start (ours; PgBouncer has none).
pub fn latency(host: &dyn Host, config: &Config) -> Table {
    let pools = host.pools().pools();
    let mut t = Table::new(super::columns::LATENCY);
    for name in database_list(host, config).into_keys() {
        let (mut query, mut wait) = (Snapshot::default(), Snapshot::default());
        for pool in pools.iter().filter(|p| p.database == name) {
            query.merge(&pool.stats.query_latency.snapshot());
            wait.merge(&pool.stats.wait_latency.snapshot());
        }
        let mut row = vec![v(name)];
        for s in [&query, &wait] {
            row.push(v(s.count()));
            row.extend([0.5, 0.95, 0.99].map(|q| v(s.quantile(q))));
        }
        t.row(row);
    }
    t
}

/// SHOW TOTALS: every pool summed, as (name, value) rows.
pub fn totals(host: &dyn Host) -> Table {
    let (mut total, mut delta, mut secs) = (Totals::default(), Totals::default(), 0);
    for pool in host.pools().pools() {
        total.add(&pool.stats.totals());
        let (d, s) = pool.stats.last_period();
        delta.add(&d);
        secs = secs.max(s);
    }
    let mut t = Table::new(TOTALS);
    for (prefix, values) in [("total_", total), ("avg_", delta.averages(secs))] {
        for (name, value) in TOTAL_NAMES.iter().zip(cells(&values)) {
            t.row(vec![v(format!("{prefix}{name}")), v(value)]);
        }
    }
    t
}

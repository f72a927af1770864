//! The metric families of the endpoint: pgbouncer_exporter's names, labels and units, read from
//! the same SHOW tables the admin console sends (so the two never disagree), plus our latency
//! histograms from the pools' lock-free log-linear buckets.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;

use crate::admin::table::Table;
use crate::admin::{Host, show_table};
use crate::latency::Snapshot;
use crate::stats::Totals;

use super::names::{BUCKETS, CONFIG, HISTOGRAMS, Kind, LISTS, Latency, MAPPINGS, Mapping};

/// Reads the pooler at each scrape; registered once in the endpoint's registry.
pub struct Exporter {
    host: Arc<dyn Host>,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exporter")
    }
}

impl Exporter {
    /// An exporter of `host`'s pools, clients and counters.
    pub fn new(host: Arc<dyn Host>) -> Self {
        Exporter { host }
    }
}

/// A cell as a sample value: integers stay exact, NULL is NaN (as the exporter reads it).
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

fn number(cell: Option<&String>, per: f64) -> Num {
    let Some(text) = cell else {
        return Num::Float(f64::NAN);
    };
    match text.parse::<i64>() {
        Ok(i) if per == 1.0 => Num::Int(i),
        Ok(i) => Num::Float(i as f64 / per),
        Err(_) => Num::Float(text.parse::<f64>().map_or(f64::NAN, |f| f / per)),
    }
}

fn sample(mut m: MetricEncoder<'_>, kind: Kind, n: Num) -> fmt::Result {
    match (kind, n) {
        (Kind::Gauge, Num::Int(i)) => m.encode_gauge(&i),
        (Kind::Gauge, Num::Float(f)) => m.encode_gauge(&f),
        (Kind::Counter, Num::Int(i)) => {
            m.encode_counter::<NoLabelSet, _, f64>(&u64::try_from(i).unwrap_or(0), None)
        }
        (Kind::Counter, Num::Float(f)) => m.encode_counter::<NoLabelSet, _, f64>(&f, None),
    }
}

fn cell<'a>(table: &'a Table, row: &'a [Option<String>], name: &str) -> Option<&'a String> {
    table
        .column(name)
        .and_then(|i| row.get(i))
        .and_then(Option::as_ref)
}

impl Collector for Exporter {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let host = self.host.as_ref();
        ConstGauge::new(1i64).encode(enc.encode_descriptor(
            "pgbouncer_up",
            "1: the scrape read the pooler (always, the endpoint runs inside it)",
            None,
            MetricType::Gauge,
        )?)?;
        let version = Info::new(vec![("version", crate::admin::version_text())]);
        version.encode(enc.encode_descriptor(
            "pgbouncer_version",
            "The version SHOW VERSION reports",
            None,
            MetricType::Info,
        )?)?;
        encode_rows(&mut enc, show_table(host, "LISTS"), LISTS)?;
        encode_rows(&mut enc, show_table(host, "CONFIG"), CONFIG)?;
        encode_clients(&mut enc, show_table(host, "CLIENTS"))?;
        for mapping in MAPPINGS {
            let Some(table) = show_table(host, mapping.show) else {
                continue;
            };
            encode_mapping(&mut enc, mapping, &table)?;
        }
        encode_histograms(&mut enc, host)
    }
}

/// `(key, value)` tables (LISTS, CONFIG): the rows named in `wanted`, one unlabelled gauge each.
fn encode_rows(
    enc: &mut DescriptorEncoder<'_>,
    table: Option<Table>,
    wanted: &[(&str, &str, &str)],
) -> fmt::Result {
    let Some(table) = table else { return Ok(()) };
    for (key, metric, help) in wanted {
        let Some(row) = table
            .rows()
            .iter()
            .find(|r| r.first().and_then(Option::as_deref) == Some(*key))
        else {
            continue;
        };
        let value = number(row.get(1).and_then(Option::as_ref), 1.0);
        sample(
            enc.encode_descriptor(metric, help, None, MetricType::Gauge)?,
            Kind::Gauge,
            value,
        )?;
    }
    Ok(())
}

/// `pgbouncer_client_connections`: SHOW CLIENTS rows counted by database, user,
/// application_name and state.
fn encode_clients(enc: &mut DescriptorEncoder<'_>, table: Option<Table>) -> fmt::Result {
    let Some(table) = table else { return Ok(()) };
    const LABELS: [&str; 4] = ["database", "user", "application_name", "state"];
    let mut counts: BTreeMap<[String; 4], i64> = BTreeMap::new();
    for row in table.rows() {
        let key = LABELS.map(|l| cell(&table, row, l).cloned().unwrap_or_default());
        *counts.entry(key).or_insert(0) += 1;
    }
    let mut m = enc.encode_descriptor(
        "pgbouncer_client_connections",
        "Clients connected, by database, user, application_name and state",
        None,
        MetricType::Gauge,
    )?;
    for (key, n) in counts {
        let labels: Vec<(&str, &str)> = LABELS
            .iter()
            .copied()
            .zip(key.iter().map(String::as_str))
            .collect();
        m.encode_family(&labels)?.encode_gauge(&n)?;
    }
    Ok(())
}

fn encode_mapping(
    enc: &mut DescriptorEncoder<'_>,
    mapping: &Mapping,
    table: &Table,
) -> fmt::Result {
    let labels: Vec<Vec<(&str, String)>> = table
        .rows()
        .iter()
        .map(|row| {
            mapping
                .labels
                .iter()
                .map(|l| (*l, cell(table, row, l).cloned().unwrap_or_default()))
                .collect()
        })
        .collect();
    for column in mapping.columns {
        let Some(index) = table.column(column.column) else {
            continue;
        };
        let name = format!("{}{}", mapping.prefix, column.metric);
        let kind = match column.kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        };
        let mut m = enc.encode_descriptor(&name, column.help, None, kind)?;
        for (row, labels) in table.rows().iter().zip(&labels) {
            let mut value = number(row.get(index).and_then(Option::as_ref), column.per);
            // maxwait is whole seconds; its microsecond part makes the gauge exact.
            if column.column == "maxwait" {
                if let (Num::Int(s), Num::Int(us)) =
                    (value, number(cell(table, row, "maxwait_us"), 1.0))
                {
                    value = Num::Float(s as f64 + us as f64 / 1e6);
                }
            }
            sample(m.encode_family(labels)?, column.kind, value)?;
        }
    }
    Ok(())
}

/// The three latency histograms, one series per database: the log-linear buckets folded into
/// [`BUCKETS`] (a bucket straddling a bound counts toward the next bound), sums from the same
/// µs counters as SHOW STATS.
fn encode_histograms(enc: &mut DescriptorEncoder<'_>, host: &dyn Host) -> fmt::Result {
    #[derive(Default)]
    struct Db {
        totals: Totals,
        query: Snapshot,
        xact: Snapshot,
        wait: Snapshot,
    }
    let config = host.config();
    let mut per_db: BTreeMap<String, Db> = crate::admin::show::database_list(host, &config)
        .into_keys()
        .map(|name| (name, Db::default()))
        .collect();
    for pool in host.pools().pools() {
        let db = per_db.entry(pool.database.clone()).or_default();
        db.totals.add(&pool.stats.totals());
        db.query.merge(&pool.stats.query_latency.snapshot());
        db.xact.merge(&pool.stats.xact_latency.snapshot());
        db.wait.merge(&pool.stats.wait_latency.snapshot());
    }
    for (name, help, source) in HISTOGRAMS {
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (name, db) in &per_db {
            let (snap, sum_us) = match source {
                Latency::Query => (&db.query, db.totals.query_time),
                Latency::Transaction => (&db.xact, db.totals.xact_time),
                Latency::Wait => (&db.wait, db.totals.wait_time),
            };
            let count = snap.count();
            let mut below = 0;
            let mut buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .map(|&le| {
                    let at_most = snap.count_at_most((le * 1e6).round() as u64);
                    let fresh = at_most.saturating_sub(below);
                    below = at_most;
                    (le, fresh)
                })
                .collect();
            // Both text formats need the +Inf bucket; OpenMetrics' encoder does not add it.
            buckets.push((f64::INFINITY, count.saturating_sub(below)));
            m.encode_family(&[("database", name.as_str())])?
                .encode_histogram::<NoLabelSet>(sum_us as f64 / 1e6, count, &buckets, None)?;
        }
    }
    Ok(())
}

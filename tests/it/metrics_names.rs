//! Name parity with pgbouncer_exporter: the names (and label names) its documented mapping
//! derives from a real PgBouncer's console, and from ours, all exist on our metrics page.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::SimpleQueryMessage;

use crate::metrics::{metrics_addr, scrape, show, start_with_metrics, traffic};
use crate::support::bouncer::ADMIN_USER;
use crate::support::connect;
use crate::support::pgbouncer::{self as pgb, TempPgbouncer};
use crate::support::postgres::{MD5_USER, TempPostgres};

/// The column names of `SHOW what` (from its RowDescription, so also for an empty result).
async fn show_columns(client: &tokio_postgres::Client, what: &str) -> Vec<String> {
    client
        .simple_query(&format!("SHOW {what}"))
        .await
        .unwrap()
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::RowDescription(cols) => {
                Some(cols.iter().map(|c| c.name().to_owned()).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// pgbouncer_exporter's column mapping (collector.go `metricMaps`, v0.12.1): per SHOW command, the
/// label columns and the metric each numeric column becomes (`pgbouncer_<show>_<metric>`).
/// One `metricMaps` entry: SHOW name, label columns, (column, metric) pairs.
type ExporterMap = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

const EXPORTER_MAPS: &[ExporterMap] = &[
    (
        "databases",
        &[
            "name",
            "host",
            "port",
            "database",
            "force_user",
            "pool_mode",
        ],
        &[
            ("pool_size", "pool_size"),
            ("reserve_pool", "reserve_pool"),
            ("reserve_pool_size", "reserve_pool"),
            ("max_connections", "max_connections"),
            ("current_connections", "current_connections"),
            ("paused", "paused"),
            ("disabled", "disabled"),
        ],
    ),
    (
        "stats_totals",
        &["database"],
        &[
            ("query_count", "queries_pooled_total"),
            ("query_time", "queries_duration_seconds_total"),
            ("bytes_received", "received_bytes_total"),
            ("requests", "queries_total"),
            ("bytes_sent", "sent_bytes_total"),
            ("wait_time", "client_wait_seconds_total"),
            ("xact_count", "sql_transactions_pooled_total"),
            ("xact_time", "server_in_transaction_seconds_total"),
            ("client_parse_count", "client_parses_total"),
            ("server_parse_count", "server_parses_total"),
            ("bind_count", "binds_total"),
            ("server_assignment_count", "server_assignments_total"),
        ],
    ),
    (
        "pools",
        &["database", "user"],
        &[
            ("cl_active", "client_active_connections"),
            ("cl_active_cancel_req", "client_active_cancel_connections"),
            ("cl_waiting", "client_waiting_connections"),
            ("cl_waiting_cancel_req", "client_waiting_cancel_connections"),
            ("sv_active", "server_active_connections"),
            ("sv_active_cancel", "server_active_cancel_connections"),
            ("sv_being_canceled", "server_being_canceled_connections"),
            ("sv_idle", "server_idle_connections"),
            ("sv_used", "server_used_connections"),
            ("sv_tested", "server_testing_connections"),
            ("sv_login", "server_login_connections"),
            ("maxwait", "client_maxwait_seconds"),
        ],
    ),
];

/// The exporter's SHOW LISTS and SHOW CONFIG renames.
const EXPORTER_LISTS: &[(&str, &str)] = &[
    ("databases", "pgbouncer_databases"),
    ("users", "pgbouncer_users"),
    ("pools", "pgbouncer_pools"),
    ("free_clients", "pgbouncer_free_clients"),
    ("used_clients", "pgbouncer_used_clients"),
    ("login_clients", "pgbouncer_login_clients"),
    ("free_servers", "pgbouncer_free_servers"),
    ("used_servers", "pgbouncer_used_servers"),
    ("dns_names", "pgbouncer_cached_dns_names"),
    ("dns_zones", "pgbouncer_cached_dns_zones"),
    ("dns_queries", "pgbouncer_in_flight_dns_queries"),
];
const EXPORTER_CONFIG: &[(&str, &str)] = &[
    ("max_client_conn", "pgbouncer_config_max_client_connections"),
    (
        "max_user_connections",
        "pgbouncer_config_max_user_connections",
    ),
];

/// The metric names (with their label names) the exporter would emit scraping `console`.
async fn exporter_names(console: &tokio_postgres::Client) -> BTreeMap<String, BTreeSet<String>> {
    let labels = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    let mut names = BTreeMap::new();
    names.insert("pgbouncer_up".to_owned(), labels(&[]));
    if show_columns(console, "VERSION").await == ["version"] {
        names.insert("pgbouncer_version_info".to_owned(), labels(&["version"]));
    }
    for row in show(console, "LISTS").await {
        if let Some((_, name)) = EXPORTER_LISTS.iter().find(|(l, _)| row["list"] == *l) {
            names.insert((*name).to_owned(), labels(&[]));
        }
    }
    for row in show(console, "CONFIG").await {
        if let Some((_, name)) = EXPORTER_CONFIG.iter().find(|(k, _)| row["key"] == *k) {
            names.insert((*name).to_owned(), labels(&[]));
        }
    }
    let client_columns = show_columns(console, "CLIENTS").await;
    if ["database", "user", "state"]
        .iter()
        .all(|c| client_columns.iter().any(|have| have == c))
        && !show(console, "CLIENTS").await.is_empty()
    {
        names.insert(
            "pgbouncer_client_connections".to_owned(),
            labels(&["database", "user", "application_name", "state"]),
        );
    }
    for (what, label_columns, columns) in EXPORTER_MAPS {
        let have = show_columns(console, what).await;
        if show(console, what).await.is_empty() {
            continue;
        }
        for (column, metric) in *columns {
            if have.iter().any(|h| h == column) {
                names.insert(format!("pgbouncer_{what}_{metric}"), labels(label_columns));
            }
        }
    }
    names
}

#[tokio::test]
async fn every_name_the_exporter_derives_from_pgbouncer_exists() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Some(real) = TempPgbouncer::start_or_skip(&pg, &[]) else {
        return;
    };
    let (_a, _b) = traffic(&real.app_url()).await;
    let real_console = connect(&real.admin_url(pgb::ADMIN_USER, pgb::ADMIN_PASSWORD))
        .await
        .unwrap();
    let from_pgbouncer = exporter_names(&real_console).await;
    // A 1.18 console gives at least the classic families.
    for name in [
        "pgbouncer_stats_totals_queries_pooled_total",
        "pgbouncer_pools_client_active_connections",
        "pgbouncer_databases_current_connections",
        "pgbouncer_used_clients",
        "pgbouncer_config_max_client_connections",
        "pgbouncer_client_connections",
    ] {
        assert!(
            from_pgbouncer.contains_key(name),
            "{name}: {from_pgbouncer:#?}"
        );
    }

    let ours = start_with_metrics(&pg).await;
    let (_c, _d) = traffic(&ours.url(MD5_USER, "postgres")).await;
    let our_console = connect(&ours.admin_url(ADMIN_USER)).await.unwrap();
    let from_ours = exporter_names(&our_console).await;
    let page = scrape(metrics_addr(&ours)).await;
    for (source, names) in [
        ("PgBouncer 1.18", &from_pgbouncer),
        ("our console", &from_ours),
    ] {
        for (name, labels) in names {
            assert_eq!(
                page.label_names(name).as_ref(),
                Some(labels),
                "{name} (derived from {source}'s console) missing or labelled differently"
            );
        }
    }
}

//! The names the endpoint exports: pgbouncer_exporter's mapping from SHOW columns to metric names,
//! labels and units (its `metricMaps`, `listsMap` and `configMap`), kept as tables so a dashboard
//! built on the exporter reads us unchanged, and the bounds of our latency histograms.

/// How a column becomes a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Only goes up (the encoder appends `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One numeric column of a SHOW table and the metric it feeds.
pub struct Column {
    /// The SHOW column.
    pub column: &'static str,
    /// The metric's name after the mapping's prefix (counters without `_total`).
    pub metric: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Divisor from the column's unit to the metric's (µs → s is 1e6).
    pub per: f64,
    /// The HELP line.
    pub help: &'static str,
}

const fn col(column: &'static str, metric: &'static str, kind: Kind, help: &'static str) -> Column {
    Column {
        column,
        metric,
        kind,
        per: 1.0,
        help,
    }
}

const fn micros(column: &'static str, metric: &'static str, help: &'static str) -> Column {
    Column {
        column,
        metric,
        kind: Kind::Counter,
        per: 1e6,
        help,
    }
}

/// A SHOW table read row by row, as the exporter's `metricMaps` entry of the same name: label
/// columns, then one metric per numeric column, named `<prefix><metric>`.
pub struct Mapping {
    /// The SHOW command.
    pub show: &'static str,
    /// `pgbouncer_<show>_`.
    pub prefix: &'static str,
    /// Columns copied into labels of every sample of the row.
    pub labels: &'static [&'static str],
    /// The numeric columns exported.
    pub columns: &'static [Column],
}

use Kind::{Counter, Gauge};

/// SHOW DATABASES, STATS_TOTALS and POOLS as the exporter maps them.
#[rustfmt::skip]
pub const MAPPINGS: &[Mapping] = &[
    Mapping {
        show: "DATABASES",
        prefix: "pgbouncer_databases_",
        labels: &["name", "host", "port", "database", "force_user", "pool_mode"],
        columns: &[
            col("pool_size", "pool_size", Gauge, "Server connections allowed per pool of this database"),
            col("reserve_pool_size", "reserve_pool", Gauge, "Extra server connections allowed when clients wait too long"),
            col("max_connections", "max_connections", Gauge, "Server connections allowed for this database in all (0 = no cap)"),
            col("current_connections", "current_connections", Gauge, "Server connections open for this database"),
            col("paused", "paused", Gauge, "1 while the database is paused"),
            col("disabled", "disabled", Gauge, "1 while new logins to the database are refused"),
        ],
    },
    Mapping {
        show: "STATS_TOTALS",
        prefix: "pgbouncer_stats_totals_",
        labels: &["database"],
        columns: &[
            col("query_count", "queries_pooled", Counter, "Queries run through the pooler"),
            micros("query_time", "queries_duration_seconds", "Seconds spent connected to a server running queries"),
            col("bytes_received", "received_bytes", Counter, "Bytes received from clients"),
            col("bytes_sent", "sent_bytes", Counter, "Bytes sent to clients"),
            micros("wait_time", "client_wait_seconds", "Seconds clients spent waiting for a server"),
            col("xact_count", "sql_transactions_pooled", Counter, "Transactions run through the pooler"),
            micros("xact_time", "server_in_transaction_seconds", "Seconds spent connected to a server inside transactions, idle or not"),
            col("client_parse_count", "client_parses", Counter, "Parse messages received from clients (prepared statements)"),
            col("server_parse_count", "server_parses", Counter, "Parse messages sent to servers (prepared statements)"),
            col("bind_count", "binds", Counter, "Bind messages forwarded (prepared statements)"),
            col("server_assignment_count", "server_assignments", Counter, "Times a server connection was handed to a client"),
        ],
    },
    Mapping {
        show: "POOLS",
        prefix: "pgbouncer_pools_",
        labels: &["database", "user"],
        columns: &[
            col("cl_active", "client_active_connections", Gauge, "Clients linked to a server or idle with nothing queued"),
            col("cl_waiting", "client_waiting_connections", Gauge, "Clients with a request waiting for a server"),
            col("cl_active_cancel_req", "client_active_cancel_connections", Gauge, "Clients whose cancel request was forwarded and awaits the server"),
            col("cl_waiting_cancel_req", "client_waiting_cancel_connections", Gauge, "Clients whose cancel request is not forwarded yet"),
            col("sv_active", "server_active_connections", Gauge, "Server connections linked to a client"),
            col("sv_active_cancel", "server_active_cancel_connections", Gauge, "Server connections carrying a cancel request"),
            col("sv_being_canceled", "server_being_canceled_connections", Gauge, "Server connections held back until cancel requests aimed at them finish"),
            col("sv_idle", "server_idle_connections", Gauge, "Server connections ready for a client"),
            col("sv_used", "server_used_connections", Gauge, "Server connections idle past server_check_delay, to be checked before reuse"),
            col("sv_tested", "server_testing_connections", Gauge, "Server connections running server_reset_query or server_check_query"),
            col("sv_login", "server_login_connections", Gauge, "Server connections logging in"),
            col("maxwait", "client_maxwait_seconds", Gauge, "How long the oldest waiting client has waited, in seconds"),
        ],
    },
];

/// SHOW LISTS rows the exporter turns into unlabelled gauges: (row, metric, help).
#[rustfmt::skip]
pub const LISTS: &[(&str, &str, &str)] = &[
    ("databases", "pgbouncer_databases", "Databases known"),
    ("users", "pgbouncer_users", "Users known"),
    ("pools", "pgbouncer_pools", "Pools open"),
    ("free_clients", "pgbouncer_free_clients", "Cached client slots not in use"),
    ("used_clients", "pgbouncer_used_clients", "Clients logged in"),
    ("login_clients", "pgbouncer_login_clients", "Clients still logging in"),
    ("free_servers", "pgbouncer_free_servers", "Cached server slots not in use"),
    ("used_servers", "pgbouncer_used_servers", "Server connections open"),
    ("dns_names", "pgbouncer_cached_dns_names", "DNS names cached"),
    ("dns_zones", "pgbouncer_cached_dns_zones", "DNS zones cached"),
    ("dns_queries", "pgbouncer_in_flight_dns_queries", "DNS queries in flight"),
];

/// SHOW CONFIG keys the exporter reports: (key, metric, help).
#[rustfmt::skip]
pub const CONFIG: &[(&str, &str, &str)] = &[
    ("max_client_conn", "pgbouncer_config_max_client_connections", "Setting max_client_conn"),
    ("max_user_connections", "pgbouncer_config_max_user_connections", "Setting max_user_connections"),
];

/// Upper bounds of the latency histograms, in seconds: 50 µs to a minute.
#[rustfmt::skip]
pub const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Which of a pool's histograms a family reads.
#[derive(Debug, Clone, Copy)]
pub enum Latency {
    /// Query round trips (`query_latency`, summed in `query_time`).
    Query,
    /// Transactions (`xact_latency`, summed in `xact_time`).
    Transaction,
    /// Waits for a server (`wait_latency`, summed in `wait_time`).
    Wait,
}

/// Our histogram families: (name, help, source).
#[rustfmt::skip]
pub const HISTOGRAMS: &[(&str, &str, Latency)] = &[
    ("bouncectl_query_duration_seconds", "Query times (ReadyForQuery round trips) through the pooler", Latency::Query),
    ("bouncectl_transaction_duration_seconds", "Transaction times, from the first statement to the end of the transaction", Latency::Transaction),
    ("bouncectl_client_wait_seconds", "How long clients waited for a server connection", Latency::Wait),
];

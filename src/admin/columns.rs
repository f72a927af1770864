//! The column lists of every SHOW result: PgBouncer's names, order and wire types (reference §1b,
//! PgBouncer 1.25's `admin.c` and `stats.c`). The golden files in `tests/fixtures/show/` pin them.

use super::table::{Col, Columns};

use Col::{Int4, Int8, Numeric as N, Text, Time};

/// SHOW STATS (PgBouncer ≥ 1.24).
pub const STATS: Columns = &[
    ("database", Text),
    ("total_server_assignment_count", N),
    ("total_xact_count", N),
    ("total_query_count", N),
    ("total_received", N),
    ("total_sent", N),
    ("total_xact_time", N),
    ("total_query_time", N),
    ("total_wait_time", N),
    ("total_client_parse_count", N),
    ("total_server_parse_count", N),
    ("total_bind_count", N),
    ("total_client_login_count", N),
    ("avg_server_assignment_count", N),
    ("avg_xact_count", N),
    ("avg_query_count", N),
    ("avg_recv", N),
    ("avg_sent", N),
    ("avg_xact_time", N),
    ("avg_query_time", N),
    ("avg_wait_time", N),
    ("avg_client_parse_count", N),
    ("avg_server_parse_count", N),
    ("avg_bind_count", N),
    ("avg_client_login_count", N),
];

/// SHOW STATS_TOTALS.
pub const STATS_TOTALS: Columns = &[
    ("database", Text),
    ("server_assignment_count", N),
    ("xact_count", N),
    ("query_count", N),
    ("bytes_received", N),
    ("bytes_sent", N),
    ("xact_time", N),
    ("query_time", N),
    ("wait_time", N),
    ("client_parse_count", N),
    ("server_parse_count", N),
    ("bind_count", N),
    ("client_login_count", N),
];

/// SHOW STATS_AVERAGES (mixed prefixes, as PgBouncer).
pub const STATS_AVERAGES: Columns = &[
    ("database", Text),
    ("server_assignment_count", N),
    ("xact_count", N),
    ("query_count", N),
    ("bytes_received", N),
    ("bytes_sent", N),
    ("xact_time", N),
    ("query_time", N),
    ("wait_time", N),
    ("avg_client_parse_count", N),
    ("avg_server_parse_count", N),
    ("avg_bind_count", N),
    ("avg_client_login_count", N),
];

/// SHOW TOTALS.
pub const TOTALS: Columns = &[("name", Text), ("value", N)];

/// SHOW POOLS.
pub const POOLS: Columns = &[
    ("database", Text),
    ("user", Text),
    ("cl_active", Int4),
    ("cl_waiting", Int4),
    ("cl_active_cancel_req", Int4),
    ("cl_waiting_cancel_req", Int4),
    ("sv_active", Int4),
    ("sv_active_cancel", Int4),
    ("sv_being_canceled", Int4),
    ("sv_idle", Int4),
    ("sv_used", Int4),
    ("sv_tested", Int4),
    ("sv_login", Int4),
    ("maxwait", Int4),
    ("maxwait_us", Int4),
    ("pool_mode", Text),
    ("load_balance_hosts", Text),
];

/// SHOW DATABASES.
pub const DATABASES: Columns = &[
    ("name", Text),
    ("host", Text),
    ("port", Int4),
    ("database", Text),
    ("force_user", Text),
    ("pool_size", Int4),
    ("min_pool_size", Int4),
    ("reserve_pool_size", Int4),
    ("server_lifetime", Int4),
    ("pool_mode", Text),
    ("load_balance_hosts", Text),
    ("max_connections", Int4),
    ("current_connections", Int4),
    ("max_client_connections", Int4),
    ("current_client_connections", Int4),
    ("paused", Int4),
    ("disabled", Int4),
];

/// SHOW USERS.
pub const USERS: Columns = &[
    ("name", Text),
    ("pool_size", Text),
    ("reserve_pool_size", Text),
    ("pool_mode", Text),
    ("max_user_connections", Int4),
    ("current_connections", Int4),
    ("max_user_client_connections", Int4),
    ("current_client_connections", Int4),
];

/// SHOW CONFIG.
pub const CONFIG: Columns = &[
    ("key", Text),
    ("value", Text),
    ("default", Text),
    ("changeable", Text),
];

/// SHOW LISTS.
pub const LISTS: Columns = &[("list", Text), ("items", Int4)];

/// SHOW LATENCY (ours, additive): percentiles in microseconds per database.
pub const LATENCY: Columns = &[
    ("database", Text),
    ("query_count", Int8),
    ("query_p50_us", Int8),
    ("query_p95_us", Int8),
    ("query_p99_us", Int8),
    ("wait_count", Int8),
    ("wait_p50_us", Int8),
    ("wait_p95_us", Int8),
    ("wait_p99_us", Int8),
];

/// SHOW VERSION.
pub const VERSION: Columns = &[("version", Text)];

/// SHOW STATE.
pub const STATE: Columns = &[("key", Text), ("value", Text)];

/// SHOW MEM.
pub const MEM: Columns = &[
    ("name", Text),
    ("size", Int4),
    ("used", Int4),
    ("free", Int4),
    ("memtotal", Int4),
];

/// SHOW PEERS.
pub const PEERS: Columns = &[
    ("peer_id", Int4),
    ("host", Text),
    ("port", Int4),
    ("pool_size", Int4),
];

/// SHOW PEER_POOLS.
pub const PEER_POOLS: Columns = &[
    ("peer_id", Int4),
    ("cl_active_cancel_req", Int4),
    ("cl_waiting_cancel_req", Int4),
    ("sv_active_cancel", Int4),
    ("sv_login", Int4),
];

/// SHOW DNS_HOSTS.
pub const DNS_HOSTS: Columns = &[("hostname", Text), ("ttl", Int8), ("addrs", Text)];

/// SHOW DNS_ZONES.
pub const DNS_ZONES: Columns = &[("zonename", Text), ("serial", Int8), ("count", Int4)];

/// The 21 columns of SHOW CLIENTS/SERVERS, optionally followed by more (SHOW SOCKETS).
macro_rules! client_columns {
    ($($extra:expr),* $(,)?) => {
        &[
            ("type", Text),
            ("user", Text),
            ("database", Text),
            ("replication", Text),
            ("state", Text),
            ("addr", Text),
            ("port", Int4),
            ("local_addr", Text),
            ("local_port", Int4),
            ("connect_time", Time),
            ("request_time", Time),
            ("wait", Int4),
            ("wait_us", Int4),
            ("close_needed", Int4),
            ("ptr", Text),
            ("link", Text),
            ("remote_pid", Int4),
            ("tls", Text),
            ("application_name", Text),
            ("prepared_statements", Int4),
            ("id", Int4),
            $($extra,)*
        ]
    };
}

/// SHOW CLIENTS and SHOW SERVERS (PgBouncer ≥ 1.24).
pub const CLIENTS: Columns = client_columns!();

/// SHOW SOCKETS and ACTIVE_SOCKETS: CLIENTS' columns plus buffer positions.
pub const SOCKETS: Columns = client_columns!(
    ("recv_pos", Int4),
    ("pkt_pos", Int4),
    ("pkt_remain", Int4),
    ("send_pos", Int4),
    ("send_remain", Int4),
    ("pkt_avail", Int4),
    ("send_avail", Int4),
);

/// SHOW FDS (admin only).
pub const FDS: Columns = &[
    ("fd", Int4),
    ("task", Text),
    ("user", Text),
    ("database", Text),
    ("addr", Text),
    ("port", Int4),
    ("cancel", Int8),
    ("link", Int4),
    ("client_encoding", Text),
    ("std_strings", Text),
    ("datestyle", Text),
    ("timezone", Text),
    ("password", Text),
    ("scram_client_key", Col::Bytea),
    ("scram_server_key", Col::Bytea),
];

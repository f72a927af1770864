//! Item 4, and the app's URL for items 6 and 7: DATABASE_URL as Prisma reads it. Parameters that
//! tokio-postgres does not know (`pgbouncer`, `connection_limit`, `schema`, …) are set aside
//! before the rest is parsed, so the probes connect exactly where the app would.

use std::collections::BTreeMap;

use super::{Findings, Inputs, Outcome, Status};
use crate::cli::admin_client;
use crate::config::{Config, PoolMode};

/// The port PostgreSQL listens on unless told otherwise.
pub const POSTGRES_PORT: u16 = 5432;

/// URL parameters tokio-postgres understands; every other one is the app driver's (Prisma's).
const LIBPQ_PARAMS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// The app's connection string, split into what tokio-postgres connects with and the driver's
/// own parameters.
#[derive(Debug, Clone)]
pub struct AppUrl {
    /// Where and as whom to connect (password filled from `PGPASSWORD` or `~/.pgpass`).
    pub pg: tokio_postgres::Config,
    /// The driver's parameters (`pgbouncer`, `connection_limit`, …), percent-decoded.
    pub driver: BTreeMap<String, String>,
}

impl AppUrl {
    /// Parses a `postgres://` / `postgresql://` URL or a libpq key=value string.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (connect, driver) = split_driver_params(text);
        let pg = admin_client::config(&connect).map_err(|e| format!("{e:#}"))?;
        Ok(AppUrl { pg, driver })
    }

    /// The first host and port.
    pub fn host_and_port(&self) -> (String, u16) {
        admin_client::host_and_port(&self.pg)
    }
}

/// Splits the query string of a URL into the part tokio-postgres accepts and the rest.
pub fn split_driver_params(text: &str) -> (String, BTreeMap<String, String>) {
    let is_url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    let mut driver = BTreeMap::new();
    let Some((base, query)) = text.split_once('?').filter(|_| is_url) else {
        return (text.to_owned(), driver);
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if LIBPQ_PARAMS.contains(&key) {
            kept.push(pair);
        } else {
            driver.insert(percent_decode(key), percent_decode(value));
        }
    }
    let connect = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (connect, driver)
}

/// Decodes `%XX` escapes (and `+` as a space, as query strings have it); bad escapes stay.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs item 4 on the inputs.
pub fn check(inputs: &Inputs) -> Outcome {
    let Some(app) = &inputs.app else {
        return Outcome::skip("needs --database-url URL or DATABASE_URL");
    };
    let admin_port = inputs
        .admin
        .as_ref()
        .map(|c| admin_client::host_and_port(c).1);
    let pg_port = inputs.pg.as_ref().map(|c| admin_client::host_and_port(c).1);
    judge(app, inputs.config.config().ok(), admin_port, pg_port)
}

/// Judges the app's URL: the port is the pooler's, `pgbouncer=true` is set where pooling needs
/// it, and `connection_limit` fits the pool.
pub fn judge(
    app: &AppUrl,
    config: Option<&Config>,
    admin_port: Option<u16>,
    pg_port: Option<u16>,
) -> Outcome {
    let mut findings = Findings::default();
    let (_, port) = app.host_and_port();
    let listen_port = config.map(|c| c.pgbouncer.listen_port());
    if listen_port == Some(port) {
        findings.note(Status::Pass, format!("port {port} = listen_port"));
    } else if admin_port == Some(port) {
        findings.note(Status::Pass, format!("port {port} = the admin console's"));
    } else if port == POSTGRES_PORT || pg_port == Some(port) {
        findings.note(
            Status::Fail,
            format!("port {port} points at PostgreSQL directly, not at the pooler"),
        );
    } else if let Some(expected) = listen_port.or(admin_port) {
        findings.note(
            Status::Warn,
            format!("port {port} is not the pooler's ({expected})"),
        );
    } else {
        findings.note(
            Status::Pass,
            format!("port {port} (pooler port unknown: give --config or --admin-url)"),
        );
    }
    let user = app.pg.get_user().unwrap_or_default();
    let dbname = app.pg.get_dbname().unwrap_or(user);
    let session = config.is_some_and(|c| c.pool_mode_for(dbname, user) == PoolMode::Session);
    match app.driver.get("pgbouncer").map(String::as_str) {
        Some("true") => findings.note(Status::Pass, "pgbouncer=true"),
        _ if session => findings.note(
            Status::Pass,
            "pool_mode = session (pgbouncer=true optional)",
        ),
        other => findings.note(
            Status::Warn,
            format!(
                "{}: Prisma keeps prepared statements, which transaction pooling breaks",
                other.map_or("no pgbouncer=true".to_owned(), |v| format!("pgbouncer={v}"))
            ),
        ),
    }
    let pool_size = config.map(|c| c.pool_size_for(dbname, user));
    match app.driver.get("connection_limit") {
        None => findings.note(
            Status::Warn,
            "no connection_limit: Prisma opens 2 × CPUs + 1 connections per instance",
        ),
        Some(text) => match (text.parse::<u32>(), pool_size) {
            (Err(_), _) => findings.note(
                Status::Warn,
                format!("connection_limit={text} is not a number"),
            ),
            (Ok(limit), Some(size)) if limit > size => findings.note(
                Status::Warn,
                format!("connection_limit={limit} > pool_size {size}: queries queue in the pooler"),
            ),
            (Ok(limit), Some(size)) => findings.note(
                Status::Pass,
                format!("connection_limit={limit} ≤ pool_size {size}"),
            ),
            (Ok(limit), None) => findings.note(Status::Pass, format!("connection_limit={limit}")),
        },
    }
    findings.outcome()
}

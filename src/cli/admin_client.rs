//! Thin tokio-postgres wrapper for the commands that talk to a server (PostgreSQL or a pooler's
//! admin console): connect with a timeout, find the password as libpq does (URL, `PGPASSWORD`,
//! `~/.pgpass`), run SHOW over the simple-query protocol, and turn failures into one-line errors
//! that say what to fix.

use std::time::Duration;

use anyhow::Context as _;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;

/// How long a command waits for a server before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a command expects at the other end; it shapes the error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A pooler's admin console (`show`); the flag that names it.
    Console(&'static str),
    /// PostgreSQL itself (`leaks`, `hash --method psql`); the flag that names it.
    Postgres(&'static str),
}

/// The result of one SHOW: PgBouncer's column names, and each row's values as text (NULL = None).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShowResult {
    /// Column names in the server's order.
    pub columns: Vec<String>,
    /// Rows of text values, as the admin console sends them.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Parses `url` (libpq URL or key=value string) and fills in a missing password from
/// `PGPASSWORD` or the password file, as libpq would.
pub fn config(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| super::usage(format!("invalid connection string: {e}")))?;
    if config.get_password().is_none() {
        if let Some(pw) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
            config.password(pw.to_string_lossy().as_bytes());
        } else if let Some(pw) = password_file_entry(&config) {
            config.password(pw);
        }
    }
    Ok(config)
}

fn password_file_entry(config: &tokio_postgres::Config) -> Option<String> {
    let path = super::pgpass::default_path()?;
    let user = config.get_user()?;
    let (host, port) = host_and_port(config);
    let dbname = config.get_dbname().unwrap_or(user);
    super::pgpass::find(&path, &host, port, dbname, user)
}

/// Connects to `url` without TLS; the connection task is spawned.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    connect_to(url, Target::Postgres("--database-url")).await
}

/// Connects to `url` and explains a failure in terms of `target`.
pub async fn connect_to(url: &str, target: Target) -> anyhow::Result<tokio_postgres::Client> {
    connect_with(&config(url)?, target).await
}

/// Connects with a parsed [`config`] and explains a failure in terms of `target`.
pub async fn connect_with(
    config: &tokio_postgres::Config,
    target: Target,
) -> anyhow::Result<tokio_postgres::Client> {
    let attempt = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tokio_postgres::NoTls));
    let (client, connection) = attempt
        .await
        .map_err(|_| {
            super::usage(format!(
                "{}: no answer within {CONNECT_TIMEOUT:?}",
                describe(config)
            ))
        })?
        .map_err(|e| super::usage(explain(&e, config, target)))?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped; an error here was already seen by a query.
        let _ = connection.await;
    });
    Ok(client)
}

/// One line that says what to fix for a failed connection.
pub fn explain(
    err: &tokio_postgres::Error,
    config: &tokio_postgres::Config,
    target: Target,
) -> String {
    let (host, port) = host_and_port(config);
    let user = config.get_user().unwrap_or("?");
    let (what, flag) = match target {
        Target::Console(flag) => ("the pooler", flag),
        Target::Postgres(flag) => ("PostgreSQL", flag),
    };
    if is_refused(err) {
        return format!("nothing listens on {host}:{port} — is {what} running? ({flag})");
    }
    let text = pg_error_text(err);
    if text.contains("password missing") {
        return format!(
            "{host}:{port} asks for {user}'s password: put it in {flag}, PGPASSWORD or ~/.pgpass"
        );
    }
    let Some(db) = err.as_db_error() else {
        return format!("{}: {text}", describe(config));
    };
    // PgBouncer reports a wrong password with SQLSTATE 08P01, PostgreSQL with 28P01.
    let auth_failed = matches!(
        *db.code(),
        SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    ) || db.message().contains("password authentication failed");
    match target {
        Target::Console(_) if db.message().contains("not allowed") => {
            format!(
                "{user} is not an admin/stats user of the pooler (admin_users / stats_users in pgbouncer.ini)"
            )
        }
        Target::Console(_) if auth_failed => format!(
            "{user} is not an admin/stats user of the pooler (admin_users / stats_users in pgbouncer.ini), \
             or the password is wrong ({flag}, PGPASSWORD, ~/.pgpass): {text}"
        ),
        Target::Console(_) if *db.code() == SqlState::INVALID_CATALOG_NAME => {
            not_a_pooler(&host, port)
        }
        Target::Postgres(_) if auth_failed => format!(
            "{user} cannot log in to {host}:{port} — check the password ({flag}, PGPASSWORD, ~/.pgpass) and pg_hba.conf: {text}"
        ),
        _ => format!("{}: {text}", describe(config)),
    }
}

fn not_a_pooler(host: &str, port: u16) -> String {
    format!(
        "{host}:{port} is PostgreSQL, not a pooler's admin console (use dbname=pgbouncer on the pooler port)"
    )
}

/// True when the error chain ends in a refused TCP connection (nothing listens there).
pub fn is_refused(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// Runs `SHOW <what>` on an admin console (simple protocol only) and collects its rows as text.
/// PostgreSQL answers SHOW of an unknown name with SQLSTATE 42704: then the target is no pooler.
pub async fn show(
    client: &tokio_postgres::Client,
    config: &tokio_postgres::Config,
    what: &str,
) -> anyhow::Result<ShowResult> {
    let sql = format!("SHOW {what}");
    let messages = client.simple_query(&sql).await.map_err(|e| {
        let (host, port) = host_and_port(config);
        match e.as_db_error() {
            Some(db) if *db.code() == SqlState::UNDEFINED_OBJECT => {
                super::usage(not_a_pooler(&host, port))
            }
            _ if e.is_closed() => super::usage(format!(
                "{host}:{port} closed the connection during {sql}: {}",
                pg_error_text(&e)
            )),
            _ => super::usage(format!("{sql} on {host}:{port}: {}", pg_error_text(&e))),
        }
    })?;
    let mut result = ShowResult::default();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                result.columns = columns.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if result.columns.is_empty() {
                    result.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                result.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(result)
}

/// Runs `sql` with bound text parameters and returns the first column of the first row.
pub async fn query_text(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&str],
) -> anyhow::Result<String> {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let row = client
        .query_one(sql, &params)
        .await
        .map_err(|e| anyhow::anyhow!(pg_error_text(&e)))
        .with_context(|| format!("query failed: {sql}"))?;
    row.try_get::<_, String>(0)
        .map_err(|e| anyhow::anyhow!("unexpected result of {sql}: {e}"))
}

/// The first host (a unix socket directory shown as its path) and port of a config.
pub fn host_and_port(config: &tokio_postgres::Config) -> (String, u16) {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// `user@host:port/dbname` of a config, without its password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let (host, port) = host_and_port(config);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// The server's message (with SQLSTATE) when there is one, else the client library's.
pub fn pg_error_text(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

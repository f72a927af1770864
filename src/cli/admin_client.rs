//! Thin tokio-postgres wrapper for the commands that talk to a server (PostgreSQL or a pooler's
//! admin console): connect with a timeout and an error message that names the target.

use std::time::Duration;

use anyhow::Context as _;

/// How long a command waits for a server before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `url` (libpq URL or key=value string) without TLS; the connection task is spawned.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| super::usage(format!("invalid connection string: {e}")))?;
    let target = describe(&config);
    let attempt = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tokio_postgres::NoTls));
    let (client, connection) = attempt
        .await
        .map_err(|_| super::usage(format!("{target}: no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| super::usage(format!("{target}: {}", pg_error_text(&e))))?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped; an error here was already seen by a query.
        let _ = connection.await;
    });
    Ok(client)
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

/// `user@host:port/dbname` of a config, without its password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
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

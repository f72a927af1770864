//! Shared test support: throwaway PostgreSQL clusters, the built binary, polling helpers.
#![allow(dead_code)]

pub mod binary;
pub mod bouncer;
pub mod certs;
pub mod client;
pub mod pgbouncer;
pub mod postgres;
pub mod relay;
pub mod wire;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use certs::TestCerts;
pub use pgbouncer::TempPgbouncer;
pub use postgres::TempPostgres;

/// The `bouncectl` binary cargo built for these tests, or the one `BOUNCECTL_BIN` names
/// (`.ci/release` runs its training workload on an instrumented build that way).
pub fn bin() -> PathBuf {
    std::env::var_os("BOUNCECTL_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_bouncectl")),
        PathBuf::from,
    )
}

/// Runs `bouncectl ARGS` with `stdin` fed in, the environment cleared of libpq variables.
pub fn bouncectl(args: &[&str], stdin: &str) -> Output {
    bouncectl_env(args, stdin, &[])
}

/// Like [`bouncectl`], then sets the variables in `env` (e.g. `PGPASSWORD`, `PGPASSFILE`).
pub fn bouncectl_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    use std::io::Write as _;
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env_remove("BOUNCECTL_ADMIN_URL")
        .env_remove("COLUMNS")
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot run bouncectl");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// stdout of an Output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr of an Output as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// PostgreSQL's sessions of `users`, as the superuser session `su` sees them.
pub async fn sessions_of(su: &tokio_postgres::Client, users: &[&str]) -> i64 {
    su.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = ANY($1)",
        &[&users],
    )
    .await
    .unwrap()
    .get(0)
}

/// Connects tokio-postgres without TLS and drives the connection in the background.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A rustls client config over `provider` trusting the CA certificates in `ca` (host names are
/// checked: verify-full).
pub fn rustls_trusting(
    ca: &std::path::Path,
    provider: rustls::crypto::CryptoProvider,
) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Connects tokio-postgres over rustls with `config` and drives the connection in the
/// background.
pub async fn connect_rustls(
    url: &str,
    config: rustls::ClientConfig,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    let (client, connection) = tokio_postgres::connect(url, tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Polls `probe` until it returns true or `timeout` passes; returns whether it did.
#[must_use = "false means the probe never held: assert it"]
pub fn wait_until(timeout: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// As [`wait_until`], for async tests: yields to the runtime (which may run the pooler) while
/// polling.
#[must_use = "false means the probe never held: assert it"]
pub async fn eventually(timeout: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first column of every row of a simple query's result.
pub fn rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_owned()),
            _ => None,
        })
        .collect()
}

/// True when `SELECT 1` works on `client`.
pub async fn select_one(client: &tokio_postgres::Client) -> bool {
    client
        .simple_query("SELECT 1")
        .await
        .is_ok_and(|m| rows(&m) == ["1"])
}

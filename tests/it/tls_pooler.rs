//! TLS through the running pooler: psql (libpq, OpenSSL) and tokio-postgres (rustls) as TLS
//! clients of bouncectl, bouncectl as a TLS client of a PostgreSQL that admits [`SSL_USER`] only
//! over TLS, `SSL required` for plaintext, `auth_type = cert`, PostgreSQL 17 direct TLS, and a
//! certificate rotated by a reload while a client stays connected.

use std::path::Path;

use bouncectl::cli::serve::reload;
use rustls::ClientConfig;

use crate::support::bouncer::TestBouncer;
use crate::support::certs::CLIENT_CN;
use crate::support::postgres::{MD5_USER, PASSWORD, SSL_USER, TRUST_USER};
use crate::support::{self, TempPostgres, TestCerts};

/// `[pgbouncer]` lines for TLS toward clients with `certs`' server certificate.
fn client_tls(mode: &str, certs: &TestCerts) -> String {
    format!(
        "client_tls_sslmode = {mode}\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n\
         client_tls_ca_file = {}\n",
        certs.server_cert.display(),
        certs.server_key.display(),
        certs.ca.display()
    )
}

/// `[pgbouncer]` lines for TLS toward PostgreSQL, trusting `ca`.
fn server_tls(mode: &str, ca: &Path) -> String {
    format!(
        "server_tls_sslmode = {mode}\nserver_tls_ca_file = {}\n",
        ca.display()
    )
}

/// A rustls client config trusting `ca` (host names are checked: verify-full).
fn rustls_client(ca: &Path) -> ClientConfig {
    support::rustls_trusting(ca, rustls::crypto::ring::default_provider())
}

/// tokio-postgres over rustls through the pooler; `extra` adds e.g. `sslnegotiation=direct`.
async fn connect_tls(
    bouncer: &TestBouncer,
    user: &str,
    ca: &Path,
    extra: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = rustls_client(ca);
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    let url = format!(
        "host=localhost port={} user={user} password={PASSWORD} dbname=postgres sslmode=require {extra}",
        bouncer.port
    );
    support::connect_rustls(&url, config).await
}

/// Runs psql against the pooler with `conninfo` added; returns (ok, stdout, stderr).
async fn psql(bouncer: &TestBouncer, conninfo: String, sql: &str) -> (bool, String, String) {
    let port = bouncer.port;
    let sql = sql.to_owned();
    tokio::task::spawn_blocking(move || {
        let psql = support::postgres::bindir().unwrap().join("psql");
        let out = std::process::Command::new(psql)
            .args(["-X", "-w", "-tA", "-c", &sql])
            .arg(format!("port={port} dbname=postgres {conninfo}"))
            .env("PGPASSWORD", PASSWORD)
            .env_remove("PGSSLMODE")
            .env_remove("PGSSLROOTCERT")
            .output()
            .unwrap();
        (
            out.status.success(),
            support::stdout(&out).trim().to_owned(),
            support::stderr(&out),
        )
    })
    .await
    .unwrap()
}

/// What PostgreSQL says about the pooler's connection: "t TLSv1.3".
const SERVER_SSL: &str = "SELECT ssl::text || ' ' || coalesce(version, '') FROM pg_stat_ssl \
                          WHERE pid = pg_backend_pid()";

#[tokio::test]
async fn psql_and_tokio_postgres_over_tls_to_a_tls_only_server() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    let settings = client_tls("require", &certs) + &server_tls("verify-full", &certs.ca);
    let bouncer = TestBouncer::start(&pg, &settings).await;

    let ca = certs.ca.display();
    let conninfo = format!("host=localhost user={SSL_USER} sslmode=verify-full sslrootcert={ca}");
    let (ok, out, err) = psql(&bouncer, conninfo, SERVER_SSL).await;
    assert!(ok, "{err}");
    assert_eq!(out, "true TLSv1.3");
    let (ok, out, err) = psql(
        &bouncer,
        format!("host=localhost user={SSL_USER} sslmode=require"),
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "t");

    let client = connect_tls(&bouncer, SSL_USER, &certs.ca, "")
        .await
        .unwrap();
    let row = client.query_one(SERVER_SSL, &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "true TLSv1.3");

    // The pooler's certificate from another CA, or for another name, is refused by the client.
    let other = certs.other_ca.display();
    let conninfo =
        format!("host=localhost user={SSL_USER} sslmode=verify-full sslrootcert={other}");
    let (ok, _, err) = psql(&bouncer, conninfo, "SELECT 1").await;
    assert!(!ok);
    assert!(err.contains("certificate verify failed"), "{err}");
    let conninfo = format!(
        "host=db.internal hostaddr=127.0.0.1 user={SSL_USER} sslmode=verify-full sslrootcert={ca}"
    );
    let (ok, _, err) = psql(&bouncer, conninfo, "SELECT 1").await;
    assert!(!ok);
    assert!(err.contains("does not match host name"), "{err}");
    let e = connect_tls(&bouncer, SSL_USER, &certs.other_ca, "")
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");

    // Plaintext is refused with PgBouncer's message.
    let (ok, _, err) = psql(
        &bouncer,
        format!("host=localhost user={MD5_USER} sslmode=disable"),
        "SELECT 1",
    )
    .await;
    assert!(!ok);
    assert!(err.contains("SSL required"), "{err}");
    let e = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!((db.message(), db.code().code()), ("SSL required", "08P01"));
}

#[tokio::test]
async fn the_pooler_verifies_the_server_certificate() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    for (mode, ca) in [
        ("require", &certs.other_ca),
        ("verify-ca", &certs.ca),
        ("verify-full", &certs.ca),
    ] {
        let bouncer = TestBouncer::start(&pg, &server_tls(mode, ca)).await;
        let client = support::connect(&bouncer.url(SSL_USER, "postgres"))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let row = client.query_one(SERVER_SSL, &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "true TLSv1.3", "{mode}");
    }
    for mode in ["verify-ca", "verify-full"] {
        let bouncer = TestBouncer::start(&pg, &server_tls(mode, &certs.other_ca)).await;
        let e = support::connect(&bouncer.url(SSL_USER, "postgres"))
            .await
            .unwrap_err();
        let db = e.as_db_error().unwrap_or_else(|| panic!("{mode}: {e:?}"));
        assert!(
            db.message().starts_with("server TLS failed"),
            "{mode}: {db:?}"
        );
        assert!(db.message().contains("UnknownIssuer"), "{mode}: {db:?}");
    }
}

#[tokio::test]
async fn require_toward_a_server_without_tls_is_refused() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, &server_tls("require", &certs.ca)).await;
    let e = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert!(
        db.message().contains("server does not support SSL"),
        "{db:?}"
    );
    // prefer (the default) goes on in plaintext.
    let bouncer = TestBouncer::start(&pg, "").await;
    support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
}

/// libpq's options for a verify-full TLS login with the test client certificate, whose key is
/// made private first (libpq refuses a key that others can read).
fn with_client_cert(certs: &TestCerts) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&certs.client_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "host=localhost sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        certs.ca.display(),
        certs.client_cert.display(),
        certs.client_key.display()
    )
}

#[tokio::test]
async fn cert_auth_maps_the_certificate_cn_to_the_user() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let settings = format!(
        "{}auth_type = cert\n[databases]\ncertdb = host=127.0.0.1 port={} dbname=postgres user={TRUST_USER}\n",
        client_tls("require", &certs),
        pg.port()
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;
    let cert = with_client_cert(&certs);
    let run = |user: &str, tls: &str| {
        // libpq takes the last dbname given.
        let conninfo = format!("user={user} {tls} dbname=certdb");
        psql(&bouncer, conninfo, "SELECT current_user")
    };
    let (ok, out, err) = run(CLIENT_CN, &cert).await;
    assert!(ok, "{err}");
    assert_eq!(out, TRUST_USER);
    let (ok, _, err) = run(MD5_USER, &cert).await;
    assert!(!ok);
    assert!(err.contains("certificate authentication failed"), "{err}");
    let no_cert = "host=localhost sslmode=require sslcert=/nonexistent sslkey=/nonexistent";
    let (ok, _, err) = run(CLIENT_CN, no_cert).await;
    assert!(!ok);
    assert!(err.contains("certificate authentication failed"), "{err}");
}

#[tokio::test]
async fn an_hba_cert_rule_with_a_map_takes_the_users_auth_ident_file_gives_the_cn() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (hba, ident) = (dir.path().join("hba.conf"), dir.path().join("ident.conf"));
    std::fs::write(&hba, "hostssl all all 127.0.0.1/32 cert map=certs\n").unwrap();
    std::fs::write(&ident, format!("certs {CLIENT_CN} {MD5_USER}\n")).unwrap();
    let settings = format!(
        "{}auth_type = hba\nauth_hba_file = {}\nauth_ident_file = {}\n",
        client_tls("require", &certs),
        hba.display(),
        ident.display()
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;
    let cert = with_client_cert(&certs);
    let run = |user: &str| {
        let conninfo = format!("{cert} dbname=postgres user={user}");
        psql(&bouncer, conninfo, "SELECT current_user")
    };
    // The CN is not the user, and no password is asked: the map vouches for it.
    let (ok, out, err) = run(MD5_USER).await;
    assert!(ok, "{err}");
    assert_eq!(out, MD5_USER);
    // The map gives this CN no other user, not even its own name.
    for user in [TRUST_USER, CLIENT_CN] {
        let (ok, _, err) = run(user).await;
        assert!(!ok, "{user} got in");
        assert!(err.contains("certificate authentication failed"), "{err}");
    }
}

#[tokio::test]
async fn direct_tls_from_a_postgresql_17_style_client() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, &client_tls("require", &certs)).await;
    let client = connect_tls(&bouncer, MD5_USER, &certs.ca, "sslnegotiation=direct")
        .await
        .unwrap();
    let row = client.query_one("SELECT 41 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

/// `client_login_timeout` counts from the accept over a direct TLS handshake too: a client that
/// waits before its ClientHello and then sends no startup packet has no fresh timeout after TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_login_timeout_spans_a_direct_tls_handshake() {
    use tokio::io::AsyncReadExt as _;

    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Accepted at once, not when the first byte comes (`tcp_defer_accept`), so the login's time
    // starts with the connect.
    let settings = format!(
        "{}client_login_timeout = 3\ntcp_defer_accept = 0\n",
        client_tls("require", &certs)
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;
    let started = std::time::Instant::now();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", bouncer.port))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut config = rustls_client(&certs.ca);
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    // No startup packet: the pooler hangs up once the login's time, counted from the accept, is
    // up (its sweep runs once a second). A fresh 3 s after TLS would end it 5.5 s in at least.
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(2500)
            && took < std::time::Duration::from_millis(5000),
        "a silent direct TLS login lived {took:?} under client_login_timeout = 3"
    );
}

#[tokio::test]
async fn a_reload_rotates_the_certificate_and_keeps_clients() {
    let certs = TestCerts::generate();
    let rotated = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, &client_tls("require", &certs)).await;
    let old = connect_tls(&bouncer, MD5_USER, &certs.ca, "")
        .await
        .unwrap();
    std::fs::copy(&rotated.server_cert, &certs.server_cert).unwrap();
    std::fs::copy(&rotated.server_key, &certs.server_key).unwrap();
    reload(bouncer.shared(), Some(&bouncer.ini));

    let new = connect_tls(&bouncer, MD5_USER, &rotated.ca, "")
        .await
        .unwrap();
    assert!(
        connect_tls(&bouncer, MD5_USER, &certs.ca, "")
            .await
            .is_err()
    );
    for client in [&old, &new] {
        let row = client.query_one("SELECT 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
    }

    // A broken certificate file: the reload keeps the rotated certificate serving.
    std::fs::write(&certs.server_cert, "not a certificate").unwrap();
    reload(bouncer.shared(), Some(&bouncer.ini));
    let after = connect_tls(&bouncer, MD5_USER, &rotated.ca, "")
        .await
        .unwrap();
    after.query_one("SELECT 1", &[]).await.unwrap();
    old.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test]
async fn a_cancel_reaches_a_tls_only_server() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, &server_tls("verify-full", &certs.ca)).await;
    let client = support::connect(&bouncer.url(SSL_USER, "postgres"))
        .await
        .unwrap();
    let token = client.cancel_token();
    let sleeping = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    // Polled with a deadline, straight on PostgreSQL.
    let watcher = support::connect(&pg.superuser_url()).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'";
    while watcher.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the query never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let e = sleeping.await.unwrap().unwrap_err();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(db.code().code(), "57014", "{db:?}");
}

#[tokio::test]
async fn unix_socket_clients_are_not_required_to_use_tls() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let socket_dir = tempfile::tempdir().unwrap();
    let settings = format!(
        "{}unix_socket_dir = {}\n",
        client_tls("require", &certs),
        socket_dir.path().display()
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;
    let unix = format!("host={} user={MD5_USER}", socket_dir.path().display());
    let (ok, out, err) = psql(&bouncer, unix, "SELECT 1").await;
    assert!(ok, "{err}");
    assert_eq!(out, "1");
}

/// A TLS client that reads slower than the server sends still gets the whole result: records
/// rustls holds when the client's socket is full go out without waiting for more traffic.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_tls_client_gets_a_large_result_whole() {
    use futures_util::StreamExt as _;

    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, &client_tls("require", &certs)).await;
    let client = connect_tls(&bouncer, MD5_USER, &certs.ca, "")
        .await
        .unwrap();
    const ROWS: usize = 20_000;
    let sql = format!("COPY (SELECT repeat('x', 999) FROM generate_series(1, {ROWS})) TO STDOUT");
    let copy = client.copy_out(sql.as_str()).await.unwrap();
    let read = async {
        let mut copy = std::pin::pin!(copy);
        let (mut bytes, mut chunks) = (0, 0);
        while let Some(chunk) = copy.next().await {
            bytes += chunk.unwrap().len();
            chunks += 1;
            // Slow enough that the pooler's writes to this socket fill it.
            if chunks % 50 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        bytes
    };
    let bytes = tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("the result stalled in the pooler");
    assert_eq!(bytes, ROWS * 1000);
    // And the connection still serves the next query.
    let row = client.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

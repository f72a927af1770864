//! `client_tls_ciphers`, `client_tls13_ciphers` and `server_tls_ciphers` through the running
//! pooler: what a client may negotiate (tokio-postgres over rustls, offering chosen suites), and
//! what PostgreSQL reports the pooler negotiated with it (`pg_stat_ssl.cipher`).

use std::path::Path;

use rustls::CipherSuite;

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::client::RawClient;
use crate::support::postgres::{PASSWORD, SSL_USER};
use crate::support::{self, TempPostgres, TestCerts};

/// `[pgbouncer]` lines for TLS toward clients (`prefer`: the admin console below is plaintext)
/// and PostgreSQL, both with `certs`.
fn tls_both(certs: &TestCerts) -> String {
    format!(
        "client_tls_sslmode = prefer\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n\
         server_tls_sslmode = verify-full\nserver_tls_ca_file = {}\n",
        certs.server_cert.display(),
        certs.server_key.display(),
        certs.ca.display()
    )
}

/// tokio-postgres through the pooler over TLS, offering only `suites` (all of rustls' when
/// empty).
async fn connect_offering(
    bouncer: &TestBouncer,
    ca: &Path,
    suites: &[CipherSuite],
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        provider
            .cipher_suites
            .retain(|s| suites.contains(&s.suite()));
    }
    let config = support::rustls_trusting(ca, provider);
    let url = format!(
        "host=localhost port={} user={SSL_USER} password={PASSWORD} dbname=postgres sslmode=require",
        bouncer.port
    );
    support::connect_rustls(&url, config).await
}

/// A client offering only `suites` shares none with the pooler: the handshake fails.
async fn assert_refused(bouncer: &TestBouncer, ca: &Path, suites: &[CipherSuite]) {
    let e = connect_offering(bouncer, ca, suites).await.unwrap_err();
    assert!(format!("{e:?}").contains("HandshakeFailure"), "{e:?}");
}

/// The `tls` column of SHOW CLIENTS for the clients that use TLS.
async fn client_tls_column(bouncer: &TestBouncer) -> Vec<String> {
    let mut console = bouncer.console(ADMIN_USER).await;
    let clients = console.query("SHOW CLIENTS").await;
    RawClient::column(&clients, "tls")
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn tls_ciphers_limit_what_clients_and_servers_negotiate() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    let settings = format!(
        "{}client_tls_protocols = tlsv1.2\nclient_tls_ciphers = HIGH+AES256:!aRSA\n\
         server_tls_protocols = tlsv1.2\nserver_tls_ciphers = ECDHE-ECDSA-AES128-GCM-SHA256\n",
        tls_both(&certs)
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;

    // Offering only what the list excludes: no suite in common.
    assert_refused(
        &bouncer,
        &certs.ca,
        &[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
    )
    .await;

    // Offering everything: the one suite allowed is chosen.
    let client = connect_offering(&bouncer, &certs.ca, &[]).await.unwrap();
    let row = client
        .query_one(
            "SELECT cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "server_tls_ciphers, as PostgreSQL saw it"
    );
    assert_eq!(
        client_tls_column(&bouncer).await,
        ["TLSv1.2/ECDHE-ECDSA-AES256-GCM-SHA384/ECDH=X25519"]
    );
}

#[tokio::test]
async fn client_tls13_ciphers_limit_tls13_suites() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    let settings = format!(
        "{}client_tls13_ciphers = TLS_CHACHA20_POLY1305_SHA256\n",
        tls_both(&certs)
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;
    assert_refused(
        &bouncer,
        &certs.ca,
        &[CipherSuite::TLS13_AES_256_GCM_SHA384],
    )
    .await;
    let _client = connect_offering(&bouncer, &certs.ca, &[]).await.unwrap();
    assert_eq!(
        client_tls_column(&bouncer).await,
        ["TLSv1.3/TLS_CHACHA20_POLY1305_SHA256/ECDH=X25519"]
    );
}

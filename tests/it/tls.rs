//! `bouncectl::tls` against a real PostgreSQL with `ssl = on`: the SSLRequest negotiation and
//! handshake of [`connect_server_tls`] under each `server_tls_sslmode`, then a raw SCRAM login of
//! a role pg_hba.conf admits only over TLS, and what the server says about the connection.
//! And the other direction: psql (libpq, OpenSSL) as a client of [`accept_client_tls`].

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use bouncectl::auth::scram::{ClientCredential, MECHANISM, ScramClient};
use bouncectl::config::{Config, NoEnv};
use bouncectl::conn::Conn;
use bouncectl::protocol::backend::authentication::Authentication;
use bouncectl::protocol::backend::results::DataRow;
use bouncectl::protocol::backend::{Severity, error_response};
use bouncectl::protocol::frontend::{query, sasl_initial_response, sasl_response};
use bouncectl::protocol::startup::{PROTOCOL_3_0, Startup, startup_message};
use bouncectl::protocol::{Frame, tag::backend as tag};
use bouncectl::tls::{
    ClientStream, MaybeTls, TlsError, TlsSettings, accept_client_tls, client_cert_common_name,
    describe, stream_for_handshake,
};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};

use crate::support::certs::CLIENT_CN;
use crate::support::postgres::{PASSWORD, SSL_USER, TRUST_USER};
use crate::support::{self, TempPostgres, TestCerts};

type ServerConn = Conn<MaybeTls<TcpStream>>;

/// Our side's settings for `server_tls_sslmode = mode`, trusting `ca`.
fn settings(mode: &str, ca: &Path) -> TlsSettings {
    let text = format!(
        "[pgbouncer]\nauth_type = passthrough\nserver_tls_sslmode = {mode}\nserver_tls_ca_file = {}\n",
        ca.display()
    );
    let config = Config::parse_str(&text, "tls.ini", &NoEnv).unwrap();
    TlsSettings::from_config(&config).unwrap()
}

async fn connect(
    pg: &TempPostgres,
    host: &str,
    mode: &str,
    ca: &Path,
) -> Result<ServerConn, TlsError> {
    let tcp = TcpStream::connect(("127.0.0.1", pg.port())).await.unwrap();
    let stream = settings(mode, ca).connect_server(tcp, host).await?;
    Ok(Conn::new(stream))
}

async fn send_startup(conn: &mut ServerConn, user: &str) -> Frame {
    let params = [("user", user), ("database", "postgres")];
    startup_message(conn.write_buf_mut(), PROTOCOL_3_0, params).unwrap();
    conn.flush().await.unwrap();
    conn.read_frame().await.unwrap().unwrap()
}

async fn next(conn: &mut ServerConn) -> Frame {
    conn.read_frame()
        .await
        .unwrap()
        .expect("server closed the connection")
}

/// A SCRAM login answering `first` (the reply to the StartupMessage), up to ReadyForQuery.
async fn scram_login(conn: &mut ServerConn, first: Frame) {
    assert_eq!(first.tag, tag::AUTHENTICATION, "{first:?}");
    assert!(matches!(
        Authentication::parse(&first.body).unwrap(),
        Authentication::Sasl(_)
    ));
    let mut scram = ScramClient::new(ClientCredential::Password(PASSWORD.to_owned())).unwrap();
    sasl_initial_response(conn.write_buf_mut(), MECHANISM, Some(&scram.client_first())).unwrap();
    conn.flush().await.unwrap();
    let frame = next(conn).await;
    let Authentication::SaslContinue(server_first) = Authentication::parse(&frame.body).unwrap()
    else {
        panic!("expected SASLContinue, got {frame:?}");
    };
    let client_final = scram.handle_server_first(server_first).unwrap();
    sasl_response(conn.write_buf_mut(), &client_final).unwrap();
    conn.flush().await.unwrap();
    let frame = next(conn).await;
    let Authentication::SaslFinal(server_final) = Authentication::parse(&frame.body).unwrap()
    else {
        panic!("expected SASLFinal, got {frame:?}");
    };
    scram.verify_server_final(server_final).unwrap();
    wait_for_ready(conn).await;
}

/// Reads up to ReadyForQuery; returns the first column of every DataRow seen.
async fn wait_for_ready(conn: &mut ServerConn) -> Vec<String> {
    let mut values = Vec::new();
    loop {
        let frame = next(conn).await;
        match frame.tag {
            tag::READY_FOR_QUERY => return values,
            tag::ERROR_RESPONSE => panic!("server error: {:?}", frame.body),
            tag::DATA_ROW => {
                let row = DataRow::parse(&frame.body).unwrap();
                let value = row.values().next().unwrap().unwrap();
                values.push(String::from_utf8(value.to_vec()).unwrap());
            }
            _ => {}
        }
    }
}

/// What pg_stat_ssl says about this very connection: "true TLSv1.3".
async fn server_view_of_ssl(conn: &mut ServerConn) -> String {
    let sql = "SELECT ssl::text || ' ' || coalesce(version, '') FROM pg_stat_ssl \
               WHERE pid = pg_backend_pid()";
    query(conn.write_buf_mut(), sql).unwrap();
    conn.flush().await.unwrap();
    wait_for_ready(conn).await.join(",")
}

#[tokio::test]
async fn the_tls_only_role_logs_in_under_require_verify_ca_and_verify_full() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    let cases = [
        ("require", &certs.other_ca, "127.0.0.1"),
        ("verify-ca", &certs.ca, "db.internal"),
        ("verify-full", &certs.ca, "localhost"),
        ("verify-full", &certs.ca, "127.0.0.1"),
    ];
    for (mode, ca, host) in cases {
        let mut conn = connect(&pg, host, mode, ca).await.unwrap();
        let described = describe(conn.get_ref()).unwrap();
        assert!(described.starts_with("TLSv1.3/TLS_"), "{mode}: {described}");
        let first = send_startup(&mut conn, SSL_USER).await;
        scram_login(&mut conn, first).await;
        assert_eq!(
            server_view_of_ssl(&mut conn).await,
            "true TLSv1.3",
            "{mode}"
        );
    }
}

#[tokio::test]
async fn wrong_ca_wrong_host_and_plaintext_are_refused() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    for mode in ["verify-ca", "verify-full"] {
        let Err(e) = connect(&pg, "localhost", mode, &certs.other_ca).await else {
            panic!("{mode} accepted a certificate from another CA");
        };
        let text = e.to_string();
        assert!(text.starts_with("TLS handshake with server"), "{text}");
        assert!(text.contains("UnknownIssuer"), "{text}");
    }
    let Err(e) = connect(&pg, "db.internal", "verify-full", &certs.ca).await else {
        panic!("verify-full accepted a certificate for another name");
    };
    assert!(e.to_string().contains("not valid for name"), "{e}");

    let mut plain = connect(&pg, "localhost", "disable", &certs.ca)
        .await
        .unwrap();
    assert!(!plain.get_ref().is_tls());
    let refused = send_startup(&mut plain, SSL_USER).await;
    assert_eq!(refused.tag, tag::ERROR_RESPONSE);
    let text = String::from_utf8_lossy(&refused.body);
    assert!(text.contains("rejects connection"), "{text}");
}

#[tokio::test]
async fn a_server_without_tls_answers_n() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let Err(e) = connect(&pg, "localhost", "require", &certs.ca).await else {
        panic!("require went on without TLS");
    };
    assert!(matches!(e, TlsError::ServerRefusedTls), "{e}");

    let mut conn = connect(&pg, "localhost", "prefer", &certs.ca)
        .await
        .unwrap();
    assert!(!conn.get_ref().is_tls());
    let first = send_startup(&mut conn, TRUST_USER).await;
    assert_eq!(
        Authentication::parse(&first.body).unwrap(),
        Authentication::Ok
    );
    wait_for_ready(&mut conn).await;
    assert_eq!(server_view_of_ssl(&mut conn).await, "false ");
}

/// A one-connection stand-in for the proxy's handshake: answers `S` to the SSLRequest, runs
/// [`accept_client_tls`], then refuses the login with a FATAL naming the client certificate's
/// CN and the TLS version and cipher, which psql prints.
async fn accept_one(listener: TcpListener, config: Arc<ServerConfig>) -> Result<(), TlsError> {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut conn = Conn::new(tcp);
    assert_eq!(
        conn.read_startup().await.unwrap(),
        Some(Startup::SslRequest)
    );
    conn.write_raw(b"S");
    conn.flush().await.unwrap();
    let tls = accept_client_tls(stream_for_handshake(conn.into_parts())?, &config).await?;
    let mut conn = Conn::new(ClientStream::from(tls));
    let Some(Startup::StartupMessage(startup)) = conn.read_startup().await.unwrap() else {
        panic!("no StartupMessage after the handshake");
    };
    let stream = conn.get_ref();
    let message = format!(
        "user={} cn={} tls={}",
        startup.user().unwrap_or(""),
        client_cert_common_name(stream).unwrap_or_default(),
        describe(stream).unwrap_or_default()
    );
    error_response(conn.write_buf_mut(), Severity::Fatal, "28000", message).unwrap();
    conn.flush().await.unwrap();
    Ok(())
}

/// Runs psql (libpq with OpenSSL: a TLS stack that is not ours) against `port`.
fn psql(port: u16, tls: &str) -> String {
    let psql = support::postgres::bindir().unwrap().join("psql");
    let out = std::process::Command::new(psql)
        .args(["-X", "-w", "-c", "SELECT 1"])
        .arg(format!(
            "host=localhost port={port} user={CLIENT_CN} dbname=db {tls}"
        ))
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLCERT")
        .env_remove("PGSSLKEY")
        .env_remove("PGSSLROOTCERT")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn psql_verifies_our_certificate_and_we_read_its_cn() {
    if support::postgres::bindir().is_err() {
        eprintln!("SKIPPED: no psql");
        return;
    }
    let certs = TestCerts::generate();
    // libpq refuses a client key that others can read.
    std::fs::set_permissions(&certs.client_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[pgbouncer]\nauth_type = passthrough\nclient_tls_sslmode = verify-full\n\
         client_tls_ca_file = {}\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n",
        certs.ca.display(),
        certs.server_cert.display(),
        certs.server_key.display()
    );
    let config = Config::parse_str(&text, "tls.ini", &NoEnv).unwrap();
    let server = TlsSettings::from_config(&config).unwrap().client.unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ours = tokio::spawn(accept_one(listener, server.clone()));
    let tls = format!(
        "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        certs.ca.display(),
        certs.client_cert.display(),
        certs.client_key.display()
    );
    let said = tokio::task::spawn_blocking(move || psql(port, &tls))
        .await
        .unwrap();
    ours.await.unwrap().unwrap();
    assert!(
        said.contains("user=tls_user cn=tls_user tls=TLSv1.3/TLS_"),
        "{said}"
    );

    // No client certificate: our verify-full side refuses the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ours = tokio::spawn(accept_one(listener, server));
    let tls = format!(
        "sslmode=verify-full sslrootcert={} sslcert=/nonexistent sslkey=/nonexistent",
        certs.ca.display()
    );
    let said = tokio::task::spawn_blocking(move || psql(port, &tls))
        .await
        .unwrap();
    let e = ours.await.unwrap().unwrap_err();
    assert!(
        e.to_string().starts_with("TLS handshake with client"),
        "{e}"
    );
    assert!(said.to_lowercase().contains("certificate"), "{said}");
}

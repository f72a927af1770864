//! Unit tests of the TLS building blocks: configs from pgbouncer.ini text, both handshakes over an
//! in-memory duplex with certificates made at test time, and the CN reader.

#[path = "../../tests/it/support/certs.rs"]
mod certs;

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::config::NoEnv;
use crate::conn::Conn;
use certs::{CLIENT_CN, TestCerts};

fn config(lines: &str) -> Config {
    Config::parse_str(
        &format!("[pgbouncer]\nauth_type = passthrough\n{lines}\n"),
        "t.ini",
        &NoEnv,
    )
    .unwrap()
}

/// The pooler's client-side settings for a fake PostgreSQL using `certs`' server certificate.
fn pg_side(certs: &TestCerts, extra: &str) -> Arc<ServerConfig> {
    let text = format!(
        "client_tls_sslmode = require\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n{extra}",
        certs.server_cert.display(),
        certs.server_key.display()
    );
    TlsSettings::from_config(&config(&text))
        .unwrap()
        .client
        .unwrap()
}

/// Settings for our connections to PostgreSQL under `mode`, trusting `ca`.
fn pooler_side(mode: &str, ca: &Path, extra: &str) -> Arc<ClientConfig> {
    let text = format!(
        "server_tls_sslmode = {mode}\nserver_tls_ca_file = {}\n{extra}",
        ca.display()
    );
    TlsSettings::from_config(&config(&text))
        .unwrap()
        .server
        .unwrap()
}

type Pair = (
    Result<MaybeTls<DuplexStream>, TlsError>,
    Result<ClientStream<DuplexStream>, TlsError>,
);

/// A fake PostgreSQL answering `answer` to the SSLRequest (and shaking hands on `S`), against
/// [`connect_server_tls`]; after a handshake, one message goes each way.
async fn negotiate(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    host: &str,
    mode: SslMode,
    answer: u8,
) -> Pair {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let pg = tokio::spawn(async move {
        let mut theirs = theirs;
        let mut request = [0u8; 8];
        theirs.read_exact(&mut request).await.unwrap();
        let mut expected = BytesMut::new();
        crate::protocol::startup::ssl_request(&mut expected);
        assert_eq!(&request[..], &expected[..]);
        theirs.write_all(&[answer]).await.unwrap();
        if answer != b'S' {
            return Ok(ClientStream::Plain(theirs));
        }
        let mut tls = ClientStream::from(accept_client_tls(theirs, &server).await?);
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).await.unwrap();
        assert_eq!(&ping, b"ping");
        tls.write_all(b"pong").await.unwrap();
        tls.flush().await.unwrap();
        Ok(tls)
    });
    let mut ours = connect_server_tls(ours, host, mode, &client).await;
    if let Ok(stream @ MaybeTls::Tls(_)) = &mut ours {
        // Under TLS 1.3 a rejected client certificate shows only on the first read.
        if let Err(source) = ping_pong(stream).await {
            ours = Err(TlsError::Io {
                stage: Stage::ServerHandshake,
                source,
            });
        }
    }
    // A failed connect has dropped our end, which ends the server's handshake too.
    let theirs = pg.await.unwrap();
    (ours, theirs)
}

async fn ping_pong(stream: &mut MaybeTls<DuplexStream>) -> std::io::Result<()> {
    stream.write_all(b"ping").await?;
    stream.flush().await?;
    let mut pong = [0u8; 4];
    stream.read_exact(&mut pong).await?;
    assert_eq!(&pong, b"pong");
    Ok(())
}

#[test]
fn protocols_map_to_what_rustls_has() {
    let names = |v: &str| {
        protocol_versions(Key::ClientTlsProtocols, v)
            .map(|vs| {
                vs.iter()
                    .map(|p| format!("{:?}", p.version))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string())
    };
    let both = Ok(vec!["TLSv1_2".to_owned(), "TLSv1_3".to_owned()]);
    assert_eq!(names("secure"), both);
    assert_eq!(names("all"), both);
    assert_eq!(names("legacy"), both);
    assert_eq!(names("TLSv1.2"), Ok(vec!["TLSv1_2".to_owned()]));
    assert_eq!(names("tlsv1.3"), Ok(vec!["TLSv1_3".to_owned()]));
    assert_eq!(names("tlsv1.1,tlsv1.2"), Ok(vec!["TLSv1_2".to_owned()]));
    let err = names("tlsv1.1").unwrap_err();
    assert!(err.contains("client_tls_protocols = tlsv1.1"), "{err}");
    assert!(names("sslv3").unwrap_err().contains("unknown TLS protocol"));
}

#[test]
fn defaults_offer_no_client_tls_and_prefer_server_tls() {
    let tls = TlsSettings::from_config(&config("")).unwrap();
    assert!(tls.client.is_none());
    assert_eq!(tls.client_mode, SslMode::Disable);
    assert!(tls.client_may_skip_tls());
    assert_eq!(tls.server_mode, SslMode::Prefer);
    let server = tls.server.unwrap();
    assert_eq!(server.alpn_protocols, vec![ALPN_POSTGRESQL.to_vec()]);
    let off = TlsSettings::from_config(&config("server_tls_sslmode = disable")).unwrap();
    assert!(off.server.is_none());
}

fn error_of(lines: &str) -> String {
    TlsSettings::from_config(&config(lines))
        .unwrap_err()
        .to_string()
}

#[test]
fn file_errors_name_the_key_the_file_and_the_problem() {
    let certs = TestCerts::generate();
    let missing = certs.dir.path().join("nope.crt");
    let e = error_of(&format!(
        "server_tls_sslmode = verify-ca\nserver_tls_ca_file = {}",
        missing.display()
    ));
    assert!(e.starts_with("server_tls_ca_file "), "{e}");
    assert!(e.contains("nope.crt: cannot read"), "{e}");

    let junk = certs.write("junk.pem", "hello, not PEM\n");
    let e = error_of(&format!(
        "server_tls_sslmode = verify-full\nserver_tls_ca_file = {}",
        junk.display()
    ));
    assert!(e.contains("junk.pem: no certificate in PEM"), "{e}");

    let e = error_of(&format!(
        "client_tls_sslmode = require\nclient_tls_cert_file = {}\nclient_tls_key_file = {}",
        certs.server_cert.display(),
        certs.server_cert.display()
    ));
    assert!(e.contains("client_tls_key_file"), "{e}");
    assert!(e.contains("no private key in PEM"), "{e}");

    let e = error_of(&format!(
        "client_tls_sslmode = require\nclient_tls_cert_file = {}\nclient_tls_key_file = {}",
        certs.server_cert.display(),
        certs.client_key.display()
    ));
    assert!(e.contains("client.key and client_tls_cert_file"), "{e}");
    assert!(e.to_lowercase().contains("match"), "{e}");
}

#[test]
fn verify_modes_need_a_ca_file() {
    let e = error_of("server_tls_sslmode = verify-full");
    assert_eq!(
        e,
        "server_tls_sslmode = verify-full needs server_tls_ca_file"
    );
    let certs = TestCerts::generate();
    let e = error_of(&format!(
        "client_tls_sslmode = verify-ca\nclient_tls_cert_file = {}\nclient_tls_key_file = {}",
        certs.server_cert.display(),
        certs.server_key.display()
    ));
    assert_eq!(e, "client_tls_sslmode = verify-ca needs client_tls_ca_file");
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() {
    let certs = TestCerts::generate();
    let client = pooler_side("require", &certs.other_ca, "");
    let (ours, theirs) = negotiate(
        pg_side(&certs, ""),
        client,
        "db.example.com",
        SslMode::Require,
        b'S',
    )
    .await;
    let ours = ours.unwrap();
    assert!(ours.is_tls());
    let described = describe(&ours).unwrap();
    assert!(described.starts_with("TLSv1.3/TLS_"), "{described}");
    assert!(described.contains("/ECDH="), "{described}");
    assert_eq!(describe(&theirs.unwrap()), Some(described));
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_name() {
    let certs = TestCerts::generate();
    for host in ["localhost", "db.example.com", "10.1.2.3"] {
        let client = pooler_side("verify-ca", &certs.ca, "");
        let (ours, _) = negotiate(pg_side(&certs, ""), client, host, SslMode::VerifyCa, b'S').await;
        assert!(ours.unwrap().is_tls(), "{host}");
    }
    let wrong = pooler_side("verify-ca", &certs.other_ca, "");
    let (ours, theirs) = negotiate(
        pg_side(&certs, ""),
        wrong,
        "localhost",
        SslMode::VerifyCa,
        b'S',
    )
    .await;
    let e = ours.unwrap_err();
    assert!(
        e.to_string().starts_with("TLS handshake with server"),
        "{e}"
    );
    assert_eq!(e.fault(), Fault::Server);
    assert!(theirs.is_err());
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_ip_addresses() {
    let certs = TestCerts::generate();
    for host in ["localhost", "127.0.0.1"] {
        let client = pooler_side("verify-full", &certs.ca, "");
        let (ours, _) =
            negotiate(pg_side(&certs, ""), client, host, SslMode::VerifyFull, b'S').await;
        assert!(ours.unwrap().is_tls(), "{host}");
    }
    for host in ["db.example.com", "127.0.0.2"] {
        let client = pooler_side("verify-full", &certs.ca, "");
        let (ours, _) =
            negotiate(pg_side(&certs, ""), client, host, SslMode::VerifyFull, b'S').await;
        let e = ours.unwrap_err().to_string();
        assert!(e.contains("not valid for name"), "{host}: {e}");
    }
    let wrong = pooler_side("verify-full", &certs.other_ca, "");
    let (ours, _) = negotiate(
        pg_side(&certs, ""),
        wrong,
        "localhost",
        SslMode::VerifyFull,
        b'S',
    )
    .await;
    let e = ours.unwrap_err().to_string();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn an_n_answer_is_plaintext_below_require_and_an_error_from_require_on() {
    let certs = TestCerts::generate();
    let client = pooler_side("prefer", &certs.ca, "");
    for mode in [SslMode::Allow, SslMode::Prefer] {
        let (ours, _) = negotiate(pg_side(&certs, ""), client.clone(), "h", mode, b'N').await;
        let ours = ours.unwrap();
        assert!(!ours.is_tls());
        assert_eq!(describe(&ours), None);
    }
    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        let (ours, _) = negotiate(pg_side(&certs, ""), client.clone(), "h", mode, b'N').await;
        let e = ours.unwrap_err();
        assert_eq!(
            e.to_string(),
            "server does not support SSL, but SSL was required"
        );
    }
    let (ours, _) = negotiate(pg_side(&certs, ""), client, "h", SslMode::Prefer, b'E').await;
    assert!(matches!(ours, Err(TlsError::UnexpectedResponse(b'E'))));
}

#[tokio::test]
async fn disable_sends_nothing() {
    let certs = TestCerts::generate();
    let client = pooler_side("require", &certs.ca, "");
    let (ours, mut theirs) = tokio::io::duplex(64);
    let mut ours = connect_server_tls(ours, "h", SslMode::Disable, &client)
        .await
        .unwrap();
    ours.write_all(b"x").await.unwrap();
    let mut first = [0u8; 1];
    theirs.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"x");
}

#[tokio::test]
async fn client_certificates_are_verified_and_their_cn_read() {
    let certs = TestCerts::generate();
    let server = pg_side(
        &certs,
        &format!(
            "client_tls_sslmode = verify-full\nclient_tls_ca_file = {}",
            certs.ca.display()
        ),
    );
    let with_cert = pooler_side(
        "verify-full",
        &certs.ca,
        &format!(
            "server_tls_cert_file = {}\nserver_tls_key_file = {}",
            certs.client_cert.display(),
            certs.client_key.display()
        ),
    );
    let (ours, theirs) = negotiate(
        server.clone(),
        with_cert,
        "localhost",
        SslMode::VerifyFull,
        b'S',
    )
    .await;
    let theirs = theirs.unwrap();
    assert_eq!(client_cert_common_name(&theirs).as_deref(), Some(CLIENT_CN));
    assert!(negotiated_postgresql_alpn(&theirs));
    // The server's certificate, seen from our side.
    assert_eq!(
        client_cert_common_name(&ours.unwrap()).as_deref(),
        Some("localhost")
    );

    let without = pooler_side("verify-full", &certs.ca, "");
    let (ours, theirs) = negotiate(server, without, "localhost", SslMode::VerifyFull, b'S').await;
    let e = ours.unwrap_err().to_string();
    assert!(e.contains("CertificateRequired"), "{e}");
    let e = theirs.unwrap_err();
    assert!(
        e.to_string().starts_with("TLS handshake with client"),
        "{e}"
    );
    assert_eq!(e.fault(), Fault::Client);
}

#[tokio::test]
async fn tls12_only_is_honoured_and_described() {
    let certs = TestCerts::generate();
    let server = pg_side(&certs, "client_tls_protocols = tlsv1.2");
    let client = pooler_side("verify-full", &certs.ca, "");
    let (ours, _) = negotiate(server, client, "localhost", SslMode::VerifyFull, b'S').await;
    let described = describe(&ours.unwrap()).unwrap();
    assert!(described.starts_with("TLSv1.2/ECDHE-"), "{described}");
}

#[test]
fn reload_rereads_the_files_and_reports_broken_ones() {
    let certs = TestCerts::generate();
    let text = format!(
        "server_tls_sslmode = verify-full\nserver_tls_ca_file = {}",
        certs.ca.display()
    );
    let first = TlsSettings::from_config(&config(&text)).unwrap();
    assert!(first.reload(&config(&text)).is_ok());
    std::fs::write(&certs.ca, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let e = first.reload(&config(&text)).unwrap_err();
    assert!(e.to_string().contains("ca.crt: invalid PEM"), "{e}");
    assert_eq!(e.fault(), Fault::Internal);
}

#[test]
fn direct_tls_is_recognised_by_its_first_byte() {
    assert!(peek_direct_tls(0x16));
    let mut startup = BytesMut::new();
    crate::protocol::startup::ssl_request(&mut startup);
    assert!(!peek_direct_tls(startup[0]));
}

#[tokio::test]
async fn bytes_buffered_after_the_ssl_request_stop_the_upgrade() {
    let (ours, mut theirs) = tokio::io::duplex(64);
    let mut request = BytesMut::new();
    crate::protocol::startup::ssl_request(&mut request);
    request.extend_from_slice(b"injected");
    theirs.write_all(&request).await.unwrap();
    let mut conn = Conn::new(ours);
    conn.read_startup().await.unwrap().unwrap();
    let e = stream_for_handshake(conn.into_parts()).unwrap_err();
    assert!(matches!(e, TlsError::BufferedPlaintext(8)), "{e}");

    let (ours, _theirs) = tokio::io::duplex(64);
    let mut conn = Conn::new(ours);
    conn.write_raw(b"S");
    let e = stream_for_handshake(conn.into_parts()).unwrap_err();
    assert!(matches!(e, TlsError::UnflushedWrite(1)), "{e}");
}

#[test]
fn the_cn_reader_survives_any_truncation_or_corruption() {
    let certs = TestCerts::generate();
    let pem = std::fs::read(&certs.client_cert).unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    let der = der.as_ref();
    assert_eq!(x509::subject_common_name(der).as_deref(), Some(CLIENT_CN));
    for len in 0..der.len() {
        let _ = x509::subject_common_name(&der[..len]);
    }
    let mut flipped = der.to_vec();
    for i in 0..flipped.len() {
        flipped[i] ^= 0xff;
        let _ = x509::subject_common_name(&flipped);
        flipped[i] ^= 0xff;
    }
}

#[tokio::test]
async fn a_ca_bundle_with_many_certificates_is_read_whole() {
    let certs = TestCerts::generate();
    // Like the RDS global bundle: the right CA among others, with text between them.
    let bundle = format!(
        "# unrelated\n{}\nsome comment\n{}",
        std::fs::read_to_string(&certs.other_ca).unwrap(),
        std::fs::read_to_string(&certs.ca).unwrap()
    );
    let bundle = certs.write("bundle.pem", &bundle);
    let client = pooler_side("verify-full", &bundle, "");
    let (ours, _) = negotiate(
        pg_side(&certs, ""),
        client,
        "localhost",
        SslMode::VerifyFull,
        b'S',
    )
    .await;
    assert!(ours.unwrap().is_tls());
}

/// A rustls client that starts with a ClientHello (PostgreSQL 17's `sslnegotiation=direct`),
/// offering `alpn`, against a listener that peeks at the first byte as the proxy would.
async fn direct_tls(certs: &TestCerts, alpn: &[u8]) -> Result<bool, TlsError> {
    let server = pg_side(certs, "");
    let mut client = (*pooler_side("verify-full", &certs.ca, "")).clone();
    client.alpn_protocols = vec![alpn.to_vec()];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let dial = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let _ = connector.connect(name, tcp).await;
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let mut first = [0u8; 1];
    assert_eq!(tcp.peek(&mut first).await.unwrap(), 1);
    assert!(peek_direct_tls(first[0]));
    let accepted = accept_client_tls(tcp, &server).await;
    dial.await.unwrap();
    Ok(negotiated_postgresql_alpn(&accepted?))
}

#[tokio::test]
async fn direct_tls_needs_the_postgresql_alpn() {
    let certs = TestCerts::generate();
    assert!(direct_tls(&certs, ALPN_POSTGRESQL).await.unwrap());
    let e = direct_tls(&certs, b"h2").await.unwrap_err();
    assert!(e.to_string().contains("any known protocol"), "{e}");
    assert_eq!(e.fault(), Fault::Client);
}

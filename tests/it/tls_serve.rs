//! TLS in the real `bouncectl serve` process: the log lines (a server certificate that does not
//! verify, `tls=TLSv1.3/...` on the login line) and SIGHUP re-reading a rotated certificate
//! while a client stays connected.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio_postgres_rustls::MakeRustlsConnect;

use crate::support::postgres::{PASSWORD, SSL_USER, free_port};
use crate::support::{self, TempPostgres, TestCerts, wait_until};

/// A `bouncectl serve` child process, killed on drop.
struct Serve {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `bouncectl serve` toward `pg` with `settings` in `[pgbouncer]`.
    fn start(pg: &TempPostgres, settings: &str) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth = dir.path().join("userlist.txt");
        std::fs::write(&auth, format!("\"{SSL_USER}\" \"{PASSWORD}\"\n")).unwrap();
        let log = dir.path().join("bouncectl.log");
        let ini = dir.path().join("pgbouncer.ini");
        let text = format!(
            "[databases]\n* = host=127.0.0.1 port={pg_port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = md5\nauth_file = {auth}\n\
             logfile = {log}\n{settings}\n",
            pg_port = pg.port(),
            auth = auth.display(),
            log = log.display()
        );
        std::fs::write(&ini, text).unwrap();
        let child = Command::new(support::bin())
            .arg("serve")
            .arg(&ini)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let serve = Serve {
            child,
            port,
            log,
            _dir: dir,
        };
        let up = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        assert!(
            wait_until(Duration::from_secs(10), up),
            "serve did not listen"
        );
        serve
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls the log file until it contains `text`.
    fn wait_for_log(&self, text: &str) -> bool {
        wait_until(Duration::from_secs(10), || self.log().contains(text))
    }

    fn hup(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    }

    fn url(&self) -> String {
        format!(
            "host=localhost port={} user={SSL_USER} password={PASSWORD} dbname=postgres",
            self.port
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rustls_client(ca: &Path) -> MakeRustlsConnect {
    let provider = rustls::crypto::ring::default_provider();
    MakeRustlsConnect::new(crate::support::rustls_trusting(ca, provider))
}

async fn connect_tls(serve: &Serve, ca: &Path) -> Result<tokio_postgres::Client, String> {
    let url = format!("{} sslmode=require", serve.url());
    let (client, connection) = tokio_postgres::connect(&url, rustls_client(ca))
        .await
        .map_err(|e| format!("{e:?}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_logged_and_reported() {
    let certs = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    let settings = format!(
        "server_tls_sslmode = verify-full\nserver_tls_ca_file = {}\n",
        certs.other_ca.display()
    );
    let serve = Serve::start(&pg, &settings);
    let e = support::connect(&serve.url()).await.unwrap_err();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(
        db.message(),
        "server TLS failed: TLS handshake with server: invalid peer certificate: UnknownIssuer"
    );
    assert_eq!(db.code().code(), "08006");
    assert!(serve.wait_for_log("server TLS failed"), "{}", serve.log());
    // The server connection's own line, said once.
    assert!(
        serve.log().lines().any(|l| l.contains("S-0x")
            && l.contains(" server TLS failed: ")
            && l.contains("UnknownIssuer")
            && l.matches("server TLS failed").count() == 1),
        "{}",
        serve.log()
    );
}

#[tokio::test]
async fn sighup_rotates_the_client_certificate_and_keeps_connected_clients() {
    let certs = TestCerts::generate();
    let rotated = TestCerts::generate();
    let Some(pg) = TempPostgres::start_with_tls(&certs) else {
        return;
    };
    let settings = format!(
        "log_connections = 1\nclient_tls_sslmode = require\nclient_tls_cert_file = {}\n\
         client_tls_key_file = {}\nserver_tls_sslmode = verify-full\nserver_tls_ca_file = {}\n",
        certs.server_cert.display(),
        certs.server_key.display(),
        certs.ca.display()
    );
    let serve = Serve::start(&pg, &settings);
    let old = connect_tls(&serve, &certs.ca).await.unwrap();
    old.simple_query("SELECT 1").await.unwrap();
    assert!(
        // PgBouncer's format: OpenSSL's names for the suite and the curve.
        serve.wait_for_log(&format!(
            "user={SSL_USER} tls=TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519"
        )),
        "{}",
        serve.log()
    );
    assert!(
        serve.log().contains("new connection to server"),
        "{}",
        serve.log()
    );

    std::fs::copy(&rotated.server_cert, &certs.server_cert).unwrap();
    std::fs::copy(&rotated.server_key, &certs.server_key).unwrap();
    serve.hup();
    assert!(
        serve.wait_for_log("configuration reloaded"),
        "{}",
        serve.log()
    );
    let new = connect_tls(&serve, &rotated.ca).await.unwrap();
    new.simple_query("SELECT 1").await.unwrap();
    old.simple_query("SELECT 1").await.unwrap();
    assert!(connect_tls(&serve, &certs.ca).await.is_err());

    // A broken key: the reload logs why and the rotated certificate keeps serving.
    std::fs::write(&certs.server_key, "not a key").unwrap();
    serve.hup();
    assert!(
        serve.wait_for_log("TLS settings not applied, keeping the old ones"),
        "{}",
        serve.log()
    );
    connect_tls(&serve, &rotated.ca).await.unwrap();
}

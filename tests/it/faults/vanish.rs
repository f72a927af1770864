//! Clients that vanish: mid-transaction, mid-COPY (both directions), mid-pipeline, during login
//! and halfway through SCRAM. With one server in the pool, the next client gets exactly the
//! server the vanished one used — if it was kept at all — and must find it clean.

use std::time::Duration;

use bouncectl::auth::scram::{ClientCredential, MECHANISM, ScramClient};
use bouncectl::protocol::backend::Authentication;
use bouncectl::protocol::frontend;
use bytes::BytesMut;

use super::{Baseline, backends, fill_pool, fresh_client_is_clean, no_open_transactions, until};
use crate::support::binary::Binary;
use crate::support::postgres::{MD5_USER, PASSWORD, SCRAM_USER, TempPostgres};
use crate::support::wire::{Wire, extended_bytes, query_bytes, startup_bytes};

const ROUNDS: usize = 10;

async fn setup(mode: &str) -> Option<(TempPostgres, Binary, String)> {
    let pg = TempPostgres::start_or_skip()?;
    pg.psql("CREATE TABLE fault_copy (x text); GRANT ALL ON fault_copy TO md5_user");
    let bin = Binary::start(
        &pg,
        pg.port(),
        &format!("pool_mode = {mode}\ndefault_pool_size = 1\nquery_wait_timeout = 20"),
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 1).await;
    Some((pg, bin, url))
}

async fn logged_in(bin: &Binary) -> Wire {
    Wire::login(bin.port, MD5_USER, "postgres", PASSWORD)
        .await
        .unwrap()
}

/// After a vanishing: the next client is served, clean, and nothing is left open in PostgreSQL.
async fn aftermath(pg: &TempPostgres, url: &str) {
    fresh_client_is_clean(url).await;
    assert!(no_open_transactions(pg, MD5_USER).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_transaction() {
    for (mode, set) in [("transaction", "SET LOCAL"), ("session", "SET")] {
        let Some((pg, mut bin, url)) = setup(mode).await else {
            return;
        };
        let base = Baseline::of(&bin);
        for _ in 0..ROUNDS {
            let mut wire = logged_in(&bin).await;
            let sql = format!(
                "BEGIN; {set} myapp.marker = 'gone'; CREATE TEMP TABLE fault_marker_v (x int); \
                 INSERT INTO fault_marker_v VALUES (1)"
            );
            assert!(wire.query(&sql).await.is_ok(), "{mode}");
            drop(wire);
            aftermath(&pg, &url).await;
        }
        if mode == "session" {
            // A session-mode client that leaves between transactions has its session reset.
            let mut wire = logged_in(&bin).await;
            let sql = "SET myapp.marker = 'gone'; CREATE TEMP TABLE fault_marker_s (x int)";
            assert!(wire.query(sql).await.is_ok());
            drop(wire);
            aftermath(&pg, &url).await;
        }
        base.assert_back(&mut bin, 0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_copy() {
    let Some((pg, mut bin, url)) = setup("transaction").await else {
        return;
    };
    let base = Baseline::of(&bin);
    for _ in 0..ROUNDS {
        let mut wire = logged_in(&bin).await;
        wire.send(&query_bytes("COPY fault_copy FROM STDIN")).await;
        assert_eq!(wire.recv().await.map(|m| m.0), Some(b'G'));
        let mut data = BytesMut::new();
        for _ in 0..100 {
            frontend::copy_data(&mut data, b"lost row\n").unwrap();
        }
        wire.send(&data).await;
        drop(wire);
        aftermath(&pg, &url).await;

        let mut wire = logged_in(&bin).await;
        let sql = "COPY (SELECT repeat('x', 100) FROM generate_series(1, 200000)) TO STDOUT";
        wire.send(&query_bytes(sql)).await;
        assert_eq!(wire.recv().await.map(|m| m.0), Some(b'H'));
        for _ in 0..10 {
            assert_eq!(wire.recv().await.map(|m| m.0), Some(b'd'));
        }
        drop(wire);
        aftermath(&pg, &url).await;
    }
    assert_eq!(pg.psql("SELECT count(*) FROM fault_copy"), "0");
    let copies = until(Duration::from_secs(10), || async {
        !backends(&pg, MD5_USER)
            .await
            .iter()
            .any(|(_, state, q)| state == "active" && q.starts_with("COPY"))
    })
    .await;
    assert!(copies, "a COPY of a vanished client runs on");
    base.assert_back(&mut bin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_pipeline() {
    let Some((pg, mut bin, url)) = setup("transaction").await else {
        return;
    };
    let base = Baseline::of(&bin);
    for round in 0..ROUNDS {
        let mut wire = logged_in(&bin).await;
        let mut out = BytesMut::new();
        // A transaction opened in the extended protocol, no Sync yet: nothing has answered.
        out.extend_from_slice(&extended_bytes("BEGIN"));
        out.extend_from_slice(&extended_bytes("SET LOCAL myapp.marker = 'gone'"));
        out.extend_from_slice(&extended_bytes("SELECT pg_sleep(0.05)"));
        if round % 2 == 1 {
            // Odd rounds: a Sync for the first batch, then more work still unsynced.
            frontend::sync(&mut out);
            out.extend_from_slice(&extended_bytes("SELECT 1"));
        }
        wire.send(&out).await;
        if round % 2 == 1 {
            assert_eq!(wire.recv().await.map(|m| m.0), Some(b'1'));
        }
        drop(wire);
        aftermath(&pg, &url).await;
    }
    base.assert_back(&mut bin, 0).await;
}

/// Every way a login can be abandoned, each a few times; then the pooler has no client and no
/// socket left of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_during_login_and_scram() {
    let Some((pg, mut bin, url)) = setup("transaction").await else {
        return;
    };
    let base = Baseline::of(&bin);
    let startup = startup_bytes(MD5_USER, "postgres");
    let scram_startup = startup_bytes(SCRAM_USER, "postgres");
    for _ in 0..ROUNDS {
        // Connect and leave.
        drop(Wire::connect(bin.port).await);
        // Half a length word; half a startup packet.
        let mut w = Wire::connect(bin.port).await;
        w.send(&startup[..2]).await;
        drop(w);
        let mut w = Wire::connect(bin.port).await;
        w.send(&startup[..startup.len() / 2]).await;
        drop(w);
        // SSLRequest answered 'N', then gone.
        let mut w = Wire::connect(bin.port).await;
        let mut ssl = BytesMut::new();
        bouncectl::protocol::startup::ssl_request(&mut ssl);
        w.send(&ssl).await;
        drop(w);
        // The md5 challenge unanswered; then answered with half a message.
        let mut w = Wire::connect(bin.port).await;
        w.send(&startup).await;
        assert_eq!(w.recv().await.map(|m| m.0), Some(b'R'));
        drop(w);
        let mut w = Wire::connect(bin.port).await;
        w.send(&startup).await;
        assert_eq!(w.recv().await.map(|m| m.0), Some(b'R'));
        let mut pw = BytesMut::new();
        frontend::password_message(&mut pw, b"md5000000000000000000000000000000000").unwrap();
        w.send(&pw[..pw.len() - 5]).await;
        drop(w);
        scram_abandoned(bin.port, &scram_startup).await;
    }
    fresh_client_is_clean(&url).await;
    let mut console = bin.console().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = console.query("SHOW CLIENTS").await.rows.len();
        if listed == 1 || std::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(listed, 1, "SHOW CLIENTS lists more than the console itself");
    drop(console);
    assert!(no_open_transactions(&pg, MD5_USER).await);
    base.assert_back(&mut bin, 0).await;
}

/// SCRAM left at each step: before the first message, after it, mid-way through the last.
async fn scram_abandoned(port: u16, startup: &[u8]) {
    let mut w = Wire::connect(port).await;
    w.send(startup).await;
    let (tag, body) = w.recv().await.unwrap();
    assert_eq!(tag, b'R');
    assert!(matches!(
        Authentication::parse(&body),
        Ok(Authentication::Sasl(_))
    ));
    drop(w);

    for cut_final in [false, true] {
        let mut w = Wire::connect(port).await;
        w.send(startup).await;
        w.recv().await.unwrap();
        let mut client = ScramClient::new(ClientCredential::Password(PASSWORD.into())).unwrap();
        let mut out = BytesMut::new();
        frontend::sasl_initial_response(&mut out, MECHANISM, Some(&client.client_first())).unwrap();
        w.send(&out).await;
        let (tag, body) = w.recv().await.unwrap();
        assert_eq!(tag, b'R');
        if cut_final {
            let Ok(Authentication::SaslContinue(data)) = Authentication::parse(&body) else {
                panic!("no SASLContinue");
            };
            let reply = client.handle_server_first(data).unwrap();
            let mut out = BytesMut::new();
            frontend::sasl_response(&mut out, &reply).unwrap();
            w.send(&out[..out.len() / 2]).await;
        }
        drop(w);
    }
}

//! Client authentication through the pooler: md5 and SCRAM clients against md5, SCRAM and plain
//! userlist entries, passthrough, and PgBouncer's errors for a wrong password, an unknown user
//! and an unknown database; `scram_iterations`.

use bouncectl::auth::scram::{ClientCredential, MECHANISM, ScramClient};
use bouncectl::protocol::backend::Authentication;
use bouncectl::protocol::frontend;
use bytes::BytesMut;

use crate::support::bouncer::TestBouncer;
use crate::support::postgres::{MD5_USER, PASS_USER, PASSWORD, SCRAM_USER, TempPostgres};
use crate::support::wire::{Wire, startup_bytes};
use crate::support::{self};

async fn login_error(url: &str) -> String {
    match support::connect(url).await {
        Ok(_) => panic!("login through {url} should fail"),
        Err(e) => e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string()),
    }
}

async fn whoami(url: &str) -> String {
    let client = support::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:?}"));
    client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn md5_and_scram_clients_against_each_kind_of_entry() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    for auth_type in ["md5", "scram-sha-256"] {
        let bouncer = TestBouncer::start(&pg, &format!("auth_type = {auth_type}")).await;
        // SCRAM entry (pass-through keys log in to the server), plain entry (password reused).
        for user in [SCRAM_USER, PASS_USER] {
            assert_eq!(
                whoami(&bouncer.url(user, "postgres")).await,
                user,
                "{auth_type}"
            );
        }
        if auth_type == "md5" {
            // md5 entry: the secret itself answers the server's md5 challenge.
            assert_eq!(whoami(&bouncer.url(MD5_USER, "postgres")).await, MD5_USER);
        }
    }
}

#[tokio::test]
async fn wrong_password_unknown_user_and_unknown_database() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let only_postgres = format!("postgres = host=127.0.0.1 port={}\n", pg.port());
    for auth_type in ["md5", "scram-sha-256"] {
        let bouncer =
            TestBouncer::start_with(&pg, &only_postgres, &format!("auth_type = {auth_type}")).await;
        let port = bouncer.port;
        let wrong =
            format!("host=127.0.0.1 port={port} user={SCRAM_USER} password=nope dbname=postgres");
        // A SCRAM entry upgrades md5 to SCRAM, as PgBouncer does, so both fail as SASL.
        assert_eq!(login_error(&wrong).await, "SASL authentication failed");
        let wrong_md5 =
            format!("host=127.0.0.1 port={port} user={MD5_USER} password=nope dbname=postgres");
        let expected = if auth_type == "md5" {
            "password authentication failed"
        } else {
            "SASL authentication failed"
        };
        assert_eq!(login_error(&wrong_md5).await, expected);
        let unknown =
            format!("host=127.0.0.1 port={port} user=ghost password={PASSWORD} dbname=postgres");
        assert_eq!(login_error(&unknown).await, expected);
        let no_db = bouncer.url(SCRAM_USER, "nosuchdb");
        assert_eq!(login_error(&no_db).await, "no such database: nosuchdb");
        // Still serving.
        assert_eq!(
            whoami(&bouncer.url(SCRAM_USER, "postgres")).await,
            SCRAM_USER
        );
    }
}

#[tokio::test]
async fn passthrough_lets_postgres_judge_the_password() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "auth_type = passthrough").await;
    for user in [SCRAM_USER, MD5_USER, PASS_USER] {
        assert_eq!(whoami(&bouncer.url(user, "postgres")).await, user);
    }
    let port = bouncer.port;
    let wrong =
        format!("host=127.0.0.1 port={port} user={SCRAM_USER} password=nope dbname=postgres");
    assert_eq!(login_error(&wrong).await, "password authentication failed");
    // The right password still works after a wrong one, and a second client reuses the pool.
    assert_eq!(
        whoami(&bouncer.url(SCRAM_USER, "postgres")).await,
        SCRAM_USER
    );
    assert_eq!(
        whoami(&bouncer.url(SCRAM_USER, "postgres")).await,
        SCRAM_USER
    );
}

/// A pooler whose database `forced` logs in to `postgres` as [`PASS_USER`], whoever the client.
async fn forced_as_pass_user(pg: &TempPostgres) -> TestBouncer {
    let dbs = format!(
        "forced = host=127.0.0.1 port={} dbname=postgres user={PASS_USER} password={PASSWORD}\n",
        pg.port()
    );
    TestBouncer::start_with(pg, &dbs, "").await
}

#[tokio::test]
async fn forced_user_databases_log_in_with_their_own_password() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = forced_as_pass_user(&pg).await;
    assert_eq!(whoami(&bouncer.url(MD5_USER, "forced")).await, PASS_USER);
}

/// The user a client's server runs as, and that server's backend pid.
async fn who(client: &tokio_postgres::Client) -> (String, i32) {
    let row = client
        .query_one("SELECT current_user::text, pg_backend_pid()", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_reload_that_changes_the_forced_user_moves_new_clients_only() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = forced_as_pass_user(&pg).await;
    let url = bouncer.url(MD5_USER, "forced");
    let before = support::connect(&url).await.unwrap();
    let (user, old_pid) = who(&before).await;
    assert_eq!(user, PASS_USER);

    let ini = std::fs::read_to_string(&bouncer.ini).unwrap();
    std::fs::write(
        &bouncer.ini,
        ini.replace(&format!("user={PASS_USER}"), &format!("user={MD5_USER}")),
    )
    .unwrap();
    let reload = bouncer
        .console(crate::support::bouncer::ADMIN_USER)
        .await
        .query("RELOAD")
        .await;
    assert_eq!(reload.error, None);

    // A new client logs in as the new forced user...
    assert_eq!(whoami(&url).await, MD5_USER);
    // ...one already in keeps the user it logged in under, on a fresh server (the old one was
    // closed as the database changed).
    let (user, pid) = who(&before).await;
    assert_eq!(user, PASS_USER);
    assert_ne!(pid, old_pid, "the server from before the reload is reused");
}

#[tokio::test]
async fn auth_query_serves_users_missing_from_the_userlist() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    pg.psql(&format!(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE aq_user LOGIN PASSWORD '{PASSWORD}'"
    ));
    // `postgres` (a superuser with a plain userlist entry) reads pg_authid for everyone else.
    let bouncer = TestBouncer::start(&pg, "auth_user = postgres").await;
    assert_eq!(whoami(&bouncer.url("aq_user", "postgres")).await, "aq_user");
    let port = bouncer.port;
    let wrong = format!("host=127.0.0.1 port={port} user=aq_user password=nope dbname=postgres");
    assert_eq!(login_error(&wrong).await, "SASL authentication failed");
    let ghost =
        format!("host=127.0.0.1 port={port} user=ghost password={PASSWORD} dbname=postgres");
    assert_eq!(login_error(&ghost).await, "no such user");
    // Userlist users still come from the file.
    assert_eq!(whoami(&bouncer.url(MD5_USER, "postgres")).await, MD5_USER);
}

/// The iteration count the pooler's SCRAM challenge offers `user`.
async fn offered_iterations(port: u16, user: &str) -> u32 {
    let mut wire = Wire::connect(port).await;
    wire.send(&startup_bytes(user, "postgres")).await;
    let (_, body) = wire.recv().await.unwrap();
    assert!(
        matches!(Authentication::parse(&body), Ok(Authentication::Sasl(_))),
        "{body:?}"
    );
    let client = ScramClient::new(ClientCredential::Password(PASSWORD.into())).unwrap();
    let mut out = BytesMut::new();
    frontend::sasl_initial_response(&mut out, MECHANISM, Some(&client.client_first())).unwrap();
    wire.send(&out).await;
    let (_, body) = wire.recv().await.unwrap();
    let Ok(Authentication::SaslContinue(first)) = Authentication::parse(&body) else {
        panic!("expected SASLContinue, got {body:?}");
    };
    let first = String::from_utf8_lossy(first).into_owned();
    first
        .split(',')
        .find_map(|part| part.strip_prefix("i="))
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("no iteration count in {first}"))
}

#[tokio::test]
async fn scram_iterations_is_what_the_pooler_offers_for_the_secrets_it_derives() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer =
        TestBouncer::start(&pg, "auth_type = scram-sha-256\nscram_iterations = 1234").await;
    // A cleartext entry and an unknown user get scram_iterations; a stored verifier keeps its
    // own count (PostgreSQL's 4096).
    for (user, count) in [(PASS_USER, 1234), ("nobody", 1234), (SCRAM_USER, 4096)] {
        assert_eq!(
            offered_iterations(bouncer.port, user).await,
            count,
            "{user}"
        );
    }
    // tokio-postgres completes the exchange at that count.
    assert_eq!(whoami(&bouncer.url(PASS_USER, "postgres")).await, PASS_USER);
}

//! No secret in any log line at `-vvv`: the real binary runs every client auth method (md5,
//! SCRAM, plain, trust, passthrough, auth_query), right and wrong passwords, unknown users,
//! console logins, server logins with a password in `[databases]` (accepted and refused) and a
//! reload of a broken `[databases]` line; then its logs are searched for every password, md5
//! hash, SCRAM verifier and key, every md5 response and SCRAM proof the clients sent, and any
//! `password=` with its value.

use bouncectl::auth::scram::{ClientCredential, MECHANISM, ScramClient};
use bouncectl::auth::{Md5Credential, md5_response, md5_secret};
use bouncectl::protocol::backend::Authentication;
use bouncectl::protocol::frontend;
use bytes::BytesMut;

use crate::support::binary::Binary;
use crate::support::bouncer::{ADMIN_USER, STATS_USER};
use crate::support::postgres::{
    MD5_USER, PASS_USER, PASSWORD, SCRAM_USER, TRUST_USER, TempPostgres,
};
use crate::support::wire::{Wire, error_of, startup_bytes};

const WRONG: &str = "wr0ng-Pw-7c1e";
/// The password of `dsn_user`, given in `[databases]`.
const DSN_SECRET: &str = "dsn-S3cret-4f2a";
/// A wrong password given in `[databases]`.
const DSN_WRONG: &str = "dsn-Wr0ng-9b3d";
/// Passwords in broken `[databases]` lines that a reload refuses.
const LEAKY: &str = "leaky-DSN-pw-0d6e";
const LEAKY_ENV: &str = "leaky-Env-pw-3a7c";
/// The password of `aq_scram`, a role known only through auth_query.
const AQ_SECRET: &str = "aq-Scr4m-5e8f";
const UNKNOWN: &str = "nobody_here";

/// Everything that must never reach a log, with what it is.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, text: &str) {
        if !text.is_empty() {
            self.0.push((what.to_owned(), text.to_owned()));
        }
    }

    /// A verifier and each of its parts (salt aside, which is public in every exchange).
    fn add_verifier(&mut self, what: &str, verifier: &str) {
        self.add(what, verifier);
        let keys = verifier
            .rsplit_once('$')
            .map(|(_, k)| k)
            .unwrap_or_default();
        for (i, key) in keys.split(':').enumerate() {
            self.add(&format!("{what}, key {i}"), key);
        }
    }
}

/// Logs in as `user` to `db` with `password`, answering cleartext, md5 or SCRAM, and records
/// what went over the wire. Ok, or the refusal.
async fn login(
    port: u16,
    user: &str,
    db: &str,
    password: &str,
    secrets: &mut Secrets,
) -> Result<(), (String, String)> {
    secrets.add("a password a client sent", password);
    let mut wire = Wire::connect(port).await;
    wire.send(&startup_bytes(user, db)).await;
    let mut scram: Option<ScramClient> = None;
    loop {
        let Some((tag, body)) = wire.recv().await else {
            return Err(("EOF".into(), "closed".into()));
        };
        let mut out = BytesMut::new();
        match tag {
            b'R' => match Authentication::parse(&body).unwrap() {
                Authentication::CleartextPassword => {
                    frontend::password_message(&mut out, password.as_bytes()).unwrap();
                }
                Authentication::Md5Password { salt } => {
                    let answer = md5_response(user, Md5Credential::Password(password), salt);
                    secrets.add("an md5 response", &answer);
                    secrets.add("an md5 secret", &md5_secret(user, password));
                    frontend::password_message(&mut out, answer.as_bytes()).unwrap();
                }
                Authentication::Sasl(_) => {
                    let client =
                        ScramClient::new(ClientCredential::Password(password.into())).unwrap();
                    frontend::sasl_initial_response(
                        &mut out,
                        MECHANISM,
                        Some(&client.client_first()),
                    )
                    .unwrap();
                    scram = Some(client);
                }
                Authentication::SaslContinue(data) => {
                    let last = scram.as_mut().unwrap().handle_server_first(data).unwrap();
                    let last = String::from_utf8(last).unwrap();
                    let proof = last.rsplit_once(",p=").unwrap().1;
                    secrets.add("a SCRAM proof (client-final p=)", proof);
                    frontend::sasl_response(&mut out, last.as_bytes()).unwrap();
                }
                Authentication::SaslFinal(_) | Authentication::Ok => {}
                other => panic!("unexpected {other:?}"),
            },
            b'E' => return Err(error_of(&body)),
            b'Z' => {
                // A query makes the pool log in to its server too.
                let sql = if db == "pgbouncer" {
                    "SHOW VERSION"
                } else {
                    "SELECT 1"
                };
                return wire.query(sql).await.map(|_| ());
            }
            _ => {}
        }
        if !out.is_empty() {
            wire.send(&out).await;
        }
    }
}

/// Roles and the auth_query function the runs need; their secrets go into `secrets`.
fn prepare(pg: &TempPostgres, secrets: &mut Secrets) {
    pg.psql(&format!(
        "CREATE ROLE dsn_user LOGIN PASSWORD '{DSN_SECRET}'; \
         CREATE ROLE aq_scram LOGIN PASSWORD '{AQ_SECRET}'; \
         CREATE FUNCTION public.user_lookup(i_username text, OUT uname text, OUT phash text) \
           RETURNS record LANGUAGE sql SECURITY DEFINER \
           AS 'SELECT rolname::text, rolpassword::text FROM pg_authid WHERE rolname = i_username'; \
         REVOKE ALL ON FUNCTION public.user_lookup(text) FROM public; \
         GRANT EXECUTE ON FUNCTION public.user_lookup(text) TO {MD5_USER}"
    ));
    for role in [
        SCRAM_USER, "dsn_user", "aq_scram", MD5_USER, PASS_USER, "postgres",
    ] {
        let stored = pg.psql(&format!(
            "SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"
        ));
        if stored.starts_with("SCRAM-SHA-256$") {
            secrets.add_verifier(&format!("the verifier of {role}"), &stored);
        } else {
            secrets.add(&format!("the stored secret of {role}"), &stored);
        }
    }
    for text in [
        PASSWORD, WRONG, DSN_SECRET, DSN_WRONG, LEAKY, LEAKY_ENV, AQ_SECRET,
    ] {
        secrets.add("a password", text);
    }
}

async fn start(pg: &TempPostgres, auth_type: &str, extra: &str) -> Binary {
    let port = pg.port();
    let databases = format!(
        "* = host=127.0.0.1 port={port}\n\
         dsn = host=127.0.0.1 port={port} dbname=postgres user=dsn_user password={DSN_SECRET}\n\
         dsnbad = host=127.0.0.1 port={port} dbname=postgres user=dsn_user password='{DSN_WRONG}'\n"
    );
    let settings = format!("auth_type = {auth_type}\n{extra}");
    Binary::start_with(pg, &databases, &settings, &["-vvv"], &[]).await
}

/// Console logins: admin and stats user, right and wrong.
async fn consoles(bin: &Binary, secrets: &mut Secrets) {
    for user in [ADMIN_USER, STATS_USER] {
        let ok = login(bin.port, user, "pgbouncer", PASSWORD, secrets).await;
        assert!(ok.is_ok() || user == STATS_USER, "{user}: {ok:?}");
        assert!(
            login(bin.port, user, "pgbouncer", WRONG, secrets)
                .await
                .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_at_vvv() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut s = Secrets::default();
    prepare(&pg, &mut s);
    let mut logs = Vec::new();

    // md5, upgraded to SCRAM for SCRAM secrets; auth_query; passwords in [databases].
    let auth_query = format!(
        "auth_user = {MD5_USER}\nauth_query = SELECT uname, phash FROM public.user_lookup($1)"
    );
    let bin = start(&pg, "md5", &auth_query).await;
    let p = bin.port;
    for (user, db) in [
        (MD5_USER, "postgres"),
        (SCRAM_USER, "postgres"),
        (PASS_USER, "postgres"),
    ] {
        assert_eq!(login(p, user, db, PASSWORD, &mut s).await, Ok(()), "{user}");
        assert!(login(p, user, db, WRONG, &mut s).await.is_err(), "{user}");
    }
    assert_eq!(
        login(p, "aq_scram", "postgres", AQ_SECRET, &mut s).await,
        Ok(())
    );
    assert!(
        login(p, "aq_scram", "postgres", WRONG, &mut s)
            .await
            .is_err()
    );
    assert!(login(p, UNKNOWN, "postgres", WRONG, &mut s).await.is_err());
    assert_eq!(login(p, MD5_USER, "dsn", PASSWORD, &mut s).await, Ok(()));
    assert!(
        login(p, MD5_USER, "dsnbad", PASSWORD, &mut s)
            .await
            .is_err()
    );
    consoles(&bin, &mut s).await;
    // A reload meets [databases] lines with a typo before a password, and in one.
    let ini = std::fs::read_to_string(bin.ini()).unwrap();
    let broken = ini.replace(
        "[pgbouncer]",
        &format!(
            "broken = host=127.0.0.1 bogus password={LEAKY}\n\
             broken2 = host=127.0.0.1 password={LEAKY_ENV}${{oops\n[pgbouncer]"
        ),
    );
    std::fs::write(bin.ini(), broken).unwrap();
    let mut console = bin.console().await;
    assert!(console.query("RELOAD").await.error.is_some());
    drop(console);
    let log = bin.log();
    let reload = log
        .lines()
        .find(|l| l.contains("reload failed"))
        .unwrap_or_default();
    eprintln!("{reload}");
    assert!(
        reload.contains("broken: syntax error") && reload.contains("broken2: password:"),
        "the reload did not report both broken lines: {reload}"
    );
    logs.push(("md5", log));
    drop(bin);

    for (auth_type, users) in [
        ("scram-sha-256", &[SCRAM_USER, PASS_USER][..]),
        ("plain", &[PASS_USER, SCRAM_USER, MD5_USER][..]),
        ("passthrough", &[SCRAM_USER, MD5_USER][..]),
    ] {
        let bin = start(&pg, auth_type, "").await;
        for user in users {
            let ok = login(bin.port, user, "postgres", PASSWORD, &mut s).await;
            assert_eq!(ok, Ok(()), "{auth_type} {user}");
            let wrong = login(bin.port, user, "postgres", WRONG, &mut s).await;
            assert!(wrong.is_err(), "{auth_type} {user}");
        }
        assert!(
            login(bin.port, UNKNOWN, "postgres", WRONG, &mut s)
                .await
                .is_err()
        );
        consoles(&bin, &mut s).await;
        logs.push((auth_type, bin.log()));
    }

    let bin = start(&pg, "trust", "").await;
    assert_eq!(
        login(bin.port, TRUST_USER, "postgres", "", &mut s).await,
        Ok(())
    );
    assert_eq!(login(bin.port, MD5_USER, "dsn", "", &mut s).await, Ok(()));
    // PgBouncer's words, whether or not the database forces a user.
    for db in ["postgres", "dsn"] {
        assert_eq!(
            login(bin.port, UNKNOWN, db, "", &mut s).await,
            Err(("08P01".into(), "\"trust\" authentication failed".into())),
            "{db}"
        );
    }
    logs.push(("trust", bin.log()));
    drop(bin);

    check_logs(&logs, &s);
}

fn check_logs(logs: &[(&str, String)], secrets: &Secrets) {
    let mut found = Vec::new();
    for (run, log) in logs {
        assert!(
            log.contains("login attempt") && log.contains("closing because"),
            "the {run} run logged too little to prove anything:\n{log}"
        );
        for (what, text) in &secrets.0 {
            if log.contains(text.as_str()) {
                found.push(format!("{run}: {what} ({text})"));
            }
        }
        for (i, _) in log.match_indices("md5") {
            let hex = log.get(i + 3..i + 35).unwrap_or_default();
            if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                found.push(format!("{run}: an md5 hash md5{hex}"));
            }
        }
        if log.contains("SCRAM-SHA-256$") {
            found.push(format!("{run}: a SCRAM verifier"));
        }
        for (i, _) in log.to_ascii_lowercase().match_indices("password=") {
            let value = log.get(i + 9..).unwrap_or_default();
            if !value.starts_with("***") {
                let line = log[..i].rsplit('\n').next().unwrap_or_default();
                found.push(format!("{run}: a password= with its value, in: {line}..."));
            }
        }
    }
    let lines: usize = logs.iter().map(|(_, l)| l.lines().count()).sum();
    eprintln!("{lines} log lines searched for {} secrets", secrets.0.len());
    assert!(
        found.is_empty(),
        "secrets in the logs:\n{}",
        found.join("\n")
    );
}

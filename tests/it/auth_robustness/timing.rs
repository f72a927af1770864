//! How long the pooler takes to say no: a wrong password, an unknown user and the right password
//! must not be told apart by the time the verdict takes, at what a test can measure (medians of
//! interleaved attempts, a generous bound). An early exit — skipping the work for a user that does
//! not exist — shows up as a gap of whole key derivations.

use std::time::{Duration, Instant};

use bouncectl::auth::scram::{
    ClientCredential, MECHANISM, ScramClient, ScramKeys, Verifier, hmac, salted_password,
};
use bouncectl::auth::{Md5Credential, md5_response};
use bouncectl::protocol::backend::Authentication;
use bouncectl::protocol::frontend;
use bytes::BytesMut;

use crate::support::binary::Binary;
use crate::support::postgres::{MD5_USER, PASSWORD, SCRAM_USER, TempPostgres};
use crate::support::wire::{Wire, startup_bytes};

const ROUNDS: usize = 25;
const UNKNOWN: &str = "no_such_user";

/// How one attempt authenticates.
#[derive(Clone)]
enum Attempt {
    /// SCRAM as `user` with precomputed keys.
    Scram(&'static str, ScramKeys),
    /// md5 or cleartext as `user` with `password`.
    Password(&'static str, &'static str),
}

/// Time from sending the last authentication message to the first byte of the verdict
/// (AuthenticationSASLFinal/Ok or the ErrorResponse), and whether it was a yes.
async fn verdict(port: u16, attempt: &Attempt) -> (Duration, bool) {
    let user = match attempt {
        Attempt::Scram(user, _) | Attempt::Password(user, _) => *user,
    };
    let mut wire = Wire::connect(port).await;
    wire.send(&startup_bytes(user, "postgres")).await;
    let mut scram = None;
    loop {
        let (tag, body) = wire.recv().await.expect("closed mid-login");
        assert_eq!(tag, b'R', "{:?}", crate::support::wire::error_of(&body));
        let mut out = BytesMut::new();
        let last = match (Authentication::parse(&body).unwrap(), attempt) {
            (Authentication::Sasl(_), Attempt::Scram(_, keys)) => {
                let client = ScramClient::new(ClientCredential::Keys(keys.clone())).unwrap();
                frontend::sasl_initial_response(&mut out, MECHANISM, Some(&client.client_first()))
                    .unwrap();
                scram = Some(client);
                false
            }
            (Authentication::SaslContinue(data), _) => {
                let reply = scram.as_mut().unwrap().handle_server_first(data).unwrap();
                frontend::sasl_response(&mut out, &reply).unwrap();
                true
            }
            (Authentication::Md5Password { salt }, Attempt::Password(user, pw)) => {
                let answer = md5_response(user, Md5Credential::Password(pw), salt);
                frontend::password_message(&mut out, answer.as_bytes()).unwrap();
                true
            }
            (Authentication::CleartextPassword, Attempt::Password(_, pw)) => {
                frontend::password_message(&mut out, pw.as_bytes()).unwrap();
                true
            }
            (other, _) => panic!("unexpected {other:?}"),
        };
        wire.send(&out).await;
        if last {
            let sent = Instant::now();
            let (tag, _) = wire.recv().await.expect("no verdict");
            return (sent.elapsed(), tag != b'E');
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Runs `attempts` round-robin (so load on the machine hits all alike) and returns each one's
/// median verdict time, checking each got the answer it should.
async fn medians(port: u16, attempts: &[(&str, Attempt, bool)]) -> Vec<Duration> {
    let mut samples = vec![Vec::new(); attempts.len()];
    for _ in 0..ROUNDS {
        for (i, (name, attempt, should_pass)) in attempts.iter().enumerate() {
            let (took, passed) = verdict(port, attempt).await;
            assert_eq!(passed, *should_pass, "{name}");
            samples[i].push(took);
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    for ((name, _, _), m) in attempts.iter().zip(&medians) {
        eprintln!("{name}: median verdict {m:?}");
    }
    medians
}

/// Indistinguishable at test resolution: within 5 ms of each other (scheduling noise on a busy
/// two-core machine), or within a factor of 3. A skipped key derivation is far outside either.
fn alike(a: Duration, b: Duration) -> bool {
    let (lo, hi) = (a.min(b), a.max(b));
    hi - lo <= Duration::from_millis(5) || hi <= lo * 3
}

fn assert_all_alike(names: &[&str], medians: &[Duration]) {
    for i in 0..medians.len() {
        for j in i + 1..medians.len() {
            assert!(
                alike(medians[i], medians[j]),
                "{} ({:?}) and {} ({:?}) can be told apart by timing",
                names[i],
                medians[i],
                names[j],
                medians[j]
            );
        }
    }
}

fn keys_for(stored: &str, password: &str) -> ScramKeys {
    let verifier = Verifier::parse(stored).unwrap();
    let salted = salted_password(password, &verifier.salt, verifier.iterations);
    ScramKeys {
        client_key: hmac(&salted, b"Client Key"),
        server_key: hmac(&salted, b"Server Key"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_and_md5_verdicts_take_the_same_time() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let stored = pg.psql(&format!(
        "SELECT rolpassword FROM pg_authid WHERE rolname = '{SCRAM_USER}'"
    ));
    let right = keys_for(&stored, PASSWORD);
    let wrong = keys_for(&stored, "wrong password");
    let bin = Binary::start(&pg, pg.port(), "auth_type = scram-sha-256").await;
    let attempts = [
        (
            "scram right password",
            Attempt::Scram(SCRAM_USER, right),
            true,
        ),
        (
            "scram wrong password",
            Attempt::Scram(SCRAM_USER, wrong.clone()),
            false,
        ),
        ("scram unknown user", Attempt::Scram(UNKNOWN, wrong), false),
    ];
    let names: Vec<&str> = attempts.iter().map(|a| a.0).collect();
    assert_all_alike(&names, &medians(bin.port, &attempts).await);
    drop(bin);

    let bin = Binary::start(&pg, pg.port(), "auth_type = md5").await;
    let attempts = [
        (
            "md5 right password",
            Attempt::Password(MD5_USER, PASSWORD),
            true,
        ),
        (
            "md5 wrong password",
            Attempt::Password(MD5_USER, "wrong"),
            false,
        ),
        (
            "md5 unknown user",
            Attempt::Password(UNKNOWN, "wrong"),
            false,
        ),
    ];
    let names: Vec<&str> = attempts.iter().map(|a| a.0).collect();
    assert_all_alike(&names, &medians(bin.port, &attempts).await);
}

/// `auth_type = plain` with SCRAM secrets: checking a wrong password costs a key derivation, so
/// an unknown user must cost one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_verdicts_for_unknown_users_take_a_key_derivation_too() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(&pg, pg.port(), "auth_type = plain").await;
    let attempts = [
        (
            "plain wrong password, SCRAM secret",
            Attempt::Password(SCRAM_USER, "wrong"),
            false,
        ),
        (
            "plain unknown user",
            Attempt::Password(UNKNOWN, "wrong"),
            false,
        ),
    ];
    let names: Vec<&str> = attempts.iter().map(|a| a.0).collect();
    assert_all_alike(&names, &medians(bin.port, &attempts).await);
}

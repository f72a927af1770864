//! Many SCRAM logins, zero failures: 10,000 exchanges between our client and our server state
//! machines with random passwords, salts, iteration counts, user names and nonces full of `r=`
//! and `=`; then 2,000 logins of our client into a real PostgreSQL, through the pooler's own
//! server-login path and with hand-picked tricky nonces.

use std::sync::Arc;
use std::time::Duration;

use bouncectl::auth::AuthError;
use bouncectl::auth::scram::{
    ClientCredential, MECHANISM, Nonce, ScramClient, ScramServer, ServerSecret, Verifier,
};
use bouncectl::config::SslMode;
use bouncectl::pool::hosts::{Balance, Host, HostList};
use bouncectl::pool::server::{LoginInfo, ServerConn, ServerCredential, ServerError};
use bouncectl::protocol::backend::Authentication;
use bouncectl::protocol::frontend;
use bouncectl::tls::TlsSettings;
use bytes::BytesMut;

use super::Rng;
use crate::support::postgres::TempPostgres;
use crate::support::wire::{Wire, error_of, startup_bytes};

const EXCHANGES: usize = 10_000;

/// One in-memory exchange; `Ok(true)` when it succeeded as it should, `Ok(false)` when a wrong
/// password was refused as it should.
fn exchange(rng: &mut Rng) -> Result<bool, String> {
    let password = rng.password();
    let salt_len = rng.range(1, 32);
    let salt = rng.bytes(salt_len);
    // PostgreSQL's default cost now and then; cheap counts otherwise, so 10,000 fit in seconds.
    let iterations = if rng.one_in(1000) {
        4096
    } else {
        u32::try_from(rng.range(1, 8)).unwrap()
    };
    let verifier = Verifier::derive(&password, &salt, iterations);
    let wrong = rng.one_in(10);
    let used = if wrong {
        format!("{password}x")
    } else {
        password.clone()
    };
    let client_nonce = Nonce::fixed(&rng.tricky_nonce()).unwrap();
    let server_nonce = Nonce::fixed(&rng.tricky_nonce()).unwrap();
    let user = rng.password();
    let context = format!("password {password:?} nonces {client_nonce:?}/{server_nonce:?}");
    let mut client = ScramClient::with_nonce(ClientCredential::Password(used), client_nonce)
        .with_username(&user);
    let mut server = ScramServer::new(ServerSecret::Verifier(&verifier), server_nonce)
        .map_err(|e| format!("{context}: {e}"))?;
    let first = server
        .handle_client_first(&client.client_first())
        .map_err(|e| format!("{context}: client-first refused: {e}"))?;
    let last = client
        .handle_server_first(&first)
        .map_err(|e| format!("{context}: server-first refused: {e}"))?;
    match (server.handle_client_final(&last), wrong) {
        (Err(AuthError::InvalidProof), true) => Ok(false),
        (Ok(_), true) => Err(format!("{context}: a wrong password passed")),
        (Err(e), _) => Err(format!("{context}: client-final refused: {e}")),
        (Ok(success), false) => {
            client
                .verify_server_final(&success.server_final)
                .map_err(|e| format!("{context}: server-final refused: {e}"))?;
            Ok(true)
        }
    }
}

#[test]
fn ten_thousand_scram_exchanges_with_tricky_nonces() {
    let results: Vec<(usize, usize, Vec<String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                scope.spawn(move || {
                    let mut rng = Rng::new(&format!("scram exchanges, worker {w}"));
                    let (mut ok, mut refused, mut failures) = (0, 0, Vec::new());
                    for _ in 0..EXCHANGES / 2 {
                        match exchange(&mut rng) {
                            Ok(true) => ok += 1,
                            Ok(false) => refused += 1,
                            Err(e) => failures.push(e),
                        }
                    }
                    (ok, refused, failures)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let ok: usize = results.iter().map(|r| r.0).sum();
    let refused: usize = results.iter().map(|r| r.1).sum();
    let failures: Vec<&String> = results.iter().flat_map(|r| &r.2).collect();
    eprintln!(
        "{ok} logins, {refused} wrong passwords refused, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures, first: {}",
        failures.len(),
        failures[0]
    );
    assert_eq!(ok + refused, EXCHANGES);
    assert!(refused > 0 && ok > EXCHANGES / 2);
}

/// A role with a random password whose verifier we made (random salt and iteration count).
struct Role {
    name: String,
    password: String,
}

fn create_roles(pg: &TempPostgres, rng: &mut Rng, count: usize) -> Vec<Role> {
    (0..count)
        .map(|i| {
            let password = rng.password();
            let salt_len = rng.range(4, 32);
            let salt = rng.bytes(salt_len);
            let iterations = u32::try_from(rng.range(1, 16)).unwrap();
            let verifier = Verifier::derive(&password, &salt, iterations);
            let name = format!("scram_stress_{i}");
            pg.psql(&format!("CREATE ROLE {name} LOGIN PASSWORD '{verifier}'"));
            Role { name, password }
        })
        .collect()
}

fn login_info(pg: &TempPostgres, user: &str, password: &str) -> LoginInfo {
    LoginInfo {
        hosts: Arc::new(HostList::new(
            vec![Host {
                host: "127.0.0.1".into(),
                port: pg.port(),
            }],
            Balance::RoundRobin,
        )),
        dbname: "postgres".into(),
        user: user.into(),
        credential: ServerCredential::Password(password.into()),
        params: Vec::new(),
        connect_timeout: Duration::from_secs(20),
        connect_query: None,
        resolver: Default::default(),
        tcp: Default::default(),
        tls: Arc::new(TlsSettings {
            client_mode: SslMode::Disable,
            client: None,
            server_mode: SslMode::Disable,
            server: None,
        }),
    }
}

/// The pooler's own path: `ServerConn::connect`, random nonces. Ok(true) logged in, Ok(false)
/// refused with 28P01 as a wrong password must be.
async fn pooler_login(info: LoginInfo, wrong: bool) -> Result<bool, String> {
    let Some(host) = info.hosts.first() else {
        return Err("no host".into());
    };
    match (ServerConn::connect(&info, host, 1).await, wrong) {
        (Ok(server), false) => {
            server.terminate().await;
            Ok(true)
        }
        (Err(ServerError::Refused { sqlstate, .. }), true) if sqlstate == "28P01" => Ok(false),
        (other, _) => Err(format!("{} wrong={wrong}: {:?}", info.user, other.err())),
    }
}

/// Our client with a chosen nonce, straight to PostgreSQL over a raw socket.
async fn tricky_login(port: u16, role: &Role, nonce: &str, wrong: bool) -> Result<bool, String> {
    let context = format!("{} nonce {nonce:?} wrong={wrong}", role.name);
    let mut password = role.password.clone();
    if wrong {
        password.push('x');
    }
    let mut client = ScramClient::with_nonce(
        ClientCredential::Password(password),
        Nonce::fixed(nonce).unwrap(),
    );
    let mut wire = Wire::connect(port).await;
    wire.send(&startup_bytes(&role.name, "postgres")).await;
    loop {
        let Some((tag, body)) = wire.recv().await else {
            return Err(format!("{context}: closed"));
        };
        let mut out = BytesMut::new();
        match tag {
            b'R' => match Authentication::parse(&body).unwrap() {
                Authentication::Sasl(_) => {
                    let first = client.client_first();
                    frontend::sasl_initial_response(&mut out, MECHANISM, Some(&first)).unwrap();
                }
                Authentication::SaslContinue(data) => {
                    let last = client
                        .handle_server_first(data)
                        .map_err(|e| format!("{context}: {e}"))?;
                    frontend::sasl_response(&mut out, &last).unwrap();
                }
                Authentication::SaslFinal(data) => client
                    .verify_server_final(data)
                    .map_err(|e| format!("{context}: {e}"))?,
                Authentication::Ok => {}
                other => return Err(format!("{context}: {other:?}")),
            },
            b'E' => {
                let (code, message) = error_of(&body);
                return match (wrong, code.as_str()) {
                    (true, "28P01") => Ok(false),
                    _ => Err(format!("{context}: {code} {message}")),
                };
            }
            b'Z' if !wrong => return Ok(true),
            b'Z' => return Err(format!("{context}: a wrong password got in")),
            _ => {}
        }
        if !out.is_empty() {
            wire.send(&out).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_scram_logins_to_postgres() {
    const EACH: usize = 1000;
    const PARALLEL: usize = 4;
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut rng = Rng::new("scram logins to PostgreSQL");
    let roles = Arc::new(create_roles(&pg, &mut rng, 20));
    // Two roles hashed by PostgreSQL itself (its default salt and 4096 iterations).
    let hashed: Vec<Role> = (0..2)
        .map(|i| {
            let password = rng.password();
            let name = format!("scram_pg_{i}");
            let literal = password.replace('\'', "''");
            pg.psql(&format!("CREATE ROLE {name} LOGIN PASSWORD '{literal}'"));
            Role { name, password }
        })
        .collect();
    let mut plans = Vec::new();
    for i in 0..2 * EACH {
        let role = rng.range(0, roles.len() - 1);
        let wrong = rng.one_in(25);
        let nonce = (i % 2 == 1).then(|| rng.tricky_nonce());
        plans.push((role, wrong, nonce));
    }
    let port = pg.port();
    let chunks: Vec<Vec<_>> = plans
        .chunks(plans.len() / PARALLEL)
        .map(<[_]>::to_vec)
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in chunks {
        let roles = Arc::clone(&roles);
        let infos: Vec<LoginInfo> = roles
            .iter()
            .map(|r| login_info(&pg, &r.name, &r.password))
            .collect();
        tasks.spawn(async move {
            let (mut ok, mut refused, mut failures) = (0, 0, Vec::new());
            for (role, wrong, nonce) in chunk {
                let outcome = match nonce {
                    Some(nonce) => tricky_login(port, &roles[role], &nonce, wrong).await,
                    None => {
                        let mut info = infos[role].clone();
                        if wrong {
                            info.credential = ServerCredential::Password("nope".into());
                        }
                        pooler_login(info, wrong).await
                    }
                };
                match outcome {
                    Ok(true) => ok += 1,
                    Ok(false) => refused += 1,
                    Err(e) => failures.push(e),
                }
            }
            (ok, refused, failures)
        });
    }
    let (mut ok, mut refused, mut failures) = (0, 0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (o, r, f) = done.unwrap();
        ok += o;
        refused += r;
        failures.extend(f);
    }
    for role in &hashed {
        assert_eq!(
            pooler_login(login_info(&pg, &role.name, &role.password), false).await,
            Ok(true)
        );
        ok += 1;
    }
    eprintln!(
        "{ok} logins, {refused} wrong passwords refused, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(ok + refused, 2 * EACH + hashed.len());
}

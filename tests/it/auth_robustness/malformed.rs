//! Malformed SCRAM from clients, against the real binary: every field of both client messages
//! missing, duplicated, oversized, not base64, out of order; wrong and altered nonces, a replayed
//! proof, wrong channel-binding data. Each is refused with PgBouncer's FATAL, 08P01
//! "SASL authentication failed", the connection closes, and the pooler keeps serving.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bouncectl::auth::scram::{
    ClientCredential, MECHANISM, ScramClient, ScramKeys, Verifier, hmac, salted_password,
};
use bouncectl::protocol::backend::Authentication;
use bouncectl::protocol::frontend;
use bytes::BytesMut;

use crate::support::binary::Binary;
use crate::support::postgres::{PASSWORD, SCRAM_USER, TempPostgres};
use crate::support::wire::{Wire, startup_bytes};

const SASL_FAILED: (&str, &str) = ("08P01", "SASL authentication failed");
/// PgBouncer's text when the SASLInitialResponse names another mechanism.
const INVALID_MECHANISM: &str = "client selected an invalid SASL authentication mechanism";

/// The keys of `password` under scram_user's verifier: computed once, so every exchange below
/// costs no PBKDF2.
fn keys_for(pg: &TempPostgres, password: &str) -> ScramKeys {
    let stored = pg.psql(&format!(
        "SELECT rolpassword FROM pg_authid WHERE rolname = '{SCRAM_USER}'"
    ));
    let verifier = Verifier::parse(&stored).unwrap();
    let salted = salted_password(password, &verifier.salt, verifier.iterations);
    ScramKeys {
        client_key: hmac(&salted, b"Client Key"),
        server_key: hmac(&salted, b"Server Key"),
    }
}

/// A connection past the startup packet, AuthenticationSASL read.
async fn at_sasl(port: u16) -> Wire {
    let mut wire = Wire::connect(port).await;
    wire.send(&startup_bytes(SCRAM_USER, "postgres")).await;
    let (tag, body) = wire.recv().await.unwrap();
    assert_eq!(tag, b'R');
    assert!(matches!(
        Authentication::parse(&body),
        Ok(Authentication::Sasl(_))
    ));
    wire
}

fn initial(mechanism: &str, data: Option<&[u8]>) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::sasl_initial_response(&mut out, mechanism, data).unwrap();
    out
}

fn response(data: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::sasl_response(&mut out, data).unwrap();
    out
}

/// The pooler's answer: its FATAL, after which it closes the connection.
async fn refusal(wire: &mut Wire) -> (String, String) {
    let error = wire.next_error().await.expect("closed without an error");
    assert!(wire.recv().await.is_none(), "still open after {error:?}");
    error
}

/// A connection whose client-first was accepted, with the client-final a good client would send
/// next (and the server-first it answers).
async fn at_final(port: u16, keys: &ScramKeys) -> (Wire, String, String) {
    let mut wire = at_sasl(port).await;
    let mut client = ScramClient::new(ClientCredential::Keys(keys.clone())).unwrap();
    wire.send(&initial(MECHANISM, Some(&client.client_first())))
        .await;
    let (tag, body) = wire.recv().await.unwrap();
    assert_eq!(tag, b'R');
    let Ok(Authentication::SaslContinue(first)) = Authentication::parse(&body) else {
        panic!("no SASLContinue");
    };
    let last = client.handle_server_first(first).unwrap();
    (
        wire,
        String::from_utf8(first.to_vec()).unwrap(),
        String::from_utf8(last).unwrap(),
    )
}

fn client_first_cases() -> Vec<(&'static str, Vec<u8>)> {
    let long = format!("n,,n=,r={}", "a".repeat(100_000));
    vec![
        ("empty", b"".to_vec()),
        ("no GS2 header", b"n=,r=abc".to_vec()),
        ("unknown GS2 flag", b"x,,n=,r=abc".to_vec()),
        (
            "channel binding demanded",
            b"p=tls-server-end-point,,n=,r=abc".to_vec(),
        ),
        ("authorization identity", b"n,a=postgres,n=,r=abc".to_vec()),
        ("user missing", b"n,,r=abc".to_vec()),
        ("nonce missing", b"n,,n=".to_vec()),
        ("nonce empty", b"n,,n=,r=".to_vec()),
        ("nonce duplicated", b"n,,n=,r=abc,r=def".to_vec()),
        ("user duplicated", b"n,,n=,n=,r=abc".to_vec()),
        ("fields swapped", b"n,,r=abc,n=".to_vec()),
        ("mandatory extension", b"n,,m=ext,n=,r=abc".to_vec()),
        ("non-printable nonce", b"n,,n=,r=ab\x7fcd".to_vec()),
        ("NUL byte", b"n,,n=\0,r=abc".to_vec()),
        ("not an attribute", b"n,,n=,r=abc,garbage".to_vec()),
        ("oversized", long.into_bytes()),
    ]
}

/// Client-final variants built from the good one: `c=biws,r=<nonce>,p=<proof>`.
fn client_final_cases(good: &str) -> Vec<(&'static str, String)> {
    let (without_proof, proof) = good.rsplit_once(",p=").unwrap();
    let nonce = without_proof.strip_prefix("c=biws,r=").unwrap();
    let mut altered = nonce.to_owned();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let short = B64.encode([7u8; 16]);
    vec![
        ("empty", String::new()),
        ("channel binding missing", format!("r={nonce},p={proof}")),
        ("nonce missing", format!("c=biws,p={proof}")),
        ("proof missing", format!("c=biws,r={nonce}")),
        (
            "channel binding duplicated",
            format!("c=biws,c=biws,r={nonce},p={proof}"),
        ),
        (
            "nonce duplicated",
            format!("c=biws,r={nonce},r={nonce},p={proof}"),
        ),
        (
            "proof duplicated",
            format!("c=biws,r={nonce},p={proof},p={proof}"),
        ),
        ("fields swapped", format!("r={nonce},c=biws,p={proof}")),
        (
            "proof not base64",
            format!("c=biws,r={nonce},p=!!not*base64!!"),
        ),
        ("proof too short", format!("c=biws,r={nonce},p={short}")),
        ("proof empty", format!("c=biws,r={nonce},p=")),
        ("nonce altered", format!("c=biws,r={altered},p={proof}")),
        ("nonce extended", format!("c=biws,r={nonce}x,p={proof}")),
        (
            "nonce truncated",
            format!("c=biws,r={},p={proof}", &nonce[..24]),
        ),
        (
            "channel binding flag y",
            format!("c=eSws,r={nonce},p={proof}"),
        ),
        (
            "channel binding data",
            format!("c=cD10bHMtdW5pcXVlLCw=,r={nonce},p={proof}"),
        ),
        (
            "channel binding not base64",
            format!("c=bi*s,r={nonce},p={proof}"),
        ),
        ("attribute after the proof", format!("{good},x=1")),
        ("NUL byte", format!("c=biws,r={nonce}\0,p={proof}")),
        (
            "oversized",
            format!("c=biws,r={nonce},x={},p={proof}", "a".repeat(100_000)),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_scram_is_refused_and_the_pooler_keeps_serving() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut bin = Binary::start(&pg, pg.port(), "auth_type = scram-sha-256").await;
    let keys = keys_for(&pg, PASSWORD);
    let wrong_keys = keys_for(&pg, "not the password");
    // (case, the pooler's refusal)
    let mut seen: Vec<(String, (String, String))> = Vec::new();

    for (case, data) in client_first_cases() {
        let mut wire = at_sasl(bin.port).await;
        wire.send(&initial(MECHANISM, Some(&data))).await;
        seen.push((format!("client-first {case}"), refusal(&mut wire).await));
    }
    let mut wire = at_sasl(bin.port).await;
    wire.send(&initial(MECHANISM, None)).await;
    seen.push(("client-first absent".into(), refusal(&mut wire).await));
    for mechanism in ["SCRAM-SHA-256-PLUS", "PLAIN", ""] {
        let mut wire = at_sasl(bin.port).await;
        wire.send(&initial(mechanism, Some(b"n,,n=,r=abc"))).await;
        seen.push((format!("mechanism {mechanism:?}"), refusal(&mut wire).await));
    }

    let cases = client_final_cases(&at_final(bin.port, &keys).await.2).len();
    for i in 0..cases {
        // Each case on a fresh exchange, built from the final that exchange expects.
        let (mut wire, _, fresh) = at_final(bin.port, &keys).await;
        let (case, data) = client_final_cases(&fresh).into_iter().nth(i).unwrap();
        wire.send(&response(data.as_bytes())).await;
        seen.push((format!("client-final {case}"), refusal(&mut wire).await));
    }

    // A proof replayed on a later exchange: the whole old message, and the old proof under the
    // new exchange's nonce.
    let (old, _, old_final) = at_final(bin.port, &keys).await;
    drop(old);
    let (mut wire, _, _) = at_final(bin.port, &keys).await;
    wire.send(&response(old_final.as_bytes())).await;
    seen.push(("replayed client-final".into(), refusal(&mut wire).await));
    let old_proof = old_final.rsplit_once(",p=").unwrap().1;
    let (mut wire, _, fresh) = at_final(bin.port, &keys).await;
    let spliced = format!("{},p={old_proof}", fresh.rsplit_once(",p=").unwrap().0);
    wire.send(&response(spliced.as_bytes())).await;
    seen.push((
        "replayed proof under the current nonce".into(),
        refusal(&mut wire).await,
    ));
    // The wrong password, well formed.
    let (mut wire, _, last) = at_final(bin.port, &wrong_keys).await;
    wire.send(&response(last.as_bytes())).await;
    seen.push(("wrong password".into(), refusal(&mut wire).await));

    let wrong: Vec<_> = seen
        .iter()
        .filter(|(case, (code, text))| {
            let want = match case.starts_with("mechanism") {
                true => ("08P01", INVALID_MECHANISM),
                false => SASL_FAILED,
            };
            (code.as_str(), text.as_str()) != want
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    eprintln!("{} malformed exchanges refused", seen.len());
    assert!(bin.alive(), "{}", bin.log());
    assert!(!bin.log().contains("panicked"), "{}", bin.log());
    let good_login = Wire::login(bin.port, SCRAM_USER, "postgres", PASSWORD).await;
    assert!(good_login.is_ok(), "{:?}", good_login.err());
}

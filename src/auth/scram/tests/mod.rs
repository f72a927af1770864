//! Unit tests of SCRAM: recorded vectors, in-process exchanges, malformed input, fuzz seeds.

use super::*;
use crate::auth::ScramMessage;

mod exchange;
mod malformed;
mod seeds;
mod vectors;

/// A known server with `password`, a cheap verifier and a fixed server nonce.
fn server_for(password: &str, server_nonce: &str) -> ScramServer {
    let verifier = Verifier::derive(password, b"0123456789abcdef", 2);
    ScramServer::new(
        ServerSecret::Verifier(&verifier),
        Nonce::fixed(server_nonce).unwrap(),
    )
    .unwrap()
}

/// A password client with a fixed nonce.
fn client_for(password: &str, client_nonce: &str) -> ScramClient {
    ScramClient::with_nonce(
        ClientCredential::Password(password.to_owned()),
        Nonce::fixed(client_nonce).unwrap(),
    )
}

/// Runs a whole exchange in process; the error of whichever side failed first.
fn run_exchange(
    client: &mut ScramClient,
    server: &mut ScramServer,
) -> Result<ServerSuccess, AuthError> {
    let server_first = server.handle_client_first(&client.client_first())?;
    let client_final = client.handle_server_first(&server_first)?;
    let success = server.handle_client_final(&client_final)?;
    client.verify_server_final(&success.server_final)?;
    Ok(success)
}

#[test]
fn verifier_round_trips_through_text() {
    let v = Verifier::derive("secret", b"0123456789abcdef", 4096);
    let text = v.to_string();
    assert!(text.starts_with("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"));
    assert_eq!(Verifier::parse(&text), Some(v));
}

#[test]
fn rejects_malformed_verifiers() {
    for bad in [
        "",
        "md5abc",
        "SCRAM-SHA-256$",
        "SCRAM-SHA-256$0:AAAA$AAAA:AAAA",
        "SCRAM-SHA-256$4096:!!$AAAA:AAAA",
        "SCRAM-SHA-256$4096:AAAA$AAAA:AAAA",
    ] {
        assert_eq!(Verifier::parse(bad), None, "{bad}");
    }
}

#[test]
fn random_nonces_are_24_base64_chars_and_differ() {
    let a = Nonce::random().unwrap();
    let b = Nonce::random().unwrap();
    assert_eq!(a.as_str().len(), 24);
    assert_ne!(a, b);
    assert!(Nonce::fixed(a.as_str()).is_ok());
}

#[test]
fn caller_nonces_are_validated() {
    for bad in ["", "a,b", "sp ace", "tab\t", "é", &"x".repeat(257)] {
        assert_eq!(
            Nonce::fixed(bad),
            Err(AuthError::InvalidCallerNonce),
            "{bad:?}"
        );
    }
    assert!(Nonce::fixed("r=,=x~!").is_err());
    assert!(Nonce::fixed("r==x~!").is_ok());
}

#[test]
fn mechanism_check() {
    assert!(check_mechanism(b"SCRAM-SHA-256").is_ok());
    for bad in [&b"SCRAM-SHA-256-PLUS"[..], b"scram-sha-256", b""] {
        assert_eq!(check_mechanism(bad), Err(AuthError::UnsupportedMechanism));
    }
}

#[test]
fn debug_output_hides_keys() {
    let keys = ScramKeys {
        client_key: [0xab; 32],
        server_key: [0xcd; 32],
    };
    let text = format!(
        "{keys:?} {:?}",
        ClientCredential::Password("hunter2".into())
    );
    assert!(!text.contains("hunter2") && !text.contains("171"), "{text}");
    let verifier = Verifier::derive("pw", b"salt", 1);
    let text = format!("{verifier:?}");
    assert!(!text.contains(&B64.encode(verifier.stored_key)), "{text}");
    assert!(!text.contains(&B64.encode(verifier.server_key)), "{text}");
}

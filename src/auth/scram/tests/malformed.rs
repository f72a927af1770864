//! Every malformed message is refused with a typed error, never a panic, on both sides.

use proptest::prelude::*;

use super::*;
use crate::auth::ScramMessage::{ClientFinal, ClientFirst, ServerFinal, ServerFirst};

fn missing(message: ScramMessage, attr: char) -> AuthError {
    AuthError::MissingAttribute { message, attr }
}

fn duplicate(message: ScramMessage, attr: char) -> AuthError {
    AuthError::DuplicateAttribute { message, attr }
}

fn not_attr(message: ScramMessage, found: &str) -> AuthError {
    AuthError::NotAnAttribute {
        message,
        found: found.into(),
    }
}

fn bad_b64(message: ScramMessage, attr: char) -> AuthError {
    AuthError::InvalidBase64 { message, attr }
}

fn client_first_error(msg: &[u8]) -> AuthError {
    server_for("pw", "SRV")
        .handle_client_first(msg)
        .unwrap_err()
}

#[test]
fn malformed_client_first_messages() {
    let long = format!("n,,n=,r={}", "a".repeat(MAX_MESSAGE_LEN));
    let cases: &[(&[u8], AuthError)] = &[
        (b"", AuthError::Empty(ClientFirst)),
        (
            long.as_bytes(),
            AuthError::TooLong {
                message: ClientFirst,
                len: long.len(),
                max: MAX_MESSAGE_LEN,
            },
        ),
        (b"n,,n=,r=a\0b", AuthError::NulByte(ClientFirst)),
        (b"n", AuthError::MalformedGs2Header),
        (b"n,", AuthError::MalformedGs2Header),
        (b"x,,n=,r=abc", AuthError::MalformedGs2Header),
        (b"nn,,n=,r=abc", AuthError::MalformedGs2Header),
        (
            b"p=tls-server-end-point,,n=,r=abc",
            AuthError::ChannelBindingNotSupported,
        ),
        (b"n,a=admin,n=,r=abc", AuthError::AuthzidNotSupported),
        (b"n,zz,n=,r=abc", AuthError::MalformedGs2Header),
        (
            b"n,,m=ext,n=,r=abc",
            AuthError::MandatoryExtension(ClientFirst),
        ),
        (
            b"n,,n=,r=abc,m=ext",
            AuthError::MandatoryExtension(ClientFirst),
        ),
        (b"n,,r=abc", missing(ClientFirst, 'n')),
        (b"n,,n=", missing(ClientFirst, 'r')),
        (b"n,,n=,x=abc", missing(ClientFirst, 'r')),
        (b"n,,", not_attr(ClientFirst, "")),
        (b"n,,,n=,r=abc", not_attr(ClientFirst, "")),
        (b"n,,n=,r=", AuthError::InvalidNonce(ClientFirst)),
        (b"n,,n=,r=a b", AuthError::InvalidNonce(ClientFirst)),
        (b"n,,n=,r=abc\x80", AuthError::InvalidNonce(ClientFirst)),
        (b"n,,n=,r=abc,r=def", duplicate(ClientFirst, 'r')),
        (b"n,,n=,r=abc,n=x", duplicate(ClientFirst, 'n')),
        (b"n,,n=,r=abc,e=1,e=2", duplicate(ClientFirst, 'e')),
        (b"n,,n=,r=abc,", not_attr(ClientFirst, "")),
        (b"n,,n=,r=abc,1=x", not_attr(ClientFirst, "1=x")),
        (b"n,,n=,r=abc,xx=1", not_attr(ClientFirst, "xx=1")),
        (b"n,,n=,r=abc,\xff=1", not_attr(ClientFirst, "\\xff=1")),
    ];
    for (msg, expected) in cases {
        assert_eq!(
            &client_first_error(msg),
            expected,
            "{}",
            String::from_utf8_lossy(msg)
        );
    }
}

#[test]
fn client_first_quirks_that_are_accepted() {
    for msg in [
        &b"n,,n=,r=r=a=b"[..],
        b"y,,n=someone,r=x",
        b"n,,n=,r=abc,e=ext",
        b"n,,n=a=2Cb,r==",
    ] {
        assert!(
            server_for("pw", "SRV").handle_client_first(msg).is_ok(),
            "{msg:?}"
        );
    }
}

/// A server that has answered `n,,n=,r=CLI`, and the right client-final for it.
fn after_first() -> (ScramServer, String) {
    let mut server = server_for("pw", "SRV");
    let mut client = client_for("pw", "CLI");
    let first = server.handle_client_first(&client.client_first()).unwrap();
    let last = client.handle_server_first(&first).unwrap();
    (server, String::from_utf8(last).unwrap())
}

fn client_final_result(msg: &[u8]) -> Result<ServerSuccess, AuthError> {
    after_first().0.handle_client_final(msg)
}

#[test]
fn the_unmodified_client_final_is_accepted() {
    let (mut server, good) = after_first();
    assert!(server.handle_client_final(good.as_bytes()).is_ok());
}

#[test]
fn malformed_client_final_messages() {
    let good = after_first().1;
    let proof = good.rsplit_once(",p=").unwrap().1.to_owned();
    let long = format!("{good},x={}", "a".repeat(MAX_MESSAGE_LEN));
    let unpadded = proof.trim_end_matches('=');
    let cases: Vec<(String, AuthError)> = vec![
        (String::new(), AuthError::Empty(ClientFinal)),
        (
            long.clone(),
            AuthError::TooLong {
                message: ClientFinal,
                len: long.len(),
                max: MAX_MESSAGE_LEN,
            },
        ),
        (
            good.replace("c=biws", "c=bi\0ws"),
            AuthError::NulByte(ClientFinal),
        ),
        (format!("r=CLISRV,p={proof}"), missing(ClientFinal, 'c')),
        (
            format!("r=CLISRV,c=biws,p={proof}"),
            missing(ClientFinal, 'c'),
        ),
        (format!("c=biws,p={proof}"), missing(ClientFinal, 'r')),
        ("c=biws,r=CLISRV".into(), missing(ClientFinal, 'p')),
        ("c=biws,r=CLISRV,x=1".into(), missing(ClientFinal, 'p')),
        (
            format!("{good},p={proof}"),
            AuthError::TrailingData(ClientFinal),
        ),
        (format!("{good},x=1"), AuthError::TrailingData(ClientFinal)),
        (
            format!("c=biws,r=CLISRV,c=biws,p={proof}"),
            duplicate(ClientFinal, 'c'),
        ),
        (
            format!("c=biws,r=CLISRV,r=CLISRV,p={proof}"),
            duplicate(ClientFinal, 'r'),
        ),
        (
            format!("c=biws,r=CLISRV,x=1,x=2,p={proof}"),
            duplicate(ClientFinal, 'x'),
        ),
        (
            format!("c=biws,r=CLISRV,,p={proof}"),
            not_attr(ClientFinal, ""),
        ),
        ("c=biws,r=CLISRV,p=!!!!".into(), bad_b64(ClientFinal, 'p')),
        ("c=biws,r=CLISRV,p=AAAA".into(), bad_b64(ClientFinal, 'p')),
        ("c=biws,r=CLISRV,p=".into(), bad_b64(ClientFinal, 'p')),
        (
            format!("c=biws,r=CLISRV,p={unpadded}"),
            bad_b64(ClientFinal, 'p'),
        ),
        (
            format!("c=biws,r=CLISRV,p={proof}{proof}"),
            bad_b64(ClientFinal, 'p'),
        ),
        (
            format!("c=biws,r=CLISRX,p={proof}"),
            AuthError::NonceMismatch(ClientFinal),
        ),
        (
            format!("c=biws,r=CLI,p={proof}"),
            AuthError::NonceMismatch(ClientFinal),
        ),
        (
            format!("c=biws,r=CLISRVx,p={proof}"),
            AuthError::NonceMismatch(ClientFinal),
        ),
        (
            format!("c=biws,r=,p={proof}"),
            AuthError::NonceMismatch(ClientFinal),
        ),
        (
            format!("c=eSws,r=CLISRV,p={proof}"),
            AuthError::ChannelBindingMismatch,
        ),
        (
            format!("c=,r=CLISRV,p={proof}"),
            AuthError::ChannelBindingMismatch,
        ),
        (
            format!("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=CLISRV,p={proof}"),
            AuthError::ChannelBindingMismatch,
        ),
        // Syntactically fine, but the proof covers the message without the extension.
        (
            format!("c=biws,r=CLISRV,x=ext,p={proof}"),
            AuthError::InvalidProof,
        ),
        (
            format!("c=biws,r=CLISRV,p={}", B64.encode([0u8; 32])),
            AuthError::InvalidProof,
        ),
    ];
    for (msg, expected) in &cases {
        assert_eq!(
            &client_final_result(msg.as_bytes()).unwrap_err(),
            expected,
            "{msg}"
        );
    }
}

#[test]
fn a_replayed_proof_is_refused() {
    // Capture a good client-final from one exchange...
    let captured = after_first().1;
    let proof = captured.rsplit_once(",p=").unwrap().1;
    // ...and replay it, with the new nonce, in another exchange with a fresh server nonce.
    let mut server = server_for("pw", "SRV2");
    server.handle_client_first(b"n,,n=,r=CLI").unwrap();
    let replay = format!("c=biws,r=CLISRV2,p={proof}");
    assert_eq!(
        server.handle_client_final(replay.as_bytes()).unwrap_err(),
        AuthError::InvalidProof
    );
}

fn server_first_error(msg: &[u8]) -> AuthError {
    client_for("pw", "CLI")
        .handle_server_first(msg)
        .unwrap_err()
}

#[test]
fn malformed_server_first_messages() {
    let long = format!("r=CLI{},s=QUJD,i=1", "a".repeat(MAX_MESSAGE_LEN));
    let bad_iterations = AuthError::InvalidIterations {
        max: MAX_ITERATIONS,
    };
    let cases: &[(&[u8], AuthError)] = &[
        (b"", AuthError::Empty(ServerFirst)),
        (
            long.as_bytes(),
            AuthError::TooLong {
                message: ServerFirst,
                len: long.len(),
                max: MAX_MESSAGE_LEN,
            },
        ),
        (b"r=CLISRV,s=QUJD,i=1\0", AuthError::NulByte(ServerFirst)),
        (
            b"m=x,r=CLISRV,s=QUJD,i=1",
            AuthError::MandatoryExtension(ServerFirst),
        ),
        (
            b"r=CLISRV,s=QUJD,i=1,m=x",
            AuthError::MandatoryExtension(ServerFirst),
        ),
        (b"s=QUJD,r=CLISRV,i=1", missing(ServerFirst, 'r')),
        (b"r=CLISRV,i=1", missing(ServerFirst, 's')),
        (b"r=CLISRV,s=QUJD", missing(ServerFirst, 'i')),
        (b"r=CLISRV,s=,i=1", bad_b64(ServerFirst, 's')),
        (b"r=CLISRV,s=!!,i=1", bad_b64(ServerFirst, 's')),
        (b"r=CLISRV,s=QUJ,i=1", bad_b64(ServerFirst, 's')),
        (b"r=CLISRV,s=QUJD,i=0", bad_iterations.clone()),
        (b"r=CLISRV,s=QUJD,i=", bad_iterations.clone()),
        (b"r=CLISRV,s=QUJD,i=-1", bad_iterations.clone()),
        (b"r=CLISRV,s=QUJD,i=+1", bad_iterations.clone()),
        (b"r=CLISRV,s=QUJD,i=01", bad_iterations.clone()),
        (b"r=CLISRV,s=QUJD,i=1x", bad_iterations.clone()),
        (b"r=CLISRV,s=QUJD,i=10000001", bad_iterations.clone()),
        (b"r=CLISRV,s=QUJD,i=4294967296", bad_iterations.clone()),
        (b"r=CLISRV,s=QUJD,i=99999999999999999999", bad_iterations),
        (
            b"r=XYZSRV,s=QUJD,i=1",
            AuthError::NonceMismatch(ServerFirst),
        ),
        (b"r=CLI,s=QUJD,i=1", AuthError::NonceMismatch(ServerFirst)),
        (b"r=CL,s=QUJD,i=1", AuthError::NonceMismatch(ServerFirst)),
        (
            b"r=CLI SRV,s=QUJD,i=1",
            AuthError::InvalidNonce(ServerFirst),
        ),
        (b"r=,s=QUJD,i=1", AuthError::InvalidNonce(ServerFirst)),
        (b"r=CLISRV,s=QUJD,i=1,r=x", duplicate(ServerFirst, 'r')),
        (b"r=CLISRV,s=QUJD,i=1,", not_attr(ServerFirst, "")),
        (b"garbage", not_attr(ServerFirst, "garbage")),
    ];
    for (msg, expected) in cases {
        assert_eq!(
            &server_first_error(msg),
            expected,
            "{}",
            String::from_utf8_lossy(msg)
        );
    }
}

#[test]
fn server_first_quirks_that_are_accepted() {
    for msg in [
        &b"r=CLISRV,s=QUJD,i=1,x=ext"[..],
        b"r=CLIr=SRV=,s=QUJD,i=1",
        b"r=CLI=,s=QUJD,i=10000000",
    ] {
        // 10,000,000 iterations would be slow: use keys so no PBKDF2 runs.
        let keys = ScramKeys {
            client_key: [1; 32],
            server_key: [2; 32],
        };
        let mut client =
            ScramClient::with_nonce(ClientCredential::Keys(keys), Nonce::fixed("CLI").unwrap());
        assert!(
            client.handle_server_first(msg).is_ok(),
            "{}",
            String::from_utf8_lossy(msg)
        );
    }
}

/// A client that has sent its final message to a real server, and the server's good answer.
fn awaiting_final() -> (ScramClient, String) {
    let mut server = server_for("pw", "SRV");
    let mut client = client_for("pw", "CLI");
    let first = server.handle_client_first(&client.client_first()).unwrap();
    let last = client.handle_server_first(&first).unwrap();
    let good = server.handle_client_final(&last).unwrap().server_final;
    (client, String::from_utf8(good).unwrap())
}

#[test]
fn malformed_server_final_messages() {
    let good = awaiting_final().1;
    let cases: Vec<(String, AuthError)> = vec![
        (String::new(), AuthError::Empty(ServerFinal)),
        (
            format!("e={}", "x".repeat(MAX_MESSAGE_LEN)),
            AuthError::TooLong {
                message: ServerFinal,
                len: MAX_MESSAGE_LEN + 2,
                max: MAX_MESSAGE_LEN,
            },
        ),
        ("v=".into(), bad_b64(ServerFinal, 'v')),
        ("v=AAAA".into(), bad_b64(ServerFinal, 'v')),
        ("v=!!".into(), bad_b64(ServerFinal, 'v')),
        ("x=1".into(), missing(ServerFinal, 'v')),
        ("garbage".into(), not_attr(ServerFinal, "garbage")),
        (format!("{good},{good}"), duplicate(ServerFinal, 'v')),
        (format!("{good},"), not_attr(ServerFinal, "")),
        (
            format!("v={}", B64.encode([9u8; 32])),
            AuthError::InvalidServerSignature,
        ),
        ("e=".into(), AuthError::ServerError(String::new())),
        (
            "e=other-error\x01\u{7f}".into(),
            AuthError::ServerError("other-error\\x01\\x7f".into()),
        ),
        ("e=x\0".into(), AuthError::NulByte(ServerFinal)),
    ];
    for (msg, expected) in &cases {
        assert_eq!(
            &awaiting_final()
                .0
                .verify_server_final(msg.as_bytes())
                .unwrap_err(),
            expected,
            "{msg}"
        );
    }
    assert!(
        awaiting_final()
            .0
            .verify_server_final(format!("{good},x=ext").as_bytes())
            .is_ok()
    );
}

#[test]
fn errors_name_the_culprit_and_carry_no_secret() {
    use crate::error::Fault;
    assert_eq!(client_first_error(b"").fault(), Fault::Client);
    assert_eq!(server_first_error(b"").fault(), Fault::Server);
    assert_eq!(AuthError::InvalidProof.fault(), Fault::Client);
    let (_, good) = after_first();
    let err = client_final_result(format!("{good}x").as_bytes()).unwrap_err();
    assert!(
        !err.to_string().contains(good.rsplit_once(",p=").unwrap().1),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzz_entry(&data);
    }

    #[test]
    fn any_change_to_a_good_client_final_fails(index in 0usize..200, byte in any::<u8>()) {
        let (mut server, good) = after_first();
        let mut msg = good.clone().into_bytes();
        let i = index % msg.len();
        prop_assume!(msg[i] != byte);
        msg[i] = byte;
        prop_assert!(server.handle_client_final(&msg).is_err());
    }
}

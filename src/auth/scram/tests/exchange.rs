//! Server and client talking to each other in process: random passwords and nonces, mock
//! exchanges, plaintext secrets, pass-through, and misuse of the state machines.

use super::*;

/// xorshift64*: deterministic, so a failure is reproducible from its iteration number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    /// A nonce of RFC 5802 printable characters, salted with `r=`, `=` and `r=r=` pieces that
    /// trip parsers splitting on the wrong `=`.
    fn nonce(&mut self) -> String {
        const PIECES: [&str; 4] = ["r=", "=", "r=r=", "s=i="];
        let mut out = String::new();
        for _ in 0..1 + self.below(40) {
            if self.below(6) == 0 {
                out.push_str(PIECES[self.below(PIECES.len())]);
            } else {
                let c = u8::try_from(0x21 + self.below(0x7e - 0x21 + 1)).unwrap();
                out.push(char::from(if c == b',' { b'~' } else { c }));
            }
        }
        out
    }

    fn password(&mut self) -> String {
        let pool: Vec<char> = "aZ09 ,=!é€😀\u{0}\t\"'\\".chars().collect();
        (0..self.below(30))
            .map(|_| pool[self.below(pool.len())])
            .collect()
    }
}

#[test]
fn ten_thousand_random_exchanges_all_succeed() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..10_000 {
        let password = rng.password();
        let (client_nonce, server_nonce) = (rng.nonce(), rng.nonce());
        let salt: Vec<u8> = (0..1 + rng.below(32)).map(|_| rng.next() as u8).collect();
        let iterations = 1 + u32::try_from(rng.below(4)).unwrap();
        let verifier = Verifier::derive(&password, &salt, iterations);
        let mut server = ScramServer::new(
            ServerSecret::Verifier(&verifier),
            Nonce::fixed(&server_nonce).unwrap(),
        )
        .unwrap();
        let mut client = client_for(&password, &client_nonce);
        let result = run_exchange(&mut client, &mut server);
        assert!(
            result.is_ok(),
            "exchange {i} failed: {result:?} (client nonce {client_nonce:?}, server nonce {server_nonce:?})"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// The same property with proptest's shrinking: any printable nonces, any password.
    #[test]
    fn exchanges_succeed_for_any_printable_nonces(
        client_nonce in "[!-+\\--~]{1,64}",
        server_nonce in "[!-+\\--~]{1,64}",
        password in "\\PC{0,20}",
    ) {
        let mut server = server_for(&password, &server_nonce);
        let mut client = client_for(&password, &client_nonce);
        proptest::prop_assert!(run_exchange(&mut client, &mut server).is_ok());
    }
}

#[test]
fn wrong_password_is_invalid_proof() {
    let mut server = server_for("right", "SRV");
    let mut client = client_for("wrong", "CLI");
    assert_eq!(
        run_exchange(&mut client, &mut server).unwrap_err(),
        AuthError::InvalidProof
    );
}

#[test]
fn plaintext_secret_gets_a_fresh_random_salt_each_time() {
    let mut firsts = Vec::new();
    for _ in 0..2 {
        let nonce = Nonce::random().unwrap();
        let mut server =
            ScramServer::new(ServerSecret::Password("pw", DEFAULT_ITERATIONS), nonce).unwrap();
        let mut client = ScramClient::new(ClientCredential::Password("pw".into())).unwrap();
        let first = server.handle_client_first(&client.client_first()).unwrap();
        assert!(String::from_utf8_lossy(&first).ends_with(",i=4096"));
        let last = client.handle_server_first(&first).unwrap();
        let success = server.handle_client_final(&last).unwrap();
        client.verify_server_final(&success.server_final).unwrap();
        firsts.push(String::from_utf8(first).unwrap());
    }
    let salt = |s: &str| s.split(',').nth(1).unwrap().to_owned();
    assert_ne!(salt(&firsts[0]), salt(&firsts[1]));
}

#[test]
fn mock_exchange_fails_at_the_proof_with_a_stable_salt() {
    let first_of = |user: &str, key: &[u8]| {
        let mut server =
            ScramServer::mock(user, key, DEFAULT_ITERATIONS, Nonce::fixed("SRV").unwrap());
        let first = server.handle_client_first(b"n,,n=,r=abc").unwrap();
        let text = String::from_utf8(first).unwrap();
        // Whatever password the client tries, the exchange fails only at the end.
        let mut client = client_for("anything", "abc");
        let last = client.handle_server_first(text.as_bytes()).unwrap();
        assert_eq!(
            server.handle_client_final(&last).unwrap_err(),
            AuthError::InvalidProof
        );
        text
    };
    let a = first_of("ghost", b"key-1");
    assert_eq!(
        a,
        first_of("ghost", b"key-1"),
        "salt must not reveal a mock by changing"
    );
    assert_ne!(a, first_of("other", b"key-1"));
    assert_ne!(a, first_of("ghost", b"key-2"));
    assert!(a.ends_with(",i=4096"));
    let salt = a.split(",s=").nth(1).unwrap().split(',').next().unwrap();
    assert_eq!(B64.decode(salt).unwrap().len(), SALT_LEN);
}

#[test]
fn pass_through_keys_log_in_where_the_verifier_is_identical() {
    let mut server = server_for("pw", "SRV1");
    let mut client = client_for("pw", "CLI1");
    let keys = run_exchange(&mut client, &mut server).unwrap().keys;

    // The "PostgreSQL server" has the same verifier: the recovered keys are enough.
    let mut backend = server_for("pw", "SRV2");
    let mut pooler = ScramClient::with_nonce(
        ClientCredential::Keys(keys.clone()),
        Nonce::random().unwrap(),
    );
    run_exchange(&mut pooler, &mut backend).unwrap();

    // A different salt means a different verifier: the server refuses the proof.
    let other = Verifier::derive("pw", b"another salt", 2);
    let mut backend =
        ScramServer::new(ServerSecret::Verifier(&other), Nonce::random().unwrap()).unwrap();
    let mut pooler =
        ScramClient::with_nonce(ClientCredential::Keys(keys), Nonce::random().unwrap());
    assert_eq!(
        run_exchange(&mut pooler, &mut backend).unwrap_err(),
        AuthError::InvalidProof
    );
}

#[test]
fn client_rejects_a_server_that_does_not_know_the_secret() {
    let mut client = client_for("pw", "CLI");
    let mut impostor = server_for("not pw", "SRV");
    let first = impostor
        .handle_client_first(&client.client_first())
        .unwrap();
    client.handle_server_first(&first).unwrap();
    // The impostor cannot produce v=; a forged one is refused.
    let forged = format!("v={}", B64.encode([7u8; 32]));
    assert_eq!(
        client.verify_server_final(forged.as_bytes()),
        Err(AuthError::InvalidServerSignature)
    );
}

#[test]
fn client_reports_the_servers_error() {
    let mut client = client_for("pw", "CLI");
    let first = server_for("pw", "SRV")
        .handle_client_first(&client.client_first())
        .unwrap();
    client.handle_server_first(&first).unwrap();
    let err = client.verify_server_final(b"e=invalid-proof").unwrap_err();
    assert_eq!(err, AuthError::ServerError("invalid-proof".into()));
    assert_eq!(err.fault(), crate::error::Fault::Server);
}

#[test]
fn state_machines_refuse_messages_out_of_order_and_after_the_end() {
    let mut server = server_for("pw", "SRV");
    assert_eq!(
        server
            .handle_client_final(b"c=biws,r=x,p=AAAA")
            .unwrap_err(),
        AuthError::OutOfOrder(ScramMessage::ClientFinal)
    );
    // The failed call ended the exchange.
    assert_eq!(
        server.handle_client_first(b"n,,n=,r=x").unwrap_err(),
        AuthError::OutOfOrder(ScramMessage::ClientFirst)
    );

    let mut client = client_for("pw", "CLI");
    assert_eq!(
        client.verify_server_final(b"v=AAAA").unwrap_err(),
        AuthError::OutOfOrder(ScramMessage::ServerFinal)
    );

    let mut server = server_for("pw", "SRV");
    let mut client = client_for("pw", "CLI");
    run_exchange(&mut client, &mut server).unwrap();
    assert!(server.handle_client_first(b"n,,n=,r=x").is_err());
    assert!(client.handle_server_first(b"r=CLIx,s=AAAA,i=1").is_err());
}

#[test]
fn username_is_escaped_and_ignored_by_the_server() {
    let mut server = server_for("pw", "SRV");
    let mut client = client_for("pw", "CLI").with_username("a,b=c");
    assert_eq!(client.client_first(), b"n,,n=a=2Cb=3Dc,r=CLI");
    run_exchange(&mut client, &mut server).unwrap();
}

/// A client-final computed by hand for a client that sent `header` and nonce `CLI` to
/// [`server_for`]`("pw", "SRV")`, with `c=` set to `channel_binding`.
fn manual_final(server_first: &[u8], bare: &str, channel_binding: &str) -> String {
    let salted = salted_password("pw", b"0123456789abcdef", 2);
    let client_key = hmac(&salted, b"Client Key");
    let without_proof = format!("c={channel_binding},r=CLISRV");
    let auth = format!(
        "{bare},{},{without_proof}",
        String::from_utf8_lossy(server_first)
    );
    let proof = xor(&client_key, &hmac(&sha256(&client_key), auth.as_bytes()));
    format!("{without_proof},p={}", B64.encode(proof))
}

#[test]
fn y_flag_pairs_with_c_eysws_only() {
    for (header, channel_binding, ok) in [
        ("y,,", "eSws", true),
        ("y,,", "biws", false),
        ("n,,", "biws", true),
        ("n,,", "eSws", false),
    ] {
        let mut server = server_for("pw", "SRV");
        let first = server
            .handle_client_first(format!("{header}n=,r=CLI").as_bytes())
            .unwrap();
        let last = manual_final(&first, "n=,r=CLI", channel_binding);
        let result = server.handle_client_final(last.as_bytes());
        if ok {
            assert!(result.is_ok(), "{header} {channel_binding}");
        } else {
            assert_eq!(result.unwrap_err(), AuthError::ChannelBindingMismatch);
        }
    }
}

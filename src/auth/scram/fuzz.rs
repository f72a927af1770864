//! [`fuzz_entry`]: arbitrary bytes through every SCRAM parser and both state machines. Used by
//! `fuzz/fuzz_targets/scram.rs` and, through the seed replay test, by `cargo test`.

use super::{
    ClientCredential, Nonce, ScramClient, ScramKeys, ScramServer, ServerSecret, Verifier, message,
};

/// Client nonce of the fuzzed client and server side, short so a fuzzer finds it.
pub(super) const CLIENT_NONCE: &str = "fyko";
/// Server nonce of the fuzzed server side.
pub(super) const SERVER_NONCE: &str = "srv";

/// Splits `data` at `\n` into client-first, client-final, server-first, server-final and
/// stored-secret text, and feeds each to its consumer. Must never panic.
pub fn fuzz_entry(data: &[u8]) {
    let mut parts = data.splitn(5, |&b| b == b'\n');
    let client_first = parts.next().unwrap_or_default();
    let client_final = parts.next().unwrap_or_default();
    let server_first = parts.next().unwrap_or_default();
    let server_final = parts.next().unwrap_or_default();
    let stored = parts.next().unwrap_or_default();

    // A verifier with 1 iteration keeps the derivation cheap; iterations play no part here.
    let fallback = Verifier::derive("pencil", b"salt", 1);
    let stored_text = String::from_utf8_lossy(stored);
    let parsed = Verifier::parse(&stored_text);
    let verifier = parsed.as_ref().unwrap_or(&fallback);
    let _ = verifier.to_string();
    let _ = super::super::Md5Credential::classify(&stored_text);

    for mock in [false, true] {
        let Ok(nonce) = Nonce::fixed(SERVER_NONCE) else {
            return;
        };
        let mut server = if mock {
            ScramServer::mock(&stored_text, b"key", super::DEFAULT_ITERATIONS, nonce)
        } else {
            match ScramServer::new(ServerSecret::Verifier(verifier), nonce) {
                Ok(server) => server,
                Err(_) => return,
            }
        };
        if server.handle_client_first(client_first).is_ok() {
            let _ = server.handle_client_final(client_final);
        }
        // After the exchange, every further message must be refused, not panic.
        let _ = server.handle_client_first(client_first);
    }

    let keys = ScramKeys {
        client_key: [1; 32],
        server_key: verifier.server_key,
    };
    let Ok(nonce) = Nonce::fixed(CLIENT_NONCE) else {
        return;
    };
    let mut client = ScramClient::with_nonce(ClientCredential::Keys(keys), nonce);
    let _ = client.client_first();
    if client.handle_server_first(server_first).is_ok() {
        let _ = client.verify_server_final(server_final);
    }
    let _ = client.verify_server_final(server_final);

    // The parsers on their own, so each is reached even when the exchange stops early.
    let _ = message::parse_client_first(client_first);
    let _ = message::parse_client_final(client_final);
    let _ = message::parse_server_first(server_first);
    let _ = message::parse_server_final(server_final);
}

//! Replays every committed seed of `fuzz/seeds/scram/` through [`fuzz_entry`], so CI runs them
//! on stable without cargo-fuzz.

use super::*;

#[test]
fn fuzz_seeds_replay_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/scram");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        fuzz_entry(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count >= 3, "expected seeds in {}", dir.display());
}

#[test]
fn full_exchange_seed_reaches_success_on_both_sides() {
    // The seed is only useful to a fuzzer if it drives both state machines to the end.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/scram/full_exchange"
    );
    let seed = std::fs::read(path).unwrap();
    let parts: Vec<&[u8]> = seed.split(|&b| b == b'\n').collect();
    let verifier = Verifier::parse(std::str::from_utf8(parts[4]).unwrap()).unwrap();
    let nonce = Nonce::fixed(super::fuzz::SERVER_NONCE).unwrap();
    let mut server = ScramServer::new(ServerSecret::Verifier(&verifier), nonce).unwrap();
    server.handle_client_first(parts[0]).unwrap();
    server.handle_client_final(parts[1]).unwrap();

    let keys = ScramKeys {
        client_key: [1; 32],
        server_key: verifier.server_key,
    };
    let nonce = Nonce::fixed(super::fuzz::CLIENT_NONCE).unwrap();
    let mut client = ScramClient::with_nonce(ClientCredential::Keys(keys), nonce);
    client.handle_server_first(parts[2]).unwrap();
    client.verify_server_final(parts[3]).unwrap();
}

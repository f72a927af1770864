//! Recorded exchanges with fixed nonces: RFC 7677 §3 and a psql login to PostgreSQL.

use super::*;

struct Recorded {
    user: &'static str,
    password: &'static str,
    client_nonce: &'static str,
    server_nonce: &'static str,
    salt_b64: &'static str,
    client_first: &'static str,
    server_first: &'static str,
    client_final: &'static str,
    server_final: &'static str,
}

const RFC_7677: Recorded = Recorded {
    user: "user",
    password: "pencil",
    client_nonce: "rOprNGfwEbeRWgbNEkqO",
    server_nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    salt_b64: "W22ZaJ0SNY7soEsUEjb6gQ==",
    client_first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    client_final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/// psql against PostgreSQL (empty user name, as libpq sends), as recorded in rust-postgres.
const PSQL: Recorded = Recorded {
    user: "",
    password: "foobar",
    client_nonce: "9IZ2O01zb9IgiIZ1WJ/zgpJB",
    server_nonce: "jx/oIRLs02gGSHcw1KEty3eY",
    salt_b64: "fs3IXBy7U7+IvVjZ",
    client_first: "n,,n=,r=9IZ2O01zb9IgiIZ1WJ/zgpJB",
    server_first: "r=9IZ2O01zb9IgiIZ1WJ/zgpJBjx/oIRLs02gGSHcw1KEty3eY,s=fs3IXBy7U7+IvVjZ,i=4096",
    client_final: "c=biws,r=9IZ2O01zb9IgiIZ1WJ/zgpJBjx/oIRLs02gGSHcw1KEty3eY,\
                   p=AmNKosjJzS31NTlQYNs5BTeQjdHdk7lOflDo5re2an8=",
    server_final: "v=U+ppxD5XUKtradnv8e2MkeupiA8FU87Sg8CXzXHDAzw=",
};

fn verifier_of(r: &Recorded) -> Verifier {
    Verifier::derive(r.password, &B64.decode(r.salt_b64).unwrap(), 4096)
}

fn check_server_side(r: &Recorded) -> ScramKeys {
    let verifier = verifier_of(r);
    let nonce = Nonce::fixed(r.server_nonce).unwrap();
    let mut server = ScramServer::new(ServerSecret::Verifier(&verifier), nonce).unwrap();
    let first = server
        .handle_client_first(r.client_first.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(first).unwrap(), r.server_first);
    let success = server
        .handle_client_final(r.client_final.as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8(success.server_final).unwrap(),
        r.server_final
    );
    success.keys
}

fn check_client_side(r: &Recorded, credential: ClientCredential) {
    let nonce = Nonce::fixed(r.client_nonce).unwrap();
    let mut client = ScramClient::with_nonce(credential, nonce).with_username(r.user);
    assert_eq!(
        String::from_utf8(client.client_first()).unwrap(),
        r.client_first
    );
    let last = client
        .handle_server_first(r.server_first.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(last).unwrap(), r.client_final);
    client
        .verify_server_final(r.server_final.as_bytes())
        .unwrap();
}

#[test]
fn rfc_7677_server_side() {
    check_server_side(&RFC_7677);
}

#[test]
fn rfc_7677_client_side_with_password() {
    check_client_side(
        &RFC_7677,
        ClientCredential::Password(RFC_7677.password.into()),
    );
}

#[test]
fn rfc_7677_client_side_with_recovered_keys() {
    // Pass-through: the keys the server recovered log in with the very same bytes.
    let keys = check_server_side(&RFC_7677);
    let salted = salted_password("pencil", &B64.decode(RFC_7677.salt_b64).unwrap(), 4096);
    assert!(keys.client_key == hmac(&salted, b"Client Key"));
    assert!(keys.server_key == verifier_of(&RFC_7677).server_key);
    check_client_side(&RFC_7677, ClientCredential::Keys(keys));
}

#[test]
fn rfc_7677_verifier_text() {
    assert_eq!(
        verifier_of(&RFC_7677).to_string(),
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
         WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:\
         wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    );
}

#[test]
fn psql_recorded_exchange_both_sides() {
    check_server_side(&PSQL);
    check_client_side(&PSQL, ClientCredential::Password(PSQL.password.into()));
}

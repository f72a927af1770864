//! [`ScramClient`]: the logging-in side of SCRAM-SHA-256, as libpq's `fe-auth-scram.c` runs it
//! against a PostgreSQL server: client-first, server-first → client-final, server-final.
//!
//! Channel binding is not offered (`n,,`), and the user name is sent empty, as libpq does: the
//! server takes it from the startup packet.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::message::{ServerFinal, parse_server_final, parse_server_first};
use super::{Nonce, ScramKeys, hmac, salted_password, sha256, xor};
use crate::auth::{AuthError, ScramMessage, constant_time_eq};

/// What the pooler logs in with.
#[derive(Clone)]
pub enum ClientCredential {
    /// The cleartext password (userlist.txt plaintext, or a `[databases]` `password=`).
    Password(String),
    /// SCRAM pass-through: the keys recovered from the client's own login. Works only when
    /// the server's verifier is byte-identical to ours (same salt and iterations).
    Keys(ScramKeys),
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCredential::Password(_) => f.write_str("ClientCredential::Password(..)"),
            ClientCredential::Keys(_) => f.write_str("ClientCredential::Keys(..)"),
        }
    }
}

/// The client side of one SCRAM-SHA-256 exchange.
pub struct ScramClient {
    client_nonce: Nonce,
    /// `saslname`-escaped user name; empty for PostgreSQL.
    username: String,
    state: State,
}

enum State {
    AwaitingServerFirst(ClientCredential),
    AwaitingServerFinal { server_signature: [u8; 32] },
    Finished,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::AwaitingServerFirst(_) => "AwaitingServerFirst",
            State::AwaitingServerFinal { .. } => "AwaitingServerFinal",
            State::Finished => "Finished",
        };
        f.debug_struct("ScramClient")
            .field("client_nonce", &self.client_nonce)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Starts an exchange with a random nonce ([`Nonce::random`]).
    pub fn new(credential: ClientCredential) -> Result<Self, AuthError> {
        Ok(Self::with_nonce(credential, Nonce::random()?))
    }

    /// Starts an exchange with a given nonce: for tests and recorded exchanges.
    pub fn with_nonce(credential: ClientCredential, client_nonce: Nonce) -> Self {
        ScramClient {
            client_nonce,
            username: String::new(),
            state: State::AwaitingServerFirst(credential),
        }
    }

    /// Sends `name` in `n=` (escaped as RFC 5802 `saslname`) instead of the empty name libpq
    /// sends. PostgreSQL ignores it; other SCRAM servers and RFC test vectors need it.
    pub fn with_username(mut self, name: &str) -> Self {
        self.username = name.replace('=', "=3D").replace(',', "=2C");
        self
    }

    /// The client-first-message, for `SASLInitialResponse` with mechanism [`super::MECHANISM`].
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.bare()).into_bytes()
    }

    fn bare(&self) -> String {
        format!("n={},r={}", self.username, self.client_nonce.as_str())
    }

    /// Handles the server-first-message (`AuthenticationSASLContinue` data) and returns the
    /// client-final-message for `SASLResponse`. The server's nonce must extend ours, the salt
    /// be non-empty base64 and the iterations within `1..=MAX_ITERATIONS`.
    pub fn handle_server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::AwaitingServerFirst(credential) =
            std::mem::replace(&mut self.state, State::Finished)
        else {
            return Err(AuthError::OutOfOrder(ScramMessage::ServerFirst));
        };
        let parsed = parse_server_first(msg)?;
        let ours = self.client_nonce.as_str();
        if parsed.nonce.len() <= ours.len() || !parsed.nonce.starts_with(ours) {
            return Err(AuthError::NonceMismatch(ScramMessage::ServerFirst));
        }
        let keys = match credential {
            ClientCredential::Password(password) => {
                let salted = salted_password(&password, &parsed.salt, parsed.iterations);
                ScramKeys {
                    client_key: hmac(&salted, b"Client Key"),
                    server_key: hmac(&salted, b"Server Key"),
                }
            }
            ClientCredential::Keys(keys) => keys,
        };
        let without_proof = format!("c=biws,r={}", parsed.nonce);
        let mut auth_message = self.bare().into_bytes();
        auth_message.push(b',');
        auth_message.extend_from_slice(msg);
        auth_message.push(b',');
        auth_message.extend_from_slice(without_proof.as_bytes());
        let client_signature = hmac(&sha256(&keys.client_key), &auth_message);
        let proof = xor(&keys.client_key, &client_signature);
        self.state = State::AwaitingServerFinal {
            server_signature: hmac(&keys.server_key, &auth_message),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final-message (`AuthenticationSASLFinal` data): `v=` must be the
    /// signature only a server knowing our secret can make; `e=` is the server's refusal.
    pub fn verify_server_final(&mut self, msg: &[u8]) -> Result<(), AuthError> {
        let State::AwaitingServerFinal { server_signature } =
            std::mem::replace(&mut self.state, State::Finished)
        else {
            return Err(AuthError::OutOfOrder(ScramMessage::ServerFinal));
        };
        match parse_server_final(msg)? {
            ServerFinal::Error(text) => Err(AuthError::ServerError(text)),
            ServerFinal::Verifier(v) if constant_time_eq(&v, &server_signature) => Ok(()),
            ServerFinal::Verifier(_) => Err(AuthError::InvalidServerSignature),
        }
    }
}

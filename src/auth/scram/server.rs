//! [`ScramServer`]: the verifying side of SCRAM-SHA-256, as PostgreSQL's `auth-scram.c` runs it
//! against a client: client-first → server-first, client-final → server-final.
//!
//! Unknown users get a mock exchange ([`ScramServer::mock`]) with a deterministic salt, which
//! fails only at the proof, after the same work as a real one, so a probe cannot tell whether a
//! role exists. Any error ends the exchange; the state machine then refuses further messages.
//!
//! We offer only SCRAM-SHA-256, never -PLUS, so a client's `y` flag ("I could bind, but you
//! cannot") is honest and accepted. Once -PLUS is offered, `y` must become a downgrade error
//! ("SCRAM channel binding negotiation error") as in PostgreSQL.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::message::{Gs2Flag, parse_client_final, parse_client_first};
use super::{Nonce, SALT_LEN, ScramKeys, Verifier, hmac, sha256, xor};
use crate::auth::{AuthError, ScramMessage, constant_time_eq};

/// The salt a mock exchange shows for `username`: stable across attempts, yet unpredictable
/// without `mock_key` (PostgreSQL's `scram_mock_salt`).
pub fn mock_salt(username: &str, mock_key: &[u8]) -> Vec<u8> {
    let digest = hmac(mock_key, username.as_bytes());
    digest.iter().copied().take(SALT_LEN).collect()
}

/// What the pooler knows of a user for SCRAM.
#[derive(Clone, Copy)]
pub enum ServerSecret<'a> {
    /// A cleartext password: a verifier is derived with a random salt and this many iterations
    /// (`scram_iterations`).
    Password(&'a str, u32),
    /// A stored SCRAM-SHA-256 verifier (userlist.txt or `auth_query`).
    Verifier(&'a Verifier),
}

impl std::fmt::Debug for ServerSecret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerSecret::Password(_, iterations) => {
                write!(f, "ServerSecret::Password(.., {iterations})")
            }
            ServerSecret::Verifier(_) => f.write_str("ServerSecret::Verifier(..)"),
        }
    }
}

/// The result of a successful exchange.
#[derive(Debug)]
pub struct ServerSuccess {
    /// The server-final-message (`v=<ServerSignature>`), for `AuthenticationSASLFinal`.
    pub server_final: Vec<u8>,
    /// The client's `ClientKey` (proof XOR ClientSignature) and our `ServerKey`: the pooler
    /// keeps them for SCRAM pass-through logins to the server.
    pub keys: ScramKeys,
}

/// The server side of one SCRAM-SHA-256 exchange.
pub struct ScramServer {
    state: State,
}

struct Known {
    verifier: Verifier,
    /// A mock exchange: runs to the end, then fails as a wrong password would.
    doomed: bool,
}

enum State {
    AwaitingClientFirst { known: Known, server_nonce: Nonce },
    AwaitingClientFinal(Exchange),
    Finished,
}

struct Exchange {
    known: Known,
    flag: Gs2Flag,
    /// Client nonce followed by server nonce.
    combined_nonce: String,
    /// `client-first-message-bare "," server-first-message ","`: the AuthMessage so far.
    auth_prefix: Vec<u8>,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::AwaitingClientFirst { .. } => "AwaitingClientFirst",
            State::AwaitingClientFinal(_) => "AwaitingClientFinal",
            State::Finished => "Finished",
        };
        f.debug_struct("ScramServer")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// Starts an exchange for a known user. `server_nonce` is usually [`Nonce::random`]. Fails
    /// only when a plaintext secret needs a random salt and the OS has no randomness.
    pub fn new(secret: ServerSecret<'_>, server_nonce: Nonce) -> Result<Self, AuthError> {
        let verifier = match secret {
            ServerSecret::Password(password, iterations) => {
                Verifier::derive_random(password, iterations)?
            }
            ServerSecret::Verifier(v) => v.clone(),
        };
        Ok(Self::start(
            Known {
                verifier,
                doomed: false,
            },
            server_nonce,
        ))
    }

    /// Starts a mock exchange for an unknown user (or one without a usable SCRAM secret), as
    /// PostgreSQL's `scram_mock_salt`: the salt is derived from `username` under `mock_key`
    /// (a random per-process secret of the caller's), so it is stable across attempts yet
    /// unpredictable; the exchange fails with [`AuthError::InvalidProof`] at the end. It offers
    /// `iterations`, as a user whose verifier the pooler derived would.
    pub fn mock(username: &str, mock_key: &[u8], iterations: u32, server_nonce: Nonce) -> Self {
        let salt = mock_salt(username, mock_key);
        let verifier = Verifier {
            iterations,
            salt,
            stored_key: [0; 32],
            server_key: [0; 32],
        };
        Self::start(
            Known {
                verifier,
                doomed: true,
            },
            server_nonce,
        )
    }

    fn start(known: Known, server_nonce: Nonce) -> Self {
        ScramServer {
            state: State::AwaitingClientFirst {
                known,
                server_nonce,
            },
        }
    }

    /// Handles the client-first-message (the data of `SASLInitialResponse`) and returns the
    /// server-first-message for `AuthenticationSASLContinue`.
    pub fn handle_client_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::AwaitingClientFirst {
            known,
            server_nonce,
        } = std::mem::replace(&mut self.state, State::Finished)
        else {
            return Err(AuthError::OutOfOrder(ScramMessage::ClientFirst));
        };
        let parsed = parse_client_first(msg)?;
        let combined_nonce = format!("{}{}", parsed.nonce, server_nonce.as_str());
        let server_first = format!(
            "r={combined_nonce},s={},i={}",
            B64.encode(&known.verifier.salt),
            known.verifier.iterations
        );
        let mut auth_prefix = Vec::with_capacity(parsed.bare.len() + server_first.len() + 2);
        auth_prefix.extend_from_slice(parsed.bare);
        auth_prefix.push(b',');
        auth_prefix.extend_from_slice(server_first.as_bytes());
        auth_prefix.push(b',');
        self.state = State::AwaitingClientFinal(Exchange {
            known,
            flag: parsed.flag,
            combined_nonce,
            auth_prefix,
        });
        Ok(server_first.into_bytes())
    }

    /// Handles the client-final-message (the data of `SASLResponse`). On success returns the
    /// server-final-message and the recovered keys; a wrong password, a replayed proof and a
    /// mock exchange all give [`AuthError::InvalidProof`].
    pub fn handle_client_final(&mut self, msg: &[u8]) -> Result<ServerSuccess, AuthError> {
        let State::AwaitingClientFinal(exchange) =
            std::mem::replace(&mut self.state, State::Finished)
        else {
            return Err(AuthError::OutOfOrder(ScramMessage::ClientFinal));
        };
        let parsed = parse_client_final(msg)?;
        if parsed.channel_binding != exchange.flag.channel_binding() {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if parsed.nonce != exchange.combined_nonce.as_bytes() {
            return Err(AuthError::NonceMismatch(ScramMessage::ClientFinal));
        }
        let mut auth_message = exchange.auth_prefix;
        auth_message.extend_from_slice(parsed.without_proof);
        let verifier = &exchange.known.verifier;
        let client_signature = hmac(&verifier.stored_key, &auth_message);
        let client_key = xor(&parsed.proof, &client_signature);
        // Computed even for a mock exchange, so a doomed login costs what a real one does.
        let proof_ok = constant_time_eq(&sha256(&client_key), &verifier.stored_key);
        if !proof_ok || exchange.known.doomed {
            return Err(AuthError::InvalidProof);
        }
        let server_signature = hmac(&verifier.server_key, &auth_message);
        Ok(ServerSuccess {
            server_final: format!("v={}", B64.encode(server_signature)).into_bytes(),
            keys: ScramKeys {
                client_key,
                server_key: verifier.server_key,
            },
        })
    }
}

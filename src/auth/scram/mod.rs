//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: stored verifiers, and the exchange
//! as two pure state machines, [`ScramServer`] (verifying a client, as `auth-scram.c`) and
//! [`ScramClient`] (logging in to a server, as libpq's `fe-auth-scram.c`).
//!
//! A verifier has PostgreSQL's `pg_authid` shape:
//! `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>`.
//!
//! Passwords are hashed as raw bytes. PostgreSQL applies SASLprep first when the password is
//! valid UTF-8; for ASCII passwords that is the identity, for others a verifier made by
//! PostgreSQL may differ (no stringprep crate here).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AuthError;

mod client;
#[cfg(any(fuzzing, test))]
mod fuzz;
mod message;
mod server;

pub use client::{ClientCredential, ScramClient};
#[cfg(any(fuzzing, test))]
pub use fuzz::fuzz_entry;
pub use server::{ScramServer, ServerSecret, ServerSuccess, mock_salt};

/// The SASL mechanism name we offer in `AuthenticationSASL` and accept.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// PostgreSQL's default `scram_iterations`.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Salt length PostgreSQL uses for new verifiers (`SCRAM_DEFAULT_SALT_LEN`).
pub const SALT_LEN: usize = 16;

/// Random bytes in a nonce we generate, before base64 (`SCRAM_RAW_NONCE_LEN`, as libpq).
pub const NONCE_RAW_LEN: usize = 18;

/// Longest SCRAM message we parse, in bytes. Real ones are under 200; the cap bounds the
/// work and memory an unauthenticated peer can cause.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Largest iteration count a server may ask us for: PBKDF2 cost is linear in it, so an
/// unbounded count would let a hostile server stall a pooler thread.
pub const MAX_ITERATIONS: u32 = 10_000_000;

type HmacSha256 = Hmac<Sha256>;

/// `Hi()` of RFC 5802: PBKDF2-HMAC-SHA-256 of the password.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// HMAC-SHA-256 of `msg` under `key`.
#[allow(clippy::expect_used)]
pub fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC is defined for keys of every length (long keys are hashed first), so this never fails.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = *a;
    for (o, x) in out.iter_mut().zip(b) {
        *o ^= x;
    }
    out
}

/// Checks the mechanism name a client chose in `SASLInitialResponse`.
pub fn check_mechanism(name: &[u8]) -> Result<(), AuthError> {
    if name == MECHANISM.as_bytes() {
        Ok(())
    } else {
        Err(AuthError::UnsupportedMechanism)
    }
}

/// The parts of a stored SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// Raw salt bytes.
    pub salt: Vec<u8>,
    /// `H(ClientKey)`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

impl Verifier {
    /// Derives the verifier for `password` with the given salt and iteration count.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Derives a verifier with a fresh random salt of [`SALT_LEN`] bytes, as PostgreSQL's
    /// `scram_build_secret` does for a plaintext password.
    pub fn derive_random(password: &str, iterations: u32) -> Result<Self, AuthError> {
        let mut salt = [0u8; SALT_LEN];
        super::random::fill(&mut salt).map_err(AuthError::Randomness)?;
        Ok(Self::derive(password, &salt, iterations))
    }

    /// Parses PostgreSQL's text form; `None` when it is not a well-formed SCRAM-SHA-256 verifier.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations: u32 = iterations.parse().ok().filter(|n| *n > 0)?;
        let salt = B64.decode(salt).ok().filter(|s| !s.is_empty())?;
        Some(Verifier {
            iterations,
            salt,
            stored_key: B64.decode(stored).ok()?.try_into().ok()?,
            server_key: B64.decode(server).ok()?.try_into().ok()?,
        })
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // StoredKey and ServerKey let an attacker brute-force the password offline and
        // impersonate the server: keep them out of logs and panic messages.
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .field("salt", &B64.encode(&self.salt))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// A SCRAM nonce: non-empty RFC 5802 `printable` text (ASCII 0x21-0x7E except `,`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce(String);

impl Nonce {
    /// [`NONCE_RAW_LEN`] random bytes from the OS, base64-encoded (24 characters), as libpq and
    /// PostgreSQL make theirs.
    pub fn random() -> Result<Self, AuthError> {
        let mut raw = [0u8; NONCE_RAW_LEN];
        super::random::fill(&mut raw).map_err(AuthError::Randomness)?;
        Ok(Nonce(B64.encode(raw)))
    }

    /// A given nonce, for tests and recorded exchanges; must be valid and at most 256 bytes.
    pub fn fixed(text: &str) -> Result<Self, AuthError> {
        let valid = !text.is_empty()
            && text.len() <= 256
            && text
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',');
        if valid {
            Ok(Nonce(text.to_owned()))
        } else {
            Err(AuthError::InvalidCallerNonce)
        }
    }

    /// The nonce text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `ClientKey` and `ServerKey` of one user: what SCRAM pass-through needs to log in to a server
/// whose verifier is identical to ours, without knowing the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    /// `HMAC(SaltedPassword, "Client Key")`, recovered from a client's proof.
    pub client_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`, from the verifier.
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are password equivalents for this server: never print them.
        f.write_str("ScramKeys { .. }")
    }
}

#[cfg(test)]
mod tests;

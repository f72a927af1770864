//! Pure authentication: md5 secrets and the md5 challenge, SCRAM-SHA-256 as state machines for
//! both directions (verifying clients, logging in to servers), `auth_hba_file` rule matching,
//! and the typed [`AuthError`].
//!
//! No IO, no tokio, no logging: callers move the bytes and decide what to log. Nothing here puts
//! secret material (passwords, keys, proofs) into an error or a `Debug` output. The only system
//! call is `getrandom`, for nonces, salts and keys ([`random`]).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod error;
pub mod hba;
pub mod md5;
pub mod random;
pub mod scram;

pub use error::{AuthError, ScramMessage};
pub use md5::{Md5Credential, md5_response, verify_md5_response};

use ::md5::{Digest, Md5};

/// The userlist/pg_authid md5 secret: `"md5"` followed by the hex md5 of password then user name.
///
/// This is what `pg_md5`, `SELECT 'md5' || md5(password || user)` and
/// `echo -n "$password$user" | md5sum` all produce.
pub fn md5_secret(user: &str, password: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(password.as_bytes());
    hasher.update(user.as_bytes());
    format!("md5{}", hex(&hasher.finalize()))
}

/// Lower-case hex of `bytes`, as md5sum and PostgreSQL print digests.
pub fn hex(bytes: &[u8]) -> String {
    // By hand, not `write!("{:02x}")`: every md5 login hashes twice, and the formatter's
    // per-byte machinery cost more than the hashing.
    let digit = |n: u8| char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 });
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0xf));
    }
    out
}

/// Compares two byte strings in time that depends only on their lengths, never on where they
/// differ: the comparison for proofs, signatures and md5 responses.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit loop.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests;

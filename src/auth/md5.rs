//! The md5 challenge (`AuthenticationMD5Password`): what a client answers to a 4-byte salt, and
//! the pooler-side check of that answer against a stored plaintext password or md5 secret.
//!
//! The answer is `"md5" || md5(hex(md5(password || user)) || salt)`. The inner hex is exactly
//! the userlist/pg_authid md5 secret without its `md5` prefix, so a stored secret is as good as
//! the password here (which is why md5 secrets are password equivalents).

use ::md5::{Digest, Md5};

use super::constant_time_eq;

/// What the pooler holds for a user, as far as md5 is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Md5Credential<'a> {
    /// The cleartext password.
    Password(&'a str),
    /// A stored md5 secret: `md5` followed by 32 hex digits, as in userlist.txt.
    Secret(&'a str),
}

impl<'a> Md5Credential<'a> {
    /// Classifies stored text the way PgBouncer and PostgreSQL do: `md5` + 32 hex digits is a
    /// secret, anything else a password.
    pub fn classify(text: &'a str) -> Self {
        let is_secret = text.len() == 35
            && text.starts_with("md5")
            && text.bytes().skip(3).all(|b| b.is_ascii_hexdigit());
        if is_secret {
            Md5Credential::Secret(text)
        } else {
            Md5Credential::Password(text)
        }
    }

    /// Feeds `hex(md5(password || user))`, the secret without its prefix, to `hasher`.
    fn hash_inner(self, user: &str, hasher: &mut Md5) {
        match self {
            Md5Credential::Password(password) => {
                let mut inner = Md5::new();
                inner.update(password.as_bytes());
                inner.update(user.as_bytes());
                hasher.update(hex32(&inner.finalize().into()));
            }
            // PostgreSQL hashes the stored hex as is (`shadow_pass + strlen("md5")`).
            Md5Credential::Secret(secret) => {
                hasher.update(secret.strip_prefix("md5").unwrap_or(secret).as_bytes());
            }
        }
    }
}

/// Lowercase hex of a digest, on the stack: a login computes two of them.
fn hex32(digest: &[u8; 16]) -> [u8; 32] {
    let digit = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
    let mut out = [0u8; 32];
    let nibbles = digest.iter().flat_map(|b| [b >> 4, b & 0xf]);
    for (slot, n) in out.iter_mut().zip(nibbles) {
        *slot = digit(n);
    }
    out
}

/// `md5` followed by the 32 hex digits of the answer to `salt`.
fn answer(user: &str, credential: Md5Credential<'_>, salt: [u8; 4]) -> [u8; 35] {
    let mut hasher = Md5::new();
    credential.hash_inner(user, &mut hasher);
    hasher.update(salt);
    let mut out = [0u8; 35];
    out[..3].copy_from_slice(b"md5");
    out[3..].copy_from_slice(&hex32(&hasher.finalize().into()));
    out
}

impl std::fmt::Debug for Md5Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Both variants are password equivalents: never print them.
        match self {
            Md5Credential::Password(_) => f.write_str("Md5Credential::Password(..)"),
            Md5Credential::Secret(_) => f.write_str("Md5Credential::Secret(..)"),
        }
    }
}

/// The `PasswordMessage` payload a client sends for an md5 challenge with `salt`.
pub fn md5_response(user: &str, credential: Md5Credential<'_>, salt: [u8; 4]) -> String {
    answer(user, credential, salt)
        .iter()
        .copied()
        .map(char::from)
        .collect()
}

/// Checks a client's md5 answer (the `PasswordMessage` payload without its NUL) in constant
/// time. `false` for every wrong or malformed answer.
pub fn verify_md5_response(
    stored: Md5Credential<'_>,
    user: &str,
    salt: [u8; 4],
    response: &[u8],
) -> bool {
    constant_time_eq(&answer(user, stored, salt), response)
}

#[cfg(test)]
mod tests;

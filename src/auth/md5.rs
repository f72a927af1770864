//! The md5 challenge (`AuthenticationMD5Password`): what a client answers to a 4-byte salt, and
//! the pooler-side check of that answer against a stored plaintext password or md5 secret.
//!
//! The answer is `"md5" || md5(hex(md5(password || user)) || salt)`. The inner hex is exactly
//! the userlist/pg_authid md5 secret without its `md5` prefix, so a stored secret is as good as
//! the password here (which is why md5 secrets are password equivalents).

use ::md5::{Digest, Md5};

use super::{constant_time_eq, hex};

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

    /// `hex(md5(password || user))`: the secret without its prefix.
    fn inner_hex(self, user: &str) -> String {
        match self {
            Md5Credential::Password(password) => {
                let mut hasher = Md5::new();
                hasher.update(password.as_bytes());
                hasher.update(user.as_bytes());
                hex(&hasher.finalize())
            }
            // PostgreSQL hashes the stored hex as is (`shadow_pass + strlen("md5")`).
            Md5Credential::Secret(secret) => {
                secret.strip_prefix("md5").unwrap_or(secret).to_owned()
            }
        }
    }
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
    let mut hasher = Md5::new();
    hasher.update(credential.inner_hex(user).as_bytes());
    hasher.update(salt);
    format!("md5{}", hex(&hasher.finalize()))
}

/// Checks a client's md5 answer (the `PasswordMessage` payload without its NUL) in constant
/// time. `false` for every wrong or malformed answer.
pub fn verify_md5_response(
    stored: Md5Credential<'_>,
    user: &str,
    salt: [u8; 4],
    response: &[u8],
) -> bool {
    let expected = md5_response(user, stored, salt);
    constant_time_eq(expected.as_bytes(), response)
}

#[cfg(test)]
mod tests;

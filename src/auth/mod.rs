//! Pure authentication helpers: md5 secrets as PostgreSQL and PgBouncer compute them, and SCRAM.
//! No IO, no logging: callers decide what to do with a secret, and never log it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod scram;

use md5::{Digest, Md5};

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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    // A nibble is at most 15, so both indexes are inside the 16-entry table.
    #[allow(clippy::indexing_slicing)]
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_postgres() {
        // SELECT 'md5' || md5('yourpassword' || 'dbuser');
        assert_eq!(
            md5_secret("dbuser", "yourpassword"),
            "md5afff9bb81732f1c10813291c588037f5"
        );
    }
}

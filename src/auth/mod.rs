//! Pure authentication helpers: md5 secrets as PostgreSQL and PgBouncer compute them, and SCRAM.
//! No IO, no logging: callers decide what to do with a secret, and never log it.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
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
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            // Writing to a String cannot fail.
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{b:02x}"));
            out
        })
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

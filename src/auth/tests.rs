//! Unit tests of the md5 secret helpers and the constant-time comparison.

use super::*;

#[test]
fn md5_matches_postgres() {
    // SELECT 'md5' || md5('yourpassword' || 'dbuser');
    assert_eq!(
        md5_secret("dbuser", "yourpassword"),
        "md5afff9bb81732f1c10813291c588037f5"
    );
}

#[test]
fn md5_matches_pgbouncer_docs() {
    assert_eq!(
        md5_secret("admin", "1234"),
        "md545f2603610af569b6155c45067268c6b"
    );
}

#[test]
fn constant_time_eq_compares_bytes_and_lengths() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"\x80bc", b"\x00bc"));
}

//! Golden tests of the md5 challenge.

use super::*;
use crate::auth::md5_secret;

// By hand, as PostgreSQL computes it:
//   SELECT md5('pw' || 'user');                         -> inner = 871c429757b7a0bf1654fad112b77bd4
//   SELECT 'md5' || md5(inner || E'\\x01020304');      -> the expected response
// The md5 of the ASCII inner hex followed by the 4 raw salt bytes.
const SALT: [u8; 4] = [1, 2, 3, 4];

fn by_hand(inner_hex: &str, salt: [u8; 4]) -> String {
    let mut data = inner_hex.as_bytes().to_vec();
    data.extend_from_slice(&salt);
    format!("md5{}", crate::auth::hex(&Md5::digest(&data)))
}

#[test]
fn inner_hash_is_the_userlist_secret() {
    assert_eq!(
        md5_secret("user", "pw"),
        "md5871c429757b7a0bf1654fad112b77bd4"
    );
}

#[test]
fn response_golden() {
    let expected = by_hand("871c429757b7a0bf1654fad112b77bd4", SALT);
    assert_eq!(expected, "md546eacb7412409e1444bde22e56e70744");
    assert_eq!(
        md5_response("user", Md5Credential::Password("pw"), SALT),
        expected
    );
}

#[test]
fn secret_and_password_give_the_same_response() {
    let secret = md5_secret("dbuser", "yourpassword");
    let salt = [0xde, 0xad, 0xbe, 0xef];
    assert_eq!(
        md5_response("dbuser", Md5Credential::Secret(&secret), salt),
        md5_response("dbuser", Md5Credential::Password("yourpassword"), salt)
    );
    assert_eq!(
        Md5Credential::classify(&secret),
        Md5Credential::Secret(&secret)
    );
    assert_eq!(
        Md5Credential::classify("md5short"),
        Md5Credential::Password("md5short")
    );
}

#[test]
fn verify_accepts_right_and_rejects_wrong() {
    let secret = md5_secret("user", "pw");
    let good = md5_response("user", Md5Credential::Password("pw"), SALT);
    for stored in [
        Md5Credential::Password("pw"),
        Md5Credential::Secret(&secret),
    ] {
        assert!(verify_md5_response(stored, "user", SALT, good.as_bytes()));
        assert!(!verify_md5_response(
            stored,
            "user",
            [1, 2, 3, 5],
            good.as_bytes()
        ));
        assert!(!verify_md5_response(
            stored,
            "user",
            SALT,
            &good.as_bytes()[..34]
        ));
        assert!(!verify_md5_response(stored, "user", SALT, b""));
        assert!(!verify_md5_response(
            stored,
            "user",
            SALT,
            secret.as_bytes()
        ));
    }
    assert!(!verify_md5_response(
        Md5Credential::Password("px"),
        "user",
        SALT,
        good.as_bytes()
    ));
    // The user name salts the password; a stored secret already contains it.
    assert!(!verify_md5_response(
        Md5Credential::Password("pw"),
        "other",
        SALT,
        good.as_bytes()
    ));
}

#[test]
fn debug_hides_the_secret() {
    let text = format!("{:?}", Md5Credential::Password("hunter2"));
    assert!(!text.contains("hunter2"));
}

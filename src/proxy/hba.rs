//! `auth_type = hba` at login: the rule of `auth_hba_file` for this connection picks the method
//! (PgBouncer's `finish_set_pool`, src/client.c): `reject` and no rule at all end the login with
//! "login rejected"; `peer` checks the unix-socket peer's OS user name against the user
//! ("unix socket login rejected" otherwise); the other methods run as their `auth_type` would.

use crate::auth::hba::{Connection, first_match};
use crate::config::AuthType;
use crate::config::hba::{Method, Rule};
use crate::error::ClientError;

use super::handshake::Peer;

/// The `auth_type` the client's HBA rule stands for (`peer` is checked here and continues as
/// `trust`: a known user, no password).
pub fn method_for(
    rules: &[Rule],
    peer: &Peer,
    tls: bool,
    database: &str,
    user: &str,
) -> Result<AuthType, ClientError> {
    let conn = Connection {
        ip: if peer.unix { None } else { peer.ip },
        tls,
        database,
        user,
    };
    let Some(rule) = first_match(rules, &conn) else {
        tracing::debug!(database, user, "no hba rule matches");
        return Err(ClientError::LoginRejected);
    };
    match rule.method {
        Method::Trust => Ok(AuthType::Trust),
        Method::Md5 => Ok(AuthType::Md5),
        Method::Password => Ok(AuthType::Plain),
        Method::ScramSha256 => Ok(AuthType::ScramSha256),
        Method::Cert => Ok(AuthType::Cert),
        Method::Peer if peer.unix && peer_user(peer.uid).as_deref() == Some(user) => {
            Ok(AuthType::Trust)
        }
        Method::Peer => Err(ClientError::UnixPeerRejected),
        Method::Reject | Method::Ldap => {
            tracing::debug!(database, user, line = rule.line, "hba rule rejects");
            Err(ClientError::LoginRejected)
        }
    }
}

/// The OS user name of a unix-socket peer's uid.
fn peer_user(uid: Option<u32>) -> Option<String> {
    let uid = nix::unistd::Uid::from_raw(uid?);
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
}

//! `auth_type = hba` at login: the rule of `auth_hba_file` for this connection picks the method
//! (PgBouncer's `finish_set_pool`, src/client.c): `reject` and no rule at all end the login with
//! "login rejected"; `peer` checks the unix-socket peer's OS user name against the user, or with
//! `map=` against that map of `auth_ident_file` ("unix socket login rejected" otherwise); the
//! other methods run as their `auth_type` would, `cert` with the rule's map.

use crate::auth::hba::{Connection, first_match};
use crate::config::AuthType;
use crate::config::hba::{Hba, Method};
use crate::error::ClientError;

use super::handshake::Peer;

/// What the client's HBA rule asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The `auth_type` the rule stands for (`peer`, checked here, continues as `trust`: a known
    /// user, no password).
    pub method: AuthType,
    /// A `cert` rule's `map=`: the certificate's name is looked up there, not compared.
    pub cert_map: Option<String>,
}

/// The method of the first rule of `hba` that matches the connection.
pub fn method_for(
    hba: &Hba,
    peer: &Peer,
    tls: bool,
    database: &str,
    user: &str,
) -> Result<Chosen, ClientError> {
    let conn = Connection {
        ip: if peer.unix { None } else { peer.ip },
        tls,
        database,
        user,
    };
    let Some(rule) = first_match(&hba.rules, &conn) else {
        tracing::debug!(database, user, "no hba rule matches");
        return Err(ClientError::LoginRejected);
    };
    let map = rule.options.get("map").map(String::as_str);
    let method = match rule.method {
        Method::Trust => AuthType::Trust,
        Method::Md5 => AuthType::Md5,
        Method::Password => AuthType::Plain,
        Method::ScramSha256 => AuthType::ScramSha256,
        Method::Cert => {
            return Ok(Chosen {
                method: AuthType::Cert,
                cert_map: map.map(str::to_owned),
            });
        }
        Method::Peer => {
            let system = peer.unix.then(|| peer_user(peer.uid)).flatten();
            let allowed = system
                .as_deref()
                .is_some_and(|system| hba.names_user(map, system, user));
            if !allowed {
                tracing::debug!(
                    user,
                    system = system.as_deref(),
                    map,
                    line = rule.line,
                    "peer check failed"
                );
                return Err(ClientError::UnixPeerRejected);
            }
            AuthType::Trust
        }
        Method::Reject | Method::Ldap => {
            tracing::debug!(database, user, line = rule.line, "hba rule rejects");
            return Err(ClientError::LoginRejected);
        }
    };
    Ok(Chosen {
        method,
        cert_map: None,
    })
}

/// The OS user name of a unix-socket peer's uid.
fn peer_user(uid: Option<u32>) -> Option<String> {
    let uid = nix::unistd::Uid::from_raw(uid?);
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
}

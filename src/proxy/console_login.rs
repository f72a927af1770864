//! Logins to the admin console (database `pgbouncer`): user `pgbouncer` over the unix socket from
//! the pooler's own uid is admin without a password; everyone else authenticates as any client
//! would (auth_file, or PostgreSQL itself under passthrough) and must then be in `admin_users`
//! or `stats_users` (`auth_type = any`: anyone reads). The welcome is PgBouncer's fake server.

use std::collections::BTreeMap;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Shared;
use super::client_auth;
use super::handshake::{Peer, prove_with_server};
use crate::admin::{self, Access};
use crate::config::AuthType;
use crate::conn::Conn;
use crate::error::ClientError;
use crate::protocol::backend::{self, TxStatus, authentication as authmsg};
use crate::protocol::startup::StartupMessage;

/// A console user, logged in.
#[derive(Debug, Clone)]
pub struct ConsoleLogin {
    /// The login user.
    pub user: String,
    /// What it may do.
    pub access: Access,
    /// Startup parameters (names lower-cased), for the fake session parameters.
    pub params: BTreeMap<String, String>,
}

/// The unix-socket superuser of PgBouncer's console.
const SOCKET_ADMIN: &str = "pgbouncer";

/// Authenticates a console user and sends the welcome.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    shared: &Shared,
    startup: &StartupMessage,
    peer: &Peer,
    tls: bool,
) -> Result<ConsoleLogin, ClientError> {
    let user = startup.user().unwrap_or_default().to_owned();
    let config = shared.config();
    let access = if peer.is_self && user == SOCKET_ADMIN {
        Access::Admin
    } else {
        let method = match config.pgbouncer.auth_type() {
            AuthType::Hba => {
                super::hba::method_for(&shared.hba(), peer, tls, admin::DATABASE, &user)?.method
            }
            method => method,
        };
        if method == AuthType::Passthrough && !peer.trusted {
            return Err(ClientError::NotAllowed);
        }
        let secret = shared.users().get(&user).cloned();
        let proof =
            client_auth::authenticate(conn, method, &user, secret.as_ref(), shared.scram(&config))
                .await?;
        if secret.is_none() && method == AuthType::Trust {
            return Err(ClientError::PasswordFailed);
        }
        let access = admin::access_for(&config, &user).ok_or(ClientError::NotAllowed)?;
        if method == AuthType::Passthrough {
            // PostgreSQL judges the password, through the pool of the `postgres` database.
            let db = config
                .database("postgres")
                .cloned()
                .ok_or(ClientError::NotAllowed)?;
            let pool = shared.pool_for(&config, "postgres", &user, &db);
            prove_with_server(&pool, method, &proof, secret.as_ref(), &db).await?;
        }
        access
    };
    let params: BTreeMap<String, String> = startup
        .params()
        .filter(|(k, _)| *k != "user" && *k != "database")
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let encode = |e: crate::protocol::EncodeError| ClientError::Protocol(e.to_string());
    let out = conn.write_buf_mut();
    authmsg::authentication_ok(out);
    for (name, value) in admin::console::welcome(&params) {
        backend::parameter_status(out, &name, &value).map_err(encode)?;
    }
    let mut key = [0u8; 8];
    crate::auth::random::fill(&mut key)
        .map_err(|e| ClientError::Config(format!("no randomness: {e}")))?;
    // With peering, a cancel for a console client then stops at this pooler instead of being
    // forwarded to whichever peer its random bytes would name.
    let peer_id = config.pgbouncer.peer_id();
    super::cancel::mark_peer(&mut key, peer_id);
    let [a, b, c, d, e, f, g, h] = key;
    backend::backend_key_data(out, i32::from_be_bytes([a & 0x7f, b, c, d]), &[e, f, g, h])
        .map_err(encode)?;
    backend::ready_for_query(out, TxStatus::Idle);
    conn.flush().await?;
    Ok(ConsoleLogin {
        user,
        access,
        params,
    })
}

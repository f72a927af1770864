//! `auth_query`: for a user missing from `auth_file`, ask PostgreSQL for the secret, logged in as
//! `auth_user` (whose own secret comes from `auth_file`), as PgBouncer does.

use crate::config::userlist::Secret;
use crate::config::{Config, Database, Key};
use crate::error::ClientError;
use crate::pool::server::{ServerConn, ServerCredential};

use super::Shared;
use super::params::quote_literal;

/// The secret `auth_query` returns for `user`; `Ok(None)` when no `auth_user` is configured.
/// No row (or a NULL secret) is PgBouncer's `no such user`.
pub async fn lookup(
    shared: &Shared,
    config: &Config,
    database: &str,
    db: &Database,
    user: &str,
) -> Result<Option<Secret>, ClientError> {
    let s = &config.pgbouncer;
    let Some(auth_user) = db
        .target
        .auth_user
        .clone()
        .or_else(|| s.text(Key::AuthUser).map(str::to_owned))
    else {
        return Ok(None);
    };
    let query = db
        .target
        .auth_query
        .clone()
        .or_else(|| s.text(Key::AuthQuery).map(str::to_owned))
        .unwrap_or_default();
    let credential = match shared.users().get(&auth_user) {
        Some(Secret::Plain(pw)) => ServerCredential::Password(pw.clone()),
        Some(Secret::Md5(secret)) => ServerCredential::Md5Secret(secret.clone()),
        _ => {
            return Err(ClientError::Config(format!(
                "auth_user {auth_user} needs a plain or md5 secret in auth_file"
            )));
        }
    };
    let mut info = shared.login_info(config, database, &auth_user, db);
    info.credential = credential;
    if let Some(dbname) = db
        .target
        .auth_dbname
        .clone()
        .or_else(|| s.text(Key::AuthDbname).map(str::to_owned))
    {
        info.dbname = dbname;
    }
    let login_failed = |e: crate::pool::server::ServerError| ClientError::ServerLogin {
        sqlstate: "08006".into(),
        message: format!("auth_query as {auth_user} failed: {e}"),
    };
    let mut server = ServerConn::connect_any(&info, 0)
        .await
        .map_err(login_failed)?;
    // The simple protocol has no parameters: the user name goes in as a quoted literal.
    let sql = query.replace("$1", &quote_literal(user));
    let rows = server.query_rows(&sql).await.map_err(login_failed)?;
    tokio::spawn(server.terminate());
    let secret = rows
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().nth(1).flatten())
        .filter(|s| !s.is_empty());
    match secret {
        Some(text) => Ok(Some(Secret::classify(&text))),
        None => Err(ClientError::NoSuchUser),
    }
}

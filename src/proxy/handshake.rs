//! The client's side of connection start: SSLRequest answered (`S` when `client_tls_sslmode`
//! allows TLS on TCP; the caller then runs the TLS handshake), GSSENCRequest refused,
//! CancelRequest forwarded, StartupMessage read (plaintext refused under `require`), the client
//! authenticated, its pool found, and the welcome (AuthenticationOk, ParameterStatus,
//! BackendKeyData, ReadyForQuery) sent.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Shared;
use super::cancel::{self, CancelSlot, ClientKey};
use super::client_auth::{self, Proof};
use super::params::ClientParams;
use crate::config::userlist::Secret;
use crate::config::{AuthType, Config, Key};
use crate::conn::{Conn, ConnError};
use crate::error::ClientError;
use crate::pool::server::ServerCredential;
use crate::pool::{Pool, PoolError};
use crate::protocol::backend::{self, TxStatus, authentication as authmsg};
use crate::protocol::startup::Startup;
use crate::tls::{TlsInfo, client_cert_common_name};

/// A logged-in client, ready for the relay.
pub struct LoggedIn {
    /// Its pool.
    pub pool: Arc<Pool>,
    /// Its tracked session parameters.
    pub params: ClientParams,
    /// Its pooler-issued cancel key.
    pub key: ClientKey,
    /// Where cancels for it find its server.
    pub cancel: Arc<CancelSlot>,
    /// Database and user as the client named them.
    pub database: String,
    /// User as the client named it.
    pub user: String,
}

/// Where a client connected from, as authentication sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer {
    /// Loopback or unix socket: cleartext passwords may travel (passthrough).
    pub trusted: bool,
    /// A unix-socket client (never offered TLS nor required to use it, as PgBouncer).
    pub unix: bool,
    /// A unix-socket peer running as the pooler's own uid.
    pub is_self: bool,
    /// A TCP client's address.
    pub ip: Option<std::net::IpAddr>,
    /// A unix-socket peer's uid.
    pub uid: Option<u32>,
    /// A TCP client's port.
    pub port: u16,
    /// A unix-socket peer's pid (0: unknown).
    pub pid: i32,
}

impl Peer {
    /// Where the client is, as PgBouncer appends it to an application name (`pga_details`):
    /// `ip:port`, `[ipv6]:port`, or `unix(pid@host):port` with the pooler's port.
    fn details(&self, listen_port: i64) -> String {
        match self.ip {
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            Some(ip) => format!("{ip}:{}", self.port),
            None if self.pid != 0 => {
                let host = nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "somehost".to_owned());
                format!("unix({}@{host}):{listen_port}", self.pid)
            }
            None => format!("unix:{listen_port}"),
        }
    }
}

/// How the start of a connection ended.
pub enum Outcome {
    /// A client to serve.
    Client(Box<LoggedIn>),
    /// A CancelRequest was handled; close the socket.
    Cancelled,
    /// The client sent SSLRequest and was answered `S` (flushed): the caller runs the TLS
    /// handshake on the bare socket, then calls [`run`] again on the encrypted stream.
    StartTls,
    /// A user of the admin console (database `pgbouncer`).
    Console(Box<super::console_login::ConsoleLogin>),
}

/// Runs the whole start of a client connection from `peer`. `over_limit`: accepted beyond
/// `max_client_conn`, so refused once its startup packet names a database other than the admin
/// console's.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin + TlsInfo>(
    conn: &mut Conn<S>,
    shared: &Shared,
    config: &Config,
    peer: &Peer,
    over_limit: bool,
) -> Result<Outcome, ClientError> {
    let (trusted_transport, unix) = (peer.trusted, peer.unix);
    let encrypted = conn.get_ref().tls_state().is_some();
    let startup = loop {
        match conn.read_startup().await {
            Ok(Some(Startup::SslRequest))
                if !unix && !encrypted && shared.with_tls(|tls| tls.client.is_some()) =>
            {
                conn.write_raw(b"S");
                conn.flush().await?;
                return Ok(Outcome::StartTls);
            }
            Ok(Some(Startup::SslRequest | Startup::GssEncRequest)) => {
                // No TLS here: answer 'N' and let the client go on in plaintext (or give up).
                conn.write_raw(b"N");
                conn.flush().await?;
            }
            Ok(Some(Startup::CancelRequest(req))) => {
                let key: Option<ClientKey> = req
                    .secret_key
                    .as_ref()
                    .try_into()
                    .ok()
                    .map(|s| (req.process_id, s));
                if let Some(key) = key {
                    // Boxed: a cancel's server connection must not size every client's task.
                    Box::pin(cancel::handle(shared, key)).await;
                }
                return Ok(Outcome::Cancelled);
            }
            Ok(Some(Startup::StartupMessage(msg))) => break msg,
            Ok(None) => return Ok(Outcome::Cancelled),
            Err(e) => return Err(e.into()),
        }
    };
    if !unix && !encrypted && !shared.with_tls(crate::tls::TlsSettings::client_may_skip_tls) {
        return Err(ClientError::SslRequired);
    }
    let (user, database) = startup.user_and_database();
    let user = user.unwrap_or_default().to_owned();
    if user.is_empty() {
        return Err(ClientError::Protocol(
            "no user name in startup packet".into(),
        ));
    }
    let database = database
        .filter(|d| !d.is_empty())
        .unwrap_or(&user)
        .to_owned();
    if over_limit && database != crate::admin::DATABASE {
        return Err(ClientError::MaxClientConn);
    }
    if database == crate::admin::DATABASE {
        // Boxed, as every rare path here: its future would otherwise enlarge every client's task.
        let login = Box::pin(super::console_login::login(
            conn, shared, &startup, peer, encrypted,
        ))
        .await?;
        return Ok(Outcome::Console(Box::new(login)));
    }
    let settings = &config.pgbouncer;
    let mut params = ClientParams::from_startup(
        startup.params(),
        settings.text(Key::TrackExtraParameters).unwrap_or_default(),
        settings
            .text(Key::IgnoreStartupParameters)
            .unwrap_or_default(),
    )?;

    if settings.flag(Key::ApplicationNameAddHost) {
        params.add_host(&peer.details(settings.int(Key::ListenPort)));
    }
    // The rules are read only when a rule or a certificate decides (a read is an Arc clone).
    let (method, cert_map, hba) = match settings.auth_type() {
        AuthType::Hba => {
            let hba = shared.hba();
            let chosen = super::hba::method_for(&hba, peer, encrypted, &database, &user)?;
            (chosen.method, chosen.cert_map, Some(hba))
        }
        method => (method, None, None),
    };
    if method == AuthType::Passthrough && !(trusted_transport || encrypted) {
        return Err(ClientError::Config(
            "passthrough auth needs a loopback, unix socket or TLS connection (the password travels in cleartext)".into(),
        ));
    }
    // Borrowed from the auth_file map; only an auth_query answer is owned.
    let users = shared.users();
    let mut secret = users.get(&user).map(std::borrow::Cow::Borrowed);
    if secret.is_none()
        && !matches!(
            method,
            AuthType::Any | AuthType::Passthrough | AuthType::Trust | AuthType::Cert
        )
    {
        if let Some(db) = config.database(&database) {
            secret = Box::pin(super::auth_query::lookup(
                shared, config, &database, db, &user,
            ))
            .await?
            .map(std::borrow::Cow::Owned);
        }
    }
    let known = secret.is_some() || matches!(method, AuthType::Any | AuthType::Passthrough);
    let proof = if method == AuthType::Cert {
        let hba = hba.unwrap_or_else(|| shared.hba());
        let named = |cn: &str| hba.names_user(cert_map.as_deref(), cn, &user);
        cert_login(conn.get_ref(), &user, named)?;
        Proof::Nothing
    } else {
        let scram = shared.scram(config);
        client_auth::authenticate(conn, method, &user, secret.as_deref(), scram).await?
    };
    if !known && method == AuthType::Trust {
        return Err(ClientError::TrustFailed);
    }
    let Some(db) = config.database(&database) else {
        return Err(ClientError::NoSuchDatabase(database));
    };
    if shared.registry.controls.is_disabled(&database) {
        return Err(ClientError::DatabaseDisabled(database));
    }
    let pool = shared.pool_for(config, &database, &user, db);
    prove_with_server(&pool, method, &proof, secret.as_deref(), db).await?;

    let welcome = match pool.welcome() {
        Some(w) => w,
        None => {
            // The pool has never reached its server: log one in to learn its parameters.
            let (server, _) = Box::pin(pool.acquire(tokio::time::Instant::now()))
                .await
                .map_err(pool_error)?;
            pool.release(server);
            pool.welcome().unwrap_or_default()
        }
    };
    params.fill_from(&welcome);
    let peer_id = config.pgbouncer.peer_id();
    let (key, cancel) = shared
        .cancels
        .register(peer_id)
        .map_err(|e| ClientError::Config(format!("no randomness: {e}")))?;
    let out = conn.write_buf_mut();
    authmsg::authentication_ok(out);
    params
        .write_welcome(out)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    backend::backend_key_data(out, key.0, &key.1)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    backend::ready_for_query(out, TxStatus::Idle);
    conn.flush().await?;
    pool.stats.login();
    Ok(Outcome::Client(Box::new(LoggedIn {
        pool,
        params,
        key,
        cancel,
        database,
        user,
    })))
}

/// `auth_type = cert`: the client certificate's CN must name the user (`named`: be it, or map
/// to it by an HBA rule's `map=`); the certificate itself was verified against
/// `client_tls_ca_file` during the handshake. The reason is logged; the client hears only
/// PgBouncer's "certificate authentication failed".
fn cert_login(
    stream: &impl TlsInfo,
    user: &str,
    named: impl Fn(&str) -> bool,
) -> Result<(), ClientError> {
    let problem = match (stream.tls_state(), client_cert_common_name(stream)) {
        (None, _) => "TLS connection required",
        (Some(_), None) => "TLS client certificate required",
        (Some(_), Some(cn)) if named(&cn) => return Ok(()),
        (Some(_), Some(_)) => "TLS certificate name mismatch",
    };
    tracing::warn!(user, "{problem}");
    Err(ClientError::CertAuthFailed)
}

/// Gives the pool a credential for server logins, and in passthrough mode makes PostgreSQL
/// the judge of the client's password.
pub(super) async fn prove_with_server(
    pool: &Pool,
    method: AuthType,
    proof: &Proof,
    secret: Option<&Secret>,
    db: &crate::config::Database,
) -> Result<(), ClientError> {
    if db.target.user.is_some() && db.target.password.is_some() {
        return Ok(()); // forced user with its own password: the pool already has it
    }
    if method != AuthType::Passthrough && pool.has_credential() {
        return Ok(()); // the usual login: nothing to copy
    }
    let credential = match (proof, secret) {
        (Proof::Password(pw), _) => ServerCredential::Password(pw.clone()),
        (Proof::Scram(keys), _) => ServerCredential::Scram(keys.clone()),
        (_, Some(Secret::Plain(pw))) => ServerCredential::Password(pw.clone()),
        (_, Some(Secret::Md5(s))) => ServerCredential::Md5Secret(s.clone()),
        _ => return Ok(()),
    };
    if method != AuthType::Passthrough {
        if !pool.has_credential() {
            pool.set_credential(credential);
        }
        return Ok(());
    }
    if pool.credential_matches(&credential) {
        return Ok(());
    }
    // A password PostgreSQL has not yet accepted for this pool: one real login decides.
    let previous = pool.swap_credential(credential.clone());
    match Box::pin(pool.login_check()).await {
        Ok(()) => Ok(()),
        Err(PoolError::Server(crate::pool::server::ServerError::Refused { sqlstate, message })) => {
            pool.restore_credential(previous, &credential);
            if sqlstate == "28P01" || sqlstate == "28000" {
                Err(ClientError::PasswordFailed)
            } else {
                Err(ClientError::ServerLogin { sqlstate, message })
            }
        }
        Err(e) => {
            pool.restore_credential(previous, &credential);
            Err(pool_error(e))
        }
    }
}

impl From<ConnError> for ClientError {
    /// A failed read or write of the client's socket is the client gone; bytes that are no
    /// message are a protocol error.
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Io(_) | ConnError::UnexpectedEof { .. } => {
                ClientError::ClientGone(e.to_string())
            }
            ConnError::Decode(_) | ConnError::Encode(_) => ClientError::Protocol(e.to_string()),
        }
    }
}

/// A pool failure as the client sees it.
pub fn pool_error(e: PoolError) -> ClientError {
    match e {
        PoolError::Checkout(crate::pool::queue::CheckoutError::WaitTimeout) => {
            ClientError::QueryWaitTimeout
        }
        PoolError::Checkout(crate::pool::queue::CheckoutError::Closed) => ClientError::ShuttingDown,
        PoolError::Server(crate::pool::server::ServerError::Refused { sqlstate, message }) => {
            ClientError::ServerLogin { sqlstate, message }
        }
        PoolError::LoginFailing(reason) => ClientError::ServerLoginFailing(reason),
        PoolError::Server(other) => ClientError::ServerLogin {
            sqlstate: "08006".into(),
            message: other.to_string(),
        },
    }
}

/// Whether `config` would let this method run at all; used by `serve` at start.
pub fn supported(config: &Config) -> Result<(), String> {
    match config.pgbouncer.auth_type() {
        AuthType::Any
        | AuthType::Trust
        | AuthType::Plain
        | AuthType::Md5
        | AuthType::ScramSha256
        | AuthType::Passthrough
        | AuthType::Cert
        | AuthType::Hba => Ok(()),
        other => Err(format!(
            "auth_type = {} is not supported yet",
            other.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::Peer;

    fn peer(ip: Option<&str>, port: u16, pid: i32) -> Peer {
        Peer {
            trusted: false,
            unix: ip.is_none(),
            is_self: false,
            ip: ip.map(|ip| ip.parse().unwrap()),
            uid: None,
            port,
            pid,
        }
    }

    #[test]
    fn details_place_the_client_as_pgbouncer_writes_it() {
        assert_eq!(
            peer(Some("10.1.2.3"), 5000, 0).details(6432),
            "10.1.2.3:5000"
        );
        assert_eq!(peer(Some("::1"), 5000, 0).details(6432), "[::1]:5000");
        assert_eq!(peer(None, 0, 0).details(6432), "unix:6432");
        let local = peer(None, 0, 4242).details(6432);
        assert!(
            local.starts_with("unix(4242@") && local.ends_with("):6432"),
            "{local}"
        );
    }
}

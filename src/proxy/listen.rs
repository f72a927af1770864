//! The accept loops on the listening sockets (`bind` makes them), and the task each client
//! runs in.
//!
//! With client TLS on, a TCP client's first byte is peeked: 0x16 is PostgreSQL 17's direct TLS
//! (a ClientHello with no SSLRequest), handshaken before anything is read. After an SSLRequest
//! answered `S`, the TLS handshake runs here too, where the connection is owned, and the
//! handshake resumes on the encrypted stream ([`ClientStream`]) for the rest of the session.

mod backoff;
mod bind;

pub use bind::{ListenError, Listeners};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use futures_util::future::Either;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::time::Instant;

use self::backoff::AcceptBackoff;
use self::bind::ListenerOptions;
use super::Shared;
use super::handshake::{self, LoggedIn, Outcome};
use super::session::{End, Session, Timeouts};
use crate::config::{Config, Key};
use crate::conn::Conn;
use crate::error::ClientError;
use crate::protocol::backend::{Severity, error_response};
use crate::registry::{Addr, ClientInfo, Endpoints};
use crate::tls::{self, ClientStream, Stage, TlsError};

impl Listeners {
    /// Accepts clients until shutdown starts; each runs in its own task.
    pub async fn serve(self, shared: Arc<Shared>) {
        let mut tasks = tokio::task::JoinSet::new();
        for listener in self.tcp {
            let options = self.options.clone();
            tasks.spawn(accept_tcp(listener, options, Arc::clone(&shared)));
        }
        let unix_path = self.unix.as_ref().map(|(_, p)| p.clone());
        if let Some((listener, _)) = self.unix {
            tasks.spawn(accept_unix(listener, Arc::clone(&shared)));
        }
        while tasks.join_next().await.is_some() {}
        if let Some(path) = unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn accept_tcp(listener: TcpListener, mut options: ListenerOptions, shared: Arc<Shared>) {
    let mut phase = shared.shutdown.subscribe();
    // Bound to one address, every connection's local end is that address: no getsockname.
    let bound = listener
        .local_addr()
        .ok()
        .filter(|a| !a.ip().is_unspecified());
    let mut drain = std::pin::pin!(draining(&mut phase));
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            biased;
            () = &mut drain => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Read per client (a reload changes the options for the next one), and
                    // handed to the client's task, which needs it too.
                    let config = shared.config();
                    if let Err(e) = options.on_accept(&listener, &stream, &config) {
                        // As PgBouncer: a socket that cannot be tuned is closed.
                        tracing::warn!(addr = %peer, "{e}");
                        continue;
                    }
                    let local = bound.or_else(|| stream.local_addr().ok());
                    let origin = Origin {
                        trusted: peer.ip().is_loopback(),
                        endpoints: Endpoints {
                            addr: Addr::Ip(peer.ip()),
                            port: peer.port(),
                            local_addr: local.map(|l| Addr::Ip(l.ip())).unwrap_or_default(),
                            local_port: local.map_or(0, |l| l.port()),
                        },
                        peer_is_self: false,
                        pid: 0,
                        ip: Some(peer.ip()),
                        uid: None,
                        login_deadline: login_deadline(&config),
                    };
                    // Boxed: the task then moves a pointer, not the future, each time tokio
                    // hands it on while spawning.
                    let task = client_tcp(stream, Arc::clone(&shared), config, origin);
                    tokio::spawn(Box::pin(task));
                }
                Err(e) => backoff.after(&e).await,
            },
        }
    }
}

async fn accept_unix(listener: UnixListener, shared: Arc<Shared>) {
    let mut phase = shared.shutdown.subscribe();
    let mut drain = std::pin::pin!(draining(&mut phase));
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            biased;
            () = &mut drain => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Peer credentials: the pooler's own uid may use the console as `pgbouncer`.
                    let cred = stream.peer_cred().ok();
                    let config = shared.config();
                    let origin = Origin {
                        trusted: true,
                        endpoints: Endpoints {
                            addr: Addr::UNIX,
                            local_addr: Addr::UNIX,
                            ..Endpoints::default()
                        },
                        peer_is_self: cred
                            .is_some_and(|c| c.uid() == nix::unistd::geteuid().as_raw()),
                        pid: cred.and_then(|c| c.pid()).unwrap_or(0),
                        ip: None,
                        uid: cred.map(|c| c.uid()),
                        login_deadline: login_deadline(&config),
                    };
                    let stream = ClientStream::Plain(stream);
                    let task = client(stream, Arc::clone(&shared), config, origin, true);
                    tokio::spawn(Box::pin(task));
                }
                Err(e) => backoff.after(&e).await,
            },
        }
    }
}

/// Ends when shutdown starts. Made once per listener: one made per accepted client would
/// subscribe to the shutdown channel anew each time.
async fn draining(phase: &mut tokio::sync::watch::Receiver<crate::shutdown::Phase>) {
    // The guard wait_for returns is dropped here, before any await of the caller.
    let _ = phase.wait_for(|p| p.is_draining()).await.map(|_| ());
}

/// Counts a client while its task runs.
struct ClientGuard(Arc<Shared>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a client socket comes from.
struct Origin {
    /// Loopback, unix socket (or TLS): cleartext passwords may travel.
    trusted: bool,
    endpoints: Endpoints,
    /// A unix-socket peer running as the pooler's own uid.
    peer_is_self: bool,
    /// Its pid over a unix socket.
    pid: i32,
    /// Its address over TCP (HBA rules).
    ip: Option<std::net::IpAddr>,
    /// Its uid over a unix socket (HBA `peer`).
    uid: Option<u32>,
    /// When its login must be done by: `client_login_timeout` after the accept, as PgBouncer
    /// counts it, over the TLS handshake and the startup alike (none when zero).
    login_deadline: Option<Instant>,
}

impl Origin {
    /// The peer as log lines name it (`addr:port`, or `unix`), formatted only when a line is
    /// written.
    fn peer(&self) -> Peer {
        peer_of(&self.endpoints)
    }
}

/// A client's address for log lines.
struct Peer(Addr, u16);

fn peer_of(endpoints: &Endpoints) -> Peer {
    Peer(endpoints.addr.clone(), endpoints.port)
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            0 => self.0.fmt(f),
            port => write!(f, "{}:{port}", self.0),
        }
    }
}

/// The login deadline (`client_login_timeout`; none when zero).
fn login_deadline(config: &Config) -> Option<Instant> {
    let timeout = config.pgbouncer.duration(Key::ClientLoginTimeout);
    (!timeout.is_zero()).then(|| Instant::now() + timeout)
}

/// A TCP client's task: [`client`] itself, or with client TLS on, [`direct_tls_or_client`].
///
/// Not an async fn: one would keep its arguments beside the moved copies in every client's
/// task. Without client TLS there is no peek (a syscall per login): a ClientHello then fails
/// as a startup packet would.
fn client_tcp(
    stream: TcpStream,
    shared: Arc<Shared>,
    config: Arc<Config>,
    origin: Origin,
) -> impl Future<Output = ()> {
    match shared.with_tls(|tls| tls.client.clone()) {
        None => Either::Left(client(
            ClientStream::Plain(stream),
            shared,
            config,
            origin,
            false,
        )),
        Some(server_tls) => Either::Right(Box::pin(direct_tls_or_client(
            stream, shared, config, origin, server_tls,
        ))),
    }
}

/// Peeks a TCP client's first byte for direct TLS, handshakes if so, then runs [`client`].
async fn direct_tls_or_client(
    stream: TcpStream,
    shared: Arc<Shared>,
    config: Arc<Config>,
    origin: Origin,
    server_tls: Arc<rustls::ServerConfig>,
) {
    let peer = origin.peer();
    let deadline = origin.login_deadline;
    let mut first = [0u8; 1];
    let peeked = {
        let peek = std::pin::pin!(stream.peek(&mut first));
        shared.logins.within(deadline, peek).await
    };
    let Some(Ok(1)) = peeked else {
        return; // closed, failed or silent until the login timeout: nothing to answer
    };
    let [first] = first;
    let stream = if tls::peek_direct_tls(first) {
        // Boxed: TLS handshakes are large futures, and most clients never run one.
        let mut handshake = Box::pin(tls::accept_client_tls(stream, &server_tls));
        let accepted = shared.logins.within(deadline, handshake.as_mut()).await;
        match accepted {
            // PostgreSQL 17 requires the `postgresql` ALPN on direct TLS, so does this pooler.
            Some(Ok(tls)) if tls::negotiated_postgresql_alpn(&tls) => ClientStream::from(tls),
            Some(Ok(_)) => {
                tracing::warn!(
                    addr = %peer,
                    "direct TLS without the postgresql ALPN, closing"
                );
                return;
            }
            Some(Err(e)) => return tls_failed(&shared, &peer, &e),
            None => return,
        }
    } else {
        ClientStream::Plain(stream)
    };
    client(stream, shared, config, origin, false).await;
}

fn tls_failed(shared: &Shared, peer: &Peer, e: &dyn std::fmt::Display) {
    if shared.config().pgbouncer.flag(Key::LogPoolerErrors) {
        tracing::warn!(addr = %peer, "pooler error: {e}");
    }
}

/// Runs the TLS handshake after the `S` answer, on the socket taken out of `conn`.
async fn start_tls<S: AsyncRead + AsyncWrite + Unpin>(
    conn: Conn<ClientStream<S>>,
    shared: &Shared,
) -> Result<Conn<ClientStream<S>>, TlsError> {
    let max_len = conn.max_message_len();
    let config = shared.with_tls(|tls| tls.client.clone());
    match (tls::stream_for_handshake(conn.into_parts())?, config) {
        (ClientStream::Plain(socket), Some(config)) => {
            let tls = tls::accept_client_tls(socket, &config).await?;
            Ok(Conn::with_max_message_len(ClientStream::from(tls), max_len))
        }
        // handshake::run answers `S` only on plaintext and with a config; a reload in between
        // leaves the client a socket to close.
        _ => Err(TlsError::Io {
            stage: Stage::ClientHandshake,
            source: std::io::Error::other("client TLS switched off by a reload meanwhile"),
        }),
    }
}

/// A client's whole life: login, then the session.
///
/// An async block, not an async fn: an async fn keeps each argument twice (as given and as the
/// local it moves into), and this future is most of every idle client's memory. For the same
/// reason the login is a future of its own ([`log_in`]): what only the login needs takes no
/// room in the task while the session runs.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn's future is bigger, see above"
)]
fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: ClientStream<S>,
    shared: Arc<Shared>,
    config: Arc<Config>,
    origin: Origin,
    unix: bool,
) -> impl Future<Output = ()> {
    async move {
        let s = &config.pgbouncer;
        let max_clients = usize::try_from(s.int(Key::MaxClientConn)).unwrap_or(usize::MAX);
        let count = shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
        let _guard = ClientGuard(Arc::clone(&shared));
        let id = shared.client_ids.fetch_add(1, Ordering::Relaxed);
        // Refused only once its startup packet is read (as PgBouncer): the refusal goes out on a
        // drained socket, and the admin console stays reachable.
        let over_limit = count > max_clients;
        let login = log_in(stream, &shared, &origin, unix, id, over_limit, &config).await;
        // The match arm's bindings (the login's connection) end with this statement.
        let (mut session, key, _admitted, entry) = match login {
            None => return,
            Some((conn, mut login)) => {
                // The session needs neither name: they move to the client's entry.
                let key = login.key;
                let tls = tls::describe(conn.get_ref());
                let info = client_entry(id, &mut login, origin.endpoints, origin.pid, tls);
                let admitted = match shared.admit(&config, &info) {
                    Ok(admitted) => admitted,
                    Err(e) => {
                        shared.cancels.remove(&key);
                        let mut parts = conn.into_parts();
                        refuse(&mut parts.stream, &e).await;
                        return;
                    }
                };
                if s.flag(Key::LogConnections) {
                    let tls = if info.tls.is_empty() { "no" } else { &info.tls };
                    let (db, user) = (&info.database, &info.user);
                    log_client(
                        &info,
                        format_args!("login attempt: db={db} user={user} tls={tls}"),
                    );
                }
                let entry = shared.registry_clients.register(info);
                login.cancel.attach(&login.pool, Arc::clone(&entry));
                if let Some(app) = login.params.get("application_name") {
                    entry.set_application_name(app);
                }
                let session = session_of(conn, *login, &entry, &config, &shared);
                (session, key, admitted, entry)
            }
        };
        let end = session.run().await;
        shared.cancels.remove(&key);
        if s.flag(Key::LogDisconnections) {
            let reason = match &end {
                End::ClientClosed => "client close request".to_owned(),
                End::Error(e) => e.to_string(),
            };
            log_client(&entry, format_args!("closing because: {reason}"));
        }
    }
}

/// A logged-in client's line (`log_connections`, `log_disconnections`), with the `C-0x…`,
/// database, user and address fields every such line carries.
fn log_client(info: &ClientInfo, line: std::fmt::Arguments<'_>) {
    tracing::info!(
        client = format_args!("C-{:#x}", info.id),
        db = info.database.as_str(),
        user = info.user.as_str(),
        addr = %peer_of(&info.endpoints),
        "{line}"
    );
}

/// The handshake (with TLS if asked), up to a logged-in client; `None` when it ended there: a
/// console session that ran, a cancel, a refusal or a failure.
async fn log_in<S: AsyncRead + AsyncWrite + Unpin>(
    stream: ClientStream<S>,
    shared: &Arc<Shared>,
    origin: &Origin,
    unix: bool,
    id: u64,
    over_limit: bool,
    config: &Config,
) -> Option<(Conn<ClientStream<S>>, Box<LoggedIn>)> {
    let s = &config.pgbouncer;
    let max_len = usize::try_from(s.int(Key::MaxPacketSize)).unwrap_or(usize::MAX);
    let mut conn = Conn::with_max_message_len(stream, max_len);
    let deadline = origin.login_deadline;
    let who = handshake_peer(origin, unix);
    let outcome = loop {
        let outcome = {
            let handshake =
                std::pin::pin!(handshake::run(&mut conn, shared, config, &who, over_limit));
            let done = shared.logins.within(deadline, handshake).await;
            done.unwrap_or(Err(ClientError::ClientLoginTimeout))
        };
        if !matches!(outcome, Ok(Outcome::StartTls)) {
            break outcome;
        }
        let mut tls = Box::pin(start_tls(conn, shared));
        conn = match shared.logins.within(deadline, tls.as_mut()).await {
            Some(Ok(conn)) => conn,
            Some(Err(e)) => {
                tls_failed(shared, &origin.peer(), &e);
                return None;
            }
            None => return None,
        };
    };
    match outcome {
        Ok(Outcome::Client(login)) => Some((conn, login)),
        Ok(Outcome::Cancelled | Outcome::StartTls) => None,
        Ok(Outcome::Console(login)) => {
            let mut info = ClientInfo::new(
                id,
                login.user,
                crate::admin::DATABASE.to_owned(),
                origin.endpoints.clone(),
            );
            info.remote_pid = origin.pid;
            let entry = shared.registry_clients.register(info);
            if let Some(app) = login.params.get("application_name") {
                entry.set_application_name(app);
            }
            let host: Arc<dyn crate::admin::Host> =
                Arc::clone(shared) as Arc<dyn crate::admin::Host>;
            let console = crate::admin::Console::new(host, login.access, login.params);
            Box::pin(crate::admin::serve(
                conn.into_parts(),
                max_len,
                console,
                &entry,
            ))
            .await;
            None
        }
        // Nothing can be sent to a client that went away: no error for it, and not the
        // pooler's error (PgBouncer logs it as a disconnection only).
        Err(e @ ClientError::ClientGone(_)) => {
            if s.flag(Key::LogDisconnections) {
                tracing::info!(
                    client = format_args!("C-{id:#x}"),
                    addr = %origin.peer(),
                    "closing because: {e}"
                );
            }
            None
        }
        Err(e) => {
            if s.flag(Key::LogPoolerErrors) {
                tracing::warn!(
                    client = format_args!("C-{id:#x}"),
                    addr = %origin.peer(),
                    "pooler error: {e}"
                );
            }
            let mut parts = conn.into_parts();
            refuse(&mut parts.stream, &e).await;
            None
        }
    }
}

/// What the handshake knows of a client's connection.
fn handshake_peer(origin: &Origin, unix: bool) -> handshake::Peer {
    handshake::Peer {
        trusted: origin.trusted,
        unix,
        is_self: origin.peer_is_self,
        ip: origin.ip,
        uid: origin.uid,
        port: origin.endpoints.port,
        pid: origin.pid,
    }
}

/// The registry entry of a logged-in client; the login's names move into it. Built outside the
/// async [`client`], so the struct is not kept in every client's task as well as in the `Arc`.
fn client_entry(
    id: u64,
    login: &mut LoggedIn,
    endpoints: Endpoints,
    pid: i32,
    tls: Option<String>,
) -> Arc<ClientInfo> {
    let mut info = ClientInfo::new(
        id,
        std::mem::take(&mut login.user),
        std::mem::take(&mut login.database),
        endpoints,
    );
    info.remote_pid = pid;
    // SHOW CLIENTS' tls column; empty for plaintext, as PgBouncer.
    info.tls = tls.unwrap_or_default();
    info.set_pool_user(&login.pool.user);
    Arc::new(info)
}

/// The session of a registered client, over the socket and the bytes its login left unread.
/// Built outside the async [`client`], as [`client_entry`].
fn session_of<S: AsyncRead + AsyncWrite + Unpin>(
    conn: Conn<ClientStream<S>>,
    login: LoggedIn,
    entry: &Arc<ClientInfo>,
    config: &Config,
    shared: &Shared,
) -> Session<ClientStream<S>> {
    let s = &config.pgbouncer;
    let max_len = conn.max_message_len();
    let parts = conn.into_parts();
    let plain = !parts.stream.is_tls();
    Session::new(
        parts.stream,
        parts.read_buf,
        login,
        max_len,
        timeouts_for(config, &entry.user),
        shared.shutdown.view(),
    )
    .with_entry(Arc::clone(entry))
    .refuse_simple_queries(s.flag(Key::DisablePqexec))
    .fast_close(s.flag(Key::ServerFastClose))
    .socket_wakers(plain)
}

/// The session timers of `user`: its `[users]` values, else the global ones.
fn timeouts_for(config: &Config, user: &str) -> Timeouts {
    let s = &config.pgbouncer;
    let user_cfg = config.users.get(user);
    let pick = |own: Option<std::time::Duration>, key: Key| own.unwrap_or_else(|| s.duration(key));
    Timeouts {
        client_idle: pick(
            user_cfg.and_then(|u| u.client_idle_timeout),
            Key::ClientIdleTimeout,
        ),
        idle_transaction: pick(
            user_cfg.and_then(|u| u.idle_transaction_timeout),
            Key::IdleTransactionTimeout,
        ),
        query: pick(user_cfg.and_then(|u| u.query_timeout), Key::QueryTimeout),
        transaction: pick(
            user_cfg.and_then(|u| u.transaction_timeout),
            Key::TransactionTimeout,
        ),
        wait_notify: std::time::Duration::from_secs(
            u64::try_from(s.int(Key::QueryWaitNotify)).unwrap_or(0),
        ),
    }
}

/// Sends a FATAL error to a client before closing it.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, e: &ClientError) {
    let mut out = BytesMut::new();
    if error_response(&mut out, Severity::Fatal, e.sqlstate(), e.to_string()).is_ok() {
        let _ = stream.write_all(&out).await;
        let _ = stream.flush().await;
    }
}

//! A server connection: connect (TCP or unix socket) with a timeout, log in as a PostgreSQL client
//! (cleartext, md5, SCRAM-SHA-256 with a password or pass-through keys), remember what the server
//! reported (ParameterStatus, BackendKeyData), and run simple queries (reset, SET, connect_query).
//!
//! TLS toward PostgreSQL follows `server_tls_sslmode` through [`TlsSettings::connect_server`], on
//! TCP only: unix sockets stay plaintext, as in PgBouncer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use super::hosts::Host;
use crate::auth::scram::{ClientCredential, ScramClient, ScramKeys};
use crate::auth::{self, AuthError, Md5Credential};
use crate::conn::{Conn, ConnError};
use crate::net::TcpTuning;
use crate::protocol::backend::{
    Authentication, BackendKeyData, ErrorFields, ParameterStatus, ReadyForQuery, TxStatus,
};
use crate::protocol::tag::backend as tag;
use crate::protocol::{frontend, startup};
use crate::tls::{MaybeTls, TlsError, TlsSettings};

/// Where and as whom to log in.
#[derive(Clone)]
pub struct LoginInfo {
    /// The database's server addresses (host names, IPs or unix socket directories).
    pub hosts: Arc<super::hosts::HostList>,
    /// Database on the server.
    pub dbname: String,
    /// Role on the server.
    pub user: String,
    /// What to answer the server's authentication request with.
    pub credential: ServerCredential,
    /// Extra startup parameters (client_encoding, application_name, ...).
    pub params: Vec<(String, String)>,
    /// `server_connect_timeout` (covers connect and login).
    pub connect_timeout: Duration,
    /// `connect_query`, run once after login.
    pub connect_query: Option<String>,
    /// `server_tls_*` in force (swapped on reload; open connections keep their session).
    pub tls: Arc<TlsSettings>,
    /// How host names become addresses (`dns_max_ttl`, `dns_nxdomain_ttl`).
    pub resolver: super::dns::Resolver,
    /// Keepalive, user timeout, buffers and TCP_NODELAY for a TCP server socket.
    pub tcp: TcpTuning,
}

impl std::fmt::Debug for LoginInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential stays out of logs.
        let (host, port) = self
            .hosts
            .first()
            .map_or(("", 0), |h| (h.host.as_str(), h.port));
        write!(f, "{}@{host}:{port}/{}", self.user, self.dbname)
    }
}

/// A secret usable for logging in to a server.
#[derive(Clone)]
pub enum ServerCredential {
    /// No secret: the server must trust us.
    None,
    /// The cleartext password (works with every server method).
    Password(String),
    /// An md5 userlist secret (works when the server asks for md5).
    Md5Secret(String),
    /// SCRAM keys taken from the client's own exchange (pass-through).
    Scram(ScramKeys),
}

/// Why a server connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TCP or socket connect failed.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// host:port or socket path.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// server_connect_timeout passed.
    #[error("server connect timeout")]
    Timeout,
    /// One of the pooler's own queries (check, reset, parameter SETs) got no answer within
    /// server_connect_timeout.
    #[error("server did not answer the pooler's query within server_connect_timeout")]
    Unresponsive,
    /// The server refused the login (its own message and SQLSTATE).
    #[error("{message}")]
    Refused {
        /// SQLSTATE from the server.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
    /// The server asked for a method or secret we cannot provide.
    #[error("server login failed: {0}")]
    Unsupported(&'static str),
    /// SCRAM exchange failed.
    #[error("server login failed: {0}")]
    Auth(#[from] AuthError),
    /// Broken or unexpected traffic.
    #[error("server connection failed: {0}")]
    Conn(#[from] ConnError),
    /// The server closed the connection between two messages, where it owed the pooler an
    /// answer (a database shutting down, a backend killed). PgBouncer's words for it.
    #[error("server conn crashed?")]
    Closed,
    /// TLS negotiation with the server failed (refused, certificate not verified...).
    #[error("server TLS failed: {0}")]
    Tls(#[from] TlsError),
    /// The TLS connection broke during login: under TLS 1.3 a rejected client certificate
    /// (`server_tls_cert_file`) shows up only as an alert on the first read.
    #[error("server closed the TLS connection during login (client certificate rejected?): {0}")]
    TlsLogin(std::io::Error),
}

impl ServerError {
    /// The database refused the login only for now: 57P03 (`cannot_connect_now`), starting up,
    /// shutting down or in recovery. PgBouncer keeps waiting clients queued through it, where
    /// any other refusal goes to them all.
    pub fn is_temporary(&self) -> bool {
        matches!(self, ServerError::Refused { sqlstate, .. } if sqlstate == "57P03")
    }
}

/// A server socket: TCP or unix.
#[derive(Debug)]
pub enum ServerStream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ServerStream {
    /// True when encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, ServerStream::Tls(_))
    }

    /// "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519" on a TLS connection, `None` in plaintext.
    pub fn tls_description(&self) -> Option<String> {
        match self {
            ServerStream::Tls(t) => crate::tls::describe(t.as_ref()),
            ServerStream::Tcp(_) | ServerStream::Unix(_) => None,
        }
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Unix(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Where a cancel for this server must go: its address and its BackendKeyData.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    /// Server host (or unix socket directory).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// The address the connection reached over TCP. The cancel goes there, as in PgBouncer:
    /// the host name may resolve elsewhere by now (DNS round robin, a failover).
    pub addr: Option<SocketAddr>,
    /// The server's own key: process id and secret.
    pub key: (i32, Vec<u8>),
    /// The TLS settings the connection was made with: the cancel goes the same way, as in
    /// PgBouncer (the key is a secret).
    pub tls: Arc<TlsSettings>,
}

/// A logged-in server connection.
///
/// Boxed: the pool, its queue and the relay hand it over on every transaction, and moving a
/// pointer is cheaper than moving the fields.
#[derive(Debug)]
pub struct ServerConn(Box<ServerData>);

impl std::ops::Deref for ServerConn {
    type Target = ServerData;
    fn deref(&self) -> &ServerData {
        &self.0
    }
}

impl std::ops::DerefMut for ServerConn {
    fn deref_mut(&mut self) -> &mut ServerData {
        &mut self.0
    }
}

/// The fields of a [`ServerConn`].
#[derive(Debug)]
pub struct ServerData {
    /// Pooler-wide id (logs show it as `S-0x…`).
    pub id: u64,
    /// The socket.
    pub stream: ServerStream,
    /// Bytes read from the server and not yet forwarded.
    pub buf: BytesMut,
    /// Every ParameterStatus the server reported, latest value.
    pub params: BTreeMap<String, String>,
    /// Where cancels for this connection go (shared with the client holding it).
    pub cancel: std::sync::Arc<CancelTarget>,
    /// When the login finished (server_lifetime).
    pub created: Instant,
    /// When a client last released it (server_check_delay, server_idle_timeout).
    pub last_used: Instant,
    /// Status of the last ReadyForQuery.
    pub tx_status: TxStatus,
    /// Fingerprint of the client parameters this server was last set to (0: unknown).
    pub synced_with: u64,
    /// The server's address, for logs and SHOW SERVERS.
    pub addr: String,
    /// Pooler-wide prepared statements this server holds (a new connection starts empty).
    pub prepared: super::statements::ServerStatements,
    /// Its SHOW SERVERS entry, once the pool listed it: the relay updates it without a lookup.
    pub info: Option<Arc<crate::registry::ServerInfo>>,
}

impl ServerConn {
    /// Marks its SHOW SERVERS entry as being in `state`.
    pub fn set_state(&self, state: crate::registry::ServerState) {
        if let Some(info) = &self.info {
            info.set_state(state);
        }
    }

    /// Marks its SHOW SERVERS entry active, handed to a client at `at`.
    pub fn set_active(&self, at: Instant) {
        if let Some(info) = &self.info {
            info.set_active(crate::registry::wall_us(at.into_std()));
        }
    }

    /// Connects to `host` and logs in as connection `id`, all within `info.connect_timeout`.
    pub async fn connect(
        info: &LoginInfo,
        host: &Host,
        id: u64,
    ) -> Result<ServerConn, ServerError> {
        tokio::time::timeout(info.connect_timeout, Self::connect_inner(info, host, id))
            .await
            .map_err(|_| ServerError::Timeout)?
    }

    /// Connects to the first of `info`'s hosts that accepts the login (the pooler's own
    /// connections, such as `auth_query`).
    pub async fn connect_any(info: &LoginInfo, id: u64) -> Result<ServerConn, ServerError> {
        let mut last = ServerError::Unsupported("the database has no host");
        for (index, host) in info.hosts.attempt_order() {
            match Self::connect(info, host, id).await {
                Ok(server) => {
                    info.hosts.succeeded(index);
                    return Ok(server);
                }
                Err(e) => {
                    info.hosts.failed(index);
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn connect_inner(
        info: &LoginInfo,
        host: &Host,
        id: u64,
    ) -> Result<ServerConn, ServerError> {
        let (stream, addr) = open_socket(&host.host, host.port, info).await?;
        let reached = match &stream {
            ServerStream::Tcp(tcp) => tcp.peer_addr().ok(),
            _ => None,
        };
        let stream = match stream {
            ServerStream::Tcp(tcp) => match info.tls.connect_server(tcp, &host.host).await {
                Ok(MaybeTls::Plain(tcp)) => ServerStream::Tcp(tcp),
                Ok(MaybeTls::Tls(tls)) => ServerStream::Tls(tls),
                // A hang-up before the SSLRequest's answer is the same crash as one later on.
                Err(TlsError::Io {
                    stage: crate::tls::Stage::SslRequest,
                    source,
                }) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(ServerError::Closed);
                }
                Err(e) => return Err(e.into()),
            },
            other => other,
        };
        let is_tls = matches!(stream, ServerStream::Tls(_));
        let mut conn = Conn::new(stream);
        let mut params: Vec<(&str, &str)> = vec![("user", &info.user), ("database", &info.dbname)];
        params.extend(info.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        startup::startup_message(conn.write_buf_mut(), startup::PROTOCOL_3_0, params)
            .map_err(ConnError::from)?;
        conn.flush().await?;
        let (params, key) = match login(&mut conn, info).await {
            Err(ServerError::Conn(ConnError::Io(e))) if is_tls => {
                return Err(ServerError::TlsLogin(e));
            }
            other => other?,
        };
        let parts = conn.into_parts();
        let now = Instant::now();
        let mut server = ServerConn(Box::new(ServerData {
            id,
            stream: parts.stream,
            buf: parts.read_buf,
            params,
            cancel: std::sync::Arc::new(CancelTarget {
                host: host.host.clone(),
                port: host.port,
                addr: reached,
                key,
                tls: Arc::clone(&info.tls),
            }),
            created: now,
            last_used: now,
            tx_status: TxStatus::Idle,
            synced_with: 0,
            addr,
            prepared: Default::default(),
            info: None,
        }));
        if let Some(sql) = info.connect_query.as_deref().filter(|q| !q.is_empty()) {
            server.simple_query(sql).await?;
        }
        Ok(server)
    }

    /// Runs `sql` and discards its results; an ErrorResponse becomes [`ServerError::Refused`].
    /// Leaves the connection at ReadyForQuery.
    pub async fn simple_query(&mut self, sql: &str) -> Result<(), ServerError> {
        let mut out = BytesMut::new();
        frontend::query(&mut out, sql).map_err(ConnError::from)?;
        self.stream.write_all(&out).await.map_err(ConnError::from)?;
        let mut failure = None;
        loop {
            let frame = self.read_message().await?;
            match frame.0 {
                tag::ERROR_RESPONSE => failure = Some(refused(&frame.1)),
                tag::PARAMETER_STATUS => self.note_parameter(&frame.1),
                tag::READY_FOR_QUERY => {
                    self.tx_status = ReadyForQuery::parse(&frame.1)
                        .map_err(ConnError::from)?
                        .status;
                    return failure.map_or(Ok(()), Err);
                }
                _ => {}
            }
        }
    }

    /// True when an idle connection is known dead: the server closed it or sent something
    /// unasked (PostgreSQL's "terminating connection" FATAL on shutdown). Never blocks.
    pub fn is_broken(&self) -> bool {
        let mut probe = [0u8; 1];
        let result = match &self.stream {
            ServerStream::Tcp(s) => s.try_read(&mut probe),
            ServerStream::Unix(s) => s.try_read(&mut probe),
            // Any bytes under TLS on an idle connection are an alert or the server's goodbye,
            // so reading one from the raw socket only confirms what the connection already is.
            ServerStream::Tls(s) => s.get_ref().0.try_read(&mut probe),
        };
        !matches!(result, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Runs `sql` and returns its rows as text (NULL as `None`); an ErrorResponse becomes
    /// [`ServerError::Refused`]. For the pooler's own small queries (`auth_query`).
    pub async fn query_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, ServerError> {
        let mut out = BytesMut::new();
        frontend::query(&mut out, sql).map_err(ConnError::from)?;
        self.stream.write_all(&out).await.map_err(ConnError::from)?;
        let mut rows = Vec::new();
        let mut failure = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                tag::DATA_ROW => {
                    let row =
                        crate::protocol::backend::DataRow::parse(&body).map_err(ConnError::from)?;
                    rows.push(
                        row.values()
                            .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                            .collect(),
                    );
                }
                tag::ERROR_RESPONSE => failure = Some(refused(&body)),
                tag::READY_FOR_QUERY => {
                    self.tx_status = ReadyForQuery::parse(&body).map_err(ConnError::from)?.status;
                    return failure.map_or(Ok(rows), Err);
                }
                _ => {}
            }
        }
    }

    /// Records a ParameterStatus body in [`ServerConn::params`].
    pub fn note_parameter(&mut self, body: &[u8]) {
        if let Ok(ps) = ParameterStatus::parse(body) {
            self.params.insert(
                String::from_utf8_lossy(ps.name).into_owned(),
                String::from_utf8_lossy(ps.value).into_owned(),
            );
        }
    }

    /// Reads one whole message (tag, body) from the server, outside the relay.
    async fn read_message(&mut self) -> Result<(u8, Bytes), ServerError> {
        use tokio::io::AsyncReadExt as _;
        loop {
            let mut walk = crate::protocol::walk::Walk::new(
                &self.buf,
                crate::protocol::DEFAULT_MAX_MESSAGE_LEN,
            );
            if let Some(m) = walk
                .next_message()
                .map_err(|_| ServerError::Unsupported("oversized message"))?
            {
                // Copied out, not split off: a split would make the server's read buffer a
                // shared one, with an atomic reference count on every later use in the relay.
                let message = (m.tag, Bytes::copy_from_slice(m.body));
                let len = walk.consumed();
                self.buf.advance(len);
                return Ok(message);
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(8192);
            }
            let this = &mut *self.0;
            let n = this
                .stream
                .read_buf(&mut this.buf)
                .await
                .map_err(ConnError::from)?;
            if n == 0 {
                return Err(match self.buf.len() {
                    0 => ServerError::Closed,
                    buffered => ServerError::Conn(ConnError::UnexpectedEof { buffered }),
                });
            }
        }
    }

    /// Sends Terminate and closes the socket, without waiting long.
    pub async fn terminate(mut self) {
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            let _ = self.stream.write_all(&out).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }
}

async fn open_socket(
    host: &str,
    port: u16,
    info: &LoginInfo,
) -> Result<(ServerStream, String), ServerError> {
    if host.starts_with('/') {
        let path = format!("{host}/.s.PGSQL.{port}");
        let stream = UnixStream::connect(&path)
            .await
            .map_err(|source| ServerError::Connect {
                addr: path.clone(),
                source,
            })?;
        return Ok((ServerStream::Unix(stream), path));
    }
    let addr = format!("{host}:{port}");
    let failed = |source| ServerError::Connect {
        addr: addr.clone(),
        source,
    };
    let ips = info.resolver.resolve(host).await.map_err(failed)?;
    // Each address in turn, as PostgreSQL's clients do with a name that has several.
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for ip in ips {
        match connect_tuned(SocketAddr::new(ip, port), &info.tcp).await {
            Ok(stream) => return Ok((ServerStream::Tcp(stream), addr)),
            Err(e) => last = e,
        }
    }
    Err(failed(last))
}

/// Connects with the buffers set before the handshake (they decide the window scale offered)
/// and the other options after it.
async fn connect_tuned(addr: SocketAddr, tuning: &TcpTuning) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    tuning.apply_buffers(&socket)?;
    let stream = socket.connect(addr).await?;
    tuning.apply_options(&stream)?;
    Ok(stream)
}

type Welcome = (BTreeMap<String, String>, (i32, Vec<u8>));

/// Answers the authentication requests, then collects ParameterStatus and BackendKeyData up to
/// the first ReadyForQuery.
async fn login(conn: &mut Conn<ServerStream>, info: &LoginInfo) -> Result<Welcome, ServerError> {
    let mut params = BTreeMap::new();
    let mut key = (0, Vec::new());
    let mut scram: Option<ScramClient> = None;
    loop {
        let Some(frame) = conn.read_frame().await? else {
            return Err(ServerError::Closed);
        };
        match frame.tag {
            tag::AUTHENTICATION => {
                let request = Authentication::parse(&frame.body).map_err(ConnError::from)?;
                answer(conn, info, request, &mut scram)?;
                conn.flush().await?;
            }
            tag::PARAMETER_STATUS => {
                let ps = ParameterStatus::parse(&frame.body).map_err(ConnError::from)?;
                params.insert(
                    String::from_utf8_lossy(ps.name).into_owned(),
                    String::from_utf8_lossy(ps.value).into_owned(),
                );
            }
            tag::BACKEND_KEY_DATA => {
                let k = BackendKeyData::parse(&frame.body).map_err(ConnError::from)?;
                key = (k.process_id, k.secret_key.to_vec());
            }
            tag::ERROR_RESPONSE => return Err(refused(&frame.body)),
            tag::READY_FOR_QUERY => return Ok((params, key)),
            _ => {}
        }
    }
}

fn answer(
    conn: &mut Conn<ServerStream>,
    info: &LoginInfo,
    request: Authentication<'_>,
    scram: &mut Option<ScramClient>,
) -> Result<(), ServerError> {
    let out = conn.write_buf_mut();
    match request {
        Authentication::Ok => {}
        Authentication::CleartextPassword => match &info.credential {
            ServerCredential::Password(pw) => {
                frontend::password_message(out, pw.as_bytes()).map_err(ConnError::from)?
            }
            _ => {
                return Err(ServerError::Unsupported(
                    "the server wants a cleartext password and only a hash is known",
                ));
            }
        },
        Authentication::Md5Password { salt } => {
            let credential = match &info.credential {
                ServerCredential::Password(pw) => Md5Credential::Password(pw),
                ServerCredential::Md5Secret(secret) => Md5Credential::Secret(secret),
                _ => {
                    return Err(ServerError::Unsupported(
                        "the server wants md5 and no password or md5 secret is known",
                    ));
                }
            };
            let response = auth::md5_response(&info.user, credential, salt);
            frontend::password_message(out, response.as_bytes()).map_err(ConnError::from)?;
        }
        Authentication::Sasl(mechanisms) => {
            if !mechanisms
                .iter()
                .any(|m| m == crate::auth::scram::MECHANISM.as_bytes())
            {
                return Err(ServerError::Unsupported(
                    "the server offers no SASL mechanism we speak",
                ));
            }
            let credential = match &info.credential {
                ServerCredential::Password(pw) => ClientCredential::Password(pw.clone()),
                ServerCredential::Scram(keys) => ClientCredential::Keys(keys.clone()),
                _ => {
                    return Err(ServerError::Unsupported(
                        "the server wants SCRAM and no password or SCRAM keys are known",
                    ));
                }
            };
            let client = ScramClient::new(credential)?;
            frontend::sasl_initial_response(
                out,
                crate::auth::scram::MECHANISM,
                Some(&client.client_first()),
            )
            .map_err(ConnError::from)?;
            *scram = Some(client);
        }
        Authentication::SaslContinue(data) => {
            let client = scram
                .as_mut()
                .ok_or(ServerError::Unsupported("SASLContinue without SASL"))?;
            let reply = client.handle_server_first(data)?;
            frontend::sasl_response(out, &reply).map_err(ConnError::from)?;
        }
        Authentication::SaslFinal(data) => {
            let client = scram
                .as_mut()
                .ok_or(ServerError::Unsupported("SASLFinal without SASL"))?;
            client.verify_server_final(data)?;
        }
        _ => {
            return Err(ServerError::Unsupported(
                "the server asked for an authentication method we do not speak",
            ));
        }
    }
    Ok(())
}

/// A server ErrorResponse as [`ServerError::Refused`].
pub fn refused(body: &[u8]) -> ServerError {
    let fields = ErrorFields::parse(body).ok();
    let text = |f: Option<&[u8]>| {
        f.map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    ServerError::Refused {
        sqlstate: text(fields.as_ref().and_then(|f| f.code())),
        message: text(fields.as_ref().and_then(|f| f.message())),
    }
}

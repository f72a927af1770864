//! The crate-wide error: what went wrong, whose fault it was, and the text and SQLSTATE a client sees.

/// Whose fault an error was: decides logging level and whether the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong or is not allowed.
    Client,
    /// The PostgreSQL server misbehaved or went away.
    Server,
    /// A bug or resource problem inside the pooler.
    Internal,
}

/// An error the pooler itself reports to a client, with PgBouncer's wording (reference §1c).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Over `max_client_conn`.
    #[error("no more connections allowed (max_client_conn)")]
    MaxClientConn,
    /// The database is not in `[databases]` and there is no `*` entry.
    #[error("no such database: {0}")]
    NoSuchDatabase(String),
    /// Wrong password, unknown user, or a failed md5/cleartext exchange.
    #[error("password authentication failed")]
    PasswordFailed,
    /// A failed SCRAM exchange.
    #[error("SASL authentication failed")]
    SaslFailed,
    /// `trust` (global or an hba line) for a user missing from auth_file.
    #[error("\"trust\" authentication failed")]
    TrustFailed,
    /// The SASLInitialResponse named a mechanism other than the one offered.
    #[error("client selected an invalid SASL authentication mechanism")]
    InvalidSaslMechanism,
    /// `auth_query` found no such role (PgBouncer reveals this; there is no mock on that path).
    #[error("no such user")]
    NoSuchUser,
    /// Not allowed to use this database (admin console) or auth method refused.
    #[error("not allowed")]
    NotAllowed,
    /// Over `max_db_client_connections` (`true`) or `max_user_client_connections` (`false`).
    #[error("client connections exceeded ({})", if *.0 { "max_db_client_connections" } else { "max_user_client_connections" })]
    ClientCapExceeded(bool),
    /// DISABLE was run for the database.
    #[error("database \"{0}\" is disabled")]
    DatabaseDisabled(String),
    /// KILL or KILL_CLIENT from the admin console.
    #[error("admin forced disconnect")]
    AdminForcedDisconnect,
    /// Waited `query_wait_timeout` for a server.
    #[error("query_wait_timeout")]
    QueryWaitTimeout,
    /// `query_timeout` hit.
    #[error("query_timeout")]
    QueryTimeout,
    /// `client_idle_timeout` hit.
    #[error("client_idle_timeout")]
    ClientIdleTimeout,
    /// `idle_transaction_timeout` hit.
    #[error("idle transaction timeout")]
    IdleTransactionTimeout,
    /// `transaction_timeout` hit.
    #[error("transaction timeout")]
    TransactionTimeout,
    /// Login took longer than `client_login_timeout`.
    #[error("client_login_timeout")]
    ClientLoginTimeout,
    /// A startup parameter PgBouncer does not pass on.
    #[error("unsupported startup parameter: {0}")]
    UnsupportedStartupParameter(String),
    /// An `options` entry other than `-c key=value`.
    #[error("unsupported startup parameter in options: {0}")]
    UnsupportedOption(String),
    /// A plaintext login under `client_tls_sslmode = require` or stricter.
    #[error("SSL required")]
    SslRequired,
    /// `auth_type = cert`: no TLS, no client certificate, or its CN is not the user
    /// (PgBouncer logs which, and tells the client only this).
    #[error("certificate authentication failed")]
    CertAuthFailed,
    /// The process is shutting down.
    #[error("pooler is shutting down")]
    ShuttingDown,
    /// `server_fast_close` in session mode: the server must go (RECONNECT, or a reload that
    /// moved the database), so the client goes with it between transactions.
    #[error("database configuration changed")]
    ConfigChanged,
    /// A simple Query under `disable_pqexec` (only the extended protocol is let through).
    #[error("PQexec disallowed")]
    PqexecDisallowed,
    /// A transaction spanning statements in statement mode.
    #[error("transaction blocks not allowed in statement pooling mode")]
    StatementModeTransaction,
    /// The server connection died under the client.
    #[error("server conn crashed?")]
    ServerCrashed,
    /// A server login failed less than `server_login_retry` ago and no server is up
    /// (PgBouncer ≥ 1.24 `check_fast_fail`, src/objects.c).
    #[error("server login has been failing, cached error: {0} (server_login_retry)")]
    ServerLoginFailing(String),
    /// `auth_type = hba`: a `reject` rule, or no rule at all, for this connection.
    #[error("login rejected")]
    LoginRejected,
    /// `auth_type = hba` with a `peer` rule: not a unix socket, or another OS user.
    #[error("unix socket login rejected")]
    UnixPeerRejected,
    /// The server refused the login; its own SQLSTATE and message are passed on.
    #[error("{message}")]
    ServerLogin {
        /// The server's SQLSTATE.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
    /// Broken protocol from the client.
    #[error("{0}")]
    Protocol(String),
    /// The client's connection closed or broke during its login: nothing more reaches it.
    #[error("client unexpected eof ({0})")]
    ClientGone(String),
    /// A configuration the pooler cannot serve (e.g. an auth method not built in).
    #[error("bouncer config error: {0}")]
    Config(String),
}

impl ClientError {
    /// The SQLSTATE sent with the message: PgBouncer sends 08P01 for every error of its own
    /// (reference §1c); a refused server login passes the server's code on.
    pub fn sqlstate(&self) -> &str {
        match self {
            ClientError::ServerLogin { sqlstate, .. } if !sqlstate.is_empty() => sqlstate,
            _ => "08P01",
        }
    }

    /// Whose fault it was.
    pub fn fault(&self) -> Fault {
        match self {
            ClientError::ServerCrashed
            | ClientError::ServerLogin { .. }
            | ClientError::ServerLoginFailing(_) => Fault::Server,
            ClientError::Config(_) => Fault::Internal,
            _ => Fault::Client,
        }
    }
}

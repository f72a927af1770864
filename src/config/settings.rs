//! The `[pgbouncer]` section as checked values: one slot per registry key, typed accessors for
//! the pooler, and the enums PgBouncer's lookups map to (pool mode, auth type, TLS modes).

use std::time::Duration;

use super::error::Location;
use super::keys::{self, KEYS, Key, Kind, Value};

/// When a server connection goes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolMode {
    /// When the client disconnects.
    Session,
    /// When a transaction ends (ReadyForQuery says idle).
    Transaction,
    /// After every statement; multi-statement transactions are refused.
    Statement,
}

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// Any user name and no password; every database needs a forced `user=`.
    Any,
    /// No password, but the user must be known.
    Trust,
    /// Cleartext password.
    Plain,
    /// MD5 (or SCRAM when the stored secret is SCRAM).
    Md5,
    /// TLS client certificate, user from the CN.
    Cert,
    /// Per-connection method from `auth_hba_file`.
    Hba,
    /// LDAP (PgBouncer ≥ 1.25).
    Ldap,
    /// PAM.
    Pam,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// Ours (DESIGN.md §3): PostgreSQL checks the client's password; no userlist needed.
    Passthrough,
}

/// A TLS `sslmode`, as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the other side asks.
    Allow,
    /// TLS when possible.
    Prefer,
    /// TLS always, no certificate check.
    Require,
    /// TLS with the peer's certificate checked against the CA.
    VerifyCa,
    /// As `VerifyCa`, plus the host name.
    VerifyFull,
}

/// Our `log_format` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn pick<T: Copy>(name: &str, names: &[&str], values: &[T], fallback: T) -> T {
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .and_then(|i| values.get(i).copied())
        .unwrap_or(fallback)
}

impl PoolMode {
    /// Parses PgBouncer's name (`session`, `transaction`, `statement`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let name = keys::parse_enum(text, keys::POOL_MODES)?;
        Ok(pick(
            name,
            keys::POOL_MODES,
            &[Self::Session, Self::Transaction, Self::Statement],
            Self::Session,
        ))
    }

    /// PgBouncer's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Transaction => "transaction",
            Self::Statement => "statement",
        }
    }
}

impl AuthType {
    /// PgBouncer's name (`scram-sha-256`, ...).
    pub fn as_str(self) -> &'static str {
        const ALL: [AuthType; 10] = [
            AuthType::Any,
            AuthType::Trust,
            AuthType::Plain,
            AuthType::Md5,
            AuthType::Cert,
            AuthType::Hba,
            AuthType::Ldap,
            AuthType::Pam,
            AuthType::ScramSha256,
            AuthType::Passthrough,
        ];
        let index = ALL.iter().position(|a| *a == self).unwrap_or(0);
        keys::AUTH_TYPES.get(index).copied().unwrap_or("md5")
    }

    fn from_name(name: &str) -> Self {
        use AuthType::*;
        let all = [
            Any,
            Trust,
            Plain,
            Md5,
            Cert,
            Hba,
            Ldap,
            Pam,
            ScramSha256,
            Passthrough,
        ];
        pick(name, keys::AUTH_TYPES, &all, Md5)
    }
}

impl SslMode {
    fn from_name(name: &str) -> Self {
        use SslMode::*;
        let all = [Disable, Allow, Prefer, Require, VerifyCa, VerifyFull];
        pick(name, keys::SSL_MODES, &all, Prefer)
    }
}

/// The `[pgbouncer]` section: every key's value (default when unset) and where it was set.
/// Two `Settings` are equal when their values are, wherever they were written.
#[derive(Debug, Clone)]
pub struct Settings {
    values: Vec<Value>,
    set_at: Vec<Option<Location>>,
}

impl Default for Settings {
    fn default() -> Self {
        let values = KEYS
            .iter()
            .map(|s| {
                keys::parse_value(s.kind, s.default).unwrap_or(Value::Text(s.default.to_owned()))
            })
            .collect();
        Settings {
            values,
            set_at: vec![None; KEYS.len()],
        }
    }
}

impl PartialEq for Settings {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Settings {
    /// Sets `key` from its text; the error says what was expected.
    pub fn set(&mut self, key: Key, text: &str, at: Option<Location>) -> Result<(), String> {
        let value = keys::parse_value(key.spec().kind, text)?;
        if let Some(slot) = self.values.get_mut(key as usize) {
            *slot = value;
        }
        if let Some(slot) = self.set_at.get_mut(key as usize) {
            *slot = at;
        }
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: Key) -> &Value {
        static NONE: Value = Value::Int(0);
        self.values.get(key as usize).unwrap_or(&NONE)
    }

    /// Where `key` was set, or `None` when it has its default.
    pub fn set_at(&self, key: Key) -> Option<&Location> {
        self.set_at.get(key as usize).and_then(Option::as_ref)
    }

    /// `key`'s value as text, as SHOW CONFIG prints it.
    pub fn render(&self, key: Key) -> String {
        self.get(key).render()
    }

    /// An integer or boolean key's value (booleans are 0/1).
    pub fn int(&self, key: Key) -> i64 {
        match self.get(key) {
            Value::Int(i) => *i,
            Value::Bool(b) => i64::from(*b),
            Value::Mode(m) => i64::from(*m),
            _ => 0,
        }
    }

    /// A boolean key (an integer key: non-zero).
    pub fn flag(&self, key: Key) -> bool {
        self.int(key) != 0
    }

    /// A seconds key as a duration (zero for other kinds).
    pub fn duration(&self, key: Key) -> Duration {
        match self.get(key) {
            Value::Seconds(d) => *d,
            _ => Duration::ZERO,
        }
    }

    /// A text key; `None` when empty (unset).
    pub fn text(&self, key: Key) -> Option<&str> {
        match self.get(key) {
            Value::Text(t) if !t.is_empty() => Some(t),
            _ => None,
        }
    }

    /// A list key's items.
    pub fn list(&self, key: Key) -> Vec<&str> {
        keys::split_list(self.text(key).unwrap_or("")).collect()
    }

    /// `pool_mode`.
    pub fn pool_mode(&self) -> PoolMode {
        PoolMode::parse(self.text(Key::PoolMode).unwrap_or("")).unwrap_or(PoolMode::Session)
    }

    /// `auth_type`.
    pub fn auth_type(&self) -> AuthType {
        AuthType::from_name(self.text(Key::AuthType).unwrap_or(""))
    }

    /// `client_tls_sslmode`.
    pub fn client_tls_sslmode(&self) -> SslMode {
        SslMode::from_name(self.text(Key::ClientTlsSslmode).unwrap_or(""))
    }

    /// `server_tls_sslmode`.
    pub fn server_tls_sslmode(&self) -> SslMode {
        SslMode::from_name(self.text(Key::ServerTlsSslmode).unwrap_or(""))
    }

    /// `log_format`.
    pub fn log_format(&self) -> LogFormat {
        match self.text(Key::LogFormat) {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }

    /// `listen_port`.
    pub fn listen_port(&self) -> u16 {
        u16::try_from(self.int(Key::ListenPort)).unwrap_or(6432)
    }

    /// `peer_id` (0: peering off).
    pub fn peer_id(&self) -> u16 {
        u16::try_from(self.int(Key::PeerId)).unwrap_or(0)
    }

    /// `listen_addr` items (`*` = every address); empty = Unix socket only.
    pub fn listen_addrs(&self) -> Vec<&str> {
        self.list(Key::ListenAddr)
    }

    /// `metrics_listen` as `host:port`, or `None` when metrics are off.
    pub fn metrics_listen(&self) -> Option<&str> {
        self.text(Key::MetricsListen)
    }

    /// True when `key` is a kind whose empty value means "unset".
    pub fn is_textual(key: Key) -> bool {
        matches!(key.spec().kind, Kind::Text | Kind::List | Kind::HostPort)
    }
}

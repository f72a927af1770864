//! The `[pgbouncer]` key registry: one static table of every key with its kind, PgBouncer's
//! default (from the `CF_ABS` table in PgBouncer's `src/main.c`) and whether a reload may change
//! it (`CF_NO_RELOAD` there), plus the value parsers shared with `[databases]` and `[users]`.
//! Owns no state and does no IO.

use std::time::Duration;

/// How a key's value is written and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer in `min..=max`; `0x` hex and leading-`0` octal as C's `strtol(.., 0)`.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// `0/1/yes/no/on/off/true/false` (PgBouncer itself only takes integers here).
    Bool,
    /// Seconds, fractions allowed, never negative.
    Seconds,
    /// Free text; empty means unset.
    Text,
    /// A comma-separated list; empty means none.
    List,
    /// One of a fixed set of names, case-insensitive.
    Enum(&'static [&'static str]),
    /// A file mode, written in octal (`0777`).
    Mode,
    /// `host:port`, empty means off.
    HostPort,
}

/// One row of the registry.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key as an enum, for typed access.
    pub key: Key,
    /// The name as written in pgbouncer.ini.
    pub name: &'static str,
    /// The value's kind.
    pub kind: Kind,
    /// PgBouncer's default, as text.
    pub default: &'static str,
    /// Whether RELOAD/SET may change it (PgBouncer: not `CF_NO_RELOAD`).
    pub reloadable: bool,
}

const MAX_INT: i64 = i32::MAX as i64;
const COUNT: Kind = Kind::Int {
    min: 0,
    max: MAX_INT,
};
const PORT: Kind = Kind::Int { min: 1, max: 65535 };
const SECS: Kind = Kind::Seconds;

/// Keys bouncectl reads, validates and shows but does not act on (the README lists them with
/// the reason); a value other than PgBouncer's default is warned about at start and reload.
pub const INERT: &[Key] = &[
    Key::AuthLdapOptions,
    Key::ClientTlsDheparams,
    Key::DnsZoneCheckPeriod,
    Key::JobName,
    Key::PktBuf,
    Key::ResolvConf,
    Key::SbufLoopcnt,
    Key::ServiceName,
    Key::SuspendTimeout,
];

/// Names accepted by `pool_mode`.
pub const POOL_MODES: &[&str] = &["session", "transaction", "statement"];
/// Names accepted by `auth_type` (PgBouncer's plus our `passthrough`, DESIGN.md §3).
pub const AUTH_TYPES: &[&str] = &[
    "any",
    "trust",
    "plain",
    "md5",
    "cert",
    "hba",
    "ldap",
    "pam",
    "scram-sha-256",
    "passthrough",
];
/// Names accepted by the TLS `sslmode` keys.
pub const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];
/// Names accepted by a database's `load_balance_hosts`.
pub const LOAD_BALANCE: &[&str] = &["round-robin", "disable"];
/// Names accepted by `log_format` (our extension).
pub const LOG_FORMATS: &[&str] = &["text", "json"];
/// syslog facilities PgBouncer maps by name.
pub const SYSLOG_FACILITIES: &[&str] = &[
    "auth", "authpriv", "daemon", "user", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// The default `auth_query` (PgBouncer ≥ 1.24.1, with the VALID UNTIL check).
pub const DEFAULT_AUTH_QUERY: &str = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin";

macro_rules! registry {
    ($($variant:ident $name:literal $kind:expr, $default:expr, $reload:literal;)*) => {
        /// Every `[pgbouncer]` key, in the registry's (alphabetical, SHOW CONFIG) order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Key {
            $(#[doc = concat!("`", $name, "`")] $variant,)*
        }

        /// The registry, alphabetical as PgBouncer's table (SHOW CONFIG uses this order).
        pub static KEYS: &[KeySpec] = &[
            $(KeySpec { key: Key::$variant, name: $name, kind: $kind, default: $default, reloadable: $reload },)*
        ];
    };
}

registry! {
    AdminUsers "admin_users" Kind::List, "", true;
    ApplicationNameAddHost "application_name_add_host" Kind::Bool, "0", true;
    AuthDbname "auth_dbname" Kind::Text, "", true;
    AuthFile "auth_file" Kind::Text, "", true;
    AuthHbaFile "auth_hba_file" Kind::Text, "", true;
    AuthIdentFile "auth_ident_file" Kind::Text, "", true;
    AuthLdapOptions "auth_ldap_options" Kind::Text, "", true;
    AuthQuery "auth_query" Kind::Text, DEFAULT_AUTH_QUERY, true;
    AuthType "auth_type" Kind::Enum(AUTH_TYPES), "md5", true;
    AuthUser "auth_user" Kind::Text, "", true;
    AutodbIdleTimeout "autodb_idle_timeout" SECS, "3600", true;
    CancelWaitTimeout "cancel_wait_timeout" SECS, "10", true;
    ClientIdleTimeout "client_idle_timeout" SECS, "0", true;
    ClientLoginTimeout "client_login_timeout" SECS, "60", true;
    ClientTls13Ciphers "client_tls13_ciphers" Kind::Text, "", true;
    ClientTlsCaFile "client_tls_ca_file" Kind::Text, "", true;
    ClientTlsCertFile "client_tls_cert_file" Kind::Text, "", true;
    ClientTlsCiphers "client_tls_ciphers" Kind::Text, "default", true;
    ClientTlsDheparams "client_tls_dheparams" Kind::Enum(&["none", "auto", "legacy"]), "auto", true;
    ClientTlsEcdhcurve "client_tls_ecdhcurve" Kind::Text, "auto", true;
    ClientTlsKeyFile "client_tls_key_file" Kind::Text, "", true;
    ClientTlsProtocols "client_tls_protocols" Kind::Text, "secure", true;
    ClientTlsSslmode "client_tls_sslmode" Kind::Enum(SSL_MODES), "disable", true;
    Conffile "conffile" Kind::Text, "", true;
    DefaultPoolSize "default_pool_size" COUNT, "20", true;
    DisablePqexec "disable_pqexec" Kind::Bool, "0", false;
    DnsMaxTtl "dns_max_ttl" SECS, "15", true;
    DnsNxdomainTtl "dns_nxdomain_ttl" SECS, "15", true;
    DnsZoneCheckPeriod "dns_zone_check_period" SECS, "0", true;
    IdleTransactionTimeout "idle_transaction_timeout" SECS, "0", true;
    IgnoreStartupParameters "ignore_startup_parameters" Kind::List, "", true;
    JobName "job_name" Kind::Text, "pgbouncer", false;
    ListenAddr "listen_addr" Kind::List, "", false;
    ListenBacklog "listen_backlog" Kind::Int { min: 1, max: MAX_INT }, "128", false;
    ListenPort "listen_port" PORT, "6432", false;
    LogConnections "log_connections" Kind::Bool, "1", true;
    LogDisconnections "log_disconnections" Kind::Bool, "1", true;
    LogFormat "log_format" Kind::Enum(LOG_FORMATS), "text", true;
    LogPoolerErrors "log_pooler_errors" Kind::Bool, "1", true;
    LogStats "log_stats" Kind::Bool, "1", true;
    Logfile "logfile" Kind::Text, "", true;
    MaxClientConn "max_client_conn" Kind::Int { min: 1, max: MAX_INT }, "100", true;
    MaxDbClientConnections "max_db_client_connections" COUNT, "0", true;
    MaxDbConnections "max_db_connections" COUNT, "0", true;
    MaxPacketSize "max_packet_size" Kind::Int { min: 1, max: u32::MAX as i64 }, "2147483647", true;
    MaxPreparedStatements "max_prepared_statements" COUNT, "200", true;
    MaxUserClientConnections "max_user_client_connections" COUNT, "0", true;
    MaxUserConnections "max_user_connections" COUNT, "0", true;
    MetricsListen "metrics_listen" Kind::HostPort, "", false;
    MetricsPath "metrics_path" Kind::Text, "/metrics", true;
    MinPoolSize "min_pool_size" COUNT, "0", true;
    PeerId "peer_id" Kind::Int { min: 0, max: 16383 }, "0", true;
    Pidfile "pidfile" Kind::Text, "", false;
    PktBuf "pkt_buf" Kind::Int { min: 512, max: MAX_INT }, "4096", false;
    PoolIdleTimeout "pool_idle_timeout" SECS, "0", true;
    PoolMode "pool_mode" Kind::Enum(POOL_MODES), "session", true;
    QueryTimeout "query_timeout" SECS, "0", true;
    QueryWaitNotify "query_wait_notify" COUNT, "5", true;
    QueryWaitTimeout "query_wait_timeout" SECS, "120", true;
    ReservePoolSize "reserve_pool_size" COUNT, "0", true;
    ReservePoolTimeout "reserve_pool_timeout" SECS, "5", true;
    ResolvConf "resolv_conf" Kind::Text, "", false;
    SbufLoopcnt "sbuf_loopcnt" COUNT, "5", true;
    ScramIterations "scram_iterations" Kind::Int { min: 1, max: MAX_INT }, "4096", true;
    ServerCheckDelay "server_check_delay" SECS, "30", true;
    ServerCheckQuery "server_check_query" Kind::Text, "<empty>", true;
    ServerConnectTimeout "server_connect_timeout" SECS, "15", true;
    ServerFastClose "server_fast_close" Kind::Bool, "0", true;
    ServerIdleTimeout "server_idle_timeout" SECS, "600", true;
    ServerLifetime "server_lifetime" SECS, "3600", true;
    ServerLoginRetry "server_login_retry" SECS, "15", true;
    ServerResetQuery "server_reset_query" Kind::Text, "DISCARD ALL", true;
    ServerResetQueryAlways "server_reset_query_always" Kind::Bool, "0", true;
    ServerRoundRobin "server_round_robin" Kind::Bool, "0", true;
    ServerTls13Ciphers "server_tls13_ciphers" Kind::Text, "", true;
    ServerTlsCaFile "server_tls_ca_file" Kind::Text, "", true;
    ServerTlsCertFile "server_tls_cert_file" Kind::Text, "", true;
    ServerTlsCiphers "server_tls_ciphers" Kind::Text, "default", true;
    ServerTlsKeyFile "server_tls_key_file" Kind::Text, "", true;
    ServerTlsProtocols "server_tls_protocols" Kind::Text, "secure", true;
    ServerTlsSslmode "server_tls_sslmode" Kind::Enum(SSL_MODES), "prefer", true;
    ServiceName "service_name" Kind::Text, "", false;
    SoReuseport "so_reuseport" Kind::Bool, "0", false;
    StatsPeriod "stats_period" Kind::Int { min: 1, max: MAX_INT }, "60", true;
    StatsUsers "stats_users" Kind::List, "", true;
    SuspendTimeout "suspend_timeout" SECS, "10", true;
    Syslog "syslog" Kind::Bool, "0", true;
    SyslogFacility "syslog_facility" Kind::Enum(SYSLOG_FACILITIES), "daemon", true;
    SyslogIdent "syslog_ident" Kind::Text, "pgbouncer", true;
    TcpDeferAccept "tcp_defer_accept" COUNT, "1", true;
    TcpKeepalive "tcp_keepalive" Kind::Bool, "1", true;
    TcpKeepcnt "tcp_keepcnt" COUNT, "0", true;
    TcpKeepidle "tcp_keepidle" COUNT, "0", true;
    TcpKeepintvl "tcp_keepintvl" COUNT, "0", true;
    TcpSocketBuffer "tcp_socket_buffer" COUNT, "0", true;
    TcpUserTimeout "tcp_user_timeout" COUNT, "0", true;
    TrackExtraParameters "track_extra_parameters" Kind::List, "IntervalStyle", false;
    TransactionTimeout "transaction_timeout" SECS, "0", true;
    UnixSocketDir "unix_socket_dir" Kind::Text, "/tmp", false;
    UnixSocketGroup "unix_socket_group" Kind::Text, "", false;
    UnixSocketMode "unix_socket_mode" Kind::Mode, "0777", false;
    User "user" Kind::Text, "", false;
    Verbose "verbose" Kind::Int { min: 0, max: 3 }, "0", true;
}

impl Key {
    /// This key's registry row.
    pub fn spec(self) -> &'static KeySpec {
        // The registry is generated from the same list as the enum, in the same order.
        KEYS.get(self as usize).unwrap_or(&FALLBACK)
    }

    /// The name as written in pgbouncer.ini.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Finds a key by name, case-insensitively as PgBouncer.
    pub fn lookup(name: &str) -> Option<Key> {
        KEYS.iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .map(|s| s.key)
    }
}

static FALLBACK: KeySpec = KeySpec {
    key: Key::AdminUsers,
    name: "admin_users",
    kind: Kind::List,
    default: "",
    reloadable: true,
};

/// A parsed, checked value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// [`Kind::Int`].
    Int(i64),
    /// [`Kind::Bool`].
    Bool(bool),
    /// [`Kind::Seconds`].
    Seconds(Duration),
    /// [`Kind::Text`], [`Kind::List`], [`Kind::Enum`] (lower-cased) and [`Kind::HostPort`].
    Text(String),
    /// [`Kind::Mode`].
    Mode(u32),
}

impl Value {
    /// Renders the value as PgBouncer's SHOW CONFIG would.
    pub fn render(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => u8::from(*b).to_string(),
            Value::Seconds(d) => render_seconds(*d),
            Value::Text(t) => t.clone(),
            Value::Mode(m) => format!("0{m:o}"),
        }
    }
}

/// Parses `text` as a value of `kind`; the error says what was expected.
pub fn parse_value(kind: Kind, text: &str) -> Result<Value, String> {
    let text = text.trim();
    match kind {
        Kind::Int { min, max } => parse_int(text, min, max).map(Value::Int),
        Kind::Bool => parse_bool(text).map(Value::Bool),
        Kind::Seconds => parse_seconds(text).map(Value::Seconds),
        Kind::Text => Ok(Value::Text(text.to_owned())),
        Kind::List => Ok(Value::Text(split_list(text).collect::<Vec<_>>().join(","))),
        Kind::Enum(names) => parse_enum(text, names).map(|n| Value::Text(n.to_owned())),
        Kind::Mode => parse_mode(text).map(Value::Mode),
        Kind::HostPort => parse_host_port(text).map(|()| Value::Text(text.to_owned())),
    }
}

/// Splits a comma-separated list, trimming blanks and dropping empty items.
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// An integer as C's `strtol(text, .., 0)` reads it, then checked against `min..=max`.
pub fn parse_int(text: &str, min: i64, max: i64) -> Result<i64, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (radix, digits) = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, hex)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, digits.get(1..).unwrap_or(""))
    } else {
        (10, digits)
    };
    let magnitude = i64::from_str_radix(digits, radix)
        .ok()
        .filter(|_| !digits.starts_with(['+', '-']))
        .ok_or_else(|| format!("expected an integer, found {text:?}"))?;
    let value = if negative { -magnitude } else { magnitude };
    if value < min || value > max {
        return Err(format!("{value} is out of range (expected {min} to {max})"));
    }
    Ok(value)
}

/// A boolean: `0/1/yes/no/on/off/true/false`, case-insensitive.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" => Ok(true),
        "0" | "no" | "off" | "false" => Ok(false),
        _ => Err(format!(
            "expected a boolean (0/1, yes/no, on/off, true/false), found {text:?}"
        )),
    }
}

/// Seconds as a non-negative decimal (`2.5`), as PgBouncer's `cf_set_time_usec`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let ok_chars = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let secs: f64 = text
        .parse()
        .ok()
        .filter(|_| ok_chars)
        .ok_or_else(|| format!("expected seconds (a number ≥ 0, e.g. 2.5), found {text:?}"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text} seconds is out of range"))
}

/// Renders a duration in seconds the way C's `%g` does for ordinary values.
pub fn render_seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

/// One of `names`, case-insensitively; returns the canonical spelling.
pub fn parse_enum(text: &str, names: &'static [&'static str]) -> Result<&'static str, String> {
    names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(text))
        .copied()
        .ok_or_else(|| format!("expected one of {}, found {text:?}", names.join(", ")))
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text
        .strip_prefix('0')
        .filter(|d| !d.is_empty())
        .unwrap_or(text);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("expected an octal file mode such as 0777, found {text:?}"))
}

fn parse_host_port(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let bad = || format!("expected host:port (e.g. 127.0.0.1:9127), found {text:?}");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    // `*` (every IPv4 address), an IP (IPv6 in brackets) or a host name.
    let valid_host = host == "*"
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    if !valid_host {
        return Err(bad());
    }
    parse_int(port, 1, 65535).map(|_| ()).map_err(|_| bad())
}

//! `[databases]`, `[users]` and `[peers]` entries: PgBouncer's `key=value` connection strings
//! (`src/loader.c`: values end at a space unless single-quoted, `''` escapes a quote, empty
//! values are refused) turned into typed values. `${NAME}` expands inside each value, after
//! quoting, so an expanded password may hold spaces or quotes.

use std::time::Duration;

use super::env::{self, Env};
use super::error::did_you_mean;
use super::keys::{self, LOAD_BALANCE};
use super::render::MASK;
use super::settings::PoolMode;

/// Splits a connection string into `(key, value)` pairs, unquoted.
pub fn split_connstr(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start_matches(' ');
    while !rest.is_empty() {
        let end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let key = rest.get(..end).unwrap_or("");
        let after = rest.get(end..).unwrap_or("").trim_start_matches(' ');
        let Some(after) = after.strip_prefix('=').filter(|_| !key.is_empty()) else {
            return Err(format!(
                "syntax error in connection string near {:?}: expected key=value",
                short(rest)
            ));
        };
        let after = after.trim_start_matches(' ');
        let (value, tail) = if let Some(quoted) = after.strip_prefix('\'') {
            unquote(quoted).ok_or_else(|| format!("value of {key} has no closing quote"))?
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (
                after.get(..end).unwrap_or("").to_owned(),
                after.get(end..).unwrap_or(""),
            )
        };
        if value.is_empty() {
            return Err(format!(
                "empty value for {key} (quote it, or leave the key out)"
            ));
        }
        pairs.push((key.to_owned(), value));
        rest = tail.trim_start_matches(' ');
    }
    Ok(pairs)
}

fn unquote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            out.push(c);
        } else if matches!(chars.peek(), Some((_, '\''))) {
            chars.next();
            out.push('\'');
        } else {
            return Some((out, s.get(i + 1..).unwrap_or("")));
        }
    }
    None
}

/// The start of `s` for an error message, with no password in it: the text runs on past the
/// point of the error, possibly into a `password=` and its value (and the message is logged).
fn short(s: &str) -> String {
    let snippet: String = s.chars().take(30).collect();
    match snippet.to_ascii_lowercase().find("password") {
        Some(at) => format!("{}password={}", snippet.get(..at).unwrap_or(""), MASK),
        None => snippet,
    }
}

/// A problem with the value of `key`, the value masked out when it is a password.
fn problem(key: &str, raw: &str, e: String) -> String {
    if key == "password" && !raw.is_empty() {
        // Messages quote values as Rust debug strings ({:?}) or as they are.
        let e = e.replace(&format!("{raw:?}"), MASK).replace(raw, MASK);
        format!("{key}: {e}")
    } else {
        format!("{key}: {e}")
    }
}

/// Quotes a connection-string value when it needs it.
pub fn quote_value(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '\'') {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', "''"))
}

/// Where and as whom the pooler connects for a database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// `dbname`: the server's database (default: the name the client asked for).
    pub dbname: Option<String>,
    /// `host`: host name, IP, `/dir` for a Unix socket, or a comma list; `None` = Unix socket.
    pub host: Option<String>,
    /// `port` (the first one when `port` is a comma list).
    pub port: u16,
    /// Every port of a comma list, one per host (PgBouncer 1.24+); empty for a single port.
    pub ports: Vec<u16>,
    /// `user`: forced server user (one pool per database).
    pub user: Option<String>,
    /// `password` of the forced user.
    pub password: Option<String>,
    /// `auth_user`, overriding the global one.
    pub auth_user: Option<String>,
    /// `auth_query`, overriding the global one.
    pub auth_query: Option<String>,
    /// `auth_dbname`, overriding the global one.
    pub auth_dbname: Option<String>,
    /// `connect_query`, run once after each server login.
    pub connect_query: Option<String>,
    /// `load_balance_hosts`: `round-robin` (default) or `disable`.
    pub load_balance_hosts: Option<String>,
}

/// Per-database overrides of pool settings; `None` = the global value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolOverrides {
    /// `pool_size`.
    pub pool_size: Option<u32>,
    /// `min_pool_size`.
    pub min_pool_size: Option<u32>,
    /// `reserve_pool_size` (alias `reserve_pool`).
    pub reserve_pool_size: Option<u32>,
    /// `pool_mode`.
    pub pool_mode: Option<PoolMode>,
    /// `max_db_connections`.
    pub max_db_connections: Option<u32>,
    /// `max_db_client_connections`.
    pub max_db_client_connections: Option<u32>,
    /// `query_wait_timeout`.
    pub query_wait_timeout: Option<Duration>,
    /// `server_lifetime`.
    pub server_lifetime: Option<Duration>,
}

/// Startup parameters requested from the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartupParams {
    /// `client_encoding`.
    pub client_encoding: Option<String>,
    /// `datestyle`.
    pub datestyle: Option<String>,
    /// `timezone`.
    pub timezone: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
}

/// One `[databases]` entry. The `*` entry is the fallback for names not listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Database {
    /// Server, credentials and queries.
    pub target: Target,
    /// Pool overrides.
    pub pool: PoolOverrides,
    /// Startup parameters.
    pub startup: StartupParams,
}

/// Keys accepted in a `[databases]` entry.
pub const DATABASE_KEYS: &[&str] = &[
    "dbname",
    "host",
    "port",
    "user",
    "password",
    "auth_user",
    "auth_query",
    "auth_dbname",
    "pool_size",
    "min_pool_size",
    "reserve_pool_size",
    "reserve_pool",
    "connect_query",
    "pool_mode",
    "query_wait_timeout",
    "load_balance_hosts",
    "max_db_connections",
    "max_db_client_connections",
    "server_lifetime",
    "client_encoding",
    "datestyle",
    "timezone",
    "application_name",
];

/// Keys accepted in a `[users]` entry.
pub const USER_KEYS: &[&str] = &[
    "pool_mode",
    "pool_size",
    "reserve_pool_size",
    "max_user_connections",
    "max_user_client_connections",
    "query_timeout",
    "query_wait_timeout",
    "idle_transaction_timeout",
    "transaction_timeout",
    "client_idle_timeout",
];

fn count(value: &str) -> Result<Option<u32>, String> {
    let n = keys::parse_int(value, 0, i64::from(i32::MAX))?;
    Ok(u32::try_from(n).ok())
}

fn secs(value: &str) -> Result<Option<Duration>, String> {
    keys::parse_seconds(value).map(Some)
}

/// Reads each pair's expanded value, collecting every problem; `apply` sets one key.
fn each_pair<T: Default>(
    text: &str,
    env: &dyn Env,
    known: &[&str],
    what: &str,
    mut apply: impl FnMut(&mut T, &str, String) -> Result<(), String>,
) -> Result<T, Vec<String>> {
    let pairs = split_connstr(text).map_err(|e| vec![e])?;
    let mut out = T::default();
    let mut problems = Vec::new();
    for (key, raw) in pairs {
        let key = key.to_ascii_lowercase();
        if !known.contains(&key.as_str()) {
            let hint = did_you_mean(&key, known.iter().copied());
            problems.push(format!("unrecognized {what} parameter: {key}{hint}"));
            continue;
        }
        let result = env::expand(&raw, env).and_then(|v| apply(&mut out, &key, v));
        if let Err(e) = result {
            problems.push(problem(&key, &raw, e));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Parses a `[databases]` value.
pub fn parse_database(text: &str, env: &dyn Env) -> Result<Database, Vec<String>> {
    let mut db: Database = each_pair(text, env, DATABASE_KEYS, "connection", set_database_key)?;
    if db.target.port == 0 {
        db.target.port = 5432;
    }
    let hosts = db
        .target
        .host
        .as_deref()
        .map_or(1, |h| h.split(',').count());
    let ports = db.target.ports.len();
    if ports > 1 && ports != hosts {
        return Err(vec![format!(
            "port: {ports} ports for {hosts} hosts (give one port, or one per host)"
        )]);
    }
    Ok(db)
}

fn set_database_key(db: &mut Database, key: &str, v: String) -> Result<(), String> {
    let (t, p, s) = (&mut db.target, &mut db.pool, &mut db.startup);
    match key {
        "dbname" => t.dbname = Some(v),
        "host" => t.host = Some(v),
        "port" => {
            let ports = v
                .split(',')
                .map(|p| {
                    keys::parse_int(p.trim(), 1, 65535).map(|n| u16::try_from(n).unwrap_or(5432))
                })
                .collect::<Result<Vec<_>, _>>()?;
            t.port = ports.first().copied().unwrap_or(5432);
            t.ports = if ports.len() > 1 { ports } else { Vec::new() };
        }
        "user" => t.user = Some(v),
        "password" => t.password = Some(v),
        "auth_user" => t.auth_user = Some(v),
        "auth_query" => t.auth_query = Some(v),
        "auth_dbname" => t.auth_dbname = Some(v),
        "connect_query" => t.connect_query = Some(v),
        "load_balance_hosts" => {
            t.load_balance_hosts = Some(keys::parse_enum(&v, LOAD_BALANCE)?.to_owned())
        }
        "pool_size" => p.pool_size = count(&v)?,
        "min_pool_size" => p.min_pool_size = count(&v)?,
        "reserve_pool_size" | "reserve_pool" => p.reserve_pool_size = count(&v)?,
        "pool_mode" => p.pool_mode = Some(PoolMode::parse(&v)?),
        "max_db_connections" => p.max_db_connections = count(&v)?,
        "max_db_client_connections" => p.max_db_client_connections = count(&v)?,
        "query_wait_timeout" => p.query_wait_timeout = secs(&v)?,
        "server_lifetime" => p.server_lifetime = secs(&v)?,
        "client_encoding" => s.client_encoding = Some(v),
        "datestyle" => s.datestyle = Some(v),
        "timezone" => s.timezone = Some(v),
        _ => s.application_name = Some(v),
    }
    Ok(())
}

/// One `[users]` entry: per-user overrides; `None` = the database's or global value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserSettings {
    /// `pool_mode`.
    pub pool_mode: Option<PoolMode>,
    /// `pool_size`.
    pub pool_size: Option<u32>,
    /// `reserve_pool_size`.
    pub reserve_pool_size: Option<u32>,
    /// `max_user_connections`.
    pub max_user_connections: Option<u32>,
    /// `max_user_client_connections`.
    pub max_user_client_connections: Option<u32>,
    /// `query_timeout`.
    pub query_timeout: Option<Duration>,
    /// `query_wait_timeout`.
    pub query_wait_timeout: Option<Duration>,
    /// `idle_transaction_timeout`.
    pub idle_transaction_timeout: Option<Duration>,
    /// `transaction_timeout`.
    pub transaction_timeout: Option<Duration>,
    /// `client_idle_timeout`.
    pub client_idle_timeout: Option<Duration>,
}

/// Parses a `[users]` value.
pub fn parse_user(text: &str, env: &dyn Env) -> Result<UserSettings, Vec<String>> {
    each_pair(
        text,
        env,
        USER_KEYS,
        "user",
        |u: &mut UserSettings, key, v| {
            match key {
                "pool_mode" => u.pool_mode = Some(PoolMode::parse(&v)?),
                "pool_size" => u.pool_size = count(&v)?,
                "reserve_pool_size" => u.reserve_pool_size = count(&v)?,
                "max_user_connections" => u.max_user_connections = count(&v)?,
                "max_user_client_connections" => u.max_user_client_connections = count(&v)?,
                "query_timeout" => u.query_timeout = secs(&v)?,
                "query_wait_timeout" => u.query_wait_timeout = secs(&v)?,
                "idle_transaction_timeout" => u.idle_transaction_timeout = secs(&v)?,
                "transaction_timeout" => u.transaction_timeout = secs(&v)?,
                _ => u.client_idle_timeout = secs(&v)?,
            }
            Ok(())
        },
    )
}

/// One `[peers]` entry: another pooler of the same peer group, for cancel forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `host` (required).
    pub host: String,
    /// `port` (default 6432).
    pub port: u16,
    /// `pool_size`: concurrent forwarded cancels (default: `default_pool_size`).
    pub pool_size: Option<u32>,
}

#[derive(Default)]
struct PeerDraft {
    host: Option<String>,
    port: Option<u16>,
    pool_size: Option<u32>,
}

/// Parses a `[peers]` value.
pub fn parse_peer(text: &str, env: &dyn Env) -> Result<Peer, Vec<String>> {
    let draft = each_pair(
        text,
        env,
        &["host", "port", "pool_size"],
        "peer",
        |p: &mut PeerDraft, key, v| {
            match key {
                "host" => p.host = Some(v),
                "port" => p.port = u16::try_from(keys::parse_int(&v, 1, 65535)?).ok(),
                _ => p.pool_size = count(&v)?,
            }
            Ok(())
        },
    )?;
    let host = draft
        .host
        .ok_or_else(|| vec!["peer needs host=".to_owned()])?;
    Ok(Peer {
        host,
        port: draft.port.unwrap_or(6432),
        pool_size: draft.pool_size,
    })
}

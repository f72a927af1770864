//! pgbouncer.ini, userlist.txt and HBA files: parsed into typed, validated values.
//! Pure: reads files, nothing else. No tokio, no logging, no printing.
//!
//! # Format
//!
//! PgBouncer's (see [`ini`]): `[pgbouncer]` keys from the registry in [`keys`] (names are
//! case-insensitive; a repeated key: the last one wins; an unknown key is an error, as in
//! PgBouncer), `[databases]`/`[users]`/`[peers]` connection strings (see [`database`]).
//!
//! # Our extensions
//!
//! - `${NAME}` in any value expands from the environment, `$$` is a literal `$` ([`env`]);
//!   an unset variable is an error that names it.
//! - `[pgbouncer]` keys `metrics_listen` (`host:port` of the Prometheus endpoint; unset = off),
//!   `metrics_path` (default `/metrics`) and `log_format` (`text` or `json`, default `text`).
//! - `auth_type = passthrough` (DESIGN.md §3).
//! - Booleans also accept `yes/no/on/off/true/false`.
//!
//! Every problem is reported as `file:line: message`, all of them, not just the first.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod database;
pub mod diff;
pub mod env;
pub mod error;
pub mod hba;
pub mod ident;
pub mod ini;
pub mod keys;
pub mod render;
pub mod settings;
pub mod userlist;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use database::{Database, Peer, PoolOverrides, StartupParams, Target, UserSettings};
pub use diff::ConfigDiff;
pub use env::{Env, NoEnv, ProcessEnv};
pub use error::{ConfigError, Location};
pub use keys::{KEYS, Key, KeySpec};
pub use settings::{AuthType, LogFormat, PoolMode, Settings, SslMode};

use error::did_you_mean;
use ini::{Item, Reader};

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A pgbouncer.ini (or text parsed under that name).
    File(PathBuf),
    /// The embedded default of DESIGN.md §3.
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded => f.write_str("embedded default"),
        }
    }
}

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[pgbouncer]`.
    pub pgbouncer: Settings,
    /// `[databases]` by name; `*` is the fallback for names not listed.
    pub databases: BTreeMap<String, Database>,
    /// `[users]` by name.
    pub users: BTreeMap<String, UserSettings>,
    /// `[peers]` by peer id.
    pub peers: BTreeMap<u16, Peer>,
    /// Where it came from.
    pub source: Source,
    origins: BTreeMap<(Section, String), Location>,
}

/// One row of the admin console's SHOW CONFIG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRow {
    /// The key.
    pub key: &'static str,
    /// Its current value as text.
    pub value: String,
    /// PgBouncer's default as text.
    pub default: &'static str,
    /// Whether RELOAD/SET may change it.
    pub changeable: bool,
}

/// The INI sections PgBouncer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `[pgbouncer]`.
    Pgbouncer,
    /// `[databases]`.
    Databases,
    /// `[users]`.
    Users,
    /// `[peers]`.
    Peers,
}

const SECTIONS: &[&str] = &["pgbouncer", "databases", "users", "peers"];

/// File name used in messages about the embedded default.
pub const EMBEDDED_NAME: &str = "<embedded default>";

impl Config {
    /// Reads, checks and returns the configuration in `path` (and its `%include`s).
    /// When `auth_type = hba`, the HBA file is read and checked too; `auth_file` is checked
    /// when it exists. Relative paths resolve against the current directory, as in PgBouncer.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, Vec<ConfigError>> {
        let text = ini::read_text(path).map_err(|e| vec![e])?;
        let config = Self::parse_str(&text, &path.display().to_string(), env)?;
        let problems = validate::check_files(&config);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Parses and checks `text` as if read from `file_name`; `%include`s are read from disk.
    pub fn parse_str(
        text: &str,
        file_name: &str,
        env: &dyn Env,
    ) -> Result<Config, Vec<ConfigError>> {
        Self::parse_with(text, file_name, env, &mut ini::read_text)
    }

    /// As [`Config::parse_str`], reading `%include`s through `reader`.
    pub fn parse_with(
        text: &str,
        file_name: &str,
        env: &dyn Env,
        reader: &mut Reader<'_>,
    ) -> Result<Config, Vec<ConfigError>> {
        let (entries, mut errors) = ini::parse(text, file_name, reader);
        let mut config = Config::empty(Source::File(PathBuf::from(file_name)));
        let mut section = None;
        for entry in entries {
            let at = entry.at;
            match entry.item {
                Item::Section(name) => {
                    section = Self::section(&name, &at, &mut errors);
                }
                Item::Pair { key, value } => match section {
                    Some(Some(section)) => {
                        if let Err(problems) = config.apply(section, &key, &value, &at, env) {
                            errors.extend(problems.into_iter().map(|p| at.error(p)));
                        }
                    }
                    Some(None) => {}
                    None => errors.push(at.error(format!(
                        "{key} is outside any section; put it under [pgbouncer]"
                    ))),
                },
            }
        }
        validate::check(&config, file_name, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// `Some(None)` for an unknown section (reported once, its keys skipped).
    fn section(
        name: &str,
        at: &Location,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Option<Section>> {
        let section = match name.to_ascii_lowercase().as_str() {
            "pgbouncer" => Section::Pgbouncer,
            "databases" => Section::Databases,
            "users" => Section::Users,
            "peers" => Section::Peers,
            _ => {
                let hint = did_you_mean(name, SECTIONS.iter().copied());
                errors.push(at.error(format!("unknown section [{name}]{hint}")));
                return Some(None);
            }
        };
        Some(Some(section))
    }

    fn empty(source: Source) -> Config {
        Config {
            pgbouncer: Settings::default(),
            databases: BTreeMap::new(),
            users: BTreeMap::new(),
            peers: BTreeMap::new(),
            source,
            origins: BTreeMap::new(),
        }
    }

    fn apply(
        &mut self,
        section: Section,
        key: &str,
        value: &str,
        at: &Location,
        env: &dyn Env,
    ) -> Result<(), Vec<String>> {
        match section {
            Section::Pgbouncer => {
                return self
                    .apply_setting(key, value, Some(at.clone()), env)
                    .map_err(|e| vec![e]);
            }
            Section::Databases => {
                if key == "pgbouncer" {
                    return Err(vec![
                        "database name \"pgbouncer\" is reserved for the admin console".to_owned(),
                    ]);
                }
                let db = database::parse_database(value, env).map_err(|p| prefix(key, p))?;
                self.databases.insert(key.to_owned(), db);
            }
            Section::Users => {
                let user = database::parse_user(value, env).map_err(|p| prefix(key, p))?;
                self.users.insert(key.to_owned(), user);
            }
            Section::Peers => {
                let id = keys::parse_int(key, 1, 16383)
                    .map_err(|e| vec![format!("peer id {key:?}: {e}")])
                    .and_then(|id| u16::try_from(id).map_err(|e| vec![e.to_string()]))?;
                let peer = database::parse_peer(value, env).map_err(|p| prefix(key, p))?;
                self.peers.insert(id, peer);
            }
        }
        self.origins.insert((section, key.to_owned()), at.clone());
        Ok(())
    }

    fn apply_setting(
        &mut self,
        key: &str,
        value: &str,
        at: Option<Location>,
        env: &dyn Env,
    ) -> Result<(), String> {
        let Some(k) = Key::lookup(key) else {
            let hint = did_you_mean(key, KEYS.iter().map(|s| s.name));
            return Err(format!("unknown parameter {key} in [pgbouncer]{hint}"));
        };
        let value = env::expand(value, env).map_err(|e| format!("{}: {e}", k.name()))?;
        self.pgbouncer
            .set(k, &value, at)
            .map_err(|e| format!("{}: {e}", k.name()))
    }

    /// The `[databases]` entry a client's database name maps to: its own, else the `*`
    /// fallback, else `None` (PgBouncer: "no such database").
    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.get(name).or_else(|| self.databases.get("*"))
    }

    /// The pool mode of the `(database, user)` pool: the user's, else the database's, else
    /// the global one (PgBouncer's precedence).
    pub fn pool_mode_for(&self, database: &str, user: &str) -> PoolMode {
        self.users
            .get(user)
            .and_then(|u| u.pool_mode)
            .or_else(|| self.database(database).and_then(|d| d.pool.pool_mode))
            .unwrap_or_else(|| self.pgbouncer.pool_mode())
    }

    /// The pool size of the `(database, user)` pool, with the same precedence.
    pub fn pool_size_for(&self, database: &str, user: &str) -> u32 {
        self.users
            .get(user)
            .and_then(|u| u.pool_size)
            .or_else(|| self.database(database).and_then(|d| d.pool.pool_size))
            .unwrap_or_else(|| u32::try_from(self.pgbouncer.int(Key::DefaultPoolSize)).unwrap_or(0))
    }

    /// How many cancels may go to `peer` at once: its `pool_size`, else `default_pool_size`.
    pub fn peer_pool_size(&self, peer: &Peer) -> u32 {
        peer.pool_size
            .unwrap_or_else(|| u32::try_from(self.pgbouncer.int(Key::DefaultPoolSize)).unwrap_or(0))
    }

    /// Where an entry of `section` named `name` was written, for messages.
    pub fn origin(&self, section: Section, name: &str) -> Option<&Location> {
        self.origins.get(&(section, name.to_owned()))
    }

    /// The admin console's `SET key = value`: checked like the file, refused for keys that
    /// need a restart, and refused when it would contradict other settings.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let k = Key::lookup(key).ok_or_else(|| {
            let hint = did_you_mean(key, KEYS.iter().map(|s| s.name));
            format!("unknown config parameter: {key}{hint}")
        })?;
        if !k.spec().reloadable {
            return Err(format!(
                "{} cannot be changed at run time; it needs a restart",
                k.name()
            ));
        }
        let mut next = self.clone();
        next.pgbouncer
            .set(k, value, None)
            .map_err(|e| format!("{}: {e}", k.name()))?;
        let mut problems = Vec::new();
        validate::check(&next, "SET", &mut problems);
        if let Some(first) = problems.first() {
            return Err(first.message.clone());
        }
        *self = next;
        Ok(())
    }

    /// Every `[pgbouncer]` key with its value, default and whether it may change live
    /// (SHOW CONFIG's rows, in PgBouncer's alphabetical order).
    pub fn show_config(&self) -> Vec<ConfigRow> {
        KEYS.iter()
            .map(|s| ConfigRow {
                key: s.name,
                value: self.pgbouncer.render(s.key),
                default: s.default,
                changeable: s.reloadable,
            })
            .collect()
    }

    /// The inert keys ([`keys::INERT`]) set to something other than PgBouncer's default, as
    /// `key = value`.
    pub fn inert_settings(&self) -> Vec<String> {
        self.inert().map(|(setting, _)| setting).collect()
    }

    /// As [`Config::inert_settings`], each as a `file:line: … has no effect` warning for
    /// `serve --check-config`.
    pub fn inert_warnings(&self) -> Vec<String> {
        self.inert()
            .map(|(setting, at)| match at {
                Some(at) => format!("{at}: {setting} has no effect in bouncectl"),
                None => format!("{setting} has no effect in bouncectl"),
            })
            .collect()
    }

    fn inert(&self) -> impl Iterator<Item = (String, Option<&Location>)> {
        keys::INERT
            .iter()
            .map(|key| (*key, self.pgbouncer.render(*key)))
            .filter(|(key, value)| value != key.spec().default)
            .map(|(key, value)| {
                let setting = format!("{} = {value}", key.name());
                (setting, self.pgbouncer.set_at(key))
            })
    }

    /// What changed from `old` to `new`, and which changes need a restart.
    pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
        diff::diff(old, new)
    }

    /// The effective settings as a pgbouncer.ini, passwords masked (see [`render`]).
    pub fn to_ini(&self) -> String {
        render::to_ini(self)
    }

    /// The embedded default (DESIGN.md §3): listen on 127.0.0.1:6432, one `*` database at
    /// `$PGHOST` (else 127.0.0.1) port `$PGPORT` (else 5432), transaction pooling,
    /// `auth_type = passthrough`, `admin_users` = `$PGUSER` (else `postgres`).
    pub fn embedded_default(env: &dyn Env) -> Result<Config, Vec<ConfigError>> {
        let host = env
            .var("PGHOST")
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = env
            .var("PGPORT")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "5432".into());
        let admin = env
            .var("PGUSER")
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres".into());
        let text = format!(
            "[databases]\n* = host={} port={}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 6432\n\
             pool_mode = transaction\ndefault_pool_size = 20\nmax_client_conn = 1000\n\
             auth_type = passthrough\nadmin_users = {}\n",
            env::escape(&database::quote_value(&host)),
            env::escape(&database::quote_value(&port)),
            env::escape(&admin),
        );
        let mut no_files =
            |p: &Path| Err(Location::new(p.display().to_string(), 0).error("no includes here"));
        let mut config = Self::parse_with(&text, EMBEDDED_NAME, &NoEnv, &mut no_files)?;
        config.source = Source::Embedded;
        Ok(config)
    }
}

fn prefix(name: &str, problems: Vec<String>) -> Vec<String> {
    problems
        .into_iter()
        .map(|p| format!("{name}: {p}"))
        .collect()
}

#[cfg(test)]
mod tests;

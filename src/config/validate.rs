//! Checks across keys and sections: settings that parse on their own but contradict each
//! other, and (for [`Config::load`]) the files the configuration points at.

use std::path::Path;

use super::error::{ConfigError, Location};
use super::keys::Key;
use super::settings::{AuthType, SslMode};
use super::{Config, Section, hba, ident, ini, userlist};

struct Checker<'a> {
    config: &'a Config,
    file: &'a str,
    errors: &'a mut Vec<ConfigError>,
}

impl Checker<'_> {
    /// Where `key` was set, else the file as a whole.
    fn at(&self, key: Key) -> Location {
        self.config
            .pgbouncer
            .set_at(key)
            .cloned()
            .unwrap_or_else(|| Location::new(self.file, 0))
    }

    fn db_at(&self, name: &str) -> Location {
        self.config
            .origin(Section::Databases, name)
            .cloned()
            .unwrap_or_else(|| Location::new(self.file, 0))
    }

    fn fail(&mut self, at: Location, message: String) {
        self.errors.push(at.error(message));
    }
}

/// Appends every contradiction in `config` to `errors`.
pub fn check(config: &Config, file: &str, errors: &mut Vec<ConfigError>) {
    let mut c = Checker {
        config,
        file,
        errors,
    };
    check_auth(&mut c);
    check_tls(&mut c);
    check_pools(&mut c);
    check_misc(&mut c);
}

fn check_auth(c: &mut Checker<'_>) {
    let s = &c.config.pgbouncer;
    let auth = s.auth_type();
    if auth == AuthType::Any {
        let forced: Vec<String> = c
            .config
            .databases
            .iter()
            .filter(|(_, db)| db.target.user.is_none())
            .map(|(name, _)| name.clone())
            .collect();
        for name in forced {
            let at = c.db_at(&name);
            c.fail(at, format!("database {name} has no user=, but auth_type = any ignores the client's user name; add user= to it"));
        }
    }
    let needs_secrets = matches!(
        auth,
        AuthType::Md5 | AuthType::ScramSha256 | AuthType::Plain | AuthType::Trust
    );
    if needs_secrets && s.text(Key::AuthFile).is_none() && s.text(Key::AuthUser).is_none() {
        let at = c.at(Key::AuthType);
        c.fail(at, format!("auth_type = {} needs auth_file (or auth_user with auth_query); no client could log in", auth.as_str()));
    }
    if auth == AuthType::Hba && s.text(Key::AuthHbaFile).is_none() {
        let at = c.at(Key::AuthType);
        c.fail(at, "auth_type = hba needs auth_hba_file".to_owned());
    }
    if auth == AuthType::Pam && s.text(Key::AuthUser).is_some() {
        let at = c.at(Key::AuthUser);
        c.fail(
            at,
            "auth_user cannot be used with auth_type = pam".to_owned(),
        );
    }
}

fn check_tls(c: &mut Checker<'_>) {
    let s = &c.config.pgbouncer;
    let mode = s.client_tls_sslmode();
    let key = s.text(Key::ClientTlsKeyFile).is_some();
    let cert = s.text(Key::ClientTlsCertFile).is_some();
    if mode != SslMode::Disable && !(key && cert) {
        let at = c.at(Key::ClientTlsSslmode);
        let name = s.render(Key::ClientTlsSslmode);
        c.fail(
            at,
            format!(
                "client_tls_sslmode = {name} needs client_tls_key_file and client_tls_cert_file"
            ),
        );
    }
    let (skey, scert) = (Key::ServerTlsKeyFile, Key::ServerTlsCertFile);
    if s.text(skey).is_some() != s.text(scert).is_some() {
        let at = if s.text(skey).is_some() {
            c.at(skey)
        } else {
            c.at(scert)
        };
        c.fail(
            at,
            "server_tls_key_file and server_tls_cert_file go together; set both or neither"
                .to_owned(),
        );
    }
}

fn check_pools(c: &mut Checker<'_>) {
    let s = &c.config.pgbouncer;
    let (min, size, max_db) = (
        s.int(Key::MinPoolSize),
        s.int(Key::DefaultPoolSize),
        s.int(Key::MaxDbConnections),
    );
    if max_db > 0 && max_db < min {
        let at = c.at(Key::MaxDbConnections);
        c.fail(
            at,
            format!("max_db_connections = {max_db} is below min_pool_size = {min}"),
        );
    }
    if size > 0 && min > size {
        let at = c.at(Key::MinPoolSize);
        c.fail(
            at,
            format!("min_pool_size = {min} is above default_pool_size = {size}"),
        );
    }
    let mut problems = Vec::new();
    for (name, db) in &c.config.databases {
        let p = &db.pool;
        let db_min = p.min_pool_size.map_or(min, i64::from);
        let db_size = p.pool_size.map_or(size, i64::from);
        let db_max = p.max_db_connections.map_or(max_db, i64::from);
        if db_max > 0 && db_max < db_min {
            problems.push((
                name.clone(),
                format!("max_db_connections = {db_max} is below min_pool_size = {db_min}"),
            ));
        }
        if db_size > 0 && db_min > db_size {
            problems.push((
                name.clone(),
                format!("min_pool_size = {db_min} is above pool_size = {db_size}"),
            ));
        }
    }
    for (name, message) in problems {
        let at = c.db_at(&name);
        c.fail(at, format!("database {name}: {message}"));
    }
}

fn check_misc(c: &mut Checker<'_>) {
    let s = &c.config.pgbouncer;
    if s.listen_addrs().is_empty() && s.text(Key::UnixSocketDir).is_none() {
        let at = c.at(Key::UnixSocketDir);
        c.fail(
            at,
            "nothing to listen on: listen_addr and unix_socket_dir are both empty".to_owned(),
        );
    }
    if s.text(Key::MetricsPath).is_none_or(|p| !p.starts_with('/')) {
        let at = c.at(Key::MetricsPath);
        c.fail(at, "metrics_path must start with '/'".to_owned());
    } else if s
        .text(Key::MetricsPath)
        .is_some_and(|p| p == "/healthz" || p == "/readyz")
    {
        let at = c.at(Key::MetricsPath);
        c.fail(
            at,
            "metrics_path must differ from /healthz and /readyz (the probes)".to_owned(),
        );
    }
}

/// Reads the files `config` names (HBA and ident files when `auth_type = hba`; `auth_file`
/// unless the auth type ignores it) and reports their problems with their own `file:line`.
pub fn check_files(config: &Config) -> Vec<ConfigError> {
    let s = &config.pgbouncer;
    let mut errors = Vec::new();
    if s.auth_type() == AuthType::Hba {
        for key in [Key::AuthHbaFile, Key::AuthIdentFile] {
            let Some(path) = s.text(key) else { continue };
            let problems = match key {
                Key::AuthHbaFile => hba::load(Path::new(path)).err(),
                _ => ident::load(Path::new(path)).err(),
            };
            // A file that cannot be read at all is reported at the key that names it.
            errors.extend(problems.into_iter().flatten().map(|e| match e.line {
                0 if e.file == path => located(config, key, e),
                _ => e,
            }));
        }
    }
    // PgBouncer reads auth_file for every auth_type but these (`requires_auth_file`).
    let uses_auth_file = !matches!(
        s.auth_type(),
        AuthType::Any | AuthType::Pam | AuthType::Passthrough
    );
    if let Some(path) = s.text(Key::AuthFile).filter(|_| uses_auth_file) {
        match ini::read_text(Path::new(path)) {
            Ok(text) => {
                if let Err(e) = userlist::parse(&text) {
                    errors.push(Location::new(path, e.line).error(e.reason));
                }
            }
            Err(e) => errors.push(located(config, Key::AuthFile, e)),
        }
    }
    errors
}

/// A whole-file error about the file `key` names, reported at `key`'s line.
fn located(config: &Config, key: Key, e: ConfigError) -> ConfigError {
    match config.pgbouncer.set_at(key) {
        Some(at) if e.line == 0 => at.error(format!("{} {}: {}", key.name(), e.file, e.message)),
        _ => e,
    }
}

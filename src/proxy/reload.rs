//! RELOAD and SIGHUP: re-read the configuration file and auth_file, keep the old configuration on
//! any problem, warn about changes that need a restart, and install the rest. One function for the
//! signal and the admin console (STYLE.md §3.2).

use std::path::Path;
use std::sync::Arc;

use super::{Runtime, Shared};
use crate::FastMap;
use crate::config::hba::{self, Hba};
use crate::config::ident::{self, IdentMaps};
use crate::config::userlist::{self, Secret};
use crate::config::{AuthType, Config, ConfigError, Key, ProcessEnv, Source};

/// Reads `auth_file` into a map (empty when the auth type needs none).
pub fn load_users(config: &Config) -> Result<FastMap<String, Secret>, String> {
    let Some(path) = config.pgbouncer.text(Key::AuthFile) else {
        return Ok(FastMap::default());
    };
    if matches!(
        config.pgbouncer.auth_type(),
        AuthType::Any | AuthType::Passthrough
    ) {
        return Ok(FastMap::default());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let entries = userlist::parse(&text).map_err(|e| format!("{path}:{e}"))?;
    Ok(entries.into_iter().map(|e| (e.user, e.secret)).collect())
}

/// Reads `auth_hba_file`, and `auth_ident_file` when set, if `auth_type = hba` (no rules
/// otherwise). A rule naming a map the ident file lacks is logged: it can let nobody in.
pub fn load_hba(config: &Config) -> Result<Hba, String> {
    let s = &config.pgbouncer;
    let path = match s.text(Key::AuthHbaFile) {
        Some(path) if s.auth_type() == AuthType::Hba => path,
        _ => return Ok(Hba::default()),
    };
    let rules = hba::load(Path::new(path)).map_err(joined)?;
    let maps = match s.text(Key::AuthIdentFile) {
        Some(ident) => ident::load(Path::new(ident)).map_err(joined)?,
        None => IdentMaps::default(),
    };
    let hba = Hba { rules, maps };
    for (line, map) in hba.undefined_maps() {
        tracing::warn!("{path}:{line}: map {map:?} is not defined in auth_ident_file");
    }
    Ok(hba)
}

/// A file's problems as one line, for the log and the console's error.
fn joined(problems: Vec<ConfigError>) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Re-reads the file the running configuration came from; on error nothing changes and the
/// problems are returned (and logged). Either way the reload hook runs first (the log output is
/// reopened before anything about this reload is logged).
pub fn reload(shared: &Shared) -> Result<(), String> {
    let current = shared.config();
    let Source::File(path) = &current.source else {
        shared.run_reload_hook(&current);
        tracing::info!("reload: running on the embedded default, nothing to re-read");
        return Ok(());
    };
    let loaded = Config::load(path, &ProcessEnv)
        .map_err(joined)
        .and_then(|config| load_users(&config).map(|users| (config, users)))
        .and_then(|(config, users)| load_hba(&config).map(|hba| (config, users, hba)));
    let (config, users, hba) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            shared.run_reload_hook(&current);
            tracing::error!("reload failed, keeping the old configuration: {e}");
            return Err(e);
        }
    };
    shared.run_reload_hook(&config);
    let diff = Config::diff(&current, &config);
    for change in diff.needs_restart() {
        tracing::warn!(
            "reload: {} changed ({} -> {}) but takes effect only after a restart",
            change.key.spec().name,
            change.old,
            change.new
        );
    }
    let before = current.inert_settings();
    for line in config.inert_settings() {
        if !before.contains(&line) {
            tracing::warn!("{line} has no effect in bouncectl");
        }
    }
    let tls = match shared.tls().reload(&config) {
        Ok(tls) => Arc::new(tls),
        Err(e) => {
            tracing::error!("reload: TLS settings not applied, keeping the old ones: {e}");
            shared.tls()
        }
    };
    shared.replace(Runtime {
        config: Arc::new(config),
        users: Arc::new(users),
        tls,
        hba: Arc::new(hba),
    });
    tracing::info!("configuration reloaded from {}", path.display());
    Ok(())
}

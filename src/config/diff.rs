//! Reload semantics: what changed between two configurations, which `[pgbouncer]` changes a
//! reload applies live and which need a restart (PgBouncer's `CF_NO_RELOAD` keys), and which
//! databases changed where existing server connections must be closed.

use std::collections::BTreeMap;

use super::Config;
use super::keys::{KEYS, Key};

/// One `[pgbouncer]` key whose value changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// The key.
    pub key: Key,
    /// Old value, as text.
    pub old: String,
    /// New value, as text.
    pub new: String,
    /// False when the new value takes effect only after a restart.
    pub reloadable: bool,
}

/// Names added, removed and changed in one section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameChanges {
    /// Present only in the new configuration.
    pub added: Vec<String>,
    /// Present only in the old configuration.
    pub removed: Vec<String>,
    /// Present in both with different settings.
    pub changed: Vec<String>,
}

impl NameChanges {
    fn of<T: PartialEq>(old: &BTreeMap<String, T>, new: &BTreeMap<String, T>) -> Self {
        let mut out = NameChanges::default();
        for (name, value) in new {
            match old.get(name) {
                None => out.added.push(name.clone()),
                Some(previous) if previous != value => out.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        out.removed = old
            .keys()
            .filter(|n| !new.contains_key(*n))
            .cloned()
            .collect();
        out
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Everything that differs between two configurations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigDiff {
    /// Changed `[pgbouncer]` keys, in registry order.
    pub settings: Vec<SettingChange>,
    /// `[databases]` changes.
    pub databases: NameChanges,
    /// Changed databases whose server, port, user, dbname, connect_query or auth settings
    /// moved: their existing server connections must be closed once released (PgBouncer
    /// tags them dirty).
    pub reconnect: Vec<String>,
    /// `[users]` changes.
    pub users: NameChanges,
    /// `[peers]` changes (peer ids as text).
    pub peers: NameChanges,
}

impl ConfigDiff {
    /// True when the two configurations are equivalent.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
            && self.databases.is_empty()
            && self.users.is_empty()
            && self.peers.is_empty()
    }

    /// The changes a reload cannot apply (they need a restart).
    pub fn needs_restart(&self) -> Vec<&SettingChange> {
        self.settings.iter().filter(|c| !c.reloadable).collect()
    }

    /// The changes a reload applies live.
    pub fn live(&self) -> Vec<&SettingChange> {
        self.settings.iter().filter(|c| c.reloadable).collect()
    }
}

/// Compares `old` with `new`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let settings = KEYS
        .iter()
        .filter(|s| old.pgbouncer.get(s.key) != new.pgbouncer.get(s.key))
        .map(|s| SettingChange {
            key: s.key,
            old: old.pgbouncer.render(s.key),
            new: new.pgbouncer.render(s.key),
            reloadable: s.reloadable,
        })
        .collect();
    let databases = NameChanges::of(&old.databases, &new.databases);
    let reconnect = databases
        .changed
        .iter()
        .filter(|name| {
            let target = |c: &Config| c.databases.get(*name).map(|d| d.target.clone());
            target(old) != target(new)
        })
        .cloned()
        .collect();
    let peers = |c: &Config| -> BTreeMap<String, _> {
        c.peers
            .iter()
            .map(|(id, p)| (id.to_string(), p.clone()))
            .collect()
    };
    ConfigDiff {
        settings,
        databases,
        reconnect,
        users: NameChanges::of(&old.users, &new.users),
        peers: NameChanges::of(&peers(old), &peers(new)),
    }
}

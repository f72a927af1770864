//! Session parameters a client expects to keep across servers (PgBouncer's varcache): taken from
//! the startup packet, updated from the server's ParameterStatus, and re-applied with one `SET`
//! query when a client gets a server whose values differ.

use std::collections::BTreeMap;

use crate::error::ClientError;

/// The parameters PgBouncer tracks by default, in the spelling servers report them.
pub const TRACKED: &[&str] = &[
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "standard_conforming_strings",
    "application_name",
];

/// Startup parameters that are not session settings at all.
const PROTOCOL_KEYS: &[&str] = &["user", "database", "replication", "options"];

/// Drivers send it (JDBC, lib/pq, pgbouncer_exporter); it only changes float output, so it is
/// accepted and dropped rather than refused.
const ALWAYS_IGNORED: &[&str] = &["extra_float_digits"];

/// One client's tracked values, canonical names → values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientParams {
    tracked: Vec<String>,
    values: BTreeMap<String, String>,
    fingerprint: u64,
}

impl ClientParams {
    /// Reads the startup parameters: tracked ones are kept, ignored ones dropped, `options`
    /// may carry `-c name=value`; anything else is PgBouncer's "unsupported startup parameter".
    pub fn from_startup(
        params: &[(String, String)],
        extra_tracked: &[&str],
        ignored: &[&str],
    ) -> Result<Self, ClientError> {
        let mut tracked: Vec<String> = TRACKED.iter().map(|s| (*s).to_owned()).collect();
        for extra in extra_tracked {
            if !tracked.iter().any(|t| t.eq_ignore_ascii_case(extra)) {
                tracked.push((*extra).to_owned());
            }
        }
        let mut out = ClientParams {
            tracked,
            values: BTreeMap::new(),
            fingerprint: 0,
        };
        for (name, value) in params {
            if name == "options" {
                out.apply_options(value, ignored)?;
            } else if !PROTOCOL_KEYS.contains(&name.as_str()) {
                out.accept(
                    name,
                    value,
                    ignored,
                    ClientError::UnsupportedStartupParameter,
                )?;
            }
        }
        out.refresh();
        Ok(out)
    }

    fn accept(
        &mut self,
        name: &str,
        value: &str,
        ignored: &[&str],
        refuse: fn(String) -> ClientError,
    ) -> Result<(), ClientError> {
        if let Some(canonical) = self.canonical(name) {
            self.values.insert(canonical, value.to_owned());
            return Ok(());
        }
        let is_ignored = |list: &[&str]| list.iter().any(|i| i.eq_ignore_ascii_case(name));
        if is_ignored(ignored) || is_ignored(ALWAYS_IGNORED) {
            return Ok(());
        }
        Err(refuse(name.to_owned()))
    }

    /// `options` as PgBouncer ≥ 1.20 reads it: only `-c name=value` and `--name=value`.
    fn apply_options(&mut self, options: &str, ignored: &[&str]) -> Result<(), ClientError> {
        let mut words = options.split_whitespace();
        while let Some(word) = words.next() {
            let setting = if word == "-c" {
                words.next().unwrap_or_default()
            } else if let Some(rest) = word.strip_prefix("-c").or_else(|| word.strip_prefix("--")) {
                rest
            } else {
                return Err(ClientError::UnsupportedOption(word.to_owned()));
            };
            let Some((name, value)) = setting.split_once('=') else {
                return Err(ClientError::UnsupportedOption(setting.to_owned()));
            };
            self.accept(
                &name.replace('-', "_"),
                value,
                ignored,
                ClientError::UnsupportedOption,
            )?;
        }
        Ok(())
    }

    fn canonical(&self, name: &str) -> Option<String> {
        self.tracked
            .iter()
            .find(|t| t.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Fills every tracked value the client did not choose from the pool's first server, so a
    /// client never inherits what an earlier client set.
    pub fn fill_from(&mut self, welcome: &BTreeMap<String, String>) {
        for name in &self.tracked {
            // Looked up before inserting: `entry` would copy the name for every tracked key.
            if let (Some(value), false) = (welcome.get(name), self.values.contains_key(name)) {
                self.values.insert(name.clone(), value.clone());
            }
        }
        self.refresh();
    }

    /// A hash of the tracked values (never 0): a server last synced to the same fingerprint
    /// needs no `SET`, so the common case costs no string comparisons.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn refresh(&mut self) {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.values.hash(&mut h);
        self.fingerprint = h.finish().max(1);
    }

    /// The ParameterStatus set a new client sees: the server's, with the client's own values
    /// (borrowed: a login copies no map).
    pub fn welcome<'a>(
        &'a self,
        server: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        let servers = server
            .iter()
            .map(|(k, v)| (k.as_str(), self.values.get(k).unwrap_or(v).as_str()));
        let own = self
            .values
            .iter()
            .filter(|(k, _)| !server.contains_key(*k))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        servers.chain(own)
    }

    /// The client's value of tracked parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The server reported a new value while this client used it (e.g. the client ran `SET`).
    pub fn note(&mut self, name: &str, value: &str) {
        if let Some(canonical) = self.canonical(name) {
            self.values.insert(canonical, value.to_owned());
            self.refresh();
        }
    }

    /// One simple query that sets every tracked value where `server` differs, or `None`.
    pub fn sync_sql(&self, server: &BTreeMap<String, String>) -> Option<String> {
        let mut sql = String::new();
        for (name, value) in &self.values {
            if server.get(name) != Some(value) {
                sql.push_str(&format!("SET {name} = {};", quote_literal(value)));
            }
        }
        (!sql.is_empty()).then_some(sql)
    }
}

/// A SQL string literal: single quotes doubled, and `E''` with doubled backslashes when needed so
/// the value survives `standard_conforming_strings = off`.
pub fn quote_literal(value: &str) -> String {
    let body = value.replace('\'', "''");
    if body.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn tracks_startup_values_case_insensitively() {
        let p = ClientParams::from_startup(
            &params(&[
                ("user", "u"),
                ("database", "d"),
                ("datestyle", "ISO, DMY"),
                ("extra_float_digits", "3"),
            ]),
            &[],
            &[],
        )
        .unwrap();
        let server = BTreeMap::from([("DateStyle".to_owned(), "ISO, MDY".to_owned())]);
        assert_eq!(p.sync_sql(&server).unwrap(), "SET DateStyle = 'ISO, DMY';");
    }

    #[test]
    fn unknown_parameters_are_refused_unless_ignored() {
        let bad = params(&[("search_path", "x")]);
        assert_eq!(
            ClientParams::from_startup(&bad, &[], &[]).unwrap_err(),
            ClientError::UnsupportedStartupParameter("search_path".into())
        );
        assert!(ClientParams::from_startup(&bad, &[], &["search_path"]).is_ok());
        assert!(ClientParams::from_startup(&bad, &["search_path"], &[]).is_ok());
    }

    #[test]
    fn options_accept_only_c_settings() {
        let ok = params(&[("options", "-c timezone=UTC --application-name=x")]);
        let p = ClientParams::from_startup(&ok, &[], &[]).unwrap();
        let sql = p.sync_sql(&BTreeMap::new()).unwrap();
        assert!(
            sql.contains("SET TimeZone = 'UTC';") && sql.contains("SET application_name = 'x';"),
            "{sql}"
        );
        let bad = params(&[("options", "-E")]);
        assert_eq!(
            ClientParams::from_startup(&bad, &[], &[]).unwrap_err(),
            ClientError::UnsupportedOption("-E".into())
        );
    }

    #[test]
    fn unset_values_come_from_the_first_server() {
        let mut p = ClientParams::from_startup(&[], &[], &[]).unwrap();
        let first = BTreeMap::from([("application_name".to_owned(), String::new())]);
        p.fill_from(&first);
        let dirty = BTreeMap::from([("application_name".to_owned(), "previous client".to_owned())]);
        assert_eq!(p.sync_sql(&dirty).unwrap(), "SET application_name = '';");
        assert_eq!(p.sync_sql(&first), None);
    }

    #[test]
    fn literals_are_quoted_safely() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}

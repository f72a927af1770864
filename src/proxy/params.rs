//! Session parameters a client expects to keep across servers (PgBouncer's varcache): taken from
//! the startup packet, updated from the server's ParameterStatus, and re-applied with one `SET`
//! query when a client gets a server whose values differ.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;

use crate::config::keys::split_list;
use crate::error::ClientError;
use crate::pool::Welcome;
use crate::protocol::EncodeError;
use crate::protocol::backend::parameter_status;

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

/// One client's tracked values. A login allocates only for what the client chose itself: the
/// rest is read from the pool's welcome map, shared by every client of the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientParams {
    /// `track_extra_parameters` beyond [`TRACKED`] (slots after the six).
    extra: Vec<String>,
    /// The client's own values by slot: from startup, or reported after its `SET`.
    own: Vec<(usize, String)>,
    /// The pool's first server's values, for every slot the client did not choose.
    base: Option<Arc<Welcome>>,
    fingerprint: u64,
}

impl ClientParams {
    /// Reads the startup parameters: tracked ones are kept, ignored ones dropped, `options`
    /// may carry `-c name=value`; anything else is PgBouncer's "unsupported startup parameter".
    /// `extra_tracked` and `ignored` are the config's comma lists as written: split here, where
    /// they are read, instead of into vectors on every login.
    pub fn from_startup<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
        extra_tracked: &str,
        ignored: &str,
    ) -> Result<Self, ClientError> {
        let mut out = ClientParams::default();
        for extra in split_list(extra_tracked) {
            if out.slot(extra).is_none() {
                out.extra.push(extra.to_owned());
            }
        }
        for (name, value) in params {
            if name == "options" {
                out.apply_options(value, ignored)?;
            } else if !PROTOCOL_KEYS.contains(&name) {
                out.accept(
                    name,
                    value,
                    ignored,
                    ClientError::UnsupportedStartupParameter,
                )?;
            }
        }
        // No fingerprint yet: it covers the server's values too, which `fill_from` brings.
        Ok(out)
    }

    fn accept(
        &mut self,
        name: &str,
        value: &str,
        ignored: &str,
        refuse: fn(String) -> ClientError,
    ) -> Result<(), ClientError> {
        if let Some(slot) = self.slot(name) {
            self.set_own(slot, value);
            return Ok(());
        }
        let is_ignored = |i: &str| i.eq_ignore_ascii_case(name);
        if split_list(ignored).any(is_ignored) || ALWAYS_IGNORED.iter().copied().any(is_ignored) {
            return Ok(());
        }
        Err(refuse(name.to_owned()))
    }

    /// `options` as PgBouncer ≥ 1.20 reads it: only `-c name=value` and `--name=value`.
    fn apply_options(&mut self, options: &str, ignored: &str) -> Result<(), ClientError> {
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

    /// The canonical name of slot `slot`.
    fn name(&self, slot: usize) -> &str {
        match TRACKED.get(slot) {
            Some(name) => name,
            None => self
                .extra
                .get(slot - TRACKED.len())
                .map_or("", String::as_str),
        }
    }

    fn slots(&self) -> std::ops::Range<usize> {
        0..TRACKED.len() + self.extra.len()
    }

    /// The slot of tracked parameter `name`, in any letter case.
    fn slot(&self, name: &str) -> Option<usize> {
        self.slots()
            .find(|&slot| self.name(slot).eq_ignore_ascii_case(name))
    }

    fn own(&self, slot: usize) -> Option<&str> {
        self.own
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, v)| v.as_str())
    }

    /// `application_name_add_host`: the client's application name (`app` when it gave none)
    /// followed by ` - ` and where it connected from, as PgBouncer sets it at login.
    pub fn add_host(&mut self, details: &str) {
        if let Some(slot) = self.slot("application_name") {
            let named = format!("{} - {details}", self.own(slot).unwrap_or("app"));
            self.set_own(slot, &named);
        }
    }

    fn set_own(&mut self, slot: usize, value: &str) {
        match self.own.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, v)) => value.clone_into(v),
            None => self.own.push((slot, value.to_owned())),
        }
    }

    /// The value of slot `slot`: the client's own, else the pool's first server's.
    fn value(&self, slot: usize) -> Option<&str> {
        self.own(slot).or_else(|| {
            self.base
                .as_ref()
                .and_then(|b| b.params.get(self.name(slot)))
                .map(String::as_str)
        })
    }

    /// Every tracked name with its value, in slot order.
    fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.slots()
            .filter_map(|slot| Some((self.name(slot), self.value(slot)?)))
    }

    /// Takes every tracked value the client did not choose from the pool's first server (its
    /// welcome map, shared, not copied), so a client never inherits what an earlier client set.
    pub fn fill_from(&mut self, welcome: &Arc<Welcome>) {
        self.base = Some(Arc::clone(welcome));
        self.refresh();
    }

    /// A hash of the tracked values, never 0 once [`ClientParams::fill_from`] ran (a new
    /// server's 0 then always differs): a server last synced to the same fingerprint needs no
    /// `SET`, so the common case costs no string comparisons.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Hashes the server values' digest and the client's own values: equal fingerprints mean
    /// equal values for every slot. (Own values equal to the server's hash differently from
    /// none; that costs one needless `SET`, never a missing one.)
    fn refresh(&mut self) {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = crate::pool::fingerprint_hasher();
        self.base.as_ref().map_or(0, |b| b.digest).hash(&mut h);
        for slot in self.slots() {
            if let Some(value) = self.own(slot) {
                self.name(slot).hash(&mut h);
                value.hash(&mut h);
            }
        }
        self.fingerprint = h.finish().max(1);
    }

    /// Writes the ParameterStatus set a new client sees: the server's (copied as the pool
    /// encoded them once), with the client's own values in their place, then the client's own
    /// values the server did not report.
    pub fn write_welcome(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let base = self.base.as_deref();
        let (encoded, ends) = base.map_or((&[][..], &[][..]), |b| (&b.encoded[..], &b.ends[..]));
        // Each own value at the index of the server's message it replaces (`usize::MAX` when the
        // server reported none: those go last, in the client's order, as the sort is stable).
        // A client has a few own values at most, the server a dozen: looking each up is cheaper
        // than checking every server message against them.
        let mut own: Vec<(usize, &str, &str)> = self
            .own
            .iter()
            .map(|(slot, value)| {
                let name = self.name(*slot);
                let at = base
                    .and_then(|b| b.params.keys().position(|k| k == name))
                    .unwrap_or(usize::MAX);
                (at, name, value.as_str())
            })
            .collect();
        own.sort_by_key(|&(at, ..)| at);
        // The server's messages between them go out in one copy per run. (One the pool could
        // not encode takes no bytes, so it is left out.)
        let mut copied_to = 0;
        for (at, name, value) in own {
            let (start, end) = match at {
                usize::MAX => (encoded.len(), encoded.len()),
                i => (
                    i.checked_sub(1)
                        .and_then(|before| ends.get(before))
                        .map_or(0, |&e| e),
                    ends.get(i).map_or(0, |&e| e),
                ),
            };
            out.extend_from_slice(encoded.get(copied_to..start).unwrap_or_default());
            parameter_status(out, name, value)?;
            copied_to = copied_to.max(end);
        }
        out.extend_from_slice(encoded.get(copied_to..).unwrap_or_default());
        Ok(())
    }

    /// The client's value of tracked parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let slot = self.slots().find(|&slot| self.name(slot) == name)?;
        self.value(slot)
    }

    /// The server reported a new value while this client used it (e.g. the client ran `SET`).
    pub fn note(&mut self, name: &str, value: &str) {
        if let Some(slot) = self.slot(name) {
            self.set_own(slot, value);
            self.refresh();
        }
    }

    /// One simple query that sets every tracked value where `server` differs, or `None`.
    pub fn sync_sql(&self, server: &BTreeMap<String, String>) -> Option<String> {
        let mut sql = String::new();
        for (name, value) in self.values() {
            if server.get(name).map(String::as_str) != Some(value) {
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

    fn params<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        pairs.to_vec()
    }

    #[test]
    fn tracks_startup_values_case_insensitively() {
        let p = ClientParams::from_startup(
            params(&[
                ("user", "u"),
                ("database", "d"),
                ("datestyle", "ISO, DMY"),
                ("extra_float_digits", "3"),
            ]),
            "",
            "",
        )
        .unwrap();
        let server = BTreeMap::from([("DateStyle".to_owned(), "ISO, MDY".to_owned())]);
        assert_eq!(p.sync_sql(&server).unwrap(), "SET DateStyle = 'ISO, DMY';");
    }

    #[test]
    fn unknown_parameters_are_refused_unless_ignored() {
        let bad = params(&[("search_path", "x")]);
        assert_eq!(
            ClientParams::from_startup(bad.clone(), "", "").unwrap_err(),
            ClientError::UnsupportedStartupParameter("search_path".into())
        );
        assert!(ClientParams::from_startup(bad.clone(), "", "search_path").is_ok());
        assert!(ClientParams::from_startup(bad.clone(), "search_path", "").is_ok());
    }

    #[test]
    fn options_accept_only_c_settings() {
        let ok = params(&[("options", "-c timezone=UTC --application-name=x")]);
        let p = ClientParams::from_startup(ok, "", "").unwrap();
        let sql = p.sync_sql(&BTreeMap::new()).unwrap();
        assert!(
            sql.contains("SET TimeZone = 'UTC';") && sql.contains("SET application_name = 'x';"),
            "{sql}"
        );
        let bad = params(&[("options", "-E")]);
        assert_eq!(
            ClientParams::from_startup(bad.clone(), "", "").unwrap_err(),
            ClientError::UnsupportedOption("-E".into())
        );
    }

    #[test]
    fn unset_values_come_from_the_first_server() {
        let mut p = ClientParams::from_startup([], "", "").unwrap();
        let first = BTreeMap::from([("application_name".to_owned(), String::new())]);
        p.fill_from(&Arc::new(Welcome::new(first.clone())));
        let dirty = BTreeMap::from([("application_name".to_owned(), "previous client".to_owned())]);
        assert_eq!(p.sync_sql(&dirty).unwrap(), "SET application_name = '';");
        assert_eq!(p.sync_sql(&first), None);
    }

    #[test]
    fn fingerprints_agree_exactly_when_values_do() {
        let utc = Arc::new(Welcome::new(BTreeMap::from([(
            "TimeZone".to_owned(),
            "UTC".to_owned(),
        )])));
        let login = |pairs: &[(&str, &str)], welcome: &Arc<Welcome>| {
            let mut p = ClientParams::from_startup(params(pairs), "", "").unwrap();
            p.fill_from(welcome);
            p
        };
        let a = login(&[("application_name", "a")], &utc);
        assert_eq!(
            a.fingerprint(),
            login(&[("application_name", "a")], &utc).fingerprint()
        );
        assert_ne!(
            a.fingerprint(),
            login(&[("application_name", "b")], &utc).fingerprint()
        );
        let mut later = login(&[], &utc);
        assert_ne!(later.fingerprint(), a.fingerprint());
        later.note("application_name", "a");
        assert_eq!(later.fingerprint(), a.fingerprint());
        let tokyo = Arc::new(Welcome::new(BTreeMap::from([(
            "TimeZone".to_owned(),
            "Asia/Tokyo".to_owned(),
        )])));
        assert_ne!(
            login(&[("application_name", "a")], &tokyo).fingerprint(),
            a.fingerprint()
        );
    }

    /// What `write_welcome` sends a client that logged in with `startup` to a pool whose first
    /// server reported `server`, and the ParameterStatus messages of `expected`.
    fn welcome(
        server: &[(&str, &str)],
        startup: &[(&str, &str)],
        expected: &[(&str, &str)],
    ) -> (BytesMut, BytesMut) {
        let server = server
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut p = ClientParams::from_startup(params(startup), "", "").unwrap();
        p.fill_from(&Arc::new(Welcome::new(server)));
        let mut got = BytesMut::new();
        p.write_welcome(&mut got).unwrap();
        let mut want = BytesMut::new();
        for (name, value) in expected {
            parameter_status(&mut want, name, value).unwrap();
        }
        (got, want)
    }

    #[test]
    fn the_welcome_is_the_servers_set_with_the_clients_own_values() {
        let (got, want) = welcome(
            &[
                ("TimeZone", "UTC"),
                ("application_name", ""),
                ("server_version", "15.8"),
            ],
            &[("application_name", "app"), ("client_encoding", "LATIN1")],
            &[
                ("TimeZone", "UTC"),
                ("application_name", "app"),
                ("server_version", "15.8"),
                ("client_encoding", "LATIN1"),
            ],
        );
        assert_eq!(got, want);
    }

    #[test]
    fn own_values_replace_the_first_and_last_server_messages_in_place() {
        let (got, want) = welcome(
            &[
                ("DateStyle", "ISO, MDY"),
                ("server_version", "15.8"),
                ("standard_conforming_strings", "on"),
            ],
            // Startup order differs from the server's (name) order on purpose.
            &[
                ("standard_conforming_strings", "off"),
                ("IntervalStyle", "iso_8601"),
                ("DateStyle", "German"),
                ("application_name", "app"),
            ],
            &[
                ("DateStyle", "German"),
                ("server_version", "15.8"),
                ("standard_conforming_strings", "off"),
                ("IntervalStyle", "iso_8601"),
                ("application_name", "app"),
            ],
        );
        assert_eq!(got, want);
    }

    #[test]
    fn literals_are_quoted_safely() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}

//! The effective configuration written back as a pgbouncer.ini (for `serve --print-config`):
//! every `[pgbouncer]` key with its value or default, and every entry of the other sections.
//! Passwords in connection strings are masked; everything else is shown as is. The output
//! parses back (with `$` escaped so `${...}` is not expanded twice).

use std::fmt::Write as _;

use super::Config;
use super::database::{Database, Peer, UserSettings, quote_value};
use super::env::escape;
use super::keys::{KEYS, render_seconds};

/// What a masked password is replaced with.
pub const MASK: &str = "********";

/// Renders `config` as pgbouncer.ini text, passwords masked.
pub fn to_ini(config: &Config) -> String {
    let mut out = format!(
        "; effective configuration of bouncectl, from {}\n",
        config.source
    );
    out.push_str(
        "; every [pgbouncer] key is listed; unset keys show their default\n\n[databases]\n",
    );
    for (name, db) in &config.databases {
        line(&mut out, &ini_key(name), &database(db));
    }
    out.push_str("\n[users]\n");
    for (name, user) in &config.users {
        line(&mut out, &ini_key(name), &user_settings(user));
    }
    out.push_str("\n[peers]\n");
    for (id, peer) in &config.peers {
        line(&mut out, &id.to_string(), &peer_line(peer));
    }
    out.push_str("\n[pgbouncer]\n");
    for spec in KEYS {
        line(
            &mut out,
            spec.name,
            &escape(&config.pgbouncer.render(spec.key)),
        );
    }
    out
}

fn line(out: &mut String, key: &str, value: &str) {
    let _ = if value.is_empty() {
        writeln!(out, "{key} =")
    } else {
        writeln!(out, "{key} = {value}")
    };
}

/// A section key, double-quoted when it has characters a bare key may not.
fn ini_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-*".contains(c));
    if bare {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

struct Pairs(Vec<String>);

impl Pairs {
    fn text(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.0.push(format!("{key}={}", escape(&quote_value(v))));
        }
    }

    fn show(&mut self, key: &str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.0.push(format!("{key}={}", v.to_string()));
        }
    }

    fn secs(&mut self, key: &str, value: Option<std::time::Duration>) {
        self.show(key, value.map(render_seconds));
    }
}

fn database(db: &Database) -> String {
    let (t, p, s) = (&db.target, &db.pool, &db.startup);
    let mut pairs = Pairs(Vec::new());
    pairs.text("dbname", t.dbname.as_deref());
    pairs.text("host", t.host.as_deref());
    if t.ports.is_empty() {
        pairs.show("port", Some(t.port));
    } else {
        let list: Vec<String> = t.ports.iter().map(u16::to_string).collect();
        pairs.text("port", Some(&list.join(",")));
    }
    pairs.text("user", t.user.as_deref());
    pairs.show("password", t.password.as_ref().map(|_| MASK));
    pairs.text("auth_user", t.auth_user.as_deref());
    pairs.text("auth_query", t.auth_query.as_deref());
    pairs.text("auth_dbname", t.auth_dbname.as_deref());
    pairs.text("connect_query", t.connect_query.as_deref());
    pairs.text("load_balance_hosts", t.load_balance_hosts.as_deref());
    pairs.show("pool_size", p.pool_size);
    pairs.show("min_pool_size", p.min_pool_size);
    pairs.show("reserve_pool_size", p.reserve_pool_size);
    pairs.show("pool_mode", p.pool_mode.map(|m| m.as_str()));
    pairs.show("max_db_connections", p.max_db_connections);
    pairs.show("max_db_client_connections", p.max_db_client_connections);
    pairs.secs("query_wait_timeout", p.query_wait_timeout);
    pairs.secs("server_lifetime", p.server_lifetime);
    pairs.text("client_encoding", s.client_encoding.as_deref());
    pairs.text("datestyle", s.datestyle.as_deref());
    pairs.text("timezone", s.timezone.as_deref());
    pairs.text("application_name", s.application_name.as_deref());
    pairs.0.join(" ")
}

fn user_settings(u: &UserSettings) -> String {
    let mut pairs = Pairs(Vec::new());
    pairs.show("pool_mode", u.pool_mode.map(|m| m.as_str()));
    pairs.show("pool_size", u.pool_size);
    pairs.show("reserve_pool_size", u.reserve_pool_size);
    pairs.show("max_user_connections", u.max_user_connections);
    pairs.show("max_user_client_connections", u.max_user_client_connections);
    pairs.secs("query_timeout", u.query_timeout);
    pairs.secs("query_wait_timeout", u.query_wait_timeout);
    pairs.secs("idle_transaction_timeout", u.idle_transaction_timeout);
    pairs.secs("transaction_timeout", u.transaction_timeout);
    pairs.secs("client_idle_timeout", u.client_idle_timeout);
    pairs.0.join(" ")
}

fn peer_line(peer: &Peer) -> String {
    let mut pairs = Pairs(Vec::new());
    pairs.text("host", Some(&peer.host));
    pairs.show("port", Some(peer.port));
    pairs.show("pool_size", peer.pool_size);
    pairs.0.join(" ")
}

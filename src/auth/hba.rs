//! `auth_type = hba`: which rule of `auth_hba_file` a connection falls under, as PgBouncer's
//! `hba_eval` (src/hba.c) decides: rules in file order, the first whose connection type,
//! address, database and user all match wins; no match means reject. Pure: the rules come from
//! `config::hba::load` with `@file` lists already read.

use std::net::IpAddr;

use crate::config::hba::{Address, ConnType, Name, Rule};

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The client's IP address; `None` for a unix-socket client.
    pub ip: Option<IpAddr>,
    /// Whether the client uses TLS.
    pub tls: bool,
    /// The database the client asked for.
    pub database: &'a str,
    /// The user the client logs in as.
    pub user: &'a str,
}

/// The first rule that applies to `conn`, if any.
pub fn first_match<'r>(rules: &'r [Rule], conn: &Connection<'_>) -> Option<&'r Rule> {
    rules.iter().find(|rule| {
        transport_matches(rule, conn)
            && rule
                .databases
                .iter()
                .any(|n| database_matches(n, conn.database, conn.user))
            && rule.users.iter().any(|n| user_matches(n, conn.user))
    })
}

fn transport_matches(rule: &Rule, conn: &Connection<'_>) -> bool {
    let Some(ip) = conn.ip else {
        return rule.conn_type == ConnType::Local;
    };
    let kind = match rule.conn_type {
        ConnType::Local => false,
        ConnType::Host => true,
        ConnType::HostSsl => conn.tls,
        ConnType::HostNoSsl => !conn.tls,
    };
    kind && address_matches(rule.address, ip.to_canonical())
}

fn address_matches(address: Address, ip: IpAddr) -> bool {
    match address {
        Address::All => true,
        Address::None => false,
        Address::Net { addr, prefix } => match (addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            // An IPv4 rule never matches an IPv6 client and the other way round (as PgBouncer).
            _ => false,
        },
    }
}

fn database_matches(name: &Name, database: &str, user: &str) -> bool {
    match name {
        Name::All => true,
        Name::SameUser => database == user,
        Name::Literal(n) => n == database,
        // Replication connections are not pooled, so `replication` matches none of ours; an
        // unread `@file` (never left by `config::hba::load`) matches nothing.
        Name::Replication | Name::File(_) => false,
    }
}

fn user_matches(name: &Name, user: &str) -> bool {
    match name {
        Name::All => true,
        Name::Literal(n) => n == user,
        Name::SameUser | Name::Replication | Name::File(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::hba::{Method, parse};

    const RULES: &str = "\
local  all       alice           peer
local  all       all             trust
host   sameuser  all  127.0.0.1/32  trust
host   app       bob,carol  127.0.0.0/8  scram-sha-256
hostssl all      all  ::1/128       md5
host   all       all  ::1/128       password
hostnossl all    all  10.0.0.0 255.0.0.0  reject
host   all       all  all           md5
";

    fn method(ip: Option<&str>, tls: bool, database: &str, user: &str) -> Option<Method> {
        let rules = parse(RULES, "hba.conf").unwrap();
        let conn = Connection {
            ip: ip.map(|i| i.parse().unwrap()),
            tls,
            database,
            user,
        };
        first_match(&rules, &conn).map(|r| r.method)
    }

    #[test]
    fn the_first_matching_rule_wins() {
        assert_eq!(method(None, false, "app", "alice"), Some(Method::Peer));
        assert_eq!(method(None, false, "app", "bob"), Some(Method::Trust));
        assert_eq!(
            method(Some("127.0.0.1"), false, "bob", "bob"),
            Some(Method::Trust)
        );
        assert_eq!(
            method(Some("127.0.0.2"), false, "app", "carol"),
            Some(Method::ScramSha256)
        );
        assert_eq!(
            method(Some("127.0.0.2"), false, "app", "dave"),
            Some(Method::Md5)
        );
    }

    #[test]
    fn tls_and_address_families_decide_between_rules() {
        assert_eq!(method(Some("::1"), true, "x", "y"), Some(Method::Md5));
        assert_eq!(method(Some("::1"), false, "x", "y"), Some(Method::Password));
        assert_eq!(
            method(Some("10.1.2.3"), false, "x", "y"),
            Some(Method::Reject)
        );
        assert_eq!(method(Some("10.1.2.3"), true, "x", "y"), Some(Method::Md5));
        // An IPv4 client seen through an IPv6 socket is matched as IPv4.
        assert_eq!(
            method(Some("::ffff:127.0.0.1"), false, "bob", "bob"),
            Some(Method::Trust)
        );
    }

    #[test]
    fn no_match_is_none() {
        let rules = parse("host all all 127.0.0.1/32 md5\n", "h").unwrap();
        let conn = Connection {
            ip: Some("192.168.0.1".parse().unwrap()),
            tls: false,
            database: "d",
            user: "u",
        };
        assert!(first_match(&rules, &conn).is_none());
        let local = Connection { ip: None, ..conn };
        assert!(first_match(&rules, &local).is_none());
        assert!(first_match(&[], &local).is_none());
    }
}

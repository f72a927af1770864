//! `auth_hba_file`: the pg_hba.conf subset PgBouncer reads (`src/hba.c`), as typed rules.
//! Connection types `local`, `host`, `hostssl`, `hostnossl`; databases `all`, `sameuser`,
//! `replication`, `@file`, names and comma lists (no `samerole`/`samegroup`); users `all`,
//! `@file`, names and lists (no `+group`); addresses `all`, `ip/len` or `ip mask` (no
//! `samehost`/`samenet`/host names); the methods of `auth_type` plus `peer` and `reject` (not
//! `any` or `pam`); trailing `name=value` options such as `map=` (peer and cert only, naming a
//! map of `auth_ident_file`). [`load`] also reads the `@file` name lists; matching a connection
//! against the rules is `auth::hba`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::error::{ConfigError, Location};
use super::ini;

/// How deep `@file` lists may name further `@file`s (a cycle stops here).
const MAX_FILE_DEPTH: usize = 8;

/// Which connections a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnType {
    /// Unix-socket connections.
    Local,
    /// TCP, with or without TLS.
    Host,
    /// TCP with TLS.
    HostSsl,
    /// TCP without TLS.
    HostNoSsl,
}

/// One item of the database or user field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// `all`.
    All,
    /// `sameuser` (database field only).
    SameUser,
    /// `replication` (database field only).
    Replication,
    /// `@file`: names to be read from that file (not read here).
    File(String),
    /// A literal name (quoted keywords are literal names).
    Literal(String),
}

/// The address field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// `local` rules have none.
    None,
    /// `all`.
    All,
    /// A network: address and prefix length.
    Net {
        /// Network address.
        addr: IpAddr,
        /// Prefix length in bits.
        prefix: u8,
    },
}

/// The authentication method of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `trust`.
    Trust,
    /// `reject`.
    Reject,
    /// `md5`.
    Md5,
    /// `password` (cleartext).
    Password,
    /// `scram-sha-256`.
    ScramSha256,
    /// `cert`.
    Cert,
    /// `peer` (Unix sockets only).
    Peer,
    /// `ldap`.
    Ldap,
}

/// One HBA line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based line in the file.
    pub line: usize,
    /// Connection type.
    pub conn_type: ConnType,
    /// Database field.
    pub databases: Vec<Name>,
    /// User field.
    pub users: Vec<Name>,
    /// Address field.
    pub address: Address,
    /// Method.
    pub method: Method,
    /// `name=value` options (e.g. `map`).
    pub options: BTreeMap<String, String>,
}

/// The rules of `auth_hba_file` with the user name maps of `auth_ident_file` that their
/// `map=` options name.
#[derive(Debug, Clone, Default)]
pub struct Hba {
    /// The rules, in file order (the first match decides).
    pub rules: Vec<Rule>,
    /// The maps of `auth_ident_file` (none when it is not set).
    pub maps: super::ident::IdentMaps,
}

impl Hba {
    /// Whether `system` (an OS user for `peer`, a certificate's CN for `cert`) may log in as
    /// `user`: by the rule's map when it names one, else only as itself.
    pub fn names_user(&self, map: Option<&str>, system: &str, user: &str) -> bool {
        match map {
            Some(map) => self.maps.allows(map, system, user),
            None => system == user,
        }
    }

    /// The `map=` names of rules that `maps` does not define, with the rules' lines: such a
    /// rule can never let anyone in.
    pub fn undefined_maps(&self) -> Vec<(usize, &str)> {
        self.rules
            .iter()
            .filter_map(|r| Some((r.line, r.options.get("map")?.as_str())))
            .filter(|(_, map)| !self.maps.defines(map))
            .collect()
    }
}

/// Parses a whole HBA file; every broken line is reported, with `file` in the messages.
pub fn parse(text: &str, file: &str) -> Result<Vec<Rule>, Vec<ConfigError>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let at = Location::new(file, index + 1);
        match tokens(raw).and_then(|t| rule(&t, index + 1)) {
            Ok(Some(r)) => rules.push(r),
            Ok(None) => {}
            Err(message) => errors.push(at.error(message)),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// Reads the HBA file at `path` and replaces every `@file` by the names in that file (its path
/// relative to the HBA file's directory), as PgBouncer does when it loads the rules.
pub fn load(path: &Path) -> Result<Vec<Rule>, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = ini::read_text(path).map_err(|e| vec![e])?;
    let mut rules = parse(&text, &file)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    for rule in &mut rules {
        for (field, database) in [(&mut rule.databases, true), (&mut rule.users, false)] {
            match expand(field, dir, database, 0) {
                Ok(names) => *field = names,
                Err(message) => errors.push(Location::new(&file, rule.line).error(message)),
            }
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// `field` with each `@file` replaced by the names it holds (separated by commas, spaces or
/// lines; `#` comments).
fn expand(field: &[Name], dir: &Path, database: bool, depth: usize) -> Result<Vec<Name>, String> {
    let mut out = Vec::new();
    for name in field {
        let Name::File(file) = name else {
            out.push(name.clone());
            continue;
        };
        if depth >= MAX_FILE_DEPTH {
            return Err(format!("@{file}: @file lists nested too deep"));
        }
        let text =
            ini::read_text(&dir.join(file)).map_err(|e| format!("@{file}: {}", e.message))?;
        for line in text.lines() {
            for token in tokens(line).map_err(|e| format!("@{file}: {e}"))? {
                // Commas and spaces both separate names here: `a, b` is two names.
                let token = token.trim_matches(',');
                if token.is_empty() {
                    continue;
                }
                let listed = names(token, database).map_err(|e| format!("@{file}: {e}"))?;
                out.extend(expand(&listed, dir, database, depth + 1)?);
            }
        }
    }
    Ok(out)
}

/// Splits a line into whitespace-separated tokens, quotes kept; `#` starts a comment.
pub(super) fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            '#' if !in_quotes => break,
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated quoted string".to_owned());
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Splits a field on commas outside quotes; each item unquoted, with whether it was quoted
/// (a quoted keyword such as `"all"` is a plain name).
fn items(field: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let (mut current, mut quoted, mut in_quotes) = (String::new(), false, false);
    for c in field.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                quoted = true;
            }
            ',' if !in_quotes => {
                out.push((std::mem::take(&mut current), quoted));
                quoted = false;
            }
            c => current.push(c),
        }
    }
    out.push((current, quoted));
    out
}

pub(super) fn unquoted(token: &str) -> String {
    token.replace('"', "")
}

fn rule(tokens: &[String], line: usize) -> Result<Option<Rule>, String> {
    let mut it = tokens.iter();
    let Some(kind) = it.next() else {
        return Ok(None);
    };
    let conn_type = match kind.as_str() {
        "local" => ConnType::Local,
        "host" => ConnType::Host,
        "hostssl" => ConnType::HostSsl,
        "hostnossl" => ConnType::HostNoSsl,
        other => {
            return Err(format!(
                "invalid connection type {other:?} (expected local, host, hostssl or hostnossl)"
            ));
        }
    };
    let databases = names(it.next().ok_or("missing database field")?, true)?;
    let users = names(it.next().ok_or("missing user field")?, false)?;
    let address = if conn_type == ConnType::Local {
        Address::None
    } else {
        address(&mut it)?
    };
    let method = parse_method(&unquoted(it.next().ok_or("missing authentication method")?))?;
    let mut options = BTreeMap::new();
    for option in it {
        let option = unquoted(option);
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| format!("invalid option {option:?} (expected name=value)"))?;
        options.insert(name.to_owned(), value.to_owned());
    }
    if options.contains_key("map") && !matches!(method, Method::Peer | Method::Cert) {
        return Err("the map option is only valid for peer and cert authentication".to_owned());
    }
    if method == Method::Peer && conn_type != ConnType::Local {
        return Err("peer authentication is only for local (Unix socket) connections".to_owned());
    }
    Ok(Some(Rule {
        line,
        conn_type,
        databases,
        users,
        address,
        method,
        options,
    }))
}

fn names(field: &str, database: bool) -> Result<Vec<Name>, String> {
    let mut out = Vec::new();
    for (item, quoted) in items(field) {
        let item = item.as_str();
        let name = match item {
            "" if !quoted => return Err(format!("empty name in list {field:?}")),
            _ if quoted => Name::Literal(item.to_owned()),
            "all" => Name::All,
            "sameuser" if database => Name::SameUser,
            "replication" if database => Name::Replication,
            "samerole" | "samegroup" if database => {
                return Err(format!("{item} is not supported by PgBouncer"));
            }
            _ if item.starts_with('+') && !database => {
                return Err(format!(
                    "group membership ({item}) is not supported by PgBouncer"
                ));
            }
            _ => match item.strip_prefix('@') {
                Some(file) if !file.is_empty() => Name::File(file.to_owned()),
                Some(_) => return Err("@ needs a file name".to_owned()),
                None => Name::Literal(item.to_owned()),
            },
        };
        out.push(name);
    }
    Ok(out)
}

fn address<'a>(it: &mut impl Iterator<Item = &'a String>) -> Result<Address, String> {
    let field = it.next().ok_or("missing address field")?;
    if field == "all" {
        return Ok(Address::All);
    }
    if let Some((ip, len)) = field.split_once('/') {
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("invalid IP address {ip:?}"))?;
        let prefix: u8 = len
            .parse()
            .map_err(|_| format!("invalid prefix length {len:?}"))?;
        if prefix > max_prefix(addr) {
            return Err(format!("prefix length {prefix} is too long for {ip}"));
        }
        return Ok(Address::Net { addr, prefix });
    }
    let addr: IpAddr = field.parse().map_err(|_| {
        format!("invalid address {field:?} (expected all, ip/len or ip mask; host names, samehost and samenet are not supported)")
    })?;
    let mask = it
        .next()
        .ok_or("an address without /len needs a netmask after it")?;
    let mask: IpAddr = mask
        .parse()
        .map_err(|_| format!("invalid netmask {mask:?}"))?;
    Ok(Address::Net {
        addr,
        prefix: mask_len(addr, mask)?,
    })
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask_len(addr: IpAddr, mask: IpAddr) -> Result<u8, String> {
    let bits: u128 = match (addr, mask) {
        (IpAddr::V4(_), IpAddr::V4(m)) => u128::from(u32::from(m)) << 96,
        (IpAddr::V6(_), IpAddr::V6(m)) => u128::from(m),
        _ => return Err("address and netmask are of different IP versions".to_owned()),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(format!("netmask {mask} is not contiguous"));
    }
    u8::try_from(ones).map_err(|e| e.to_string())
}

fn parse_method(name: &str) -> Result<Method, String> {
    Ok(match name {
        "trust" => Method::Trust,
        "reject" => Method::Reject,
        "md5" => Method::Md5,
        "password" => Method::Password,
        "scram-sha-256" => Method::ScramSha256,
        "cert" => Method::Cert,
        "peer" => Method::Peer,
        "ldap" => Method::Ldap,
        other => {
            return Err(format!(
                "unsupported authentication method {other:?} (expected trust, reject, md5, password, scram-sha-256, cert, peer or ldap)"
            ));
        }
    })
}

#[cfg(test)]
mod tests;

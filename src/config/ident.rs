//! `auth_ident_file`: the user name maps that `map=` on a `peer` or `cert` HBA rule names, in
//! PgBouncer's subset of pg_ident.conf (1.23+): `map-name system-user database-user` lines,
//! where the database user may be `all`. No regular expressions, no `+group`, no `include`.

use std::path::Path;

use super::error::{ConfigError, Location};
use super::hba::unquoted;
use super::ini;

/// The maps of one ident file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentMaps {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    map: String,
    system: String,
    /// `None`: the `all` keyword.
    database: Option<String>,
}

impl IdentMaps {
    /// Whether the file has any line for map `map`.
    pub fn defines(&self, map: &str) -> bool {
        self.entries.iter().any(|e| e.map == map)
    }

    /// Whether map `map` lets OS (or certificate) user `system` log in as `user`.
    pub fn allows(&self, map: &str, system: &str, user: &str) -> bool {
        self.entries.iter().any(|e| {
            e.map == map && e.system == system && e.database.as_deref().is_none_or(|d| d == user)
        })
    }
}

/// Reads and parses the ident file at `path`.
pub fn load(path: &Path) -> Result<IdentMaps, Vec<ConfigError>> {
    let text = ini::read_text(path).map_err(|e| vec![e])?;
    parse(&text, &path.display().to_string())
}

/// Parses a whole ident file; every broken line is reported, with `file` in the messages.
pub fn parse(text: &str, file: &str) -> Result<IdentMaps, Vec<ConfigError>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        match super::hba::tokens(raw).and_then(|t| entry(&t)) {
            Ok(Some(e)) => entries.push(e),
            Ok(None) => {}
            Err(message) => errors.push(Location::new(file, index + 1).error(message)),
        }
    }
    if errors.is_empty() {
        Ok(IdentMaps { entries })
    } else {
        Err(errors)
    }
}

fn entry(tokens: &[String]) -> Result<Option<Entry>, String> {
    let (map, system, database) = match tokens {
        [] => return Ok(None),
        [first, ..]
            if matches!(
                first.as_str(),
                "include" | "include_if_exists" | "include_dir"
            ) =>
        {
            return Err(format!("{first} is not supported by PgBouncer"));
        }
        [map, system, database] => (map, system, database),
        _ => {
            return Err(format!(
                "expected 3 fields (map-name system-user database-user), found {}",
                tokens.len()
            ));
        }
    };
    if system.starts_with('/') || database.starts_with('/') {
        return Err("regular expressions are not supported by PgBouncer".to_owned());
    }
    if database.starts_with('+') {
        return Err(format!(
            "group membership ({database}) is not supported by PgBouncer"
        ));
    }
    // A quoted "all" is a user called all, as in pg_ident.conf.
    let database = match database.as_str() {
        "all" => None,
        quoted => Some(unquoted(quoted)),
    };
    Ok(Some(Entry {
        map: unquoted(map),
        system: unquoted(system),
        database,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# MAP     SYSTEM-USER   DATABASE-USER
ops       alice         app
ops       alice         reporting   # a second user for the same person
ops       bob           all
quoted    \"carol\"       \"all\"
";

    #[test]
    fn a_map_allows_exactly_its_pairs() {
        let maps = parse(FILE, "ident.conf").unwrap();
        assert!(maps.allows("ops", "alice", "app"));
        assert!(maps.allows("ops", "alice", "reporting"));
        assert!(
            !maps.allows("ops", "alice", "bob"),
            "alice has two users, not all"
        );
        assert!(maps.allows("ops", "bob", "anyone"), "all takes any user");
        assert!(!maps.allows("other", "alice", "app"), "another map");
        assert!(!maps.allows("ops", "mallory", "app"));
        assert!(
            !maps.allows("ops", "Alice", "app"),
            "names are case-sensitive"
        );
        // A quoted keyword is a name.
        assert!(maps.allows("quoted", "carol", "all"));
        assert!(!maps.allows("quoted", "carol", "app"));
        assert_eq!(
            parse("\n# only comments\n", "f").unwrap(),
            IdentMaps::default()
        );
    }

    #[test]
    fn what_pgbouncer_leaves_out_is_an_error_at_its_line() {
        let text = "ops alice app\n\
                    ops /^(.*)$ \\1\n\
                    ops alice\n\
                    ops alice +admins\n\
                    include other.conf\n\
                    ops alice app extra\n";
        let errors = parse(text, "ident.conf").unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6]);
        let all = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(all.contains("ident.conf:2"), "{all}");
        assert!(all.contains("regular expressions"), "{all}");
        assert!(all.contains("expected 3 fields"), "{all}");
        assert!(all.contains("group membership"), "{all}");
        assert!(all.contains("include is not supported"), "{all}");
    }
}

//! libpq's password file (`~/.pgpass`, or `PGPASSFILE`): `host:port:database:user:password`
//! lines, `*` matching anything, `\:` and `\\` escapes, first match wins. Lookup only; this
//! module never writes the file.

use std::path::{Path, PathBuf};

/// Where libpq looks: `PGPASSFILE`, else `$HOME/.pgpass`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(&home).join(".pgpass"))
}

/// The password for the first matching line of `text`, as libpq matches it.
pub fn lookup(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(split_line)
        .find(|fields| {
            fields
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut fields| fields.pop().unwrap_or_default())
}

/// Five fields with escapes resolved, or `None` for a malformed line.
fn split_line(line: &str) -> Option<Vec<String>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

/// Reads the file and looks the connection up. A file readable by group or others is ignored
/// with a warning, as libpq does, because it holds passwords.
pub fn find(path: &Path, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "bouncectl: warning: password file {} has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    // libpq treats the default unix socket directory as "localhost" in the file.
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    lookup(&text, host, port, database, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# comment:line:is:ignored:x
db1.example:5432:app:alice:first
*:6432:pgbouncer:pgbouncer:admin\\:pw
127.0.0.1:*:*:bob:back\\\\slash
*:*:*:*:fallback
";

    #[test]
    fn first_matching_line_wins() {
        assert_eq!(
            lookup(FILE, "db1.example", 5432, "app", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(FILE, "db2.example", 5432, "app", "alice").as_deref(),
            Some("fallback")
        );
    }

    #[test]
    fn wildcards_and_escapes() {
        assert_eq!(
            lookup(FILE, "10.0.0.1", 6432, "pgbouncer", "pgbouncer").as_deref(),
            Some("admin:pw")
        );
        assert_eq!(
            lookup(FILE, "127.0.0.1", 1, "x", "bob").as_deref(),
            Some("back\\slash")
        );
    }

    #[test]
    fn no_match_and_malformed_lines() {
        assert_eq!(lookup("a:1:b:c\n", "a", 1, "b", "c"), None);
        assert_eq!(lookup("h:1:d:u:pw\n", "h", 2, "d", "u"), None);
        assert_eq!(
            lookup("h:1:d:u:p:w\n", "h", 1, "d", "u").as_deref(),
            Some("p:w")
        );
    }
}

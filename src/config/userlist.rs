//! `auth_file` (userlist.txt) in PgBouncer's format: `"user" "secret"` per line, `""` escapes a
//! quote inside a field, anything after the second field is ignored, and lines starting with `;`
//! are comments. Follows PgBouncer's `load_auth_file` in `src/loader.c`, but reports the line.

use crate::auth::scram::Verifier;

/// PgBouncer's `MAX_USERNAME`: a longer name is rejected when loading.
pub const MAX_USERNAME: usize = 128;
/// PgBouncer's `MAX_PASSWORD` (long enough for SCRAM verifiers).
pub const MAX_PASSWORD: usize = 2048;

/// A stored secret, classified the way PgBouncer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// Cleartext password.
    Plain(String),
    /// `md5` followed by 32 hex digits: md5(password ‖ user).
    Md5(String),
    /// A SCRAM-SHA-256 verifier, parsed.
    Scram(Verifier),
}

impl Secret {
    /// Classifies a secret string as PgBouncer does (`get_password_type`).
    pub fn classify(text: &str) -> Self {
        if is_md5(text) {
            return Secret::Md5(text.to_owned());
        }
        if let Some(v) = Verifier::parse(text) {
            return Secret::Scram(v);
        }
        Secret::Plain(text.to_owned())
    }

    /// The secret as written in the file.
    pub fn as_text(&self) -> String {
        match self {
            Secret::Plain(s) | Secret::Md5(s) => s.clone(),
            Secret::Scram(v) => v.to_string(),
        }
    }

    /// Short name of the kind: `plain`, `md5` or `scram-sha-256`.
    pub fn kind(&self) -> &'static str {
        match self {
            Secret::Plain(_) => "plain",
            Secret::Md5(_) => "md5",
            Secret::Scram(_) => "scram-sha-256",
        }
    }
}

fn is_md5(text: &str) -> bool {
    text.len() == 35
        && text.starts_with("md5")
        && text.bytes().skip(3).all(|b| b.is_ascii_hexdigit())
}

/// One user's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The user name, unquoted.
    pub user: String,
    /// The secret, classified.
    pub secret: Secret,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Why a userlist line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct UserlistError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, in words an operator can act on.
    pub reason: String,
}

/// Parses a whole userlist; the first broken line is an error, as PgBouncer stops there too.
pub fn parse(text: &str) -> Result<Vec<Entry>, UserlistError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let parsed = parse_line(line).map_err(|reason| UserlistError {
            line: number,
            reason,
        })?;
        if let Some((user, secret)) = parsed {
            entries.push(Entry {
                user,
                secret: Secret::classify(&secret),
                line: number,
            });
        }
    }
    Ok(entries)
}

/// Parses one line: `Ok(None)` for blank and comment lines, else the unquoted user and secret.
pub fn parse_line(line: &str) -> Result<Option<(String, String)>, String> {
    let rest = line.trim_start();
    if rest.is_empty() || rest.starts_with(';') {
        return Ok(None);
    }
    let Some(rest) = rest.strip_prefix('"') else {
        return Err(format!(
            "broken auth file: expected a line starting with a double-quoted user name, found {:?} (comments start with ';')",
            first_chars(rest)
        ));
    };
    let (user, rest) =
        quoted_field(rest).ok_or("broken auth file: user name has no closing quote")?;
    if user.len() >= MAX_USERNAME {
        return Err(format!(
            "username too long in auth file (max {} bytes)",
            MAX_USERNAME - 1
        ));
    }
    // PgBouncer skips whatever stands between the two fields up to the next quote.
    let Some(open) = rest.find('"') else {
        return Err(format!("broken auth file: no secret for user {user:?}"));
    };
    let (secret, _ignored) = rest
        .get(open + 1..)
        .and_then(quoted_field)
        .ok_or_else(|| format!("broken auth file: secret of user {user:?} has no closing quote"))?;
    if secret.len() >= MAX_PASSWORD {
        return Err(format!(
            "password too long in auth file (max {} bytes)",
            MAX_PASSWORD - 1
        ));
    }
    Ok(Some((user, secret)))
}

/// Reads a field whose opening quote is already consumed; returns it unescaped and the rest.
fn quoted_field(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        if matches!(chars.peek(), Some((_, '"'))) {
            chars.next();
            out.push('"');
            continue;
        }
        return Some((out, s.get(i + 1..).unwrap_or("")));
    }
    None
}

fn first_chars(s: &str) -> String {
    s.chars().take(12).collect()
}

/// Quotes a value for userlist.txt: wrapped in `"`, with inner quotes doubled.
pub fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// The full line for `user` with `secret`, without a newline.
pub fn format_line(user: &str, secret: &str) -> String {
    format!("{} {}", quote(user), quote(secret))
}

/// Inserts or replaces `user`'s entry in `text`, keeping every other byte as it was.
///
/// Every line naming `user` is dropped except the first, which is replaced in place; when there
/// is none the entry is appended. Broken lines are an error: rewriting a file we cannot read
/// would risk losing entries.
pub fn upsert(text: &str, user: &str, secret: &str) -> Result<String, UserlistError> {
    let new_line = format_line(user, secret);
    let mut out = String::with_capacity(text.len() + new_line.len() + 1);
    let mut replaced = false;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let content = raw.trim_end_matches(['\n', '\r']);
        let parsed = parse_line(content).map_err(|reason| UserlistError {
            line: index + 1,
            reason,
        })?;
        match parsed {
            Some((name, _)) if name == user => {
                if !replaced {
                    out.push_str(&new_line);
                    out.push_str(raw.get(content.len()..).unwrap_or("\n"));
                    replaced = true;
                }
            }
            _ => out.push_str(raw),
        }
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&new_line);
        out.push('\n');
    }
    Ok(out)
}

/// Fuzz entry: parses arbitrary bytes as a userlist and upserts into it; never panics.
#[cfg(any(fuzzing, test))]
pub fn fuzz_entry(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(entries) = parse(&text) {
        for entry in entries {
            let _ = upsert(&text, &entry.user, &entry.secret.as_text());
        }
    }
}

#[cfg(test)]
mod tests;

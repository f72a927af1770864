//! The console's command language, as PgBouncer's `admin.c` reads it: one keyword, maybe an
//! argument, case-insensitive, an optional trailing `;`. `SELECT x` is read as `SHOW x`;
//! `SET key = value` also accepts `TO` and a quoted value. Pure: text in, [`AdminCommand`] out.

/// Fake session parameters the console answers itself, so drivers connect cleanly.
pub const FAKE_PARAMS: &[&str] = &[
    "client_encoding",
    "datestyle",
    "default_transaction_isolation",
    "extra_float_digits",
    "standard_conforming_strings",
    "timezone",
    "application_name",
    "server_version",
    "intervalstyle",
];

/// How SHUTDOWN waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Exit now.
    Immediate,
    /// Stop accepting, exit once every server is released.
    WaitForServers,
    /// Stop accepting, exit once every client has left.
    WaitForClients,
}

/// One console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// An empty query string.
    Empty,
    /// `SHOW name` (upper-cased name, e.g. `POOLS`), or a fake parameter in lower case.
    Show(String),
    /// `SET key = value`.
    Set {
        /// The key as written (lower-cased).
        key: String,
        /// The value, unquoted.
        value: String,
    },
    /// `PAUSE [db]`.
    Pause(Option<String>),
    /// `RESUME [db]`.
    Resume(Option<String>),
    /// `DISABLE db`.
    Disable(String),
    /// `ENABLE db`.
    Enable(String),
    /// `RECONNECT [db]`.
    Reconnect(Option<String>),
    /// `KILL [db]`.
    Kill(Option<String>),
    /// `KILL_CLIENT id`.
    KillClient(u64),
    /// `SUSPEND`.
    Suspend,
    /// `SHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS]`.
    Shutdown(ShutdownMode),
    /// `RELOAD`.
    Reload,
    /// `WAIT_CLOSE [db]`.
    WaitClose(Option<String>),
}

/// Why a query is no command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a command at all (PgBouncer's wording).
    #[error("invalid command '{0}', use SHOW HELP;")]
    Invalid(String),
    /// A command that needs a database got none.
    #[error("a database is required")]
    DatabaseRequired,
}

impl AdminCommand {
    /// Whether a `stats_users` member may run it (read-only).
    pub fn read_only(&self) -> bool {
        matches!(self, AdminCommand::Empty | AdminCommand::Show(_))
            || matches!(self, AdminCommand::Set { key, .. } if is_fake_param(key))
    }
}

/// Whether `name` is a fake session parameter the console answers locally.
pub fn is_fake_param(name: &str) -> bool {
    FAKE_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// Parses one query string.
pub fn parse(query: &str) -> Result<AdminCommand, ParseError> {
    let text = query.trim().trim_end_matches(';').trim();
    if text.is_empty() {
        return Ok(AdminCommand::Empty);
    }
    let invalid = || ParseError::Invalid(query.trim().to_owned());
    let (word, rest) = split_word(text);
    let word = word.to_ascii_uppercase();
    if word == "SET" {
        return parse_set(rest).ok_or_else(invalid);
    }
    let arg = single_arg(rest).map_err(|()| invalid())?;
    let cmd = match word.as_str() {
        "SHOW" | "SELECT" => {
            let name = arg.ok_or_else(invalid)?;
            if is_fake_param(&name) {
                AdminCommand::Show(name.to_ascii_lowercase())
            } else {
                AdminCommand::Show(name.to_ascii_uppercase())
            }
        }
        "PAUSE" => AdminCommand::Pause(arg),
        "RESUME" => AdminCommand::Resume(arg),
        "DISABLE" => AdminCommand::Disable(arg.ok_or(ParseError::DatabaseRequired)?),
        "ENABLE" => AdminCommand::Enable(arg.ok_or(ParseError::DatabaseRequired)?),
        "RECONNECT" => AdminCommand::Reconnect(arg),
        "KILL" => AdminCommand::Kill(arg),
        "KILL_CLIENT" => {
            let id = arg.ok_or_else(invalid)?;
            AdminCommand::KillClient(id.parse().map_err(|_| invalid())?)
        }
        "SUSPEND" if arg.is_none() => AdminCommand::Suspend,
        "RELOAD" if arg.is_none() => AdminCommand::Reload,
        "WAIT_CLOSE" => AdminCommand::WaitClose(arg),
        "SHUTDOWN" => AdminCommand::Shutdown(match arg.map(|a| a.to_ascii_uppercase()) {
            None => ShutdownMode::Immediate,
            Some(a) if a == "WAIT_FOR_SERVERS" => ShutdownMode::WaitForServers,
            Some(a) if a == "WAIT_FOR_CLIENTS" => ShutdownMode::WaitForClients,
            Some(_) => return Err(invalid()),
        }),
        _ => return Err(invalid()),
    };
    Ok(cmd)
}

fn split_word(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    (word, rest.trim())
}

/// Zero or one identifier (optionally double-quoted); more is an error.
fn single_arg(rest: &str) -> Result<Option<String>, ()> {
    if rest.is_empty() {
        return Ok(None);
    }
    if let Some(inner) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Ok(Some(inner.replace("\"\"", "\"")));
    }
    if rest.split_whitespace().count() == 1 {
        Ok(Some(rest.to_owned()))
    } else {
        Err(())
    }
}

fn parse_set(rest: &str) -> Option<AdminCommand> {
    let (key, after) = split_word(rest);
    if key.is_empty() {
        return None;
    }
    let after = after.trim_start();
    let value = if let Some(v) = after.strip_prefix('=') {
        v
    } else {
        let (to, v) = split_word(after);
        if !to.eq_ignore_ascii_case("TO") {
            return None;
        }
        v
    };
    let value = value.trim();
    let value = match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None if value.is_empty() || value.contains(char::is_whitespace) => return None,
        None => value.to_owned(),
    };
    Some(AdminCommand::Set {
        key: key.to_ascii_lowercase(),
        value,
    })
}

/// Fuzz entry: any bytes through the parser, which must not panic.
#[cfg(any(fuzzing, test))]
pub fn fuzz_entry(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cmd) = parse(text) {
            let _ = cmd.read_only();
        }
    }
}
